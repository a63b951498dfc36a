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

}  // namespace kiln::test
