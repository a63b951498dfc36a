// CPU matmul: parallel over blocks of output features (weight rows), so each weight byte is
// read once per call however many activation rows there are. Low-precision weight rows are
// widened to f32 in the worker's scratch, kMatmulRowBlock rows at a time, and reused for
// every activation row. With a single activation row (decode) bf16 rows are instead widened
// in registers by dot_f32_bf16, which gives the same bits without the round trip to scratch.
#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/cpu/simd.h"

namespace kiln {

void matmul_cpu(const MatmulArgs& a, ThreadPool& pool) {
  const uint64_t esz = dtype_size(a.w_dtype);
  const int64_t chunk = a.rows / a.batch;
  if (a.rows == 1 && a.w_dtype == DType::BF16) {
    const uint16_t* w = static_cast<const uint16_t*>(a.w);
    if (a.n_valid && a.n_valid[0] < 1) return;
    pool.parallel_for(a.m, 16, [&](int64_t m0, int64_t m1, int) {
      for (int64_t j = m0; j < m1; ++j) {
        float v = dot_f32_bf16(a.x, w + j * a.k, a.k);
        if (a.bias) v += load_as_f32(a.bias, a.bias_dtype, uint64_t(j));
        a.y[j] = a.accumulate ? a.y[j] + v : v;
      }
    });
    return;
  }
  const int64_t n_blocks = (a.m + kMatmulRowBlock - 1) / kMatmulRowBlock;
  pool.parallel_for(n_blocks, 1, [&](int64_t b0, int64_t b1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t m0 = blk * kMatmulRowBlock;
      const int64_t mb = std::min(kMatmulRowBlock, a.m - m0);
      const float* wrows[kMatmulRowBlock];
      for (int64_t j = 0; j < mb; ++j) {
        const void* src = static_cast<const uint8_t*>(a.w) + uint64_t((m0 + j) * a.k) * esz;
        if (a.w_dtype == DType::F32) {
          wrows[j] = static_cast<const float*>(src);
        } else {
          convert_to_f32(src, a.w_dtype, scratch + j * a.k, uint64_t(a.k));
          wrows[j] = scratch + j * a.k;
        }
      }
      for (int64_t r = 0; r < a.rows; ++r) {
        if (a.n_valid && r % chunk >= a.n_valid[r / chunk]) continue;
        const float* x = a.x + r * a.k;
        float* y = a.y + r * a.m + m0;
        for (int64_t j = 0; j < mb; ++j) {
          float v = dot_f32(x, wrows[j], a.k);
          if (a.bias) v += load_as_f32(a.bias, a.bias_dtype, uint64_t(m0 + j));
          y[j] = a.accumulate ? y[j] + v : v;
        }
      }
    }
  });
}

}  // namespace kiln
