#include "kernels/rope.h"

#include <cmath>

#include "kernels/cpu/rows.h"

namespace kiln {

void rope_cpu(const RopeArgs& a, ThreadPool& pool) {
  const int64_t half = rope_half(a);
  parallel_valid_rows(pool, a.n_valid, a.batch, a.chunk, 1, [&](int64_t r, int) {
    const int64_t b = r / a.chunk, t = r % a.chunk;
    const float pos = float(int64_t(a.start_pos[b]) + t);
    float* row = a.qkv + r * a.width;
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * a.inv_freq[i];  // f32 product, as HF computes it
      const float c = float(std::cos(double(angle))) * a.attention_scaling;
      const float s = float(std::sin(double(angle))) * a.attention_scaling;
      for (int64_t h = 0; h < a.n_rot_heads; ++h) {
        float* v = row + h * a.head_dim;
        const float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
      }
    }
  });
}

}  // namespace kiln
