// CPU attention without a cache: one work item per (image, query row, head); scores over
// the visible keys go to the worker's scratch, then softmax and a weighted sum of V.
#include "kernels/sdpa.h"

#include "kernels/cpu/simd.h"

namespace kiln {

void sdpa_cpu(const SdpaArgs& a, ThreadPool& pool) {
  const int64_t ow = a.heads * a.head_dim;
  pool.parallel_for(a.batch * a.lq * a.heads, 1, [&](int64_t i0, int64_t i1, int worker) {
    float* scores = pool.scratch(worker);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t r = item / a.heads, h = item % a.heads;
      const int64_t b = r / a.lq, i = r % a.lq;
      const int64_t n = a.causal ? std::min(i + 1, a.lk) : a.lk;
      const float* q = a.q_src + r * a.wq + a.q_off + h * a.head_dim;
      const float* kv = a.kv_src + b * a.lk * a.wkv;
      for (int64_t j = 0; j < n; ++j)
        scores[j] = dot_f32(q, kv + j * a.wkv + a.k_off + h * a.head_dim, a.head_dim) * a.scale;
      softmax_inplace(scores, n);
      float* o = a.out + r * ow + h * a.head_dim;
      for (int64_t d = 0; d < a.head_dim; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < n; ++j) axpy_f32(scores[j], kv + j * a.wkv + a.v_off + h * a.head_dim, o, a.head_dim);
    }
  });
}

}  // namespace kiln
