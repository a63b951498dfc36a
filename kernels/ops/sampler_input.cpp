// sampler_input (kernels/sampler.h): the UNet's input for this step, from the latents.
#include "kernels/ops/op_cuda.h"
#include "kernels/sampler.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo* x = c.in(0);
  const TensorInfo* x_in = &c.out(0);
  KILN_RETURN_IF_ERROR(c.expect_rank(x, "x", 1));
  KILN_RETURN_IF_ERROR(c.expect_rank(x_in, "x_in", 1));
  const int64_t n = x->shape[0];
  if (x_in->shape[0] != n && x_in->shape[0] != cmul(2, n))
    return invalid_argument("the model batch must be 1 or 2 images");
  KILN_RETURN_IF_ERROR(c.expect(x, "x", {DType::F32}, {n}));
  KILN_RETURN_IF_ERROR(c.expect(x_in, "x_in", {DType::F32}, x_in->shape));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "coefs", 2));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "coefs", {DType::F32}, {c.in(1)->shape[0], kSamplerCoefs}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "step", {DType::I32}, {1}));
  return c.expect_state(c.in(2), "step");
}

SamplerInputArgs args(const OpLaunch& l) {
  const int64_t n = l.in(0)->shape[0];
  return {l.in_f32(0), l.in_f32(1), l.in(1)->shape[0], l.in_i32(2), l.out_f32(0), n, l.out(0).shape[0] / n};
}

}  // namespace

const OpDef kSamplerInputOp{"sampler_input",
                            1,
                            3,
                            1,
                            0,
                            0,
                            {{2, "step"}},
                            1,
                            false,
                            validate,
                            bind_cpu_kernel<args, sampler_input_cpu>,
                            KILN_CUDA_BIND(bind_cuda_kernel<args, sampler_input_cuda>),
                            nullptr};

}  // namespace kiln
