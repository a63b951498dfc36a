// moe_experts (kernels/moe.h): the routed experts' SwiGLU MLPs, weighted and summed per token.
#include <algorithm>
#include <cmath>
#include <tuple>

#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "h", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "ids", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(3), "w_gu", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(4), "w_down", 2));
  const int64_t rows = c.in(0)->shape[0], dim = c.in(0)->shape[1], k = c.in(1)->shape[1];
  // (w_down's second dimension counts bytes of i4 weights: two values each)
  const int64_t ffn = cmul(c.in(4)->shape[1], c.in(4)->dtype == DType::I4 ? 2 : 1);
  if (c.in(4)->shape[0] % dim != 0) return invalid_argument("w_down rows are not a multiple of dim");
  const int64_t e = c.in(4)->shape[0] / dim;
  const size_t n_in = c.launch().inputs.size();
  // Version 4 has every input of versions 2-3, absent for float weights (then it checks as version 1).
  const bool v4 = n_in > 10, asym = v4 ? c.has_in(8) || c.has_in(9) : n_in > 8;
  const bool quant = v4 ? asym || c.has_in(6) || c.has_in(7) : n_in > 6;
  if (quant) KILN_RETURN_IF_ERROR(expect_in_weights(c, {3, 4, 6, 7, 8, 9}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "h", {DType::F32}, {rows, dim}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "ids", {DType::I32}, {rows, k}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "weights", {DType::F32}, {rows, k}));
  if (asym) {  // version 3: asymmetric i4 weights with their zero points
    for (int i : {3, 4})
      if (c.in(i)->dtype != DType::I4)
        return invalid_argument(std::string(v4 ? "moe_experts version 4 with zero points" : "moe_experts version 3") +
                                " takes i4 weights, not " + std::string(dtype_name(c.in(i)->dtype)) + " ('" +
                                c.in(i)->name + "')");
    KILN_RETURN_IF_ERROR(expect_quantized(c, 3, "w_gu", 6, "gu_scale", DType::I4, cmul(e, 2, ffn), dim, c.iattr(0)));
    KILN_RETURN_IF_ERROR(expect_quantized(c, 4, "w_down", 7, "down_scale", DType::I4, cmul(e, dim), ffn, c.iattr(1)));
    for (const auto& [zi, role, si] : {std::tuple<int, const char*, int>{8, "gu_zero", 6}, {9, "down_zero", 7}}) {
      if (!c.has_in(zi))
        return invalid_argument("asymmetric i4 expert weights '" + c.in(3)->name + "' without their " + role);
      KILN_RETURN_IF_ERROR(c.expect(c.in(zi), role, {DType::I8}, c.in(si)->shape));
    }
  } else if (quant) {  // version 2: quantized weights
    const DType t = c.in(3)->dtype;
    if (t != DType::I8 && t != DType::I4 && t != DType::F8E4M3)
      return invalid_argument(std::string(v4 ? "moe_experts version 4 with scales" : "moe_experts version 2") +
                              " takes i8, i4 or f8e4m3 weights, not " + std::string(dtype_name(t)) + " ('" +
                              c.in(3)->name + "')");
    if (c.in(4)->dtype != t) return invalid_argument("w_down's dtype is not w_gu's");
    KILN_RETURN_IF_ERROR(expect_quantized(c, 3, "w_gu", 6, "gu_scale", t, cmul(e, 2, ffn), dim, c.iattr(0)));
    KILN_RETURN_IF_ERROR(expect_quantized(c, 4, "w_down", 7, "down_scale", t, cmul(e, dim), ffn, c.iattr(1)));
  } else {
    KILN_RETURN_IF_ERROR(c.expect(c.in(3), "w_gu", kFloatTypes, {cmul(e, 2, ffn), dim}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(4), "w_down", {c.in(3)->dtype}, {cmul(e, dim), ffn}));
  }
  if (k < 1 || k > e || k > kMaxMoeTopK)
    return invalid_argument("top_k " + std::to_string(k) + " is not in [1, " +
                            std::to_string(std::min(e, kMaxMoeTopK)) + "] (the experts, at most " +
                            std::to_string(kMaxMoeTopK) + ")");
  KILN_RETURN_IF_ERROR(c.expect_n_valid(5, rows));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, dim}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "ws", {DType::F32}, {cmul(rows, k), ffn}));
  if (v4) {  // the biases and the activation
    if (c.has_in(10)) KILN_RETURN_IF_ERROR(c.expect(c.in(10), "gu_bias", {DType::F32}, {cmul(e, 2, ffn)}));
    if (c.has_in(11)) KILN_RETURN_IF_ERROR(c.expect(c.in(11), "down_bias", {DType::F32}, {cmul(e, dim)}));
    const int64_t act = c.iattr(2);
    const float alpha = c.fattr32(0), limit = c.fattr32(1);
    if (act != int64_t(MoeActivation::kSwiglu) && act != int64_t(MoeActivation::kClampedSwiglu))
      return invalid_argument("expert activation " + std::to_string(act) + " is not 0 (SwiGLU) or 1 (clamped SwiGLU)");
    if (act == int64_t(MoeActivation::kClampedSwiglu) && !(std::isfinite(alpha) && std::isfinite(limit) && limit > 0))
      return invalid_argument("the clamped SwiGLU's alpha is not finite or its limit not positive and finite");
    if (c.launch().int_attrs.size() > 3 && c.iattr(3) != 0 && c.iattr(3) != 1)  // (version 5)
      return invalid_argument("accumulate " + std::to_string(c.iattr(3)) + " is not 0 (y = the sum) or 1 (y +=)");
  }
  *scratch = moe_experts_scratch_floats(dim, ffn);
  return Status::ok();
}

MoeExpertsArgs args(const OpLaunch& l) {
  const int64_t dim = l.in(0)->shape[1];
  const size_t n_in = l.launch().inputs.size();
  const bool v4 = n_in > 10, v2 = n_in > 6 && l.has_in(6), v3 = n_in > 8 && l.has_in(8);
  return {l.in_f32(0),
          l.in_i32(1),
          l.in_f32(2),
          l.in_ptr(3),
          l.in_ptr(4),
          l.in(3)->dtype,
          l.out_f32(0),
          l.out_f32(1),
          l.in(0)->shape[0],
          dim,
          l.in(4)->shape[0] / dim,
          l.in(4)->shape[1] * (l.in(4)->dtype == DType::I4 ? 2 : 1),
          l.in(1)->shape[1],
          l.in_i32(5),
          l.batch_of(5),
          v2 ? l.in_f32(6) : nullptr,
          v2 ? l.in_f32(7) : nullptr,
          v2 ? l.iattr(0) : 0,
          v2 ? l.iattr(1) : 0,
          v3 ? static_cast<const int8_t*>(l.in_ptr(8)) : nullptr,
          v3 ? static_cast<const int8_t*>(l.in_ptr(9)) : nullptr,
          v4 ? static_cast<const float*>(l.in_ptr(10)) : nullptr,
          v4 ? static_cast<const float*>(l.in_ptr(11)) : nullptr,
          v4 ? MoeActivation(l.iattr(2)) : MoeActivation::kSwiglu,
          v4 ? l.fattr32(0) : 0.0f,
          v4 ? l.fattr32(1) : 0.0f,
          l.launch().int_attrs.size() > 3 ? l.iattr(3) == 1 : true};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const MoeExpertsArgs a = args(l);  // (versions 2-3: quantized, decoded as the quantized GEMV decodes them)
  if (a.rows * a.top_k > kCudaMaxGridY)
    return unsupported("CUDA MoE experts support up to " + std::to_string(kCudaMaxGridY) +
                       " token-expert pairs per launch; compile with a smaller --batch or --chunk");
  return bind_cuda_kernel<args, moe_experts_cuda>(l, env);
}
#endif

}  // namespace

const OpDef kMoeExpertsOp{"moe_experts",
                          1,
                          6,
                          2,
                          0,
                          0,
                          {{5, "n_valid"}},
                          1,
                          false,
                          validate,
                          bind_cpu_kernel<args, moe_experts_cpu>,
                          KILN_CUDA_BIND(bind_cuda),
                          nullptr,
                          accumulates_first};  // y += each expert's output

const OpDef kMoeExpertsOpV2 = later_version(kMoeExpertsOp, 2, 8, 2);
const OpDef kMoeExpertsOpV3 = later_version(kMoeExpertsOpV2, 3, 10, 2);
const OpDef kMoeExpertsOpV4 = [] {
  OpDef d = later_version(kMoeExpertsOpV3, 4, 12, 3);
  d.n_float_attrs = 2;
  return d;
}();
const OpDef kMoeExpertsOpV5 = [] {
  OpDef d = later_version(kMoeExpertsOpV4, 5, 12, 4);
  d.reads_output = [](const OpLaunch& l, int i) { return i == 0 && l.iattr(3) == 1; };  // (accumulate)
  return d;
}();

}  // namespace kiln
