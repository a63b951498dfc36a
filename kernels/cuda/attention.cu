// CUDA causal GQA attention over the KV cache, one block per (row, head), 4 warps. Each warp
// walks every 4th visible position with an online softmax (running max, running sum and an
// output accumulator of head_dim/32 values per lane), so no score buffer is needed and any
// context length works; the 4 partial results are then merged. Rows past n_valid get zeros.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

namespace {

constexpr int kWarps = 4;

template <int PER_LANE>  // head_dim <= 32 · PER_LANE
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionArgs a) {
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_o[kWarps][32 * PER_LANE];
  const int64_t r = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = r / a.chunk, t = r % a.chunk;
  const int64_t hd = a.head_dim;
  float* out = a.out + r * a.n_heads * hd + h * hd;
  const int64_t p = int64_t(a.start_pos[b]) + t;
  if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) {
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) out[d] = 0.0f;
    return;
  }
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * hd;
  const float* q = a.qkv + r * width + h * hd;
  const int64_t kvh = h / (a.n_heads / a.n_kv_heads), kv = a.n_kv_heads * hd;
  const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * hd);

  float qv[PER_LANE], acc[PER_LANE];
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) {
    const int64_t d = lane + 32 * e;
    qv[e] = d < hd ? q[d] * a.scale : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = warp; j <= p; j += kWarps) {
    const uint64_t row = base + uint64_t(j * kv);
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < hd) s += qv[e] * cuda::ld(a.k_cache, a.cache_dtype, row + uint64_t(d));
    }
    s = cuda::warp_sum(s);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), w = __expf(s - m_new);
    l = l * corr + w;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int64_t d = lane + 32 * e;
      const float v = d < hd ? cuda::ld(a.v_cache, a.cache_dtype, row + uint64_t(d)) : 0.0f;
      acc[e] = acc[e] * corr + w * v;
    }
    m = m_new;
  }
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) part_o[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  float mx = -INFINITY;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, part_m[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += part_m[w] == -INFINITY ? 0.0f : part_l[w] * __expf(part_m[w] - mx);
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (part_m[w] != -INFINITY) o += part_o[w][d] * __expf(part_m[w] - mx);
    out[d] = o / total;
  }
}

}  // namespace

void attention_cuda(const AttentionArgs& a, cudaStream_t s) {
  const dim3 grid(unsigned(a.batch * a.chunk), unsigned(a.n_heads));
  if (a.head_dim <= 64) attention_kernel<2><<<grid, kWarps * 32, 0, s>>>(a);
  else if (a.head_dim <= 128) attention_kernel<4><<<grid, kWarps * 32, 0, s>>>(a);
  else attention_kernel<8><<<grid, kWarps * 32, 0, s>>>(a);
}

}  // namespace kiln
