// Fused ops: runs of ops that the CUDA decode kernels do in one launch, formed at compile time by
// the fusion pass (compiler/passes/fuse.h) for plans with a CUDA target, so the plan lists exactly
// the launches that run and the memory planner sees their true lifetimes. Each computes what its
// parts compute; the CPU kernels run the parts one after another (the same bits), the CUDA
// kernels keep the intermediates in registers.
//
// fused_matmul: matmul (matmul.h) with RMSNorm (rmsnorm.h) as its prologue when norm_w is
//   given, and SwiGLU (swiglu.h) as its epilogue when swiglu is 1.
//   x: (rows, k) f32 (the norm's input with a prologue); norm_w: (k,) f32|bf16|f16 or absent;
//   w: (m, k) f32|bf16|f16; bias: (m,) or absent; n_valid: (batch,) i32 or absent
//   → y: (rows, m) f32 as matmul gives it (bias, accumulate), or with swiglu
//   → y: (rows, m/2) f32 = silu(g)·u of [g | u] = the matmul's rows (no bias, no accumulate).
//   Plan operands: inputs {x, norm_w?, w, bias?, n_valid?}; outputs {y};
//   int attrs {accumulate, swiglu}; float attrs {eps}.
//   CPU: the normalized x (rows·k floats) and the gate|up rows (rows·m floats) go to the launch
//   buffer the CPU backend lends (CpuBindEnv, fused_matmul_cpu_buffer_floats).
// rope_kv_write: rope of every q and k head of a fused QKV buffer, in place, then the KV-cache
//   write of its k and v (rope.h, kv_write.h).
//   Plan operands: inputs {inv_freq, start_pos, qkv, n_valid}; outputs {qkv, k_cache, v_cache};
//   int attrs {n_heads, n_kv_heads, head_dim}; float attrs {attention_scaling}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/kv_write.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The ops (their definitions: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kFusedMatmulOp;
extern const OpDef kRopeKvWriteOp;

struct FusedMatmulArgs {
  MatmulArgs m;        // m.x: x; m.y: y without swiglu, null with it
  const void* norm_w;  // null: no prologue
  DType norm_dtype;
  float eps;
  float* h;  // the SwiGLU output (rows, m/2), or null: no epilogue
};

// The CUDA GEMV runs at most this many activation rows; more take the tiled GEMM, which has no
// prologue or epilogue.
constexpr int64_t kGemvMaxRows = 8;
// Whether the CUDA GEMV does the RMSNorm prologue for this matmul (16-bit weights).
inline bool gemv_norm_fusable(int64_t rows, DType w) {
  return rows >= 1 && rows <= kGemvMaxRows && (w == DType::BF16 || w == DType::F16);
}
// Whether the CUDA GEMV does the SwiGLU epilogue for this gate|up matmul (16-bit weights: the
// decode path that matters; the f32 variant at 8 rows spills).
inline bool gemv_swiglu_fusable(int64_t rows, DType w, bool has_bias, bool accumulate, int64_t m) {
  return rows >= 1 && rows <= kGemvMaxRows && !accumulate && !has_bias && m > 0 && m % 2 == 0 &&
         (w == DType::BF16 || w == DType::F16);
}

// Floats of the CPU buffer a fused_matmul needs while it runs: the normalized x, then the gate|up
// rows.
inline uint64_t fused_matmul_cpu_buffer_floats(const FusedMatmulArgs& a) {
  return uint64_t(a.norm_w ? a.m.rows * a.m.k : 0) + uint64_t(a.h ? a.m.rows * a.m.m : 0);
}
// `buffer`: fused_matmul_cpu_buffer_floats(a) floats.
void fused_matmul_cpu(const FusedMatmulArgs& a, float* buffer, ThreadPool& pool);

struct RopeKvWriteArgs {
  RopeArgs rope;
  KvWriteArgs kv;
};
void rope_kv_write_cpu(const RopeKvWriteArgs& a, ThreadPool& pool);

}  // namespace kiln
