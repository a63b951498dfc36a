// RMSNorm as in LLaMA: y = x / sqrt(mean(x^2) + eps) * w, in f32.
// x: (rows, dim) f32; w: (dim,) f32|bf16|f16 → y: (rows, dim) f32
// n_valid: (batch,) i32 or absent (version 1 has no such input): padding rows are skipped on the
// CPU (row_is_valid, kernels/host_device.h), as in matmul.
// Plan operands: inputs {x, w, n_valid}; outputs {y}; float attrs {eps}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kRmsNormOp;
extern const OpDef kRmsNormOpV1;

struct RmsNormArgs {
  const float* x;
  const void* w;
  DType w_dtype;
  float* y;
  int64_t rows, dim;
  float eps;
  const int32_t* n_valid = nullptr;  // (batch,), or null: every row
  int64_t batch = 1;
};

void rmsnorm_cpu(const RmsNormArgs& a, ThreadPool& pool);

}  // namespace kiln
