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

#ifdef KILN_X86_64_V3_KERNELS
// out[c·S + v·16 + l] = the chain over k for activation lane v·16 + l and weight row c, where xt holds
// the rows transposed (xt[i·S + lane], S = kStride lanes per step of k, 64-byte aligned) and weight row c
// is w + c·ldw.
template <int V, int C, int64_t S>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void gemm_tile512(const float* xt, const float* w, int64_t ldw,
                                                                       int64_t k, float* out) {
  static_assert(V * 16 <= S, "the tile's lanes fit a step of xt");
  __m512 acc[C][V];
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < V; ++v) acc[c][v] = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
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

// The same on AVX2: 8 lanes a vector, 2 × 6 accumulators, 2 activation registers and a broadcast fit
// the 16 registers.
template <int V, int C, int64_t S>
__attribute__((target("avx2,fma"))) void gemm_tile256(const float* xt, const float* w, int64_t ldw, int64_t k,
                                                      float* out) {
  static_assert(V * 8 <= S, "the tile's lanes fit a step of xt");
  __m256 acc[C][V];
  for (int c = 0; c < C; ++c)
    for (int v = 0; v < V; ++v) acc[c][v] = _mm256_setzero_ps();
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

}  // namespace kiln
