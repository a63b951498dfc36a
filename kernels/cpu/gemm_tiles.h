// Register tiles of the CPU matmul for many activation rows (prefill; kernels/cpu/matmul.cpp,
// matmul_gemm): outer products. A tile holds V vectors of activation rows (L lanes each: 16 on
// AVX-512, 8 on AVX2) for each of C weight rows; per step of k it loads the rows' x at that k (one
// vector per V, from the rows transposed into the worker's scratch) and broadcasts each weight row's
// value, C·V FMAs for V + C loads. Every output is the chain acc = fma(x[r][i], w[j][i], acc) for
// i = 0 … k−1 in turn, from 0, in whichever lane, tile or thread it runs: the same bits on both
// tiers, for every thread count, and gemm_ref's (the portable definition).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/cpu/simd.h"

#ifdef KILN_X86_64_V3_KERNELS
#include <immintrin.h>
#endif

namespace kiln {

// The definition: one output, its chain of FMAs over k.
inline float gemm_ref(const float* x, const float* w, int64_t k) {
  float acc = 0.0f;
  for (int64_t i = 0; i < k; ++i) acc = std::fma(x[i], w[i], acc);
  return acc;
}

// A tile's prefetch: when pf.rows > 0, each 16 steps of k also prefetch into L2 the next pf.esz·16 bytes of
// pf.rows weight rows (from pf.at, pf.ld bytes apart), so a later tile's rows stream in while this one
// computes: the weights come from memory once per call, and spread over the tiles of a block of rows
// their reads do not come in bursts.
struct TilePrefetch {
  uintptr_t at = 0;
  int64_t ld = 0, rows = 0, esz = 4;
};

#ifdef KILN_X86_64_V3_KERNELS
// out[c·S + v·16 + l] = the chain over k for activation lane v·16 + l and weight row c, where xt holds
// the rows transposed (xt[i·S + lane], S = kStride lanes per step of k, 64-byte aligned) and weight row c
// is w + c·ldw. cont: the chains continue from out's values (a later block of k) instead of from 0.
template <int V, int C, int64_t S>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void gemm_tile512(const float* xt, const float* w, int64_t ldw,
                                                                       int64_t k, float* out,
                                                                       const TilePrefetch& pf = TilePrefetch(),
                                                                       bool cont = false) {
  static_assert(V * 16 <= S, "the tile's lanes fit a step of xt");
  __m512 acc[C][V];
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < V; ++v) acc[c][v] = cont ? _mm512_loadu_ps(out + c * S + 16 * v) : _mm512_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    if ((i & 15) == 0)
      for (int64_t c = 0; c < pf.rows; ++c)
        _mm_prefetch(reinterpret_cast<const char*>(pf.at + uintptr_t(c * pf.ld + i * pf.esz)), _MM_HINT_T1);
    __m512 xv[V];
    for (int v = 0; v < V; ++v) xv[v] = _mm512_load_ps(xt + i * S + 16 * v);
    for (int c = 0; c < C; ++c) {
      const __m512 b = _mm512_set1_ps(w[c * ldw + i]);
      for (int v = 0; v < V; ++v) acc[c][v] = _mm512_fmadd_ps(xv[v], b, acc[c][v]);
    }
  }
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(out + c * S + 16 * v, acc[c][v]);
}

// dst[i·S + l] = rows[l][i] for the 16 rows l and i < k (a null row reads as zeros): the tiles' operand
// transposed, 16 × 16 blocks in registers (unpacks, then 32- and 128-bit shuffles; zero-masked forms, whose
// pass-through GCC 12 does not call uninitialized), the tail of k one by
// one. dst must be 64-byte aligned and S a multiple of 16.
template <int64_t S>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void transpose_rows16(const float* const* rows, int64_t k,
                                                                           float* dst) {
  static_assert(S % 16 == 0, "every stored vector is aligned");
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 r[16], t[16];
    for (int l = 0; l < 16; ++l) r[l] = rows[l] ? _mm512_loadu_ps(rows[l] + i) : _mm512_setzero_ps();
    for (int l = 0; l < 16; l += 2) {  // t[l] = a0 b0 a1 b1 | a4 b4 a5 b5 | …, t[l+1] = a2 b2 a3 b3 | …
      t[l] = _mm512_maskz_unpacklo_ps(0xFFFF, r[l], r[l + 1]);
      t[l + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, r[l], r[l + 1]);
    }
    for (int l = 0; l < 16; l += 4) {  // r[l + c] = column c (and c + 4, 8, 12) of rows l … l+3, per 128-bit lane
      r[l] = _mm512_maskz_shuffle_ps(0xFFFF, t[l], t[l + 2], 0x44);
      r[l + 1] = _mm512_maskz_shuffle_ps(0xFFFF, t[l], t[l + 2], 0xEE);
      r[l + 2] = _mm512_maskz_shuffle_ps(0xFFFF, t[l + 1], t[l + 3], 0x44);
      r[l + 3] = _mm512_maskz_shuffle_ps(0xFFFF, t[l + 1], t[l + 3], 0xEE);
    }
    for (int h = 0; h < 16; h += 8)  // rows 0-7 (h 0) or 8-15: lanes {c, c + 8} then {c + 4, c + 12}
      for (int c = 0; c < 4; ++c) {
        t[h + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[h + c], r[h + 4 + c], 0x88);
        t[h + 4 + c] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[h + c], r[h + 4 + c], 0xDD);
      }
    for (int c = 0; c < 8; ++c) {  // columns c and c + 8: rows 0-7 from t[c], 8-15 from t[8 + c]
      _mm512_store_ps(dst + (i + c) * S, _mm512_maskz_shuffle_f32x4(0xFFFF, t[c], t[8 + c], 0x88));
      _mm512_store_ps(dst + (i + c + 8) * S, _mm512_maskz_shuffle_f32x4(0xFFFF, t[c], t[8 + c], 0xDD));
    }
  }
  for (; i < k; ++i)
    for (int l = 0; l < 16; ++l) dst[i * S + l] = rows[l] ? rows[l][i] : 0.0f;
}

// The same on AVX2: 8 lanes a vector, 2 × 6 accumulators, 2 activation registers and a broadcast fit
// the 16 registers.
template <int V, int C, int64_t S>
__attribute__((target("avx2,fma"))) void gemm_tile256(const float* xt, const float* w, int64_t ldw, int64_t k,
                                                      float* out, bool cont = false) {
  static_assert(V * 8 <= S, "the tile's lanes fit a step of xt");
  __m256 acc[C][V];
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < V; ++v) acc[c][v] = cont ? _mm256_loadu_ps(out + c * S + 8 * v) : _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    __m256 xv[V];
    for (int v = 0; v < V; ++v) xv[v] = _mm256_load_ps(xt + i * S + 8 * v);
    for (int c = 0; c < C; ++c) {
      const __m256 b = _mm256_broadcast_ss(w + c * ldw + i);
      for (int v = 0; v < V; ++v) acc[c][v] = _mm256_fmadd_ps(xv[v], b, acc[c][v]);
    }
  }
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(out + c * S + 8 * v, acc[c][v]);
}
#endif

// dst[i·S + l] = src[l][i] for l < S and i < k, a null src[l] reading as zeros (the operand the tiles
// read, transposed): transpose_rows16's register blocks where avx512 (cpu_has_avx512(), read by the
// caller on its own thread), else one value at a time. dst 64-byte aligned.
template <int64_t S>
void transpose_rows(const float* const* src, int64_t k, float* dst, bool avx512) {
#ifdef KILN_X86_64_V3_KERNELS
  if constexpr (S % 16 == 0)
    if (avx512) {
      for (int64_t l = 0; l < S; l += 16) transpose_rows16<S>(src + l, k, dst + l);
      return;
    }
#endif
  (void)avx512;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t l = 0; l < S; ++l) dst[i * S + l] = src[l] ? src[l][i] : 0.0f;
}

}  // namespace kiln
