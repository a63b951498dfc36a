// CPU matmul: parallel over blocks of output features (weight rows), so each weight byte is
// read once per call however many activation rows there are. Low-precision weight rows are
// widened to f32 in the worker's scratch, a block at a time, and reused for every activation
// row. With a single activation row (decode) bf16 rows are instead widened in registers by
// dot_f32_bf16, which gives the same bits without the round trip to scratch.
// On x86-64-v3 CPUs the products run as register tiles of 2 activation rows × 3 weight rows
// (dot_tile): each x load feeds 3 FMAs and each weight load 2, where a dot product per output
// loads both operands for every FMA. Every output keeps dot_f32's 16 lanes, association order
// and FMA contraction, so the results are bit-identical to dot_f32 (and to the one-row path).
#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/tiles.h"


namespace kiln {

namespace {

// The output of activation row r at feature j: the dot product v, plus the bias, stored or added.
inline void store_output(const MatmulArgs& a, int64_t r, int64_t j, float v) {
  if (a.bias) v += load_as_f32(a.bias, a.bias_dtype, uint64_t(j));
  float& y = a.y[r * a.m + j];
  y = a.accumulate ? y + v : v;
}

// Weight rows m0 … m0+mb as f32: in place for f32 weights, else widened into scratch.
inline void weight_rows(const MatmulArgs& a, int64_t m0, int64_t mb, float* scratch, const float** rows) {
  const uint64_t esz = dtype_size(a.w_dtype);
  for (int64_t j = 0; j < mb; ++j) {
    const void* src = static_cast<const uint8_t*>(a.w) + uint64_t((m0 + j) * a.k) * esz;
    if (a.w_dtype == DType::F32) {
      rows[j] = static_cast<const float*>(src);
    } else {
      convert_to_f32(src, a.w_dtype, scratch + j * a.k, uint64_t(a.k));
      rows[j] = scratch + j * a.k;
    }
  }
}

#ifdef KILN_X86_64_V3_KERNELS
constexpr int64_t kTileCols = 3;  // weight rows per tile (kMatmulRowBlock bounds the scratch)
static_assert(kTileCols <= kMatmulRowBlock, "a tile's widened weight rows fit the scratch");

// The blocked product on dot_tile: per block of 3 weight rows, every valid activation row, two
// at a time (padding rows skipped, so a pair may straddle them).
void matmul_tiles(const MatmulArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch;
  const int64_t n_tiles = (a.m + kTileCols - 1) / kTileCols;
  pool.parallel_for(n_tiles, 1, [&](int64_t t0, int64_t t1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kTileCols, mb = std::min(kTileCols, a.m - m0);
      const float* w[kTileCols];
      weight_rows(a, m0, mb, scratch, w);
      float out[2 * kTileCols];
      int64_t pending = -1;  // a valid row waiting for its pair
      for (int64_t r = 0; r < a.rows; ++r) {
        if (a.n_valid && r % chunk >= a.n_valid[r / chunk]) continue;
        if (pending < 0) {
          pending = r;
          continue;
        }
        const float* x[2] = {a.x + pending * a.k, a.x + r * a.k};
        dot_tile_cols<2>(x, w, mb, a.k, out);
        for (int64_t j = 0; j < mb; ++j) {
          store_output(a, pending, m0 + j, out[j]);
          store_output(a, r, m0 + j, out[mb + j]);
        }
        pending = -1;
      }
      if (pending >= 0) {
        const float* x[1] = {a.x + pending * a.k};
        dot_tile_cols<1>(x, w, mb, a.k, out);
        for (int64_t j = 0; j < mb; ++j) store_output(a, pending, m0 + j, out[j]);
      }
    }
  });
}
#endif

}  // namespace

void matmul_cpu(const MatmulArgs& a, ThreadPool& pool) {
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
#ifdef KILN_X86_64_V3_KERNELS
  if (cpu_has_x86_64_v3()) return matmul_tiles(a, pool);
#endif
  const int64_t n_blocks = (a.m + kMatmulRowBlock - 1) / kMatmulRowBlock;
  pool.parallel_for(n_blocks, 1, [&](int64_t b0, int64_t b1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t m0 = blk * kMatmulRowBlock;
      const int64_t mb = std::min(kMatmulRowBlock, a.m - m0);
      const float* wrows[kMatmulRowBlock];
      weight_rows(a, m0, mb, scratch, wrows);
      for (int64_t r = 0; r < a.rows; ++r) {
        if (a.n_valid && r % chunk >= a.n_valid[r / chunk]) continue;
        for (int64_t j = 0; j < mb; ++j) store_output(a, r, m0 + j, dot_f32(a.x + r * a.k, wrows[j], a.k));
      }
    }
  });
}

}  // namespace kiln
