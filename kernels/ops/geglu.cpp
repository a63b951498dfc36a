// geglu (kernels/elementwise.h): diffusers' GEGLU on a fused projection.
#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  const auto& s = c.in(0)->shape;
  if (s[1] % 2 != 0) return invalid_argument("GEGLU input width is odd");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, s));
  return c.expect(&c.out(0), "y", {DType::F32}, {s[0], s[1] / 2});
}

GegluArgs args(const OpLaunch& l) { return {l.in_f32(0), l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1] / 2}; }

}  // namespace

const OpDef kGegluOp{"geglu",
                     1,
                     1,
                     1,
                     0,
                     0,
                     {},
                     0,
                     false,
                     validate,
                     bind_cpu_kernel<args, geglu_cpu>,
                     KILN_CUDA_BIND(bind_cuda_kernel<args, geglu_cuda>),
                     nullptr};

}  // namespace kiln
