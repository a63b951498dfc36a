#include "kernels/embedding.h"

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
    }
  });
}

}  // namespace kiln
