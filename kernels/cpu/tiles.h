// Register tiles for the CPU kernels on x86-64-v3 (AVX2 + FMA), each bit-identical to the
// portable loop it replaces (kernels/cpu/simd.h): the same lanes, association order and FMA
// contraction as the x86-64-v3 clone of that loop, which is the one the loader picks wherever
// these run (cpu_has_x86_64_v3). Tests pin each against its loop, output by output.
#pragma once
#include "kernels/cpu/simd.h"

#ifdef KILN_X86_64_V3_KERNELS
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace kiln {

// A decode GEMV's weight rows are contiguous and each worker takes consecutive tiles, so the rows
// `ahead` elements on are the ones its next tile reads: prefetched into L2 while this tile streams,
// they are there when it starts (Llama-3.2-1B-shape int8 + head decode 60 -> 49 ms, SmolLM2 bf16
// 17.5 -> 12.4 ms on the Xeon dev VM). The address is computed as an integer: past the last tile it points
// outside the weights, which a prefetch may do (it never faults) but pointer arithmetic may not. (Tiles
// of other rows, weight_rows_dot's, prefetch the same way: where the rows `ahead` on are not the next
// ones read, the prefetch is wasted, never wrong.)
template <typename T>
inline void prefetch_next_tile(const T* p, int64_t ahead) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(ahead) * sizeof(T)),
               _MM_HINT_T1);
}
// The same `bytes` on, into L1.
inline void prefetch_l1(const void* p, int64_t bytes) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(bytes)), _MM_HINT_T0);
}

// The multipliers the bits of C f8e4m3 rows' codes take in their group g (f8e4m3_bits_f32, as the
// tiles below move them): scale · 2^120 each, one rounding to value · scale as dequant_f8's two
// multiplies give it (the first is exact); or, where any row's product overflows (true is returned),
// the scales themselves, the codes then unbiased first (× 2^120).
template <int C>
inline bool f8_group_multipliers(const float* const* scales, int64_t g, float* mult) {
  bool big = false;
  for (int c = 0; c < C; ++c) big |= !(std::fabs(scales[c][g] * kF8E4M3Unbias) <= 3.4028235e38f);
  for (int c = 0; c < C; ++c) mult[c] = big ? scales[c][g] : scales[c][g] * kF8E4M3Unbias;
  return big;
}

// dot_f32's end, from its 16 lane sums (lanes 0-7 in l, 8-15 in h) over k's whole 16-blocks up
// to i: the tail of k fused into lanes 0.. one by one, then the pairwise reduction (8, 4, 2, 1).
__attribute__((target("avx2,fma"))) inline float finish_dot_lanes(__m256 l, __m256 h, const float* x, const float* w,
                                                                  int64_t i, int64_t k) {
  if (i < k) {
    alignas(32) float acc[16];
    _mm256_store_ps(acc, l);
    _mm256_store_ps(acc + 8, h);
    for (int64_t t = 0; i + t < k; ++t) acc[t] = std::fma(x[i + t], w[i + t], acc[t]);
    l = _mm256_load_ps(acc);
    h = _mm256_load_ps(acc + 8);
  }
  const __m256 s8 = _mm256_add_ps(l, h);                                                   // l += l + 8
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));  // l += l + 4
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                 // l += l + 2
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));                               // 0 += 1
}

// The same, the lane sums in memory (8 floats each).
__attribute__((target("avx2,fma"))) inline float finish_dot_lanes(const float* l, const float* h, const float* x,
                                                                  const float* w, int64_t i, int64_t k) {
  return finish_dot_lanes(_mm256_loadu_ps(l), _mm256_loadu_ps(h), x, w, i, k);
}

// out[r·C + c] = dot_f32(x[r], w[c], k) for R activation rows and C weight rows, bit for bit:
// lanes 0-7 and 8-15 of each output in two registers, FMA over the whole 16-blocks of k, then
// finish_dot_lanes.
template <int R, int C>
__attribute__((target("avx2,fma"))) void dot_tile(const float* const* x, const float* const* w, int64_t k, float* out,
                                                  int64_t prefetch_ahead = 0) {
  __m256 lo[R][C], hi[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) lo[r][c] = hi[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    // Lanes 0-7, then 8-15: R·C accumulators, R activation registers and one weight register
    // at a time fit the 16 AVX2 registers for 2 × 3.
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x[r] + i);
    if (prefetch_ahead != 0)  // a decode GEMV: the next tile's weight rows into L2
      for (int c = 0; c < C; ++c) prefetch_next_tile(w[c] + i, prefetch_ahead);
    for (int c = 0; c < C; ++c) {
      __m256 wv = _mm256_loadu_ps(w[c] + i);
      __asm__("" : "+x"(wv));  // one load per weight vector, kept in a register for all R rows
      for (int r = 0; r < R; ++r) lo[r][c] = _mm256_fmadd_ps(xv[r], wv, lo[r][c]);
    }
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x[r] + i + 8);
    for (int c = 0; c < C; ++c) {
      __m256 wv = _mm256_loadu_ps(w[c] + i + 8);
      __asm__("" : "+x"(wv));  // one load per weight vector, kept in a register for all R rows
      for (int r = 0; r < R; ++r) hi[r][c] = _mm256_fmadd_ps(xv[r], wv, hi[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * C + c] = finish_dot_lanes(lo[r][c], hi[r][c], x[r], w[c], i, k);
}

// One half of dot_tile's lanes over part of k: with x[r] and w[c] offset by 0 (lanes 0-7) or 8
// (lanes 8-15), acc[(r·C + c)·8 …] += the FMAs of k's 16-blocks starting in [i0, i1), in order.
// Lanes are independent, so a product run as both halves, its k in consecutive parts, each part
// continuing from the last, is dot_tile's bit for bit; one accumulator per output instead of two
// lets a tile hold 2 × 6 of them (15 registers), so each load feeds more FMAs.
// first: start from zero rather than from acc.
template <int R, int C>
__attribute__((target("avx2,fma"))) void dot_half_tile(const float* const* x, const float* const* w, int64_t i0,
                                                       int64_t i1, bool first, float* acc) {
  __m256 a[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) a[r][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + (r * C + c) * 8);
  for (int64_t i = i0; i < i1; i += 16) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x[r] + i);
    for (int c = 0; c < C; ++c) {
      __m256 wv = _mm256_loadu_ps(w[c] + i);
      __asm__("" : "+x"(wv));  // one load per weight vector, kept in a register for all R rows
      for (int r = 0; r < R; ++r) a[r][c] = _mm256_fmadd_ps(xv[r], wv, a[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(acc + (r * C + c) * 8, a[r][c]);
}

// dot_tile on AVX-512: the 16 lanes of each output in one register (lanes 0-7 and 8-15 are its
// halves), so the same FMAs lane by lane, the same bits; 32 registers hold 4 × 6 accumulators,
// 4 activation registers and a weight register.
template <int R, int C>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void dot_tile512(const float* const* x, const float* const* w,
                                                                      int64_t k, float* out) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm512_loadu_ps(x[r] + i);
    for (int c = 0; c < C; ++c) {
      __m512 wv = _mm512_loadu_ps(w[c] + i);
      __asm__("" : "+v"(wv));  // one load per weight vector, kept in a register for all R rows
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_fmadd_ps(xv[r], wv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      // (the zero-masked extracts: GCC 12 warns that the plain ones' undefined pass-through is uninitialized)
      out[r * C + c] = finish_dot_lanes(_mm512_maskz_extractf32x8_ps(0xFF, acc[r][c], 0),
                                        _mm512_maskz_extractf32x8_ps(0xFF, acc[r][c], 1), x[r], w[c], i, k);
}

// 16 weights of a low-precision row as f32 lanes, widened in registers, and one weight as f32:
// bf16 is the top half of its f32; int8 is sign-extended and converted (exactly).
// (zero-masked forms: GCC 12 warns that the plain ones' undefined pass-through is uninitialized)
__attribute__((target("avx512f,avx512dq,avx2,fma"))) inline __m512 widen16(const uint16_t* w) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}
__attribute__((target("avx512f,avx512dq,avx2,fma"))) inline __m512 widen16(const int8_t* w) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, q));
}
inline float widen1(uint16_t w) { return bf16_to_f32(w); }
inline float widen1(int8_t w) { return float(w); }

// out[c] = dot_f32_bf16(x, w[c], k) (T = uint16_t, bf16 rows) or dot_f32_i8 (T = int8_t) for C
// weight rows, bit for bit, on AVX-512: each row's 16 lanes in one register, its weights widened in
// registers, the tail fused into lanes 0.. as the dot product does, then finish_dot_lanes's reduction.
template <int C, typename T>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void dot_tile512_widen(const float* x, const T* const* w,
                                                                            int64_t k, float* out) {
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    // Per cache line of the rows: the next tile's rows into L2 (prefetch_next_tile), and for int8 rows
    // also this row 256 bytes on into L1 (a line lasts the int8 loop 4 steps, too few for the hardware
    // prefetcher alone: 1B-shape decode 75 -> 66 ms before the next-tile prefetch, at 256 and 512 bytes
    // alike; 1024 and 2048 were slower)
    if ((i & (64 / sizeof(T) - 1)) == 0)
      for (int c = 0; c < C; ++c) {
        if (sizeof(T) == 1) prefetch_l1(w[c] + i, 256);
        prefetch_next_tile(w[c] + i, C * k);
      }
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(xv, widen16(w[c] + i), acc[c]);
  }
  for (int c = 0; c < C; ++c) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[c]);
    for (int64_t t = 0; i + t < k; ++t) lanes[t] = std::fma(x[i + t], widen1(w[c][i + t]), lanes[t]);
    out[c] = finish_dot_lanes(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8), x, nullptr, k, k);
  }
}

// out[c] = dot_f32_i4(x, w[c], scales[c], group, k) for C packed i4 weight rows (group and k multiples
// of 32), bit for bit, on AVX-512: a block of 32 values a step, its 16 bytes widened to the 16 lanes
// (lane l: values l and 16 + l in the low and high nibble, kernels/dtype.h), and each nibble looked up
// in the row's table of the 16 products float(q) · scale for its group (vpermps reads an index's low
// 4 bits only, so the high nibble needs just a shift): the same rounded products dequant_i4 makes,
// FMA into the row's 16 lanes, then finish_dot_lanes's reduction. Three shuffles a block, where
// splitting and interleaving the nibbles of a value-ordered byte stream took six.
// The 16 values an i4 group's nibbles stand for: float(nibble − z) · scale (z: i4_zero).
__attribute__((target("avx512f,avx512dq,avx2,fma"))) inline __m512 i4_table(float scale, int z) {
  const __m512 nib = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_mul_ps(_mm512_sub_ps(nib, _mm512_set1_ps(float(z))), _mm512_set1_ps(scale));
}

template <int C>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void dot_tile512_i4(const float* x, const uint8_t* const* w,
                                                                         const float* const* scales, int64_t group,
                                                                         int64_t k, float* out,
                                                                         const int8_t* const* zeros = nullptr) {
  __m512 acc[C], table[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  // Group by group, its blocks inside (a division a block cost as much as the block: V2-Lite int4
  // experts on AVX2 6.9 -> 3.3 ms).
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += group, ++g) {
    for (int c = 0; c < C; ++c) table[c] = i4_table(scales[c][g], i4_zero(zeros ? zeros[c] : nullptr, g));
    for (int64_t i = g0; i < std::min(g0 + group, k); i += 32) {
      const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
      // Per cache line of the rows (128 values): this row 256 bytes on into L1 and the next tile's rows
      // into L2, as for int8 rows.
      if ((i & 127) == 0)
        for (int c = 0; c < C; ++c) {
          prefetch_l1(w[c] + i / 2, 256);
          prefetch_next_tile(w[c] + i / 2, C * k / 2);
        }
      for (int c = 0; c < C; ++c) {
        const __m512i b =
            _mm512_maskz_cvtepu8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[c] + i / 2)));
        const __m512i n0 = b,
                      n1 = _mm512_maskz_srli_epi32(0xffff, b, 4);  // values i … i+15, i+16 … i+31 in their low 4 bits
        acc[c] = _mm512_fmadd_ps(x0, _mm512_maskz_permutexvar_ps(0xffff, n0, table[c]), acc[c]);
        acc[c] = _mm512_fmadd_ps(x1, _mm512_maskz_permutexvar_ps(0xffff, n1, table[c]), acc[c]);
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[c]);
    out[c] = finish_dot_lanes(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8), x, nullptr, k, k);
  }
}

// dequant_i4 on AVX-512 for whole blocks of 32 values (i0 and n multiples of 32): each block's 16
// bytes widened to the lanes and looked up in the group's table of q · scale, as dot_tile512_i4 does
// (the same rounded products).
__attribute__((target("avx512f,avx512dq,avx2,fma"))) inline void dequant_i4_512(const uint8_t* row, const float* scales,
                                                                                int64_t group, int64_t i0, int64_t n,
                                                                                float* dst,
                                                                                const int8_t* zeros = nullptr) {
  for (int64_t i = i0; i < i0 + n;) {  // group by group (the first and last possibly in part)
    const int64_t g = i / group, end = std::min(i0 + n, (g + 1) * group);
    const __m512 table = i4_table(scales[g], i4_zero(zeros, g));
    for (; i < end; i += 32) {
      const __m512i b =
          _mm512_maskz_cvtepu8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i / 2)));
      _mm512_storeu_ps(dst + (i - i0), _mm512_maskz_permutexvar_ps(0xffff, b, table));
      _mm512_storeu_ps(dst + (i - i0) + 16,
                       _mm512_maskz_permutexvar_ps(0xffff, _mm512_maskz_srli_epi32(0xffff, b, 4), table));
    }
  }
}

// dequant_f8 on AVX-512 for a whole row of n values (group a multiple of 16 up to n, or n): 16 values a
// step, each value's bits moved into an f32 and multiplied by the group's scale · 2^120 (one rounding to
// value · scale, as dequant_f8's two multiplies give it; the first is exact), or, where that product
// overflows, unbiased first; the last n % 16 values one by one.
__attribute__((target("avx512f,avx512dq,avx2,fma"))) inline void dequant_f8_512(const uint8_t* row, const float* scales,
                                                                                int64_t group, int64_t n, float* dst) {
  const __m512i mask = _mm512_set1_epi32(int(0x87f00000u));
  const int64_t n16 = n - n % 16;
  for (int64_t g0 = 0; g0 < n16; g0 += group) {
    float m;
    const bool big = f8_group_multipliers<1>(&scales, g0 / group, &m);
    const __m512 sv = _mm512_set1_ps(m);
    for (int64_t i = g0; i < std::min(g0 + group, n16); i += 16) {
      const __m512i b = _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i)));
      __m512 v = _mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_slli_epi32(0xffff, b, 20), mask));
      if (big) v = _mm512_mul_ps(v, _mm512_set1_ps(kF8E4M3Unbias));
      _mm512_storeu_ps(dst + i, _mm512_mul_ps(v, sv));
    }
  }
  for (int64_t i = n16; i < n; ++i) dst[i] = f8e4m3_value(row[i]) * scales[i / group];
}

// One step of dot_tile512_f8: values i … i+15 of C f8e4m3 rows against x's, each value's bits moved
// into an f32 (f8e4m3_bits_f32: sign-extended, shifted, masked), times sv[c], FMA into acc[c]. sv[c] is
// the group's scale · 2^120, one rounding to value · scale exactly as dequant_f8's two multiplies give
// it (the first is exact); Big: that product overflowed, so the value is unbiased first (× 2^120), then
// scaled by sv[c] = the scale.
template <int C, bool Big>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) inline void f8_step512(const float* x, const uint8_t* const* w,
                                                                            const __m512* sv, int64_t i, int64_t k,
                                                                            __m512* acc) {
  const __m512i mask = _mm512_set1_epi32(int(0x87f00000u));
  const __m512 xv = _mm512_loadu_ps(x + i);
  // Per cache line of the rows: 256 bytes on into L1, and the next tile's rows into L2 (as for int8 rows).
  if ((i & 63) == 0)
    for (int c = 0; c < C; ++c) {
      prefetch_l1(w[c] + i, 256);
      prefetch_next_tile(w[c] + i, C * k);
    }
  for (int c = 0; c < C; ++c) {
    const __m512i b = _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[c] + i)));
    __m512 v = _mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_slli_epi32(0xffff, b, 20), mask));
    if constexpr (Big) v = _mm512_mul_ps(v, _mm512_set1_ps(kF8E4M3Unbias));
    acc[c] = _mm512_fmadd_ps(xv, _mm512_mul_ps(v, sv[c]), acc[c]);
  }
}

// out[c] = dot_f32_f8(x, w[c], scales[c], group, k) for C f8e4m3 weight rows (group a multiple of 16 or
// k), bit for bit, on AVX-512: 16 values a step widened in registers (f8_step512: five instructions
// for 16 values), the tail fused into lanes 0.. as the dot product does, then finish_dot_lanes.
template <int C>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void dot_tile512_f8(const float* x, const uint8_t* const* w,
                                                                         const float* const* scales, int64_t group,
                                                                         int64_t k, float* out) {
  __m512 acc[C], sv[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  const int64_t k16 = k - k % 16;
  for (int64_t g0 = 0; g0 < k16; g0 += group) {
    const int64_t g1 = std::min(g0 + group, k16);
    float m[C];
    const bool big = f8_group_multipliers<C>(scales, g0 / group, m);
    for (int c = 0; c < C; ++c) sv[c] = _mm512_set1_ps(m[c]);
    if (big)
      for (int64_t i = g0; i < g1; i += 16) f8_step512<C, true>(x, w, sv, i, k, acc);
    else
      for (int64_t i = g0; i < g1; i += 16) f8_step512<C, false>(x, w, sv, i, k, acc);
  }
  for (int c = 0; c < C; ++c) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[c]);
    for (int64_t t = 0; k16 + t < k; ++t)
      lanes[t] = std::fma(x[k16 + t], f8e4m3_value(w[c][k16 + t]) * scales[c][(k16 + t) / group], lanes[t]);
    out[c] = finish_dot_lanes(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8), x, nullptr, k, k);
  }
}

// 8 weights of a low-precision row as f32 lanes, widened in registers (widen16's rule, 8 at a time).
__attribute__((target("avx2,fma"))) inline __m256 widen8(const uint16_t* w) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
__attribute__((target("avx2,fma"))) inline __m256 widen8(const int8_t* w) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w))));
}

// out[c] = dot_f32_bf16(x, w[c], k) (T = uint16_t, bf16 rows) or dot_f32_i8 (T = int8_t) for C weight
// rows, bit for bit, on AVX2: lanes 0-7 and 8-15 of each row in two registers, 8 weights at a time
// widened in registers, the tail fused into lanes 0.. as the dot product does, then finish_dot_lanes's
// reduction. The prefetches are dot_tile512_widen's.
template <int C, typename T>
__attribute__((target("avx2,fma"))) void dot_tile256_widen(const float* x, const T* const* w, int64_t k, float* out) {
  __m256 lo[C], hi[C];
  for (int c = 0; c < C; ++c) lo[c] = hi[c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    if ((i & (64 / sizeof(T) - 1)) == 0)
      for (int c = 0; c < C; ++c) {
        if (sizeof(T) == 1) prefetch_l1(w[c] + i, 256);
        prefetch_next_tile(w[c] + i, C * k);
      }
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    for (int c = 0; c < C; ++c) {
      lo[c] = _mm256_fmadd_ps(x0, widen8(w[c] + i), lo[c]);
      hi[c] = _mm256_fmadd_ps(x1, widen8(w[c] + i + 8), hi[c]);
    }
  }
  for (int c = 0; c < C; ++c) {
    alignas(32) float lanes[16];
    _mm256_store_ps(lanes, lo[c]);
    _mm256_store_ps(lanes + 8, hi[c]);
    for (int64_t t = 0; i + t < k; ++t) lanes[t] = std::fma(x[i + t], widen1(w[c][i + t]), lanes[t]);
    out[c] = finish_dot_lanes(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8), x, nullptr, k, k);
  }
}

// Nibbles (each in the low 4 bits of a 32-bit lane) as float(nibble − z) · scale (zv: z, sv: the scale).
__attribute__((target("avx2,fma"))) inline __m256 i4_values256(__m256i nibbles, __m256i zv, __m256 sv) {
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(nibbles, zv)), sv);
}

// dequant_i4 on AVX2 for whole blocks of 32 values (i0 and n multiples of 32): each block's bytes
// widened 8 at a time as dot_tile256_i4 widens them (the same rounded products).
__attribute__((target("avx2,fma"))) inline void dequant_i4_256(const uint8_t* row, const float* scales, int64_t group,
                                                               int64_t i0, int64_t n, float* dst,
                                                               const int8_t* zeros = nullptr) {
  const __m256i m15 = _mm256_set1_epi32(15);
  for (int64_t i = i0; i < i0 + n;) {  // group by group (the first and last possibly in part)
    const int64_t g = i / group, end = std::min(i0 + n, (g + 1) * group);
    const __m256 sv = _mm256_set1_ps(scales[g]);
    const __m256i zv = _mm256_set1_epi32(i4_zero(zeros, g));
    for (; i < end; i += 32) {
      const __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i / 2)));
      const __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i / 2 + 8)));
      float* d = dst + (i - i0);
      _mm256_storeu_ps(d, i4_values256(_mm256_and_si256(b0, m15), zv, sv));
      _mm256_storeu_ps(d + 8, i4_values256(_mm256_and_si256(b1, m15), zv, sv));
      _mm256_storeu_ps(d + 16, i4_values256(_mm256_srli_epi32(b0, 4), zv, sv));
      _mm256_storeu_ps(d + 24, i4_values256(_mm256_srli_epi32(b1, 4), zv, sv));
    }
  }
}

// out[c] = dot_f32_i4(x, w[c], scales[c], group, k) for C packed i4 weight rows (group and k multiples
// of 32), bit for bit, on AVX2: each row's lanes 0-7 and 8-15 in two registers; per block of 32 values
// its bytes 0-7 and 8-15 widened to 32-bit lanes, each byte's low nibble (values 0-15) and high one
// (16-31) masked or shifted out, less the group's zero point (in 32 bits, so any int8 zero point gives
// float(nibble − z) exactly), converted and multiplied by the scale: the rounded products dequant_i4
// makes, FMA into the lanes in dot_f32_i4's order (a lane's low-nibble value, then its high one). Group
// by group, its blocks inside. (Splitting the nibbles in 16-byte registers first, then widening each
// half: 8-30% slower on the Xeon VM.)
template <int C>
__attribute__((target("avx2,fma"))) void dot_tile256_i4(const float* x, const uint8_t* const* w,
                                                        const float* const* scales, int64_t group, int64_t k,
                                                        float* out, const int8_t* const* zeros = nullptr) {
  __m256 lo[C], hi[C];
  for (int c = 0; c < C; ++c) lo[c] = hi[c] = _mm256_setzero_ps();
  const __m256i m15 = _mm256_set1_epi32(15);
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += group, ++g) {
    __m256 sv[C];
    __m256i zv[C];
    for (int c = 0; c < C; ++c) {
      sv[c] = _mm256_set1_ps(scales[c][g]);
      zv[c] = _mm256_set1_epi32(i4_zero(zeros ? zeros[c] : nullptr, g));
    }
    for (int64_t i = g0; i < std::min(g0 + group, k); i += 32) {
      if ((i & 127) == 0)  // per cache line of the rows, as dot_tile512_i4
        for (int c = 0; c < C; ++c) {
          prefetch_l1(w[c] + i / 2, 256);
          prefetch_next_tile(w[c] + i / 2, C * k / 2);
        }
      for (int c = 0; c < C; ++c) {
        // bytes 0-7 (values 0-7 low, 16-23 high: lanes 0-7) and 8-15 (8-15, 24-31: lanes 8-15) widened
        const __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[c] + i / 2)));
        const __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[c] + i / 2 + 8)));
        lo[c] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), i4_values256(_mm256_and_si256(b0, m15), zv[c], sv[c]), lo[c]);
        hi[c] =
            _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), i4_values256(_mm256_and_si256(b1, m15), zv[c], sv[c]), hi[c]);
        lo[c] =
            _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), i4_values256(_mm256_srli_epi32(b0, 4), zv[c], sv[c]), lo[c]);
        hi[c] =
            _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), i4_values256(_mm256_srli_epi32(b1, 4), zv[c], sv[c]), hi[c]);
      }
    }
  }
  for (int c = 0; c < C; ++c) out[c] = finish_dot_lanes(lo[c], hi[c], x, nullptr, k, k);
}

// The low 8 f8e4m3 codes of `codes` as value · scale: s is the scale · 2^120, or (Big) the scale, the
// value then unbiased first.
template <bool Big>
__attribute__((target("avx2,fma"))) inline __m256 f8_values256(__m128i codes, __m256 s) {
  const __m256i mask = _mm256_set1_epi32(int(0x87f00000u));
  __m256 v = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(_mm256_cvtepi8_epi32(codes), 20), mask));
  if constexpr (Big) v = _mm256_mul_ps(v, _mm256_set1_ps(kF8E4M3Unbias));
  return _mm256_mul_ps(v, s);
}

// dequant_f8 on AVX2 for a whole row of n values (group a multiple of 16 up to n, or n), 8 values at a
// time as dot_tile256_f8 widens them (dequant_f8_512's products); the last n % 16 values one by one.
__attribute__((target("avx2,fma"))) inline void dequant_f8_256(const uint8_t* row, const float* scales, int64_t group,
                                                               int64_t n, float* dst) {
  const int64_t n16 = n - n % 16;
  for (int64_t g0 = 0; g0 < n16; g0 += group) {
    float m;
    const bool big = f8_group_multipliers<1>(&scales, g0 / group, &m);
    const __m256 sv = _mm256_set1_ps(m);
    for (int64_t i = g0; i < std::min(g0 + group, n16); i += 8) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i));
      _mm256_storeu_ps(dst + i, big ? f8_values256<true>(b, sv) : f8_values256<false>(b, sv));
    }
  }
  for (int64_t i = n16; i < n; ++i) dst[i] = f8e4m3_value(row[i]) * scales[i / group];
}

// One step of dot_tile256_f8: values i … i+15 of C f8e4m3 rows, 8 a register, as f8_step512 takes 16.
template <int C, bool Big>
__attribute__((target("avx2,fma"))) inline void f8_step256(const float* x, const uint8_t* const* w, const float* sv,
                                                           int64_t i, int64_t k, __m256* lo, __m256* hi) {
  if ((i & 63) == 0)  // per cache line of the rows, as dot_tile512_f8
    for (int c = 0; c < C; ++c) {
      prefetch_l1(w[c] + i, 256);
      prefetch_next_tile(w[c] + i, C * k);
    }
  for (int c = 0; c < C; ++c) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[c] + i));
    const __m256 s = _mm256_set1_ps(sv[c]);
    lo[c] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), f8_values256<Big>(b, s), lo[c]);
    hi[c] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), f8_values256<Big>(_mm_unpackhi_epi64(b, b), s), hi[c]);
  }
}

// out[c] = dot_f32_f8(x, w[c], scales[c], group, k) for C f8e4m3 weight rows (group a multiple of 16 or
// k), bit for bit, on AVX2: 16 values a step, 8 a register, each value's bits moved into an f32 as
// dot_tile512_f8 does (sign-extended, shifted, masked) and multiplied by the group's scale · 2^120 (or,
// where that overflows, unbiased first, then the scale), FMA into lanes 0-7 and 8-15; the tail fused into
// lanes 0.. as the dot product does, then finish_dot_lanes.
template <int C>
__attribute__((target("avx2,fma"))) void dot_tile256_f8(const float* x, const uint8_t* const* w,
                                                        const float* const* scales, int64_t group, int64_t k,
                                                        float* out) {
  __m256 lo[C], hi[C];
  for (int c = 0; c < C; ++c) lo[c] = hi[c] = _mm256_setzero_ps();
  const int64_t k16 = k - k % 16;
  for (int64_t g0 = 0; g0 < k16; g0 += group) {
    const int64_t g1 = std::min(g0 + group, k16);
    float sv[C];
    const bool big = f8_group_multipliers<C>(scales, g0 / group, sv);
    if (big)
      for (int64_t i = g0; i < g1; i += 16) f8_step256<C, true>(x, w, sv, i, k, lo, hi);
    else
      for (int64_t i = g0; i < g1; i += 16) f8_step256<C, false>(x, w, sv, i, k, lo, hi);
  }
  for (int c = 0; c < C; ++c) {
    alignas(32) float lanes[16];
    _mm256_store_ps(lanes, lo[c]);
    _mm256_store_ps(lanes + 8, hi[c]);
    for (int64_t t = 0; k16 + t < k; ++t)
      lanes[t] = std::fma(x[k16 + t], f8e4m3_value(w[c][k16 + t]) * scales[c][(k16 + t) / group], lanes[t]);
    out[c] = finish_dot_lanes(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8), x, nullptr, k, k);
  }
}

template <int R>
inline void dot_tile_cols(const float* const* x, const float* const* w, int64_t cols, int64_t k, float* out,
                          int64_t prefetch_ahead = 0) {
  if (cols == 3) dot_tile<R, 3>(x, w, k, out, prefetch_ahead);
  else if (cols == 2) dot_tile<R, 2>(x, w, k, out, prefetch_ahead);
  else dot_tile<R, 1>(x, w, k, out, prefetch_ahead);
}

// o[r][d] = fma(s[r][j], v[j][d], o[r][d]) for j = 0 … n−1 in turn, every d: axpy_f32(s[r][j], v[j],
// o[r], hd) for each j, for R rows of weights sharing the rows of v (a softmax's weighted sum).
// (From column d0 on: axpy_tile512 hands over its last columns.)
template <int R>
__attribute__((target("avx2,fma"))) void axpy_tile(const float* const* s, const float* const* v, int64_t n,
                                                   float* const* o, int64_t hd, int64_t d0 = 0) {
  int64_t d = d0;
  for (; d + 32 <= hd; d += 32) {
    __m256 acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) acc[r][i] = _mm256_loadu_ps(o[r] + d + 8 * i);
    for (int64_t j = 0; j < n; ++j) {
      __m256 vv[4];
      for (int i = 0; i < 4; ++i) {
        vv[i] = _mm256_loadu_ps(v[j] + d + 8 * i);
        __asm__("" : "+x"(vv[i]));  // loaded once, used by every row
      }
      for (int r = 0; r < R; ++r) {
        const __m256 sb = _mm256_broadcast_ss(s[r] + j);
        for (int i = 0; i < 4; ++i) acc[r][i] = _mm256_fmadd_ps(sb, vv[i], acc[r][i]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) _mm256_storeu_ps(o[r] + d + 8 * i, acc[r][i]);
  }
  for (; d + 8 <= hd; d += 8) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_loadu_ps(o[r] + d);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 vv = _mm256_loadu_ps(v[j] + d);
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(s[r] + j), vv, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(o[r] + d, acc[r]);
  }
  for (; d < hd; ++d)
    for (int r = 0; r < R; ++r) {
      float acc = o[r][d];
      for (int64_t j = 0; j < n; ++j) acc = std::fma(s[r][j], v[j][d], acc);
      o[r][d] = acc;
    }
}

// axpy_tile on AVX-512: 64 and then 16 columns at a time, the rest by axpy_tile; every output
// the same chain of FMAs over j, so the same bits.
template <int R>
__attribute__((target("avx512f,avx2,fma"))) void axpy_tile512(const float* const* s, const float* const* v, int64_t n,
                                                              float* const* o, int64_t hd) {
  int64_t d = 0;
  for (; d + 64 <= hd; d += 64) {
    __m512 acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_loadu_ps(o[r] + d + 16 * i);
    for (int64_t j = 0; j < n; ++j) {
      __m512 vv[4];
      for (int i = 0; i < 4; ++i) {
        vv[i] = _mm512_loadu_ps(v[j] + d + 16 * i);
        __asm__("" : "+v"(vv[i]));  // loaded once, used by every row
      }
      for (int r = 0; r < R; ++r) {
        const __m512 sb = _mm512_set1_ps(s[r][j]);
        for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_fmadd_ps(sb, vv[i], acc[r][i]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) _mm512_storeu_ps(o[r] + d + 16 * i, acc[r][i]);
  }
  for (; d + 16 <= hd; d += 16) {
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_loadu_ps(o[r] + d);
    for (int64_t j = 0; j < n; ++j) {
      const __m512 vv = _mm512_loadu_ps(v[j] + d);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(s[r][j]), vv, acc[r]);
    }
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(o[r] + d, acc[r]);
  }
  if (d < hd) axpy_tile<R>(s, v, n, o, hd, d);
}

}  // namespace kiln
#endif
