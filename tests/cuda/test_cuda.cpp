// CUDA backend tests: every CUDA kernel against its CPU twin on fresh random inputs with
// poisoned outputs, the fixtures end to end on the GPU, and graph replay against stream mode
// bit for bit. Without a usable GPU each test prints "SKIPPED: no CUDA device" and returns;
// ctest reports those as skipped (tests/CMakeLists.txt), never as passed.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "compiler/compile.h"
#include "kernels/cuda/kernels_cuda.h"
#include "runtime/context.h"
#include "runtime/cublaslt.h"
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

// A fixture compiled to a plan in `d` (max_seq 64) and loaded.
std::shared_ptr<const Plan> compile_plan(const TempDir& d, const std::string& name, const std::string& family,
                                         const std::string& dtype, int64_t chunk, int64_t batch = 1) {
  CompileOptions o;
  o.model_dir = kiln::test::fixture(name, family);
  o.output = d / (name + "-" + dtype + "-" + std::to_string(chunk) + "-" + std::to_string(batch) + ".kplan");
  o.dtype = dtype;
  o.max_seq = 64;
  o.chunk = chunk;
  o.batch = batch;
  compile_model(o);
  auto plan = Plan::load_file(o.output);
  REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
  return plan.take();
}

std::vector<uint8_t> as_dtype(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  convert_f32_to(v.data(), t, out.data(), v.size());
  return out;
}

}  // namespace

TEST_CASE("cuda: matmul (GEMV, split-K GEMV and tiled paths) matches the CPU kernel for every dtype, with bias, accumulate and padding rows") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, matmul_scratch_floats(4096));
  uint32_t seed = 100;
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t rows : {1, 3, 8, 37, 128})
      for (int64_t k : {64, 70, 1040, 4096}) {
        CAPTURE(std::string(dtype_name(wt)));
        CAPTURE(rows);
        CAPTURE(k);
        // GEMVs split k over 2 warps per row for k 1040 (4 rows per block) and 4 for k 4096 (2 rows
        // per block): 301 rows leave the last block partly empty.
        const int64_t m = k >= 1040 ? 301 : 300, batch = rows == 128 ? 2 : 1;
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

// The fused decode GEMVs against the CPU's separate kernels: RMSNorm as a prologue, SwiGLU as an
// epilogue, and both; padding rows stay unwritten.
TEST_CASE("cuda: decode GEMVs with RMSNorm and/or SwiGLU fused match the CPU's separate kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, matmul_scratch_floats(4096));
  uint32_t seed = 700;
  for (DType wt : {DType::BF16, DType::F16})
    for (int64_t rows : {1, 2, 3, 8})
      for (int64_t k : {64, 70, 4096})
        for (int mode = 0; mode < 3; ++mode) {  // 0: norm + GEMV, 1: GEMV + SwiGLU, 2: all three
          CAPTURE(std::string(dtype_name(wt)));
          CAPTURE(rows);
          CAPTURE(k);
          CAPTURE(mode);
          const bool norm = mode != 1, swiglu = mode != 0;
          const int64_t ffn = 300, m = 2 * ffn, batch = rows == 8 ? 2 : 1, chunk = rows / batch;
          const auto x = random_floats(size_t(rows * k), seed++, 2.0f);
          const auto wn = as_dtype(random_floats(size_t(k), seed++), wt);
          const auto w = as_dtype(random_floats(size_t(m * k), seed++, 0.05f), wt);
          std::vector<int32_t> valid = {int32_t(chunk), int32_t(chunk / 2)};
          valid.resize(size_t(batch));
          std::vector<float> xn = x, gu(size_t(rows * m), kNaN), hc(size_t(rows * ffn), kNaN);
          if (norm) rmsnorm_cpu({x.data(), wn.data(), wt, xn.data(), rows, k, 1e-5f}, pool);
          matmul_cpu({xn.data(), w.data(), wt, nullptr, wt, gu.data(), rows, k, m, false, valid.data(), batch}, pool);
          if (swiglu) swiglu_cpu({gu.data(), hc.data(), rows, ffn}, pool);
          const std::vector<float>& want = swiglu ? hc : gu;
          const int64_t width = swiglu ? ffn : m;
          Dev dx(x), dwn(wn), dw(w), dv(valid), dout(std::vector<float>(want.size(), kNaN));
          const MatmulArgs g{dx.as<float>(), dw.p, wt, nullptr, wt, swiglu ? nullptr : dout.as<float>(), rows, k, m, false,
                             dv.as<int32_t>(), batch};
          const GemvNorm gn{dwn.p, wt, 1e-5f};
          REQUIRE((swiglu ? matmul_swiglu_cuda_supported(g) : matmul_norm_cuda_supported(g)));
          if (swiglu) matmul_swiglu_cuda(g, dout.as<float>(), nullptr, norm ? &gn : nullptr);
          else matmul_norm_cuda(g, gn, nullptr);
          sync_ok();
          const auto got = dout.get<float>();
          std::vector<float> a1, a2;
          for (size_t i = 0; i < got.size(); ++i) {
            const int64_t r = int64_t(i) / width;
            if ((r % chunk) < valid[size_t(r / chunk)]) {
              a1.push_back(got[i]);
              a2.push_back(want[i]);
            } else {
              REQUIRE(std::isnan(got[i]));
            }
          }
          CHECK(std::count_if(a1.begin(), a1.end(), [](float v) { return !std::isfinite(v); }) == 0);
          CHECK(rel_l2(a1.data(), a2.data(), a1.size()) < 1e-5);
        }
  MatmulArgs acc{};
  acc.rows = 1, acc.m = 600, acc.w_dtype = DType::BF16, acc.accumulate = true;
  CHECK_FALSE(matmul_swiglu_cuda_supported(acc));  // accumulation (a residual add) is not fused
}

// Loading needs no GPU, so this runs in CI too. A CUDA toolkit with cuBLASLt (KILN_EXPECT_CUBLASLT,
// set by tests/CMakeLists.txt when CMake finds CUDA::cublasLt) must load; either way the switch
// and a missing file give the errors a user would need.
TEST_CASE("cuda: cuBLASLt loads by dlopen or says exactly why not, and KILN_CUBLASLT switches it off or names the file") {
  kiln::test::ScopedEnv unset("KILN_CUBLASLT", nullptr);
  auto probe = CublasLt::probe();
#if KILN_EXPECT_CUBLASLT
  REQUIRE_MESSAGE(probe.is_ok(), probe.status().message());
  CHECK(probe.value().rfind("cuBLASLt ", 0) == 0);
  MESSAGE(probe.value());
#else
  REQUIRE_FALSE(probe.is_ok());
  CHECK(probe.status().message().find("tried:") != std::string::npos);
#endif
  {
    kiln::test::ScopedEnv off("KILN_CUBLASLT", "off");
    auto p = CublasLt::probe();
    REQUIRE_FALSE(p.is_ok());
    CHECK(p.status().code() == StatusCode::kUnsupported);
    CHECK(p.status().message().find("KILN_CUBLASLT=off") != std::string::npos);
  }
  {
    kiln::test::ScopedEnv bad("KILN_CUBLASLT", "/nonexistent/libcublasLt.so.13");
    auto p = CublasLt::probe();
    REQUIRE_FALSE(p.is_ok());
    CHECK(p.status().message().find("/nonexistent/libcublasLt.so.13") != std::string::npos);
  }
  {
    // A real shared library that is not cuBLASLt: refused, naming the missing entry points.
    kiln::test::ScopedEnv other("KILN_CUBLASLT", "libm.so.6");
    auto p = CublasLt::probe();
    REQUIRE_FALSE(p.is_ok());
    CHECK(p.status().message().find("lacks cublasLtCreate") != std::string::npos);
  }
}

// Sizing needs no GPU: a host that hands kiln its device memory must get room for the cuBLASLt
// scratch exactly when the plan has prefill-sized bf16/f16 GEMMs.
TEST_CASE("cuda: device bytes include the cuBLASLt scratch only for plans with prefill-sized bf16/f16 GEMMs") {
  TempDir d;
  auto bytes = [&](const char* dtype, int64_t chunk) {
    const auto plan = compile_plan(d, "gqa_f32", "llama", dtype, chunk);
    const Plan& p = *plan;
    uint64_t weights = 0;
    for (const SegmentInfo& s : p.segments()) weights = std::max(weights, s.offset + s.size);
    return std::make_pair(cuda_device_bytes(p), weights + p.memory().arena_bytes + p.memory().kv_bytes + p.memory().request_bytes);
  };
  // Beyond weights, arena and KV cache: alignment, state and the launch scratch (the split-K
  // decode attention's partials, which do not depend on the weight dtype, and the GEMM scratch).
  auto extra = [](std::pair<uint64_t, uint64_t> v) { return int64_t(v.first) - int64_t(v.second); };
  const auto bf16_8 = bytes("bf16", 8), f32_8 = bytes("f32", 8), bf16_32 = bytes("bf16", 32), f32_32 = bytes("f32", 32);
  // chunk 8: every GEMM is a GEMV; f32 weights never go to cuBLASLt.
  CHECK(extra(bf16_8) == extra(f32_8));
  CHECK(extra(f32_32) < int64_t(kCublasLtWorkspaceBytes));
  // chunk 32: the workspace plus x packed to bf16 (32 rows of the widest input, at least 64).
  CHECK(extra(bf16_32) - extra(f32_32) >= int64_t(kCublasLtWorkspaceBytes) + 32 * 64 * 2);
  CHECK(extra(bf16_32) - extra(f32_32) < int64_t(kCublasLtWorkspaceBytes) + (1 << 20));
}

// The library GEMM rounds x to the weight dtype, then accumulates in f32: against the CPU kernel
// fed the same rounded x it must agree to f32 accumulation order; against the exact f32 product,
// to the rounding of x. Padding rows get y = 0 (x zeroed, no bias), or keep y when accumulating.
TEST_CASE("cuda: cuBLASLt prefill GEMM matches the CPU kernel on rounded x, with bias, accumulate and padding rows") {
  if (skip_without_gpu()) return;
  auto lt = CublasLt::open();
  REQUIRE_MESSAGE(lt.is_ok(), lt.status().message());
  ThreadPool pool(2, matmul_scratch_floats(4096));
  uint32_t seed = 900;
  for (DType wt : {DType::BF16, DType::F16})
    for (int64_t rows : {9, 64, 300})
      for (int64_t k : {64, 72, 4096}) {
        CAPTURE(std::string(dtype_name(wt)));
        CAPTURE(rows);
        CAPTURE(k);
        const int64_t m = 520, batch = rows == 300 ? 3 : 1, chunk = rows / batch;
        const auto x = random_floats(size_t(rows * k), seed++);
        const auto w = as_dtype(random_floats(size_t(m * k), seed++, 0.05f), wt);
        const auto bias = as_dtype(random_floats(size_t(m), seed++), wt);
        const auto y0 = random_floats(size_t(rows * m), seed++);
        std::vector<int32_t> valid = {int32_t(chunk), int32_t(chunk / 2), 0};
        valid.resize(size_t(batch));
        std::vector<float> xr(x.size());  // x rounded to the weight dtype, as the library path does
        convert_to_f32(as_dtype(x, wt).data(), wt, xr.data(), xr.size());
        for (int acc = 0; acc < 2; ++acc) {
          std::vector<float> yc = acc ? y0 : std::vector<float>(y0.size(), kNaN), yexact = yc;
          const std::vector<float> poison(y0.size(), kNaN);
          Dev dx(x), dw(w), db(bias), dy(acc ? y0 : poison), dv(valid);
          Dev x16{std::vector<uint16_t>(size_t(rows * k))}, ws{std::vector<uint8_t>(kCublasLtWorkspaceBytes)};
          matmul_cpu({xr.data(), w.data(), wt, bias.data(), wt, yc.data(), rows, k, m, acc == 1, valid.data(), batch}, pool);
          matmul_cpu({x.data(), w.data(), wt, bias.data(), wt, yexact.data(), rows, k, m, acc == 1, valid.data(), batch}, pool);
          MatmulArgs g{dx.as<float>(), dw.p, wt, db.p, wt, dy.as<float>(), rows, k, m, acc == 1, dv.as<int32_t>(), batch};
          REQUIRE(library_gemm_eligible(g));
          auto gemm = lt.value()->bind(g, x16.p, ws.p, kCublasLtWorkspaceBytes);
          REQUIRE_MESSAGE(gemm.is_ok(), gemm.status().message());
          REQUIRE(gemm.value()(nullptr).is_ok());
          sync_ok();
          const auto yg = dy.get<float>();
          std::vector<float> g1, c1, e1;
          for (size_t i = 0; i < yg.size(); ++i) {
            const int64_t r = int64_t(i) / m;
            if ((r % chunk) < valid[size_t(r / chunk)]) {
              g1.push_back(yg[i]);
              c1.push_back(yc[i]);
              e1.push_back(yexact[i]);
            } else {
              REQUIRE(yg[i] == (acc ? y0[i] : 0.0f));
            }
          }
          CHECK(rel_l2(g1.data(), c1.data(), g1.size()) < 1e-5);
          CHECK(rel_l2(g1.data(), e1.data(), g1.size()) < (wt == DType::BF16 ? 1e-2 : 2e-3));
        }
      }
}

TEST_CASE("cuda: greedy sample matches the CPU kernel (vocab 128256, ties, NaN, -inf rows, idle rows, clamped n_valid)") {
  if (skip_without_gpu()) return;
  const int64_t batch = 5, chunk = 3, vocab = 128256;
  auto logits = random_floats(size_t(batch * chunk * vocab), 77, 3.0f);
  const float nan = std::nanf("");
  auto row = [&](int64_t b, int64_t t) { return logits.data() + (b * chunk + t) * vocab; };
  // row 0: a tie at the maximum far apart (the lower id wins); row 1: NaN first and a maximum at
  // the end; row 2: all NaN (0); row 3: -inf after a NaN (the first -inf, id 1); row 4: idle.
  row(0, 2)[70000] = 50.0f, row(0, 2)[9] = 50.0f;
  row(1, 0)[0] = nan, row(1, 0)[vocab - 1] = 60.0f;
  std::fill(row(2, 1), row(2, 1) + vocab, nan);
  std::fill(row(3, 2), row(3, 2) + vocab, -INFINITY);
  row(3, 2)[0] = nan;
  const std::vector<int32_t> valid = {3, 1, 2, 7, 0};
  std::vector<int32_t> want(batch, 99);
  ThreadPool pool(2, uint64_t(2 * vocab));
  sample_cpu({logits.data(), valid.data(), nullptr, want.data(), batch, chunk, vocab}, pool);
  CHECK(want == std::vector<int32_t>{9, int32_t(vocab - 1), 0, 1, -1});
  Dev dl(logits), dv(valid), dn(std::vector<int32_t>(batch, 99));
  sample_cuda({dl.as<float>(), dv.as<int32_t>(), nullptr, dn.as<int32_t>(), batch, chunk, vocab}, nullptr);
  sync_ok();
  CHECK(dn.get<int32_t>() == want);
}

// Temperature sampling on the device against the CPU kernel (which is the host's sample_token):
// top-k from 1 to 1024 (ties at the boundary, a repeated maximum), top-p on and off, many
// (seed, step) draws, a small vocabulary with top_k 0 (every token a candidate), greedy rows
// mixed in, and top_k above the device's limit (-1: the host samples).
TEST_CASE("cuda: sampling with temperature, top-k and top-p picks the CPU kernel's tokens") {
  if (skip_without_gpu()) return;
  for (const int64_t vocab : {int64_t(128256), int64_t(300)}) {
    CAPTURE(vocab);
    const int64_t batch = 64;
    auto logits = random_floats(size_t(batch * vocab), 91, 2.5f);
    for (int64_t b = 0; b < batch; ++b) {
      float* r = logits.data() + b * vocab;
      if (b % 4 == 0) {  // a repeated maximum: 40 ties above every other logit
        for (int64_t j = 0; j < 40; ++j) r[(j * 97 + b) % vocab] = 30.0f;
      } else if (b % 4 == 1) {  // 60 ties around rank 1000 (or the middle of a small row), straddling top_k
        std::vector<float> sorted(r, r + vocab);
        const size_t at = size_t(std::min<int64_t>(1000, vocab / 2));
        std::nth_element(sorted.begin(), sorted.begin() + long(at), sorted.end(), std::greater<float>());
        for (int64_t j = 0; j < 60; ++j) r[(j * 131 + b) % vocab] = sorted[at];
      } else if (b % 4 == 2 && b % 8 == 2) {  // every logit equal, as -0 and +0: all keys tie
        for (int64_t j = 0; j < vocab; ++j) r[j] = (j % 2) ? -0.0f : 0.0f;
      }
    }
    std::vector<int32_t> valid(size_t(batch), 1);
    std::vector<SampleParams> params(static_cast<size_t>(batch));
    const int32_t ks[] = {1, 2, 7, 40, 41, 100, 1000, 1024, 0};
    for (int64_t b = 0; b < batch; ++b)
      params[size_t(b)] = {b % 9 == 8 && vocab > 1024 ? 0.7f : (b % 11 == 0 ? 0.0f : 0.3f + 0.1f * float(b % 13)),
                           ks[b % 9], (b % 3 == 0) ? 1.0f : 0.5f + 0.04f * float(b % 12), 0, uint64_t(1234 + b),
                           uint64_t(b * 7)};
    ThreadPool pool(2, uint64_t(2 * vocab));
    std::vector<int32_t> want(size_t(batch), 99);
    sample_cpu({logits.data(), valid.data(), params.data(), want.data(), batch, 1, vocab}, pool);
    std::vector<int32_t> pw(params.size() * 8);
    std::memcpy(pw.data(), params.data(), params.size() * sizeof(SampleParams));
    Dev dl(logits), dv(valid), dp(pw), dn(std::vector<int32_t>(size_t(batch), 99));
    sample_cuda({dl.as<float>(), dv.as<int32_t>(), dp.as<SampleParams>(), dn.as<int32_t>(), batch, 1, vocab}, nullptr);
    sync_ok();
    const auto got = dn.get<int32_t>();
    for (int64_t b = 0; b < batch; ++b) {
      CAPTURE(b);
      const SampleParams& p = params[size_t(b)];
      const int64_t k = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
      if (p.temperature > 0.0f && k > kSampleMaxTopK) CHECK(got[size_t(b)] == -1);
      else CHECK(got[size_t(b)] == want[size_t(b)]);
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

// RoPE + KV write fused (the pair the backend binds as one launch) against the CPU's rope then
// kv_write: the rotated qkv buffer and both caches, with padding rows, a row reaching max_seq and
// every cache dtype.
TEST_CASE("cuda: the fused RoPE + KV write matches the CPU's rope then kv_write") {
  if (skip_without_gpu()) return;
  for (DType ct : {DType::F32, DType::BF16, DType::F16}) {
    CAPTURE(std::string(dtype_name(ct)));
    const int64_t batch = 3, chunk = 5, S = 64, H = 8, KVH = 2, hd = 64, width = (H + 2 * KVH) * hd;
    ThreadPool pool(2);
    std::vector<int32_t> start = {0, 40, 61}, valid = {5, 2, 5};  // row 2 reaches max_seq after 3 tokens
    std::vector<float> inv(size_t(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) inv[size_t(i)] = std::pow(500000.0f, -2.0f * float(i) / float(hd));
    auto qc = random_floats(size_t(batch * chunk * width), 33);
    auto kc = as_dtype(random_floats(size_t(batch * S * KVH * hd), 34), ct), vc = kc;
    Dev dq(qc), dinv(inv), ds(start), dn(valid), dk(kc), dv(vc);
    rope_cpu({qc.data(), inv.data(), start.data(), batch, chunk, width, H + KVH, hd, 1.0f}, pool);
    kv_write_cpu({qc.data(), start.data(), valid.data(), kc.data(), vc.data(), ct, batch, chunk, S, H, KVH, hd}, pool);
    const RopeArgs r{dq.as<float>(), dinv.as<float>(), ds.as<int32_t>(), batch, chunk, width, H + KVH, hd, 1.0f};
    const KvWriteArgs w{dq.as<float>(), ds.as<int32_t>(), dn.as<int32_t>(), dk.p, dv.p, ct, batch, chunk, S, H, KVH, hd};
    REQUIRE(rope_kv_write_cuda_supported(r, w));
    rope_kv_write_cuda(r, w, nullptr);
    sync_ok();
    const auto qg = dq.get<float>();
    CHECK(rel_l2(qg.data(), qc.data(), qc.size()) < 1e-5);
    for (const auto& [dev, host] : {std::make_pair(&dk, &kc), std::make_pair(&dv, &vc)}) {
      const auto got = dev->get<uint8_t>();
      std::vector<float> g(host->size() / dtype_size(ct)), c(g.size());
      convert_to_f32(got.data(), ct, g.data(), g.size());
      convert_to_f32(host->data(), ct, c.data(), c.size());
      // GPU and CPU sin/cos differ in the last bits, which can flip a 16-bit rounding of a rotated
      // k now and then (2^-8 relative for bf16); a wrong position would be off by order 1.
      CHECK(rel_l2(g.data(), c.data(), c.size()) < (ct == DType::F32 ? 1e-5 : ct == DType::F16 ? 1e-4 : 5e-4));
    }
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

namespace {

// One attention case over a random cache: inputs, the CPU kernel's output, and the GPU output of
// `run` (given device arguments with a NaN-poisoned output), checked finite and within 1e-5.
struct AttentionCase {
  int64_t batch, chunk, heads, kv_heads, hd, max_seq;
  std::vector<int32_t> start, valid;
};

template <typename Run>
void check_attention_case(const AttentionCase& sh, DType ct, uint32_t& seed, const Run& run) {
  CAPTURE(std::string(dtype_name(ct)));
  CAPTURE(sh.chunk);
  CAPTURE(sh.heads);
  CAPTURE(sh.kv_heads);
  CAPTURE(sh.hd);
  CAPTURE(sh.max_seq);
  const int64_t rows = sh.batch * sh.chunk, width = (sh.heads + 2 * sh.kv_heads) * sh.hd;
  const auto kc = as_dtype(random_floats(size_t(sh.batch * sh.max_seq * sh.kv_heads * sh.hd), seed++), ct);
  const auto vc = as_dtype(random_floats(size_t(sh.batch * sh.max_seq * sh.kv_heads * sh.hd), seed++), ct);
  const auto qkv = random_floats(size_t(rows * width), seed++, 2.0f);
  std::vector<float> oc(size_t(rows * sh.heads * sh.hd), kNaN);
  ThreadPool pool(2, uint64_t(sh.max_seq + sh.hd));
  const float scale = 1.0f / std::sqrt(float(sh.hd));
  attention_cpu({qkv.data(), kc.data(), vc.data(), ct, sh.start.data(), sh.valid.data(), oc.data(), sh.batch, sh.chunk,
                 sh.max_seq, sh.heads, sh.kv_heads, sh.hd, scale},
                pool);
  Dev dk(kc), dv(vc), dqkv(qkv), ds(sh.start), dn(sh.valid), dout(std::vector<float>(oc.size(), kNaN));
  run(AttentionArgs{dqkv.as<float>(), dk.p, dv.p, ct, ds.as<int32_t>(), dn.as<int32_t>(), dout.as<float>(), sh.batch,
                    sh.chunk, sh.max_seq, sh.heads, sh.kv_heads, sh.hd, scale});
  sync_ok();
  const auto og = dout.get<float>();
  CHECK(std::count_if(og.begin(), og.end(), [](float v) { return !std::isfinite(v); }) == 0);
  CHECK(rel_l2(og.data(), oc.data(), oc.size()) < 1e-5);
}

}  // namespace

// Tiled (flash) prefill attention over the cache against the CPU kernel: chunks of 16 to 130 rows
// (several 64-row query tiles, a partial last one), prompts continuing at a later position, GQA
// and MHA, head_dim 64 to 256, partial chunks (padding rows get zeros), an idle batch row, and
// rows whose position reaches max_seq (zeros, as on the CPU).
TEST_CASE("cuda: tiled prefill attention matches the CPU kernel (query tiles, continued prompts, GQA, padding rows)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 5000;
  const AttentionCase shapes[] = {
      {1, 130, 8, 2, 64, 512, {0}, {130}},                // three query tiles from position 0
      {2, 64, 32, 8, 128, 1024, {300, 0}, {64, 50}},      // a continued prompt; a partial chunk
      {3, 16, 4, 4, 96, 200, {190, 7, 0}, {16, 9, 0}},    // MHA, odd head count per tile; rows past max_seq; idle row
      {1, 70, 2, 1, 256, 300, {100}, {70}},               // the widest head
      {1, 512, 32, 8, 128, 2048, {0}, {512}},             // an 8B-shaped 512-token prefill chunk
  };
  for (DType ct : {DType::F32, DType::BF16})
    for (const AttentionCase& sh : shapes)
      check_attention_case(sh, ct, seed, [](const AttentionArgs& g) { attention_cuda(g, nullptr); });
}

// Split-K decode attention against the CPU kernel: group sizes 1 to 8 (3 runs in the 4-wide
// variant), head_dim 64 to 256, a context shorter than the split count, the last cache position,
// idle rows (zeros), and positions at or past max_seq (zeros, as on the CPU).
TEST_CASE("cuda: split-K decode attention matches the CPU kernel (GQA groups, head dims, idle rows, short and long context)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 4000;
  const AttentionCase shapes[] = {
      {1, 1, 32, 8, 64, 2048, {1023}, {1}},                  // Llama-3.2-1B decode at 1024 tokens
      {1, 1, 32, 8, 128, 2048, {127}, {1}},                  // Llama-3.1-8B decode at 128 tokens
      {3, 1, 6, 2, 128, 300, {0, 299, 5}, {1, 1, 0}},        // first token, last position, an idle row
      {2, 2, 8, 8, 64, 512, {40, 511}, {2, 2}},              // MHA; row 2 of batch 1 is past max_seq
      {1, 4, 24, 8, 96, 1000, {2}, {3}},                     // group of 3, odd head_dim, padding row
      {1, 1, 16, 2, 64, 4096, {4095}, {1}},                  // group of 8, a full long cache
      {2, 1, 8, 2, 256, 256, {100, 7}, {1, 1}},              // the widest head
  };
  for (DType ct : {DType::F32, DType::BF16})
    for (const AttentionCase& sh : shapes)
      check_attention_case(sh, ct, seed, [](const AttentionArgs& g) {
        const int splits = attention_cuda_splits(g);
        REQUIRE(splits >= 1);
        MESSAGE("splits " << splits);
        Dev scratch(std::vector<float>(attention_cuda_scratch_floats(g), kNaN));
        attention_split_cuda(g, scratch.as<float>(), nullptr);
        sync_ok();  // before scratch is freed
      });
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

// --- Diffusion kernels (kernels/cuda/diffusion.cu). Outputs start as NaN, so an element the
// kernel never writes fails the comparison (rel_l2 is NaN).

namespace {

// rel L2 of a device result against the CPU's, with every element required finite.
double diff_of(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  CHECK(std::count_if(gpu.begin(), gpu.end(), [](float v) { return !std::isfinite(v); }) == 0);
  return rel_l2(gpu.data(), cpu.data(), cpu.size());
}

// A normal draw around `mean` (statistics must not rely on zero-mean input).
std::vector<float> shifted(size_t n, uint32_t seed, float mean, float scale = 1.0f) {
  auto v = random_floats(n, seed, scale);
  for (float& x : v) x += mean;
  return v;
}

}  // namespace

TEST_CASE("cuda: layernorm matches the CPU kernel (odd widths, every weight dtype)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1000;
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t rows : {1, 7, 33})
      for (int64_t dim : {1, 77, 768, 1280}) {
        CAPTURE(std::string(dtype_name(wt)));
        CAPTURE(rows);
        CAPTURE(dim);
        const auto x = shifted(size_t(rows * dim), seed++, 3.0f, 2.0f);
        const auto w = as_dtype(shifted(size_t(dim), seed++, 1.0f, 0.2f), wt);
        const auto b = as_dtype(random_floats(size_t(dim), seed++, 0.2f), wt);
        std::vector<float> yc(x.size(), kNaN);
        Dev dx(x), dw(w), db(b), dy(yc);
        layernorm_cpu({x.data(), w.data(), b.data(), wt, yc.data(), rows, dim, 1e-5f}, pool);
        layernorm_cuda({dx.as<float>(), dw.p, db.p, wt, dy.as<float>(), rows, dim, 1e-5f}, nullptr);
        sync_ok();
        CHECK(diff_of(dy.get<float>(), yc) < 1e-5);
      }
}

TEST_CASE("cuda: group_norm matches the CPU kernel (groups of 1 to 40 channels, SiLU on and off)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1100;
  struct Shape {
    int64_t batch, pixels, channels, groups;
    bool silu;
  };
  for (DType wt : {DType::F32, DType::BF16})
    for (const Shape& s : {Shape{2, 64, 320, 32, true}, Shape{1, 37, 96, 32, false}, Shape{2, 4096, 64, 32, true},
                           Shape{1, 13, 6, 3, false}, Shape{2, 50, 40, 1, true}, Shape{1, 9, 1280, 32, true}}) {
      CAPTURE(std::string(dtype_name(wt)));
      CAPTURE(s.batch);
      CAPTURE(s.pixels);
      CAPTURE(s.channels);
      CAPTURE(s.groups);
      const auto x = shifted(size_t(s.batch * s.pixels * s.channels), seed++, -1.5f, 3.0f);
      const auto w = as_dtype(shifted(size_t(s.channels), seed++, 1.0f, 0.3f), wt);
      const auto b = as_dtype(random_floats(size_t(s.channels), seed++, 0.3f), wt);
      std::vector<float> yc(x.size(), kNaN);
      Dev dx(x), dw(w), db(b), dy(yc);
      group_norm_cpu({x.data(), w.data(), b.data(), wt, yc.data(), s.batch, s.pixels, s.channels, s.groups, s.silu, 1e-6f},
                     pool);
      group_norm_cuda({dx.as<float>(), dw.p, db.p, wt, dy.as<float>(), s.batch, s.pixels, s.channels, s.groups, s.silu,
                       1e-6f},
                      nullptr);
      sync_ok();
      CHECK(diff_of(dy.get<float>(), yc) < 1e-5);
    }
}

TEST_CASE("cuda: conv2d matches the CPU kernel (3x3, 1x1, stride 2, upsample, stems, epilogue, both tile sizes)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 1200;
  struct Shape {
    int64_t batch, h, w, cin, cout, k, stride, pad;
    bool upsample, bias, chan_add, residual;
    float out_scale;
  };
  const Shape shapes[] = {
      {2, 9, 11, 32, 40, 3, 1, 1, false, true, false, false, 1.0f},    // 3x3, vectorised path, small tiles
      {2, 9, 11, 32, 40, 3, 1, 1, false, true, true, true, 0.5f},      // ResNet conv2: chan_add + residual, scaled
      {1, 10, 7, 16, 24, 3, 2, 1, false, true, false, false, 1.0f},    // Downsample2D: stride 2, odd output
      {2, 5, 6, 16, 20, 3, 1, 1, true, true, false, false, 1.0f},      // Upsample2D: 2x nearest, then conv
      {2, 6, 5, 64, 24, 1, 1, 0, false, true, false, true, 1.0f},      // 1x1 skip conv + residual
      {1, 7, 9, 3, 8, 3, 1, 1, false, true, false, false, 1.0f},       // RGB stem: element gather path
      {1, 6, 4, 4, 12, 3, 1, 1, true, false, false, false, 1.0f},      // gather path with upsample, no bias
      {2, 64, 64, 16, 320, 3, 1, 1, false, true, true, false, 1.0f},   // 128x64 tiles, vectorised
      {2, 64, 64, 3, 320, 3, 1, 1, false, true, false, false, 1.0f},   // 128x64 tiles, gather
      {1, 8, 8, 320, 64, 3, 1, 1, false, true, false, false, 1.0f},    // K = 2880
      {1, 12, 10, 48, 70, 3, 2, 0, false, false, true, false, 2.0f},   // stride 2 without padding
  };
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (const Shape& s : shapes) {
      CAPTURE(std::string(dtype_name(wt)));
      CAPTURE(s.h);
      CAPTURE(s.w);
      CAPTURE(s.cin);
      CAPTURE(s.cout);
      CAPTURE(s.k);
      CAPTURE(s.stride);
      CAPTURE(s.upsample);
      const int64_t ho = conv2d_out_size(s.h, s.k, s.stride, s.pad, s.upsample);
      const int64_t wo = conv2d_out_size(s.w, s.k, s.stride, s.pad, s.upsample);
      ThreadPool pool(2, conv2d_scratch_floats(s.k, s.k, s.cin));
      const auto x = random_floats(size_t(s.batch * s.h * s.w * s.cin), seed++);
      const auto w = as_dtype(random_floats(size_t(s.cout * s.k * s.k * s.cin), seed++, 0.05f), wt);
      const auto bias = as_dtype(random_floats(size_t(s.cout), seed++, 0.5f), wt);
      const auto chan = random_floats(size_t(s.batch * s.cout), seed++);
      const auto res = random_floats(size_t(s.batch * ho * wo * s.cout), seed++);
      std::vector<float> yc(size_t(s.batch * ho * wo * s.cout), kNaN);
      Dev dx(x), dw(w), db(bias), dc(chan), dr(res), dy(yc);
      Conv2dArgs a{x.data(), w.data(), wt, s.bias ? bias.data() : nullptr, s.chan_add ? chan.data() : nullptr,
                   s.residual ? res.data() : nullptr, yc.data(), s.batch, s.h, s.w, s.cin, s.cout, s.k, s.k,
                   s.stride, s.pad, s.upsample, s.out_scale, ho, wo};
      conv2d_cpu(a, pool);
      Conv2dArgs g = a;
      g.x = dx.as<float>();
      g.w = dw.p;
      g.bias = s.bias ? db.p : nullptr;
      g.chan_add = s.chan_add ? dc.as<float>() : nullptr;
      g.residual = s.residual ? dr.as<float>() : nullptr;
      g.y = dy.as<float>();
      conv2d_cuda(g, nullptr);
      sync_ok();
      // f32 sums of up to 2880 products in a different order than the CPU's 16 lanes: each
      // side's rounding error is about eps·sqrt(K/2) ≈ 2e-6 relative.
      CHECK(diff_of(dy.get<float>(), yc) < 1e-5);
    }
}

TEST_CASE("cuda: activation, geglu, add and concat match the CPU kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1300;
  for (int64_t kind = 0; kind < 4; ++kind)
    for (bool in_place : {false, true}) {
      CAPTURE(kind);
      CAPTURE(in_place);
      const int64_t n = 5 * 1031;
      const auto x = random_floats(size_t(n), seed++, 3.0f);
      std::vector<float> yc(size_t(n), kNaN);
      Dev dx(x), dy(yc);
      activation_cpu({x.data(), yc.data(), n, Activation(kind)}, pool);
      activation_cuda({dx.as<float>(), in_place ? dx.as<float>() : dy.as<float>(), n, Activation(kind)}, nullptr);
      sync_ok();
      CHECK(diff_of((in_place ? dx : dy).get<float>(), yc) < 1e-6);
    }
  {
    const int64_t rows = 7, f = 1283;
    const auto x = random_floats(size_t(rows * 2 * f), seed++, 2.0f);
    std::vector<float> yc(size_t(rows * f), kNaN);
    Dev dx(x), dy(yc);
    geglu_cpu({x.data(), yc.data(), rows, f}, pool);
    geglu_cuda({dx.as<float>(), dy.as<float>(), rows, f}, nullptr);
    sync_ok();
    CHECK(diff_of(dy.get<float>(), yc) < 1e-6);
  }
  for (DType bt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t b_rows : {1, 5, 10})
      for (int mode : {0, 1, 2}) {  // out of place, in place, a absent (y = scale·b)
        const bool in_place = mode == 1, no_a = mode == 2;
        CAPTURE(std::string(dtype_name(bt)));
        CAPTURE(b_rows);
        CAPTURE(mode);
        const int64_t rows = 10, cols = 33;
        const auto x = random_floats(size_t(rows * cols), seed++);
        const auto b = as_dtype(random_floats(size_t(b_rows * cols), seed++), bt);
        std::vector<float> yc(x.size(), kNaN);
        Dev dx(x), db(b), dy(yc);
        add_cpu({no_a ? nullptr : x.data(), b.data(), bt, yc.data(), rows, cols, b_rows, 0.7f}, pool);
        add_cuda({no_a ? nullptr : dx.as<float>(), db.p, bt, in_place ? dx.as<float>() : dy.as<float>(), rows, cols,
                  b_rows, 0.7f},
                 nullptr);
        sync_ok();
        CHECK(diff_of((in_place ? dx : dy).get<float>(), yc) < 1e-6);
      }
  {
    const int64_t rows = 9, ca = 5, cb = 7;
    const auto a = random_floats(size_t(rows * ca), seed++), b = random_floats(size_t(rows * cb), seed++);
    std::vector<float> yc(size_t(rows * (ca + cb)), kNaN);
    Dev da(a), db(b), dy(yc);
    concat_cpu({a.data(), b.data(), yc.data(), rows, ca, cb}, pool);
    concat_cuda({da.as<float>(), db.as<float>(), dy.as<float>(), rows, ca, cb}, nullptr);
    sync_ok();
    CHECK(dy.get<float>() == yc);  // a copy: bit for bit
  }
}

TEST_CASE("cuda: sdpa matches the CPU kernel (causal and not, fused column windows, odd sizes, long keys)") {
  if (skip_without_gpu()) return;
  uint32_t seed = 1400;
  struct Shape {
    int64_t batch, lq, lk, heads, head_dim;
    bool causal, fused;  // fused: q, k, v are windows of one [q | k | v] buffer (self-attention)
    int64_t pad;         // extra columns before the windows (offsets not a multiple of 4 when odd)
  };
  const Shape shapes[] = {
      {1, 77, 77, 3, 64, true, true, 0},        // CLIP text encoder
      {2, 200, 200, 2, 40, false, true, 0},     // UNet self-attention, partial tiles
      {2, 130, 77, 2, 80, false, false, 0},     // UNet cross-attention
      {1, 70, 77, 2, 160, false, false, 4},     // head_dim 160
      {1, 65, 65, 2, 37, true, true, 1},        // odd head_dim and offsets: scalar loads
      {1, 100, 70, 1, 64, true, false, 0},      // causal with lq > lk
      {1, 64, 4096, 1, 64, false, false, 0},    // long key length
      {1, 50, 50, 1, 256, true, true, 0},       // the largest head_dim
      {2, 1, 3, 2, 8, false, false, 3},         // tiny
      {1, 90, 120, 2, 128, false, true, 0},     // head_dim 128 (the 8-column kernel)
      {1, 20, 0, 1, 64, false, false, 0},       // no keys: zeros, as on the CPU
  };
  for (const Shape& s : shapes) {
    CAPTURE(s.batch);
    CAPTURE(s.lq);
    CAPTURE(s.lk);
    CAPTURE(s.heads);
    CAPTURE(s.head_dim);
    CAPTURE(s.causal);
    const int64_t hw = s.heads * s.head_dim;
    SdpaArgs a{};
    a.batch = s.batch, a.lq = s.lq, a.lk = s.lk, a.heads = s.heads, a.head_dim = s.head_dim, a.causal = s.causal;
    a.scale = 1.0f / std::sqrt(float(s.head_dim));
    std::vector<float> q, kv;
    if (s.fused) {
      REQUIRE(s.lq == s.lk);
      a.wq = a.wkv = s.pad + 3 * hw + 2;
      a.q_off = s.pad, a.k_off = s.pad + hw, a.v_off = s.pad + 2 * hw;
      q = random_floats(size_t(s.batch * s.lq * a.wq), seed++);
    } else {
      a.wq = s.pad + hw + 1;
      a.wkv = s.pad + 2 * hw;
      a.q_off = s.pad, a.k_off = s.pad + hw, a.v_off = s.pad;  // [v | k] order: any windows work
      q = random_floats(size_t(s.batch * s.lq * a.wq), seed++);
      kv = random_floats(size_t(s.batch * s.lk * a.wkv), seed++);
    }
    ThreadPool pool(2, uint64_t(s.lk + s.head_dim));
    std::vector<float> oc(size_t(s.batch * s.lq * hw), kNaN);
    Dev dq(q), dkv(s.fused ? q : kv), dout(oc);
    SdpaArgs c = a;
    c.q_src = q.data();
    c.kv_src = s.fused ? q.data() : kv.data();
    c.out = oc.data();
    sdpa_cpu(c, pool);
    SdpaArgs g = a;
    g.q_src = dq.as<float>();
    g.kv_src = s.fused ? dq.as<float>() : dkv.as<float>();
    g.out = dout.as<float>();
    sdpa_cuda(g, nullptr);
    sync_ok();
    // Both sides sum up to lk weighted values in f32 in different orders (the CPU in key
    // order after an exact softmax, the GPU per 64-key tile with online rescaling); even at
    // lk = 4096 that stays near 2e-6.
    CHECK(diff_of(dout.get<float>(), oc) < 1e-5);
  }
}

TEST_CASE("cuda: timestep_embedding matches the CPU kernel (flip, shift, odd dim, clamped step)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  std::vector<float> t(50);
  for (size_t i = 0; i < t.size(); ++i) t[i] = 999.0f - 20.37f * float(i);
  for (int32_t step : {17, 0, 49, -5, 100, -1})  // -1: no step operand (t[0])
    for (int64_t dim : {320, 33})
      for (bool flip : {true, false}) {
        CAPTURE(step);
        CAPTURE(dim);
        CAPTURE(flip);
        const float shift = flip ? 0.0f : 1.0f;
        const int64_t rows = 2;
        std::vector<int32_t> st = {step};
        std::vector<float> ec(size_t(rows * dim), kNaN);
        Dev dt(t), ds(st), de(ec);
        const int32_t* sc = step == -1 ? nullptr : st.data();
        timestep_embedding_cpu({t.data(), int64_t(t.size()), sc, ec.data(), rows, dim, flip, shift, 10000.0f}, pool);
        timestep_embedding_cuda({dt.as<float>(), int64_t(t.size()), step == -1 ? nullptr : ds.as<int32_t>(),
                                 de.as<float>(), rows, dim, flip, shift, 10000.0f},
                                nullptr);
        sync_ok();
        // exp, sin and cos round once from double on the GPU; glibc's f32 versions are
        // correctly rounded almost always, so nearly every element is bit-identical.
        CHECK(diff_of(de.get<float>(), ec) < 1e-6);
      }
}

TEST_CASE("cuda: sampler_input and sampler_step match the CPU kernels (g = 1 and 2, noise, h, clamped step)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  uint32_t seed = 1500;
  const int64_t steps = 10, n = 4 * 64 * 64 + 3;
  auto coefs = random_floats(size_t(steps * kSamplerCoefs), seed++);
  coefs[size_t(4 * kSamplerCoefs + kAh)] = 0.0f;  // step 4: a DPM++ first step, h unused
  Dev dcoefs(coefs);
  for (int32_t step : {3, 4, 12, -2})
    for (int64_t g : {1, 2}) {
      CAPTURE(step);
      CAPTURE(g);
      std::vector<int32_t> st = {step};
      Dev ds(st);
      {
        const auto x = random_floats(size_t(n), seed++);
        std::vector<float> xc(size_t(g * n), kNaN);
        Dev dx(x), dxin(xc);
        sampler_input_cpu({x.data(), coefs.data(), steps, st.data(), xc.data(), n, g}, pool);
        sampler_input_cuda({dx.as<float>(), dcoefs.as<float>(), steps, ds.as<int32_t>(), dxin.as<float>(), n, g},
                           nullptr);
        sync_ok();
        CHECK(diff_of(dxin.get<float>(), xc) == 0.0);
      }
      for (int variant = 0; variant < 3; ++variant) {  // 0: noise + h, 1: h only, 2: neither
        CAPTURE(variant);
        const bool has_noise = variant == 0, has_h = variant != 2;
        const auto out = random_floats(size_t(g * n), seed++);
        const auto noise = random_floats(size_t(n), seed++);
        auto xc = random_floats(size_t(n), seed++);
        // h is poisoned where the step must not read it (a_h == 0): NaN would spread into x.
        auto hc = step == 4 ? std::vector<float>(size_t(n), kNaN) : random_floats(size_t(n), seed++);
        Dev dout(out), dnoise(noise), dx(xc), dh(hc);
        sampler_step_cpu({out.data(), coefs.data(), steps, st.data(), has_noise ? noise.data() : nullptr, xc.data(),
                          has_h ? hc.data() : nullptr, n, g, 7.5f},
                         pool);
        sampler_step_cuda({dout.as<float>(), dcoefs.as<float>(), steps, ds.as<int32_t>(),
                           has_noise ? dnoise.as<float>() : nullptr, dx.as<float>(), has_h ? dh.as<float>() : nullptr, n,
                           g, 7.5f},
                          nullptr);
        sync_ok();
        // Both sides round every product and sum on its own (no FMA), so x86 builds agree bit
        // for bit; the bound leaves room for a CPU build that contracts.
        CHECK(diff_of(dx.get<float>(), xc) < 1e-6);
        if (has_h) CHECK(diff_of(dh.get<float>(), hc) < 1e-6);
      }
    }
}

TEST_CASE("cuda: normal_noise equals the CPU kernel bit for bit and is standard normal") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2);
  const int64_t n = 100003;
  std::vector<int32_t> seed = {0x12345678, -7};
  Dev dseed(seed);
  std::vector<std::vector<float>> draws;
  for (int32_t step : {5, 6, -1})  // -1: no step operand
    for (int64_t stream : {0, 3}) {
      CAPTURE(step);
      CAPTURE(stream);
      std::vector<int32_t> st = {step};
      std::vector<float> zc(size_t(n), kNaN);
      Dev ds(st), dz(zc);
      normal_noise_cpu({seed.data(), step == -1 ? nullptr : st.data(), zc.data(), n, stream}, pool);
      normal_noise_cuda({dseed.as<int32_t>(), step == -1 ? nullptr : ds.as<int32_t>(), dz.as<float>(), n, stream},
                        nullptr);
      sync_ok();
      const auto zg = dz.get<float>();
      CHECK(std::memcmp(zg.data(), zc.data(), zc.size() * sizeof(float)) == 0);
      double s = 0, ss = 0;
      for (float v : zg) {
        s += v;
        ss += double(v) * v;
      }
      REQUIRE(std::isfinite(s));
      const double mean = s / double(n), var = ss / double(n) - mean * mean;
      // Standard errors: 1/sqrt(n) ≈ 0.0032 for the mean, sqrt(2/n) ≈ 0.0045 for the variance.
      CHECK(std::fabs(mean) < 0.02);
      CHECK(std::fabs(var - 1.0) < 0.03);
      draws.push_back(zg);
    }
  // The Philox counter is stream + step: here 5, 8, 6, 9, 0 and 3, so every draw differs.
  for (size_t i = 0; i < draws.size(); ++i)
    for (size_t j = i + 1; j < draws.size(); ++j) CHECK(draws[i] != draws[j]);
}

// PDL (programmatic dependent launch of the decode GEMVs) changes when kernels start, never what
// they compute: its graphs must give the same bits too.
TEST_CASE("cuda: fixtures end to end match the CPU backend, and graphs equal stream mode and PDL bit for bit") {
  if (skip_without_gpu()) return;
  kiln::test::ScopedEnv no_override("KILN_PDL", nullptr);
  TempDir d;
  std::vector<std::pair<std::string, std::string>> fixtures;
  for (const std::string& n : kiln::test::fixture_names("llama")) fixtures.push_back({"llama", n});
  for (const std::string& n : kiln::test::fixture_names("deepseek")) fixtures.push_back({"deepseek", n});
  for (const auto& fam_name : fixtures) {
    for (const char* dtype : {"f32", "bf16"}) {
    const std::string family = fam_name.first, name = fam_name.second;
      CAPTURE(name);
      CAPTURE(std::string(dtype));
      const auto plan = compile_plan(d, name, family, dtype, 8);
      const auto ref = kiln::test::load_reference(kiln::test::fixture(name, family));
      std::vector<std::vector<float>> logits;
      std::vector<std::vector<int32_t>> tokens;
      for (const char* dev : {"cpu", "cuda", "cuda-stream", "cuda-pdl", "cuda-stream-pdl"}) {
        const std::string mode = dev;
        ContextOptions co;
        co.device = mode == "cpu" ? "cpu" : "cuda";
        co.use_graphs = mode.find("stream") == std::string::npos;
        co.use_pdl = mode.find("pdl") != std::string::npos;
        auto ctx = Context::create(plan, co);
        REQUIRE_MESSAGE(ctx.is_ok(), ctx.status().message());
        CHECK((ctx.value()->describe().find("PDL on") != std::string::npos) == (co.use_pdl && matmul_pdl_supported()));
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
      for (size_t k : {3, 4}) {
        CHECK(std::memcmp(logits[1].data(), logits[k].data(), logits[1].size() * sizeof(float)) == 0);
        CHECK(tokens[1] == tokens[k]);
      }
      MESSAGE(name << " " << dtype << " on cuda: rel L2 " << err);
    }
  }
}

// Token feedback: the feedback and publish nodes on the device must give the CPU backend's steps
// (rows side by side, one idle, one sampled), from the graph and in stream mode; and generate with
// 1, 3 and 16 steps in flight the same tokens, positions and logits bit for bit, early stops too.
TEST_CASE("cuda: token feedback steps equal the CPU backend's, and generate with steps in flight equals one at a time") {
  if (skip_without_gpu()) return;
  TempDir d;
  const std::shared_ptr<const Plan> plan = compile_plan(d, "gqa_f32", "llama", "f32", 4, 3);
  const std::vector<int32_t> first = {5, -1, 9};
  const std::vector<SampleParams> params = {SampleParams{}, SampleParams{}, SampleParams{0.8f, 12, 0.95f, 0, 99, 3}};
  auto cpu = make_cpu_executor(plan, 0);
  REQUIRE(cpu.is_ok());
  const std::vector<int32_t> want = kiln::test::feedback_run(*cpu.value(), *plan, first, params, 12);
  for (bool graphs : {true, false}) {
    CAPTURE(graphs);
    CudaExecutorOptions co;
    co.use_graphs = graphs;
    auto cuda = make_cuda_executor(plan, co);
    REQUIRE_MESSAGE(cuda.is_ok(), cuda.status().message());
    CHECK(kiln::test::feedback_run(*cuda.value(), *plan, first, params, 12) == want);
  }
  // Context level, each configuration running the same sequence on one context: a greedy generate
  // long enough to wrap the ring (29 steps), a sampled one, a greedy one stopped early at an eos
  // followed by a plain decode, then a score (prefill after feedback moved the device state).
  const auto ref = kiln::test::load_reference(kiln::test::fixture("gqa_f32"));
  const std::vector<int32_t> prompt(ref.input_ids.begin(), ref.input_ids.begin() + 7);
  struct Run {
    std::vector<int32_t> greedy, sampled, stopped;
    std::vector<float> after, score;
    int64_t pos = 0;
  };
  auto run = [&](const char* device, bool graphs, int depth, int32_t eos) {
    ContextOptions co;
    co.device = device;
    co.use_graphs = graphs;
    co.generate_depth = depth;
    auto made = Context::create(plan, co);
    REQUIRE_MESSAGE(made.is_ok(), made.status().message());
    Context& c = *made.value();
    Run r;
    auto gen = [&](const SamplingParams& sp, int32_t stop, std::vector<int32_t>* out) {
      out->assign(30, -1);
      int64_t n = 0;
      REQUIRE(c.generate(prompt.data(), int64_t(prompt.size()), 30, sp, stop, out->data(), &n, nullptr).is_ok());
      out->resize(size_t(n));
    };
    gen(SamplingParams{}, -1, &r.greedy);
    gen(SamplingParams{0.9f, 20, 0.9f, 42}, -1, &r.sampled);
    gen(SamplingParams{}, eos, &r.stopped);
    r.pos = c.position(0);
    int32_t step[3] = {r.stopped.empty() ? 0 : r.stopped.back(), -1, -1};
    REQUIRE(c.decode(step).is_ok());
    r.after.assign(c.logits(0), c.logits(0) + c.vocab());
    r.score.assign(ref.logits.size(), kNaN);
    REQUIRE(c.score(ref.input_ids.data(), ref.rows, ref.tokens, r.score.data()).is_ok());
    return r;
  };
  const Run cpu0 = run("cpu", true, 1, -1);
  const int32_t eos = cpu0.greedy[5];
  const Run host = run("cpu", true, 1, eos);
  REQUIRE(host.stopped.size() <= 6);
  std::vector<Run> runs;
  for (bool graphs : {true, false})
    for (int depth : {1, 3, 16}) {
      CAPTURE(graphs);
      CAPTURE(depth);
      runs.push_back(run("cuda", graphs, depth, eos));
      const Run& r = runs.back();
      CHECK(r.greedy == host.greedy);  // f32: the CPU backend's greedy tokens
      CHECK(r.stopped == host.stopped);
      CHECK(r.pos == host.pos);
      CHECK(rel_l2(r.after.data(), host.after.data(), r.after.size()) <= 1e-4);
      CHECK(rel_l2(r.score.data(), ref.logits.data(), r.score.size()) <= 1e-4);
      // Every CUDA configuration gives the first one's bits, sampled tokens included.
      CHECK(r.sampled == runs[0].sampled);
      CHECK(std::memcmp(r.after.data(), runs[0].after.data(), r.after.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(r.score.data(), runs[0].score.data(), r.score.size() * sizeof(float)) == 0);
    }
}

// Prefill chunks of 32 rows put every bf16 projection on cuBLASLt: it must match the reference
// within the bf16 bound, agree with kiln's own kernels to bf16 rounding of x, and replay from its
// graph bit for bit like stream mode (the algorithm is chosen once, with no atomic split-K).
TEST_CASE("cuda: bf16 prefill on cuBLASLt matches the reference, kiln's own GEMM, and stream mode bit for bit") {
  if (skip_without_gpu()) return;
  kiln::test::ScopedEnv unset("KILN_CUBLASLT", nullptr);
  TempDir d;
  const auto plan = compile_plan(d, "gqa_f32", "llama", "bf16", 32);
  const auto ref = kiln::test::load_reference(kiln::test::fixture("gqa_f32"));
  std::vector<std::vector<float>> logits;
  for (int mode = 0; mode < 3; ++mode) {  // cuBLASLt with graphs, cuBLASLt in stream mode, own kernels
    ContextOptions co;
    co.device = "cuda";
    co.use_graphs = mode != 1;
    co.use_cublaslt = mode != 2;
    uint64_t done = 0, total = 0, calls = 0;
    co.upload_progress = [&](uint64_t dn, uint64_t tot) {
      CHECK(dn >= done);  // never backwards
      done = dn, total = tot, ++calls;
    };
    auto ctx = Context::create(plan, co);
    REQUIRE_MESSAGE(ctx.is_ok(), ctx.status().message());
    const std::string how = ctx.value()->describe();
    MESSAGE(how);
    CHECK((how.find("on cuBLASLt") != std::string::npos) == (mode != 2));
    CHECK(how.find("fused: ") != std::string::npos);  // the decode GEMVs and RoPE + KV write (bf16)
    CHECK(calls >= 1);
    CHECK(done == total);
    uint64_t section = 0;
    for (const SegmentInfo& sg : plan->segments()) section = std::max(section, sg.offset + sg.size);
    CHECK(total == section);
    std::vector<float> l(ref.logits.size(), kNaN);
    REQUIRE(ctx.value()->score(ref.input_ids.data(), ref.rows, ref.tokens, l.data()).is_ok());
    logits.push_back(std::move(l));
  }
  const double err = rel_l2(logits[0].data(), ref.logits.data(), ref.logits.size());
  MESSAGE("bf16 prefill on cuBLASLt: rel L2 " << err << " to transformers");
  CHECK(err <= 2e-2);
  CHECK(std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)) == 0);
  CHECK(rel_l2(logits[0].data(), logits[2].data(), logits[0].size()) <= 1e-2);
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
