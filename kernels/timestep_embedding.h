// Sinusoidal timestep embedding, as diffusers' get_timestep_embedding (in f32, same order):
// half = dim/2, freq_i = exp(−ln(max_period)·i / (half − freq_shift)), e = [sin(t·freq) | cos(t·freq)]
// ([cos | sin] with flip_sin_to_cos). The timestep is t[step[0]] when a step operand is given
// (a denoising loop's schedule, indexed by the step state), else t[0].
// t: (n,) f32; step: (1,) i32 state or absent → emb: (rows, dim) f32, every row the same.
// Plan operands: inputs {t, step?}; outputs {emb}; int attrs {flip_sin_to_cos};
//   float attrs {freq_shift, max_period}.
#pragma once
#include <cstdint>

#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kTimestepEmbeddingOp;

struct TimestepEmbeddingArgs {
  const float* t;
  int64_t n;
  const int32_t* step;  // may be null
  float* emb;
  int64_t rows, dim;
  bool flip_sin_to_cos;
  float freq_shift, max_period;
};

void timestep_embedding_cpu(const TimestepEmbeddingArgs& a, ThreadPool& pool);

}  // namespace kiln
