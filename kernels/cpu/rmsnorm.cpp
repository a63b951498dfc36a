#include "kernels/rmsnorm.h"

#include <cmath>

#include "kernels/cpu/simd.h"

namespace kiln {

void rmsnorm_cpu(const RmsNormArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.x + r * a.dim;
      float* y = a.y + r * a.dim;
      const double ss = sum_squares(x, a.dim);  // (8 lanes: a serial sum was a chain of dependent adds)
      float inv = float(1.0 / std::sqrt(ss / double(a.dim) + double(a.eps)));
      for (int64_t i = 0; i < a.dim; ++i) y[i] = load_as_f32(a.w, a.w_dtype, uint64_t(i)) * (x[i] * inv);
    }
  });
}

}  // namespace kiln
