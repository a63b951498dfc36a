// CPU MLA: the latent cache append and attention. One attention work item per (row, head);
// scores go to the worker's scratch, cache rows are widened to f32 there when needed.
#include "kernels/mla.h"

#include <cmath>

#include "kernels/cpu/simd.h"

namespace kiln {

void mla_kv_write_cpu(const MlaKvWriteArgs& a, ThreadPool& pool) {
  const int64_t width = a.rank + a.rope;
  pool.parallel_for(a.batch * a.chunk, 4, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / a.chunk, t = r % a.chunk;
      const int64_t pos = int64_t(a.start_pos[b]) + t;
      if (t >= a.n_valid[b] || pos < 0 || pos >= a.max_seq) continue;
      const uint64_t base = uint64_t((b * a.max_seq + pos) * width);
      for (int64_t i = 0; i < a.rank; ++i)
        store_from_f32(a.cache, a.cache_dtype, base + uint64_t(i), a.ckv[r * a.rank + i]);
      for (int64_t i = 0; i < a.rope; ++i)
        store_from_f32(a.cache, a.cache_dtype, base + uint64_t(a.rank + i), a.kpe[r * a.rope + i]);
    }
  });
}

void mla_attention_cpu(const MlaAttentionArgs& a, ThreadPool& pool) {
  const int64_t width = a.rank + a.rope;
  pool.parallel_for(a.batch * a.chunk * a.heads, 1, [&](int64_t i0, int64_t i1, int worker) {
    float* scores = pool.scratch(worker);
    float* row = scores + a.max_seq;  // width floats
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t r = item / a.heads, h = item % a.heads;
      const int64_t b = r / a.chunk, t = r % a.chunk;
      float* o = a.out + r * a.heads * a.rank + h * a.rank;
      for (int64_t d = 0; d < a.rank; ++d) o[d] = 0.0f;
      const int64_t p = int64_t(a.start_pos[b]) + t;
      if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) continue;
      const float* ql = a.q_lat + r * a.heads * a.rank + h * a.rank;
      const float* qp = a.q_pe + r * a.heads * a.rope + h * a.rope;
      const uint64_t base = uint64_t(b * a.max_seq * width);
      auto cache_row = [&](int64_t j) -> const float* {
        const uint64_t at = base + uint64_t(j * width);
        if (a.cache_dtype == DType::F32) return static_cast<const float*>(a.cache) + at;
        convert_to_f32(static_cast<const uint8_t*>(a.cache) + at * dtype_size(a.cache_dtype), a.cache_dtype, row,
                       uint64_t(width));
        return row;
      };
      for (int64_t j = 0; j <= p; ++j) {
        const float* c = cache_row(j);
        scores[j] = (dot_f32(ql, c, a.rank) + dot_f32(qp, c + a.rank, a.rope)) * a.scale;
      }
      softmax_inplace(scores, p + 1);
      for (int64_t j = 0; j <= p; ++j) axpy_f32(scores[j], cache_row(j), o, a.rank);
    }
  });
}

}  // namespace kiln
