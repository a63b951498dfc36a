#include "kernels/head_matmul.h"

#include "kernels/cpu/simd.h"
#include "kernels/host_device.h"

namespace kiln {

void head_matmul_cpu(const HeadMatmulArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch;
  const uint64_t esz = dtype_size(a.w_dtype);
  // One work item per (head, output row of that head's matrix): each weight row is widened
  // once and used for every activation row.
  pool.parallel_for(a.heads * a.m, 4, [&](int64_t i0, int64_t i1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t h = item / a.m, i = item % a.m;
      const void* src = static_cast<const uint8_t*>(a.w) + uint64_t((h * a.m + i) * a.k) * esz;
      const float* wrow = static_cast<const float*>(src);
      if (a.w_dtype != DType::F32) {
        convert_to_f32(src, a.w_dtype, scratch, uint64_t(a.k));
        wrow = scratch;
      }
      for (int64_t r = 0; r < a.rows; ++r) {
        if (!row_is_valid(a.n_valid, chunk, r)) continue;
        a.y[r * a.heads * a.m + h * a.m + i] = dot_f32(a.x + r * a.heads * a.k + h * a.k, wrow, a.k);
      }
    }
  });
}

}  // namespace kiln
