// Editing a plan file's FlatBuffer in place and re-sealing its checksums, so the semantic
// verifier (not the hashes) has to catch the edit. Scalars only: the writer stores every field
// (force_defaults), so each one can be mutated.
#pragma once
#include <xxhash.h>

#include <cstring>
#include <vector>

#include "plan_generated.h"
#include "runtime/plan.h"
#include "runtime/plan_format.h"

namespace kiln::test {

inline PlanHeader header_of(const std::vector<uint8_t>& b) {
  PlanHeader h;
  std::memcpy(&h, b.data(), sizeof(h));
  return h;
}

inline fb::Plan* mutable_root(std::vector<uint8_t>& b) { return fb::GetMutablePlan(b.data() + header_of(b).fb_offset); }

// Recomputes the FlatBuffer and header checksums after an edit (of a whole plan file at b).
inline void rehash(uint8_t* b) {
  PlanHeader h;
  std::memcpy(&h, b, sizeof(h));
  h.fb_xxh3 = XXH3_64bits(b + h.fb_offset, h.fb_size);
  h.header_xxh3 = XXH3_64bits(&h, offsetof(PlanHeader, header_xxh3));
  std::memcpy(b, &h, sizeof(h));
}
inline void rehash(std::vector<uint8_t>& b) { rehash(b.data()); }

// The status of loading (and verifying) plan bytes.
inline Status load_status(const std::vector<uint8_t>& b) {
  auto r = Plan::load_memory(b.data(), b.size());
  return r.is_ok() ? Status::ok() : r.status();
}

}  // namespace kiln::test
