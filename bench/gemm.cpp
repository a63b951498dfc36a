// kiln-bench-gemm: the CPU matmul kernel's GFLOP/s on prefill-shaped products, next to the
// machine's f32 FMA peak measured in the same run (every worker running independent FMA chains
// from registers, nothing from memory; 16-lane AVX-512 FMAs where the matmul runs its AVX-512
// tiles, else 8-lane AVX2 ones).
//   kiln-bench-gemm [--threads N] [--rows 64] [--runs 5]
// Shapes: the Llama-3.2-1B and SmolLM2-135M projections (qkv, o, gate|up, down) with f32, bf16, i8
// (per-row scaled) and i4 (a scale per 32 values) weights. Reports the median of --runs calls per
// shape, and the weight bytes read per second (what bounds --rows 1, a decode GEMV). Then DeepSeek's
// MLA per-head matmuls (head_matmul) at the V2-Lite shape: version 1 on the bf16 per-head copies a float
// plan holds, version 2 on kv_b's rows as quantized plans keep them (bf16, i8, i4 and f8e4m3 in groups
// of 128, W_UK read down its columns). Then its routed experts (moe_experts: 6 of 64 experts a token,
// dim 2048, expert ffn 1408) in bf16, i8, i4 and f8e4m3 (groups of 128).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/cpu/simd.h"
#include "kernels/dtype.h"
#include "kernels/head_matmul.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/thread_pool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KILN_BENCH_FMA 1
#endif

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

#ifdef KILN_BENCH_FMA
// 2 · 8 · 12 flops per iteration, twelve independent chains (enough to cover the FMA latency on
// two pipes); the result is returned so the loop is not removed.
__attribute__((target("avx2,fma"))) float fma_chains(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// The same with 16-lane AVX-512 FMAs.
__attribute__((target("avx512f"))) float fma_chains512(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

// lanes 16: the AVX-512 peak (where the matmul runs its AVX-512 tiles), else 8: AVX2's.
double fma_peak_gflops(kiln::ThreadPool& pool, int lanes) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  const int64_t iters = 20000000;
  std::vector<float> sink(size_t(pool.size()));
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const double t0 = now_s();
    pool.parallel_for(pool.size(), 1, [&](int64_t b0, int64_t b1, int) {
      for (int64_t b = b0; b < b1; ++b) sink[size_t(b)] = lanes == 16 ? fma_chains512(iters) : fma_chains(iters);
    });
    best = std::max(best, 2.0 * lanes * 12 * double(iters) * pool.size() / (now_s() - t0) / 1e9);
  }
  return sink[0] == 12345.0f ? 0 : best;
}
#endif

// The median of `runs` timed calls of f after one warm-up call, in ms.
template <class F>
double median_call_ms(const F& f, int runs) {
  f();
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    const double t0 = kiln::bench::now_ms();
    f();
    ms.push_back(kiln::bench::now_ms() - t0);
  }
  return kiln::bench::median(ms);
}

struct Shape {
  const char* model;
  const char* name;
  int64_t k, m;
};

// DeepSeek-V2-Lite's W_UKᵀ·q_nope (16 heads of 128 → 512) and W_UV·o_latent (16 heads of 512 → 128).
void bench_head_matmul(int threads, int rows, int runs) {
  const int64_t heads = 16, nope = 128, rank = 512, vd = 128, group = 128;
  std::printf(
      "\nDeepSeek-V2-Lite MLA per-head matmuls (head_matmul), %d rows\n"
      "| matmul | layout | weights | median ms | weight GB/s |\n|---|---|---|---|---|\n",
      rows);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::normal_distribution<float> codes(0.0f, 100.0f);  // f8e4m3 codes as a block-scaled checkpoint's spread
  struct Case {
    const char* name;
    bool transposed;
    int64_t k, m;
  };
  for (const Case& c : {Case{"W_UK^T", true, nope, rank}, Case{"W_UV", false, rank, vd}})
    for (int v = 0; v < 5; ++v) {
      // v 0: version 1, bf16 (heads, m, k); 1-4: version 2 rows, bf16, i8, i4, f8e4m3
      const kiln::DType dt = v <= 1   ? kiln::DType::BF16
                             : v == 2 ? kiln::DType::I8
                             : v == 3 ? kiln::DType::I4
                                      : kiln::DType::F8E4M3;
      const int64_t n = heads * c.k * c.m, cols = c.transposed && v > 0 ? c.m : c.k;
      const int64_t w_rows = n / cols;
      std::vector<float, kiln::CacheLineAllocator<float>> x(size_t(rows * heads * c.k)), y(size_t(rows * heads * c.m));
      for (float& f : x) f = u(rng);
      std::vector<uint8_t, kiln::CacheLineAllocator<uint8_t>> w(
          dt == kiln::DType::I4 ? size_t(n / 2) : size_t(n) * kiln::dtype_size(dt));
      for (size_t i = 0; i < w.size(); ++i) w[i] = uint8_t(rng());
      if (dt == kiln::DType::BF16)
        for (int64_t i = 0; i < n; ++i) kiln::store_from_f32(w.data(), dt, uint64_t(i), u(rng) * 0.05f);
      if (dt == kiln::DType::F8E4M3)
        for (uint8_t& b : w) b = kiln::f32_to_f8e4m3(std::max(-448.0f, std::min(448.0f, codes(rng))));
      const int64_t spr = dt == kiln::DType::I8 ? 1 : dt == kiln::DType::BF16 ? 0 : cols / group;
      const std::vector<float> scale(size_t(std::max<int64_t>(1, w_rows * spr)), 0.01f);
      kiln::HeadMatmulArgs a{x.data(), w.data(), dt, y.data(), rows, heads, c.k, c.m, nullptr, 1};
      if (v > 0) {
        a.transposed = c.transposed;
        a.w_scale = dt == kiln::DType::BF16 ? nullptr : scale.data();
        a.group = dt == kiln::DType::I4 || dt == kiln::DType::F8E4M3 ? group : 0;
      }
      kiln::ThreadPool pool(threads, kiln::head_matmul_scratch_floats(c.k, c.m, a.transposed, dt));
      const double med = median_call_ms([&] { kiln::head_matmul_cpu(a, pool); }, runs);
      const uint64_t bytes = w.size() + (a.w_scale ? scale.size() * 4 : 0);
      std::printf("| %s | %s | %s | %.3f | %.1f |\n", c.name,
                  v == 0         ? "version 1 (per-head copy)"
                  : c.transposed ? "version 2 (kv_b rows, down columns)"
                                 : "version 2 (kv_b rows)",
                  kiln::dtype_name(dt), med, double(bytes) / (med / 1e3) / 1e9);
    }
}

// DeepSeek-V2-Lite's routed experts: each token's 6 of its 64 experts, gate|up then down; every call
// takes the next 6 (all rows the same ones), so the weights come from memory, as a decode's do (64 bf16
// experts are 1.1 GB, int4 0.28 GB: past any L3), not from the cache a repeated call would leave.
void bench_moe_experts(int threads, int rows, int runs) {
  const int64_t E = 64, D = 2048, F = 1408, K = 6, group = 128;
  std::printf(
      "\nDeepSeek-V2-Lite routed experts (moe_experts, %lld of them a token), %d rows\n"
      "| weights | median ms | expert weight bytes a token | weight GB/s (one token's) |\n|---|---|---|---|\n",
      (long long)K, rows);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::normal_distribution<float> codes(0.0f, 100.0f);
  std::vector<float, kiln::CacheLineAllocator<float>> h(size_t(rows * D)), y(size_t(rows * D)),
      ws(size_t(rows * K * F));
  for (float& v : h) v = u(rng);
  std::vector<int32_t> ids(size_t(rows * K));
  int32_t next = 0;  // the first expert of the next call's 6
  auto rotate = [&] {
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((next + int64_t(i % K)) % E);
    next = int32_t((next + K) % E);
  };
  const std::vector<float> weights(size_t(rows * K), 0.1f);
  for (kiln::DType dt : {kiln::DType::BF16, kiln::DType::I8, kiln::DType::I4, kiln::DType::F8E4M3}) {
    auto bytes = [&](int64_t n) { return dt == kiln::DType::I4 ? n / 2 : n * int64_t(kiln::dtype_size(dt)); };
    // One 4 MiB pattern of the dtype's bytes (bf16 and f8e4m3: a trained layer's spread of values, no
    // NaN or subnormal-heavy codes), repeated.
    std::vector<uint8_t> pattern(size_t(1) << 22);
    for (uint8_t& b : pattern) b = uint8_t(rng());
    if (dt == kiln::DType::BF16)
      for (size_t i = 0; i < pattern.size() / 2; ++i) kiln::store_from_f32(pattern.data(), dt, i, u(rng) * 0.05f);
    if (dt == kiln::DType::F8E4M3)
      for (uint8_t& b : pattern) b = kiln::f32_to_f8e4m3(std::max(-448.0f, std::min(448.0f, codes(rng))));
    auto make = [&](int64_t n) {
      std::vector<uint8_t, kiln::CacheLineAllocator<uint8_t>> w(size_t(bytes(n)));
      for (size_t i = 0; i < w.size(); i += pattern.size())
        std::memcpy(w.data() + i, pattern.data(), std::min(pattern.size(), w.size() - i));
      return w;
    };
    const auto gu = make(E * 2 * F * D), down = make(E * D * F);
    const bool grouped = dt == kiln::DType::I4 || dt == kiln::DType::F8E4M3;
    const std::vector<float> gu_scale(size_t(E * 2 * F * (grouped ? D / group : 1)), 0.01f),
        down_scale(size_t(E * D * (grouped ? (F + group - 1) / group : 1)), 0.01f);
    kiln::MoeExpertsArgs a{
        h.data(), ids.data(), weights.data(), gu.data(), down.data(), dt, y.data(), ws.data(), rows, D, E,
        F,        K,          nullptr,        1};
    if (dt != kiln::DType::BF16) {
      a.gu_scale = gu_scale.data();
      a.down_scale = down_scale.data();
      a.gu_group = grouped ? group : 0;
      a.down_group = grouped ? group : 0;
    }
    kiln::ThreadPool pool(threads, kiln::moe_experts_scratch_floats(D, F));
    const double med = median_call_ms(
        [&] {
          rotate();
          kiln::moe_experts_cpu(a, pool);
        },
        runs);
    const double per_token = double(K * (bytes(2 * F * D) + bytes(D * F)));
    std::printf("| %s | %.2f | %.1f MB | %.1f |\n", kiln::dtype_name(dt), med, per_token / 1e6,
                per_token * rows / (med / 1e3) / 1e9);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln CPU matmul benchmark (GFLOP/s vs the FMA peak)"};
  int threads = 0, rows = 64, runs = 5;
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_option("--rows", rows, "activation rows (a prefill chunk)")->check(CLI::Range(1, 4096));
  app.add_option("--runs", runs, "timed calls per shape (the median is reported)")->check(CLI::Range(1, 1000));
  bool no_avx512 = false;
  kiln::bench::add_no_avx512_flag(app, no_avx512);
  CLI11_PARSE(app, argc, argv);
  kiln::bench::apply_no_avx512(no_avx512);
  const std::vector<Shape> shapes = {
      {"llama-3.2-1b", "qkv", 2048, 3072},      {"llama-3.2-1b", "o", 2048, 2048},
      {"llama-3.2-1b", "gate_up", 2048, 16384}, {"llama-3.2-1b", "down", 8192, 2048},
      {"smollm2-135m", "qkv", 576, 960},        {"smollm2-135m", "o", 576, 576},
      {"smollm2-135m", "gate_up", 576, 3072},   {"smollm2-135m", "down", 1536, 576},
  };
  uint64_t scratch = 0;  // (the most any shape needs: not always the longest k's, once the GEMM's panel is capped)
  for (const Shape& s : shapes)
    for (kiln::DType t : {kiln::DType::F32, kiln::DType::BF16, kiln::DType::I8, kiln::DType::I4})
      scratch = std::max(scratch, kiln::matmul_scratch_floats(s.k, rows, t));
  kiln::ThreadPool pool(threads, scratch);
  double peak = 0;
#ifdef KILN_BENCH_FMA
#ifdef KILN_X86_64_V3_KERNELS
  const int lanes = kiln::cpu_has_avx512() ? 16 : 8;
#else
  const int lanes = 8;
#endif
  peak = fma_peak_gflops(pool, lanes);
#else
  const int lanes = 8;
#endif
  std::printf("%d threads, %d rows; f32 FMA peak (%d-lane FMAs, as the matmul runs) measured now: %.1f GFLOP/s\n",
              pool.size(), rows, lanes, peak);
  std::printf(
      "| model | matmul | k | m | weights | median ms | GFLOP/s | of peak | weight GB/s |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Shape& s : shapes)
    for (kiln::DType dt : {kiln::DType::F32, kiln::DType::BF16, kiln::DType::I8, kiln::DType::I4}) {
      // x, y and w 64-byte aligned, as the CPU backend's arena and weight segments are
      std::vector<float, kiln::CacheLineAllocator<float>> x(size_t(rows * s.k)), y(size_t(rows * s.m));
      std::vector<float> wf(size_t(s.m * s.k));
      for (float& v : x) v = u(rng);
      for (float& v : wf) v = u(rng) * 0.05f;
      const bool i4 = dt == kiln::DType::I4;
      constexpr int64_t kGroup = 32;  // i4: a scale per 32 values (the smallest group: the most tables to build)
      std::vector<uint8_t, kiln::CacheLineAllocator<uint8_t>> w(i4 ? wf.size() / 2 : wf.size() * kiln::dtype_size(dt));
      // i8: whole numbers in [-127, 127] (store_from_f32's contract), scaled back per row; i4: random bytes
      if (i4)
        for (uint8_t& b : w) b = uint8_t(rng());
      else
        for (size_t i = 0; i < wf.size(); ++i)
          kiln::store_from_f32(w.data(), dt, i, dt == kiln::DType::I8 ? std::nearbyint(wf[i] * 2540.0f) : wf[i]);
      const std::vector<float> scale(size_t(i4 ? s.m * (s.k / kGroup) : s.m), i4 ? 0.01f : 1.0f / 2540.0f);
      kiln::MatmulArgs a{x.data(),
                         w.data(),
                         dt,
                         nullptr,
                         kiln::DType::F32,
                         y.data(),
                         rows,
                         s.k,
                         s.m,
                         false,
                         nullptr,
                         1,
                         dt == kiln::DType::I8 || i4 ? scale.data() : nullptr,
                         i4 ? kGroup : 0};
      const double med = median_call_ms([&] { kiln::matmul_cpu(a, pool); }, runs),
                   gflops = 2.0 * rows * s.k * s.m / (med / 1e3) / 1e9;
      std::printf("| %s | %s | %lld | %lld | %s | %.2f | %.1f | %.0f%% | %.1f |\n", s.model, s.name, (long long)s.k,
                  (long long)s.m, kiln::dtype_name(dt), med, gflops, peak > 0 ? 100.0 * gflops / peak : 0.0,
                  double(w.size()) / (med / 1e3) / 1e9);
    }
  bench_head_matmul(threads, rows, runs);
  bench_moe_experts(threads, rows, runs);
  return 0;
}
