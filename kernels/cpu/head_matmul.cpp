#include "kernels/head_matmul.h"

#include <algorithm>

#include "kernels/cpu/simd.h"
#include "kernels/host_device.h"

namespace kiln {

namespace {

// Version 2, transposed: per head, its k rows of m values dequantized once, then each valid activation
// row's m outputs summed down the columns in dot_f32's lanes (lane_accumulate, lanes_reduce).
void head_matmul_transposed(const HeadMatmulArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch;
  pool.parallel_for(a.heads, 1, [&](int64_t h0, int64_t h1, int worker) {
    float* block = pool.scratch(worker);  // k × m
    float* lanes = block + a.k * a.m;     // 16 × m
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t j = 0; j < a.k; ++j)
        weight_row_values(a.w, a.w_dtype, a.w_scale, a.group, h * a.k + j, a.m, block + j * a.m, a.w_zero);
      for (int64_t r = 0; r < a.rows; ++r) {
        if (!row_is_valid(a.n_valid, chunk, r)) continue;
        std::fill(lanes, lanes + 16 * a.m, 0.0f);
        const float* x = a.x + r * a.heads * a.k + h * a.k;
        for (int64_t j = 0; j < a.k; ++j) lane_accumulate(x[j], block + j * a.m, lanes + (j % 16) * a.m, a.m);
        lanes_reduce(lanes, a.m);
        std::copy(lanes, lanes + a.m, a.y + r * a.heads * a.m + h * a.m);
      }
    }
  });
}

}  // namespace

void head_matmul_cpu(const HeadMatmulArgs& a, ThreadPool& pool) {
  if (a.transposed) return head_matmul_transposed(a, pool);
  const int64_t chunk = a.rows / a.batch;
  // One work item per (head, output row of that head's matrix). Version 1: each weight row is widened
  // once and used for every activation row; version 2 (scales, or 2-D rows) reads rows as matmul does.
  const bool rows_as_matmul = a.w_scale != nullptr;
  const uint64_t esz = dtype_size(a.w_dtype);
  pool.parallel_for(a.heads * a.m, 4, [&](int64_t i0, int64_t i1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t h = item / a.m, i = item % a.m;
      const float* wrow = nullptr;
      if (!rows_as_matmul) {
        const void* src = static_cast<const uint8_t*>(a.w) + uint64_t((h * a.m + i) * a.k) * esz;
        wrow = static_cast<const float*>(src);
        if (a.w_dtype != DType::F32) {
          convert_to_f32(src, a.w_dtype, scratch, uint64_t(a.k));
          wrow = scratch;
        }
      }
      for (int64_t r = 0; r < a.rows; ++r) {
        if (!row_is_valid(a.n_valid, chunk, r)) continue;
        const float* x = a.x + r * a.heads * a.k + h * a.k;
        a.y[r * a.heads * a.m + h * a.m + i] =
            rows_as_matmul ? weight_row_dot(x, a.w, a.w_dtype, a.w_scale, a.group, h * a.m + i, a.k, scratch, a.w_zero)
                           : dot_f32(x, wrow, a.k);
      }
    }
  });
}

}  // namespace kiln
