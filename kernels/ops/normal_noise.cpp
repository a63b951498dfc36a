// normal_noise (kernels/sampler.h): standard normal noise from the seed's Philox stream.
#include "kernels/ops/op_cuda.h"
#include "kernels/sampler.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "seed", {DType::I32}, {2}));
  KILN_RETURN_IF_ERROR(c.expect_state(c.in(0), "seed"));
  if (c.has_in(1)) {
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "step", {DType::I32}, {1}));
    KILN_RETURN_IF_ERROR(c.expect_state(c.in(1), "step"));
  }
  KILN_RETURN_IF_ERROR(c.expect_rank(&c.out(0), "z", 1));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "z", {DType::F32}, c.out(0).shape));
  if (c.iattr(0) < 0) return invalid_argument("noise stream is negative");
  return Status::ok();
}

NormalNoiseArgs args(const OpLaunch& l) {
  return {l.in_i32(0), l.in_i32(1), l.out_f32(0), l.out(0).shape[0], l.iattr(0)};
}

}  // namespace

const OpDef kNormalNoiseOp{"normal_noise",
                           1,
                           2,
                           1,
                           1,
                           0,
                           {{0, "seed"}, {1, "step"}},
                           2,
                           false,
                           validate,
                           bind_cpu_kernel<args, normal_noise_cpu>,
                           KILN_CUDA_BIND(bind_cuda_kernel<args, normal_noise_cuda>),
                           nullptr};

}  // namespace kiln
