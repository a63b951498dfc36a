// timestep_embedding (kernels/timestep_embedding.h): diffusers' sinusoidal timestep embedding.
#include <cmath>

#include "kernels/ops/op_cuda.h"
#include "kernels/timestep_embedding.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "t", 1));
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "t", {DType::F32}, c.in(0)->shape));
  if (c.has_in(1)) {
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "step", {DType::I32}, {1}));
    KILN_RETURN_IF_ERROR(c.expect_state(c.in(1), "step"));
  }
  KILN_RETURN_IF_ERROR(c.expect_rank(&c.out(0), "emb", 2));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "emb", {DType::F32}, c.out(0).shape));
  if (c.iattr(0) != 0 && c.iattr(0) != 1) return invalid_argument("flip_sin_to_cos must be 0 or 1");
  if (!std::isfinite(c.fattr32(0)) || !(c.fattr(1) > 1) || !std::isfinite(c.fattr32(1)) ||
      float(c.out(0).shape[1] / 2) - c.fattr32(0) == 0.0f)
    return invalid_argument("timestep embedding attributes are invalid");
  return Status::ok();
}

TimestepEmbeddingArgs args(const OpLaunch& l) {
  return {l.in_f32(0),       l.in(0)->shape[0], l.in_i32(1),  l.out_f32(0), l.out(0).shape[0],
          l.out(0).shape[1], l.iattr(0) != 0,   l.fattr32(0), l.fattr32(1)};
}

}  // namespace

const OpDef kTimestepEmbeddingOp{"timestep_embedding",
                                 1,
                                 2,
                                 1,
                                 1,
                                 2,
                                 {{1, "step"}},
                                 1,
                                 false,
                                 validate,
                                 bind_cpu_kernel<args, timestep_embedding_cpu>,
                                 KILN_CUDA_BIND(bind_cuda_kernel<args, timestep_embedding_cuda>),
                                 nullptr};

}  // namespace kiln
