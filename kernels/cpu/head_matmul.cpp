#include "kernels/head_matmul.h"

#include <algorithm>

#include "kernels/cpu/simd.h"
#include "kernels/host_device.h"

namespace kiln {

namespace {

// Version 2, transposed: per head, the valid activation rows kHeadMatmulRowBlock at a time; each weight
// row (m values) dequantized once for them, then added into each row's 16 lanes of m sums (dot_f32's
// lanes and order: lane_accumulate, lanes_reduce). The row and lanes stay in L1/L2 where a whole head's
// dequantized k × m block would not (decode is one row).
void head_matmul_transposed(const HeadMatmulArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch;
  pool.parallel_for(a.heads, 1, [&](int64_t h0, int64_t h1, int worker) {
    float* wrow = pool.scratch(worker);  // m
    float* lanes = wrow + a.m;           // kHeadMatmulRowBlock × 16 × m
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t r0 = 0; r0 < a.rows;) {
        int64_t block[kHeadMatmulRowBlock], n = 0;  // the next valid rows
        for (; r0 < a.rows && n < kHeadMatmulRowBlock; ++r0)
          if (row_is_valid(a.n_valid, chunk, r0)) block[n++] = r0;
        if (n == 0) break;
        std::fill(lanes, lanes + n * 16 * a.m, 0.0f);
        for (int64_t j = 0; j < a.k; ++j) {
          weight_row_values(a.w, a.w_dtype, a.w_scale, a.group, h * a.k + j, a.m, wrow, a.w_zero);
          for (int64_t b = 0; b < n; ++b)
            lane_accumulate(a.x[block[b] * a.heads * a.k + h * a.k + j], wrow, lanes + (b * 16 + j % 16) * a.m, a.m);
        }
        for (int64_t b = 0; b < n; ++b) {
          float* l = lanes + b * 16 * a.m;
          lanes_reduce(l, a.m);
          std::copy(l, l + a.m, a.y + block[b] * a.heads * a.m + h * a.m);
        }
      }
  });
}

}  // namespace

void head_matmul_cpu(const HeadMatmulArgs& a, ThreadPool& pool) {
  if (a.transposed) return head_matmul_transposed(a, pool);
  const int64_t chunk = a.rows / a.batch;
  int64_t valid = 0, only = 0;  // the valid activation rows, and the last of them
  for (int64_t r = 0; r < a.rows; ++r)
    if (row_is_valid(a.n_valid, chunk, r)) ++valid, only = r;
  if (valid == 1) {
    // Decode: each weight row is read once, so rows of a head go through weight_rows_dot, kWeightRowsDotMax
    // side by side (weight_row_dot's bits: i8 scaled after the product, i4 and f8e4m3 dequantized in
    // registers, as below). Work item h·m + i is weight row h·m + i and output h·m + i.
    const float* x = a.x + only * a.heads * a.k;
    float* y = a.y + only * a.heads * a.m;
    pool.parallel_for(a.heads * a.m, kWeightRowsDotMax, [&](int64_t i0, int64_t i1, int worker) {
      for (int64_t item = i0; item < i1;) {
        const int64_t h = item / a.m, end = std::min({i1, (h + 1) * a.m, item + int64_t(kWeightRowsDotMax)});
        int64_t rows[kWeightRowsDotMax];
        for (int64_t c = 0; c < end - item; ++c) rows[c] = item + c;
        weight_rows_dot(x + h * a.k, a.w, a.w_dtype, a.w_scale, a.group, rows, int(end - item), a.k,
                        pool.scratch(worker), y + item, a.w_zero);
        item = end;
      }
    });
    return;
  }
  // One work item per (head, output row of that head's matrix): each weight row is widened once (i8: q,
  // its scale applied to each product, as matmul's; i4 and f8e4m3: dequantized, dot_f32 then giving
  // dot_f32_i4's and dot_f32_f8's bits) and used for every activation row.
  pool.parallel_for(a.heads * a.m, 4, [&](int64_t i0, int64_t i1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t h = item / a.m, i = item % a.m, row = h * a.m + i;
      const float* wrow = scratch;
      float scale = 1.0f;
      if (a.w_dtype == DType::F32) {
        wrow = static_cast<const float*>(a.w) + row * a.k;
      } else if (a.w_dtype == DType::I8) {
        const int8_t* q = static_cast<const int8_t*>(a.w) + row * a.k;
        for (int64_t j = 0; j < a.k; ++j) scratch[j] = float(q[j]);
        scale = a.w_scale[row];
      } else {
        weight_row_values(a.w, a.w_dtype, a.w_scale, a.group, row, a.k, scratch, a.w_zero);
      }
      for (int64_t r = 0; r < a.rows; ++r) {
        if (!row_is_valid(a.n_valid, chunk, r)) continue;
        const float d = dot_f32(a.x + r * a.heads * a.k + h * a.k, wrow, a.k);
        a.y[r * a.heads * a.m + h * a.m + i] = a.w_dtype == DType::I8 ? d * scale : d;
      }
    }
  });
}

}  // namespace kiln
