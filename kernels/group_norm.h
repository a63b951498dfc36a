// GroupNorm on channels-last activations, as torch.nn.GroupNorm on the NCHW tensor, with an
// optional SiLU after it (ResNet blocks always follow their norms with SiLU).
// Statistics per (batch row, group) over every pixel and the group's channels, in double.
// x: (batch, pixels, channels) f32; w, b: (channels,) f32|bf16|f16 (one dtype)
//   → y: (batch, pixels, channels) f32
// Plan operands: inputs {x, w, b}; outputs {y}; int attrs {groups, silu}; float attrs {eps}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kGroupNormOp;

struct GroupNormArgs {
  const float* x;
  const void* w;
  const void* b;
  DType w_dtype;
  float* y;
  int64_t batch, pixels, channels, groups;
  bool silu;
  float eps;
};

void group_norm_cpu(const GroupNormArgs& a, ThreadPool& pool);

}  // namespace kiln
