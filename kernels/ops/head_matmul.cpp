// head_matmul (kernels/head_matmul.h): one small matmul per head (MLA's absorbed projections).
#include "kernels/head_matmul.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 3));
  const int64_t rows = c.in(0)->shape[0], h = c.in(1)->shape[0], m = c.in(1)->shape[1], k = c.in(1)->shape[2];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, {rows, cmul(h, k)}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {h, m, k}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, cmul(h, m)}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(2, rows));
  if (c.in(1)->dtype != DType::F32) *scratch = uint64_t(k);
  return Status::ok();
}

HeadMatmulArgs args(const OpLaunch& l) {
  return {l.in_f32(0),       l.in_ptr(1),       l.in(1)->dtype,    l.out_f32(0), l.in(0)->shape[0],
          l.in(1)->shape[0], l.in(1)->shape[2], l.in(1)->shape[1], l.in_i32(2),  l.batch_of(2)};
}

}  // namespace

const OpDef kHeadMatmulOp{"head_matmul",
                          1,
                          3,
                          1,
                          0,
                          0,
                          {{2, "n_valid"}},
                          1,
                          false,
                          validate,
                          bind_cpu_kernel<args, head_matmul_cpu>,
                          KILN_CUDA_BIND(bind_cuda_kernel<args, head_matmul_cuda>),
                          nullptr};

}  // namespace kiln
