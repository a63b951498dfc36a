// RMSNorm over each head of a fused QKV buffer, in place (Qwen3's q_norm and k_norm, applied
// before RoPE): heads [0, n_q) of every row are normalized with w_q, heads [n_q, n_q + n_k) with
// w_k, each over its head_dim values as RmsNorm does over a row; the v heads are untouched.
// qkv: (rows, width) f32 [in/out]; w_q, w_k: (head_dim,) f32|bf16|f16 (one dtype)
// Plan operands: inputs {qkv, w_q, w_k}; outputs {qkv}; int attrs {n_q_heads, n_k_heads,
// head_dim}; float attrs {eps}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kHeadRmsNormOp;

struct HeadRmsNormArgs {
  float* qkv;
  const void* w_q;
  const void* w_k;
  DType w_dtype;
  int64_t rows, width, n_q, n_k, head_dim;
  float eps;
};

void head_rmsnorm_cpu(const HeadRmsNormArgs& a, ThreadPool& pool);

}  // namespace kiln
