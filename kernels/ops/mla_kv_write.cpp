// mla_kv_write (kernels/mla.h): this step's latent KV and rotated key part into the MLA cache.
#include "kernels/mla.h"
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "ckv", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "kpe", 2));
  const int64_t rows = c.in(0)->shape[0], rank = c.in(0)->shape[1], rope = c.in(1)->shape[1];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "ckv", {DType::F32}, {rows, rank}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "kpe", {DType::F32}, {rows, rope}));
  int64_t b = 0;
  return check_latent_cache(c, &c.out(0), c.in(2), c.in(3), rows, cadd(rank, rope), &b);
}

MlaKvWriteArgs args(const OpLaunch& l) {
  const int64_t b = l.out(0).shape[0];
  return {l.in_f32(0), l.in_f32(1),           l.in_i32(2),       l.in_i32(3),       l.out_ptr(0),     l.out(0).dtype,
          b,           l.in(0)->shape[0] / b, l.out(0).shape[1], l.in(0)->shape[1], l.in(1)->shape[1]};
}

}  // namespace

const OpDef kMlaKvWriteOp{"mla_kv_write",
                          1,
                          4,
                          1,
                          0,
                          0,
                          {{2, "start_pos"}, {3, "n_valid"}},
                          2,
                          false,
                          validate,
                          bind_cpu_kernel<args, mla_kv_write_cpu>,
                          KILN_CUDA_BIND(bind_cuda_kernel<args, mla_kv_write_cuda>),
                          nullptr};

}  // namespace kiln
