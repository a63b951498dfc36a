#include "kernels/layernorm.h"

#include <cmath>

namespace kiln {

void layernorm_cpu(const LayerNormArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.x + r * a.dim;
      float* y = a.y + r * a.dim;
      double s = 0.0;
      for (int64_t i = 0; i < a.dim; ++i) s += x[i];
      const double mean = s / double(a.dim);
      double v = 0.0;
      for (int64_t i = 0; i < a.dim; ++i) v += (x[i] - mean) * (x[i] - mean);
      const float inv = float(1.0 / std::sqrt(v / double(a.dim) + double(a.eps)));
      const float m = float(mean);
      for (int64_t i = 0; i < a.dim; ++i)
        y[i] = (x[i] - m) * inv * load_as_f32(a.w, a.w_dtype, uint64_t(i)) +
               (a.b ? load_as_f32(a.b, a.w_dtype, uint64_t(i)) : 0.0f);
    }
  });
}

}  // namespace kiln
