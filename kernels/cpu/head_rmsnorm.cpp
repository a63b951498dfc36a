#include "kernels/head_rmsnorm.h"

#include <cmath>

namespace kiln {

void head_rmsnorm_cpu(const HeadRmsNormArgs& a, ThreadPool& pool) {
  const int64_t heads = a.n_q + a.n_k;
  pool.parallel_for(a.rows * heads, 8, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r = i / heads, h = i % heads;
      float* x = a.qkv + r * a.width + head_rmsnorm_offset(a, h);
      const int64_t d = head_rmsnorm_width(a, h);
      const void* w = h < a.n_q ? a.w_q : a.w_k;
      const uint64_t w0 = head_rmsnorm_w_offset(a, h);
      double mean = 0.0, ss = 0.0;
      if (a.mode & kHeadNormCenter) {  // (LayerNorm: about the mean)
        for (int64_t k = 0; k < d; ++k) mean += double(x[k]);
        mean /= double(d);
      }
      for (int64_t k = 0; k < d; ++k) ss += (double(x[k]) - mean) * (double(x[k]) - mean);
      const float inv = float(1.0 / std::sqrt(ss / double(d) + double(a.eps)));
      if (a.mode & kHeadNormCenter) {
        const float m = float(mean);
        for (int64_t k = 0; k < d; ++k) x[k] = load_as_f32(w, a.w_dtype, w0 + uint64_t(k)) * ((x[k] - m) * inv);
      } else {
        for (int64_t k = 0; k < d; ++k) x[k] = load_as_f32(w, a.w_dtype, w0 + uint64_t(k)) * (x[k] * inv);
      }
    }
  });
}

}  // namespace kiln
