// activation (kernels/elementwise.h): SiLU, GELU, tanh GELU or QuickGELU, in place or not.
#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  if (!c.in(0) || c.in(0)->shape.empty()) return invalid_argument("activation input is missing or has rank 0");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, c.in(0)->shape));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, c.in(0)->shape));
  if (!activation_valid(c.iattr(0))) return invalid_argument("unknown activation kind");
  return Status::ok();
}

ActivationArgs args(const OpLaunch& l) { return {l.in_f32(0), l.out_f32(0), l.in(0)->numel(), Activation(l.iattr(0))}; }

}  // namespace

const OpDef kActivationOp{"activation",
                          1,
                          1,
                          1,
                          1,
                          0,
                          {},
                          0,
                          true,
                          validate,
                          bind_cpu_kernel<args, activation_cpu>,
                          KILN_CUDA_BIND(bind_cuda_kernel<args, activation_cuda>),
                          nullptr};

}  // namespace kiln
