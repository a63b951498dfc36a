// concat (kernels/elementwise.h): channel concatenation (the UNet's skip connections).
#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "a", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "b", 2));
  const int64_t rows = c.in(0)->shape[0], ca = c.in(0)->shape[1], cb = c.in(1)->shape[1];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "a", {DType::F32}, {rows, ca}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "b", {DType::F32}, {rows, cb}));
  return c.expect(&c.out(0), "y", {DType::F32}, {rows, cadd(ca, cb)});
}

ConcatArgs args(const OpLaunch& l) {
  return {l.in_f32(0), l.in_f32(1), l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1], l.in(1)->shape[1]};
}

}  // namespace

const OpDef kConcatOp{"concat",
                      1,
                      2,
                      1,
                      0,
                      0,
                      {},
                      0,
                      false,
                      validate,
                      bind_cpu_kernel<args, concat_cpu>,
                      KILN_CUDA_BIND(bind_cuda_kernel<args, concat_cuda>),
                      nullptr};

}  // namespace kiln
