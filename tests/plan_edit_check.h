// Edits of a plan's FlatBuffer behind valid checksums (plan_edit.h) that the loader must refuse.
#pragma once
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "plan_edit.h"

namespace kiln::test {

// An edit of a plan's FlatBuffer, and what the verifier's refusal must say.
struct PlanEdit {
  const char* name;
  std::function<void(fb::Plan*)> edit;
  const char* expect;
};

// Each edit on a copy of the plan bytes, re-sealed behind valid checksums: refused, saying c.expect.
inline void check_edits_refused(const std::vector<uint8_t>& bytes, const std::vector<PlanEdit>& cases) {
  for (const PlanEdit& c : cases) {
    CAPTURE(std::string(c.name));
    std::vector<uint8_t> b = bytes;
    c.edit(mutable_root(b));
    rehash(b);
    const Status st = load_status(b);
    REQUIRE_FALSE(st.is_ok());
    CHECK_MESSAGE(st.message().find(c.expect) != std::string::npos, st.message());
  }
}

// Every kernel of this name in the plan's kernel table set to `version` (an edit).
inline void set_kernel_version(fb::Plan* p, const std::string& kernel, uint32_t version) {
  for (flatbuffers::uoffset_t i = 0; i < p->kernels()->size(); ++i)
    if (p->kernels()->Get(i)->name()->str() == kernel)
      p->mutable_kernels()->GetMutableObject(i)->mutate_version(version);
}

// A loaded plan's kernels of this name: 1 for each at version `want`, 100 for each at another (so that
// `== 1` says: exactly one, at that version).
inline int kernel_versions(const Plan& plan, const std::string& kernel, uint32_t want) {
  int n = 0;
  for (const OpDef* k : plan.kernels())
    if (k->name == kernel) n += k->version == want ? 1 : 100;
  return n;
}

}  // namespace kiln::test
