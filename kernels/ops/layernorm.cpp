// layernorm (kernels/layernorm.h): LayerNorm over the last dimension, in f32; version 2 without a bias
// too (version 1 plans, which always have one, still load).
#include "kernels/layernorm.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  const auto& s = c.in(0)->shape;
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, s));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {s[1]}));
  if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "b", {c.in(1)->dtype}, {s[1]}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, s));
  if (!(c.fattr(0) >= 0)) return invalid_argument("eps is negative");
  return Status::ok();
}

Status validate_v1(const OpCheck& c, uint64_t* scratch) {
  if (!c.has_in(2)) return invalid_argument("missing operand b (layernorm version 1 has a bias)");
  return validate(c, scratch);
}

LayerNormArgs args(const OpLaunch& l) {
  return {l.in_f32(0),  l.in_ptr(1),       l.in_ptr(2),       l.in(1)->dtype,
          l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1], l.fattr32(0)};
}

}  // namespace

const OpDef kLayerNormOp{"layernorm",
                         2,
                         3,
                         1,
                         0,
                         1,
                         {},
                         0,
                         false,
                         validate,
                         bind_cpu_kernel<args, layernorm_cpu>,
                         KILN_CUDA_BIND(bind_cuda_kernel<args, layernorm_cuda>),
                         nullptr};

const OpDef kLayerNormOpV1 = [] {
  OpDef d = kLayerNormOp;
  d.version = 1;
  d.validate = validate_v1;
  return d;
}();

}  // namespace kiln
