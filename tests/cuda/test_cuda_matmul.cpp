// CUDA matmuls against the CPU kernel: the GEMV (plain, split-K, with the fused RMSNorm prologue
// and SwiGLU epilogue), the tiled GEMM, and cuBLASLt for prefill (its loading and its scratch).
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "cuda/cuda_test.h"
#include "kernels/cuda/kernels_cuda.h"
#include "runtime/context.h"
#include "runtime/cublaslt.h"

using namespace kiln;
using namespace kiln::cuda_test;
using kiln::test::random_floats;
using kiln::test::rel_l2;
using kiln::test::TempDir;

namespace {

// The GPU's y (rows of m outputs, sequences of `chunk` rows, valid[b] of them computed) against the CPU's:
// padding rows stay NaN (poisoned, not accumulating), the valid ones within 1e-5 relative L2.
void check_valid_rows(const std::vector<float>& yg, const std::vector<float>& yc, int64_t m, int64_t chunk,
                      const std::vector<int32_t>& valid, bool accumulate) {
  std::vector<float> a1, a2;
  for (size_t i = 0; i < yg.size(); ++i) {
    const int64_t r = int64_t(i) / m;
    if ((r % chunk) < valid[size_t(r / chunk)]) {
      a1.push_back(yg[i]);
      a2.push_back(yc[i]);
    } else if (!accumulate) {
      REQUIRE(std::isnan(yg[i]));
    }
  }
  CHECK(rel_l2(a1.data(), a2.data(), a1.size()) < 1e-5);
}

}  // namespace

TEST_CASE(
    "cuda: matmul (GEMV, split-K GEMV and tiled paths) matches the CPU kernel for every dtype, with bias, accumulate and padding rows") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, matmul_scratch_floats(4096, 300, DType::F16));
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
          MatmulArgs g{dx.as<float>(),   dw.p, wt, db.p, wt, dy.as<float>(), rows, k, m, acc == 1,
                       dv.as<int32_t>(), batch};
          matmul_cuda(g, nullptr);
          sync_ok();
          check_valid_rows(dy.get<float>(), yc, m, rows / batch, valid, acc == 1);
        }
      }
}

// Quantized weights (matmul versions 2-4) against the CPU kernels: i8 with a scale a row (all of
// [-128, 127]), i4 in groups of 32 and 128 symmetric and with zero points (0 to 16, as GPTQ's may be),
// f8e4m3 in groups of 16, 48 (with a short last group) and a whole row (every code but NaN, subnormals
// included); scales of both signs; the GEMV (vector loads, and the element path for rows that are not
// whole 8-value steps or x that is not 16-byte aligned) and the tiled kernel; bias, accumulate and
// padding rows.
TEST_CASE("cuda: matmul with i8, i4 and f8e4m3 weights matches the CPU kernels (GEMV and tiled paths)") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, matmul_scratch_floats(4096, 300, DType::I8));
  uint32_t seed = 900;
  LcgBytes next_byte{12345};
  struct Case {
    DType w;
    int64_t k, group;         // group: i4 and f8e4m3 values per scale (0: i8, a scale a row)
    bool zeros;               // i4 zero points
    bool misaligned = false;  // x 4 bytes past a 16-byte boundary: the GEMV's element path
    bool wide_zeros = false;  // i4 zero points anywhere in int8's range (else 0 to 16, as GPTQ's)
  };
  const std::vector<Case> cases = {
      {DType::I8, 64, 0, false},
      {DType::I8, 4096, 0, false},
      {DType::I8, 70, 0, false},
      {DType::I8, 72, 0, false},  // (whole 8-value steps, not 16: the vector path)
      {DType::I8, 64, 0, false, true},
      {DType::I4, 64, 32, false},
      {DType::I4, 1024, 128, false},
      {DType::I4, 1024, 128, true},
      {DType::I4, 96, 32, true},
      {DType::I4, 96, 32, true, true},
      {DType::I4, 192, 96, false},              // (3 blocks a group: the GEMV's division, not a shift)
      {DType::I4, 192, 96, true, false, true},  // (and zero points of -128 to 127)
      {DType::F8E4M3, 64, 16, false},
      {DType::F8E4M3, 1056, 48, false},
      {DType::F8E4M3, 1072, 48, false},
      {DType::F8E4M3, 80, 48, false},
      {DType::F8E4M3, 4096, 4096, false},
      {DType::F8E4M3, 70, 70, false},
      {DType::F8E4M3, 72, 72, false},           // (one group a row of whole 8-value steps: the vector path)
      {DType::F8E4M3, 1072, 48, false, true}};  // (1072 and 80 in groups of 48: a short last group)
  for (const Case& c : cases)
    for (int64_t rows : {1, 2, 3, 4, 5, 8, 9, 38}) {  // (4 and 5: the 4- and 8-row GEMVs part full; 9: the tiles)
      CAPTURE(std::string(dtype_name(c.w)));
      CAPTURE(c.k);
      CAPTURE(c.group);
      CAPTURE(c.zeros);
      CAPTURE(c.misaligned);
      CAPTURE(c.wide_zeros);
      CAPTURE(rows);
      // (8 and 38 rows: two sequences, the second half padding, in the GEMV and in the tiled kernel)
      const int64_t k = c.k, m = 301, batch = rows == 8 || rows == 38 ? 2 : 1;
      const int64_t spr = c.w == DType::I8 ? 1 : (k + c.group - 1) / c.group;
      std::vector<uint8_t> w(size_t(c.w == DType::I4 ? m * k / 2 : m * k));
      for (uint8_t& b : w) {
        b = next_byte();
        if (c.w == DType::F8E4M3 && (b & 0x7fu) == 0x7fu) b &= 0xfeu;  // not the NaN codes
      }
      auto scale = random_floats(size_t(m * spr), seed++, c.w == DType::F8E4M3 ? 0.01f : 0.02f);
      std::vector<int8_t> zero(c.zeros ? size_t(m * spr) : 0);
      for (int8_t& z : zero) z = c.wide_zeros ? int8_t(next_byte()) : int8_t(next_byte() % 17);
      const auto x = random_floats(size_t(rows * k), seed++);
      auto x_dev = x;  // (misaligned: one float ahead of it on the device)
      if (c.misaligned) x_dev.insert(x_dev.begin(), 0.0f);
      const auto bias = random_floats(size_t(m), seed++);
      const auto y0 = random_floats(size_t(rows * m), seed++);
      std::vector<int32_t> valid = {int32_t(rows / batch), int32_t(rows / batch / 2)};
      valid.resize(size_t(batch));
      for (int acc = 0; acc < 2; ++acc) {
        CAPTURE(acc);
        std::vector<float> yc = acc ? y0 : std::vector<float>(y0.size(), kNaN);
        Dev dx(x_dev), dw(w), db(bias), dy(yc), dv(valid), ds(scale), dz(zero);
        MatmulArgs a{x.data(), w.data(), c.w, bias.data(), DType::F32,   yc.data(),
                     rows,     k,        m,   acc == 1,    valid.data(), batch};
        a.w_scale = scale.data();
        a.group = c.group;
        a.w_zero = c.zeros ? zero.data() : nullptr;
        matmul_cpu(a, pool);
        MatmulArgs g{dx.as<float>() + (c.misaligned ? 1 : 0),
                     dw.p,
                     c.w,
                     db.p,
                     DType::F32,
                     dy.as<float>(),
                     rows,
                     k,
                     m,
                     acc == 1,
                     dv.as<int32_t>(),
                     batch};
        g.w_scale = ds.as<float>();
        g.group = c.group;
        g.w_zero = c.zeros ? dz.as<int8_t>() : nullptr;
        matmul_cuda(g, nullptr);
        sync_ok();
        check_valid_rows(dy.get<float>(), yc, m, rows / batch, valid, acc == 1);
      }
    }
}

// The fused decode GEMVs against the CPU's separate kernels: RMSNorm as a prologue, SwiGLU as an
// epilogue, and both; padding rows stay unwritten.
TEST_CASE("cuda: decode GEMVs with RMSNorm and/or SwiGLU fused match the CPU's separate kernels") {
  if (skip_without_gpu()) return;
  ThreadPool pool(2, matmul_scratch_floats(4096, 300, DType::F16));
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
          const MatmulArgs g{
              dx.as<float>(),   dw.p, wt, nullptr, wt, swiglu ? nullptr : dout.as<float>(), rows, k, m, false,
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
TEST_CASE(
    "cuda: cuBLASLt loads by dlopen or says exactly why not, and KILN_CUBLASLT switches it off or names the file") {
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
    return std::make_pair(cuda_device_bytes(p),
                          weights + p.memory().arena_bytes + p.memory().kv_bytes + p.memory().request_bytes);
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
  ThreadPool pool(2, matmul_scratch_floats(4096, 300, DType::F16));
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
          matmul_cpu({xr.data(), w.data(), wt, bias.data(), wt, yc.data(), rows, k, m, acc == 1, valid.data(), batch},
                     pool);
          matmul_cpu(
              {x.data(), w.data(), wt, bias.data(), wt, yexact.data(), rows, k, m, acc == 1, valid.data(), batch},
              pool);
          MatmulArgs g{dx.as<float>(),   dw.p, wt, db.p, wt, dy.as<float>(), rows, k, m, acc == 1,
                       dv.as<int32_t>(), batch};
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
