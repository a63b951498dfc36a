// A matmul per attention head (MLA's W_UK and W_UV, applied in the latent space).
// x: (rows, heads·k) f32; w: (heads, m, k) f32|bf16|f16 → y: (rows, heads·m) f32 with
//   y[r, h·m + i] = Σ_j w[h, i, j] · x[r, h·k + j]
// n_valid: (batch,) i32 or absent; padding rows (t >= n_valid[b]) are skipped, as in matmul.
// Plan operands: inputs {x, w, n_valid?}; outputs {y}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kHeadMatmulOp;

struct HeadMatmulArgs {
  const float* x;
  const void* w;
  DType w_dtype;
  float* y;
  int64_t rows, heads, k, m;
  const int32_t* n_valid;  // null: every row
  int64_t batch;
};

// CPU scratch: k floats per worker when w is not f32.
void head_matmul_cpu(const HeadMatmulArgs& a, ThreadPool& pool);

}  // namespace kiln
