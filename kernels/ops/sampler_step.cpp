// sampler_step (kernels/sampler.h): one step of the compiled sampler, CFG included.
#include <cmath>

#include "kernels/ops/op_cuda.h"
#include "kernels/sampler.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo* x = &c.out(0);
  const TensorInfo* out = c.in(0);
  KILN_RETURN_IF_ERROR(c.expect_rank(x, "x", 1));
  KILN_RETURN_IF_ERROR(c.expect_rank(out, "out", 1));
  const int64_t n = x->shape[0];
  if (out->shape[0] != n && out->shape[0] != cmul(2, n))
    return invalid_argument("the model batch must be 1 or 2 images");
  KILN_RETURN_IF_ERROR(c.expect(x, "x", {DType::F32}, {n}));
  KILN_RETURN_IF_ERROR(c.expect(out, "out", {DType::F32}, out->shape));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "coefs", 2));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "coefs", {DType::F32}, {c.in(1)->shape[0], kSamplerCoefs}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "step", {DType::I32}, {1}));
  KILN_RETURN_IF_ERROR(c.expect_state(c.in(2), "step"));
  if (c.has_in(3)) KILN_RETURN_IF_ERROR(c.expect(c.in(3), "noise", {DType::F32}, {n}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "h", {DType::F32}, {n}));
  if (!std::isfinite(c.fattr32(0))) return invalid_argument("guidance is not finite");
  return Status::ok();
}

SamplerStepArgs args(const OpLaunch& l) {
  const int64_t n = l.out(0).shape[0];
  return {l.in_f32(0),  l.in_f32(1), l.in(1)->shape[0],     l.in_i32(2), l.in_f32(3), l.out_f32(0),
          l.out_f32(1), n,           l.in(0)->shape[0] / n, l.fattr32(0)};
}

}  // namespace

const OpDef kSamplerStepOp{"sampler_step",
                           1,
                           4,
                           2,
                           0,
                           1,
                           {{2, "step"}},
                           1,
                           false,
                           validate,
                           bind_cpu_kernel<args, sampler_step_cpu>,
                           KILN_CUDA_BIND(bind_cuda_kernel<args, sampler_step_cuda>),
                           nullptr,
                           updates_outputs};

}  // namespace kiln
