// last_rows (kernels/embedding.h): each batch row's last valid position of the residual stream,
// the only row a prefill's LM head needs.
#include "kernels/embedding.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "n_valid", 1));
  const int64_t rows = c.in(0)->shape[0], dim = c.in(0)->shape[1], b = c.in(1)->shape[0];
  if (rows <= 0 || dim <= 0 || b <= 0 || rows % b != 0) return invalid_argument("last_rows shapes are invalid");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, {rows, dim}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(1, rows));
  return c.expect(&c.out(0), "y", {DType::F32}, {b, dim});
}

LastRowsArgs args(const OpLaunch& l) {
  const int64_t b = l.in(1)->shape[0];
  return {l.in_f32(0), l.in_i32(1), l.out_f32(0), b, l.in(0)->shape[0] / b, l.in(0)->shape[1]};
}

}  // namespace

const OpDef kLastRowsOp{"last_rows",
                        1,
                        2,
                        1,
                        0,
                        0,
                        {{1, "n_valid"}},
                        1,
                        false,
                        validate,
                        bind_cpu_kernel<args, last_rows_cpu>,
                        KILN_CUDA_BIND(bind_cuda_kernel<args, last_rows_cuda>),
                        nullptr};

}  // namespace kiln
