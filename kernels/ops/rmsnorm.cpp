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
  return c.launch().inputs.size() > 2 ? c.expect_n_valid(2, s[0]) : Status::ok();
}

RmsNormArgs args(const OpLaunch& l) {
  const bool nv = l.launch().inputs.size() > 2;  // (version 2)
  return {l.in_f32(0),   l.in_ptr(1), l.in(1)->dtype, l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1],
          l.fattr32(0), nv ? l.in_i32(2) : nullptr, nv ? l.batch_of(2) : 1};
}

}  // namespace

// Version 2 adds the optional n_valid (padding rows skipped on the CPU); version 1 plans still load.
const OpDef kRmsNormOp{"rmsnorm",
                       2,
                       3,
                       1,
                       0,
                       1,
                       {{2, "n_valid"}},
                       1,
                       false,
                       validate,
                       bind_cpu_kernel<args, rmsnorm_cpu>,
                       KILN_CUDA_BIND(bind_cuda_kernel<args, rmsnorm_cuda>),
                       nullptr};

const OpDef kRmsNormOpV1 = older_version(kRmsNormOp, 1, 2, 0);

}  // namespace kiln
