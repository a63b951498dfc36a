// geglu (kernels/elementwise.h): GEGLU on a fused projection, exact or tanh GELU (version 2's
// attribute; version 1: exact, diffusers').
#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  const auto& s = c.in(0)->shape;
  if (s[1] % 2 != 0) return invalid_argument("GEGLU input width is odd");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, s));
  if (!c.launch().int_attrs.empty() && c.iattr(0) != int64_t(Activation::kGelu) &&
      c.iattr(0) != int64_t(Activation::kGeluTanh))
    return invalid_argument("GEGLU activation must be exact or tanh GELU");
  return c.expect(&c.out(0), "y", {DType::F32}, {s[0], s[1] / 2});
}

GegluArgs args(const OpLaunch& l) {
  const Activation kind = l.launch().int_attrs.empty() ? Activation::kGelu : Activation(l.iattr(0));
  return {l.in_f32(0), l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1] / 2, kind};
}

}  // namespace

// Version 2 added the activation attribute; version 1 plans (exact GELU) still load.
const OpDef kGegluOp{"geglu",
                     2,
                     1,
                     1,
                     1,
                     0,
                     {},
                     0,
                     false,
                     validate,
                     bind_cpu_kernel<args, geglu_cpu>,
                     KILN_CUDA_BIND(bind_cuda_kernel<args, geglu_cuda>),
                     nullptr};

const OpDef kGegluOpV1 = [] {
  OpDef d = kGegluOp;
  d.version = 1;
  d.n_int_attrs = 0;
  return d;
}();

}  // namespace kiln
