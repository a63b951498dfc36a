#include "kernels/cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/matmul.h"
#ifdef KILN_X86_64_V3_KERNELS
#include "kernels/cpu/tiles.h"
#endif

#ifdef KILN_X86_64_V3_KERNELS
#include <immintrin.h>

#include <atomic>
#endif

namespace kiln {

#ifdef KILN_X86_64_V3_KERNELS
namespace {
std::atomic<bool> g_avx512_tiles_off{false};
}  // namespace

bool cpu_has_avx512() {
  static const bool has =
      cpu_has_x86_64_v3() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return has && !g_avx512_tiles_off.load(std::memory_order_relaxed);
}

void set_avx512_tiles_for_tests(bool on) { g_avx512_tiles_off.store(!on, std::memory_order_relaxed); }
#endif

namespace {

// One body for every dot product: 16 lane sums (the tail folded into the lanes), then a
// pairwise reduction. Sharing it keeps the f32 and widening variants bit-identical.
template <typename LoadB>
inline float dot_lanes(const float* a, LoadB b, int64_t n) {
  constexpr int L = 16;
  float acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += a[i + l] * b(i + l);
  for (int l = 0; i + l < n; ++l) acc[l] += a[i + l] * b(i + l);
  for (int w = L / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

}  // namespace

KILN_TARGET_CLONES
float dot_f32(const float* a, const float* b, int64_t n) {
  return dot_lanes(
      a, [b](int64_t i) { return b[i]; }, n);
}

KILN_TARGET_CLONES
float dot_f32_bf16(const float* a, const uint16_t* b, int64_t n) {
  return dot_lanes(
      a, [b](int64_t i) { return bf16_to_f32(b[i]); }, n);
}

KILN_TARGET_CLONES
float dot_f32_i8(const float* a, const int8_t* b, int64_t n) {
  return dot_lanes(
      a, [b](int64_t i) { return float(b[i]); }, n);
}

namespace {

// dequant_i4 and dequant_f8 as portable loops (the tiles' twins in kernels/cpu/tiles.h give the same bits).
KILN_TARGET_CLONES
void dequant_i4_loop(const uint8_t* row, const float* scales, int64_t group, int64_t i0, int64_t n, float* dst,
                     const int8_t* zeros) {
  auto one = [&](int64_t i) {
    return float(int(load_i4(row, uint64_t(i))) + 8 - i4_zero(zeros, i / group)) * scales[i / group];
  };
  int64_t i = i0;
  for (; i < i0 + n && i % 32 != 0; ++i) dst[i - i0] = one(i);
  // Whole blocks of 32 (one group each: groups are whole blocks), byte by byte into local lanes (which
  // alias nothing, so they vectorize), then copied out.
  for (; i + 32 <= i0 + n; i += 32) {
    const uint8_t* b = row + i / 2;
    const float s = scales[i / group];
    const int z = i4_zero(zeros, i / group);
    float v[32];
    for (int l = 0; l < 16; ++l) {
      v[l] = float(int(b[l] & 15u) - z) * s;
      v[16 + l] = float(int(b[l] >> 4) - z) * s;
    }
    std::memcpy(dst + (i - i0), v, sizeof v);
  }
  for (; i < i0 + n; ++i) dst[i - i0] = one(i);
}

KILN_TARGET_CLONES
void dequant_f8_loop(const uint8_t* row, const float* scales, int64_t group, int64_t i0, int64_t n, float* dst) {
  // Group by group (or its part in range), branch-free lanes that vectorize: each value moved into an
  // f32's bits, times 2^120 (exact), times the scale (the one rounding).
  for (int64_t i = i0; i < i0 + n;) {
    const int64_t end = std::min(i0 + n, (i / group + 1) * group);
    const float s = scales[i / group];
    for (; i + 16 <= end; i += 16) {  // (local lanes: they vectorize)
      float v[16];
      for (int l = 0; l < 16; ++l) v[l] = f8e4m3_bits_f32(row[i + l]) * kF8E4M3Unbias * s;
      std::memcpy(dst + (i - i0), v, sizeof v);
    }
    for (; i < end; ++i) dst[i - i0] = f8e4m3_bits_f32(row[i]) * kF8E4M3Unbias * s;
  }
}

}  // namespace

void dequant_i4(const uint8_t* row, const float* scales, int64_t group, int64_t i0, int64_t n, float* dst,
                const int8_t* zeros) {
#ifdef KILN_X86_64_V3_KERNELS
  // Whole 32-value blocks on the tiles: AVX-512 looks each value up in the group's table of products,
  // AVX2 converts and multiplies.
  if (i0 % 32 == 0 && n % 32 == 0) {
    if (cpu_has_avx512()) return dequant_i4_512(row, scales, group, i0, n, dst, zeros);
    if (cpu_has_x86_64_v3()) return dequant_i4_256(row, scales, group, i0, n, dst, zeros);
  }
#endif
  dequant_i4_loop(row, scales, group, i0, n, dst, zeros);
}

void dequant_f8(const uint8_t* row, const float* scales, int64_t group, int64_t i0, int64_t n, float* dst) {
#ifdef KILN_X86_64_V3_KERNELS
  if (i0 == 0) {  // (the tiles walk a row's groups from its start)
    if (cpu_has_avx512()) return dequant_f8_512(row, scales, group, n, dst);
    if (cpu_has_x86_64_v3()) return dequant_f8_256(row, scales, group, n, dst);
  }
#endif
  dequant_f8_loop(row, scales, group, i0, n, dst);
}

KILN_TARGET_CLONES
float dot_f32_i4(const float* a, const uint8_t* row, const float* scales, int64_t group, int64_t n,
                 const int8_t* zeros) {
  // dot_lanes over n = whole blocks of 32 (group and n multiples of 32): per block, lanes l take value
  // l (byte l's low nibble), then value 16 + l (its high one), as dot_f32 takes its two 16-blocks.
  constexpr int L = 16;
  float acc[L] = {};
  for (int64_t i = 0; i + 2 * L <= n; i += 2 * L) {
    const uint8_t* b = row + i / 2;
    const float s = scales[i / group];
    const int z = i4_zero(zeros, i / group);
    for (int l = 0; l < L; ++l) acc[l] += a[i + l] * (float(int(b[l] & 15u) - z) * s);
    for (int l = 0; l < L; ++l) acc[l] += a[i + L + l] * (float(int(b[l] >> 4) - z) * s);
  }
  for (int w = L / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

KILN_TARGET_CLONES
float dot_f32_f8(const float* a, const uint8_t* row, const float* scales, int64_t group, int64_t n) {
  // dot_lanes's lanes and order, the scale read once per 16 values (groups are whole 16-blocks or the row).
  constexpr int L = 16;
  float acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const float s = scales[i / group];
    for (int l = 0; l < L; ++l) acc[l] += a[i + l] * (f8e4m3_bits_f32(row[i + l]) * kF8E4M3Unbias * s);
  }
  for (int l = 0; i + l < n; ++l) acc[l] += a[i + l] * (f8e4m3_value(row[i + l]) * scales[(i + l) / group]);
  for (int w = L / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

float dot_f32_any(const float* a, const void* w, DType t, int64_t n, float* scratch) {
  if (t == DType::F32) return dot_f32(a, static_cast<const float*>(w), n);
  if (t == DType::BF16) return dot_f32_bf16(a, static_cast<const uint16_t*>(w), n);
  convert_to_f32(w, t, scratch, uint64_t(n));
  return dot_f32(a, scratch, n);
}

#ifdef KILN_X86_64_V3_KERNELS
namespace {

// out[c] = row rows[c]'s dot with x for C weight rows (any rows, in any order) on the matmul's tiles
// (kernels/cpu/tiles.h): the same bits as the portable dots in weight_row_dot, the weights widened in
// registers (on AVX-512 or AVX2), for bf16 and the quantized dtypes. False, out untouched, where no
// tile applies (f32 and f16 rows, CPUs without x86-64-v3: the dots below).
template <int C>
bool weight_rows_tile(const float* x, const uint8_t* base, DType t, const float* scale, int64_t group,
                      const int64_t* rows, int64_t k, const int8_t* zero, float* out) {
  const bool avx512 = cpu_has_avx512();
  if (t != DType::BF16 && t != DType::I8 && t != DType::I4 && t != DType::F8E4M3) return false;
  if (!avx512 && !cpu_has_x86_64_v3()) return false;
  if (t == DType::BF16) {
    const uint16_t* r[C];
    for (int c = 0; c < C; ++c) r[c] = reinterpret_cast<const uint16_t*>(base) + rows[c] * k;
    if (avx512) dot_tile512_widen<C, uint16_t>(x, r, k, out);
    else dot_tile256_widen<C, uint16_t>(x, r, k, out);
  } else if (t == DType::I8) {
    const int8_t* r[C];
    for (int c = 0; c < C; ++c) r[c] = reinterpret_cast<const int8_t*>(base) + rows[c] * k;
    if (avx512) dot_tile512_widen<C, int8_t>(x, r, k, out);
    else dot_tile256_widen<C, int8_t>(x, r, k, out);
    for (int c = 0; c < C; ++c) out[c] *= scale[rows[c]];
  } else if (t == DType::I4) {
    const uint8_t* r[C];
    const float* s[C];
    const int8_t* z[C];
    for (int c = 0; c < C; ++c) {
      r[c] = base + rows[c] * (k / 2);
      s[c] = scale + rows[c] * (k / group);
      z[c] = zero ? zero + rows[c] * (k / group) : nullptr;
    }
    if (avx512) dot_tile512_i4<C>(x, r, s, group, k, out, zero ? z : nullptr);
    else dot_tile256_i4<C>(x, r, s, group, k, out, zero ? z : nullptr);
  } else {
    const uint8_t* r[C];
    const float* s[C];
    for (int c = 0; c < C; ++c) {
      r[c] = base + rows[c] * k;
      s[c] = scale + rows[c] * f8_scales_per_row(k, group);
    }
    if (avx512) dot_tile512_f8<C>(x, r, s, group, k, out);
    else dot_tile256_f8<C>(x, r, s, group, k, out);
  }
  return true;
}

}  // namespace
#endif

void weight_rows_dot(const float* x, const void* w, DType t, const float* scale, int64_t group, const int64_t* rows,
                     int n, int64_t k, float* scratch, float* out, const int8_t* zero) {
#ifdef KILN_X86_64_V3_KERNELS
  if (n >= 1 && n <= kWeightRowsDotMax) {
    int64_t r[kWeightRowsDotMax];
    for (int c = 0; c < kWeightRowsDotMax; ++c) r[c] = rows[std::min(c, n - 1)];  // a short set repeats its last
    float o[kWeightRowsDotMax];
    if (weight_rows_tile<kWeightRowsDotMax>(x, static_cast<const uint8_t*>(w), t, scale, group, r, k, zero, o)) {
      std::copy(o, o + n, out);
      return;
    }
  }
#endif
  for (int c = 0; c < n; ++c) out[c] = weight_row_dot(x, w, t, scale, group, rows[c], k, scratch, zero);
}

float weight_row_dot(const float* x, const void* w, DType t, const float* scale, int64_t group, int64_t row, int64_t k,
                     float* scratch, const int8_t* zero) {
  const uint8_t* base = static_cast<const uint8_t*>(w);
#ifdef KILN_X86_64_V3_KERNELS
  float out = 0.0f;
  if (weight_rows_tile<1>(x, base, t, scale, group, &row, k, zero, &out)) return out;
#endif
  switch (t) {
    case DType::I8:
      return dot_f32_i8(x, reinterpret_cast<const int8_t*>(base) + row * k, k) * scale[row];
    case DType::I4:
      return dot_f32_i4(x, base + row * (k / 2), scale + row * (k / group), group, k,
                        zero ? zero + row * (k / group) : nullptr);
    case DType::F8E4M3:
      return dot_f32_f8(x, base + row * k, scale + row * f8_scales_per_row(k, group), group, k);
    default:
      return dot_f32_any(x, base + uint64_t(row * k) * dtype_size(t), t, k, scratch);
  }
}

void weight_row_values(const void* w, DType t, const float* scale, int64_t group, int64_t row, int64_t k, float* dst,
                       const int8_t* zero) {
  const uint8_t* base = static_cast<const uint8_t*>(w);
  switch (t) {
    case DType::I8: {
      const int8_t* q = reinterpret_cast<const int8_t*>(base) + row * k;
      for (int64_t i = 0; i < k; ++i) dst[i] = float(q[i]) * scale[row];
      return;
    }
    case DType::I4:
      return dequant_i4(base + row * (k / 2), scale + row * (k / group), group, 0, k, dst,
                        zero ? zero + row * (k / group) : nullptr);
    case DType::F8E4M3:
      return dequant_f8(base + row * k, scale + row * f8_scales_per_row(k, group), group, 0, k, dst);
    default:
      return convert_to_f32(base + uint64_t(row * k) * dtype_size(t), t, dst, uint64_t(k));
  }
}

KILN_TARGET_CLONES
void lane_accumulate(float a, const float* __restrict w, float* __restrict lane, int64_t n) {
  // (the expression dot_lanes adds with, so that both contract to an FMA or neither does; restrict: it
  // vectorizes, element by element, the same bits)
  for (int64_t i = 0; i < n; ++i) lane[i] += a * w[i];
}

void lanes_reduce(float* lanes, int64_t n) {
  for (int w = 8; w > 0; w /= 2)
    for (int l = 0; l < w; ++l)
      for (int64_t i = 0; i < n; ++i) lanes[l * n + i] += lanes[(l + w) * n + i];
}

namespace {

// exp_nonpositive's constants: round(x·log2 e) by adding 1.5·2^23 (n sits in the low mantissa bits
// of the sum), ln 2 in two parts (Cody-Waite), Cephes' expf coefficients.
constexpr float kExpMagic = 12582912.0f, kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpLo = -87.33654f;  // ln(FLT_MIN): 2^n stays normal above it
constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                            4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// softmax_inplace's sum: 8 double lanes, combined pairwise (4, 2, 1).
double reduce_lanes(double* acc) {
  for (int w = 4; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

}  // namespace

// Every step an explicit float operation (std::fma where fused), so the AVX2 twin below, which
// performs the same ones, gives the same bits.
float exp_nonpositive(float x) {
  const float t = std::fma(x, kLog2e, kExpMagic);
  const float n = t - kExpMagic;
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = kExpP[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kExpP[i]);
  const float z = r * r;
  const float y = std::fma(p, z, r) + 1.0f;
  const float scale = bits_float((float_bits(t) - float_bits(kExpMagic) + 127u) << 23);  // 2^n
  const float e = y * scale;
  return x < kExpLo ? 0.0f : e;
}

#ifdef KILN_X86_64_V3_KERNELS
namespace {

__attribute__((target("avx2,fma"))) inline __m256 exp_nonpositive_x8(__m256 x) {
  const __m256 magic = _mm256_set1_ps(kExpMagic);
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP[i]));
  const __m256 z = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
  const __m256i k = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
  const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
  const __m256 e = _mm256_mul_ps(y, scale);
  return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_LT_OQ), e);  // NaN compares false: kept
}

// softmax_inplace's max and e^(s − max) with its sum, on x86-64-v3: the portable loops' bits.
__attribute__((target("avx2"))) float max_avx2(const float* s, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(_mm256_loadu_ps(s + j), m);  // a NaN score is skipped
  alignas(32) float l[8];
  _mm256_store_ps(l, m);
  float mx = -INFINITY;
  for (float v : l) mx = std::max(mx, v);
  for (; j < n; ++j) mx = std::max(mx, s[j]);
  return mx;
}

__attribute__((target("avx2,fma"))) double exp_sum_avx2(float* s, int64_t n, float mx) {
  const __m256 m = _mm256_set1_ps(mx);
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();  // lanes 0-3, 4-7
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_nonpositive_x8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(s + j, e);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double acc[8];
  _mm256_store_pd(acc, lo);
  _mm256_store_pd(acc + 4, hi);
  for (int l = 0; j + l < n; ++l) acc[l] += double(s[j + l] = exp_nonpositive(s[j + l] - mx));
  return reduce_lanes(acc);
}

__attribute__((target("avx2,fma"))) int64_t silu_mul_avx2(const float* g, const float* u, float* h, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 pos = _mm256_cmp_ps(gv, zero, _CMP_GE_OQ);  // NaN: false, as g >= 0 is
    const __m256 e = exp_nonpositive_x8(_mm256_blendv_ps(gv, _mm256_sub_ps(zero, gv), pos));
    const __m256 num = _mm256_blendv_ps(_mm256_mul_ps(gv, e), gv, pos);
    _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
  }
  return i;
}

}  // namespace
#endif

float silu(float g) {
  if (g >= 0.0f) return g / (1.0f + exp_nonpositive(-g));
  const float e = exp_nonpositive(g);
  return g * e / (1.0f + e);
}

void silu_mul(const float* g, const float* u, float* h, int64_t n) {
  int64_t i = 0;
#ifdef KILN_X86_64_V3_KERNELS
  if (cpu_has_x86_64_v3()) i = silu_mul_avx2(g, u, h, n);
#endif
  for (; i < n; ++i) h[i] = silu(g[i]) * u[i];
}

void softmax_inplace(float* s, int64_t n, float sink) {
  double sum;
  float mx;
#ifdef KILN_X86_64_V3_KERNELS
  if (cpu_has_x86_64_v3()) {
    mx = std::max(max_avx2(s, n), sink);
    sum = exp_sum_avx2(s, n, mx);
  } else
#endif
  {
    mx = sink;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
    double acc[8] = {};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
      for (int l = 0; l < 8; ++l) acc[l] += double(s[j + l] = exp_nonpositive(s[j + l] - mx));
    for (int l = 0; j + l < n; ++l) acc[l] += double(s[j + l] = exp_nonpositive(s[j + l] - mx));
    sum = reduce_lanes(acc);
  }
  if (sink != -INFINITY) sum += double(exp_nonpositive(sink - mx));  // (the sink's weight, dropped)
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

KILN_TARGET_CLONES
double sum_squares(const float* x, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += double(x[i + l]) * double(x[i + l]);
  for (int l = 0; i + l < n; ++l) acc[l] += double(x[i + l]) * double(x[i + l]);
  return reduce_lanes(acc);
}

KILN_TARGET_CLONES
void axpy_f32(float s, const float* x, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += s * x[j];
}

}  // namespace kiln
