// Causal grouped-query attention over the KV cache (which already holds this step's keys).
// Query t < n_valid[b] of batch row b, at position p = start_pos[b] + t, attends to cache
// positions 0..p, or with a sliding window w > 0 to the last w of them, max(0, p - w + 1)..p
// (transformers' sliding-window mask: key j is visible when j > p - w); rows past n_valid are
// written as zeros. Softmax in f32.
// qkv: (batch·chunk, (n_heads + 2·n_kv_heads)·head_dim) f32 (only q is read);
// k_cache, v_cache: (batch, max_seq, n_kv_heads, head_dim) f32|bf16|f16;
// start_pos, n_valid: (batch,) i32 → out: (batch·chunk, n_heads·head_dim) f32
// Plan operands: inputs {qkv, k_cache, v_cache, start_pos, n_valid}; outputs {out};
// int attrs {n_heads, n_kv_heads, head_dim, window (0: none)}; float attrs {scale, softcap (0:
// none; Gemma 2's attn_logit_softcapping: each score s = q·k·scale becomes cap·tanh(s / cap) before
// the softmax)}. Version 4 takes a sixth, optional input, sinks: (n_heads,) f32, GPT-OSS's learned
// logit per head, one more score in each row's softmax (never soft-capped) whose weight multiplies no
// value (it only shrinks the others; its CUDA paths have not run on a GPU yet). Version 5 takes a seventh,
// optional input, alibi: (n_heads,) f32, each head's ALiBi slope m: key j's score for the query at position p
// gains m·(j − p) (after the scale, before the soft cap; BLOOM's and MPT's linear biases, which softmax reads
// as theirs: they differ by a constant per row; its CUDA paths have not run on a GPU yet). Version 4 has no
// alibi, version 3 no sinks, version 2 no softcap attribute, version 1 (plans written before windows) no window
// either.
// CPU scratch: attention_scratch_floats floats per worker.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kAttentionOp;
extern const OpDef kAttentionOpV1;
extern const OpDef kAttentionOpV2;
extern const OpDef kAttentionOpV3;
extern const OpDef kAttentionOpV4;

struct AttentionArgs {
  const float* qkv;
  const void* k_cache;
  const void* v_cache;
  DType cache_dtype;
  const int32_t* start_pos;
  const int32_t* n_valid;
  float* out;
  int64_t batch, chunk, max_seq, n_heads, n_kv_heads, head_dim;
  float scale;
  int64_t window = 0;  // > 0: each query sees only the last `window` positions (itself included)
  float softcap = 0;   // > 0: scores soft-capped at ±softcap (attention_softcap)
  const float* sinks = nullptr;  // (n_heads,): each head's sink logit; null: none
  const float* alibi = nullptr;  // (n_heads,): each head's ALiBi slope; null: none
};

// Head h's ALiBi bias for key position `key` seen from query position p (−0 without ALiBi: x + −0 is x, so adding it
// changes no score's bits).
KILN_HOST_DEVICE inline float attention_alibi(const AttentionArgs& a, int64_t h, int64_t key, int64_t p) {
  return a.alibi ? a.alibi[h] * float(key - p) : -0.0f;
}

// Head h's sink logit, −inf without sinks (a score of weight 0).
KILN_HOST_DEVICE inline float attention_sink(const AttentionArgs& a, int64_t h) {
  return a.sinks ? a.sinks[h] : -INFINITY;
}

// A score after the soft cap (transformers' Gemma 2: scores / cap, tanh, times cap); cap 0: as is.
KILN_HOST_DEVICE inline float attention_softcap(float s, float cap) { return cap > 0 ? cap * tanhf(s / cap) : s; }

// The first cache position query position p sees.
KILN_HOST_DEVICE inline int64_t attention_first_key(int64_t p, int64_t window) {
  return window > 0 && p >= window ? p - window + 1 : 0;
}

// The tiled CPU path: cache rows widened to f32 together (bf16/f16 caches), and query rows of a
// prefill chunk sharing them.
constexpr int64_t kAttentionKeyBlock = 48;
// Query rows sharing each widened cache block: as many as a budget of 2^18 score floats (1 MiB)
// per worker holds for two heads, between 4 and 32 (32 up to max_seq 4096, 4 from 32768). More
// rows widen each cache row fewer times (bf16/f16 caches) and reuse it from L1; each row's
// arithmetic is the same however many share a block.
constexpr int64_t kAttentionMaxRowBlock = 32;
inline int64_t attention_row_block(int64_t max_seq) {
  const int64_t fit = (int64_t(1) << 18) / (2 * (max_seq > 0 ? max_seq : 1));
  return fit < 4 ? 4 : fit > kAttentionMaxRowBlock ? kAttentionMaxRowBlock : fit;
}

// attention_cpu's scratch per worker (the op's validate() reserves it): the scores over max_seq
// positions for two query heads of attention_row_block(max_seq) rows, then a block of cache rows
// widened to f32 (kAttentionKeyBlock · head_dim floats); for chunks of kGemmMinRows rows or more
// (kernels/matmul.h) also that block transposed (the same size), the item's query rows packed
// (2 · kAttentionMaxRowBlock · head_dim) and their scores against the block (kAttentionScoreTile).
// The scores take a whole number of 64-byte lines, so the blocks after them stay aligned for the
// 512-bit stores of the transposed keys.
constexpr int64_t kAttentionScoreTile = 2 * kAttentionMaxRowBlock * kAttentionKeyBlock;
inline uint64_t attention_score_floats(int64_t max_seq) {
  return (2 * uint64_t(attention_row_block(max_seq)) * uint64_t(max_seq) + 15) / 16 * 16;
}
inline uint64_t attention_scratch_floats(int64_t max_seq, int64_t head_dim) {
  return attention_score_floats(max_seq) + 2 * uint64_t(kAttentionKeyBlock) * uint64_t(head_dim) +
         2 * uint64_t(kAttentionMaxRowBlock) * uint64_t(head_dim) + uint64_t(kAttentionScoreTile);
}

// On the CPU the scores q·k·scale are, for chunks of kGemmMinRows rows or more (kernels/matmul.h; the
// chunk, not batch · chunk as the matmul counts), the chain of FMAs over head_dim in order (gemm_ref),
// and for shorter ones (decode) dot_f32's 16 lanes.
void attention_cpu(const AttentionArgs& a, ThreadPool& pool);

}  // namespace kiln
