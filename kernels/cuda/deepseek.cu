// CUDA kernels for DeepSeek plans, mirroring kernels/cpu/{head_matmul,mla,moe}.cpp:
// - head_matmul: one warp per (row, head, output), 16-byte-friendly coalesced dot products;
// - mla_kv_write / mla_attention: the latent cache, attention as in attention.cu with one
//   latent "head" shared by all query heads (FlashMLA's layout, online softmax, 4 warps);
// - moe_route: one block per token: warps compute the gate logits, then one thread scores,
//   groups and picks the top-k (E and k are small), so the choice is deterministic;
// - moe_experts: two passes that read only the selected experts' rows: each warp makes one
//   activation of one (token, expert), then each warp sums one output over the token's experts.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/moe_select.h"

namespace kiln {

namespace {

constexpr int kWarps = 8;

// Σ_i x[i]·w[i] over a warp, w of any float dtype.
__device__ __forceinline__ float warp_dot(const float* x, const void* w, DType t, uint64_t w0, int64_t n) {
  float s = 0.0f;
  for (int64_t i = threadIdx.x & 31; i < n; i += 32) s += x[i] * cuda::ld(w, t, w0 + uint64_t(i));
  return cuda::warp_sum(s);
}

__global__ void __launch_bounds__(kWarps * 32) head_matmul_kernel(HeadMatmulArgs a) {
  const int64_t item = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (item >= a.rows * a.heads * a.m) return;
  const int64_t i = item % a.m, h = (item / a.m) % a.heads, r = item / (a.m * a.heads);
  if (!cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  const float v = warp_dot(a.x + r * a.heads * a.k + h * a.k, a.w, a.w_dtype, uint64_t((h * a.m + i) * a.k), a.k);
  if ((threadIdx.x & 31) == 0) a.y[r * a.heads * a.m + h * a.m + i] = v;
}

__global__ void mla_kv_write_kernel(MlaKvWriteArgs a) {
  const int64_t width = a.rank + a.rope;
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= uint64_t(a.batch * a.chunk * width)) return;
  const int64_t r = int64_t(idx / uint64_t(width)), i = int64_t(idx % uint64_t(width));
  const int64_t b = r / a.chunk, t = r % a.chunk, pos = int64_t(a.start_pos[b]) + t;
  if (t >= a.n_valid[b] || pos < 0 || pos >= a.max_seq) return;
  const float v = i < a.rank ? a.ckv[r * a.rank + i] : a.kpe[r * a.rope + (i - a.rank)];
  cuda::st(a.cache, a.cache_dtype, uint64_t((b * a.max_seq + pos) * width + i), v);
}

constexpr int kAttnWarps = 4;

template <int PL>  // rank <= 32·PL; rope <= 64
__global__ void __launch_bounds__(kAttnWarps * 32) mla_attention_kernel(MlaAttentionArgs a) {
  __shared__ float part_m[kAttnWarps], part_l[kAttnWarps];
  __shared__ float part_o[kAttnWarps][32 * PL];
  const int64_t r = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = r / a.chunk, t = r % a.chunk, p = int64_t(a.start_pos[b]) + t;
  float* out = a.out + r * a.heads * a.rank + h * a.rank;
  if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) {
    for (int64_t d = threadIdx.x; d < a.rank; d += blockDim.x) out[d] = 0.0f;
    return;
  }
  const int64_t width = a.rank + a.rope;
  const float* ql = a.q_lat + r * a.heads * a.rank + h * a.rank;
  const float* qp = a.q_pe + r * a.heads * a.rope + h * a.rope;
  float q[PL], qr[2], acc[PL];
#pragma unroll
  for (int e = 0; e < PL; ++e) {
    const int64_t d = lane + 32 * e;
    q[e] = d < a.rank ? ql[d] * a.scale : 0.0f;
    acc[e] = 0.0f;
  }
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t d = lane + 32 * e;
    qr[e] = d < a.rope ? qp[d] * a.scale : 0.0f;
  }
  const uint64_t base = uint64_t(b * a.max_seq * width);
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = warp; j <= p; j += kAttnWarps) {
    const uint64_t row = base + uint64_t(j * width);
    float c[PL];
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < PL; ++e) {
      const int64_t d = lane + 32 * e;
      c[e] = d < a.rank ? cuda::ld(a.cache, a.cache_dtype, row + uint64_t(d)) : 0.0f;
      s += q[e] * c[e];
    }
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < a.rope) s += qr[e] * cuda::ld(a.cache, a.cache_dtype, row + uint64_t(a.rank + d));
    }
    s = cuda::warp_sum(s);
    const float m_new = fmaxf(m, s), corr = __expf(m - m_new), w = __expf(s - m_new);
    l = l * corr + w;
#pragma unroll
    for (int e = 0; e < PL; ++e) acc[e] = acc[e] * corr + w * c[e];
    m = m_new;
  }
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
#pragma unroll
  for (int e = 0; e < PL; ++e) part_o[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  float mx = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) mx = fmaxf(mx, part_m[w]);
  float total = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) total += part_m[w] == -INFINITY ? 0.0f : part_l[w] * __expf(part_m[w] - mx);
  for (int64_t d = threadIdx.x; d < a.rank; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w)
      if (part_m[w] != -INFINITY) o += part_o[w][d] * __expf(part_m[w] - mx);
    out[d] = o / total;
  }
}

__global__ void __launch_bounds__(128) moe_route_kernel(MoeRouteArgs a) {
  extern __shared__ float sm[];  // scores[E] | choice[E]
  float* scores = sm;
  float* choice = sm + a.experts;
  const int64_t r = blockIdx.x;
  int32_t* ids = a.ids + r * a.top_k;
  float* w = a.weights + r * a.top_k;
  if (!cuda::row_valid(a.n_valid, r, a.rows / a.batch)) {
    for (int64_t k = threadIdx.x; k < a.top_k; k += blockDim.x) ids[k] = -1, w[k] = 0.0f;
    return;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int64_t e = warp; e < a.experts; e += n_warps) {
    const float v = warp_dot(a.h + r * a.dim, a.gate, a.gate_dtype, uint64_t(e * a.dim), a.dim);
    if (lane == 0) scores[e] = v;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  const int64_t E = a.experts;
  if (a.scoring == MoeScoring::kSoftmax) {
    float mx = scores[0];
    for (int64_t e = 1; e < E; ++e) mx = fmaxf(mx, scores[e]);
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) sum += (scores[e] = expf(scores[e] - mx));
    for (int64_t e = 0; e < E; ++e) scores[e] /= sum;
  } else {
    for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + expf(-scores[e]));
  }
  for (int64_t e = 0; e < E; ++e)
    choice[e] = scores[e] + (a.method == MoeTopk::kNoauxTc ? cuda::ld(a.bias, a.bias_dtype, uint64_t(e)) : 0.0f);
  moe_select(a, scores, choice, ids, w);
}

__global__ void __launch_bounds__(kWarps * 32) moe_act_kernel(MoeExpertsArgs a) {
  const int64_t rk = blockIdx.y;  // token row · top_k + slot
  const int64_t f = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int64_t r = rk / a.top_k;
  if (f >= a.ffn || !cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  const int32_t e = a.ids[rk];
  if (e < 0 || e >= a.experts) return;
  const float* h = a.h + r * a.dim;
  const uint64_t base = uint64_t(e) * uint64_t(2 * a.ffn * a.dim);
  const float g = warp_dot(h, a.w_gu, a.w_dtype, base + uint64_t(f * a.dim), a.dim);
  const float u = warp_dot(h, a.w_gu, a.w_dtype, base + uint64_t((a.ffn + f) * a.dim), a.dim);
  if ((threadIdx.x & 31) == 0) a.ws[rk * a.ffn + f] = g / (1.0f + __expf(-g)) * u;
}

__global__ void __launch_bounds__(kWarps * 32) moe_down_kernel(MoeExpertsArgs a) {
  const int64_t r = blockIdx.y;
  const int64_t d = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (d >= a.dim || !cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  float total = 0.0f;
  for (int64_t k = 0; k < a.top_k; ++k) {
    const int32_t e = a.ids[r * a.top_k + k];
    if (e < 0 || e >= a.experts) continue;
    const float v = warp_dot(a.ws + (r * a.top_k + k) * a.ffn, a.w_down, a.w_dtype,
                             uint64_t(e) * uint64_t(a.dim * a.ffn) + uint64_t(d * a.ffn), a.ffn);
    total += a.weights[r * a.top_k + k] * v;
  }
  if ((threadIdx.x & 31) == 0) a.y[r * a.dim + d] += total;
}

}  // namespace

void head_matmul_cuda(const HeadMatmulArgs& a, cudaStream_t s) {
  head_matmul_kernel<<<cuda::blocks_for(uint64_t(a.rows * a.heads * a.m), kWarps), kWarps * 32, 0, s>>>(a);
}

void mla_kv_write_cuda(const MlaKvWriteArgs& a, cudaStream_t s) {
  mla_kv_write_kernel<<<cuda::blocks_for(uint64_t(a.batch * a.chunk * (a.rank + a.rope)), 256), 256, 0, s>>>(a);
}

void mla_attention_cuda(const MlaAttentionArgs& a, cudaStream_t s) {
  const dim3 grid(unsigned(a.batch * a.chunk), unsigned(a.heads));
  if (a.rank <= 64) mla_attention_kernel<2><<<grid, kAttnWarps * 32, 0, s>>>(a);
  else if (a.rank <= 128) mla_attention_kernel<4><<<grid, kAttnWarps * 32, 0, s>>>(a);
  else if (a.rank <= 256) mla_attention_kernel<8><<<grid, kAttnWarps * 32, 0, s>>>(a);
  else mla_attention_kernel<16><<<grid, kAttnWarps * 32, 0, s>>>(a);
}

void moe_route_cuda(const MoeRouteArgs& a, cudaStream_t s) {
  moe_route_kernel<<<unsigned(a.rows), 128, size_t(2 * a.experts) * sizeof(float), s>>>(a);
}

void moe_experts_cuda(const MoeExpertsArgs& a, cudaStream_t s) {
  moe_act_kernel<<<dim3(unsigned((a.ffn + kWarps - 1) / kWarps), unsigned(a.rows * a.top_k)), kWarps * 32, 0, s>>>(a);
  moe_down_kernel<<<dim3(unsigned((a.dim + kWarps - 1) / kWarps), unsigned(a.rows)), kWarps * 32, 0, s>>>(a);
}

}  // namespace kiln
