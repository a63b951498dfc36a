// clamp (kernels/elementwise.h): y = min(max(x, lo), hi), in place or not.
#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, c.in(0)->shape));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, c.in(0)->shape));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(1, c.in(0)->shape[0]));
  const float lo = c.fattr32(0), hi = c.fattr32(1);
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo <= hi))
    return invalid_argument("clamp bounds must be finite, lo <= hi");
  return Status::ok();
}

ClampArgs args(const OpLaunch& l) {
  return {l.in_f32(0),  l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1],
          l.fattr32(0), l.fattr32(1), l.in_i32(1),       l.batch_of(1)};
}

}  // namespace

const OpDef kClampOp{"clamp",
                     1,
                     /*inputs*/ 2,
                     /*outputs*/ 1,
                     /*int attrs*/ 0,
                     /*float attrs*/ 2,
                     /*state operands*/ {{1, "n_valid"}},
                     1,
                     /*in place*/ true,
                     validate,
                     bind_cpu_kernel<args, clamp_cpu>,
                     KILN_CUDA_BIND(bind_cuda_kernel<args, clamp_cuda>),
                     nullptr};

}  // namespace kiln
