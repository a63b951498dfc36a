#include "kernels/swiglu.h"

#include "kernels/cpu/simd.h"

namespace kiln {

void swiglu_cpu(const SwigluArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = a.gu + r * 2 * a.ffn;
      const float* u = g + a.ffn;
      float* h = a.h + r * a.ffn;
      silu_mul(g, u, h, a.ffn);
    }
  });
}

}  // namespace kiln
