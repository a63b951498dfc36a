// The header-only C++ wrapper (kiln/kiln.hpp) as a host uses it: errors as kiln::api::Error,
// sizes taken from the plan, and a callback's exception rethrown to the caller, never unwound
// through the C library (all found by an outside test of the wrapper).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "kiln/kiln.hpp"
#include "test_util.h"

using kiln::test::TempDir;

namespace {

std::string compiled_fixture(const TempDir& d) {
  kiln::CompileOptions o;
  o.model_dir = kiln::test::fixture("tied_f32");
  o.output = d / "p.kplan";
  o.max_seq = 32;
  o.chunk = 8;
  kiln::compile_model(o);
  return o.output;
}

struct NotStd {
  int code;
};

}  // namespace

TEST_CASE("C++ API: score sizes its output from the plan and refuses what does not add up") {
  TempDir d;
  kiln::api::Plan plan(compiled_fixture(d));
  kiln::api::Context ctx(plan);
  const int64_t vocab = plan.info().vocab_size;
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6};
  const std::vector<float> two = ctx.score(ids, 2);
  CHECK(two.size() == size_t(2 * 3 * vocab));
  CHECK(ctx.score(ids, 2, vocab) == two);
  // A wrong vocab overflowed the heap; rows that do not divide the ids dropped the rest.
  try {
    (void)ctx.score(ids, 1, 16);
    FAIL("expected an error");
  } catch (const kiln::api::Error& e) {
    CHECK(e.status() == KILN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(e.what()).find("vocab 16 is not the plan's vocab_size") != std::string::npos);
  }
  for (const int64_t rows : {int64_t(4), int64_t(0), int64_t(-2)}) {
    CAPTURE(rows);
    try {
      (void)ctx.score(ids, rows);
      FAIL("expected an error");
    } catch (const kiln::api::Error& e) {
      CHECK(e.status() == KILN_ERR_INVALID_ARGUMENT);
      CHECK(std::string(e.what()).find("divide the 6 ids") != std::string::npos);
    }
  }
}

TEST_CASE("C++ API: generate's errors are kiln::api::Error, and a callback's exception reaches the caller as itself") {
  TempDir d;
  kiln::api::Plan plan(compiled_fixture(d));
  kiln::api::Context ctx(plan);
  const std::vector<int32_t> prompt = {1, 2, 3};
  try {  // (was std::length_error from the output vector)
    (void)ctx.generate(prompt, -1);
    FAIL("expected an error");
  } catch (const kiln::api::Error& e) {
    CHECK(e.status() == KILN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(e.what()) == "max_new_tokens is negative");
  }
  const std::vector<int32_t> all = ctx.generate(prompt, 6);
  REQUIRE(all.size() == 6);
  int calls = 0;
  try {
    (void)ctx.generate(prompt, 6, {}, [&](int32_t) -> bool {
      if (++calls == 2) throw std::out_of_range("the host's own error");
      return true;
    });
    FAIL("expected the callback's exception");
  } catch (const std::out_of_range& e) {
    CHECK(std::string(e.what()) == "the host's own error");
  }
  CHECK(calls == 2);  // it stopped the generation
  try {
    (void)ctx.generate(prompt, 6, {}, [](int32_t) -> bool { throw NotStd{42}; });
    FAIL("expected the callback's exception");
  } catch (const NotStd& e) {
    CHECK(e.code == 42);
  }
  // The context is still usable, and gives the same tokens.
  std::vector<int32_t> seen;
  CHECK(ctx.generate(prompt, 6, {}, [&](int32_t t) {
    seen.push_back(t);
    return true;
  }) == all);
  CHECK(seen == all);
}
