// Checks the compiler tests share (doctest: not for the fuzzers, which link test_util without it).
#pragma once
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compiler/compile.h"
#include "compiler/safetensors.h"
#include "runtime/context.h"
#include "runtime/plan.h"
#include "test_util.h"

namespace kiln::test {

// Compiling with o fails with a message that contains `expect`, and writes no plan at o.output.
inline void check_compile_refused(const CompileOptions& o, const std::string& expect) {
  const std::string err = compile_error(o);
  CHECK_MESSAGE(err.find(expect) != std::string::npos, "expected \"" << expect << "\" in: " << err);
  CHECK_FALSE(path_exists(o.output));
}

// The plan on the CPU with `threads` workers scores the reference's inputs within `bound` (relative L2)
// and, when `greedy`, continues its prompt with its greedy tokens; returns the logits and the error.
inline std::pair<std::vector<float>, double> check_reference(std::shared_ptr<const Plan> plan, const Reference& ref,
                                                             int threads, double bound, bool greedy) {
  auto ctx = cpu_context(std::move(plan), threads);
  std::vector<float> logits = score_reference(*ctx, ref);
  const double err = reference_error(logits, ref);
  CHECK(err <= bound);
  if (greedy) {
    const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
    CHECK(greedy_continuation(*ctx, ref.prompt_ids, n_new) == ref.greedy_ids);
  }
  return {std::move(logits), err};
}

}  // namespace kiln::test
