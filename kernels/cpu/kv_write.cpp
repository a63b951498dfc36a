#include "kernels/kv_write.h"

#include "kernels/cpu/rows.h"

namespace kiln {

void kv_write_cpu(const KvWriteArgs& a, ThreadPool& pool) {
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const int64_t kv = a.n_kv_heads * a.head_dim;
  parallel_valid_rows(pool, a.n_valid, a.batch, a.chunk, 4, [&](int64_t r, int) {
    const int64_t b = r / a.chunk, t = r % a.chunk;
    const int64_t pos = int64_t(a.start_pos[b]) + t;
    if (pos < 0 || pos >= a.max_seq) return;  // second fence; the runtime bounds positions
    const float* k = a.qkv + r * width + a.n_heads * a.head_dim;
    const float* v = k + kv;
    const uint64_t base = uint64_t((b * a.max_seq + pos) * kv);
    for (int64_t i = 0; i < kv; ++i) {
      store_from_f32(a.k_cache, a.cache_dtype, base + uint64_t(i), k[i]);
      store_from_f32(a.v_cache, a.cache_dtype, base + uint64_t(i), v[i]);
    }
  });
}

}  // namespace kiln
