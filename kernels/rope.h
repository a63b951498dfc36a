// Rotary position embedding (the rotate-half form of HF LLaMA), applied in place to the
// first `n_rot_heads` heads of each row of a fused QKV buffer. Token t of batch row b sits at
// row b·chunk + t and at position start_pos[b] + t. All rope variants (default, linear,
// llama3) differ only in inv_freq, which the compiler folds into a constant. A partial rotary
// embedding (Phi-4-mini's partial_rotary_factor) rotates only the first rotary_dim = 2·len(inv_freq)
// dims of each head, pairs (i, i + rotary_dim/2), and leaves the rest.
// qkv: (batch·chunk, width) f32 [in/out]; inv_freq: (rotary_dim/2,) f32 with rotary_dim <=
// head_dim (version 1: rotary_dim = head_dim); start_pos: (batch,) i32; n_valid: (batch,) i32 or
// absent (versions 1 and 2 have no such input): padding rows are skipped on the CPU.
// Plan operands: inputs {inv_freq, start_pos, qkv, n_valid}; outputs {qkv}; int attrs {n_rot_heads,
// head_dim}; float attrs {attention_scaling} (multiplies cos and sin; 1 for these variants).
#pragma once
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kRopeOp;
extern const OpDef kRopeOpV1;
extern const OpDef kRopeOpV2;

struct RopeArgs {
  float* qkv;
  const float* inv_freq;
  const int32_t* start_pos;
  int64_t batch, chunk, width, n_rot_heads, head_dim;
  float attention_scaling;
  int64_t rotary_dim = 0;  // the rotated dims of each head; 0: all of them (head_dim)
  const int32_t* n_valid = nullptr;  // (batch,), or null: every row
};

KILN_HOST_DEVICE inline int64_t rope_half(const RopeArgs& a) {
  return (a.rotary_dim > 0 ? a.rotary_dim : a.head_dim) / 2;
}

void rope_cpu(const RopeArgs& a, ThreadPool& pool);

}  // namespace kiln
