#include "kernels/timestep_embedding.h"

#include <algorithm>
#include <cmath>

namespace kiln {

void timestep_embedding_cpu(const TimestepEmbeddingArgs& a, ThreadPool&) {
  // The step state is host-written; clamp rather than trust it (replay does no checks).
  const int64_t s = a.step ? std::clamp<int64_t>(a.step[0], 0, a.n - 1) : 0;
  const float t = a.t[s];
  const int64_t half = a.dim / 2;
  const float neg_log = -std::log(a.max_period);
  for (int64_t r = 0; r < a.rows; ++r) {
    float* e = a.emb + r * a.dim;
    for (int64_t i = 0; i < half; ++i) {
      const float f = std::exp(neg_log * float(i) / (float(half) - a.freq_shift));
      const float arg = t * f;
      e[a.flip_sin_to_cos ? half + i : i] = std::sin(arg);
      e[a.flip_sin_to_cos ? i : half + i] = std::cos(arg);
    }
    if (a.dim % 2) e[a.dim - 1] = 0.0f;
  }
}

}  // namespace kiln
