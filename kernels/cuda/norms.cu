// CUDA LayerNorm and GroupNorm (SiLU fused), mirroring kernels/cpu/layernorm.cpp and
// group_norm.cpp: one block per row / per (image, group); two-pass statistics in double (the
// CPU's order differs only in how the double sums associate).
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

namespace {

using cuda::blocks_for;

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024) in double; every
// thread gets the total.
__device__ __forceinline__ double block_sum_d(double v, double* smem32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();  // smem32 may still be read by an earlier call
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x >> 5) ? smem32[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---------------------------------------------------------------------------------------
// LayerNorm: one block per row.

constexpr int kNormThreads = 256;

__global__ void __launch_bounds__(kNormThreads) layernorm_kernel(LayerNormArgs a) {
  __shared__ double red[32];
  const int64_t r = blockIdx.x;
  const float* x = a.x + r * a.dim;
  float* y = a.y + r * a.dim;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < a.dim; i += blockDim.x) s += double(x[i]);
  const double mean = block_sum_d(s, red) / double(a.dim);
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < a.dim; i += blockDim.x) {
    const double d = double(x[i]) - mean;
    v += d * d;
  }
  v = block_sum_d(v, red);
  const float inv = float(1.0 / sqrt(v / double(a.dim) + double(a.eps)));
  const float m = float(mean);
  for (int64_t i = threadIdx.x; i < a.dim; i += blockDim.x)
    y[i] =
        (x[i] - m) * inv * cuda::ld(a.w, a.w_dtype, uint64_t(i)) + (a.b ? cuda::ld(a.b, a.w_dtype, uint64_t(i)) : 0.0f);
}

// ---------------------------------------------------------------------------------------
// GroupNorm (+ SiLU): one block per (image, group). The group's elements are the pixels ×
// cpg channels starting at channel c0 of every pixel; element e is (pixel e / cpg, channel
// e % cpg), so consecutive threads read runs of cpg contiguous floats. I is the index type:
// 32-bit division when the group fits, which keeps the three passes memory-bound.

constexpr int kGroupNormThreads = 512;

template <typename I>
__global__ void __launch_bounds__(kGroupNormThreads) group_norm_kernel(GroupNormArgs a) {
  __shared__ double red[32];
  const int64_t item = blockIdx.x;
  const int64_t cpg = a.channels / a.groups;
  const int64_t b = item / a.groups, c0 = (item % a.groups) * cpg;
  const float* x = a.x + b * a.pixels * a.channels + c0;
  float* y = a.y + b * a.pixels * a.channels + c0;
  const I n = I(a.pixels * cpg), g = I(cpg);
  const I ch = I(a.channels);
  double s = 0.0;
  for (I e = threadIdx.x; e < n; e += blockDim.x) {
    const I p = e / g, c = e - p * g;
    s += double(x[p * ch + c]);
  }
  const double cnt = double(a.pixels * cpg);
  const double mean = block_sum_d(s, red) / cnt;
  double v = 0.0;
  for (I e = threadIdx.x; e < n; e += blockDim.x) {
    const I p = e / g, c = e - p * g;
    const double d = double(x[p * ch + c]) - mean;
    v += d * d;
  }
  v = block_sum_d(v, red);
  const float inv = float(1.0 / sqrt(v / cnt + double(a.eps))), m = float(mean);
  for (I e = threadIdx.x; e < n; e += blockDim.x) {
    const I p = e / g, c = e - p * g;
    const uint64_t wc = uint64_t(c0) + uint64_t(c);
    float t = (x[p * ch + c] - m) * inv * cuda::ld(a.w, a.w_dtype, wc) + cuda::ld(a.b, a.w_dtype, wc);
    if (a.silu) t = t / (1.0f + expf(-t));
    y[p * ch + c] = t;
  }
}

}  // namespace

void layernorm_cuda(const LayerNormArgs& a, cudaStream_t s) {
  if (a.rows <= 0) return;
  layernorm_kernel<<<unsigned(a.rows), kNormThreads, 0, s>>>(a);
}

void group_norm_cuda(const GroupNormArgs& a, cudaStream_t s) {
  if (a.batch * a.groups <= 0) return;
  const uint64_t n = uint64_t(a.pixels * (a.channels / a.groups));
  const uint64_t last = uint64_t(a.pixels) * uint64_t(a.channels);  // bound on p · channels + c
  if (n + kGroupNormThreads < (uint64_t(1) << 32) && last < (uint64_t(1) << 32))
    group_norm_kernel<uint32_t><<<unsigned(a.batch * a.groups), kGroupNormThreads, 0, s>>>(a);
  else group_norm_kernel<uint64_t><<<unsigned(a.batch * a.groups), kGroupNormThreads, 0, s>>>(a);
}

}  // namespace kiln
