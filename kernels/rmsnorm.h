// RMSNorm as in LLaMA: y = x / sqrt(mean(x^2) + eps) * w, in f32.
// x: (rows, dim) f32; w: (dim,) f32|bf16|f16 → y: (rows, dim) f32
// Plan operands: inputs {x, w}; outputs {y}; float attrs {eps}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kRmsNormOp;

struct RmsNormArgs {
  const float* x;
  const void* w;
  DType w_dtype;
  float* y;
  int64_t rows, dim;
  float eps;
};

void rmsnorm_cpu(const RmsNormArgs& a, ThreadPool& pool);

}  // namespace kiln
