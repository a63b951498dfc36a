// A matmul per attention head (MLA's W_UK and W_UV, applied in the latent space).
// Version 1: x: (rows, heads·k) f32; w: (heads, m, k) f32|bf16|f16 → y: (rows, heads·m) f32 with
//   y[r, h·m + i] = Σ_j w[h, i, j] · x[r, h·k + j]
// n_valid: (batch,) i32 or absent; padding rows (t >= n_valid[b]) are skipped, as in matmul.
// Plan operands: inputs {x, w, n_valid?}; outputs {y}.
// Version 2: the weights as rows of a checkpoint matrix, float or quantized as matmul reads them
//   (kernels/matmul.h), so that a DeepSeek kv_b_proj stays as --quantize or the checkpoint made it.
//   int attrs {heads, transposed, group}; inputs {x, w, n_valid?, w_scale?, w_zero?}.
//   transposed 0: w is (heads·m, k) and y[r, h·m + i] = Σ_j w[h·m + i, j] · x[r, h·k + j] (W_UV's rows);
//   transposed 1: w is (heads·k, m) and y[r, h·m + i] = Σ_j w[h·k + j, i] · x[r, h·k + j] (W_UK's rows,
//   read down their columns: W_UKᵀ without a transposed copy).
//   w f32|bf16|f16 without scales, or i8 (w_scale (rows,)), i4 (two values a byte, w_scale (rows,
//   cols/group), group a multiple of 32 dividing cols, w_zero optional: asymmetric) or f8e4m3 (w_scale
//   (rows, ceil(cols/group)), group a multiple of 16 up to cols, or cols); group is 0 for float and i8
//   weights. Transposed, i8 weights are the f32 products q·scale; not transposed, a row's output is
//   (x·q)·scale, as matmul's. Every other weight is the f32 value matmul reads. Each output is a sum
//   over j in dot_f32's lanes and order (kernels/cpu/simd.h) on the CPU, transposed too, so float and
//   i4/f8e4m3 weights give the bits version 1 gives on the same values (f32 weights). The compiler
//   emits version 2 where weights may be quantized (DeepSeek's kv_b in a quantized or pre-quantized
//   plan); rows it leaves in the plan dtype (a group that does not divide them, an adapter) stay
//   float version 2 launches.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kHeadMatmulOp;    // version 1: (heads, m, k) float weights
extern const OpDef kHeadMatmulOpV2;  // version 2: rows of a checkpoint matrix, float or quantized

struct HeadMatmulArgs {
  const float* x;
  const void* w;
  DType w_dtype;
  float* y;
  int64_t rows, heads, k, m;
  const int32_t* n_valid;  // null: every row
  int64_t batch;
  bool transposed = false;         // version 2, transposed: w (heads·k, m), read down its columns
  const float* w_scale = nullptr;  // version 2: quantized weights' scales (see above)
  int64_t group = 0;               // i4 and f8e4m3: values a scale
  const int8_t* w_zero = nullptr;  // asymmetric i4: zero points, shaped as w_scale (null: 8)
};

// Version 2, transposed: activation rows summed together on the CPU, each weight row dequantized once
// for them.
constexpr int64_t kHeadMatmulRowBlock = 4;

// CPU scratch per worker: transposed, a dequantized row (m) and kHeadMatmulRowBlock rows' 16 lanes of m
// sums; else k floats to widen a row that is not f32 (version 1: 16-bit floats; version 2: also the
// quantized rows, i8 unscaled).
inline uint64_t head_matmul_scratch_floats(int64_t k, int64_t m, bool transposed, DType w) {
  return transposed ? uint64_t((1 + 16 * kHeadMatmulRowBlock) * m) : w == DType::F32 ? 0 : uint64_t(k);
}

void head_matmul_cpu(const HeadMatmulArgs& a, ThreadPool& pool);

}  // namespace kiln
