// activation (kernels/elementwise.h): SiLU, GELU, tanh GELU, QuickGELU, (version 2) relu² or (version 3) relu, in
// place or not. Version 1 plans (without relu²) and version 2 plans (without relu) still load.
#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

// The operands (every version).
Status validate_kind_free(const OpCheck& c, uint64_t*) {
  if (!c.in(0) || c.in(0)->shape.empty()) return invalid_argument("activation input is missing or has rank 0");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, c.in(0)->shape));
  return c.expect(&c.out(0), "y", {DType::F32}, c.in(0)->shape);
}

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(validate_kind_free(c, scratch));
  if (!activation_valid(c.iattr(0))) return invalid_argument("unknown activation kind");
  return Status::ok();
}

Status validate_v2(const OpCheck& c, uint64_t* scratch) {
  if (c.iattr(0) == int64_t(Activation::kRelu2)) return validate_kind_free(c, scratch);
  return validate(c, scratch);
}

Status validate_v3(const OpCheck& c, uint64_t* scratch) {
  if (c.iattr(0) == int64_t(Activation::kRelu)) return validate_kind_free(c, scratch);
  return validate_v2(c, scratch);
}

ActivationArgs args(const OpLaunch& l) { return {l.in_f32(0), l.out_f32(0), l.in(0)->numel(), Activation(l.iattr(0))}; }

}  // namespace

const OpDef kActivationOp{"activation",
                          3,
                          1,
                          1,
                          1,
                          0,
                          {},
                          0,
                          true,
                          validate_v3,
                          bind_cpu_kernel<args, activation_cpu>,
                          KILN_CUDA_BIND(bind_cuda_kernel<args, activation_cuda>),
                          nullptr};

const OpDef kActivationOpV2 = [] {
  OpDef d = kActivationOp;
  d.version = 2;
  d.validate = validate_v2;
  return d;
}();

const OpDef kActivationOpV1 = [] {
  OpDef d = kActivationOp;
  d.version = 1;
  d.validate = validate;
  return d;
}();

const OpDef& activation_op_for(Activation k) {
  return k == Activation::kRelu ? kActivationOp : k == Activation::kRelu2 ? kActivationOpV2 : kActivationOpV1;
}

}  // namespace kiln
