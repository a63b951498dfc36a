// CPU GroupNorm: one work item per (batch row, group); each computes its statistics in two
// passes and writes its own channels of every pixel, so no scratch and no cross-item state.
#include "kernels/group_norm.h"

#include <cmath>

namespace kiln {

void group_norm_cpu(const GroupNormArgs& a, ThreadPool& pool) {
  const int64_t cpg = a.channels / a.groups;
  pool.parallel_for(a.batch * a.groups, 1, [&](int64_t i0, int64_t i1, int) {
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t b = item / a.groups, c0 = (item % a.groups) * cpg;
      const float* x = a.x + b * a.pixels * a.channels + c0;
      float* y = a.y + b * a.pixels * a.channels + c0;
      double s = 0.0;
      for (int64_t p = 0; p < a.pixels; ++p)
        for (int64_t c = 0; c < cpg; ++c) s += x[p * a.channels + c];
      const double n = double(a.pixels * cpg), mean = s / n;
      double v = 0.0;
      for (int64_t p = 0; p < a.pixels; ++p)
        for (int64_t c = 0; c < cpg; ++c) {
          const double d = x[p * a.channels + c] - mean;
          v += d * d;
        }
      const float inv = float(1.0 / std::sqrt(v / n + double(a.eps))), m = float(mean);
      for (int64_t p = 0; p < a.pixels; ++p)
        for (int64_t c = 0; c < cpg; ++c) {
          float t = (x[p * a.channels + c] - m) * inv * load_as_f32(a.w, a.w_dtype, uint64_t(c0 + c)) +
                    load_as_f32(a.b, a.w_dtype, uint64_t(c0 + c));
          if (a.silu) t = t / (1.0f + std::exp(-t));
          y[p * a.channels + c] = t;
        }
    }
  });
}

}  // namespace kiln
