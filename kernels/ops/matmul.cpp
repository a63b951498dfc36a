// matmul (kernels/matmul.h): a linear layer. On CUDA, prefill-sized GEMMs with 16-bit weights go
// to cuBLASLt when it is loaded (runtime/cublaslt.h), the rest to kiln's GEMV and tiled kernels.
// Version 2 appends the w_scale operand of i8 and i4 weights, version 3 the group attribute of f8e4m3
// ones, version 4 the w_zero operand of asymmetric i4 ones; on CUDA they take kiln's quantized GEMV and
// tiled kernels (never cuBLASLt).
#include "kernels/matmul.h"

#include "kernels/fused.h"
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"
#ifdef KILN_WITH_CUDA
#include "runtime/cublaslt.h"
#endif

namespace kiln {

namespace {

// Version 2's w_scale (input 4), or null: absent, or a version 1 launch.
const TensorInfo* w_scale(const OpLaunch& l) { return l.launch().inputs.size() > 4 ? l.in(4) : nullptr; }

// i4 weights w (m, k/2 bytes) and their scales (m, groups), groups whole multiples of 32 values;
// the number of groups a row, or the error.
Result<int64_t> expect_i4(const OpCheck& c, const TensorInfo* scale, int64_t m, int64_t k) {
  if (k % 2 != 0)
    return invalid_argument("i4 weights '" + c.in(1)->name + "' for an odd k (" + std::to_string(k) + ")");
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", {DType::I4}, {m, k / 2}));
  KILN_RETURN_IF_ERROR(c.expect_rank(scale, "w_scale", 2));
  const int64_t groups = scale->shape[1];
  if (groups < 1 || k % groups != 0 || (k / groups) % kI4GroupMultiple != 0)
    return invalid_argument("w_scale '" + scale->name + "' has " + std::to_string(groups) + " groups a row for k " +
                            std::to_string(k) + "; i4 groups must divide k into whole multiples of " +
                            std::to_string(kI4GroupMultiple) + " values");
  KILN_RETURN_IF_ERROR(c.expect(scale, "w_scale", {DType::F32}, {m, groups}));
  return groups;
}

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 2));
  const int64_t rows = c.in(0)->shape[0], k = c.in(0)->shape[1], m = c.in(1)->shape[0];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, {rows, k}));
  const TensorInfo* scale = w_scale(c);
  const DType wt = c.in(1)->dtype;
  if (dtype_is_quantized(wt)) KILN_RETURN_IF_ERROR(expect_in_weights(c, {1, 4, 5}));
  if (dtype_is_quantized(wt) && k > kMaxQuantizedRow)
    return invalid_argument(std::string(dtype_name(wt)) + " weights '" + c.in(1)->name + "' for k " +
                            std::to_string(k) + ", more than " + std::to_string(kMaxQuantizedRow));
  if (c.launch().int_attrs.size() > 1) {  // version 3: f8e4m3 weights, scales in groups of `group` along k
    if (wt != DType::F8E4M3)
      return invalid_argument("matmul version 3 takes f8e4m3 weights, not " + std::string(dtype_name(wt)) + " ('" +
                              c.in(1)->name + "')");
    if (!scale) return invalid_argument("f8e4m3 weights '" + c.in(1)->name + "' without their w_scale");
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", {DType::F8E4M3}, {m, k}));
    const int64_t group = c.iattr(1);
    if (!f8_group_fits(k, group))
      return invalid_argument("f8e4m3 weights '" + c.in(1)->name + "' in groups of " + std::to_string(group) +
                              " values for k " + std::to_string(k) + "; a group is a multiple of " +
                              std::to_string(kF8GroupMultiple) + " up to k, or k");
    KILN_RETURN_IF_ERROR(c.expect(scale, "w_scale", {DType::F32}, {m, f8_scales_per_row(k, group)}));
  } else if (c.launch().inputs.size() > 5) {  // version 4: asymmetric i4 weights with their zero points
    if (wt != DType::I4)
      return invalid_argument("matmul version 4 takes i4 weights, not " + std::string(dtype_name(wt)) + " ('" +
                              c.in(1)->name + "')");
    if (!scale || !c.has_in(5))
      return invalid_argument("i4 weights '" + c.in(1)->name + "' without their w_scale and w_zero");
    auto groups = expect_i4(c, scale, m, k);
    if (!groups.is_ok()) return groups.status();
    KILN_RETURN_IF_ERROR(c.expect(c.in(5), "w_zero", {DType::I8}, {m, groups.value()}));
  } else if (c.launch().inputs.size() > 4 && (wt == DType::I8 || wt == DType::I4)) {
    if (!scale)
      return invalid_argument(std::string(dtype_name(wt)) + " weights '" + c.in(1)->name + "' without their w_scale");
    if (wt == DType::I8) {
      KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", {DType::I8}, {m, k}));
      KILN_RETURN_IF_ERROR(c.expect(scale, "w_scale", {DType::F32}, {m}));
    } else {
      auto groups = expect_i4(c, scale, m, k);
      if (!groups.is_ok()) return groups.status();
    }
  } else {
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {m, k}));
    if (scale) return invalid_argument("w_scale '" + scale->name + "' with float weights");
  }
  if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "bias", kFloatTypes, {m}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, m}));
  if (c.iattr(0) != 0 && c.iattr(0) != 1) return invalid_argument("accumulate must be 0 or 1");
  KILN_RETURN_IF_ERROR(c.expect_n_valid(3, rows));
  *scratch = matmul_scratch_floats(k, rows, c.in(1)->dtype);
  return Status::ok();
}

MatmulArgs matmul_args(const OpLaunch& l) {
  return {l.in_f32(0),
          l.in_ptr(1),
          l.in(1)->dtype,
          l.in_ptr(2),
          l.has_in(2) ? l.in(2)->dtype : DType::F32,
          l.out_f32(0),
          l.in(0)->shape[0],
          l.in(0)->shape[1],
          l.in(1)->shape[0],
          l.iattr(0) != 0,
          l.in_i32(3),
          l.batch_of(3),
          w_scale(l) ? static_cast<const float*>(l.in_ptr(4)) : nullptr,
          l.in(1)->dtype == DType::I4       ? l.in(0)->shape[1] / w_scale(l)->shape[1]
          : l.in(1)->dtype == DType::F8E4M3 ? l.iattr(1)
                                            : 0,
          l.launch().inputs.size() > 5 ? static_cast<const int8_t*>(l.in_ptr(5)) : nullptr};
}

#ifdef KILN_WITH_CUDA
uint64_t align256(uint64_t v) { return (v + 255) / 256 * 256; }

// cuBLASLt's packed x, then its workspace, at the start of the launch scratch (16-bit weights only).
uint64_t cuda_scratch_bytes(const OpLaunch& l) {
  const MatmulArgs a = matmul_args(l);
  return library_gemm_eligible(a) ? align256(library_gemm_x_bytes(a)) + kCublasLtWorkspaceBytes : 0;
}

Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const MatmulArgs a = matmul_args(l);
  CublasLt* lt = env.cublaslt && library_gemm_eligible(a) ? env.cublaslt() : nullptr;
  if (lt) {
    void* workspace = static_cast<uint8_t*>(env.scratch) + align256(library_gemm_x_bytes(a));
    auto gemm = lt->bind(a, env.scratch, workspace, kCublasLtWorkspaceBytes);
    if (gemm.is_ok()) {
      if (env.library_gemms) ++*env.library_gemms;
      return CudaLaunch([g = gemm.take()](void* s) { return g(static_cast<cudaStream_t>(s)); });
    }
    if (gemm.status().code() != StatusCode::kUnsupported) return gemm.status();
    if (env.library_refused) ++*env.library_refused;  // no algorithm for this shape: kiln's kernel
  }
  if (env.pdl && a.rows <= kGemvMaxRows && !dtype_is_quantized(a.w_dtype) && env.pdl_gemvs) ++*env.pdl_gemvs;
  return CudaLaunch([a, pdl = env.pdl](void* s) -> Status {
    matmul_cuda(a, static_cast<cudaStream_t>(s), pdl);
    return Status::ok();
  });
}
#endif

}  // namespace

const OpDef kMatmulOp{"matmul",
                      1,
                      4,
                      1,
                      1,
                      0,
                      {{3, "n_valid"}},
                      1,
                      false,
                      validate,
                      bind_cpu_kernel<matmul_args, matmul_cpu>,
                      KILN_CUDA_BIND(bind_cuda),
                      KILN_CUDA_BIND(cuda_scratch_bytes),
                      accumulates};

const OpDef kMatmulOpV2 = later_version(kMatmulOp, 2, 5, kMatmulOp.n_int_attrs);
const OpDef kMatmulOpV3 = later_version(kMatmulOpV2, 3, 5, 2);
const OpDef kMatmulOpV4 = later_version(kMatmulOpV2, 4, 6, kMatmulOpV2.n_int_attrs);

}  // namespace kiln
