// Each CPU kernel against a naive double-precision reference on random inputs. Outputs are
// poisoned (NaN) before the run so an unwritten element fails.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/gemm_tiles.h"
#include "kernels/cpu/simd.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/fused.h"
#include "kernels/head_matmul.h"
#include "kernels/head_rmsnorm.h"
#include "kernels/kv_write.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::random_floats;
using kiln::test::rel_l2;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Stores f32 values in dtype t (as bytes) and returns the values as rounded, in f32.
std::vector<uint8_t> store(const std::vector<float>& v, DType t, std::vector<float>* rounded) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  convert_f32_to(v.data(), t, out.data(), v.size());
  rounded->resize(v.size());
  convert_to_f32(out.data(), t, rounded->data(), v.size());
  return out;
}

// The CPU tiers a test runs in turn: the AVX-512 tiles where the CPU has them, then the AVX2 ones
// (set_avx512_tiles_for_tests), which give the same bits; one pass elsewhere. Each Tier restores
// what the CPU has when it goes, however the test ends.
std::vector<bool> avx512_tiers() {
#ifdef KILN_X86_64_V3_KERNELS
  if (cpu_has_avx512()) return {true, false};
#endif
  return {false};
}
struct Tier {
  explicit Tier(bool avx512) {
#ifdef KILN_X86_64_V3_KERNELS
    set_avx512_tiles_for_tests(avx512);
#endif
    (void)avx512;
  }
  ~Tier() {
#ifdef KILN_X86_64_V3_KERNELS
    set_avx512_tiles_for_tests(true);
#endif
  }
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;
};

// Which tiles a test runs on this machine, for its log: avx2 names what the AVX2 tier runs.
std::string tiers_exercised(const std::string& avx2) {
#ifdef KILN_X86_64_V3_KERNELS
  if (!cpu_has_x86_64_v3()) return "portable loop (no x86-64-v3): tiles not exercised";
  if (cpu_has_avx512()) return "AVX-512 tiles, then " + avx2;
  return avx2 + " (no AVX-512: its tiles not exercised)";
#else
  (void)avx2;
  return "portable loop (a build without the x86-64-v3 tiles): tiles not exercised";
#endif
}

// y after a matmul that accumulated into y0 with n_valid `valid` (rows of `chunk` per batch row):
// each valid output is exactly y0 + want(r, j), bit for bit; padding rows are untouched.
template <typename Want>
void check_accumulated_rows(const std::vector<float>& y, const std::vector<float>& y0, int64_t m, int64_t chunk,
                            const std::vector<int32_t>& valid, const Want& want) {
  const int64_t rows = int64_t(y.size()) / m;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < m; ++j) {
      const size_t o = size_t(r * m + j);
      if (r % chunk >= valid[size_t(r / chunk)]) {
        REQUIRE(std::memcmp(&y[o], &y0[o], 4) == 0);  // padding: untouched
        continue;
      }
      const float expect = y0[o] + want(r, j);
      REQUIRE(std::memcmp(&y[o], &expect, 4) == 0);
    }
}

}  // namespace

// Qwen3's per-head q/k norms and OLMo 2's whole-width ones (one q "head" of H·hd values, one k
// "head" of KVH·hd: k_head_dim other than head_dim), against RMSNorm in double; Cohere's LayerNorms over
// each head (version 3's modes: about the mean, each head its own weights) against LayerNorm in double; v
// untouched.
TEST_CASE("head_rmsnorm matches a double reference, per head and over q and k whole, RMS or LayerNorm") {
  ThreadPool pool(2);
  struct Case {
    int64_t nq, nk, hd, khd, v;  // v: the v values after the k heads
  };
  for (const int64_t mode :
       {int64_t(0), kHeadNormCenter, kHeadNormPerHeadWeights, kHeadNormCenter | kHeadNormPerHeadWeights})
    for (const Case& c : {Case{8, 2, 24, 0, 48}, Case{1, 1, 6 * 16, 2 * 16, 2 * 16}, Case{1, 1, 64, 64, 64}}) {
      CAPTURE(mode);
      CAPTURE(c.hd);
      CAPTURE(c.khd);
      const bool center = mode & kHeadNormCenter, per_head = mode & kHeadNormPerHeadWeights;
      const int64_t khd = c.khd > 0 ? c.khd : c.hd, rows = 5, width = c.nq * c.hd + c.nk * khd + c.v;
      auto x = random_floats(size_t(rows * width), 91, 2.0f);
      for (size_t i = 0; i < x.size(); i += 3) x[i] += 1.5f;  // (a mean away from zero, so that centring matters)
      const auto wq = random_floats(size_t(per_head ? c.nq * c.hd : c.hd), 92);
      const auto wk = random_floats(size_t(per_head ? c.nk * khd : khd), 93);
      const auto before = x;
      HeadRmsNormArgs a{x.data(), wq.data(), wk.data(), DType::F32, rows, width, c.nq, c.nk, c.hd, 1e-5f, c.khd};
      a.mode = mode;
      head_rmsnorm_cpu(a, pool);
      std::vector<float> want = before;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t h = 0; h < c.nq + c.nk; ++h) {
          const bool q = h < c.nq;
          const int64_t d = q ? c.hd : khd, at = r * width + (q ? h * c.hd : c.nq * c.hd + (h - c.nq) * khd);
          const int64_t w0 = per_head ? (q ? h : h - c.nq) * d : 0;
          double mean = 0, ss = 0;
          for (int64_t i = 0; i < d && center; ++i) mean += double(before[size_t(at + i)]) / double(d);
          for (int64_t i = 0; i < d; ++i) ss += (before[size_t(at + i)] - mean) * (before[size_t(at + i)] - mean);
          const double inv = 1.0 / std::sqrt(ss / double(d) + 1e-5);
          for (int64_t i = 0; i < d; ++i)
            want[size_t(at + i)] = float(double((q ? wq : wk)[size_t(w0 + i)]) * (before[size_t(at + i)] - mean) * inv);
        }
      CHECK(rel_l2(x.data(), want.data(), x.size()) < 1e-6);
      for (int64_t r = 0; r < rows; ++r)  // the v values keep theirs, bit for bit
        for (int64_t i = width - c.v; i < width; ++i) CHECK(x[size_t(r * width + i)] == before[size_t(r * width + i)]);
    }
}

// LayerNorm with a bias (CLIP, Phi) and without one (layernorm version 2: Cohere's), against double.
TEST_CASE("layernorm matches a double reference, with and without a bias") {
  ThreadPool pool(2);
  const int64_t rows = 7, dim = 96;
  auto x = random_floats(size_t(rows * dim), 94, 2.0f);
  for (size_t i = 0; i < x.size(); i += 2) x[i] += 3.0f;
  const auto w = random_floats(size_t(dim), 95), b = random_floats(size_t(dim), 96);
  for (const bool bias : {true, false}) {
    CAPTURE(bias);
    std::vector<float> y(x.size()), want(x.size());
    layernorm_cpu({x.data(), w.data(), bias ? b.data() : nullptr, DType::F32, y.data(), rows, dim, 1e-5f}, pool);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x.data() + r * dim;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < dim; ++i) mean += double(xr[i]) / double(dim);
      for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean) / double(dim);
      for (int64_t i = 0; i < dim; ++i)
        want[size_t(r * dim + i)] =
            float((xr[i] - mean) / std::sqrt(var + 1e-5) * w[size_t(i)] + (bias ? b[size_t(i)] : 0.0));
    }
    CHECK(rel_l2(y.data(), want.data(), y.size()) < 1e-6);
  }
}

// add with a gate (Qwen2-MoE's shared expert): y = a + scale · sigmoid(gate[r]) · b[r mod m], against
// double; without one, exactly a + scale · b as before (version 1's numbers).
TEST_CASE("add with a gate matches a double reference, and without one it is unchanged") {
  ThreadPool pool(2);
  const int64_t rows = 7, cols = 19;
  const auto x = random_floats(size_t(rows * cols), 71), g = random_floats(size_t(rows), 72, 6.0f);
  for (const int64_t b_rows : {int64_t(1), rows}) {
    CAPTURE(b_rows);
    const auto b = random_floats(size_t(b_rows * cols), 73);
    std::vector<float> y(x.size()), plain(x.size());
    AddArgs a{x.data(), b.data(), DType::F32, y.data(), rows, cols, b_rows, 0.75f, g.data()};
    add_cpu(a, pool);
    a.gate = nullptr;
    a.y = plain.data();
    add_cpu(a, pool);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = size_t(r * cols + c), bi = size_t((r % b_rows) * cols + c);
        const double s = 1.0 / (1.0 + std::exp(-double(g[size_t(r)])));
        CHECK(std::fabs(double(y[i]) - (double(x[i]) + 0.75 * s * double(b[bi]))) < 1e-5);
        CHECK(plain[i] == x[i] + 0.75f * b[bi]);  // bit for bit
      }
  }
}

TEST_CASE("matmul matches a double reference for every weight dtype, with bias and accumulate") {
  ThreadPool pool(2, matmul_scratch_floats(37, 5, DType::F16));
  for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
    for (int acc = 0; acc < 2; ++acc) {
      const int64_t rows = 5, k = 37, m = 23;  // odd sizes exercise every tail
      auto x = random_floats(size_t(rows * k), 1);
      std::vector<float> w_r, b_r;
      auto w = store(random_floats(size_t(m * k), 2), wt, &w_r);
      auto b = store(random_floats(size_t(m), 3), wt, &b_r);
      auto y0 = random_floats(size_t(rows * m), 4);
      std::vector<float> y = acc ? y0 : std::vector<float>(size_t(rows * m), kNaN);
      matmul_cpu(MatmulArgs{x.data(), w.data(), wt, b.data(), wt, y.data(), rows, k, m, acc == 1}, pool);
      std::vector<float> ref(size_t(rows * m));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < m; ++j) {
          double s = b_r[size_t(j)];
          for (int64_t i = 0; i < k; ++i) s += double(x[size_t(r * k + i)]) * w_r[size_t(j * k + i)];
          ref[size_t(r * m + j)] = float(s + (acc ? y0[size_t(r * m + j)] : 0.0));
        }
      CAPTURE(std::string(dtype_name(wt)));
      CAPTURE(acc);
      CHECK(rel_l2(y.data(), ref.data(), ref.size()) < 1e-6);
    }
  }
}

TEST_CASE("i8 storage: whole numbers kept, others rounded half to even and saturated, NaN 0, loads unscaled") {
  const float in[] = {0.0f,
                      -127.0f,
                      127.0f,
                      2.5f,
                      -2.5f,
                      3.5f,
                      300.0f,
                      -300.0f,
                      -128.0f,
                      std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity(),
                      kNaN};
  const int8_t want[] = {0, -127, 127, 2, -2, 4, 127, -128, -128, 127, -128, 0};
  int8_t q[12];
  convert_f32_to(in, DType::I8, q, 12);
  for (int i = 0; i < 12; ++i) {
    CAPTURE(i);
    CHECK(q[i] == want[i]);
    CHECK(load_as_f32(q, DType::I8, uint64_t(i)) == float(want[i]));
  }
  float back[12];
  convert_to_f32(q, DType::I8, back, 12);
  for (int i = 0; i < 12; ++i) CHECK(back[i] == float(want[i]));
  CHECK(dtype_size(DType::I8) == 1);
  CHECK(std::string(dtype_name(DType::I8)) == "i8");
  CHECK_FALSE(dtype_is_float(DType::I8));
}

TEST_CASE("thread pool scratch is 64-byte aligned for every worker (whole cache lines per AVX-512 load)") {
  for (uint64_t floats : {uint64_t(1), uint64_t(37), uint64_t(4096)}) {
    ThreadPool pool(3, floats);
    for (int w = 0; w < pool.size(); ++w) CHECK(reinterpret_cast<uintptr_t>(pool.scratch(w)) % 64 == 0);
    CHECK(pool.scratch_floats() == floats);
  }
}

// parallel_items: every item once, as a range of one, on a worker of the pool; none for n = 0; fewer
// items than workers; and the worker on item 0 waits until every other item is done (up to 10 s),
// which only other workers can do when items are claimed one at a time (a static split would have
// left items 1 … 16 to it).
TEST_CASE("thread pool parallel_items runs each item once, claimed one at a time") {
  for (int threads : {1, 3})
    for (int64_t n : {0, 1, 2, 50}) {
      CAPTURE(threads);
      CAPTURE(n);
      ThreadPool pool(threads);
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      std::atomic<int64_t> done{0};
      std::atomic<bool> timed_out{false};
      pool.parallel_items(n, [&](int64_t b, int64_t e, int w) {
        REQUIRE(e == b + 1);
        REQUIRE((w >= 0 && w < threads));
        if (b == 0 && threads > 1 && n > 1) {
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (done.load() < n - 1 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
          if (done.load() < n - 1) timed_out = true;
        }
        seen[size_t(b)].fetch_add(1);
        done.fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) CHECK(seen[size_t(i)].load() == 1);
      CHECK_FALSE(timed_out.load());
    }
}

TEST_CASE("matmul gives bit-identical results for 1 and 2 threads") {
  const int64_t rows = 3, k = 64, m = 50;
  auto x = random_floats(size_t(rows * k), 5);
  auto w = random_floats(size_t(m * k), 6);
  std::vector<float> y1(size_t(rows * m), kNaN), y2(size_t(rows * m), kNaN);
  ThreadPool p1(1, matmul_scratch_floats(k, rows, DType::F32)), p2(2, matmul_scratch_floats(k, rows, DType::F32));
  matmul_cpu(MatmulArgs{x.data(), w.data(), DType::F32, nullptr, DType::F32, y1.data(), rows, k, m, false}, p1);
  matmul_cpu(MatmulArgs{x.data(), w.data(), DType::F32, nullptr, DType::F32, y2.data(), rows, k, m, false}, p2);
  CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0);
}

// The one-row bf16 path widens in registers (dot_f32_bf16; on x86-64-v3 4 rows at a time): every
// output must be dot_f32_bf16's, the blocked path's (two rows) bit for bit, and near a double
// reference; k with and without a tail, m every remainder of 4.
TEST_CASE("matmul: the one-row bf16 path (decode) is bit-identical to the blocked path") {
  uint32_t seed = 17;
  for (const bool tier512 : avx512_tiers())
    for (int64_t k : {7, 16, 28, 70, 576})  // 28: a tail reaching lanes 8-11
      for (int64_t m : {1, 2, 3, 4, 5, 33}) {
        const Tier tier(tier512);
        CAPTURE(tier512);
        CAPTURE(k);
        CAPTURE(m);
        ThreadPool pool(2, matmul_scratch_floats(k, 2, DType::BF16));
        auto x1 = random_floats(size_t(k), seed++);
        std::vector<float> x2 = x1;
        x2.insert(x2.end(), x1.begin(), x1.end());  // two identical rows take the blocked path
        std::vector<float> w_r;
        auto w = store(random_floats(size_t(m * k), seed++), DType::BF16, &w_r);
        const auto* w16 = reinterpret_cast<const uint16_t*>(w.data());
        std::vector<float> y1(size_t(m), kNaN), y2(size_t(2 * m), kNaN);
        matmul_cpu(MatmulArgs{x1.data(), w.data(), DType::BF16, nullptr, DType::F32, y1.data(), 1, k, m, false}, pool);
        matmul_cpu(MatmulArgs{x2.data(), w.data(), DType::BF16, nullptr, DType::F32, y2.data(), 2, k, m, false}, pool);
        CHECK(std::memcmp(y1.data(), y2.data(), size_t(m) * 4) == 0);
        std::vector<float> ref(static_cast<size_t>(m));
        for (int64_t j = 0; j < m; ++j) {
          const float want = dot_f32_bf16(x1.data(), w16 + j * k, k);
          REQUIRE(std::memcmp(&y1[size_t(j)], &want, 4) == 0);
          double acc = 0;
          for (int64_t i = 0; i < k; ++i) acc += double(x1[size_t(i)]) * w_r[size_t(j * k + i)];
          ref[size_t(j)] = float(acc);
        }
        CHECK(rel_l2(y1.data(), ref.data(), ref.size()) < 1e-6);
      }
}

// The blocked product (on AVX-512 CPUs register tiles of 4 rows × 6 features; on x86-64-v3 ones
// 2 × 3, and past k = 2048 2 × 6 with k in blocks of 1024, each half of the lanes in turn; both
// tiers where the CPU has AVX-512) must give every output exactly
// what dot_f32 gives for its row and feature: the same lanes, order and FMAs. k covers whole
// 16-blocks, tails, k < 16 and several k blocks; m every remainder of 3 and 6; odd valid-row
// counts, padding rows between valid ones, bias, accumulate, and values with large cancellation.
TEST_CASE("matmul's blocked path equals dot_f32 per output, bit for bit, for every tile remainder") {
  const std::string tiers = tiers_exercised("the AVX2 tiles and panels");
  MESSAGE(tiers);
  ThreadPool pool(2, matmul_scratch_floats(3090, 10, DType::F16));
  uint32_t seed = 400;
  // Valid rows per batch row: 8, 7, 5 and 6 in all, so the AVX-512 tiles' groups of 4 end with 4,
  // 3, 1 and 2 rows, and pairs and groups cross the padding.
  const std::vector<std::vector<int32_t>> valid_sets = {{3, 5}, {2, 5}, {1, 4}, {2, 4}};
  for (const bool tier512 : avx512_tiers()) {
    const Tier tier(tier512);
    CAPTURE(tier512);
    for (int64_t k :
         {1, 7, 15, 16, 17, 31, 32, 48, 63, 64, 130, 300, 2049, 3090})  // 2049, 3090: panels, 2 and 4 k blocks
      for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13})
        for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
          CAPTURE(k);
          CAPTURE(m);
          CAPTURE(dtype_name(wt));
          const int64_t batch = 2, chunk = 5, rows = batch * chunk;
          auto x = random_floats(size_t(rows * k), seed++, 8.0f);
          std::vector<float> w_r, bias = random_floats(size_t(m), seed++);
          auto w = store(random_floats(size_t(m * k), seed++, 4.0f), wt, &w_r);
          const std::vector<int32_t>& valid = valid_sets[size_t(k + m) % valid_sets.size()];
          std::vector<float> y = random_floats(size_t(rows * m), seed++);
          const std::vector<float> y0 = y;
          MatmulArgs a{x.data(), w.data(), wt, bias.data(), DType::F32,   y.data(),
                       rows,     k,        m,  true,        valid.data(), batch};
          matmul_cpu(a, pool);
          check_accumulated_rows(y, y0, m, chunk, valid, [&](int64_t r, int64_t j) {
            return dot_f32(x.data() + r * k, w_r.data() + j * k, k) + bias[size_t(j)];
          });
        }
  }
}

// i8 weights (matmul version 2): every output is dot_f32 over the widened integers q, times its
// row's scale, plus the bias: bit for bit on the one-row path (dot_f32_i8, on AVX-512 8 rows at a
// time widened in registers) and on the blocked path (q widened into scratch, every tile and panel),
// with padding rows, bias and accumulate; and near a double reference of x·(q·scale)ᵀ.
TEST_CASE("matmul with i8 weights equals dot_f32 over q times the row scale, bit for bit, on every path") {
  ThreadPool pool(2, matmul_scratch_floats(3090, 10, DType::I8));
  uint32_t seed = 900;
  const std::vector<std::vector<int32_t>> valid_sets = {{3, 5}, {2, 5}, {1, 4}, {2, 4}};
  for (const bool tier512 : avx512_tiers()) {
    const Tier tier(tier512);
    CAPTURE(tier512);
    for (int64_t k : {1, 7, 16, 17, 28, 64, 130, 576, 2049, 3090})
      for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 13}) {
        CAPTURE(k);
        CAPTURE(m);
        std::vector<int8_t> q(size_t(m * k));
        std::mt19937 rng(seed++);
        for (int8_t& v : q) v = int8_t(int(rng() % 255) - 127);
        std::vector<float> qf(q.begin(), q.end()), scale = random_floats(size_t(m), seed++, 0.01f);
        std::vector<float> bias = random_floats(size_t(m), seed++);
        const int64_t batch = 2, chunk = 5, rows = batch * chunk;
        auto x = random_floats(size_t(rows * k), seed++, 8.0f);
        const std::vector<int32_t>& valid = valid_sets[size_t(k + m) % valid_sets.size()];
        std::vector<float> y = random_floats(size_t(rows * m), seed++);
        const std::vector<float> y0 = y;
        MatmulArgs a{x.data(), q.data(), DType::I8, bias.data(),  DType::F32, y.data(),    rows,
                     k,        m,        true,      valid.data(), batch,      scale.data()};
        matmul_cpu(a, pool);
        check_accumulated_rows(y, y0, m, chunk, valid, [&](int64_t r, int64_t j) {
          return dot_f32(x.data() + r * k, qf.data() + j * k, k) * scale[size_t(j)] + bias[size_t(j)];
        });
        // One row (decode), stored: the same bits as dot_f32 over q, and near x·(q·scale)ᵀ + bias.
        std::vector<float> y1(static_cast<size_t>(m), kNaN), ref(static_cast<size_t>(m));
        matmul_cpu(MatmulArgs{x.data(), q.data(), DType::I8, bias.data(), DType::F32, y1.data(), 1, k, m, false,
                              nullptr, 1, scale.data()},
                   pool);
        for (int64_t j = 0; j < m; ++j) {
          REQUIRE(dot_f32_i8(x.data(), q.data() + j * k, k) == dot_f32(x.data(), qf.data() + j * k, k));
          const float want = dot_f32(x.data(), qf.data() + j * k, k) * scale[size_t(j)] + bias[size_t(j)];
          REQUIRE(std::memcmp(&y1[size_t(j)], &want, 4) == 0);
          double acc = bias[size_t(j)];
          for (int64_t i = 0; i < k; ++i)
            acc += double(x[size_t(i)]) * (double(qf[size_t(j * k + i)]) * scale[size_t(j)]);
          ref[size_t(j)] = float(acc);
        }
        CHECK(rel_l2(y1.data(), ref.data(), ref.size()) < 1e-5);
        // Decode's n_valid: 1 computes the row (the same bits), 0 leaves it as it was.
        for (int32_t nv : {1, 0}) {
          std::vector<float> yv(static_cast<size_t>(m), kNaN);
          matmul_cpu(MatmulArgs{x.data(), q.data(), DType::I8, bias.data(), DType::F32, yv.data(), 1, k, m, false, &nv,
                                1, scale.data()},
                     pool);
          for (int64_t j = 0; j < m; ++j) {
            const bool ok = nv == 1 ? std::memcmp(&yv[size_t(j)], &y1[size_t(j)], 4) == 0 : std::isnan(yv[size_t(j)]);
            REQUIRE(ok);
          }
        }
      }
  }
}

TEST_CASE("i4 storage: blocks of 32 values in 16 bytes, value b low and 16 + b high, q + 8, loads the byte") {
  uint8_t row[32] = {};  // two blocks, 64 values
  row[0] = 0x80;         // value 0: q = 0 - 8, value 16: 8 - 8
  row[1] = 0x0f;         // value 1: 7, value 17: -8
  row[15] = 0x7a;        // value 15: 2, value 31: -1
  row[16] = 0xf3;        // value 32: -5, value 48: 7
  const int64_t at[8] = {0, 16, 1, 17, 15, 31, 32, 48};
  const int want[8] = {-8, 0, 7, -8, 2, -1, -5, 7};
  for (int i = 0; i < 8; ++i) CHECK(load_i4(row, uint64_t(at[i])) == want[i]);
  CHECK(load_i4(row, 2) == -8);  // a zero byte: q = -8 both
  CHECK(dtype_size(DType::I4) == 1);
  CHECK(std::string(dtype_name(DType::I4)) == "i4");
  CHECK_FALSE(dtype_is_float(DType::I4));
  CHECK(load_as_f32(row, DType::I4, 15) == 122.0f);
  uint8_t b[3];
  const float in[3] = {255.0f, 300.0f, -3.0f};
  convert_f32_to(in, DType::I4, b, 3);
  CHECK(b[0] == 255);
  CHECK(b[1] == 255);
  CHECK(b[2] == 0);
  // dequant_i4 from an even offset, across group boundaries: float(q) · the group's scale.
  const float scales[2] = {0.5f, -3.0f};
  float d[4];
  dequant_i4(row, scales, 32, 30, 4, d);  // values 30 … 33, groups of 32
  CHECK(d[0] == -4.0f);                   // value 30: byte 14 (0), high nibble: -8 · 0.5
  CHECK(d[1] == -0.5f);                   // value 31: -1 · 0.5
  CHECK(d[2] == 15.0f);                   // value 32: -5 · -3
  CHECK(d[3] == 24.0f);                   // value 33: byte 17 (0), low nibble: -8 · -3
}

// A quantized matmul (q: its weights, dtype, scales, group and zero points) against the f32 matmul on the
// dequantized weights wd (m × k), bit for bit: rows × k random activations, a bias, padding rows (from
// 10 rows: a batch of 2 whose first chunk is short), storing or accumulating, 1 and 2 threads. Returns x.
std::vector<float> check_quantized_matmul(MatmulArgs q, const std::vector<float>& wd, int64_t rows, int64_t k,
                                          int64_t m, uint32_t& seed) {
  const std::vector<float> bias = random_floats(size_t(m), seed++);
  const int64_t batch = rows >= 10 ? 2 : 1, chunk = rows / batch;
  const std::vector<int32_t> valid =
      batch == 2 ? std::vector<int32_t>{int32_t(chunk - 1), int32_t(chunk)} : std::vector<int32_t>{int32_t(chunk)};
  std::vector<float> x = random_floats(size_t(rows * k), seed++, 4.0f);
  const std::vector<float> y0 = random_floats(size_t(rows * m), seed++);
  ThreadPool p1(1, matmul_scratch_floats(k, rows, q.w_dtype)), p2(2, matmul_scratch_floats(k, rows, q.w_dtype));
  for (const bool acc : {false, true}) {
    std::vector<float> yf = y0, y1 = y0, y2 = y0;
    matmul_cpu(MatmulArgs{x.data(), wd.data(), DType::F32, bias.data(), DType::F32, yf.data(), rows, k, m, acc,
                          valid.data(), batch},
               p2);
    q.x = x.data();
    q.bias = bias.data();
    q.bias_dtype = DType::F32;
    q.rows = rows;
    q.k = k;
    q.m = m;
    q.accumulate = acc;
    q.n_valid = valid.data();
    q.batch = batch;
    q.y = y1.data();
    matmul_cpu(q, p1);
    q.y = y2.data();
    matmul_cpu(q, p2);
    REQUIRE(std::memcmp(y1.data(), yf.data(), yf.size() * 4) == 0);
    REQUIRE(std::memcmp(y2.data(), yf.data(), yf.size() * 4) == 0);
  }
  return x;
}

// i4 weights (two values a byte, a scale per group along k) dequantize to q · scale and then run as f32
// weights: every path (one row: AVX-512 or AVX2 tiles, or dot_f32_i4; 2-15 rows: the dot-product tiles; 16 and
// more: the GEMM, k in blocks over 2,048) must give the f32 matmul's bits on those values, with bias,
// accumulate and padding rows, for 1 and 2 threads and both tiers.
TEST_CASE("matmul with i4 weights equals the f32 matmul on the dequantized weights, bit for bit, on every path") {
  struct Shape {
    int64_t k, group;
  };
  uint32_t seed = 1500;
  for (const Shape sh : {Shape{32, 32}, Shape{64, 32}, Shape{160, 32}, Shape{576, 64}, Shape{1024, 128},
                         Shape{2304, 128}, Shape{4160, 64}, Shape{4096, 1024}, Shape{576, 96}})
    for (const bool tier512 : avx512_tiers())
      for (int64_t m : {1, 5, 8, 13, 30})
        for (int64_t rows : {1, 3, 10, 16, 40})
          for (const bool asym : {false, true}) {  // asymmetric: a zero point per group (matmul version 4)
            const int64_t k = sh.k, group = sh.group, groups = k / group;
            if (k > 1024 && m > 13) continue;             // (keeps the test short; 13 covers the tiles' short ends)
            if (asym && (m == 8 || rows == 3)) continue;  // (likewise)
            CAPTURE(asym);
            const Tier tier(tier512);
            CAPTURE(tier512);
            CAPTURE(k);
            CAPTURE(group);
            CAPTURE(m);
            CAPTURE(rows);
            std::mt19937 rng(seed++);
            std::vector<uint8_t> w(size_t(m * k / 2));
            for (uint8_t& b : w) b = uint8_t(rng());
            std::vector<float> scale = random_floats(size_t(m * groups), seed++, 0.05f);
            scale[0] = 0.0f;  // a group of zeros
            std::vector<int8_t> zero(size_t(m * groups), 8);
            if (asym) {
              for (int8_t& z : zero) z = int8_t(rng() % 16);
              zero.back() = -128;  // (an edited plan's zero points may be any int8: nibble − z still exact)
              if (zero.size() > 1) zero[zero.size() - 2] = 127;
            }
            // The dequantized weights, by the documented layout (kernels/dtype.h), not by the kernels' helpers.
            std::vector<float> wd(size_t(m * k));
            for (int64_t j = 0; j < m; ++j)
              for (int64_t i = 0; i < k; ++i) {
                const uint8_t b = w[size_t(j * k / 2 + i / 32 * 16 + i % 16)];
                const int q = int(i % 32 < 16 ? b & 15 : b >> 4) - zero[size_t(j * groups + i / group)];
                wd[size_t(j * k + i)] = float(q) * scale[size_t(j * groups + i / group)];
              }
            MatmulArgs q{};
            q.w = w.data();
            q.w_dtype = DType::I4;
            q.w_scale = scale.data();
            q.group = group;
            q.w_zero = asym ? zero.data() : nullptr;
            const std::vector<float> x = check_quantized_matmul(q, wd, rows, k, m, seed);
            if (rows == 1)
              for (int64_t j = 0; j < m; ++j)
                REQUIRE(dot_f32_i4(x.data(), w.data() + j * k / 2, scale.data() + j * groups, group, k,
                                   asym ? zero.data() + j * groups : nullptr) ==
                        dot_f32(x.data(), wd.data() + j * k, k));
          }
}

// float8_e4m3fn codes by their definition (1 sign, 4 exponent bits of bias 7, 3 mantissa bits,
// subnormals below 2^-6), not by the kernels' bit moves; the NaN codes as the kernels read them (±480).
float f8_reference(uint8_t code) {
  const int e = (code >> 3) & 15, m = code & 7;
  const float mag = e == 0 ? std::ldexp(float(m), -9) : std::ldexp(1.0f + float(m) / 8.0f, e - 7);
  return code & 0x80 ? -mag : mag;
}

TEST_CASE("f8e4m3 codes: every value, the kernels' bit moves, and rounding to nearest even") {
  for (int c = 0; c < 256; ++c) {
    CAPTURE(c);
    const uint8_t code = uint8_t(c);
    REQUIRE(f8e4m3_value(code) == f8_reference(code));  // (the NaN codes: ±480, as documented)
    REQUIRE(load_as_f32(&code, DType::F8E4M3, 0) == f8_reference(code));
    if ((c & 0x7f) == 0x7f) {
      CHECK(std::fabs(f8e4m3_value(code)) == 480.0f);
      continue;
    }
    CHECK(f32_to_f8e4m3(f8_reference(code)) == (c == 0x80 ? 0x80 : c));  // every value's own code, -0 kept
    uint8_t back = 0;
    store_from_f32(&back, DType::F8E4M3, 0, f8_reference(code));
    CHECK(back == code);
  }
  // Halfway between two codes rounds to the even mantissa; past the largest (448) saturates, infinities
  // too, and NaN gives the NaN code, as torch 2.15's CPU cast does (checked against it when written).
  CHECK(f32_to_f8e4m3(1.0625f) == 0x38);                 // 1 + 1/16: between 1 (even) and 1.125
  CHECK(f32_to_f8e4m3(1.1875f) == 0x3a);                 // between 1.125 and 1.25 (even)
  CHECK(f32_to_f8e4m3(1.0625001f) == 0x39);              // just past halfway
  CHECK(f32_to_f8e4m3(std::ldexp(3.0f, -10)) == 0x02);   // 1.5 · 2^-9: subnormals 1 and 2 (even)
  CHECK(f32_to_f8e4m3(std::ldexp(1.0f, -10)) == 0x00);   // half the smallest subnormal: to 0 (even)
  CHECK(f32_to_f8e4m3(std::ldexp(15.0f, -10)) == 0x08);  // 7.5 · 2^-9: up to the smallest normal, 2^-6
  CHECK(f32_to_f8e4m3(-463.9f) == 0xfe);
  CHECK(f32_to_f8e4m3(464.0f) == 0x7e);
  CHECK(f32_to_f8e4m3(464.0001f) == 0x7e);
  CHECK(f32_to_f8e4m3(-479.9f) == 0xfe);
  CHECK(f32_to_f8e4m3(480.0f) == 0x7e);
  CHECK(f32_to_f8e4m3(1e30f) == 0x7e);
  CHECK(f32_to_f8e4m3(-std::numeric_limits<float>::infinity()) == 0xfe);
  CHECK((f32_to_f8e4m3(std::nanf("")) & 0x7f) == 0x7f);
  CHECK(f32_to_f8e4m3(1e-30f) == 0x00);
}

// f8e4m3 weights (a byte a value, a scale per group along k, the last group of a row possibly short)
// dequantize to value · scale and then run as f32 weights: every path (one row: AVX-512 or AVX2 tiles,
// or dot_f32_f8; 2-15 rows: the dot-product tiles; 16 and more: the GEMM, k in blocks over 2,048) must give
// the f32 matmul's bits on those values, with bias, accumulate and padding rows, for 1 and 2 threads and
// both tiers; including NaN codes (±480), scales of 0, subnormal scales, and scales from 2^8 up, where
// the tiles' fused multiplier scale · 2^120 would overflow and they take two multiplies. (112 in groups
// of 48: a short last group with a whole 16-value step and no tail.)
TEST_CASE("matmul with f8e4m3 weights equals the f32 matmul on the dequantized weights, bit for bit, on every path") {
  struct Shape {
    int64_t k, group;
  };
  uint32_t seed = 1700;
  for (const Shape sh : {Shape{16, 16}, Shape{40, 16}, Shape{100, 100}, Shape{96, 32}, Shape{112, 48}, Shape{576, 128},
                         Shape{1024, 128}, Shape{2304, 128}, Shape{4160, 4160}, Shape{4096, 1024}})
    for (const bool tier512 : avx512_tiers())
      for (int64_t m : {1, 5, 8, 13, 30})
        for (int64_t rows : {1, 3, 10, 16, 40}) {
          const int64_t k = sh.k, group = sh.group, groups = (k + group - 1) / group;
          if (k > 1024 && m > 13) continue;  // (keeps the test short; 13 covers the tiles' short ends)
          const Tier tier(tier512);
          CAPTURE(tier512);
          CAPTURE(k);
          CAPTURE(group);
          CAPTURE(m);
          CAPTURE(rows);
          std::mt19937 rng(seed++);
          std::vector<uint8_t> w(size_t(m * k));
          for (uint8_t& b : w) b = uint8_t(rng());
          std::vector<float> scale = random_floats(size_t(m * groups), seed++, 0.05f);
          for (float& v : scale) v = std::fabs(v);
          scale[0] = 0.0f;                          // a group of zeros
          if (scale.size() > 2) scale[1] = 1e-40f;  // subnormal
          scale.back() = 300.0f;                    // past 2^8: scale · 2^120 overflows f32
          std::vector<float> wd(size_t(m * k));
          for (int64_t j = 0; j < m; ++j)
            for (int64_t i = 0; i < k; ++i)
              wd[size_t(j * k + i)] = f8_reference(w[size_t(j * k + i)]) * scale[size_t(j * groups + i / group)];
          MatmulArgs q{};
          q.w = w.data();
          q.w_dtype = DType::F8E4M3;
          q.w_scale = scale.data();
          q.group = group;
          const std::vector<float> x = check_quantized_matmul(q, wd, rows, k, m, seed);
          if (rows == 1)
            for (int64_t j = 0; j < m; ++j)
              REQUIRE(dot_f32_f8(x.data(), w.data() + j * k, scale.data() + j * groups, group, k) ==
                      dot_f32(x.data(), wd.data() + j * k, k));
        }
}

// Float experts in bf16 and f16 (rows of 74 and 41: tails past the 16-value steps; and with 1 or 2
// threads a feature alone at a block's end and down rows short of 4) give the f32 experts' bits on the
// widened values, on each CPU tier (the matmul's tiles for bf16) and thread count.
TEST_CASE("moe_experts with bf16 and f16 weights equals the f32 experts on the widened weights") {
  const int64_t E = 3, D = 74, F = 41, K = 2, rows = 4;
  uint32_t seed = 1950;
  const auto h = random_floats(size_t(rows * D), seed++, 2.0f);
  const std::vector<int32_t> ids = {0, 2, 1, -1, 2, 2, 0, 1};  // -1: skipped
  const auto wts = random_floats(size_t(rows * K), seed++);
  const std::vector<int32_t> valid = {3};
  for (DType t : {DType::BF16, DType::F16}) {
    CAPTURE(std::string(dtype_name(t)));
    auto stored = [&](int64_t n, std::vector<float>* widened) {
      const auto f = random_floats(size_t(n), seed++, 0.2f);
      std::vector<uint8_t> w(size_t(n) * dtype_size(t));
      for (int64_t i = 0; i < n; ++i) store_from_f32(w.data(), t, uint64_t(i), f[size_t(i)]);
      widened->resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) (*widened)[size_t(i)] = load_as_f32(w.data(), t, uint64_t(i));
      return w;
    };
    std::vector<float> gu_f, down_f;
    const auto gu = stored(E * 2 * F * D, &gu_f), down = stored(E * D * F, &down_f);
    for (const bool tier512 : avx512_tiers())
      for (int threads : {1, 2}) {
        const Tier tier(tier512);
        CAPTURE(tier512);
        CAPTURE(threads);
        ThreadPool pool(threads, moe_experts_scratch_floats(D, F));
        std::vector<float> y(size_t(rows * D), 0.5f), ws(size_t(rows * K * F)), yf(y), wsf(ws);
        moe_experts_cpu({h.data(), ids.data(), wts.data(), gu.data(), down.data(), t, y.data(), ws.data(), rows, D, E,
                         F, K, valid.data(), 1},
                        pool);
        moe_experts_cpu({h.data(), ids.data(), wts.data(), gu_f.data(), down_f.data(), DType::F32, yf.data(),
                         wsf.data(), rows, D, E, F, K, valid.data(), 1},
                        pool);
        CHECK(std::memcmp(y.data(), yf.data(), y.size() * 4) == 0);
      }
  }
}

// moe_experts version 5 with accumulate 0 writes the sum: y's old values (NaN here) are never read, and the rows
// equal those that accumulating adds to zeros, bit for bit; rows past n_valid keep what they held; with accumulate 1
// y += the sum, as versions 1-4 (onto 0.5: the same terms, added in another order).
TEST_CASE("moe_experts version 5 writes the experts' sum or adds it") {
  const int64_t E = 3, D = 40, F = 24, K = 2, rows = 4;
  uint32_t seed = 2024;
  const auto h = random_floats(size_t(rows * D), seed++, 2.0f);
  const std::vector<int32_t> ids = {0, 2, 1, -1, 2, 2, 0, 1};  // -1: skipped
  const auto wts = random_floats(size_t(rows * K), seed++);
  const auto gu = random_floats(size_t(E * 2 * F * D), seed++, 0.2f),
             down = random_floats(size_t(E * D * F), seed++, 0.2f);
  const std::vector<int32_t> valid = {3};
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    ThreadPool pool(threads, moe_experts_scratch_floats(D, F));
    auto run = [&](float fill, bool accumulate) {
      std::vector<float> y(size_t(rows * D), fill), ws(size_t(rows * K * F));
      MoeExpertsArgs a{h.data(), ids.data(), wts.data(), gu.data(), down.data(), DType::F32,   y.data(), ws.data(),
                       rows,     D,          E,          F,         K,           valid.data(), 1};
      a.accumulate = accumulate;
      moe_experts_cpu(a, pool);
      return y;
    };
    const std::vector<float> added = run(0.0f, true), written = run(std::nanf(""), false), onto = run(0.5f, true);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < D; ++d) {
        const size_t i = size_t(r * D + d);
        if (r < valid[0]) {
          CHECK(std::memcmp(&written[i], &added[i], 4) == 0);
          CHECK(onto[i] == doctest::Approx(0.5 + added[i]).epsilon(1e-5));  // (the sum in another order)
        } else {
          CHECK(std::isnan(written[i]));  // (a padding row: left as it was)
        }
      }
  }
}

// moe_experts version 2 reads i8, i4 and f8e4m3 expert weights as matmul does (version 3 asymmetric i4,
// with zero points 0 to 16): i4 and f8e4m3 rows are the f32 products q · scale (float(nibble − zero) ·
// scale), so the output is version 1's on those values, bit for bit; i8 rows take
// each product over the integers, then the row's scale (checked against that formula in double).
// Ids outside the experts and padding rows are skipped; 1, 2 and 3 threads.
TEST_CASE("moe_experts with quantized weights equals the float experts on the dequantized weights") {
  const int64_t E = 3, K = 2, rows = 4;
  uint32_t seed = 1900;
  const std::vector<int32_t> ids = {0, 2, 1, 7, 2, 2, 0, 1};  // 7: skipped
  const auto wts = random_floats(size_t(rows * K), seed++);
  const std::vector<int32_t> valid = {3};  // row 3 is padding
  for (const auto& scheme :
       {std::pair<DType, bool>{DType::I8, false}, {DType::I4, false}, {DType::I4, true}, {DType::F8E4M3, false}}) {
    const DType t = scheme.first;  // (not structured bindings: the lambdas below capture them)
    const bool asym = scheme.second;
    CAPTURE(dtype_name(t));
    CAPTURE(asym);
    // i4 rows are whole 32-value blocks; i8 and f8e4m3 ones of 74 and 41 leave tails past the 16-value
    // steps (f8e4m3: gate|up in groups of 48, a short last one; down in one group of 41, not a multiple of
    // 16), and blocks of the threads' split that end on a lone feature or fewer than 4 down rows (i4: with
    // 3 threads, down blocks of 22)
    const int64_t D = t == DType::I4 ? 64 : 74, F = t == DType::I4 ? 96 : 41;
    const auto h = random_floats(size_t(rows * D), seed++, 2.0f);
    // (rows of k values: E·2·F of D for w_gu, E·D of F for w_down), each with its scales
    struct Q {
      std::vector<uint8_t> w;
      std::vector<float> scale, deq;
      int64_t group;
      std::vector<int8_t> zero;  // asymmetric i4
    };
    std::mt19937 rng(seed++);
    auto make = [&](int64_t n, int64_t k, int64_t group) {
      Q q;
      q.group = t == DType::I8 ? 0 : group;
      const int64_t groups = t == DType::I8 ? 1 : (k + group - 1) / group;
      q.w.resize(size_t(t == DType::I4 ? n * k / 2 : n * k));
      for (uint8_t& b : q.w) b = uint8_t(rng());  // (f8e4m3: the NaN codes too, read as ±480)
      q.scale = random_floats(size_t(n * groups), seed++, 0.05f);
      if (asym)
        for (int64_t g = 0; g < n * groups; ++g) q.zero.push_back(int8_t(rng() % 17));
      q.deq.resize(size_t(n * k));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < k; ++i) {
          float v = 0.0f;
          if (t == DType::I8) v = float(int8_t(q.w[size_t(r * k + i)]));  // unscaled: see below
          else if (t == DType::I4)
            v = float(load_i4(q.w.data() + r * k / 2, uint64_t(i)) + 8 -
                      (asym ? q.zero[size_t(r * groups + i / group)] : 8)) *
                q.scale[size_t(r * groups + i / group)];
          else v = f8_reference(q.w[size_t(r * k + i)]) * q.scale[size_t(r * groups + i / group)];
          q.deq[size_t(r * k + i)] = v;
        }
      return q;
    };
    const Q gu = make(E * 2 * F, D, t == DType::F8E4M3 ? 48 : 32), down = make(E * D, F, t == DType::F8E4M3 ? F : 32);
    std::vector<float> first;                  // every tier and thread count gives the same bits
    for (const bool tier512 : avx512_tiers())  // (either: the matmul's tiles, rows side by side)
      for (int threads : {1, 2, 3}) {
        const Tier tier(tier512);
        CAPTURE(tier512);
        CAPTURE(threads);
        ThreadPool pool(threads, moe_experts_scratch_floats(D, F));
        std::vector<float> yq(size_t(rows * D), 0.5f), ws(size_t(rows * K * F));
        MoeExpertsArgs a{h.data(),
                         ids.data(),
                         wts.data(),
                         gu.w.data(),
                         down.w.data(),
                         t,
                         yq.data(),
                         ws.data(),
                         rows,
                         D,
                         E,
                         F,
                         K,
                         valid.data(),
                         1,
                         gu.scale.data(),
                         down.scale.data(),
                         gu.group,
                         down.group,
                         asym ? gu.zero.data() : nullptr,
                         asym ? down.zero.data() : nullptr};
        moe_experts_cpu(a, pool);
        if (first.empty()) first = yq;
        CHECK(std::memcmp(yq.data(), first.data(), first.size() * 4) == 0);
        if (t != DType::I8) {
          std::vector<float> yf(size_t(rows * D), 0.5f), wsf(ws.size());
          moe_experts_cpu({h.data(), ids.data(), wts.data(), gu.deq.data(), down.deq.data(), DType::F32, yf.data(),
                           wsf.data(), rows, D, E, F, K, valid.data(), 1},
                          pool);
          CHECK(std::memcmp(yq.data(), yf.data(), yf.size() * 4) == 0);
          continue;
        }
        // i8: out = (x · q) · scale per row, in double.
        double err = 0, norm = 0;
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> y(size_t(D), 0.5);
          for (int64_t k = 0; r < valid[0] && k < K; ++k) {
            const int32_t e = ids[size_t(r * K + k)];
            if (e < 0 || e >= E) continue;
            std::vector<double> act(static_cast<size_t>(F));
            for (int64_t f = 0; f < F; ++f) {
              double g = 0, u = 0;
              for (int64_t i = 0; i < D; ++i) {
                g += double(h[size_t(r * D + i)]) * gu.deq[size_t((e * 2 * F + f) * D + i)];
                u += double(h[size_t(r * D + i)]) * gu.deq[size_t((e * 2 * F + F + f) * D + i)];
              }
              g *= gu.scale[size_t(e * 2 * F + f)];
              u *= gu.scale[size_t(e * 2 * F + F + f)];
              act[size_t(f)] = g / (1 + std::exp(-g)) * u;
            }
            for (int64_t d = 0; d < D; ++d) {
              double o = 0;
              for (int64_t f = 0; f < F; ++f) o += act[size_t(f)] * down.deq[size_t((e * D + d) * F + f)];
              y[size_t(d)] += double(wts[size_t(r * K + k)]) * o * down.scale[size_t(e * D + d)];
            }
          }
          for (int64_t d = 0; d < D; ++d) {
            err += (yq[size_t(r * D + d)] - y[size_t(d)]) * (yq[size_t(r * D + d)] - y[size_t(d)]);
            norm += y[size_t(d)] * y[size_t(d)];
          }
        }
        CHECK(std::sqrt(err / norm) < 1e-5);
        for (int64_t d = 0; d < D; ++d) CHECK(yq[size_t(3 * D + d)] == 0.5f);  // the padding row is untouched
      }
  }
}

// The activation op's kinds against their formulas in double (relu², Arcee's, keeps a NaN as torch's relu
// does; xIELU, Apertus's, with parameters as XIELUActivation's softplus leaves them, its eps large enough to matter),
// in place and not.
TEST_CASE("activation: SiLU, GELU, tanh GELU, QuickGELU, relu², relu and xIELU match their formulas") {
  ThreadPool pool(2, 0);
  std::vector<float> x = random_floats(1031, 77, 4.0f);
  x[5] = kNaN;
  x[6] = 0.0f;
  x[7] = -0.0f;
  const XieluParams xp{0.7f, 1.1f, 0.45f, -0.2f};
  for (int64_t kind = 0; kind <= int64_t(Activation::kXielu); ++kind)
    for (bool in_place : {false, true}) {
      CAPTURE(kind);
      CAPTURE(in_place);
      std::vector<float> in = x, out(x.size(), kNaN);
      activation_cpu({in.data(), in_place ? in.data() : out.data(), int64_t(x.size()), Activation(kind), xp}, pool);
      const std::vector<float>& y = in_place ? in : out;
      for (size_t i = 0; i < x.size(); ++i) {
        const double v = x[i];
        const double want = kind == 0   ? v / (1 + std::exp(-v))
                            : kind == 1 ? 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))
                            : kind == 2 ? 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))
                            : kind == 3 ? v / (1 + std::exp(-1.702 * v))
                            : kind == 6
                                ? (v > 0 ? xp.alpha_p * v * v + xp.beta * v
                                         : (std::expm1(std::min(v, double(xp.eps))) - v) * xp.alpha_n + xp.beta * v)
                                : (v > 0           ? (kind == 4 ? v * v : v)
                                   : std::isnan(v) ? v
                                                   : 0.0);
        if (std::isnan(want)) CHECK(std::isnan(y[i]));
        else CHECK(std::fabs(y[i] - want) <= 2e-6 * (1 + std::fabs(want)));
      }
    }
}

// Phi-3.5-MoE's sparsemixer (moe_route version 4, method 3) against transformers' sparsemixer written out in double:
// from the raw logits, the best expert weighted by the softmax over those whose (max - s) / max(|s|, max) is at most
// 2·jitter_eps, then the best of the others likewise (the first masked too); the hub's threshold (one expert kept at
// most steps: weights 1), 0.3, and one that keeps every expert; a padding row (no experts, weights 0); 1 and 2 threads.
// Then logits set by hand, their weights worked out by hand (as torch gives them): ties (the lower id, and 0/0 ratios
// masking nothing) and a row of negative logits.
TEST_CASE("moe_route's sparsemixer (version 4) picks and weighs two experts as Phi-3.5-MoE does") {
  const int64_t E = 16, D = 32, K = 2, rows = 7;
  uint32_t seed = 3100;
  const auto h = random_floats(size_t(rows * D), seed++, 1.0f);
  const auto gate = random_floats(size_t(E * D), seed++, 0.3f);
  const std::vector<int32_t> valid = {6};  // (row 6 is padding)
  std::map<float, int> kept_several;       // steps whose softmax keeps more than one expert, by threshold
  for (float jitter : {0.01f, 0.3f, 100.0f})
    for (int threads : {1, 2}) {
      CAPTURE(jitter);
      CAPTURE(threads);
      ThreadPool pool(threads, moe_route_scratch_floats(E, D, DType::F32));
      std::vector<int32_t> ids(size_t(rows * K), 99);
      std::vector<float> w(size_t(rows * K), kNaN);
      MoeRouteArgs ra{h.data(),
                      gate.data(),
                      DType::F32,
                      nullptr,
                      DType::F32,
                      ids.data(),
                      w.data(),
                      rows,
                      D,
                      E,
                      K,
                      MoeTopk::kSparseMixer,
                      MoeScoring::kSoftmax,
                      1,
                      1,
                      false,
                      1.0f,
                      valid.data(),
                      1};
      ra.jitter_eps = jitter;
      moe_route_cpu(ra, pool);
      int shared = 0;
      for (int64_t r = 0; r < rows; ++r) {
        if (r == 6) {
          CHECK((ids[size_t(r * K)] == -1 && ids[size_t(r * K + 1)] == -1));
          CHECK((w[size_t(r * K)] == 0.0f && w[size_t(r * K + 1)] == 0.0f));
          continue;
        }
        std::vector<double> s(static_cast<size_t>(E));
        for (int64_t e = 0; e < E; ++e) {
          double d = 0;
          for (int64_t i = 0; i < D; ++i) d += double(h[size_t(r * D + i)]) * gate[size_t(e * D + i)];
          s[size_t(e)] = d;
        }
        int64_t first = -1;
        for (int64_t k = 0; k < K; ++k) {
          int64_t best = -1;
          for (int64_t e = 0; e < E; ++e)
            if (e != first && (best < 0 || s[size_t(e)] > s[size_t(best)])) best = e;
          const double m = s[size_t(best)];
          double z = 0, runner = -1e300;
          int kept = 0;
          for (int64_t e = 0; e < E; ++e) {
            if (e == first) continue;
            if (e != best) runner = std::max(runner, s[size_t(e)]);
            const double ratio = (m - s[size_t(e)]) / std::max(std::fabs(s[size_t(e)]), m);
            REQUIRE(std::fabs(ratio - 2.0 * jitter) > 1e-4);  // (no mask decided by rounding)
            if (ratio > 2.0 * jitter) continue;
            z += std::exp(s[size_t(e)] - m);
            ++kept;
          }
          REQUIRE(m - runner > 1e-4);  // (no near tie)
          shared += kept > 1;
          CHECK(ids[size_t(r * K + k)] == best);
          CHECK(w[size_t(r * K + k)] == doctest::Approx(1.0 / z).epsilon(1e-6));
          first = best;
        }
      }
      kept_several[jitter] = shared;
    }
  // (the hub's threshold keeps one expert at most steps (weight 1), a threshold of 200 every expert at every step)
  CHECK(kept_several[100.0f] == 2 * (rows - 1));
  CHECK(kept_several[0.01f] < rows - 1);
  // Hand-set logits (h a row of them, the gate the identity): [0, 0, -1, 0] with jitter 0.01: expert 0 (the first of
  // the tied best), its softmax over 0, 1 and 3 (0/0 ratios, kept; -1's ratio 1, masked): 1/3; then expert 1 over 1
  // and 3: 1/2. [-1, -2, -1.01, -5]: expert 0 over 0 and 2 (ratio 0.01/1.01): 1/(1 + e^-0.01); then expert 2 alone: 1.
  {
    const int64_t n = 4;
    std::vector<float> eye(size_t(n * n), 0.0f);
    for (int64_t e = 0; e < n; ++e) eye[size_t(e * n + e)] = 1.0f;
    const std::vector<float> logits = {0.0f, 0.0f, -1.0f, 0.0f, -1.0f, -2.0f, -1.01f, -5.0f};
    ThreadPool pool(1, moe_route_scratch_floats(n, n, DType::F32));
    std::vector<int32_t> ids(4, 99);
    std::vector<float> w(4, kNaN);
    MoeRouteArgs ra{
        logits.data(),         eye.data(),           DType::F32, nullptr, DType::F32, ids.data(), w.data(), 2, n, n, 2,
        MoeTopk::kSparseMixer, MoeScoring::kSoftmax, 1,          1,       false,      1.0f,       nullptr,  1};
    ra.jitter_eps = 0.01f;
    moe_route_cpu(ra, pool);
    CHECK(ids == std::vector<int32_t>{0, 1, 0, 2});
    CHECK(w[0] == doctest::Approx(1.0 / 3.0).epsilon(1e-6));
    CHECK(w[1] == doctest::Approx(0.5).epsilon(1e-6));
    CHECK(w[2] == doctest::Approx(1.0 / (1.0 + std::exp(double(-1.01f - -1.0f)))).epsilon(1e-6));
    CHECK(w[3] == 1.0f);
  }
}

// ERNIE 4.5 MoE's router (moe_route version 3): softmax scores, the correction bias added for the choice only
// (noaux_tc, one group), the chosen scores divided by max(their sum, norm_min). Against a double reference with
// floors below every sum (plain renormalization), above every sum (the floor divides) and between (both kinds of
// rows), on 1 and 2 threads.
TEST_CASE("moe_route version 3's norm_min floors the renormalization as ERNIE 4.5 MoE does") {
  const int64_t E = 8, D = 32, K = 3, rows = 6;
  uint32_t seed = 2900;
  const auto h = random_floats(size_t(rows * D), seed++, 1.0f);
  const auto gate = random_floats(size_t(E * D), seed++, 0.3f), bias = random_floats(size_t(E), seed++, 0.05f);
  for (float floor : {1e-12f, 0.75f, 2.0f})
    for (int threads : {1, 2}) {
      CAPTURE(floor);
      CAPTURE(threads);
      ThreadPool pool(threads, moe_route_scratch_floats(E, D, DType::F32));
      std::vector<int32_t> ids(size_t(rows * K), 99);
      std::vector<float> w(size_t(rows * K), kNaN);
      MoeRouteArgs ra{h.data(),
                      gate.data(),
                      DType::F32,
                      bias.data(),
                      DType::F32,
                      ids.data(),
                      w.data(),
                      rows,
                      D,
                      E,
                      K,
                      MoeTopk::kNoauxTc,
                      MoeScoring::kSoftmax,
                      1,
                      1,
                      true,
                      1.0f,
                      nullptr,
                      1,
                      false,
                      true,
                      floor};
      moe_route_cpu(ra, pool);
      int floored = 0;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<double> p(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
        double mx = -1e300, z = 0;
        for (int64_t e = 0; e < E; ++e) {
          double d = 0;
          for (int64_t i = 0; i < D; ++i) d += double(h[size_t(r * D + i)]) * gate[size_t(e * D + i)];
          p[size_t(e)] = d;
          mx = std::max(mx, d);
        }
        for (double& v : p) z += (v = std::exp(v - mx));
        for (int64_t e = 0; e < E; ++e) choice[size_t(e)] = (p[size_t(e)] /= z) + bias[size_t(e)];
        std::vector<int64_t> order(static_cast<size_t>(E));
        for (int64_t e = 0; e < E; ++e) order[size_t(e)] = e;
        std::sort(order.begin(), order.end(),
                  [&](int64_t x, int64_t y) { return choice[size_t(x)] > choice[size_t(y)]; });
        REQUIRE(choice[size_t(order[size_t(K - 1)])] - choice[size_t(order[size_t(K)])] > 1e-4);  // (no near tie)
        double sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += p[size_t(order[size_t(k)])];
        floored += sum < floor;
        for (int64_t k = 0; k < K; ++k) {
          CHECK(ids[size_t(r * K + k)] == order[size_t(k)]);
          CHECK(w[size_t(r * K + k)] ==
                doctest::Approx(p[size_t(order[size_t(k)])] / std::max(sum, double(floor))).epsilon(1e-6));
        }
      }
      // (1e-12: no row floored; 2: every row; 0.75: some of each)
      if (floor < 1e-6f) CHECK(floored == 0);
      else if (floor > 1.5f) CHECK(floored == rows);
      else CHECK((floored > 0 && floored < rows));
    }
}

// GPT-OSS's MoE: moe_route version 2 adds the router bias to every logit before the softmax and the
// top k (renormalized: the softmax over the top k logits); moe_experts version 4 adds each expert's gate,
// up and down biases and applies the clamped SwiGLU (up' + 1)·gate'·sigmoid(alpha·gate'), gate' =
// min(gate, limit), up' = clamp(up, ±limit). Both against double references, with ids out of range
// and padding rows skipped, on 1 and 2 threads; the limit low enough that values reach it.
TEST_CASE("moe_route's logit bias and moe_experts' biases and clamped SwiGLU match double references") {
  const int64_t E = 5, D = 40, F = 24, K = 2, rows = 4;
  uint32_t seed = 2950;
  const auto h = random_floats(size_t(rows * D), seed++, 2.0f);
  const auto gate = random_floats(size_t(E * D), seed++, 0.5f), rbias = random_floats(size_t(E), seed++, 1.0f);
  const std::vector<int32_t> valid = {3};  // row 3 is padding
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    ThreadPool pool(threads, moe_route_scratch_floats(E, D, DType::F32) + moe_experts_scratch_floats(D, F));
    // --- the router
    std::vector<int32_t> ids(size_t(rows * K), 99);
    std::vector<float> w(size_t(rows * K), kNaN);
    MoeRouteArgs ra{h.data(),
                    gate.data(),
                    DType::F32,
                    rbias.data(),
                    DType::F32,
                    ids.data(),
                    w.data(),
                    rows,
                    D,
                    E,
                    K,
                    MoeTopk::kGreedy,
                    MoeScoring::kSoftmax,
                    1,
                    1,
                    true,
                    1.0f,
                    valid.data(),
                    1,
                    true};
    moe_route_cpu(ra, pool);
    for (int64_t r = 0; r < rows; ++r) {
      if (r >= valid[0]) {
        for (int64_t k = 0; k < K; ++k) CHECK(ids[size_t(r * K + k)] == -1);
        continue;
      }
      std::vector<double> lg(static_cast<size_t>(E));
      for (int64_t e = 0; e < E; ++e) {
        double d = rbias[size_t(e)];
        for (int64_t i = 0; i < D; ++i) d += double(h[size_t(r * D + i)]) * gate[size_t(e * D + i)];
        lg[size_t(e)] = d;
      }
      std::vector<int64_t> order(static_cast<size_t>(E));
      for (int64_t e = 0; e < E; ++e) order[size_t(e)] = e;
      std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return lg[size_t(x)] > lg[size_t(y)]; });
      REQUIRE(lg[size_t(order[size_t(K - 1)])] - lg[size_t(order[size_t(K)])] > 1e-3);  // (no near tie)
      double z = 0;
      for (int64_t k = 0; k < K; ++k) z += std::exp(lg[size_t(order[size_t(k)])] - lg[size_t(order[0])]);
      for (int64_t k = 0; k < K; ++k) {
        CHECK(ids[size_t(r * K + k)] == order[size_t(k)]);
        CHECK(w[size_t(r * K + k)] ==
              doctest::Approx(std::exp(lg[size_t(order[size_t(k)])] - lg[size_t(order[0])]) / z).epsilon(1e-6));
      }
    }
    // --- the experts (ids chosen here: one out of range)
    const std::vector<int32_t> eids = {0, 4, 2, 7, 3, 3, 1, 0};
    const auto ew = random_floats(size_t(rows * K), seed++);
    const auto gu = random_floats(size_t(E * 2 * F * D), seed++, 0.6f),
               down = random_floats(size_t(E * D * F), seed++, 0.3f);
    const auto gub = random_floats(size_t(E * 2 * F), seed++, 0.5f), downb = random_floats(size_t(E * D), seed++, 0.5f);
    const float alpha = 1.702f, limit = 1.25f;
    std::vector<float> y(size_t(rows * D), 0.25f), ws(size_t(rows * K * F));
    MoeExpertsArgs a{h.data(), eids.data(), ew.data(), gu.data(), down.data(), DType::F32,   y.data(), ws.data(),
                     rows,     D,           E,         F,         K,           valid.data(), 1};
    a.gu_bias = gub.data();
    a.down_bias = downb.data();
    a.activation = MoeActivation::kClampedSwiglu;
    a.alpha = alpha;
    a.limit = limit;
    moe_experts_cpu(a, pool);
    std::vector<float> ref(size_t(rows * D), 0.25f);
    int clamped = 0;
    for (int64_t r = 0; r < valid[0]; ++r)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t e = eids[size_t(r * K + k)];
        if (e < 0 || e >= E) continue;
        std::vector<double> act(static_cast<size_t>(F));
        for (int64_t f = 0; f < F; ++f) {
          double g = gub[size_t(e * 2 * F + f)], u = gub[size_t(e * 2 * F + F + f)];
          for (int64_t i = 0; i < D; ++i) {
            g += double(h[size_t(r * D + i)]) * gu[size_t((e * 2 * F + f) * D + i)];
            u += double(h[size_t(r * D + i)]) * gu[size_t((e * 2 * F + F + f) * D + i)];
          }
          clamped += g > limit || std::fabs(u) > limit;
          g = std::min(g, double(limit));
          u = std::max(-double(limit), std::min(u, double(limit)));
          act[size_t(f)] = (u + 1) * g / (1 + std::exp(-double(alpha) * g));
        }
        for (int64_t d = 0; d < D; ++d) {
          double o = downb[size_t(e * D + d)];
          for (int64_t f = 0; f < F; ++f) o += act[size_t(f)] * down[size_t((e * D + d) * F + f)];
          ref[size_t(r * D + d)] += float(double(ew[size_t(r * K + k)]) * o);
        }
      }
    CHECK(clamped > 20);  // (the clamp is exercised)
    CHECK(rel_l2(y.data(), ref.data(), ref.size()) < 1e-6);
    for (int64_t i = valid[0] * D; i < rows * D; ++i) CHECK(y[size_t(i)] == 0.25f);  // padding rows untouched
  }
}

// The row helpers the MoE experts and head_matmul read weights through: weight_rows_dot (up to 4 rows
// side by side, in any order, a short set too) gives weight_row_dot's bits row by row, and weight_row_dot
// gives dot_f32's on weight_row_values (i8: on q, times the row's scale), for every weight dtype, each CPU
// tier (the matmul's tiles for bf16 and the quantized dtypes), rows
// with tails past the 16-value steps (f8e4m3: a short last group, and a scale from 2^8 up, where the
// tiles' fused scale · 2^120 overflows), i4 in groups of 32 and 64, asymmetric with any int8 zero point.
TEST_CASE("weight_rows_dot equals weight_row_dot row by row, and that dot_f32 on weight_row_values") {
  const int64_t m = 7;
  uint32_t seed = 2400;
  for (const bool tier512 : avx512_tiers())
    for (const DType t : {DType::F32, DType::BF16, DType::F16, DType::I8, DType::I4, DType::F8E4M3})
      for (const int64_t k : {16, 40, 64, 96, 200, 576})
        for (const bool asym : {false, true}) {
          if ((t == DType::I4 && k % 32 != 0) || (asym && t != DType::I4)) continue;
          const Tier tier(tier512);
          CAPTURE(tier512);
          CAPTURE(std::string(dtype_name(t)));
          CAPTURE(k);
          CAPTURE(asym);
          const int64_t group = t == DType::I4 ? (k % 64 == 0 ? 64 : 32) : t == DType::F8E4M3 ? 48 : 0;
          const int64_t groups = t == DType::I8 ? 1 : group == 0 ? 0 : (k + group - 1) / group;
          std::mt19937 rng(seed++);
          std::vector<uint8_t> w;
          if (t == DType::I8 || t == DType::I4 || t == DType::F8E4M3) {
            w.resize(size_t(t == DType::I4 ? m * k / 2 : m * k));
            for (uint8_t& b : w) b = uint8_t(rng());  // (f8e4m3: the NaN codes too, read as ±480)
          } else {
            std::vector<float> rounded;
            w = store(random_floats(size_t(m * k), seed++), t, &rounded);
          }
          std::vector<float> scale = random_floats(size_t(std::max<int64_t>(1, m * groups)), seed++, 0.05f);
          std::vector<int8_t> zero;
          if (asym) {
            for (int64_t g = 0; g < m * groups; ++g) zero.push_back(int8_t(rng() % 16));
            zero[0] = -128, zero.back() = 127;  // (any int8, as an edited plan may hold)
          }
          if (t == DType::F8E4M3) scale[0] = 300.0f;  // row 0's first group: scale · 2^120 overflows
          const int8_t* z = asym ? zero.data() : nullptr;
          const std::vector<float> x = random_floats(size_t(k), seed++, 2.0f);
          std::vector<float> scratch(static_cast<size_t>(k)), values(static_cast<size_t>(k));
          for (int64_t j = 0; j < m; ++j) {
            CAPTURE(j);
            const float got = weight_row_dot(x.data(), w.data(), t, scale.data(), group, j, k, scratch.data(), z);
            if (t == DType::I8) {
              std::vector<float> q(static_cast<size_t>(k));
              for (int64_t i = 0; i < k; ++i) q[size_t(i)] = float(int8_t(w[size_t(j * k + i)]));
              REQUIRE(got == dot_f32(x.data(), q.data(), k) * scale[size_t(j)]);
            } else {
              weight_row_values(w.data(), t, scale.data(), group, j, k, values.data(), z);
              REQUIRE(got == dot_f32(x.data(), values.data(), k));
            }
          }
          const int64_t order[4] = {5, 0, 6, 2};
          for (int n = 1; n <= kWeightRowsDotMax; ++n) {
            CAPTURE(n);
            float out[kWeightRowsDotMax + 1];
            std::fill(out, out + kWeightRowsDotMax + 1, 7.0f);
            weight_rows_dot(x.data(), w.data(), t, scale.data(), group, order, n, k, scratch.data(), out, z);
            for (int i = 0; i < n; ++i)
              REQUIRE(out[i] ==
                      weight_row_dot(x.data(), w.data(), t, scale.data(), group, order[i], k, scratch.data(), z));
            for (int i = n; i <= kWeightRowsDotMax; ++i) REQUIRE(out[i] == 7.0f);  // nothing past n written
          }
        }
}

// head_matmul version 2 reads a checkpoint matrix's rows (DeepSeek's kv_b): not transposed, rows of k
// values per output; transposed, rows of m values read down their columns (W_UKᵀ without a copy). Every
// output equals version 1's on the same (dequantized) values in (heads, m, k) form, bit for bit: the
// transposed sums keep dot_f32's lanes and order (a k of 37 leaves a tail of 5 in the lanes). i8 not
// transposed is version 1 on q, times the row's scale, as matmul's i8; transposed, the f32 products
// q·scale. Two sequences of a 5-row chunk, 4 and 3 tokens (several blocks of kHeadMatmulRowBlock rows, a
// partial one); padding rows stay untouched; 1 and 2 threads, each CPU tier. f8e4m3 rows of 56 in groups
// of 48 (a short last group, a tail of 8 past the 16-value steps), and of 40 in one group (big scales).
// Then decode: one valid row (the rest padding), where rows not transposed go through weight_rows_dot
// 4 at a time (38 a head: a short last set of 2, and with 2 threads a set cut short by a block's end).
TEST_CASE("head_matmul version 2 (rows, transposed or not, any dtype) equals version 1 on their values") {
  const int64_t heads = 3, batch = 2, chunk = 5, rows = batch * chunk;
  uint32_t seed = 2300;
  for (const std::vector<int32_t>& valid : {std::vector<int32_t>{4, 3}, std::vector<int32_t>{1, 0}})
    for (const bool transposed : {false, true})
      for (const auto& scheme : {std::pair<DType, bool>{DType::F32, false},
                                 {DType::BF16, false},
                                 {DType::I8, false},
                                 {DType::I4, false},
                                 {DType::I4, true},
                                 {DType::F8E4M3, false},
                                 {DType::F8E4M3, true}}) {
        const DType t = scheme.first;
        const bool asym = scheme.second;
        const std::string dtype = dtype_name(t);
        CAPTURE(transposed);
        CAPTURE(dtype);
        CAPTURE(asym);
        // y[h·m + i] = Σ_j W_h[i, j] x[h·k + j]; stored as heads·m rows of k, or heads·k rows of m.
        CAPTURE(valid[0]);
        // (valid: {4, 3}, rows 4, 8 and 9 are padding; {1, 0}, all but row 0)
        auto padding = [&](int64_t r) { return r % chunk >= valid[size_t(r / chunk)]; };
        const bool big = t == DType::F8E4M3 && asym;  // (f8e4m3 "asym": big scales, below)
        const int64_t row_len = t == DType::F8E4M3 ? (big ? 40 : 56) : 64;
        const int64_t k = transposed ? 37 : row_len, m = transposed ? row_len : 38;
        const int64_t n = transposed ? heads * k : heads * m, cols = transposed ? m : k;
        const int64_t group = t == DType::I4 ? 32 : t == DType::F8E4M3 ? (big ? 40 : 48) : 0;
        const int64_t groups = group > 0 ? (cols + group - 1) / group : 1;
        std::mt19937 rng(seed++);
        std::vector<uint8_t> w(size_t(t == DType::I4 ? n * cols / 2 : n * cols * int64_t(dtype_size(t))));
        const auto f = random_floats(size_t(n * cols), seed++);
        for (size_t i = 0; i < w.size(); ++i) w[i] = uint8_t(rng());
        if (t == DType::F32) std::memcpy(w.data(), f.data(), w.size());
        for (size_t i = 0; t == DType::BF16 && i < f.size(); ++i) {  // (finite values: no NaN payloads to compare)
          const uint16_t b = f32_to_bf16(f[i]);
          w[2 * i] = uint8_t(b & 0xff);
          w[2 * i + 1] = uint8_t(b >> 8);
        }
        // (big: scales up to 10^3, over 2^8, where scale · 2^120 overflows and the value is unbiased first)
        const auto scale = random_floats(size_t(n * groups), seed++, big ? 1e3f : 0.05f);
        std::vector<int8_t> zero;
        for (int64_t g = 0; asym && !big && g < n * groups; ++g) zero.push_back(int8_t(rng() % 17));
        std::vector<float> deq(size_t(n * cols));  // each stored value (i8 not transposed: q, unscaled)
        for (int64_t r = 0; r < n; ++r)
          for (int64_t i = 0; i < cols; ++i) {
            const size_t at = size_t(r * cols + i), g = size_t(r * groups + (group > 0 ? i / group : 0));
            float v = 0.0f;
            if (t == DType::F32) v = f[at];
            else if (t == DType::BF16) v = bf16_to_f32(uint16_t(w[2 * at] | w[2 * at + 1] << 8));
            else if (t == DType::I8) v = transposed ? float(int8_t(w[at])) * scale[g] : float(int8_t(w[at]));
            else if (t == DType::I4)
              v = float(load_i4(w.data() + r * cols / 2, uint64_t(i)) + 8 - (asym ? zero[g] : 8)) * scale[g];
            else v = f8_reference(w[at]) * scale[g];
            deq[at] = v;
          }
        std::vector<float> w1(deq.size());  // version 1's (heads, m, k)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < k; ++j)
              w1[size_t((h * m + i) * k + j)] =
                  transposed ? deq[size_t((h * k + j) * m + i)] : deq[size_t((h * m + i) * k + j)];
        const auto x = random_floats(size_t(rows * heads * k), seed++, 2.0f);
        for (const bool tier512 : avx512_tiers())  // (i4 rows dequantized by table lookups on AVX-512)
          for (int threads : {1, 2}) {
            const Tier tier(tier512);
            CAPTURE(tier512);
            CAPTURE(threads);
            // (version 1 on f32 weights needs none)
            ThreadPool pool(threads, head_matmul_scratch_floats(k, m, transposed, t));
            std::vector<float> y2(size_t(rows * heads * m), 0.5f), y1(y2.size(), 0.5f);
            HeadMatmulArgs a{x.data(), w.data(), t, y2.data(), rows, heads, k, m, valid.data(), batch};
            a.transposed = transposed;
            a.w_scale = dtype_is_float(t) ? nullptr : scale.data();
            a.group = group;
            a.w_zero = asym && !big ? zero.data() : nullptr;
            head_matmul_cpu(a, pool);
            head_matmul_cpu({x.data(), w1.data(), DType::F32, y1.data(), rows, heads, k, m, valid.data(), batch}, pool);
            if (t == DType::I8 && !transposed)  // (x · q) · the row's scale
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t o = 0; o < heads * m && !padding(r); ++o)
                  y1[size_t(r * heads * m + o)] *= scale[size_t(o)];
            CHECK(std::memcmp(y2.data(), y1.data(), y1.size() * 4) == 0);
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t o = 0; o < heads * m && padding(r); ++o) CHECK(y2[size_t(r * heads * m + o)] == 0.5f);
          }
      }
}

// From kGemmMinRows activation rows (prefill chunks) the matmul is a GEMM of outer-product tiles (on
// AVX-512 32 rows × 12 weight rows, on AVX2 16 × 6, elsewhere 8 × 1): every output must be gemm_ref's
// chain of FMAs over k for its row and weight row, bit for bit, for every dtype (i8 times its row
// scale), tile remainder in rows (last blocks of 9, 18, 8 and 16 rows: both tile widths on both tiers)
// and weight rows (m around 6 and 12), k in blocks (k = 9000: 17 of 512 and a short one),
// padding rows, bias and accumulate; the same for 1, 2 and 3 threads; and near a double reference.
TEST_CASE("matmul's GEMM path (16+ rows) equals the chain of FMAs per output, bit for bit, for every tile") {
  const std::string tiers = tiers_exercised("the AVX2 tiles");
  MESSAGE(tiers);
  const int64_t batch = 2, chunk = 40, rows = batch * chunk;
  static_assert(rows >= kGemmMinRows, "the test runs the GEMM path");
  ThreadPool p1(1, matmul_scratch_floats(9000, rows, DType::F16)), p2(2, matmul_scratch_floats(9000, rows, DType::F16)),
      p3(3, matmul_scratch_floats(9000, rows, DType::F16));
  uint32_t seed = 1300;
  // Valid rows: 73 (blocks of 32, 32, 9), 18, 40 (an idle batch row) and 48 (32 + 16).
  const std::vector<std::vector<int32_t>> valid_sets = {{40, 33}, {17, 1}, {0, 40}, {31, 17}};
  for (const bool tier512 : avx512_tiers()) {
    const Tier tier(tier512);
    CAPTURE(tier512);
    for (int64_t k : {1, 7, 16, 17, 64, 300, 9000})
      for (int64_t m : {1, 5, 6, 7, 11, 12, 13, 25})
        for (DType wt : {DType::F32, DType::BF16, DType::F16, DType::I8}) {
          if (k == 9000 && m > 7) continue;  // (the panels need few weight rows; keeps the test short)
          CAPTURE(k);
          CAPTURE(m);
          CAPTURE(dtype_name(wt));
          const auto x = random_floats(size_t(rows * k), seed++, 8.0f);
          std::vector<float> w_r, bias = random_floats(size_t(m), seed++), scale;
          std::vector<uint8_t> w;
          if (wt == DType::I8) {
            std::vector<int8_t> q(size_t(m * k));
            std::mt19937 rng(seed++);
            for (int8_t& v : q) v = int8_t(int(rng() % 255) - 127);
            w.assign(reinterpret_cast<const uint8_t*>(q.data()), reinterpret_cast<const uint8_t*>(q.data()) + q.size());
            w_r.assign(q.begin(), q.end());
            scale = random_floats(size_t(m), seed++, 0.01f);
          } else {
            w = store(random_floats(size_t(m * k), seed++, 4.0f), wt, &w_r);
          }
          const float* sc = scale.empty() ? nullptr : scale.data();
          auto want = [&](int64_t r, int64_t j) {
            const float v = gemm_ref(x.data() + r * k, w_r.data() + j * k, k);
            return (sc ? v * sc[j] : v) + bias[size_t(j)];
          };
          const std::vector<int32_t>& valid = valid_sets[size_t(k + m) % valid_sets.size()];
          const std::vector<float> y0 = random_floats(size_t(rows * m), seed++);
          std::vector<float> y[3] = {y0, y0, y0};
          ThreadPool* pools[3] = {&p1, &p2, &p3};
          for (int p = 0; p < 3; ++p)
            matmul_cpu(MatmulArgs{x.data(), w.data(), wt, bias.data(), DType::F32, y[p].data(), rows, k, m, true,
                                  valid.data(), batch, sc},
                       *pools[p]);
          check_accumulated_rows(y[1], y0, m, chunk, valid, want);
          CHECK(std::memcmp(y[0].data(), y[1].data(), y0.size() * 4) == 0);
          CHECK(std::memcmp(y[2].data(), y[1].data(), y0.size() * 4) == 0);
          // Stored, every row valid: near x·wᵀ + bias in double.
          if (k == 300 && m == 13) {
            std::vector<float> ys(size_t(rows * m), kNaN), ref(ys.size());
            matmul_cpu(MatmulArgs{x.data(), w.data(), wt, bias.data(), DType::F32, ys.data(), rows, k, m, false,
                                  nullptr, 1, sc},
                       p2);
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t j = 0; j < m; ++j) {
                double acc = 0;
                for (int64_t i = 0; i < k; ++i) acc += double(x[size_t(r * k + i)]) * w_r[size_t(j * k + i)];
                ref[size_t(r * m + j)] = float((sc ? acc * sc[j] : acc) + bias[size_t(j)]);
              }
            CHECK(rel_l2(ys.data(), ref.data(), ref.size()) < 1e-6);
          }
        }
  }
}

// k over 2,048 runs in blocks of kGemmKBlock with the running sums in the scratch, tiles in groups
// (gemm_group_tiles): enough weight rows for several groups, a short last block of k, a short last
// tile, padding rows, accumulate with i8 scales and bias; rows in several panels, with k in blocks
// (f32 weights read in place) and without: still gemm_ref's chain, bit for bit, for 1 and 2 threads.
TEST_CASE("matmul's GEMM with k in blocks, tiles in groups and several panels equals the chain of FMAs") {
  struct Shape {
    int64_t rows, k, m;
    int32_t valid;
    std::vector<DType> dtypes;
  };
  for (const Shape& sh :
       {Shape{40, 2100, 2077, 37, {DType::BF16, DType::I8}}, Shape{300, 4100, 40, 297, {DType::F32, DType::BF16}},
        Shape{160, 2048, 30, 150, {DType::F32}}})
    for (const bool tier512 : avx512_tiers())
      for (DType wt : sh.dtypes) {
        const int64_t batch = 1, rows = sh.rows, k = sh.k, m = sh.m;
        const int32_t valid = sh.valid;
        const int64_t panel = gemm_panel_rows(k, rows), tiles = (m + kGemmCols - 1) / kGemmCols;
        if (rows == 40) {  // several blocks of k, the last short, and several groups of tiles a worker
          REQUIRE(gemm_k_block(k) < k);
          REQUIRE(k % kGemmKBlock != 0);
          REQUIRE(tiles > 2 * gemm_group_tiles(panel));
        } else {  // the valid rows take two panels
          REQUIRE(panel < valid);
          REQUIRE(2 * panel >= valid);
          REQUIRE((gemm_k_block(k) < k) == (k > 2048));
        }
        ThreadPool p1(1, matmul_scratch_floats(k, rows, wt)), p2(2, matmul_scratch_floats(k, rows, wt));
        const Tier tier(tier512);
        CAPTURE(rows);
        CAPTURE(tier512);
        CAPTURE(dtype_name(wt));
        const auto x = random_floats(size_t(rows * k), 1400, 8.0f);
        std::vector<float> w_r, bias = random_floats(size_t(m), 1401), scale;
        std::vector<uint8_t> w;
        if (wt == DType::I8) {
          std::vector<int8_t> q(size_t(m * k));
          std::mt19937 rng(1402);
          for (int8_t& v : q) v = int8_t(int(rng() % 255) - 127);
          w.assign(reinterpret_cast<const uint8_t*>(q.data()), reinterpret_cast<const uint8_t*>(q.data()) + q.size());
          w_r.assign(q.begin(), q.end());
          scale = random_floats(size_t(m), 1403, 0.01f);
        } else {
          w = store(random_floats(size_t(m * k), 1404, 4.0f), wt, &w_r);
        }
        const float* sc = scale.empty() ? nullptr : scale.data();
        const std::vector<float> y0 = random_floats(size_t(rows * m), 1405);
        std::vector<float> y1 = y0, y2 = y0;
        matmul_cpu(
            MatmulArgs{x.data(), w.data(), wt, bias.data(), DType::F32, y1.data(), rows, k, m, true, &valid, batch, sc},
            p1);
        matmul_cpu(
            MatmulArgs{x.data(), w.data(), wt, bias.data(), DType::F32, y2.data(), rows, k, m, true, &valid, batch, sc},
            p2);
        check_accumulated_rows(y2, y0, m, rows, {valid}, [&](int64_t r, int64_t j) {
          const float v = gemm_ref(x.data() + r * k, w_r.data() + j * k, k);
          return (sc ? v * sc[j] : v) + bias[size_t(j)];
        });
        CHECK(std::memcmp(y1.data(), y2.data(), y0.size() * 4) == 0);
      }
}

// The boundary: a plan's 15 rows take the dot products (dot_f32's bits), 16 the GEMM (gemm_ref's), whatever
// the valid rows; stored outputs, bias, and padding rows left as they were.
TEST_CASE("matmul: 15 rows run dot products, 16 the GEMM, and padding rows stay untouched when stored") {
  const int64_t k = 70, m = 13;
  ThreadPool pool(2, matmul_scratch_floats(k, 16, DType::BF16));
  for (const bool tier512 : avx512_tiers())
    for (int64_t rows : {15, 16})
      for (int32_t valid : {int32_t(rows), 5}) {
        const Tier tier(tier512);
        CAPTURE(tier512);
        CAPTURE(rows);
        CAPTURE(valid);
        const auto x = random_floats(size_t(rows * k), uint32_t(60 + rows), 8.0f);
        std::vector<float> w_r, bias = random_floats(size_t(m), 61);
        const auto w = store(random_floats(size_t(m * k), 62, 4.0f), DType::BF16, &w_r);
        const std::vector<float> y0(size_t(rows * m), 7.5f);
        std::vector<float> y = y0;
        matmul_cpu(MatmulArgs{x.data(), w.data(), DType::BF16, bias.data(), DType::F32, y.data(), rows, k, m, false,
                              &valid, 1},
                   pool);
        int differ = 0;  // outputs where the two definitions disagree: the check tells the paths apart
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < m; ++j) {
            const float* xr = x.data() + r * k;
            const float* wj = w_r.data() + j * k;
            differ += r < valid && gemm_ref(xr, wj, k) != dot_f32(xr, wj, k);
            const float want =
                r >= valid ? 7.5f : (rows >= kGemmMinRows ? gemm_ref(xr, wj, k) : dot_f32(xr, wj, k)) + bias[size_t(j)];
            REQUIRE(std::memcmp(&y[size_t(r * m + j)], &want, 4) == 0);
          }
        CHECK(differ > 0);
      }
}

TEST_CASE("matmul skips the padding rows of each batch row (n_valid) and computes the rest") {
  const int64_t batch = 3, chunk = 4, rows = batch * chunk, k = 20, m = 9;
  ThreadPool pool(2, matmul_scratch_floats(k, rows, DType::F32));
  auto x = random_floats(size_t(rows * k), 15);
  auto w = random_floats(size_t(m * k), 16);
  std::vector<int32_t> valid = {4, 0, 2};
  std::vector<float> y(size_t(rows * m), kNaN), full(size_t(rows * m), kNaN);
  MatmulArgs a{x.data(), w.data(), DType::F32, nullptr, DType::F32, y.data(), rows, k, m, false, valid.data(), batch};
  matmul_cpu(a, pool);
  a.y = full.data();
  a.n_valid = nullptr;
  matmul_cpu(a, pool);
  for (int64_t r = 0; r < rows; ++r) {
    const bool is_valid = r % chunk < valid[size_t(r / chunk)];
    for (int64_t j = 0; j < m; ++j) {
      const float v = y[size_t(r * m + j)];
      if (is_valid) REQUIRE(v == full[size_t(r * m + j)]);
      else REQUIRE(std::isnan(v));
    }
  }
}

// Every weight dtype, and rows longer than the kernel's 256-weight blocks (600: two whole, one short).
TEST_CASE("rmsnorm matches a double reference") {
  ThreadPool pool(2);
  const int64_t rows = 4;
  for (int64_t dim : {33, 600})
    for (DType wt : {DType::F32, DType::BF16, DType::F16}) {
      CAPTURE(dim);
      CAPTURE(std::string(dtype_name(wt)));
      auto x = random_floats(size_t(rows * dim), 7, 3.0f);
      std::vector<float> w_r;
      auto w = store(random_floats(size_t(dim), 8), wt, &w_r);
      std::vector<float> y(size_t(rows * dim), kNaN), ref(y.size());
      rmsnorm_cpu(RmsNormArgs{x.data(), w.data(), wt, y.data(), rows, dim, 1e-5f}, pool);
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < dim; ++i) ss += double(x[size_t(r * dim + i)]) * x[size_t(r * dim + i)];
        const double inv = 1.0 / std::sqrt(ss / double(dim) + 1e-5);
        for (int64_t i = 0; i < dim; ++i)
          ref[size_t(r * dim + i)] = float(x[size_t(r * dim + i)] * inv * w_r[size_t(i)]);
      }
      CHECK(rel_l2(y.data(), ref.data(), ref.size()) < 1e-6);
    }
}

TEST_CASE("embedding gathers rows (times a scale) and fences out-of-range ids to row 0") {
  ThreadPool pool(2);
  const int64_t vocab = 11, dim = 6;
  std::vector<float> t_r;
  auto table = store(random_floats(size_t(vocab * dim), 9), DType::F16, &t_r);
  std::vector<int32_t> tokens = {3, 0, 10, 7, -1, 11};
  for (float scale : {1.0f, 8.0f, 2.4494898f}) {
    CAPTURE(scale);
    std::vector<float> y(tokens.size() * size_t(dim), kNaN);
    embedding_cpu(
        EmbeddingArgs{tokens.data(), table.data(), DType::F16, y.data(), int64_t(tokens.size()), vocab, dim, scale},
        pool);
    for (size_t r = 0; r < tokens.size(); ++r) {
      const int64_t id = (tokens[r] < 0 || tokens[r] >= vocab) ? 0 : tokens[r];
      for (int64_t i = 0; i < dim; ++i) REQUIRE(y[r * size_t(dim) + size_t(i)] == t_r[size_t(id * dim + i)] * scale);
    }
  }
}

// Version 3 (GPT-2's learned positions): row b·chunk + t adds the position table's row start_pos[b] + t, and nothing
// where that position is outside the table (a padding row past max_seq).
TEST_CASE("embedding adds the position table's row at each token's position, nothing past the table") {
  ThreadPool pool(2);
  const int64_t vocab = 11, dim = 6, positions = 5, chunk = 3;
  std::vector<float> t_r, p_r;
  auto table = store(random_floats(size_t(vocab * dim), 9), DType::BF16, &t_r);
  auto pos = store(random_floats(size_t(positions * dim), 10), DType::F16, &p_r);
  const std::vector<int32_t> tokens = {3, 0, 10, 7, 1, 2}, start = {1, 3};
  std::vector<float> y(tokens.size() * size_t(dim), kNaN);
  EmbeddingArgs a{tokens.data(), table.data(), DType::BF16, y.data(), int64_t(tokens.size()), vocab, dim, 2.0f};
  a.start_pos = start.data();
  a.pos_table = pos.data();
  a.pos_dtype = DType::F16;
  a.batch = 2;
  a.positions = positions;
  embedding_cpu(a, pool);
  for (int64_t r = 0; r < int64_t(tokens.size()); ++r) {
    CAPTURE(r);
    const int64_t p = start[size_t(r / chunk)] + r % chunk;  // 1 2 3 | 3 4 5 (5: past the table)
    for (int64_t i = 0; i < dim; ++i) {
      const float want =
          t_r[size_t(tokens[size_t(r)] * dim + i)] * 2.0f + (p < positions ? p_r[size_t(p * dim + i)] : 0.0f);
      REQUIRE(y[size_t(r * dim + i)] == want);
    }
  }
}

TEST_CASE("last_rows takes each batch row's last valid row (n_valid clamped to the chunk) and zeros idle rows") {
  ThreadPool pool(2);
  const int64_t batch = 5, chunk = 4, dim = 7;
  const auto x = random_floats(size_t(batch * chunk * dim), 31);
  const std::vector<int32_t> n_valid = {1, 4, 0, 9, 3};  // row 3 past the chunk, row 2 idle
  const std::vector<int64_t> want = {0, 1 * chunk + 3, -1, 3 * chunk + 3, 4 * chunk + 2};
  std::vector<float> y(size_t(batch * dim), kNaN);
  last_rows_cpu(LastRowsArgs{x.data(), n_valid.data(), y.data(), batch, chunk, dim}, pool);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < dim; ++i)
      REQUIRE(y[size_t(b * dim + i)] == (want[size_t(b)] < 0 ? 0.0f : x[size_t(want[size_t(b)] * dim + i)]));
}

// Gemma's MLP: up · tanh-GELU(gate) on [up | gate]; diffusers' exact-GELU GEGLU; Gemma's final
// logit soft-capping, in place, including values deep in tanh's flat tails.
TEST_CASE("geglu (exact and tanh GELU) and softcap match a double reference") {
  ThreadPool pool(2);
  const int64_t rows = 3, f = 11;
  auto x = random_floats(size_t(rows * 2 * f), 41, 3.0f);
  for (Activation kind : {Activation::kGelu, Activation::kGeluTanh}) {
    CAPTURE(int64_t(kind));
    std::vector<float> y(size_t(rows * f), kNaN), ref(y.size());
    geglu_cpu(GegluArgs{x.data(), y.data(), rows, f, kind}, pool);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < f; ++i) {
        const double h = x[size_t(r * 2 * f + i)], g = x[size_t(r * 2 * f + f + i)];
        const double act = kind == Activation::kGelu
                               ? 0.5 * g * (1 + std::erf(g / std::sqrt(2.0)))
                               : 0.5 * g * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
        ref[size_t(r * f + i)] = float(h * act);
      }
    CHECK(rel_l2(y.data(), ref.data(), ref.size()) < 1e-6);
  }
  auto v = random_floats(64, 42, 60.0f);
  std::vector<float> ref(v.size());
  for (size_t i = 0; i < v.size(); ++i) ref[i] = float(std::tanh(double(v[i]) / 15.0) * 15.0);
  softcap_cpu(SoftcapArgs{v.data(), v.data(), int64_t(v.size()), 15.0f}, pool);
  CHECK(rel_l2(v.data(), ref.data(), ref.size()) < 1e-6);
  for (float y : v) CHECK(std::fabs(y) <= 15.0f);
}

// OLMo's, OLMoE's and MPT's clip_qkv: torch.clamp(x, -c, c), in place or not; NaN stays NaN, infinities and the
// bounds themselves clamp to the bounds, -0 inside stays -0. With n_valid each batch row's padding rows are left
// untouched.
TEST_CASE("clamp equals torch.clamp's definition, NaN kept, and skips padding rows") {
  ThreadPool pool(2);
  const int64_t batch = 2, chunk = 5, rows = batch * chunk, cols = 900;  // (more than one CPU task)
  auto x = random_floats(size_t(rows * cols), 43, 12.0f);
  const float inf = std::numeric_limits<float>::infinity();
  x[0] = kNaN, x[1] = inf, x[2] = -inf, x[3] = 8.0f, x[4] = -8.0f, x[5] = -0.0f, x[6] = 8.000001f;
  const std::vector<int32_t> n_valid = {2, 5};  // (batch row 0: rows 2 to 4 are padding)
  for (bool in_place : {false, true})
    for (bool with_nv : {false, true}) {
      CAPTURE(in_place);
      CAPTURE(with_nv);
      std::vector<float> xi = x, y(x.size(), kNaN);
      clamp_cpu(ClampArgs{xi.data(), in_place ? xi.data() : y.data(), rows, cols, -8.0f, 8.0f,
                          with_nv ? n_valid.data() : nullptr, with_nv ? batch : 1},
                pool);
      const std::vector<float>& out = in_place ? xi : y;
      CHECK(std::isnan(out[0]));
      CHECK(std::signbit(out[5]));
      int64_t clamped = 0;
      for (size_t i = 1; i < x.size(); ++i) {
        const int64_t r = int64_t(i) / cols;
        const bool padding = with_nv && r % chunk >= n_valid[size_t(r / chunk)];
        const float want = padding ? (in_place ? x[i] : kNaN) : x[i] < -8.0f ? -8.0f : x[i] > 8.0f ? 8.0f : x[i];
        clamped += !padding && want != x[i];
        REQUIRE(std::memcmp(&out[i], &want, 4) == 0);
      }
      CHECK(clamped > 1000);  // (both bounds are reached many times)
    }
}

TEST_CASE("swiglu matches silu(gate) * up") {
  ThreadPool pool(2);
  const int64_t rows = 3, ffn = 9;
  auto gu = random_floats(size_t(rows * 2 * ffn), 10, 2.0f);
  std::vector<float> h(size_t(rows * ffn), kNaN), ref(h.size());
  swiglu_cpu(SwigluArgs{gu.data(), h.data(), rows, ffn}, pool);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < ffn; ++i) {
      const double g = gu[size_t(r * 2 * ffn + i)], u = gu[size_t(r * 2 * ffn + ffn + i)];
      ref[size_t(r * ffn + i)] = float(g / (1 + std::exp(-g)) * u);
    }
  CHECK(rel_l2(h.data(), ref.data(), ref.size()) < 1e-6);
  // Bit for bit silu(g) · u (8 lanes at a time on x86-64-v3, the tail one by one), for lengths around
  // the 8-lane blocks, both signs, zeros, values past exp's range, infinities and NaN.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> special = {0.0f,    -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 90.0f, -90.0f, 200.0f,
                                      -200.0f, inf,   -inf,   kNaN,    88.7f, -88.7f, 1.0f,  -1.0f};
  for (int64_t n : {1, 7, 8, 9, 16, 17, 40}) {
    CAPTURE(n);
    std::vector<float> g = random_floats(size_t(n), uint32_t(20 + n), 12.0f), u = random_floats(size_t(n), 21, 2.0f);
    for (size_t i = 0; i < special.size() && i < g.size(); ++i) g[(i * 5) % g.size()] = special[i];
    std::vector<float> out(size_t(n), kNaN);
    silu_mul(g.data(), u.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float want = silu(g[size_t(i)]) * u[size_t(i)];
      CAPTURE(g[size_t(i)]);
      REQUIRE(std::memcmp(&out[size_t(i)], &want, 4) == 0);
      const double gd = g[size_t(i)], near = gd / (1 + std::exp(-gd)) * u[size_t(i)];
      if (std::isfinite(near)) CHECK(std::fabs(out[size_t(i)] - near) <= 1e-6 * std::fabs(near) + 1e-30);
      else CHECK(std::isnan(near) == std::isnan(out[size_t(i)]));
    }
  }
}

// With n_valid (rmsnorm and swiglu version 2, rope version 3), padding rows are skipped and keep
// their old bits, and every valid row has the bits of the run without n_valid (which computes
// every row, as version 1 plans do). Valid counts: part of a chunk, all of it, none, and past it.
TEST_CASE("rmsnorm, swiglu and rope skip padding rows (n_valid) and leave them untouched") {
  ThreadPool pool(2);
  const int64_t batch = 4, chunk = 5, rows = batch * chunk, dim = 40, hd = 8, width = 3 * hd;
  const std::vector<int32_t> valid = {3, 5, 0, 9};
  auto is_valid = [&](int64_t r) { return r % chunk < valid[size_t(r / chunk)]; };
  // Row by row: padding rows equal `before`, valid rows equal `all` (the run over every row).
  auto check_rows = [&](const std::vector<float>& got, const std::vector<float>& before, const std::vector<float>& all,
                        int64_t w) {
    for (int64_t r = 0; r < rows; ++r) {
      CAPTURE(r);
      const std::vector<float>& want = is_valid(r) ? all : before;
      REQUIRE(std::memcmp(got.data() + r * w, want.data() + r * w, size_t(w) * 4) == 0);
    }
  };
  const auto x = random_floats(size_t(rows * dim), 70, 3.0f);
  std::vector<float> w_r;
  const auto w = store(random_floats(size_t(dim), 71), DType::BF16, &w_r);
  const auto y0 = random_floats(size_t(rows * dim), 72);
  std::vector<float> all = y0, y = y0;
  rmsnorm_cpu(RmsNormArgs{x.data(), w.data(), DType::BF16, all.data(), rows, dim, 1e-5f}, pool);
  rmsnorm_cpu(RmsNormArgs{x.data(), w.data(), DType::BF16, y.data(), rows, dim, 1e-5f, valid.data(), batch}, pool);
  check_rows(y, y0, all, dim);

  const auto gu = random_floats(size_t(rows * 2 * dim), 73, 4.0f);
  all = y0;
  y = y0;
  swiglu_cpu(SwigluArgs{gu.data(), all.data(), rows, dim}, pool);
  swiglu_cpu(SwigluArgs{gu.data(), y.data(), rows, dim, valid.data(), batch}, pool);
  check_rows(y, y0, all, dim);

  const auto qkv0 = random_floats(size_t(rows * width), 74);
  const std::vector<float> inv = {1.0f, 0.3f, 0.05f, 0.001f};
  const std::vector<int32_t> start = {0, 7, 2, 30};
  all = qkv0;
  y = qkv0;
  RopeArgs ra{all.data(), inv.data(), start.data(), batch, chunk, width, 2, hd, 1.0f};
  rope_cpu(ra, pool);
  ra.qkv = y.data();
  ra.n_valid = valid.data();
  rope_cpu(ra, pool);
  check_rows(y, qkv0, all, width);
  CHECK(std::memcmp(all.data(), qkv0.data(), all.size() * 4) != 0);  // (the rotation changed something)
}

// rotary 8: the whole head; 4 and 2: a partial rotary embedding (Phi-4-mini), which rotates pairs
// (i, i + rotary/2) of the first rotary dims and leaves the rest of the head alone.
TEST_CASE("rope rotates q and k heads (whole or their first rotary dims) by position and leaves v alone") {
  ThreadPool pool(2);
  const int64_t batch = 2, chunk = 3, hd = 8, nrot = 3, width = 4 * hd;  // 3 rotated heads + 1 untouched
  for (int64_t rot : {8, 4, 2}) {
    CAPTURE(rot);
    auto qkv = random_floats(size_t(batch * chunk * width), 11);
    const auto orig = qkv;
    std::vector<float> inv = {1.0f, 0.3f, 0.05f, 0.001f};
    inv.resize(size_t(rot / 2));
    std::vector<int32_t> start = {0, 17};
    rope_cpu(RopeArgs{qkv.data(), inv.data(), start.data(), batch, chunk, width, nrot, hd, 1.0f, rot == hd ? 0 : rot},
             pool);
    std::vector<float> ref = orig;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < chunk; ++t) {
        const double pos = start[size_t(b)] + t;
        for (int64_t h = 0; h < nrot; ++h)
          for (int64_t i = 0; i < rot / 2; ++i) {
            const size_t base = size_t((b * chunk + t) * width + h * hd);
            const double a = pos * inv[size_t(i)], x0 = orig[base + size_t(i)], x1 = orig[base + size_t(i + rot / 2)];
            ref[base + size_t(i)] = float(x0 * std::cos(a) - x1 * std::sin(a));
            ref[base + size_t(i + rot / 2)] = float(x1 * std::cos(a) + x0 * std::sin(a));
          }
      }
    CHECK(rel_l2(qkv.data(), ref.data(), ref.size()) < 1e-6);
    for (int64_t r = 0; r < batch * chunk; ++r) {
      for (int64_t i = nrot * hd; i < width; ++i) REQUIRE(qkv[size_t(r * width + i)] == orig[size_t(r * width + i)]);
      for (int64_t h = 0; h < nrot; ++h)  // the head's dims past the rotary ones: untouched
        for (int64_t i = rot; i < hd; ++i)
          REQUIRE(qkv[size_t(r * width + h * hd + i)] == orig[size_t(r * width + h * hd + i)]);
    }
  }
}

// exp_nonpositive against libm's double exp: within 2 ulp wherever the result is normal; 0 below
// ln(FLT_MIN) (exact values there are subnormal); -inf → 0, NaN kept, e^0 = 1 exactly.
TEST_CASE("exp_nonpositive is within 2 ulp of exp on [ln FLT_MIN, 0], 0 below, NaN kept") {
  auto ulps = [](float got, double want) {
    const float w = float(want);
    return std::fabs(double(got) - want) / double(std::nextafter(w, INFINITY) - w);
  };
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x = 0.0f; x >= -87.3365f; x = std::nextafter(x, -INFINITY) - 1.7e-5f * std::fabs(x) - 1e-7f) {
    const double u = ulps(exp_nonpositive(x), std::exp(double(x)));
    if (u > worst) worst = u, worst_x = x;
  }
  MESSAGE("worst: " << worst << " ulp at x = " << worst_x);
  CHECK(worst <= 2.0);
  CHECK(exp_nonpositive(0.0f) == 1.0f);
  CHECK(exp_nonpositive(-0.0f) == 1.0f);
  CHECK(exp_nonpositive(-87.34f) == 0.0f);
  CHECK(exp_nonpositive(-1000.0f) == 0.0f);
  CHECK(exp_nonpositive(-INFINITY) == 0.0f);
  CHECK(std::isnan(exp_nonpositive(kNaN)));
}

// softmax_inplace (the x86-64-v3 path where the CPU has it) against its definition written out
// here with the scalar exp_nonpositive: the same bits, for lengths around the 8-lane blocks and a
// 2,000-key row, scores with -inf and far-below-max entries; and close to a double softmax.
TEST_CASE("softmax_inplace equals its 8-lane definition bit for bit, and a double softmax to rounding") {
  uint32_t seed = 77;
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 2000}) {
    CAPTURE(n);
    std::vector<float> s = random_floats(size_t(n), seed++, 12.0f);
    if (n > 3) {
      s[1] = -INFINITY;
      s[2] = s[0] - 150.0f;  // e^x flushed to 0
    }
    std::vector<float> want = s;
    float mx = -INFINITY;
    for (float v : want) mx = std::max(mx, v);
    double acc[8] = {};
    for (int64_t j = 0; j < n; ++j) acc[j % 8] += double(want[size_t(j)] = exp_nonpositive(want[size_t(j)] - mx));
    for (int w = 4; w > 0; w /= 2)
      for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    const float inv = float(1.0 / acc[0]);
    for (float& v : want) v *= inv;
    const std::vector<float> orig = s;
    std::vector<double> exact(s.size());
    double sum = 0.0;
    for (size_t j = 0; j < s.size(); ++j) sum += exact[j] = std::exp(double(s[j]) - double(mx));
    softmax_inplace(s.data(), n);
    CHECK(std::memcmp(s.data(), want.data(), size_t(n) * 4) == 0);
    // Relative: exp's 2 ulp and the normalization, plus |x|·2^-24 from rounding x = s − max to float.
    for (size_t j = 0; j < s.size(); ++j) {
      const double p = exact[j] / sum, x = std::fabs(double(orig[j]) - double(mx));
      if (p == 0.0) REQUIRE(s[j] == 0.0f);  // the -inf score
      else REQUIRE(std::fabs(double(s[j]) - p) <= (4e-7 + x * 0x1p-23) * p + 1e-30);
    }
  }
}

// attention_cpu against the per-head loop written out here with the portable helpers (dot_f32,
// softmax_inplace, axpy_f32): the tiled path (one work item per KV group on x86-64-v3) must give
// the same bits for every group size, head_dim (vector slices and scalar tails), window, cache
// dtype, padding row and key count across the widening block.
TEST_CASE("attention's rows per work item fill a 2^18-float score budget, between 4 and 32") {
  CHECK(attention_row_block(1) == 32);
  CHECK(attention_row_block(4096) == 32);
  CHECK(attention_row_block(4097) == 31);
  CHECK(attention_row_block(8192) == 16);
  CHECK(attention_row_block(32768) == 4);
  CHECK(attention_row_block(int64_t(1) << 30) == 4);
  CHECK(attention_scratch_floats(8192, 64) == 2 * 16 * 8192 + 2 * 48 * 64 + 2 * 32 * 64 + 2 * 32 * 48);
}

// The per-head loop attention_cpu's tiles must equal bit for bit (a.k_cache and a.v_cache unused: k_r
// and v_r are the caches' values in f32): each (row, head) scored against its visible keys (prefill
// chunks of kGemmMinRows rows or more: gemm_ref's chain; fewer: dot_f32), soft-capped if the args say
// so, softmax_inplace, then axpy_f32 over the value rows in order.
void check_attention_loop(const AttentionArgs& a, const std::vector<float>& k_r, const std::vector<float>& v_r) {
  const int64_t H = a.n_heads, KVH = a.n_kv_heads, hd = a.head_dim, S = a.max_seq;
  const int64_t width = (H + 2 * KVH) * hd;
  std::vector<float> scores(static_cast<size_t>(S)), o(static_cast<size_t>(hd));
  for (int64_t r = 0; r < a.batch * a.chunk; ++r)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t b = r / a.chunk, t = r % a.chunk, p = a.start_pos[b] + t;
      std::fill(o.begin(), o.end(), 0.0f);
      if (t < a.n_valid[b]) {
        const float* q = a.qkv + r * width + h * hd;
        const size_t base = size_t((b * S) * KVH * hd + (h / (H / KVH)) * hd);
        const int64_t j0 = attention_first_key(p, a.window);
        for (int64_t j = j0; j <= p; ++j) {
          const float* k = k_r.data() + base + size_t(j * KVH * hd);
          float s = (a.chunk >= kGemmMinRows ? gemm_ref(q, k, hd) : dot_f32(q, k, hd)) * a.scale;
          if (a.alibi) s += a.alibi[h] * float(j - p);  // (BLOOM's linear bias, before the cap)
          scores[size_t(j - j0)] = attention_softcap(s, a.softcap);
        }
        softmax_inplace(scores.data(), p - j0 + 1, attention_sink(a, h));
        for (int64_t j = j0; j <= p; ++j)
          axpy_f32(scores[size_t(j - j0)], v_r.data() + base + size_t(j * KVH * hd), o.data(), hd);
      }
      REQUIRE(std::memcmp(a.out + r * H * hd + h * hd, o.data(), size_t(hd) * 4) == 0);
    }
}

TEST_CASE(
    "attention equals the per-head loop bit for bit (groups, head dims, windows, soft caps, sinks, ALiBi, cache "
    "dtypes)") {
  const std::string tiers = tiers_exercised("the AVX2 tiles");
  MESSAGE(tiers);
  uint32_t seed = 900;
  for (const bool tier512 : avx512_tiers())
    for (DType cache_t : {DType::F32, DType::BF16, DType::F16})
      for (const auto& heads : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {4, 2}, {3, 1}, {8, 2}})
        for (int64_t hd : {4, 20, 64, 72, 220})  // 220: AVX-512 64- and 16-column steps, then 8 and 4 (AVX2)
          for (int64_t window : {0, 5})
            for (int64_t chunk : {41, 7}) {  // 41: prefill's chained scores (gemm_ref); 7: dot_f32's lanes
              // Gemma 2's soft cap on half the cases (small enough to bend these scores)
              const float cap = (hd + window + heads.first) % 2 == 0 ? 0.9f : 0.0f;
              CAPTURE(cap);
              const Tier tier(tier512);
              CAPTURE(tier512);
              CAPTURE(chunk);
              const int64_t H = heads.first, KVH = heads.second;  // (no structured binding: CAPTURE, clang C++17)
              CAPTURE(std::string(dtype_name(cache_t)));
              CAPTURE(H);
              CAPTURE(KVH);
              CAPTURE(hd);
              CAPTURE(window);
              // Keys past the 48-row widening block; at chunk 41 rows in two row blocks (21 and 20 at max_seq
              // 120: the last one cut short), padding rows, and a block that is all padding (batch row 1's
              // second); at chunk 7 one block a batch row, the second partly padding.
              const int64_t batch = 2, S = 120, width = (H + 2 * KVH) * hd;
              REQUIRE(attention_row_block(S) == 32);
              ThreadPool pool(2, attention_scratch_floats(S, hd));
              std::vector<int32_t> start = {75, 0}, valid = {int32_t(chunk), chunk > 20 ? 15 : 3};
              std::vector<float> k_r, v_r;
              auto kc = store(random_floats(size_t(batch * S * KVH * hd), seed++), cache_t, &k_r);
              auto vc = store(random_floats(size_t(batch * S * KVH * hd), seed++), cache_t, &v_r);
              auto qkv = random_floats(size_t(batch * chunk * width), seed++, 3.0f);
              std::vector<float> out(size_t(batch * chunk * H * hd), kNaN);
              const float scale = 0.37f;
              // GPT-OSS's sinks on a third of the cases (around the scores' scale)
              const std::vector<float> sinks = random_floats(size_t(H), seed++, 3.0f);
              const float* sk = (hd + window + chunk) % 3 == 0 ? sinks.data() : nullptr;
              CAPTURE(sk != nullptr);
              // BLOOM's ALiBi slopes on half the cases (steep enough to bend these scores)
              const std::vector<float> slopes = random_floats(size_t(H), seed++, 0.5f);
              const float* al = (hd + chunk + H) % 2 == 1 ? slopes.data() : nullptr;
              CAPTURE(al != nullptr);
              attention_cpu(AttentionArgs{qkv.data(), kc.data(), vc.data(), cache_t, start.data(), valid.data(),
                                          out.data(), batch, chunk, S, H, KVH, hd, scale, window, cap, sk, al},
                            pool);
              check_attention_loop(AttentionArgs{qkv.data(), nullptr, nullptr, cache_t, start.data(), valid.data(),
                                                 out.data(), batch, chunk, S, H, KVH, hd, scale, window, cap, sk, al},
                                   k_r, v_r);
            }
}

// Past max_seq 4096 a row block holds an odd number of rows (31 at 4097), so the scores take a
// number of floats that is no multiple of 16: the blocks after them must still start on a 64-byte
// line (the transposed keys are written by aligned 512-bit stores), and the result stay the loop's.
TEST_CASE("attention past max_seq 4096 (odd row blocks) keeps its scratch aligned and equals the loop") {
  const int64_t S = 4097, H = 2, KVH = 1, hd = 64, chunk = 20, width = (H + 2 * KVH) * hd;
  REQUIRE(attention_row_block(S) == 31);
  REQUIRE(2 * 31 * S % 16 != 0);
  for (const bool tier512 : avx512_tiers())
    for (DType cache_t : {DType::F32, DType::BF16}) {
      const Tier tier(tier512);
      CAPTURE(tier512);
      CAPTURE(std::string(dtype_name(cache_t)));
      ThreadPool pool(2, attention_scratch_floats(S, hd));
      std::vector<int32_t> start = {4070}, valid = {20};
      std::vector<float> k_r, v_r;
      auto kc = store(random_floats(size_t(S * KVH * hd), 77), cache_t, &k_r);
      auto vc = store(random_floats(size_t(S * KVH * hd), 78), cache_t, &v_r);
      auto qkv = random_floats(size_t(chunk * width), 79, 3.0f);
      std::vector<float> out(size_t(chunk * H * hd), kNaN);
      const AttentionArgs a{qkv.data(), kc.data(), vc.data(), cache_t, start.data(), valid.data(), out.data(),
                            1,          chunk,     S,         H,       KVH,          hd,           0.125f};
      attention_cpu(a, pool);
      check_attention_loop(a, k_r, v_r);
    }
}

// window 0: every earlier position; 3 and 1: the last three, the position itself; 9: longer
// than every row's context, so it cuts nothing. Soft cap 0.6 (Gemma 2's cap·tanh(s / cap), small
// enough to bend these scores) or none.
// Sinks (GPT-OSS): one more logit per head in each softmax, weighing no value; a sink far above the
// scores (+30) leaves almost nothing, one far below (−30) almost the plain softmax. ALiBi (BLOOM): key j's score
// for the query at position p gains slope_h·(j − p), before the cap.
TEST_CASE(
    "kv_write and attention match a double reference for causal GQA with padding rows, windows, soft caps, sinks and "
    "ALiBi") {
  for (DType cache_t : {DType::F32, DType::BF16})
    for (int64_t window : {0, 3, 1, 9})
      for (const float cap : {0.0f, 0.6f})
        for (int sink_kind = 0; sink_kind < 4; ++sink_kind) {  // none, drawn, ±30; none with ALiBi
          CAPTURE(std::string(dtype_name(cache_t)));
          CAPTURE(window);
          CAPTURE(cap);
          CAPTURE(sink_kind);
          const std::vector<float> slopes = {0.5f, 0.25f, 0.125f, 1.5f};
          const float* al = sink_kind == 3 ? slopes.data() : nullptr;
          const std::vector<float> sinks =
              sink_kind == 1 ? random_floats(4, 15, 2.0f) : std::vector<float>{30.0f, -30.0f, 0.5f, -1.0f};
          const float* sk = sink_kind == 0 || sink_kind == 3 ? nullptr : sinks.data();
          const int64_t batch = 2, chunk = 4, S = 16, H = 4, KVH = 2, hd = 8, width = (H + 2 * KVH) * hd;
          ThreadPool pool(2, attention_scratch_floats(S, hd));
          // The cache already holds earlier positions; this step appends at start_pos.
          std::vector<int32_t> start = {5, 0}, valid = {3, 4};
          std::vector<float> k_all = random_floats(size_t(batch * S * KVH * hd), 12),
                             v_all = random_floats(k_all.size(), 13);
          std::vector<float> k_r, v_r;
          auto kc = store(k_all, cache_t, &k_r);
          auto vc = store(v_all, cache_t, &v_r);
          auto qkv = random_floats(size_t(batch * chunk * width), 14);
          kv_write_cpu(KvWriteArgs{qkv.data(), start.data(), valid.data(), kc.data(), vc.data(), cache_t, batch, chunk,
                                   S, H, KVH, hd},
                       pool);
          // Expected cache: new k/v (rounded to the cache dtype) at start+t for t < valid.
          for (int64_t b = 0; b < batch; ++b)
            for (int64_t t = 0; t < valid[size_t(b)]; ++t)
              for (int64_t i = 0; i < KVH * hd; ++i) {
                const size_t c = size_t((b * S + start[size_t(b)] + t) * KVH * hd + i);
                const size_t q = size_t((b * chunk + t) * width + H * hd + i);
                k_r[c] = load_as_f32(kc.data(), cache_t, c);
                REQUIRE(std::fabs(load_as_f32(kc.data(), cache_t, c) - qkv[q]) <= std::fabs(qkv[q]) * 4e-3f);
                REQUIRE(std::fabs(load_as_f32(vc.data(), cache_t, c) - qkv[q + size_t(KVH * hd)]) <=
                        std::fabs(qkv[q + size_t(KVH * hd)]) * 4e-3f);
                v_r[c] = load_as_f32(vc.data(), cache_t, c);
              }
          std::vector<float> out(size_t(batch * chunk * H * hd), kNaN), ref(out.size(), 0.0f);
          const float scale = 1.0f / std::sqrt(float(hd));
          attention_cpu(AttentionArgs{qkv.data(), kc.data(), vc.data(), cache_t, start.data(), valid.data(), out.data(),
                                      batch, chunk, S, H, KVH, hd, scale, window, cap, sk, al},
                        pool);
          for (int64_t b = 0; b < batch; ++b)
            for (int64_t t = 0; t < valid[size_t(b)]; ++t)
              for (int64_t h = 0; h < H; ++h) {
                const int64_t p = start[size_t(b)] + t, kvh = h / (H / KVH);
                // Visible: j <= p and, with a window, j > p - window (transformers' sliding mask).
                auto visible = [&](int64_t j) { return j <= p && (window == 0 || j > p - window); };
                std::vector<double> s(size_t(p + 1), 0.0);
                double mx = -1e300, sum = 0;
                for (int64_t j = 0; j <= p; ++j) {
                  if (!visible(j)) continue;
                  double d = 0;
                  for (int64_t i = 0; i < hd; ++i)
                    d += double(qkv[size_t((b * chunk + t) * width + h * hd + i)]) *
                         k_r[size_t(((b * S + j) * KVH + kvh) * hd + i)];
                  const double biased = d * scale + (al ? double(al[h]) * double(j - p) : 0.0);
                  s[size_t(j)] = cap > 0 ? double(cap) * std::tanh(biased / double(cap)) : biased;
                  mx = std::max(mx, s[size_t(j)]);
                }
                if (sk) mx = std::max(mx, double(sk[h]));
                for (int64_t j = 0; j <= p; ++j) sum += (s[size_t(j)] = visible(j) ? std::exp(s[size_t(j)] - mx) : 0.0);
                if (sk) sum += std::exp(double(sk[h]) - mx);  // (the sink's weight, on no value)
                for (int64_t i = 0; i < hd; ++i) {
                  double o = 0;
                  for (int64_t j = 0; j <= p; ++j)
                    o += s[size_t(j)] / sum * v_r[size_t(((b * S + j) * KVH + kvh) * hd + i)];
                  ref[size_t((b * chunk + t) * H * hd + h * hd + i)] = float(o);
                }
              }
          // Padding rows (t >= valid) must be zeros, not left over.
          CHECK(rel_l2(out.data(), ref.data(), ref.size()) < 1e-6);
        }
}

// The fused ops (kernels/fused.h) run their parts on the CPU: bit for bit what the separate
// kernels give, for every combination of prologue, epilogue, bias, accumulation and padding rows.
TEST_CASE("fused_matmul equals rmsnorm, matmul and swiglu run separately, bit for bit") {
  const int64_t k = 40, m = 22, batch = 2, chunk = 3, rows = batch * chunk;
  ThreadPool pool(2, matmul_scratch_floats(k, rows, DType::F16));
  uint32_t seed = 900;
  const int32_t n_valid[2] = {3, 1};
  for (DType wt : {DType::F32, DType::BF16, DType::F16})
    for (int mode = 0; mode < 3; ++mode)               // 0: norm, 1: swiglu, 2: both
      for (int variant = 0; variant < 3; ++variant) {  // 0: plain, 1: bias + accumulate, 2: padding rows
        const bool norm = mode != 1, swiglu = mode != 0, extra = variant == 1 && !swiglu, padded = variant == 2;
        CAPTURE(std::string(dtype_name(wt)));
        CAPTURE(mode);
        CAPTURE(variant);
        const auto x = random_floats(size_t(rows * k), seed++);
        std::vector<float> nw_r, w_r, b_r;
        const auto nw = store(random_floats(size_t(k), seed++), wt, &nw_r);
        const auto w = store(random_floats(size_t(m * k), seed++), wt, &w_r);
        const auto b = store(random_floats(size_t(m), seed++), wt, &b_r);
        const int64_t out_w = swiglu ? m / 2 : m;
        const auto y0 = random_floats(size_t(rows * out_w), seed++);
        // Separately: rmsnorm → xn, matmul → y (or gu), swiglu → h.
        std::vector<float> xn(size_t(rows * k)), gu(size_t(rows * m), 0.0f), ref = y0;
        const float* mx = x.data();
        if (norm) {
          rmsnorm_cpu(RmsNormArgs{x.data(), nw.data(), wt, xn.data(), rows, k, 1e-5f}, pool);
          mx = xn.data();
        }
        MatmulArgs ma{mx,
                      w.data(),
                      wt,
                      extra ? b.data() : nullptr,
                      wt,
                      swiglu ? gu.data() : ref.data(),
                      rows,
                      k,
                      m,
                      extra,
                      padded ? n_valid : nullptr,
                      padded ? batch : 1};
        matmul_cpu(ma, pool);
        if (swiglu) swiglu_cpu(SwigluArgs{gu.data(), ref.data(), rows, m / 2}, pool);
        // Fused.
        std::vector<float> y = y0;
        MatmulArgs fa = ma;
        fa.x = x.data();
        fa.y = swiglu ? nullptr : y.data();
        const FusedMatmulArgs f{fa, norm ? nw.data() : nullptr, wt, 1e-5f, swiglu ? y.data() : nullptr};
        std::vector<float> buffer(size_t(fused_matmul_cpu_buffer_floats(f)), kNaN);
        fused_matmul_cpu(f, buffer.data(), pool);
        // Padding rows (t >= n_valid) hold whatever the gate|up buffer held: nothing reads them.
        for (int64_t r = 0; r < rows; ++r)
          if (!padded || r % chunk < n_valid[r / chunk])
            CHECK(std::memcmp(y.data() + r * out_w, ref.data() + r * out_w, size_t(out_w) * 4) == 0);
      }
}

TEST_CASE("rope_kv_write equals rope then kv_write, bit for bit, for every cache dtype") {
  ThreadPool pool(2);
  const int64_t batch = 2, chunk = 3, h = 4, kvh = 2, hd = 8, max_seq = 10, width = (h + 2 * kvh) * hd;
  const int32_t start[2] = {2, 6}, valid[2] = {3, 2};
  const auto inv = random_floats(size_t(hd / 2), 31);
  for (DType ct : {DType::F32, DType::BF16, DType::F16}) {
    CAPTURE(std::string(dtype_name(ct)));
    const auto qkv0 = random_floats(size_t(batch * chunk * width), 32);
    const size_t cache_bytes = size_t(batch * max_seq * kvh * hd) * dtype_size(ct);
    std::vector<uint8_t> kc0(cache_bytes), vc0(cache_bytes);
    for (size_t i = 0; i < cache_bytes; ++i) kc0[i] = uint8_t(i * 7), vc0[i] = uint8_t(i * 13);
    std::vector<float> q1 = qkv0, q2 = qkv0;
    std::vector<uint8_t> k1 = kc0, v1 = vc0, k2 = kc0, v2 = vc0;
    const RopeArgs r1{q1.data(), inv.data(), start, batch, chunk, width, h + kvh, hd, 1.0f};
    const KvWriteArgs w1{q1.data(), start, valid, k1.data(), v1.data(), ct, batch, chunk, max_seq, h, kvh, hd};
    rope_cpu(r1, pool);
    kv_write_cpu(w1, pool);
    RopeKvWriteArgs f{r1, w1};
    f.rope.qkv = q2.data();
    f.kv.qkv = q2.data(), f.kv.k_cache = k2.data(), f.kv.v_cache = v2.data();
    rope_kv_write_cpu(f, pool);
    CHECK(q1 == q2);
    CHECK(k1 == k2);
    CHECK(v1 == v2);
    CHECK(k1 != kc0);  // something was written
  }
}
