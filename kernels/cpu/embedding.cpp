#include "kernels/embedding.h"

#include <algorithm>

namespace kiln {

void embedding_cpu(const EmbeddingArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t id = a.tokens[r];
      if (id < 0 || id >= a.vocab) id = 0;
      convert_to_f32(static_cast<const uint8_t*>(a.table) + uint64_t(id * a.dim) * dtype_size(a.table_dtype),
                     a.table_dtype, a.y + r * a.dim, uint64_t(a.dim));
      if (a.scale != 1.0f)
        for (int64_t d = 0; d < a.dim; ++d) a.y[r * a.dim + d] *= a.scale;
      if (const int64_t pos = embedding_position_row(a, r); pos >= 0)
        for (int64_t d = 0; d < a.dim; ++d)
          a.y[r * a.dim + d] += load_as_f32(a.pos_table, a.pos_dtype, uint64_t(pos * a.dim + d));
    }
  });
}

void last_rows_cpu(const LastRowsArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.batch, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = last_row_of(a, b);
      float* y = a.y + b * a.dim;
      if (r < 0) std::fill(y, y + a.dim, 0.0f);
      else std::copy(a.x + r * a.dim, a.x + (r + 1) * a.dim, y);
    }
  });
}

}  // namespace kiln
