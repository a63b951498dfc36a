// Linear layer, weights in the torch nn.Linear layout.
// x: (rows, k) f32; w: (m, k) f32|bf16|f16, or i8 with w_scale, or i4 (m, k/2) with w_scale;
//   bias: (m,) f32|bf16|f16 or absent
//   → y: (rows, m) f32, y = x·wᵀ + bias, or y += x·wᵀ + bias when accumulate (a fused
//   residual add: y is then read and written).
// w_scale: (m,) f32, with i8 weights (version 2): weight row j is q[j]·w_scale[j], and output
//   j is (x·q[j])·w_scale[j] + bias[j], the product over the integers q, then scaled.
//   (m, k/group) f32 with i4 weights (kernels/dtype.h: two values a byte), group a multiple of 32:
//   weight (j, i) is the f32 product q[j][i]·w_scale[j][i/group], and output j is x·w[j] + bias[j]
//   over those dequantized values, as for f32 weights (the scales vary along k). Version 4 adds
//   w_zero, (m, k/group) i8 zero points of asymmetric i4 weights: weight (j, i) is then the f32
//   product float(nibble − w_zero[j][i/group])·w_scale[j][i/group] (version 2's nibble − 8 is q).
//   (m, ceil(k/group)) f32 with f8e4m3 weights (version 3, int attr group: a multiple of 16 up to k,
//   or k): weight (j, i) is the f32 product f8e4m3_value(w[j][i])·w_scale[j][i/group] (kernels/dtype.h;
//   the last group of a row may be short), and output j is x·w[j] + bias[j] over those values, as for
//   f32 weights. group = k is one scale a row; DeepSeek's 128×128 blocks are groups of 128 whose
//   scale repeats down each block's rows.
// n_valid: (batch,) i32 or absent. When present, the rows are batch × chunk and row
//   b·chunk + t is computed only if t < n_valid[b]: padding rows of a partly filled prefill
//   chunk cost nothing, and are left unwritten (by the CPU kernel and matmul_cuda; the CUDA
//   backend's cuBLASLt path writes y = 0 there, or leaves y as it was when accumulating, and
//   nothing reads padding rows).
// Plan operands: inputs {x, w, bias?, n_valid?} (version 1), {x, w, bias?, n_valid?, w_scale?}
//   (version 2, which the compiler emits only for i8 and i4 weights; version 3, only for f8e4m3),
//   {x, w, bias?, n_valid?, w_scale, w_zero} (version 4: asymmetric i4 weights);
//   outputs {y}; int attrs {accumulate} (versions 1, 2), {accumulate, group} (version 3).
// CPU scratch per worker: matmul_scratch_floats(k, rows, w's dtype).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kMatmulOp;    // version 1: float weights
extern const OpDef kMatmulOpV2;  // version 2: also i8 and i4 weights with their w_scale
extern const OpDef kMatmulOpV3;  // version 3: f8e4m3 weights with their w_scale in groups along k
extern const OpDef kMatmulOpV4;  // version 4: asymmetric i4 weights with their w_scale and w_zero

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
  const float* w_scale = nullptr;  // (m,): i8 weights' row scales; (m, k/group): i4's; (m, ceil(k/group)): f8e4m3's
  int64_t group = 0;  // i4 weights: values per scale (a multiple of kI4GroupMultiple); f8e4m3: (kF8GroupMultiple)
  const int8_t* w_zero = nullptr;  // (m, k/group): asymmetric i4 weights' zero points (version 4); null: 8
};

// f8e4m3 weights' groups are whole multiples of this many values, or a whole row (the CPU kernels
// widen 16 at a time).
constexpr int64_t kF8GroupMultiple = 16;
// Whether f8e4m3 rows of k values may take groups of `group`: a multiple of kF8GroupMultiple up to k, or k.
inline bool f8_group_fits(int64_t k, int64_t group) {
  return group >= 1 && group <= k && (group % kF8GroupMultiple == 0 || group == k);
}
// An f8e4m3 weight row's scales: ceil(k / group), the last group possibly short (k, group in [1, 2^40]).
inline int64_t f8_scales_per_row(int64_t k, int64_t group) { return (k + group - 1) / group; }

// i4 weights' groups are whole multiples of this many values (the CPU kernels widen 32 at a time).
constexpr int64_t kI4GroupMultiple = 32;
// Quantized (i8, i4, f8e4m3) weight rows hold at most this many values: the CUDA kernels index a row
// and its groups in 32 bits (kernels/cuda/quant.cuh). Real rows hold thousands.
constexpr int64_t kMaxQuantizedRow = int64_t(1) << 31;

constexpr int64_t kMatmulRowBlock = 6;  // weight rows converted and reused together
// The x86-64-v3 panels' accumulators for a pair of activation rows: 16 lanes of kMatmulRowBlock
// outputs each (kernels/cpu/matmul.cpp, matmul_panels).
constexpr int64_t kMatmulPanelPairFloats = 2 * 16 * kMatmulRowBlock;
// From this many activation rows (the plan's rows, not the valid ones) the CPU matmul runs as a GEMM
// of outer-product tiles (kernels/cpu/gemm_tiles.h): every output the chain of FMAs over k in order
// (gemm_ref), where fewer rows take dot products (dot_f32's lanes). The default prefill chunk (64, or
// 128 in CPU-only plans) is past it; a plan compiled with a shorter --chunk and batch takes the dot
// products. (Attention decides on the chunk alone: kernels/attention.h.)
constexpr int64_t kGemmMinRows = 16;
constexpr int64_t kGemmRowBlock = 32;  // activation rows per tile, at most (AVX-512: 2 × 16 lanes)
constexpr int64_t kGemmCols = 12;      // weight rows per tile, at most
// Over 2,048 of k, the GEMM runs k in blocks of 512, so that the 1 MiB of L2 a panel's block of k may
// take holds many rows (a whole 128-row chunk at k = 8,192) where whole rows of k fit only 32: each
// weight row is then read once per chunk, not once per 32 rows. Each output's chain of FMAs
// continues from one block to the next (the same bits). (At k = 2,048 blocks gave nothing: the
// panel already holds 128 rows.) The transposed panel itself holds all of k, at most 2^20 floats
// (4 MiB) of the worker's scratch.
constexpr int64_t kGemmKBlock = 512;
inline int64_t gemm_k_block(int64_t k) { return k <= 4 * kGemmKBlock ? k : kGemmKBlock; }
// The GEMM transposes up to this many valid activation rows at a time into the worker's scratch:
// as many whole row blocks as fit 2^18 floats (1 MiB, most of an L2) of k, or with k in blocks 2^18
// of a block and 2^20 of k; at least one, at most 512, and no more than the rows need.
inline int64_t gemm_panel_rows(int64_t k, int64_t rows) {
  const int64_t kb = gemm_k_block(k);
  const int64_t l2 = (int64_t(1) << 18) / (kb > 0 ? kb : 1);
  const int64_t all_k = kb < k ? (int64_t(1) << 20) / k : l2;
  const int64_t fit = (l2 < all_k ? l2 : all_k) / kGemmRowBlock * kGemmRowBlock;
  const int64_t cap = fit < kGemmRowBlock ? kGemmRowBlock : fit > 512 ? 512 : fit;
  const int64_t need = (rows + kGemmRowBlock - 1) / kGemmRowBlock * kGemmRowBlock;
  return need < cap ? need : cap;
}
// With blocks of k, the running sums of a group of tiles (gemm_group_tiles of them, every block of
// the panel's rows) wait in the worker's scratch between blocks: at most 2^16 floats.
constexpr int64_t kGemmPartialFloats = int64_t(1) << 16;
inline int64_t gemm_group_tiles(int64_t panel_rows) {
  const int64_t g = kGemmPartialFloats / (panel_rows * kGemmCols);
  return g < 1 ? 1 : g;
}
// CPU scratch per worker: that many widened weight rows (weights not f32), then with several
// activation rows the panel, a pair of rows' accumulators per pair (rounded up). The GEMM's: a tile's
// outputs (kGemmRowBlock × kGemmCols), the transposed panel, kGemmCols widened weight rows (a block
// of k each), then (k in blocks) the running sums.
inline uint64_t matmul_scratch_floats(int64_t k, int64_t rows, DType w) {
  const uint64_t dots = uint64_t(w == DType::F32 ? 0 : kMatmulRowBlock * k) +
                        (rows > 1 ? uint64_t((rows + 1) / 2) * uint64_t(kMatmulPanelPairFloats) : 0);
  if (rows < kGemmMinRows) return dots;
  const uint64_t gemm = uint64_t(kGemmRowBlock * kGemmCols) + uint64_t(gemm_panel_rows(k, rows) * k) +
                        uint64_t(kGemmCols * gemm_k_block(k)) +
                        (gemm_k_block(k) < k ? uint64_t(kGemmPartialFloats) : 0);
  return gemm > dots ? gemm : dots;
}

void matmul_cpu(const MatmulArgs& a, ThreadPool& pool);

}  // namespace kiln
