// Checks that several LLM ops share: a fused QKV buffer with its K/V caches and step state
// (kv_write, attention, rope_kv_write), the MLA latent cache (mla_kv_write, mla_attention), and
// quantized weight rows (moe_experts, head_matmul).
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

// A quantized weight (input i, `rows` rows of k values, dtype t: i8, i4 or f8e4m3) and its scales
// (input si) in groups of `group` values, as matmul checks them (kernels/ops/matmul.cpp): i8 with group
// 0 and one scale a row, i4 (rows, k/2) in groups of a multiple of 32 dividing k, f8e4m3 in groups of
// a multiple of 16 up to k, or k.
Status expect_quantized(const OpCheck& c, int i, const char* role, int si, const char* srole, DType t, int64_t rows,
                        int64_t k, int64_t group);
// Quantized weights, their scales and zero points (the inputs listed, where present) are plan
// weights: read from a writable region they would be whatever a launch left there.
Status expect_in_weights(const OpCheck& c, std::initializer_list<int> inputs);

}  // namespace kiln
