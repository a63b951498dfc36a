// Checks that several LLM ops share: a fused QKV buffer with its K/V caches and step state
// (kv_write, attention, rope_kv_write), and the MLA latent cache (mla_kv_write, mla_attention).
#pragma once
#include "kernels/op.h"

namespace kiln {

// Head counts from int attrs {n_heads, n_kv_heads, head_dim}, the qkv buffer (rows, (h + 2·kvh)·hd)
// f32, the caches (batch, max_seq, kvh, hd) of one float dtype, and start_pos and n_valid (batch,)
// i32 state tensors.
Status check_qkv_and_caches(const OpCheck& c, const TensorInfo* qkv, const TensorInfo* k_cache,
                            const TensorInfo* v_cache, const TensorInfo* start, const TensorInfo* valid);

// The latent cache (batch, max_seq, width) and the step state; *batch receives its batch.
Status check_latent_cache(const OpCheck& c, const TensorInfo* cache, const TensorInfo* start, const TensorInfo* valid,
                          int64_t rows, int64_t width, int64_t* batch);

}  // namespace kiln
