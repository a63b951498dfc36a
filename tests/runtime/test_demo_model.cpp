// The demo model (models/kjv-tiny, tools/train_demo_model.py) end to end: its tokenizer and a
// bf16 plan reproduce transformers' greedy continuations (models/kjv-tiny/reference.json),
// up to the first near-tie that reference file marks.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "compiler/compile.h"
#include "runtime/context.h"
#include "test_util.h"

using namespace kiln;

TEST_CASE("demo model: text in, greedy text out, identical to transformers") {
  const std::string dir = kiln::test::fixtures_root() + "/../../models/kjv-tiny";
  std::ifstream in(dir + "/reference.json");
  REQUIRE(in.good());
  const auto ref = nlohmann::json::parse(in);
  kiln::test::TempDir d;
  CompileOptions o;
  o.model_dir = dir;
  o.output = d / "kjv.kplan";
  o.max_seq = 128;
  const CompileSummary s = compile_model(o);
  CHECK(s.plan_dtype == DType::BF16);
  auto plan = Plan::load_file(o.output);
  REQUIRE(plan.is_ok());
  const Tokenizer* tok = plan.value()->tokenizer();
  REQUIRE(tok != nullptr);
  auto ctx = Context::create(plan.value(), ContextOptions{});
  REQUIRE(ctx.is_ok());
  for (const auto& c : ref["cases"]) {
    CAPTURE(c["prompt"].get<std::string>());
    const auto prompt = tok->encode(c["prompt"].get<std::string>(), true);
    CHECK(prompt == c["prompt_ids"].get<std::vector<int32_t>>());
    const int64_t n = c["robust_tokens"].get<int64_t>();
    REQUIRE(n >= 3);
    std::vector<int32_t> out(static_cast<size_t>(n));
    int64_t got = 0;
    REQUIRE(ctx.value()
                ->generate(prompt.data(), int64_t(prompt.size()), n, SamplingParams{}, -1, out.data(), &got, nullptr)
                .is_ok());
    const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
    CHECK(std::equal(out.begin(), out.end(), want.begin()));
    MESSAGE(c["prompt"].get<std::string>() << tok->decode(out.data(), out.size(), true));
  }
}
