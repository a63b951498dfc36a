// Linear layer, weights in the torch nn.Linear layout.
// x: (rows, k) f32; w: (m, k) f32|bf16|f16, or i8 with w_scale; bias: (m,) f32|bf16|f16 or absent
//   → y: (rows, m) f32, y = x·wᵀ + bias, or y += x·wᵀ + bias when accumulate (a fused
//   residual add: y is then read and written).
// w_scale: (m,) f32, with i8 weights only (version 2): weight row j is q[j]·w_scale[j], and output
//   j is (x·q[j])·w_scale[j] + bias[j], the product over the integers q, then scaled.
// n_valid: (batch,) i32 or absent. When present, the rows are batch × chunk and row
//   b·chunk + t is computed only if t < n_valid[b]: padding rows of a partly filled prefill
//   chunk cost nothing, and are left unwritten (by the CPU kernel and matmul_cuda; the CUDA
//   backend's cuBLASLt path writes y = 0 there, or leaves y as it was when accumulating, and
//   nothing reads padding rows).
// Plan operands: inputs {x, w, bias?, n_valid?} (version 1), {x, w, bias?, n_valid?, w_scale?}
//   (version 2, which the compiler emits only for i8 weights); outputs {y}; int attrs {accumulate}.
// CPU scratch per worker: matmul_scratch_floats(k, rows, w's dtype).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kMatmulOp;    // version 1: float weights
extern const OpDef kMatmulOpV2;  // version 2: also i8 weights with their w_scale

struct MatmulArgs {
  const float* x;
  const void* w;
  DType w_dtype;
  const void* bias;  // may be null
  DType bias_dtype;
  float* y;
  int64_t rows, k, m;
  bool accumulate;
  const int32_t* n_valid = nullptr;  // (batch,) or null: every row is valid
  int64_t batch = 1;
  const float* w_scale = nullptr;  // (m,): i8 weights' row scales; null for float weights
};

constexpr int64_t kMatmulRowBlock = 6;  // weight rows converted and reused together
// The x86-64-v3 panels' accumulators for a pair of activation rows: 16 lanes of kMatmulRowBlock
// outputs each (kernels/cpu/matmul.cpp, matmul_panels).
constexpr int64_t kMatmulPanelPairFloats = 2 * 16 * kMatmulRowBlock;
// CPU scratch per worker: that many widened weight rows (weights not f32), then with several
// activation rows the panel, a pair of rows' accumulators per pair (rounded up).
inline uint64_t matmul_scratch_floats(int64_t k, int64_t rows, DType w) {
  return uint64_t(w == DType::F32 ? 0 : kMatmulRowBlock * k) +
         (rows > 1 ? uint64_t((rows + 1) / 2) * uint64_t(kMatmulPanelPairFloats) : 0);
}

void matmul_cpu(const MatmulArgs& a, ThreadPool& pool);

}  // namespace kiln
