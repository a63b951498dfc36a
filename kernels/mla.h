// Multi-head latent attention (DeepSeek V2/V3) over a latent KV cache. Per token the cache
// holds [c_kv (rank) | k_pe (rope)]: the normalized compressed KV and the shared, already
// rotated, RoPE key. With W_UK applied to the query beforehand (q_lat = W_UKᵀ·q_nope, per
// head) the score of head h for cache position j is
//   s_j = (q_lat_h · c_j + q_pe_h · k_pe_j) · scale
// and the output stays latent, o_h = Σ_j softmax(s)_j · c_j, for W_UV to expand afterwards.
// Token t of batch row b sits at position start_pos[b] + t and attends to positions 0..that.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The ops (their definitions: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kMlaKvWriteOp;
extern const OpDef kMlaAttentionOp;

// ckv: (batch·chunk, rank) f32; kpe: (batch·chunk, rope) f32; start_pos, n_valid: (batch,) i32
//   → cache: (batch, max_seq, rank + rope) f32|bf16|f16 [in/out]; padding rows are not written.
// Plan operands: inputs {ckv, kpe, start_pos, n_valid}; outputs {cache}.
struct MlaKvWriteArgs {
  const float* ckv;
  const float* kpe;
  const int32_t* start_pos;
  const int32_t* n_valid;
  void* cache;
  DType cache_dtype;
  int64_t batch, chunk, max_seq, rank, rope;
};

// q_lat: (batch·chunk, heads·rank) f32; q_pe: (batch·chunk, heads·rope) f32; cache as above;
// start_pos, n_valid → out: (batch·chunk, heads·rank) f32 (zeros for padding rows).
// Plan operands: inputs {q_lat, q_pe, cache, start_pos, n_valid}; outputs {out}; int attrs
// {heads, rank, rope}; float attrs {scale}.
// CPU scratch: max_seq + rank + rope floats per worker.
struct MlaAttentionArgs {
  const float* q_lat;
  const float* q_pe;
  const void* cache;
  DType cache_dtype;
  const int32_t* start_pos;
  const int32_t* n_valid;
  float* out;
  int64_t batch, chunk, max_seq, heads, rank, rope;
  float scale;
};

// mla_attention_cpu's scratch per worker (the op's validate() reserves it): the scores over
// max_seq positions, then one cache row widened to f32 (rank + rope floats).
inline uint64_t mla_scratch_floats(int64_t max_seq, int64_t rank, int64_t rope) {
  return uint64_t(max_seq) + uint64_t(rank) + uint64_t(rope);
}

void mla_kv_write_cpu(const MlaKvWriteArgs& a, ThreadPool& pool);
void mla_attention_cpu(const MlaAttentionArgs& a, ThreadPool& pool);

}  // namespace kiln
