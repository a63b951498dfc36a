// add (kernels/elementwise.h): y = a + scale · b, b broadcast over the rows; in place or not.
#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo& y = c.out(0);
  if (y.shape.empty()) return invalid_argument("add output has rank 0");
  KILN_RETURN_IF_ERROR(c.expect(&y, "y", {DType::F32}, y.shape));
  const TensorInfo* b = c.in(1);
  if (!b || b->shape.empty() || b->shape.back() != y.shape.back() || b->numel() == 0 || y.numel() % b->numel() != 0)
    return invalid_argument("add operand b does not broadcast over the output rows");
  KILN_RETURN_IF_ERROR(c.expect(b, "b", kFloatTypes, b->shape));
  if (c.has_in(0)) KILN_RETURN_IF_ERROR(c.expect(c.in(0), "a", {DType::F32}, y.shape));
  if (!std::isfinite(c.fattr32(0))) return invalid_argument("scale is not finite");
  return Status::ok();
}

AddArgs args(const OpLaunch& l) {
  const int64_t cols = l.out(0).shape.back();
  return {
      l.in_f32(0), l.in_ptr(1), l.in(1)->dtype, l.out_f32(0), l.out(0).numel() / cols, cols, l.in(1)->numel() / cols,
      l.fattr32(0)};
}

}  // namespace

const OpDef kAddOp{"add",
                   1,
                   2,
                   1,
                   0,
                   1,
                   {},
                   0,
                   true,
                   validate,
                   bind_cpu_kernel<args, add_cpu>,
                   KILN_CUDA_BIND(bind_cuda_kernel<args, add_cuda>),
                   nullptr};

}  // namespace kiln
