// group_norm (kernels/group_norm.h): GroupNorm over channels-last images, SiLU optionally fused.
#include "kernels/group_norm.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 3));
  const auto& s = c.in(0)->shape;
  const int64_t ch = s.back();
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, s));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {ch}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "b", {c.in(1)->dtype}, {ch}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, s));
  if (!(c.fattr(0) >= 0)) return invalid_argument("eps is negative");
  if (c.iattr(0) <= 0 || ch % c.iattr(0) != 0 || (c.iattr(1) != 0 && c.iattr(1) != 1))
    return invalid_argument("group count does not divide the channels");
  return Status::ok();
}

GroupNormArgs args(const OpLaunch& l) {
  return {l.in_f32(0),       l.in_ptr(1),       l.in_ptr(2), l.in(1)->dtype,  l.out_f32(0), l.in(0)->shape[0],
          l.in(0)->shape[1], l.in(0)->shape[2], l.iattr(0),  l.iattr(1) != 0, l.fattr32(0)};
}

}  // namespace

const OpDef kGroupNormOp{"group_norm",
                         1,
                         3,
                         1,
                         2,
                         1,
                         {},
                         0,
                         false,
                         validate,
                         bind_cpu_kernel<args, group_norm_cpu>,
                         KILN_CUDA_BIND(bind_cuda_kernel<args, group_norm_cuda>),
                         nullptr};

}  // namespace kiln
