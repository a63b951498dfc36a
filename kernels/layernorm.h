// LayerNorm over the last dimension, as torch.nn.LayerNorm (CLIP, transformer blocks):
// y = (x − mean) / sqrt(var + eps) · w + b, statistics in double, output f32.
// x: (rows, dim) f32; w, b: (dim,) f32|bf16|f16 (one dtype) → y: (rows, dim) f32
// Plan operands: inputs {x, w, b}; outputs {y}; float attrs {eps}. Version 2: b may be absent (no
// bias: Cohere's LayerNorm); version 1 needs it.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kLayerNormOp, kLayerNormOpV1;

struct LayerNormArgs {
  const float* x;
  const void* w;
  const void* b;  // null: no bias
  DType w_dtype;
  float* y;
  int64_t rows, dim;
  float eps;
};

void layernorm_cpu(const LayerNormArgs& a, ThreadPool& pool);

}  // namespace kiln
