// Linear layer, weights in the torch nn.Linear layout.
// x: (rows, k) f32; w: (m, k) f32|bf16|f16; bias: (m,) f32|bf16|f16 or absent
//   → y: (rows, m) f32, y = x·wᵀ + bias, or y += x·wᵀ + bias when accumulate (a fused
//   residual add: y is then read and written).
// n_valid: (batch,) i32 or absent. When present, the rows are batch × chunk and row
//   b·chunk + t is computed only if t < n_valid[b]: padding rows of a partly filled prefill
//   chunk cost nothing, and are left unwritten (by the CPU kernel and matmul_cuda; the CUDA
//   backend's cuBLASLt path writes y = 0 there, or leaves y as it was when accumulating, and
//   nothing reads padding rows).
// Plan operands: inputs {x, w, bias?, n_valid?}; outputs {y}; int attrs {accumulate}.
// CPU scratch per worker: matmul_scratch_floats(k, rows, w's dtype).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kMatmulOp;

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
