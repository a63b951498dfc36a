// The fusion pass (compiler/passes/fuse.h): a plan with a CUDA target lists the fused launches the
// CUDA kernels run, a plan for the CPU alone none, and on the CPU both give the same bits.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <random>

#include "compiler/compile.h"
#include "runtime/context.h"
#include "test_util.h"

using namespace kiln;

namespace {

std::map<std::string, int> kernel_counts(const Plan& p, const std::string& program) {
  std::map<std::string, int> n;
  for (const LaunchInfo& l : p.programs()[size_t(p.find_program(program))].launches) ++n[p.kernels()[l.kernel]->name];
  return n;
}

}  // namespace

TEST_CASE("fuse: CUDA-target LLaMA plans list fused launches, CPU plans none, and both give the same bits") {
  for (const auto& shape : std::vector<std::pair<int64_t, std::string>>{{256, "bf16"}, {4096, "bf16"}, {256, "f32"}}) {
    const int64_t vocab = shape.first;
    const std::string dtype = shape.second;
    CAPTURE(vocab);
    CAPTURE(dtype);
    test::TempDir d;
    test::TinyLlama t;
    t.vocab = vocab, t.hidden = 64, t.ffn = 96, t.layers = 2, t.heads = 4, t.kv_heads = 2;
    test::write_tiny_llama(d.path(), t);
    CompileOptions o;
    o.model_dir = d.path();
    o.dtype = dtype;
    o.max_seq = 64;
    o.chunk = 16;  // prefill rows above the GEMV's 8: only RoPE + KV write fuse there
    o.output = d / "all.kplan";
    compile_model(o);
    o.output = d / "cpu.kplan";
    o.target = "cpu";
    compile_model(o);
    auto all = Plan::load_file(d / "all.kplan");
    auto cpu = Plan::load_file(d / "cpu.kplan");
    REQUIRE(all.is_ok());
    REQUIRE(cpu.is_ok());
    const int L = int(t.layers);
    for (const char* prog : {"prefill", "score", "decode"}) {
      CAPTURE(std::string(prog));
      auto n = kernel_counts(*all.value(), prog);
      CHECK(n["rope_kv_write"] == L);
      CHECK(n["rope"] == 0);
      CHECK(n["kv_write"] == 0);
      // bf16 GEMVs fuse: per decode layer the qkv GEMV with its norm and the gate|up GEMV with norm
      // and SwiGLU; the LM head with the final norm where it has one row per sequence (decode, and
      // prefill after its last_rows gather), not in score's every-row head.
      const bool bf16 = dtype == "bf16", layers_fused = bf16 && std::string(prog) == "decode";
      const bool head_fused = bf16 && std::string(prog) != "score";
      CHECK(n["fused_matmul"] == (layers_fused ? 2 * L : 0) + (head_fused ? 1 : 0));
      CHECK(n["rmsnorm"] == (layers_fused ? 0 : 2 * L) + (head_fused ? 0 : 1));
      CHECK(n["swiglu"] == (layers_fused ? 0 : L));
      CHECK(n["matmul"] == (layers_fused ? 2 * L : 4 * L) + (head_fused ? 0 : 1));
      CHECK(n["last_rows"] == (std::string(prog) == "prefill" ? 1 : 0));
      auto c = kernel_counts(*cpu.value(), prog);
      CHECK(c.count("fused_matmul") == 0);
      CHECK(c.count("rope_kv_write") == 0);
      CHECK(c["rope"] == L);
    }
    // A fused launch reads its input while it writes its output: that the planner kept them apart
    // (the large vocabulary's logits included, which once landed on the residual stream) is proven
    // by the plan loading at all, since Plan::load refuses overlapping operands (validate_launch).
    // Both plans on the CPU: the same logits, bit for bit, scoring and decoding.
    auto ca = Context::create(all.value(), ContextOptions{});
    auto cc = Context::create(cpu.value(), ContextOptions{});
    REQUIRE(ca.is_ok());
    REQUIRE(cc.is_ok());
    std::mt19937 rng(5);
    std::vector<int32_t> ids(40);
    for (auto& x : ids) x = int32_t(rng() % uint32_t(vocab));
    std::vector<float> la(size_t(40 * vocab)), lc(la.size());
    REQUIRE(ca.value()->score(ids.data(), 1, 40, la.data()).is_ok());
    REQUIRE(cc.value()->score(ids.data(), 1, 40, lc.data()).is_ok());
    CHECK(std::memcmp(la.data(), lc.data(), la.size() * 4) == 0);
    std::vector<int32_t> ga(12), gc(12);
    int64_t na = 0, nc = 0;
    REQUIRE(ca.value()->generate(ids.data(), 20, 12, SamplingParams{}, -1, ga.data(), &na, nullptr).is_ok());
    REQUIRE(cc.value()->generate(ids.data(), 20, 12, SamplingParams{}, -1, gc.data(), &nc, nullptr).is_ok());
    CHECK(ga == gc);
    CHECK(std::memcmp(ca.value()->logits(0), cc.value()->logits(0), size_t(vocab) * 4) == 0);
  }
}
