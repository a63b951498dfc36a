// Small CUDA kernels: embedding gather, last-row gather, RMSNorm, RoPE, KV-cache append and SwiGLU. Each
// mirrors its CPU twin in kernels/cpu/ (the oracle of tests/cuda/).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

namespace {

using cuda::blocks_for;

// Embedding and RMSNorm precede decode GEMVs: pdl_trigger lets a GEMV launched with PDL start early.
__global__ void embedding_kernel(EmbeddingArgs a) {
  cuda::pdl_trigger();
  const uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= uint64_t(a.rows * a.dim)) return;
  const int64_t r = int64_t(i / uint64_t(a.dim)), d = int64_t(i % uint64_t(a.dim));
  int64_t id = a.tokens[r];
  if (id < 0 || id >= a.vocab) id = 0;
  // (rounded as the CPU rounds: the product, then the sum, never one fused multiply-add)
  float v = __fmul_rn(cuda::ld(a.table, a.table_dtype, uint64_t(id * a.dim + d)), a.scale);
  if (const int64_t pos = embedding_position_row(a, r); pos >= 0)
    v = __fadd_rn(v, cuda::ld(a.pos_table, a.pos_dtype, uint64_t(pos * a.dim + d)));
  a.y[i] = v;
}

// One thread per output value: batch row b's last valid row of x, or 0 for an idle row.
__global__ void last_rows_kernel(LastRowsArgs a) {
  const uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= uint64_t(a.batch * a.dim)) return;
  const int64_t b = int64_t(i / uint64_t(a.dim)), d = int64_t(i % uint64_t(a.dim));
  const int64_t r = last_row_of(a, b);
  a.y[i] = r < 0 ? 0.0f : a.x[r * a.dim + d];
}

__global__ void rmsnorm_kernel(RmsNormArgs a) {
  cuda::pdl_trigger();
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const float* x = a.x + r * a.dim;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < a.dim; i += blockDim.x) ss += x[i] * x[i];
  ss = cuda::block_sum(ss, red);
  const float inv = rsqrtf(ss / float(a.dim) + a.eps);
  for (int64_t i = threadIdx.x; i < a.dim; i += blockDim.x)
    a.y[r * a.dim + i] = cuda::ld(a.w, a.w_dtype, uint64_t(i)) * (x[i] * inv);
}

// One warp per head: the sum of squares over its head_dim values (about their mean with
// kHeadNormCenter), then the scaled values in place.
__global__ void head_rmsnorm_kernel(HeadRmsNormArgs a) {
  cuda::pdl_trigger();
  const int64_t heads = a.n_q + a.n_k;
  const int64_t head = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (head >= a.rows * heads) return;
  const int64_t r = head / heads, h = head % heads;
  float* x = a.qkv + r * a.width + head_rmsnorm_offset(a, h);
  const int64_t d = head_rmsnorm_width(a, h);
  const void* w = h < a.n_q ? a.w_q : a.w_k;
  const uint64_t w0 = head_rmsnorm_w_offset(a, h);
  const int lane = threadIdx.x % 32;
  float m = 0.0f;
  if (a.mode & kHeadNormCenter) {
    for (int64_t i = lane; i < d; i += 32) m += x[i];
    m = cuda::warp_sum(m) / float(d);
  }
  float ss = 0.0f;
  for (int64_t i = lane; i < d; i += 32) ss += (x[i] - m) * (x[i] - m);
  ss = cuda::warp_sum(ss);
  const float inv = rsqrtf(ss / float(d) + a.eps);
  for (int64_t i = lane; i < d; i += 32) x[i] = cuda::ld(w, a.w_dtype, w0 + uint64_t(i)) * ((x[i] - m) * inv);
}

// Rotates pair (i, i + rotary_dim/2) of head h of qkv row `row` in place and leaves the rotated
// values in x0, x1. The one rotation rope_kernel and rope_kv_write_kernel (rotary_dim = head_dim
// there) both run.
__device__ __forceinline__ void rope_rotate(const RopeArgs& a, int64_t row, int64_t h, int64_t i, float& x0,
                                            float& x1) {
  const int64_t half = rope_half(a), b = row / a.chunk, t = row % a.chunk;
  const float angle = float(int64_t(a.start_pos[b]) + t) * a.inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  c *= a.attention_scaling;
  s *= a.attention_scaling;
  float* v = a.qkv + row * a.width + h * a.head_dim;
  const float v0 = v[i], v1 = v[i + half];
  x0 = v0 * c - v1 * s;
  x1 = v1 * c + v0 * s;
  v[i] = x0;
  v[i + half] = x1;
}

__global__ void rope_kernel(RopeArgs a) {
  const int64_t half = rope_half(a);
  const uint64_t n = uint64_t(a.batch * a.chunk * a.n_rot_heads * half);
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n) return;
  const int64_t i = int64_t(idx % uint64_t(half));
  const int64_t h = int64_t((idx / uint64_t(half)) % uint64_t(a.n_rot_heads));
  const int64_t r = int64_t(idx / uint64_t(half * a.n_rot_heads));
  float x0, x1;
  rope_rotate(a, r, h, i, x0, x1);
}

__global__ void kv_write_kernel(KvWriteArgs a) {
  const int64_t kv = a.n_kv_heads * a.head_dim;
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= uint64_t(a.batch * a.chunk * kv)) return;
  const int64_t r = int64_t(idx / uint64_t(kv)), i = int64_t(idx % uint64_t(kv));
  const int64_t b = r / a.chunk, t = r % a.chunk;
  const int64_t pos = int64_t(a.start_pos[b]) + t;
  if (t >= a.n_valid[b] || pos < 0 || pos >= a.max_seq) return;
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const float* k = a.qkv + r * width + a.n_heads * a.head_dim;
  const uint64_t c = uint64_t((b * a.max_seq + pos) * kv + i);
  cuda::st(a.k_cache, a.cache_dtype, c, k[i]);
  cuda::st(a.v_cache, a.cache_dtype, c, k[kv + i]);
}

__global__ void swiglu_kernel(SwigluArgs a) {
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= uint64_t(a.rows * a.ffn)) return;
  const int64_t r = int64_t(idx / uint64_t(a.ffn)), i = int64_t(idx % uint64_t(a.ffn));
  const float g = a.gu[r * 2 * a.ffn + i], u = a.gu[r * 2 * a.ffn + a.ffn + i];
  a.h[idx] = g / (1.0f + __expf(-g)) * u;
}

// rope then kv_write in one pass: one thread per (row, head of q|k|v, rotation pair). q and k
// pairs are rotated in place exactly as rope_kernel does; k and v pairs of valid rows are stored
// in the caches exactly as kv_write_kernel does.
__global__ void rope_kv_write_kernel(RopeArgs r, KvWriteArgs w) {
  const int64_t half = r.head_dim / 2, heads = w.n_heads + 2 * w.n_kv_heads;
  const uint64_t n = uint64_t(r.batch * r.chunk * heads * half);
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n) return;
  const int64_t i = int64_t(idx % uint64_t(half));
  const int64_t h = int64_t((idx / uint64_t(half)) % uint64_t(heads));
  const int64_t row = int64_t(idx / uint64_t(half * heads));
  const int64_t b = row / r.chunk, t = row % r.chunk;
  const float* v = r.qkv + row * r.width + h * r.head_dim;
  float x0 = v[i], x1 = v[i + half];
  if (h < r.n_rot_heads) rope_rotate(r, row, h, i, x0, x1);
  if (h < w.n_heads) return;
  const int64_t pos = int64_t(w.start_pos[b]) + t;
  if (t >= w.n_valid[b] || pos < 0 || pos >= w.max_seq) return;
  const int64_t kv = w.n_kv_heads * w.head_dim, is_v = h >= w.n_heads + w.n_kv_heads;
  const int64_t kvh = h - w.n_heads - (is_v ? w.n_kv_heads : 0);
  const uint64_t c = uint64_t((b * w.max_seq + pos) * kv + kvh * w.head_dim + i);
  void* cache = is_v ? w.v_cache : w.k_cache;
  cuda::st(cache, w.cache_dtype, c, x0);
  cuda::st(cache, w.cache_dtype, c + uint64_t(half), x1);
}

}  // namespace

bool rope_kv_write_cuda_supported(const RopeArgs& r, const KvWriteArgs& w) {
  return r.qkv == w.qkv && r.start_pos == w.start_pos && r.batch == w.batch && r.chunk == w.chunk &&
         r.head_dim == w.head_dim && r.head_dim % 2 == 0 && rope_half(r) == r.head_dim / 2 &&
         r.n_rot_heads == w.n_heads + w.n_kv_heads && r.width == (w.n_heads + 2 * w.n_kv_heads) * w.head_dim;
}

void rope_kv_write_cuda(const RopeArgs& r, const KvWriteArgs& w, cudaStream_t s) {
  const uint64_t n = uint64_t(r.batch * r.chunk * (w.n_heads + 2 * w.n_kv_heads) * (r.head_dim / 2));
  if (n == 0) return;
  rope_kv_write_kernel<<<blocks_for(n, 256), 256, 0, s>>>(r, w);
}

void embedding_cuda(const EmbeddingArgs& a, cudaStream_t s) {
  embedding_kernel<<<blocks_for(uint64_t(a.rows * a.dim), 256), 256, 0, s>>>(a);
}

void last_rows_cuda(const LastRowsArgs& a, cudaStream_t s) {
  if (a.batch * a.dim == 0) return;
  last_rows_kernel<<<blocks_for(uint64_t(a.batch * a.dim), 256), 256, 0, s>>>(a);
}

void rmsnorm_cuda(const RmsNormArgs& a, cudaStream_t s) { rmsnorm_kernel<<<unsigned(a.rows), 256, 0, s>>>(a); }

void head_rmsnorm_cuda(const HeadRmsNormArgs& a, cudaStream_t s) {
  const uint64_t heads = uint64_t(a.rows * (a.n_q + a.n_k));
  head_rmsnorm_kernel<<<unsigned((heads + 7) / 8), 256, 0, s>>>(a);
}

void rope_cuda(const RopeArgs& a, cudaStream_t s) {
  rope_kernel<<<blocks_for(uint64_t(a.batch * a.chunk * a.n_rot_heads * rope_half(a)), 256), 256, 0, s>>>(a);
}

void kv_write_cuda(const KvWriteArgs& a, cudaStream_t s) {
  kv_write_kernel<<<blocks_for(uint64_t(a.batch * a.chunk * a.n_kv_heads * a.head_dim), 256), 256, 0, s>>>(a);
}

void swiglu_cuda(const SwigluArgs& a, cudaStream_t s) {
  swiglu_kernel<<<blocks_for(uint64_t(a.rows * a.ffn), 256), 256, 0, s>>>(a);
}

namespace {
__global__ void noop_kernel() {}
}  // namespace

void noop_cuda(cudaStream_t s) { noop_kernel<<<1, 32, 0, s>>>(); }

}  // namespace kiln
