// CUDA kernels for DeepSeek plans, mirroring kernels/cpu/{head_matmul,mla,moe}.cpp:
// - head_matmul: one warp per (row, head, output), 16-byte-friendly coalesced dot products (quantized
//   rows as the quantized GEMV decodes them); version 2's transposed rows a thread per output;
// - mla_kv_write / mla_attention: the latent cache, attention as in attention.cu with one
//   latent "head" shared by all query heads (FlashMLA's layout, online softmax, 4 warps);
// - moe_route: a warp per (token, expert) computes the gate logits into the launch scratch; then
//   one warp per token scores them, masks groups and picks the top-k (the sums and group
//   masking in one thread, the argmax of each pick across the warp): deterministic, and the
//   selection code is the CPU's (the logits' summation order is not);
// - moe_experts: two passes that read only the selected experts' rows: each warp makes one
//   activation of one (token, expert), then each warp sums one output over the token's experts;
//   quantized experts (versions 2-3) decode their rows as the quantized GEMV does (quant.cuh).
// The float MoE dot products take 16-byte loads (8 elements a lane, several in flight) where sizes and
// alignment allow; the quantized ones 4 or 8 bytes a lane (quant.cuh).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/cuda/quant.cuh"
#include "kernels/moe_select.h"

namespace kiln {

namespace {

constexpr int kWarps = 8;

// Σ_i x[i]·w[w0 + i] over a warp, w of any float dtype, one element a lane at a time.
__device__ __forceinline__ float warp_dot(const float* x, const void* w, DType t, uint64_t w0, int64_t n) {
  float s = 0.0f;
  for (int64_t i = threadIdx.x & 31; i < n; i += 32) s += x[i] * cuda::ld(w, t, w0 + uint64_t(i));
  return cuda::warp_sum(s);
}

// N dot products of x with the weight rows starting at w0[q], 8 elements a lane per 16-byte load
// (n % 8 == 0 and every row 16-byte aligned); the N rows are read side by side, 8 loads in flight
// a lane.
template <DType W, int N>
__device__ __forceinline__ void warp_dots8(const float* x, const void* w, const uint64_t (&w0)[N], int64_t n,
                                           float (&out)[N]) {
  float s[N];
#pragma unroll
  for (int q = 0; q < N; ++q) s[q] = 0.0f;
  constexpr int U = 8 / N;  // steps of 16-byte loads issued before any is used (as in matmul.cu)
  for (int64_t i0 = int64_t(threadIdx.x & 31) * 8; i0 < n; i0 += 32 * 8 * U) {
    cuda::Raw8<W> raw[N][U];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (i0 + 256 * u < n)
#pragma unroll
        for (int q = 0; q < N; ++q) raw[q][u] = cuda::ldg8<W>(w, int64_t(w0[q]) + i0 + 256 * u);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t i = i0 + 256 * u;
      if (i >= n) break;
      float xv[8];
      cuda::load8<DType::F32>(x, i, xv);
#pragma unroll
      for (int q = 0; q < N; ++q) {
        float wv[8];
        cuda::widen8<W>(raw[q][u], wv);
        s[q] += cuda::dot8(wv, xv);
      }
    }
  }
#pragma unroll
  for (int q = 0; q < N; ++q) out[q] = cuda::warp_sum(s[q]);
}

// warp_dots8 where sizes and alignment allow it, else warp_dot row by row.
template <int N>
__device__ __forceinline__ void warp_dots(const float* x, const void* w, DType t, const uint64_t (&w0)[N], int64_t n,
                                          float (&out)[N]) {
  bool vec = n % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && t != DType::I8;
#pragma unroll
  for (int q = 0; q < N; ++q)
    vec = vec && (reinterpret_cast<uintptr_t>(w) + w0[q] * uint64_t(dtype_size(t))) % 16 == 0;
  if (vec && t == DType::F32) return warp_dots8<DType::F32, N>(x, w, w0, n, out);
  if (vec && t == DType::BF16) return warp_dots8<DType::BF16, N>(x, w, w0, n, out);
  if (vec && t == DType::F16) return warp_dots8<DType::F16, N>(x, w, w0, n, out);
#pragma unroll
  for (int q = 0; q < N; ++q) out[q] = warp_dot(x, w, t, w0[q], n);
}

__device__ __forceinline__ float warp_dot_vec(const float* x, const void* w, DType t, uint64_t w0, int64_t n) {
  const uint64_t rows[1] = {w0};
  float out[1];
  warp_dots<1>(x, w, t, rows, n, out);
  return out[0];
}

__global__ void __launch_bounds__(kWarps * 32) head_matmul_kernel(HeadMatmulArgs a) {
  const int64_t item = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (item >= a.rows * a.heads * a.m) return;
  const int64_t i = item % a.m, h = (item / a.m) % a.heads, r = item / (a.m * a.heads);
  if (!cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  // Scalar loads: with head_matmul's short rows (k = 128 in DeepSeek) the 16-byte path leaves half
  // the lanes idle and measured twice as slow on the H200.
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

// Gate logits: warp (r, e) writes logits[r·E + e] for the valid rows.
__global__ void __launch_bounds__(kWarps * 32) moe_gate_kernel(MoeRouteArgs a, float* logits) {
  const int64_t r = blockIdx.y, e = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (e >= a.experts || !cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  const float v = warp_dot_vec(a.h + r * a.dim, a.gate, a.gate_dtype, uint64_t(e * a.dim), a.dim);
  if ((threadIdx.x & 31) == 0)
    logits[r * a.experts + e] = a.logit_bias ? v + cuda::ld(a.bias, a.bias_dtype, uint64_t(e)) : v;
}

// One warp per token: scores, group masking and top-k from its logits, as moe_select does them.
__global__ void __launch_bounds__(32) moe_pick_kernel(MoeRouteArgs a, const float* logits) {
  extern __shared__ float sm[];  // scores[E] | choice[E] | taken[E] (bytes)
  const int64_t E = a.experts, r = blockIdx.x;
  float* scores = sm;
  float* choice = sm + E;
  unsigned char* taken = reinterpret_cast<unsigned char*>(sm + 2 * E);
  __shared__ float total;
  const int lane = int(threadIdx.x);
  int32_t* ids = a.ids + r * a.top_k;
  float* w = a.weights + r * a.top_k;
  if (!cuda::row_valid(a.n_valid, r, a.rows / a.batch)) {
    for (int64_t k = lane; k < a.top_k; k += 32) ids[k] = -1, w[k] = 0.0f;
    return;
  }
  const float* lg = logits + r * E;
  if (a.method == MoeTopk::kSparseMixer) {  // (serial, from the raw logits: Phi-3.5-MoE's few experts)
    if (lane == 0) {
      moe_sparsemixer(a, lg, ids, w);
      moe_finish_weights(a, w);
    }
    return;
  }
  if (a.scoring == MoeScoring::kSoftmax) {
    // The max skips NaN (a NaN logit makes the sum, and so every score, NaN either way); the sum
    // stays serial, in expert order.
    float mx = -INFINITY;
    for (int64_t e = lane; e < E; e += 32) mx = fmaxf(mx, lg[e]);
    mx = cuda::warp_max(mx);
    for (int64_t e = lane; e < E; e += 32) scores[e] = expf(lg[e] - mx);
    __syncwarp();
    if (lane == 0) {
      float sum = 0.0f;
      for (int64_t e = 0; e < E; ++e) sum += scores[e];
      total = sum;
    }
    __syncwarp();
    for (int64_t e = lane; e < E; e += 32) scores[e] /= total;
  } else {
    for (int64_t e = lane; e < E; e += 32) scores[e] = 1.0f / (1.0f + expf(-lg[e]));
  }
  bool nan = false;
  for (int64_t e = lane; e < E; e += 32) {
    choice[e] = scores[e] + (a.method == MoeTopk::kNoauxTc ? cuda::ld(a.bias, a.bias_dtype, uint64_t(e)) : 0.0f);
    taken[e] = 0;
  }
  __syncwarp();
  if (lane == 0) moe_mask_groups(a, choice);
  __syncwarp();
  for (int64_t e = lane; e < E; e += 32) nan = nan || isnan(choice[e]);
  if (__any_sync(0xffffffffu, nan)) {
    // NaN choices: the serial loop's order decides, so it runs as written.
    if (lane == 0) moe_top_k(a, scores, choice, ids, w, taken);  // (taken: all 0 here)
  } else {
    for (int64_t k = 0; k < a.top_k; ++k) {
      // Each lane's first maximum over its experts, then the warp's: the highest choice, the
      // lower id on a tie, which is the serial loop's pick when nothing is NaN.
      float bv = -INFINITY;
      int64_t bi = -1;
      for (int64_t e = lane; e < E; e += 32)
        if (!taken[e] && (bi < 0 || choice[e] > bv)) bv = choice[e], bi = e;
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
      }
      if (lane == 0) {
        ids[k] = int32_t(bi);
        w[k] = scores[bi];
        taken[bi] = 1;
      }
      __syncwarp();
    }
  }
  __syncwarp();
  if (lane == 0) moe_finish_weights(a, w);
}

// An expert matrix's rows (w_gu: experts·2·ffn rows of dim values, each expert's [gate | up]; w_down:
// experts·dim rows of ffn values), as the MoE kernels read them: dot(j, x) is row j's dot product with x,
// summed over the warp (every lane gets it); dot2 two rows' at once.
struct FloatRows {  // f32, bf16 or f16 (version 1)
  const void* w;
  DType t;
  int64_t k;
  __device__ __forceinline__ void dot2(int64_t j0, int64_t j1, const float* x, float (&out)[2]) const {
    const uint64_t rows[2] = {uint64_t(j0) * uint64_t(k), uint64_t(j1) * uint64_t(k)};
    warp_dots<2>(x, w, t, rows, k, out);
  }
  __device__ __forceinline__ float dot(int64_t j, const float* x) const {
    return warp_dot_vec(x, w, t, uint64_t(j) * uint64_t(k), k);
  }
};

// Quantized (versions 2-3), decoded as the quantized GEMV decodes them (kernels/cuda/quant.cuh).
template <DType W>
struct QuantRows {
  cuda::QRows q;
  bool vec;  // cuda::q_rows_vec's answer for these rows and the activations
  __device__ __forceinline__ float dot(int64_t j, const float* x) const {
    float acc[1] = {0.0f};
    cuda::q_row_dots<W, 1>(q, j, x, 1, vec, acc);
    return cuda::warp_sum(acc[0]) * cuda::q_row_scale<W>(q, j);
  }
  __device__ __forceinline__ void dot2(int64_t j0, int64_t j1, const float* x, float (&out)[2]) const {
    out[0] = dot(j0, x);
    out[1] = dot(j1, x);
  }
};

template <class Rows>
__global__ void __launch_bounds__(kWarps * 32) moe_act_kernel(MoeExpertsArgs a, Rows gu) {
  const int64_t rk = blockIdx.y;  // token row · top_k + slot
  const int64_t f = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int64_t r = rk / a.top_k;
  if (f >= a.ffn || !cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  const int32_t e = a.ids[rk];
  if (e < 0 || e >= a.experts) return;
  const int64_t j = int64_t(e) * 2 * a.ffn + f;  // the gate row; the up row ffn after it
  float v[2];
  gu.dot2(j, j + a.ffn, a.h + r * a.dim, v);
  if ((threadIdx.x & 31) != 0) return;
  if (a.gu_bias) v[0] += a.gu_bias[j], v[1] += a.gu_bias[j + a.ffn];
  a.ws[rk * a.ffn + f] = a.activation == MoeActivation::kClampedSwiglu
                             ? moe_clamped_swiglu(v[0], v[1], a.alpha, a.limit)
                             : v[0] / (1.0f + __expf(-v[0])) * v[1];
}

template <class Rows>
__global__ void __launch_bounds__(kWarps * 32) moe_down_kernel(MoeExpertsArgs a, Rows down) {
  const int64_t r = blockIdx.y;
  const int64_t d = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (d >= a.dim || !cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  float total = 0.0f;
  for (int64_t k = 0; k < a.top_k; ++k) {
    const int32_t e = a.ids[r * a.top_k + k];
    if (e < 0 || e >= a.experts) continue;
    const int64_t j = int64_t(e) * a.dim + d;
    const float out = down.dot(j, a.ws + (r * a.top_k + k) * a.ffn);
    total += a.weights[r * a.top_k + k] * (a.down_bias ? out + a.down_bias[j] : out);
  }
  if ((threadIdx.x & 31) == 0) a.y[r * a.dim + d] = a.accumulate ? a.y[r * a.dim + d] + total : total;
}

template <class Rows>
void launch_moe_experts(const MoeExpertsArgs& a, const Rows& gu, const Rows& down, cudaStream_t s) {
  moe_act_kernel<<<dim3(unsigned((a.ffn + kWarps - 1) / kWarps), unsigned(a.rows * a.top_k)), kWarps * 32, 0, s>>>(a,
                                                                                                                   gu);
  moe_down_kernel<<<dim3(unsigned((a.dim + kWarps - 1) / kWarps), unsigned(a.rows)), kWarps * 32, 0, s>>>(a, down);
}

template <DType W>
void moe_experts_q(const MoeExpertsArgs& a, cudaStream_t s) {
  const cuda::QRows gu{static_cast<const uint8_t*>(a.w_gu), a.gu_scale, a.gu_zero, a.dim, a.gu_group};
  const cuda::QRows down{static_cast<const uint8_t*>(a.w_down), a.down_scale, a.down_zero, a.ffn, a.down_group};
  launch_moe_experts(a, QuantRows<W>{gu, cuda::q_rows_vec<W>(gu, a.h)},
                     QuantRows<W>{down, cuda::q_rows_vec<W>(down, a.ws)}, s);
}

// head_matmul version 2, quantized rows not transposed: a warp a (row, head, output), the weight row
// decoded as the quantized GEMV decodes it.
template <DType W>
__global__ void __launch_bounds__(kWarps * 32) head_matmul_q_kernel(HeadMatmulArgs a, QuantRows<W> w) {
  const int64_t item = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (item >= a.rows * a.heads * a.m) return;
  const int64_t i = item % a.m, h = (item / a.m) % a.heads, r = item / (a.m * a.heads);
  if (!cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  const float v = w.dot(h * a.m + i, a.x + r * a.heads * a.k + h * a.k);
  if ((threadIdx.x & 31) == 0) a.y[r * a.heads * a.m + h * a.m + i] = v;
}

// Weight (j, i) of version 2's rows (m values each when transposed): float weights of a.w_dtype (W
// F32 stands for every float dtype), else the quantized value (i8: q·scale).
template <DType W>
__device__ __forceinline__ float head_weight(const HeadMatmulArgs& a, const cuda::QRows& q, int64_t j, int64_t i) {
  if constexpr (W == DType::I8 || W == DType::I4 || W == DType::F8E4M3)
    return cuda::q_weight<W>(q, j, i) * cuda::q_row_scale<W>(q, j);
  else return cuda::ld(a.w, a.w_dtype, uint64_t(j) * uint64_t(a.m) + uint64_t(i));
}

// head_matmul version 2, transposed (w: heads·k rows of m values, read down their columns): a thread a
// (row, head, output); the warp's weight reads are runs along a row, its x reads one broadcast value.
template <DType W>
__global__ void __launch_bounds__(256) head_matmul_t_kernel(HeadMatmulArgs a) {
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= uint64_t(a.rows * a.heads * a.m)) return;
  const int64_t i = int64_t(idx % uint64_t(a.m)), h = int64_t(idx / uint64_t(a.m)) % a.heads,
                r = int64_t(idx / uint64_t(a.m * a.heads));
  if (!cuda::row_valid(a.n_valid, r, a.rows / a.batch)) return;
  const cuda::QRows q{static_cast<const uint8_t*>(a.w), a.w_scale, a.w_zero, a.m, a.group};
  const float* x = a.x + r * a.heads * a.k + h * a.k;
  float acc = 0.0f;
  for (int64_t j = 0; j < a.k; ++j) acc += x[j] * head_weight<W>(a, q, h * a.k + j, i);
  a.y[r * a.heads * a.m + h * a.m + i] = acc;
}

template <DType W>
void head_matmul_q(const HeadMatmulArgs& a, cudaStream_t s) {
  if (a.transposed) {
    head_matmul_t_kernel<W><<<cuda::blocks_for(uint64_t(a.rows * a.heads * a.m), 256), 256, 0, s>>>(a);
    return;
  }
  const cuda::QRows q{static_cast<const uint8_t*>(a.w), a.w_scale, a.w_zero, a.k, a.group};
  head_matmul_q_kernel<W><<<cuda::blocks_for(uint64_t(a.rows * a.heads * a.m), kWarps), kWarps * 32, 0, s>>>(
      a, QuantRows<W>{q, cuda::q_rows_vec<W>(q, a.x)});
}

}  // namespace

void head_matmul_cuda(const HeadMatmulArgs& a, cudaStream_t s) {
  switch (a.w_dtype) {
    case DType::I8:
      return head_matmul_q<DType::I8>(a, s);
    case DType::I4:
      return head_matmul_q<DType::I4>(a, s);
    case DType::F8E4M3:
      return head_matmul_q<DType::F8E4M3>(a, s);
    default:
      if (a.transposed) {
        head_matmul_t_kernel<DType::F32><<<cuda::blocks_for(uint64_t(a.rows * a.heads * a.m), 256), 256, 0, s>>>(a);
        return;
      }
      head_matmul_kernel<<<cuda::blocks_for(uint64_t(a.rows * a.heads * a.m), kWarps), kWarps * 32, 0, s>>>(a);
  }
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

uint64_t moe_route_cuda_scratch_floats(const MoeRouteArgs& a) { return uint64_t(a.rows * a.experts); }

void moe_route_cuda(const MoeRouteArgs& a, float* scratch, cudaStream_t s) {
  moe_gate_kernel<<<dim3(unsigned((a.experts + kWarps - 1) / kWarps), unsigned(a.rows)), kWarps * 32, 0, s>>>(a,
                                                                                                          scratch);
  moe_pick_kernel<<<unsigned(a.rows), 32, size_t(2 * a.experts) * sizeof(float) + size_t(a.experts), s>>>(a, scratch);
}

void moe_experts_cuda(const MoeExpertsArgs& a, cudaStream_t s) {
  if (dtype_is_quantized(a.w_dtype)) {  // versions 2-3 (validation: both weights one dtype, with scales)
    if (a.w_dtype == DType::I8) moe_experts_q<DType::I8>(a, s);
    else if (a.w_dtype == DType::I4) moe_experts_q<DType::I4>(a, s);
    else moe_experts_q<DType::F8E4M3>(a, s);  // (dtype_is_quantized's three)
    return;
  }
  launch_moe_experts(a, FloatRows{a.w_gu, a.w_dtype, a.dim}, FloatRows{a.w_down, a.w_dtype, a.ffn}, s);
}

}  // namespace kiln
