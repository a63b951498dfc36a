// CUDA matmul, y = x·wᵀ (+ bias) (+ y when accumulating), x f32, w f32|bf16|f16 (or quantized: i8, i4,
// f8e4m3 with their scales, below), f32 accumulate.
// - Up to 8 activation rows (decode): a GEMV in which each warp owns one output feature (or a
//   part of one, when few long rows would leave the memory system idle: split-K) and streams its
//   weight row with 16-byte loads, reusing each weight for every row. This is the memory-bound
//   path, where reading the weights once at full bandwidth is the whole game.
// - More rows (prefill): a 64×64 shared-memory tiled kernel with 4×4 outputs per thread, in
//   f32. It is exact and simple; for bf16/f16 weights the executor prefers cuBLASLt's tensor
//   cores (runtime/cublaslt.cpp), which these files feed: matmul_pack_x_cuda rounds x to the
//   weight dtype and matmul_add_bias_cuda applies the bias after the library GEMM.
// Rows that n_valid marks as padding are neither computed nor stored by these kernels.
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/quant.cuh"

namespace kiln {

namespace {

constexpr int kGemvRows = int(kGemvMaxRows);  // as an int, for templates and loops
constexpr int kGemvWarps = 8;                 // per block

// Where a GEMV's activations come from. Plain: x itself (or the block's normalized copy of it in
// shared memory, with_activations). Normed: RMSNorm as a prologue, each
// value w_norm[i] · (x[i] · inv_rms[row]) exactly as rmsnorm_kernel stores it, with inv_rms
// computed by the block first (so the normalized rows are never written).
struct PlainX {
  const float* x;
  int64_t k;
  __device__ __forceinline__ void load8(int r, int64_t i, float (&v)[8]) const {
    const float4 x0 = *reinterpret_cast<const float4*>(x + r * k + i);
    const float4 x1 = *reinterpret_cast<const float4*>(x + r * k + i + 4);
    v[0] = x0.x, v[1] = x0.y, v[2] = x0.z, v[3] = x0.w, v[4] = x1.x, v[5] = x1.y, v[6] = x1.z, v[7] = x1.w;
  }
  __device__ __forceinline__ float load1(int r, int64_t i) const { return x[r * k + i]; }
};

struct NormedX {
  PlainX plain;
  GemvNorm norm;
  const float* inv;  // per row, in shared memory
  __device__ __forceinline__ void load8(int r, int64_t i, float (&v)[8]) const {
    plain.load8(r, i, v);
#pragma unroll
    for (int q = 0; q < 8; ++q) v[q] = cuda::ld(norm.w, norm.w_dtype, uint64_t(i + q)) * (v[q] * inv[r]);
  }
  __device__ __forceinline__ float load1(int r, int64_t i) const {
    return cuda::ld(norm.w, norm.w_dtype, uint64_t(i)) * (plain.load1(r, i) * inv[r]);
  }
};

// The block's inv_rms of each row, as rmsnorm_kernel computes it (same 256-thread reduction).
static_assert(kGemvWarps * 32 == 256, "the prologue reduces like rmsnorm_kernel's 256-thread blocks");
__device__ __forceinline__ void gemv_norm_prologue(const MatmulArgs& a, const GemvNorm& n, float* inv, float* red) {
  for (int r = 0; r < int(a.rows); ++r) {
    const float* x = a.x + r * a.k;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < a.k; i += blockDim.x) ss += x[i] * x[i];
    ss = cuda::block_sum(ss, red);
    if (threadIdx.x == 0) inv[r] = rsqrtf(ss / float(a.k) + n.eps);
  }
  __syncthreads();
}

// Accumulates row r's dot product with each of the N weight rows wrows[q] over columns [k0, k1)
// into acc[q][r], for every row r < a.rows. With vec, k0 is a multiple of 8. The N rows are read
// side by side (more loads in flight); each accumulator still sums in column order.
template <DType W, int R, int N, class X>
__device__ __forceinline__ void gemv_dot(const MatmulArgs& a, const X& xs, const uint8_t* const (&wrows)[N], bool vec,
                                         int lane, float (&acc)[N][R], int64_t k0, int64_t k1) {
  if (vec) {
    // U steps of every row's 16-byte weight loads are issued before any is used, so each lane
    // has N·U loads in flight: one at a time leaves the memory system idle between a load's
    // issue and its use.
    constexpr int U = R >= 4 ? 2 : 8 / N;
    for (int64_t i0 = k0 + int64_t(lane) * 8; i0 < k1; i0 += 32 * 8 * U) {
      cuda::Raw8<W> raw[N][U];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (i0 + 256 * u < k1)
#pragma unroll
          for (int q = 0; q < N; ++q) raw[q][u] = cuda::ldg8<W>(wrows[q], i0 + 256 * u);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t i = i0 + 256 * u;
        if (i >= k1) break;
        float wv[N][8];
#pragma unroll
        for (int q = 0; q < N; ++q) cuda::widen8<W>(raw[q][u], wv[q]);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if (r < a.rows) {
            float xv[8];
            xs.load8(r, i, xv);
#pragma unroll
            for (int q = 0; q < N; ++q) acc[q][r] += cuda::dot8(wv[q], xv);
          }
        }
      }
    }
  } else {
    for (int64_t i = k0 + lane; i < k1; i += 32) {
#pragma unroll
      for (int q = 0; q < N; ++q) {
        const float wv = cuda::ld(wrows[q], W, uint64_t(i));
#pragma unroll
        for (int r = 0; r < R; ++r)
          if (r < a.rows) acc[q][r] += wv * xs.load1(r, i);
      }
    }
  }
}

// With k % 8 == 0 every row starts 16-byte aligned provided the bases are; the planner aligns
// tensors, but a hand-built plan may not, so the bases are checked rather than assumed.
__device__ __forceinline__ bool gemv_vec(const MatmulArgs& a) {
  return (a.k % 8) == 0 && (reinterpret_cast<uintptr_t>(a.w) % 16) == 0 && (reinterpret_cast<uintptr_t>(a.x) % 16) == 0;
}

// Whether a GEMV that fuses RMSNorm stages x in shared memory (gemv_shared_x_bytes of it,
// normalized there once per block instead of per load): when x's rows are 16-byte aligned and it
// fits, with the kernels' static shared memory (under 1 KiB), in the 48 KiB a launch may take
// without opting in. (48 KiB of x alone failed to launch on the H200.) Plain GEMVs read x where it
// is: staging it per block cost a split-K GEMV as many L2 reads again as its weights, and was
// measured slower there.
constexpr uint64_t kGemvSharedXMax = 40 * 1024;
uint64_t gemv_shared_x_bytes(const MatmulArgs& a, bool norm) {
  const uint64_t bytes = uint64_t(a.rows * a.k) * sizeof(float);
  const bool ok = norm && bytes > 0 && bytes <= kGemvSharedXMax && a.k % 8 == 0 &&
                  reinterpret_cast<uintptr_t>(a.x) % 16 == 0;
  return ok ? bytes : 0;
}

// Runs `body(xs)` with the activation loader: for NORM, x staged in shared memory and normalized
// there (shared_x: the launch gave gemv_shared_x_bytes of dynamic shared memory), or read in place
// after the RMSNorm prologue, both giving every activation rmsnorm_kernel's value; else x itself.
// Every thread of the block must call it (the NORM ways synchronize).
template <bool NORM, class Body>
__device__ __forceinline__ void with_activations(const MatmulArgs& a, const GemvNorm& n, bool shared_x,
                                                 const Body& body) {
  if constexpr (NORM) {
    __shared__ float inv[kGemvRows];
    __shared__ float red[32];
    if (!shared_x) {
      gemv_norm_prologue(a, n, inv, red);
      body(NormedX{PlainX{a.x, a.k}, n, inv});
      return;
    }
    extern __shared__ float4 gemv_xs4[];
    float* xs = reinterpret_cast<float*>(gemv_xs4);
    const int64_t n4 = a.rows * a.k / 4;
    const float4* x4 = reinterpret_cast<const float4*>(a.x);
    for (int64_t q = threadIdx.x; q < n4; q += blockDim.x) gemv_xs4[q] = x4[q];
    __syncthreads();
    for (int r = 0; r < int(a.rows); ++r) {  // gemv_norm_prologue's sums, read from shared memory
      const float* x = xs + r * a.k;
      float ss = 0.0f;
      for (int64_t i = threadIdx.x; i < a.k; i += blockDim.x) ss += x[i] * x[i];
      ss = cuda::block_sum(ss, red);
      if (threadIdx.x == 0) inv[r] = rsqrtf(ss / float(a.k) + n.eps);
    }
    __syncthreads();
    for (int64_t q = threadIdx.x; q < a.rows * a.k; q += blockDim.x) {
      const int64_t r = q / a.k, i = q % a.k;
      xs[q] = cuda::ld(n.w, n.w_dtype, uint64_t(i)) * (xs[q] * inv[r]);
    }
    __syncthreads();
    body(PlainX{xs, a.k});  // x itself, normalized, now read from shared memory
  } else {
    body(PlainX{a.x, a.k});
  }
}

// The start of every GEMV: let the next kernel launch once all blocks run (pdl_trigger); when this
// one was launched early (PDL), hint the weight rows its warps will read into L2 while the kernel
// before finishes, then wait for it before anything reads x or writes.
// Only kGemvPrefetchBytes per weight row, split among the warps that share it: every resident warp
// prefetches, and whole rows for all of them (tens of MB) would push out of L2 what they are meant
// to speed up.
constexpr uint64_t kGemvPrefetchBytes = 1024;

// For a split-K GEMV (`splits` warps per row) the warp's part starts `col_bytes` into the row.
__device__ __forceinline__ void gemv_start(const MatmulArgs& a, bool pdl, int64_t j, int64_t rows_per_warp_stride,
                                           int n_rows, int64_t m, uint64_t wsize, uint64_t col_bytes = 0,
                                           int splits = 1) {
  cuda::pdl_trigger();
  if (pdl && j < m) {
    const uint64_t row_bytes = uint64_t(a.k) * wsize, left = row_bytes - col_bytes, cap = kGemvPrefetchBytes / splits;
    for (int q = 0; q < n_rows; ++q)
      cuda::prefetch_l2(
          static_cast<const uint8_t*>(a.w) + uint64_t(j + q * rows_per_warp_stride) * row_bytes + col_bytes,
          left < cap ? left : cap, int(threadIdx.x & 31));
  }
  cuda::pdl_wait();
}

// `splits` (1, 2 or 4; gemv_splits) consecutive warps share each output row, each over a
// contiguous 1/splits of k; the first adds the parts in order, so the result does not depend on
// which warp finishes first.
template <DType W, int R, bool NORM>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(MatmulArgs a, GemvNorm n, bool pdl, int splits, bool shared_x) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, part = warp % splits;
  const int64_t j = int64_t(blockIdx.x) * (kGemvWarps / splits) + warp / splits, kp = a.k / splits;
  gemv_start(a, pdl, j, 0, 1, a.m, dtype_size(W), uint64_t(part * kp) * dtype_size(W), splits);
  __shared__ float partial[kGemvWarps][R];
  with_activations<NORM>(a, n, shared_x, [&](const auto& xs) {
    const bool live = j < a.m;
    const int64_t chunk = a.rows / a.batch;
    float acc[1][R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[0][r] = 0.0f;
    if (live) {
      const uint8_t* const wrow[1] = {static_cast<const uint8_t*>(a.w) + uint64_t(j * a.k) * dtype_size(W)};
      gemv_dot<W, R, 1>(a, xs, wrow, gemv_vec(a), lane, acc, part * kp, part * kp + kp);
    }
    float sum[R];
#pragma unroll
    for (int r = 0; r < R; ++r) sum[r] = r < a.rows ? cuda::warp_sum(acc[0][r]) : 0.0f;
    if (splits > 1) {
      if (lane == 0)
#pragma unroll
        for (int r = 0; r < R; ++r) partial[warp][r] = sum[r];
      __syncthreads();
      if (part != 0) return;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float t = partial[warp][r];
        for (int q = 1; q < splits; ++q) t += partial[warp + q][r];
        sum[r] = t;
      }
    }
    if (!live) return;
    const float bias = a.bias ? cuda::ld(a.bias, a.bias_dtype, uint64_t(j)) : 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= a.rows) break;
      const float v = sum[r] + bias;
      if (lane == 0 && cuda::row_valid(a.n_valid, r, chunk)) {
        float* y = a.y + r * a.m + j;
        *y = a.accumulate ? *y + v : v;
      }
    }
  });
}

// The gate|up GEMV with SwiGLU as its epilogue: warp j reads weight rows j (gate) and m/2 + j
// (up) and writes h[r][j] = silu(g)·u, so the (rows, m) gate|up buffer is never written.
template <DType W, int R, bool NORM>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_swiglu_kernel(MatmulArgs a, float* h, GemvNorm n, bool pdl, bool shared_x) {
  gemv_start(a, pdl, int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5), a.m / 2, 2, a.m / 2, dtype_size(W));
  with_activations<NORM>(a, n, shared_x, [&](const auto& xs) {
    const int lane = threadIdx.x & 31;
    const int64_t half = a.m / 2, j = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
    if (j >= half) return;
    const int64_t chunk = a.rows / a.batch;
    const bool vec = gemv_vec(a);
    float gu[2][R];
#pragma unroll
    for (int r = 0; r < R; ++r) gu[0][r] = gu[1][r] = 0.0f;
    const uint8_t* w = static_cast<const uint8_t*>(a.w);
    const uint8_t* const rows[2] = {w + uint64_t(j * a.k) * dtype_size(W), w + uint64_t((half + j) * a.k) * dtype_size(W)};
    gemv_dot<W, R, 2>(a, xs, rows, vec, lane, gu, 0, a.k);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= a.rows) break;
      const float gv = cuda::warp_sum(gu[0][r]), uv = cuda::warp_sum(gu[1][r]);
      if (lane == 0 && cuda::row_valid(a.n_valid, r, chunk)) h[r * half + j] = gv / (1.0f + __expf(-gv)) * uv;
    }
  });
}

// Quantized weights (matmul versions 2-4, kernels/matmul.h; kernels/cuda/quant.cuh decodes them).
__host__ __device__ inline cuda::QRows q_rows(const MatmulArgs& a) {
  return {static_cast<const uint8_t*>(a.w), a.w_scale, a.w_zero, a.k, a.group};
}

// One warp an output row, each weight decoded in registers and used for every activation row.
template <DType W, int R>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_q_kernel(MatmulArgs a, cuda::QRows q, bool vec) {
  const int lane = threadIdx.x & 31;
  const int64_t j = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (j >= a.m) return;  // (no block-wide synchronization below)
  const int64_t chunk = a.rows / a.batch;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  cuda::q_row_dots<W, R>(q, j, a.x, int(a.rows), vec, acc);
  const float bias = a.bias ? cuda::ld(a.bias, a.bias_dtype, uint64_t(j)) : 0.0f;
  const float scale = cuda::q_row_scale<W>(q, j);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (r >= a.rows) break;
    const float v = cuda::warp_sum(acc[r]) * scale + bias;
    if (lane == 0 && cuda::row_valid(a.n_valid, r, chunk)) {
      float* y = a.y + r * a.m + j;
      *y = a.accumulate ? *y + v : v;
    }
  }
}

template <DType W>
void launch_q_gemv(const MatmulArgs& a, cudaStream_t s) {
  const dim3 grid(unsigned((a.m + kGemvWarps - 1) / kGemvWarps)), block(kGemvWarps * 32);
  const cuda::QRows q = q_rows(a);
  const bool vec = cuda::q_rows_vec<W>(q, a.x);
  if (a.rows <= 1) gemv_q_kernel<W, 1><<<grid, block, 0, s>>>(a, q, vec);
  else if (a.rows <= 2) gemv_q_kernel<W, 2><<<grid, block, 0, s>>>(a, q, vec);
  else if (a.rows <= 4) gemv_q_kernel<W, 4><<<grid, block, 0, s>>>(a, q, vec);
  else gemv_q_kernel<W, 8><<<grid, block, 0, s>>>(a, q, vec);
}

constexpr int kTile = 64, kTileK = 16;

template <DType W>
__global__ void __launch_bounds__(256) gemm_kernel(MatmulArgs a) {
  __shared__ float xs[kTileK][kTile + 4];
  __shared__ float ws[kTileK][kTile + 4];
  const int64_t r0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  const int64_t chunk = a.rows / a.batch;
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;  // 16 × 16 threads, 4 × 4 outputs each
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < a.k; k0 += kTileK) {
    // 64 × 16 elements of each operand: 4 per thread, k fastest so global reads coalesce.
    for (int e = threadIdx.x; e < kTile * kTileK; e += 256) {
      const int row = e / kTileK, kk = e % kTileK;
      const int64_t k = k0 + kk;
      const int64_t xr = r0 + row, wj = j0 + row;
      xs[kk][row] = (xr < a.rows && k < a.k) ? a.x[xr * a.k + k] : 0.0f;
      float wv = 0.0f;
      if (wj < a.m && k < a.k) {
        if constexpr (dtype_is_quantized(W)) wv = cuda::q_weight<W>(q_rows(a), wj, k);  // (i8: q, scaled below)
        else wv = cuda::ld(a.w, W, uint64_t(wj * a.k + k));
      }
      ws[kk][row] = wv;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float xv[4], wv[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        xv[q] = xs[kk][tr * 4 + q];
        wv[q] = ws[kk][tc * 4 + q];
      }
#pragma unroll
      for (int p = 0; p < 4; ++p)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[p][q] += xv[p] * wv[q];
    }
    __syncthreads();
  }
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int64_t r = r0 + tr * 4 + p;
    if (r >= a.rows || !cuda::row_valid(a.n_valid, r, chunk)) continue;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = j0 + tc * 4 + q;
      if (j >= a.m) continue;
      float v = acc[p][q];
      if constexpr (W == DType::I8) v *= a.w_scale[j];  // (x·q)·scale, as matmul.h defines version 2
      v += a.bias ? cuda::ld(a.bias, a.bias_dtype, uint64_t(j)) : 0.0f;
      float* y = a.y + r * a.m + j;
      *y = a.accumulate ? *y + v : v;
    }
  }
}

// Split-K for GEMVs with few output rows: each warp has only a few loads in flight, so a GEMV
// needs many warps streaming at once to approach the memory bandwidth. While rows·splits is below
// kGemvSplitWarps the warps per row double, up to max_splits, as long as every part stays at
// least 512 columns and a multiple of 8 (16-byte loads). With the RMSNorm prologue at most 2:
// each block recomputes the norm over all of x, so more blocks cost more of that.
constexpr int64_t kGemvSplitWarps = 8192;

int gemv_splits(const MatmulArgs& a, int max_splits) {
  int s = 1;
  while (s < max_splits && a.m * s < kGemvSplitWarps && a.k % (16 * s) == 0 && a.k / (2 * s) >= 512) s *= 2;
  return s;
}

template <DType W, bool NORM>
void launch_gemv(const MatmulArgs& a, const GemvNorm& n, cudaStream_t s, bool pdl) {
  const int splits = gemv_splits(a, NORM ? 2 : 4), rows_per_block = kGemvWarps / splits;
  const dim3 grid(unsigned((a.m + rows_per_block - 1) / rows_per_block)), block(kGemvWarps * 32);
  const uint64_t sx = gemv_shared_x_bytes(a, NORM);
  if (a.rows <= 1) cuda::launch_pdl(pdl, gemv_kernel<W, 1, NORM>, grid, block, sx, s, a, n, pdl, splits, sx > 0);
  else if (a.rows <= 2) cuda::launch_pdl(pdl, gemv_kernel<W, 2, NORM>, grid, block, sx, s, a, n, pdl, splits, sx > 0);
  else if (a.rows <= 4) cuda::launch_pdl(pdl, gemv_kernel<W, 4, NORM>, grid, block, sx, s, a, n, pdl, splits, sx > 0);
  else cuda::launch_pdl(pdl, gemv_kernel<W, 8, NORM>, grid, block, sx, s, a, n, pdl, splits, sx > 0);
}

template <DType W>
void launch(const MatmulArgs& a, cudaStream_t s, bool pdl) {
  if (a.rows <= kGemvRows) {
    launch_gemv<W, false>(a, GemvNorm{}, s, pdl);
    return;
  }
  const dim3 grid(unsigned((a.m + kTile - 1) / kTile), unsigned((a.rows + kTile - 1) / kTile));
  gemm_kernel<W><<<grid, 256, 0, s>>>(a);
}

// Quantized weights: the GEMV up to kGemvMaxRows rows (no PDL: launched plainly, it starts once the
// kernel before it is done), the tiled kernel decoding each weight above.
template <DType W>
void launch_quantized(const MatmulArgs& a, cudaStream_t s) {
  if (a.rows <= kGemvRows) {
    launch_q_gemv<W>(a, s);
    return;
  }
  const dim3 grid(unsigned((a.m + kTile - 1) / kTile), unsigned((a.rows + kTile - 1) / kTile));
  gemm_kernel<W><<<grid, 256, 0, s>>>(a);
}

template <DType W, bool NORM>
void launch_swiglu(const MatmulArgs& a, float* h, const GemvNorm& n, cudaStream_t s, bool pdl) {
  const dim3 grid(unsigned((a.m / 2 + kGemvWarps - 1) / kGemvWarps)), block(kGemvWarps * 32);
  const uint64_t sx = gemv_shared_x_bytes(a, NORM);
  if (a.rows <= 1) cuda::launch_pdl(pdl, gemv_swiglu_kernel<W, 1, NORM>, grid, block, sx, s, a, h, n, pdl, sx > 0);
  else if (a.rows <= 2) cuda::launch_pdl(pdl, gemv_swiglu_kernel<W, 2, NORM>, grid, block, sx, s, a, h, n, pdl, sx > 0);
  else if (a.rows <= 4) cuda::launch_pdl(pdl, gemv_swiglu_kernel<W, 4, NORM>, grid, block, sx, s, a, h, n, pdl, sx > 0);
  else cuda::launch_pdl(pdl, gemv_swiglu_kernel<W, 8, NORM>, grid, block, sx, s, a, h, n, pdl, sx > 0);
}

template <DType W>
void dispatch_swiglu(const MatmulArgs& a, float* h, const GemvNorm* n, cudaStream_t s, bool pdl) {
  if (n) launch_swiglu<W, true>(a, h, *n, s, pdl);
  else launch_swiglu<W, false>(a, h, GemvNorm{}, s, pdl);
}

}  // namespace

bool matmul_swiglu_cuda_supported(const MatmulArgs& a) {
  return gemv_swiglu_fusable(a.rows, a.w_dtype, a.bias != nullptr, a.accumulate, a.m);
}

void matmul_swiglu_cuda(const MatmulArgs& a, float* h, cudaStream_t s, const GemvNorm* norm, bool pdl) {
  switch (a.w_dtype) {
    case DType::BF16:
      dispatch_swiglu<DType::BF16>(a, h, norm, s, pdl);
      break;
    case DType::F16:
      dispatch_swiglu<DType::F16>(a, h, norm, s, pdl);
      break;
    default:
      break;
  }
}

bool matmul_norm_cuda_supported(const MatmulArgs& a) { return gemv_norm_fusable(a.rows, a.w_dtype); }

void matmul_norm_cuda(const MatmulArgs& a, const GemvNorm& norm, cudaStream_t s, bool pdl) {
  switch (a.w_dtype) {
    case DType::BF16:
      launch_gemv<DType::BF16, true>(a, norm, s, pdl);
      break;
    case DType::F16:
      launch_gemv<DType::F16, true>(a, norm, s, pdl);
      break;
    default:
      break;
  }
}

bool matmul_pdl_supported() {
  // The device code the GEMVs will run must have been built for sm_90 or later, where pdl_wait is
  // real (a build for older archs running on Hopper through PTX would skip the wait).
  cudaFuncAttributes attr = {};
  if (cudaFuncGetAttributes(&attr, gemv_kernel<DType::BF16, 1, false>) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.binaryVersion >= 90 && attr.ptxVersion >= 90;
}

void matmul_cuda(const MatmulArgs& a, cudaStream_t s, bool pdl) {
  switch (a.w_dtype) {
    case DType::F32:
      launch<DType::F32>(a, s, pdl);
      break;
    case DType::BF16:
      launch<DType::BF16>(a, s, pdl);
      break;
    case DType::F16:
      launch<DType::F16>(a, s, pdl);
      break;
    case DType::I8:
      launch_quantized<DType::I8>(a, s);
      break;
    case DType::I4:
      launch_quantized<DType::I4>(a, s);
      break;
    case DType::F8E4M3:
      launch_quantized<DType::F8E4M3>(a, s);
      break;
    default:
      break;
  }
}

namespace {

// x (rows, k) f32 → T, one element per thread; padding rows become zeros, so
// the library GEMM writes y = 0 (or leaves y as it was when accumulating) for them.
template <typename T>
__global__ void pack_x_kernel(const float* x, T* out, int64_t rows, int64_t k, const int32_t* n_valid, int64_t chunk) {
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x);
  if (i >= rows * k) return;
  const float v = cuda::row_valid(n_valid, i / k, chunk) ? x[i] : 0.0f;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) out[i] = __float2bfloat16_rn(v);
  else out[i] = __float2half_rn(v);
}

__global__ void add_bias_kernel(float* y, const void* bias, DType bias_dtype, int64_t rows, int64_t m,
                                const int32_t* n_valid, int64_t chunk) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * m || !cuda::row_valid(n_valid, i / m, chunk)) return;
  y[i] += cuda::ld(bias, bias_dtype, uint64_t(i % m));
}

unsigned blocks_for(int64_t n) { return unsigned((n + 255) / 256); }

}  // namespace

void matmul_pack_x_cuda(const MatmulArgs& a, void* out, cudaStream_t s) {
  const int64_t chunk = a.rows / a.batch;
  if (a.rows * a.k == 0) return;
  if (a.w_dtype == DType::BF16)
    pack_x_kernel<<<blocks_for(a.rows * a.k), 256, 0, s>>>(a.x, static_cast<__nv_bfloat16*>(out), a.rows, a.k,
                                                           a.n_valid, chunk);
  else
    pack_x_kernel<<<blocks_for(a.rows * a.k), 256, 0, s>>>(a.x, static_cast<__half*>(out), a.rows, a.k, a.n_valid,
                                                           chunk);
}

void matmul_add_bias_cuda(const MatmulArgs& a, cudaStream_t s) {
  if (!a.bias || a.rows * a.m == 0) return;
  add_bias_kernel<<<blocks_for(a.rows * a.m), 256, 0, s>>>(a.y, a.bias, a.bias_dtype, a.rows, a.m, a.n_valid,
                                                           a.rows / a.batch);
}

}  // namespace kiln
