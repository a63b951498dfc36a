// The fused ops on the CPU: their parts one after another, through the backend's launch buffer, so
// a plan with fused ops gives the same bits as one without (kernels/fused.h).
#include "kernels/fused.h"

#include "kernels/rmsnorm.h"
#include "kernels/swiglu.h"

namespace kiln {

void fused_matmul_cpu(const FusedMatmulArgs& a, float* buffer, ThreadPool& pool) {
  MatmulArgs m = a.m;
  if (a.norm_w) {
    rmsnorm_cpu(RmsNormArgs{m.x, a.norm_w, a.norm_dtype, buffer, m.rows, m.k, a.eps, m.n_valid, m.batch}, pool);
    m.x = buffer;
    buffer += m.rows * m.k;
  }
  if (!a.h) {
    matmul_cpu(m, pool);
    return;
  }
  m.y = buffer;
  matmul_cpu(m, pool);
  swiglu_cpu(SwigluArgs{buffer, a.h, m.rows, m.m / 2, m.n_valid, m.batch}, pool);
}

void rope_kv_write_cpu(const RopeKvWriteArgs& a, ThreadPool& pool) {
  rope_cpu(a.rope, pool);
  kv_write_cpu(a.kv, pool);
}

}  // namespace kiln
