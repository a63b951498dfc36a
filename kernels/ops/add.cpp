// add (kernels/elementwise.h): y = a + scale · b, b broadcast over the rows, each row's b times
// sigmoid(gate[r]) too when gated (version 2); in place or not.
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
  if (c.launch().inputs.size() > 2 && c.has_in(2)) {
    if (!c.has_in(0)) return invalid_argument("add with a gate needs its operand a");
    KILN_RETURN_IF_ERROR(c.expect(c.in(2), "gate", {DType::F32}, {y.numel() / y.shape.back(), 1}));
  }
  return Status::ok();
}

AddArgs args(const OpLaunch& l) {
  const int64_t cols = l.out(0).shape.back();
  const float* gate = l.launch().inputs.size() > 2 ? l.in_f32(2) : nullptr;
  return {
      l.in_f32(0),  l.in_ptr(1), l.in(1)->dtype, l.out_f32(0), l.out(0).numel() / cols, cols, l.in(1)->numel() / cols,
      l.fattr32(0), gate};
}

}  // namespace

// Version 2 added the gate (Qwen2-MoE's shared expert); version 1 plans still load.
const OpDef kAddOp{"add",
                   2,
                   3,
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

const OpDef kAddOpV1 = [] {
  OpDef d = kAddOp;
  d.version = 1;
  d.n_inputs = 2;
  return d;
}();

}  // namespace kiln
