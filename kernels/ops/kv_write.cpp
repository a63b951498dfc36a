// kv_write (kernels/kv_write.h): this step's K and V into the cache.
#include "kernels/kv_write.h"
#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  return check_qkv_and_caches(c, c.in(0), &c.out(0), &c.out(1), c.in(1), c.in(2));
}

KvWriteArgs args(const OpLaunch& l) {
  const int64_t b = l.out(0).shape[0];
  return {l.in_f32(0), l.in_i32(1),           l.in_i32(2),       l.out_ptr(0), l.out_ptr(1), l.out(0).dtype,
          b,           l.in(0)->shape[0] / b, l.out(0).shape[1], l.iattr(0),   l.iattr(1),   l.iattr(2)};
}

}  // namespace

const OpDef kKvWriteOp{"kv_write",
                       1,
                       3,
                       2,
                       3,
                       0,
                       {{1, "start_pos"}, {2, "n_valid"}},
                       2,
                       false,
                       validate,
                       bind_cpu_kernel<args, kv_write_cpu>,
                       KILN_CUDA_BIND(bind_cuda_kernel<args, kv_write_cuda>),
                       nullptr};

}  // namespace kiln
