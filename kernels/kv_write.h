// Append this step's K and V to the cache. Token t < n_valid[b] of batch row b is stored at
// cache position start_pos[b] + t; tokens past n_valid are padding and are not written.
// qkv: (batch·chunk, (n_heads + 2·n_kv_heads)·head_dim) f32, laid out [q | k | v];
// start_pos, n_valid: (batch,) i32 → k_cache, v_cache: (batch, max_seq, n_kv_heads, head_dim)
// f32|bf16|f16 [in/out]
// Plan operands: inputs {qkv, start_pos, n_valid}; outputs {k_cache, v_cache}; int attrs
// {n_heads, n_kv_heads, head_dim}. The runtime guarantees start_pos + n_valid <= max_seq.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kKvWriteOp;

struct KvWriteArgs {
  const float* qkv;
  const int32_t* start_pos;
  const int32_t* n_valid;
  void* k_cache;
  void* v_cache;
  DType cache_dtype;
  int64_t batch, chunk, max_seq, n_heads, n_kv_heads, head_dim;
};

void kv_write_cpu(const KvWriteArgs& a, ThreadPool& pool);

}  // namespace kiln
