// Attention without a KV cache (CLIP's causal self-attention, the UNet's self- and
// cross-attention): softmax(q·kᵀ·scale [+ causal mask]) · v per image and head, in f32.
// Q, K and V are column windows of fused projection buffers, so one matmul can produce
// [q | k | v] (self-attention) or [k | v] (cross-attention) without copies.
// q_src: (batch·lq, wq) f32, head h of row i at columns q_off + h·head_dim;
// kv_src: (batch·lk, wkv) f32, K of head h at k_off + h·head_dim, V at v_off + h·head_dim
//   → out: (batch·lq, heads·head_dim) f32
// Plan operands: inputs {q_src, kv_src}; outputs {out};
//   int attrs {batch, heads, head_dim, q_off, k_off, v_off, causal}; float attrs {scale}.
// CPU scratch: lk + head_dim floats per worker.
#pragma once
#include <cstdint>

#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kSdpaOp;

struct SdpaArgs {
  const float* q_src;
  const float* kv_src;
  float* out;
  int64_t batch, lq, lk, wq, wkv;
  int64_t heads, head_dim, q_off, k_off, v_off;
  bool causal;
  float scale;
};

// sdpa_cpu's scratch per worker (the op's validate() reserves it): the scores over lk keys (and
// head_dim floats to spare).
inline uint64_t sdpa_scratch_floats(int64_t lk, int64_t head_dim) { return uint64_t(lk) + uint64_t(head_dim); }

void sdpa_cpu(const SdpaArgs& a, ThreadPool& pool);

}  // namespace kiln
