// rmsnorm (kernels/rmsnorm.h): LLaMA's RMSNorm, in f32.
#include "kernels/rmsnorm.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  const auto& s = c.in(0)->shape;
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, s));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {s[1]}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, s));
  if (c.fattr(0) < 0) return invalid_argument("eps is negative");
  return Status::ok();
}

RmsNormArgs args(const OpLaunch& l) {
  return {l.in_f32(0), l.in_ptr(1), l.in(1)->dtype, l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1], l.fattr32(0)};
}

}  // namespace

const OpDef kRmsNormOp{"rmsnorm",
                       1,
                       2,
                       1,
                       0,
                       1,
                       {},
                       0,
                       false,
                       validate,
                       bind_cpu_kernel<args, rmsnorm_cpu>,
                       KILN_CUDA_BIND(bind_cuda_kernel<args, rmsnorm_cuda>),
                       nullptr};

}  // namespace kiln
