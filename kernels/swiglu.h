// SwiGLU gate of the LLaMA MLP on a fused gate|up buffer: h = silu(g) · u.
// gu: (rows, 2·ffn) f32, laid out [gate | up] → h: (rows, ffn) f32
// Plan operands: inputs {gu}; outputs {h}.
#pragma once
#include <cstdint>

#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kSwigluOp;

struct SwigluArgs {
  const float* gu;
  float* h;
  int64_t rows, ffn;
};

void swiglu_cpu(const SwigluArgs& a, ThreadPool& pool);

}  // namespace kiln
