// moe_experts (kernels/moe.h): the routed experts' SwiGLU MLPs, weighted and summed per token.
#include <algorithm>

#include "kernels/moe.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "h", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "ids", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(4), "w_down", 2));
  const int64_t rows = c.in(0)->shape[0], dim = c.in(0)->shape[1], k = c.in(1)->shape[1], ffn = c.in(4)->shape[1];
  if (c.in(4)->shape[0] % dim != 0) return invalid_argument("w_down rows are not a multiple of dim");
  const int64_t e = c.in(4)->shape[0] / dim;
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "h", {DType::F32}, {rows, dim}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "ids", {DType::I32}, {rows, k}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "weights", {DType::F32}, {rows, k}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(3), "w_gu", kFloatTypes, {cmul(e, 2, ffn), dim}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(4), "w_down", {c.in(3)->dtype}, {cmul(e, dim), ffn}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(5, rows));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, dim}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "ws", {DType::F32}, {cmul(rows, k), ffn}));
  *scratch = moe_experts_scratch_floats(dim, ffn);
  return Status::ok();
}

MoeExpertsArgs args(const OpLaunch& l) {
  const int64_t dim = l.in(0)->shape[1];
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
          l.in(4)->shape[1],
          l.in(1)->shape[1],
          l.in_i32(5),
          l.batch_of(5)};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const MoeExpertsArgs a = args(l);
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

}  // namespace kiln
