// The flash-attention tile machinery shared by the diffusion sdpa kernel (diffusion.cu) and the
// LLM prefill attention over the KV cache (attention.cu): constants, shared-memory sizing, the
// f32 tile loader and the per-key-tile loop (scores, online softmax, P·V), with the sources of
// the K and V tiles and the visibility rule supplied by the caller.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "kernels/attention.h"

namespace kiln::cuda {

// Opts `kernel` in to `bytes` of dynamic shared memory on the current device, only ever raising
// the limit. The attribute belongs to the kernel, not to one launch, so setting each launch's own
// size would let a smaller launch (another executor, another thread) lower it under a larger one
// that is about to run or was captured. Opting in is a function attribute, not stream work: legal
// while capturing, and a failure surfaces through the launch's error like any other.
inline void raise_dynamic_smem(const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, size_t> high;  // (kernel, device) → limit set
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return;
  std::lock_guard<std::mutex> lock(mu);
  size_t& h = high[{kernel, device}];
  if (bytes <= h) return;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)) == cudaSuccess) h = bytes;
}

// ---------------------------------------------------------------------------------------
// Scaled dot-product attention, flash style. A block of 256 threads (16 × 16: tx over keys
// and output dims, ty over query rows) owns 64 query rows of one (image, head); each thread
// owns 4 rows (ty·4 + i) and, per 64-key tile, the scores of keys tx + 16·j (j < 4), and the
// output dims tx + 16·c (c < NC). Per key tile:
//   K tile → shared; S = Q·Kᵀ·scale (4 × 4 per thread, float4 shared reads along head_dim);
//   online softmax per row (max and sum across the row's 16 threads by shuffles);
//   P → shared (transposed); V tile → shared (reusing K's buffer); O += P·V.
// Shared memory: Q [64][S] | K or V [64][max(S, 16·NC)] | P [64 keys][64 + 4 rows], with the
// row stride S ≥ head_dim a multiple of 4 and S/4 odd, so the 8 threads of a quarter-warp
// reading keys tx, tx + 1, … hit distinct banks. Padding columns and rows past lq / lk are
// zero-filled, so they add nothing (and never NaN) to the sums.

constexpr int kSdpaBQ = 64, kSdpaBKV = 64, kSdpaThreads = 256, kSdpaPStride = kSdpaBQ + 4;

inline int sdpa_qk_stride(int64_t head_dim) {
  int s = int((head_dim + 3) / 4 * 4);
  if ((s / 4) % 2 == 0) s += 4;
  return s;
}

inline size_t sdpa_smem_bytes(int64_t head_dim, int nc) {
  const int s = sdpa_qk_stride(head_dim), sv = 16 * nc;
  return sizeof(float) * size_t(kSdpaBQ * s + kSdpaBKV * std::max(s, sv) + kSdpaBKV * kSdpaPStride);
}

// Fills rows [0, 64) of a tile (row stride `stride`, columns [0, cols)) from rows r0 + row of
// src (row stride ld, column offset col0), zeros past n_rows or past head_dim.
__device__ __forceinline__ void sdpa_load_tile(float* dst, int stride, int cols, const float* src, int64_t ld,
                                               int64_t col0, int64_t r0, int64_t n_rows, int head_dim, bool vec) {
  const int tid = threadIdx.x;
  if (vec) {  // head_dim, ld, col0 multiples of 4 and src 16-byte aligned; cols % 4 == 0
    const int per_row = cols / 4, total = kSdpaBKV * per_row;
    // (row, q) = divmod(e, per_row), advanced incrementally by kSdpaThreads.
    const int step_r = kSdpaThreads / per_row, step_q = kSdpaThreads % per_row;
    int row = tid / per_row, q = tid % per_row;
    for (int e = tid; e < total; e += kSdpaThreads) {
      const int d = 4 * q;
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (r0 + row < n_rows && d < head_dim) v = *reinterpret_cast<const float4*>(src + (r0 + row) * ld + col0 + d);
      *reinterpret_cast<float4*>(dst + row * stride + d) = v;
      row += step_r;
      q += step_q;
      if (q >= per_row) q -= per_row, ++row;
    }
  } else {
    const int total = kSdpaBKV * cols;
    const int step_r = kSdpaThreads / cols, step_q = kSdpaThreads % cols;
    int row = tid / cols, d = tid % cols;
    for (int e = tid; e < total; e += kSdpaThreads) {
      dst[row * stride + d] = (r0 + row < n_rows && d < head_dim) ? src[(r0 + row) * ld + col0 + d] : 0.0f;
      row += step_r;
      d += step_q;
      if (d >= cols) d -= cols, ++row;
    }
  }
}

// A thread's accumulators before the first key tile: no max yet, zero sum and output.
template <int NC>
__device__ __forceinline__ void flash_init(float (&o)[4][NC], float (&m)[4], float (&l)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) o[i][c] = 0.0f;
  }
}

// The key-tile loop of one block (see the comment above): Q is in Qs; for each 64-key tile from
// kv_begin (a multiple of 64) to n_keys, load_k(kv0) fills KV with K rows (stride S) and load_v(kv0) with V rows
// (stride 16·NC); visible(qi, key) says whether query row qi (q0 + its index) sees key. Scores are q·k·scale plus
// bias(qi, key) (ALiBi's; 0 for none), soft-capped when softcap > 0 (attention_softcap). Accumulates into the
// thread's o, m, l.
template <int NC, class LoadK, class LoadV, class Visible, class Bias>
__device__ __forceinline__ void flash_tile_loop(const float* Qs, float* KV, float* Ps, int S, int D4, int64_t q0,
                                                int64_t kv_begin, int64_t n_keys, float scale, float softcap,
                                                const LoadK& load_k, const LoadV& load_v, const Visible& visible,
                                                const Bias& bias, float (&o)[4][NC], float (&m)[4], float (&l)[4]) {
  constexpr int SV = 16 * NC;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  for (int64_t kv0 = kv_begin; kv0 < n_keys; kv0 += kSdpaBKV) {
    __syncthreads();  // the previous tile's P·V is done with KV and Ps (and Q is stored)
    load_k(kv0);
    __syncthreads();

    float s[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = 0.0f;
    for (int d = 0; d < D4; d += 4) {
      float4 qv[4], kv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) qv[i] = *reinterpret_cast<const float4*>(Qs + (ty * 4 + i) * S + d);
#pragma unroll
      for (int j = 0; j < 4; ++j) kv[j] = *reinterpret_cast<const float4*>(KV + (tx + 16 * j) * S + d);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          s[i][j] = fmaf(qv[i].x, kv[j].x, s[i][j]);
          s[i][j] = fmaf(qv[i].y, kv[j].y, s[i][j]);
          s[i][j] = fmaf(qv[i].z, kv[j].z, s[i][j]);
          s[i][j] = fmaf(qv[i].w, kv[j].w, s[i][j]);
        }
    }

    // Online softmax; a row's 16 threads are 16 consecutive lanes of one warp.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t qi = q0 + ty * 4 + i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t key = kv0 + tx + 16 * j;
        s[i][j] = visible(qi, key) ? attention_softcap(s[i][j] * scale + bias(qi, key), softcap) : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_new = fmaxf(m[i], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet: keep zeros
      const float corr = expf(m[i] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = expf(s[i][j] - m_use);
        sum += s[i][j];
      }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
      l[i] = l[i] * corr + sum;
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < NC; ++c) o[i][c] *= corr;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j)
      *reinterpret_cast<float4*>(Ps + (tx + 16 * j) * kSdpaPStride + ty * 4) =
          make_float4(s[0][j], s[1][j], s[2][j], s[3][j]);
    __syncthreads();  // everyone is done reading K; P is complete

    load_v(kv0);
    __syncthreads();
    const int kn = int(min(int64_t(kSdpaBKV), n_keys - kv0));  // later keys have p = 0
    for (int j = 0; j < kn; ++j) {
      const float4 p = *reinterpret_cast<const float4*>(Ps + j * kSdpaPStride + ty * 4);
      const float* v = KV + j * SV + tx;
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const float vc = v[16 * c];
        o[0][c] = fmaf(p.x, vc, o[0][c]);
        o[1][c] = fmaf(p.y, vc, o[1][c]);
        o[2][c] = fmaf(p.z, vc, o[2][c]);
        o[3][c] = fmaf(p.w, vc, o[3][c]);
      }
    }
  }
}

}  // namespace kiln::cuda
