// activation (kernels/elementwise.h): SiLU, GELU, tanh GELU, QuickGELU, (version 2) relu², (version 3) relu or
// (version 4, with its float attributes) xIELU, in place or not. Version 1 plans (without relu²), version 2 plans
// (without relu) and version 3 plans (without xIELU) still load.

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

// Version 4: xIELU's parameters (finite in f32, as the loader holds every float attribute); every other kind's 0.
Status validate_v4(const OpCheck& c, uint64_t* scratch) {
  if (c.iattr(0) < 0 || c.iattr(0) > int64_t(Activation::kXielu)) return invalid_argument("unknown activation kind");
  if (c.iattr(0) != int64_t(Activation::kXielu)) {
    for (int i = 0; i < 4; ++i)
      if (c.fattr(i) != 0)
        return invalid_argument("activation's float attributes must be 0 for a kind other than xIELU");
    return validate_v3(c, scratch);
  }
  return validate_kind_free(c, scratch);
}

ActivationArgs args(const OpLaunch& l) { return {l.in_f32(0), l.out_f32(0), l.in(0)->numel(), Activation(l.iattr(0))}; }

ActivationArgs args_v4(const OpLaunch& l) {
  ActivationArgs a = args(l);
  a.xielu = {l.fattr32(0), l.fattr32(1), l.fattr32(2), l.fattr32(3)};
  return a;
}

}  // namespace

const OpDef kActivationOp{"activation",
                          4,
                          1,
                          1,
                          1,
                          4,
                          {},
                          0,
                          true,
                          validate_v4,
                          bind_cpu_kernel<args_v4, activation_cpu>,
                          KILN_CUDA_BIND(bind_cuda_kernel<args_v4, activation_cuda>),
                          nullptr};

const OpDef kActivationOpV3{"activation",
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
  OpDef d = kActivationOpV3;
  d.version = 2;
  d.validate = validate_v2;
  return d;
}();

const OpDef kActivationOpV1 = [] {
  OpDef d = kActivationOpV3;
  d.version = 1;
  d.validate = validate;
  return d;
}();

const OpDef& activation_op_for(Activation k) {
  return k == Activation::kXielu   ? kActivationOp
         : k == Activation::kRelu  ? kActivationOpV3
         : k == Activation::kRelu2 ? kActivationOpV2
                                   : kActivationOpV1;
}

}  // namespace kiln
