// image_mean (kernels/elementwise.h): each image's mean row over all its rows, the first `skip`
// images zero (a ControlNet with global_pool_conditions).
#include "kernels/elementwise.h"

#include <string>
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 3));
  const auto& s = c.in(0)->shape;
  if (!all_positive({s[0], s[1], s[2]})) return invalid_argument("image_mean shapes are invalid");
  if (c.iattr(0) < 0 || c.iattr(0) > s[0]) return invalid_argument("image_mean skip is not in [0, images]");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, s));
  return c.expect(&c.out(0), "y", {DType::F32}, s);
}

ImageMeanArgs args(const OpLaunch& l) {
  const auto& s = l.in(0)->shape;
  return {l.in_f32(0), l.out_f32(0), s[0], s[1], s[2], l.iattr(0)};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const ImageMeanArgs a = args(l);
  if (a.images > kCudaMaxGridY)
    return unsupported("CUDA image_mean supports up to " + std::to_string(kCudaMaxGridY) + " images");
  return bind_cuda_kernel<args, image_mean_cuda>(l, env);
}
#endif

}  // namespace

const OpDef kImageMeanOp{"image_mean",
                         1,
                         1,
                         1,
                         1,
                         0,
                         {},
                         0,
                         true,
                         validate,
                         bind_cpu_kernel<args, image_mean_cpu>,
                         KILN_CUDA_BIND(bind_cuda),
                         nullptr};

}  // namespace kiln
