// SwiGLU gate of the LLaMA MLP on a fused gate|up buffer: h = silu(g) · u.
// gu: (rows, 2·ffn) f32, laid out [gate | up] → h: (rows, ffn) f32
// n_valid: (batch,) i32 or absent (version 1 has no such input): padding rows are skipped on the
// CPU (row_is_valid, kernels/host_device.h), as in matmul.
// Plan operands: inputs {gu, n_valid}; outputs {h}.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kSwigluOp;
extern const OpDef kSwigluOpV1;

struct SwigluArgs {
  const float* gu;
  float* h;
  int64_t rows, ffn;
  const int32_t* n_valid = nullptr;  // (batch,), or null: every row
  int64_t batch = 1;
};

void swiglu_cpu(const SwigluArgs& a, ThreadPool& pool);

}  // namespace kiln
