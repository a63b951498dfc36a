// CPU attention: one work item per (row, head). Scores for the visible prefix go to the
// worker's scratch (max_seq floats; a sliding window reads only its last positions), then a max-subtracted softmax and
// a weighted sum of V.
#include "kernels/attention.h"

#include <cmath>

#include "kernels/cpu/simd.h"

namespace kiln {

namespace {

// Reads head_dim values of a cache row as f32 into dst (or returns the row itself when f32).
const float* cache_row(const void* cache, DType t, uint64_t index, int64_t n, float* dst) {
  if (t == DType::F32) return static_cast<const float*>(cache) + index;
  convert_to_f32(static_cast<const uint8_t*>(cache) + index * dtype_size(t), t, dst, uint64_t(n));
  return dst;
}

}  // namespace

void attention_cpu(const AttentionArgs& a, ThreadPool& pool) {
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t kv = a.n_kv_heads * a.head_dim;
  const int64_t out_w = a.n_heads * a.head_dim;
  pool.parallel_for(a.batch * a.chunk * a.n_heads, 1, [&](int64_t i0, int64_t i1, int worker) {
    float* scores = pool.scratch(worker);  // max_seq
    float* rowbuf = scores + a.max_seq;    // head_dim, for non-f32 caches
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t r = item / a.n_heads, h = item % a.n_heads;
      const int64_t b = r / a.chunk, t = r % a.chunk;
      float* o = a.out + r * out_w + h * a.head_dim;
      for (int64_t d = 0; d < a.head_dim; ++d) o[d] = 0.0f;
      const int64_t p = int64_t(a.start_pos[b]) + t;
      if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) continue;
      const float* q = a.qkv + r * width + h * a.head_dim;
      const int64_t kvh = h / group;
      const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * a.head_dim);
      const int64_t j0 = attention_first_key(p, a.window);
      for (int64_t j = j0; j <= p; ++j) {
        const float* k = cache_row(a.k_cache, a.cache_dtype, base + uint64_t(j * kv), a.head_dim, rowbuf);
        scores[j - j0] = dot_f32(q, k, a.head_dim) * a.scale;
      }
      softmax_inplace(scores, p - j0 + 1);
      for (int64_t j = j0; j <= p; ++j) {
        const float* v = cache_row(a.v_cache, a.cache_dtype, base + uint64_t(j * kv), a.head_dim, rowbuf);
        axpy_f32(scores[j - j0], v, o, a.head_dim);
      }
    }
  });
}

}  // namespace kiln
