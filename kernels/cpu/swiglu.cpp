#include "kernels/swiglu.h"

#include "kernels/cpu/rows.h"
#include "kernels/cpu/simd.h"

namespace kiln {

void swiglu_cpu(const SwigluArgs& a, ThreadPool& pool) {
  parallel_valid_rows(pool, a.n_valid, a.batch, a.rows / a.batch, 1, [&](int64_t r, int) {
    const float* g = a.gu + r * 2 * a.ffn;
    silu_mul(g, g + a.ffn, a.h + r * a.ffn, a.ffn);
  });
}

}  // namespace kiln
