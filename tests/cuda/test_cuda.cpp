// CUDA backend tests: every CUDA kernel against its CPU twin on fresh random inputs with
// poisoned outputs, the fixtures end to end on the GPU, and graph replay against stream mode
// bit for bit. Without a usable GPU each test prints "SKIPPED: no CUDA device" and returns;
// ctest reports those as skipped (tests/CMakeLists.txt), never as passed.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "compiler/compile.h"
#include "kernels/cuda/kernels_cuda.h"
#include "runtime/context.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::random_floats;
using kiln::test::rel_l2;
using kiln::test::TempDir;

namespace {

bool skip_without_gpu() {
  if (cuda_device_count() > 0) return false;
  std::printf("SKIPPED: no CUDA device\n");
  return true;
}

// A device copy of a host vector, freed on destruction.
struct Dev {
  void* p = nullptr;
  size_t bytes = 0;
  template <typename T>
  explicit Dev(const std::vector<T>& v) : bytes(v.size() * sizeof(T)) {
    REQUIRE(cudaMalloc(&p, std::max<size_t>(bytes, 1)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, v.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~Dev() { cudaFree(p); }
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
  template <typename T>
  std::vector<T> get() const {
    std::vector<T> v(bytes / sizeof(T));
    REQUIRE(cudaMemcpy(v.data(), p, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

void sync_ok() {
  REQUIRE(cudaGetLastError() == cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<uint8_t> as_dtype(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  convert_f32_to(v.data(), t, out.data(), v.size());
  return out;
}

}  // namespace

TEST_CASE("cuda: matmul (GEMV and tiled paths) matches the CPU kernel for every dtype, with bias, accumulate and padding rows") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, matmul_scratch_floats(4096));
  uint32_t seed = 100;
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t rows : {1, 3, 8, 37, 128})
      for (int64_t k : {64, 70, 4096}) {
        CAPTURE(std::string(dtype_name(wt)));
        CAPTURE(rows);
        CAPTURE(k);
        const int64_t m = 300, batch = rows == 128 ? 2 : 1;
        const auto x = random_floats(size_t(rows * k), seed++);
        const auto w = as_dtype(random_floats(size_t(m * k), seed++, 0.05f), wt);
        const auto bias = as_dtype(random_floats(size_t(m), seed++), wt);
        const auto y0 = random_floats(size_t(rows * m), seed++);
        std::vector<int32_t> valid = {int32_t(rows / batch), int32_t(rows / batch / 2)};
        valid.resize(size_t(batch));
        for (int acc = 0; acc < 2; ++acc) {
          std::vector<float> yc = acc ? y0 : std::vector<float>(y0.size(), kNaN);
          Dev dx(x), dw(w), db(bias), dy(yc), dv(valid);
          MatmulArgs a{x.data(), w.data(), wt, bias.data(), wt, yc.data(), rows, k, m, acc == 1, valid.data(), batch};
          matmul_cpu(a, pool);
          MatmulArgs g{dx.as<float>(), dw.p, wt, db.p, wt, dy.as<float>(), rows, k, m, acc == 1, dv.as<int32_t>(), batch};
          matmul_cuda(g, nullptr);
          sync_ok();
          const auto yg = dy.get<float>();
          // Padding rows stay NaN on both sides; compare the valid ones.
          std::vector<float> a1, a2;
          for (size_t i = 0; i < yg.size(); ++i) {
            const int64_t r = int64_t(i) / m;
            if ((r % (rows / batch)) < valid[size_t(r / (rows / batch))]) {
              a1.push_back(yg[i]);
              a2.push_back(yc[i]);
            } else if (!acc) {
              REQUIRE(std::isnan(yg[i]));
            }
          }
          CHECK(rel_l2(a1.data(), a2.data(), a1.size()) < 1e-5);
        }
      }
}

TEST_CASE("cuda: embedding, rmsnorm, swiglu and rope match the CPU kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  {
    const int64_t vocab = 1000, dim = 96;
    const auto table = as_dtype(random_floats(size_t(vocab * dim), 1), DType::BF16);
    std::vector<int32_t> tok = {5, 999, 0, -3, 1000, 42};
    std::vector<float> yc(tok.size() * size_t(dim), kNaN), yg = yc;
    Dev dt(table), dtok(tok), dy(yg);
    embedding_cpu({tok.data(), table.data(), DType::BF16, yc.data(), int64_t(tok.size()), vocab, dim}, pool);
    embedding_cuda({dtok.as<int32_t>(), dt.p, DType::BF16, dy.as<float>(), int64_t(tok.size()), vocab, dim}, nullptr);
    sync_ok();
    CHECK(dy.get<float>() == yc);
  }
  {
    const int64_t rows = 7, dim = 2048;
    const auto x = random_floats(size_t(rows * dim), 2, 3.0f);
    const auto w = as_dtype(random_floats(size_t(dim), 3), DType::F16);
    std::vector<float> yc(x.size(), kNaN);
    Dev dx(x), dw(w), dy(yc);
    rmsnorm_cpu({x.data(), w.data(), DType::F16, yc.data(), rows, dim, 1e-5f}, pool);
    rmsnorm_cuda({dx.as<float>(), dw.p, DType::F16, dy.as<float>(), rows, dim, 1e-5f}, nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-6);
  }
  {
    const int64_t rows = 9, ffn = 1000;
    const auto gu = random_floats(size_t(rows * 2 * ffn), 4, 2.0f);
    std::vector<float> hc(size_t(rows * ffn), kNaN);
    Dev dgu(gu), dh(hc);
    swiglu_cpu({gu.data(), hc.data(), rows, ffn}, pool);
    swiglu_cuda({dgu.as<float>(), dh.as<float>(), rows, ffn}, nullptr);
    sync_ok();
    const auto hg = dh.get<float>();
    CHECK(rel_l2(hg.data(), hc.data(), hc.size()) < 1e-6);
  }
  {
    const int64_t batch = 2, chunk = 5, hd = 128, nrot = 12, width = 16 * hd;
    auto qc = random_floats(size_t(batch * chunk * width), 5);
    std::vector<float> inv(size_t(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) inv[size_t(i)] = std::pow(500000.0f, -2.0f * float(i) / float(hd));
    std::vector<int32_t> start = {0, 3000};
    Dev dq(qc), dinv(inv), ds(start);
    rope_cpu({qc.data(), inv.data(), start.data(), batch, chunk, width, nrot, hd, 1.0f}, pool);
    rope_cuda({dq.as<float>(), dinv.as<float>(), ds.as<int32_t>(), batch, chunk, width, nrot, hd, 1.0f}, nullptr);
    sync_ok();
    const auto qg = dq.get<float>();
    CHECK(rel_l2(qg.data(), qc.data(), qc.size()) < 1e-5);
  }
}

TEST_CASE("cuda: kv_write and attention match the CPU kernels (GQA, long context, padding rows, every cache dtype)") {
  if (skip_without_gpu()) return;
  for (DType ct : {DType::F32, DType::BF16, DType::F16})
    for (int64_t hd : {64, 128}) {
      CAPTURE(std::string(dtype_name(ct)));
      CAPTURE(hd);
      const int64_t batch = 2, chunk = 4, S = 1500, H = 8, KVH = 2, width = (H + 2 * KVH) * hd;
      ThreadPool pool(2, uint64_t(S + hd));
      std::vector<int32_t> start = {1200, 0}, valid = {3, 4};
      const auto cache0 = as_dtype(random_floats(size_t(batch * S * KVH * hd), 7), ct);
      auto kc = cache0, vc = as_dtype(random_floats(size_t(batch * S * KVH * hd), 8), ct);
      const auto qkv = random_floats(size_t(batch * chunk * width), 9);
      Dev dk(kc), dv(vc), dqkv(qkv), ds(start), dn(valid);
      kv_write_cpu({qkv.data(), start.data(), valid.data(), kc.data(), vc.data(), ct, batch, chunk, S, H, KVH, hd}, pool);
      kv_write_cuda({dqkv.as<float>(), ds.as<int32_t>(), dn.as<int32_t>(), dk.p, dv.p, ct, batch, chunk, S, H, KVH, hd},
                    nullptr);
      sync_ok();
      CHECK(dk.get<uint8_t>() == kc);
      CHECK(dv.get<uint8_t>() == vc);
      std::vector<float> oc(size_t(batch * chunk * H * hd), kNaN);
      Dev dout(oc);
      const float scale = 1.0f / std::sqrt(float(hd));
      attention_cpu({qkv.data(), kc.data(), vc.data(), ct, start.data(), valid.data(), oc.data(), batch, chunk, S, H, KVH,
                     hd, scale},
                    pool);
      attention_cuda({dqkv.as<float>(), dk.p, dv.p, ct, ds.as<int32_t>(), dn.as<int32_t>(), dout.as<float>(), batch, chunk,
                      S, H, KVH, hd, scale},
                     nullptr);
      sync_ok();
      const auto og = dout.get<float>();
      CHECK(rel_l2(og.data(), oc.data(), oc.size()) < 1e-5);
    }
}

TEST_CASE("cuda: head_matmul, MLA and MoE kernels match the CPU kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, 8192);
  uint32_t seed = 300;
  {
    const int64_t rows = 5, heads = 16, k = 128, m = 512;
    const auto x = random_floats(size_t(rows * heads * k), seed++);
    const auto w = as_dtype(random_floats(size_t(heads * m * k), seed++, 0.05f), DType::BF16);
    std::vector<float> yc(size_t(rows * heads * m), kNaN);
    Dev dx(x), dw(w), dy(yc);
    head_matmul_cpu({x.data(), w.data(), DType::BF16, yc.data(), rows, heads, k, m, nullptr, 1}, pool);
    head_matmul_cuda({dx.as<float>(), dw.p, DType::BF16, dy.as<float>(), rows, heads, k, m, nullptr, 1}, nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-5);
  }
  for (DType ct : {DType::F32, DType::BF16}) {
    CAPTURE(std::string(dtype_name(ct)));
    const int64_t batch = 2, chunk = 3, S = 700, H = 16, rank = 512, rope = 64, rows = batch * chunk;
    std::vector<int32_t> start = {650, 0}, valid = {3, 2};
    auto cache = as_dtype(random_floats(size_t(batch * S * (rank + rope)), seed++), ct);
    const auto ckv = random_floats(size_t(rows * rank), seed++), kpe = random_floats(size_t(rows * rope), seed++);
    Dev dc(cache), dckv(ckv), dkpe(kpe), ds(start), dn(valid);
    mla_kv_write_cpu({ckv.data(), kpe.data(), start.data(), valid.data(), cache.data(), ct, batch, chunk, S, rank, rope}, pool);
    mla_kv_write_cuda({dckv.as<float>(), dkpe.as<float>(), ds.as<int32_t>(), dn.as<int32_t>(), dc.p, ct, batch, chunk, S,
                       rank, rope},
                      nullptr);
    sync_ok();
    CHECK(dc.get<uint8_t>() == cache);
    const auto ql = random_floats(size_t(rows * H * rank), seed++, 0.05f), qp = random_floats(size_t(rows * H * rope), seed++);
    std::vector<float> oc(size_t(rows * H * rank), kNaN);
    Dev dql(ql), dqp(qp), dout(oc);
    mla_attention_cpu({ql.data(), qp.data(), cache.data(), ct, start.data(), valid.data(), oc.data(), batch, chunk, S, H,
                       rank, rope, 0.07f},
                      pool);
    mla_attention_cuda({dql.as<float>(), dqp.as<float>(), dc.p, ct, ds.as<int32_t>(), dn.as<int32_t>(), dout.as<float>(),
                        batch, chunk, S, H, rank, rope, 0.07f},
                       nullptr);
    sync_ok();
    const auto og = dout.get<float>();
    CHECK(rel_l2(og.data(), oc.data(), oc.size()) < 1e-5);
  }
  for (int64_t method = 0; method < 3; ++method) {
    CAPTURE(method);
    const int64_t rows = 7, dim = 256, E = 64, K = 6, F = 96;
    const auto h = random_floats(size_t(rows * dim), seed++);
    const auto gate = random_floats(size_t(E * dim), seed++, 0.1f), bias = random_floats(size_t(E), seed++, 0.1f);
    std::vector<int32_t> ids_c(size_t(rows * K), -7);
    std::vector<float> w_c(size_t(rows * K), kNaN);
    Dev dh(h), dg(gate), db(bias), dids(ids_c), dw(w_c);
    MoeRouteArgs rc{h.data(), gate.data(), DType::F32, bias.data(), DType::F32, ids_c.data(), w_c.data(), rows, dim, E, K,
                    MoeTopk(method), method == 2 ? MoeScoring::kSigmoid : MoeScoring::kSoftmax, 8, 3, method == 2, 2.5f,
                    nullptr, 1};
    moe_route_cpu(rc, pool);
    MoeRouteArgs rg = rc;
    rg.h = dh.as<float>();
    rg.gate = dg.p;
    rg.bias = db.p;
    rg.ids = dids.as<int32_t>();
    rg.weights = dw.as<float>();
    moe_route_cuda(rg, nullptr);
    sync_ok();
    CHECK(dids.get<int32_t>() == ids_c);
    const auto wg = dw.get<float>();
    CHECK(rel_l2(wg.data(), w_c.data(), w_c.size()) < 1e-5);
    const auto wgu = as_dtype(random_floats(size_t(E * 2 * F * dim), seed++, 0.05f), DType::BF16);
    const auto wdown = as_dtype(random_floats(size_t(E * dim * F), seed++, 0.05f), DType::BF16);
    auto yc = random_floats(size_t(rows * dim), seed++);
    std::vector<float> ws(size_t(rows * K * F), kNaN);
    Dev dgu(wgu), ddown(wdown), dy(yc), dws(ws);
    moe_experts_cpu({h.data(), ids_c.data(), w_c.data(), wgu.data(), wdown.data(), DType::BF16, yc.data(), ws.data(), rows,
                     dim, E, F, K, nullptr, 1},
                    pool);
    moe_experts_cuda({dh.as<float>(), dids.as<int32_t>(), dw.as<float>(), dgu.p, ddown.p, DType::BF16, dy.as<float>(),
                      dws.as<float>(), rows, dim, E, F, K, nullptr, 1},
                     nullptr);
    sync_ok();
    const auto yg = dy.get<float>();
    CHECK(rel_l2(yg.data(), yc.data(), yc.size()) < 1e-5);
  }
}

TEST_CASE("cuda: fixtures end to end match the CPU backend, and graphs equal stream mode bit for bit") {
  if (skip_without_gpu()) return;
  TempDir d;
  std::vector<std::pair<std::string, std::string>> fixtures;
  for (const std::string& n : kiln::test::fixture_names("llama")) fixtures.push_back({"llama", n});
  for (const std::string& n : kiln::test::fixture_names("deepseek")) fixtures.push_back({"deepseek", n});
  for (const auto& fam_name : fixtures) {
    for (const char* dtype : {"f32", "bf16"}) {
    const std::string family = fam_name.first, name = fam_name.second;
      CAPTURE(name);
      CAPTURE(std::string(dtype));
      CompileOptions o;
      o.model_dir = kiln::test::fixture(name, family);
      o.output = d / (name + dtype + ".kplan");
      o.dtype = dtype;
      o.max_seq = 64;
      o.chunk = 8;
      compile_model(o);
      auto plan = Plan::load_file(o.output);
      REQUIRE(plan.is_ok());
      const auto ref = kiln::test::load_reference(o.model_dir);
      std::vector<std::vector<float>> logits;
      std::vector<std::vector<int32_t>> tokens;
      for (const char* dev : {"cpu", "cuda", "cuda-stream"}) {
        ContextOptions co;
        co.device = std::string(dev) == "cpu" ? "cpu" : "cuda";
        co.use_graphs = std::string(dev) != "cuda-stream";
        auto ctx = Context::create(plan.value(), co);
        REQUIRE_MESSAGE(ctx.is_ok(), ctx.status().message());
        std::vector<float> l(ref.logits.size(), kNaN);
        REQUIRE(ctx.value()->score(ref.input_ids.data(), ref.rows, ref.tokens, l.data()).is_ok());
        const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
        std::vector<int32_t> out(static_cast<size_t>(n_new));
        int64_t n = 0;
        REQUIRE(ctx.value()->generate(ref.prompt_ids.data(), int64_t(ref.prompt_ids.size()), n_new, SamplingParams{}, -1,
                                      out.data(), &n, nullptr).is_ok());
        logits.push_back(std::move(l));
        tokens.push_back(std::move(out));
      }
      const double err = rel_l2(logits[1].data(), ref.logits.data(), ref.logits.size());
      // bf16: DeepSeek's tiny random routers flip some experts under rounding (see test_parity).
      CHECK(err <= (std::string(dtype) == "f32" ? 1e-4 : family == "deepseek" ? 5e-2 : 2e-2));
      if (std::string(dtype) == "f32") CHECK(tokens[1] == tokens[0]);
      CHECK(std::memcmp(logits[1].data(), logits[2].data(), logits[1].size() * sizeof(float)) == 0);
      CHECK(tokens[1] == tokens[2]);
      MESSAGE(name << " " << dtype << " on cuda: rel L2 " << err);
    }
  }
}

TEST_CASE("cuda: a CPU-only plan is refused with a clear error") {
  if (skip_without_gpu()) return;
  TempDir d;
  CompileOptions o;
  o.model_dir = kiln::test::fixture("gqa_f32");
  o.output = d / "cpu.kplan";
  o.target = "cpu";
  compile_model(o);
  auto plan = Plan::load_file(o.output);
  REQUIRE(plan.is_ok());
  ContextOptions co;
  co.device = "cuda";
  auto ctx = Context::create(plan.value(), co);
  REQUIRE_FALSE(ctx.is_ok());
  CHECK(ctx.status().message().find("not compiled for CUDA") != std::string::npos);
}
