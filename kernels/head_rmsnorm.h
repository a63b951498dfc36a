// RMSNorm over each head of a fused QKV buffer, in place (Qwen3's q_norm and k_norm, applied
// before RoPE): the n_q q heads of every row (head_dim values each, from column 0) are normalized
// with w_q, then the n_k k heads (k_head_dim values each) with w_k, each over its values as
// RmsNorm does over a row; the v heads are untouched. OLMo 2 normalizes q and k whole: one "head"
// of each, H·head_dim and KVH·head_dim wide.
// Version 3's `mode` adds Cohere's per-head LayerNorm (no bias): kHeadNormCenter subtracts each head's
// mean first (the variance then about it), kHeadNormPerHeadWeights gives every head its own weights
// (w_q: (n_q·head_dim,), w_k: (n_k·k_head_dim,), head by head).
// qkv: (rows, width) f32 [in/out]; w_q: (head_dim,), w_k: (k_head_dim,) f32|bf16|f16 (one dtype)
// Plan operands: inputs {qkv, w_q, w_k}; outputs {qkv}; int attrs {n_q_heads, n_k_heads,
// head_dim, k_head_dim, mode} (version 2: the first four; version 1: the first three, k heads
// head_dim wide); float attrs {eps}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kHeadRmsNormOp, kHeadRmsNormOpV2, kHeadRmsNormOpV1;

// head_rmsnorm version 3's mode bits.
constexpr int64_t kHeadNormCenter = 1, kHeadNormPerHeadWeights = 2;

struct HeadRmsNormArgs {
  float* qkv;
  const void* w_q;
  const void* w_k;
  DType w_dtype;
  int64_t rows, width, n_q, n_k, head_dim;
  float eps;
  int64_t k_head_dim = 0;  // 0: head_dim
  int64_t mode = 0;        // kHeadNorm* bits (version 3)
};

// Head h's first value in a row (q heads, then k heads), and its width.
KILN_HOST_DEVICE inline int64_t head_rmsnorm_width(const HeadRmsNormArgs& a, int64_t h) {
  return h < a.n_q || a.k_head_dim == 0 ? a.head_dim : a.k_head_dim;
}
KILN_HOST_DEVICE inline int64_t head_rmsnorm_offset(const HeadRmsNormArgs& a, int64_t h) {
  return h < a.n_q ? h * a.head_dim : a.n_q * a.head_dim + (h - a.n_q) * head_rmsnorm_width(a, h);
}

// Head h's weights: w_q or w_k, from the head's own row with kHeadNormPerHeadWeights.
KILN_HOST_DEVICE inline uint64_t head_rmsnorm_w_offset(const HeadRmsNormArgs& a, int64_t h) {
  if (!(a.mode & kHeadNormPerHeadWeights)) return 0;
  return uint64_t(h < a.n_q ? h * a.head_dim : (h - a.n_q) * head_rmsnorm_width(a, h));
}

void head_rmsnorm_cpu(const HeadRmsNormArgs& a, ThreadPool& pool);

}  // namespace kiln
