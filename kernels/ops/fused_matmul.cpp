// fused_matmul (kernels/fused.h): matmul with the RMSNorm prologue and/or the SwiGLU epilogue
// that the CUDA decode GEMVs provide (formed by compiler/passes/fuse.h).
#include <memory>
#include <new>
#include <vector>

#include "kernels/fused.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(2), "w", 2));
  const int64_t rows = c.in(0)->shape[0], k = c.in(0)->shape[1], m = c.in(2)->shape[0];
  const bool swiglu = c.iattr(1) == 1;
  if (c.iattr(0) != 0 && c.iattr(0) != 1) return invalid_argument("accumulate must be 0 or 1");
  if (c.iattr(1) != 0 && !swiglu) return invalid_argument("swiglu must be 0 or 1");
  if (!c.has_in(1) && !swiglu) return invalid_argument("a fused matmul with neither a norm nor SwiGLU");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, {rows, k}));
  if (c.has_in(1)) KILN_RETURN_IF_ERROR(c.expect(c.in(1), "norm_w", kFloatTypes, {k}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "w", kFloatTypes, {m, k}));
  if (c.has_in(3)) KILN_RETURN_IF_ERROR(c.expect(c.in(3), "bias", kFloatTypes, {m}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(4, rows));
  if (swiglu && (m % 2 != 0 || c.has_in(3) || c.iattr(0) != 0))
    return invalid_argument("a SwiGLU epilogue needs an even width, no bias and no accumulation");
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, swiglu ? m / 2 : m}));
  if (!(c.fattr(0) >= 0)) return invalid_argument("eps is negative");
  *scratch = matmul_scratch_floats(k, rows, c.in(2)->dtype);
  return Status::ok();
}

FusedMatmulArgs args(const OpLaunch& l) {
  const bool swiglu = l.iattr(1) != 0;
  const MatmulArgs m{l.in_f32(0),
                     l.in_ptr(2),
                     l.in(2)->dtype,
                     l.in_ptr(3),
                     l.has_in(3) ? l.in(3)->dtype : DType::F32,
                     swiglu ? nullptr : l.out_f32(0),
                     l.in(0)->shape[0],
                     l.in(0)->shape[1],
                     l.in(2)->shape[0],
                     l.iattr(0) != 0,
                     l.in_i32(4),
                     l.batch_of(4)};
  return {m, l.in_ptr(1), l.has_in(1) ? l.in(1)->dtype : DType::F32, l.fattr32(0), swiglu ? l.out_f32(0) : nullptr};
}

// The parts run one after another on the CPU, through the launch buffer the backend lends.
Result<CpuLaunch> bind_cpu(const OpLaunch& l, const CpuBindEnv& env) {
  const FusedMatmulArgs a = args(l);
  std::vector<float, CacheLineAllocator<float>>* buffer = env.launch_buffer;
  const uint64_t need = fused_matmul_cpu_buffer_floats(a);
  if (need > 0 && !buffer) return Status(StatusCode::kInternal, "fused_matmul bound without a launch buffer");
  try {
    if (need > 0 && buffer->size() < need) buffer->resize(size_t(need));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory for a fused matmul's buffer");
  }
  return CpuLaunch([a, buffer](ThreadPool& pool) { fused_matmul_cpu(a, buffer ? buffer->data() : nullptr, pool); });
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const FusedMatmulArgs a = args(l);
  if (a.norm_w && !gemv_norm_fusable(a.m.rows, a.m.w_dtype))
    return unsupported("CUDA fused_matmul has an RMSNorm prologue only in GEMVs of up to " +
                       std::to_string(kGemvMaxRows) + " rows of bf16/f16 weights");
  if (a.h && !gemv_swiglu_fusable(a.m.rows, a.m.w_dtype, a.m.bias != nullptr, a.m.accumulate, a.m.m))
    return unsupported("CUDA fused_matmul has a SwiGLU epilogue only in GEMVs of up to " +
                       std::to_string(kGemvMaxRows) + " rows of bf16/f16 weights, without bias or accumulation");
  if (env.pdl && env.pdl_gemvs) ++*env.pdl_gemvs;
  return CudaLaunch([a, pdl = env.pdl](void* stream) -> Status {
    const auto s = static_cast<cudaStream_t>(stream);
    const GemvNorm norm{a.norm_w, a.norm_dtype, a.eps};
    if (a.h) matmul_swiglu_cuda(a.m, a.h, s, a.norm_w ? &norm : nullptr, pdl);
    else matmul_norm_cuda(a.m, norm, s, pdl);
    return Status::ok();
  });
}
#endif

}  // namespace

const OpDef kFusedMatmulOp{"fused_matmul",   1,          5,     1,        2,        1,
                           {{4, "n_valid"}}, 1,          false, validate, bind_cpu, KILN_CUDA_BIND(bind_cuda),
                           nullptr,          accumulates};

}  // namespace kiln
