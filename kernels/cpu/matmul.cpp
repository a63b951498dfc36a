// CPU matmul: parallel over blocks of output features (weight rows), so each weight byte is read
// once per call (the GEMM below: once per panel of activation rows, gemm_panel_rows of them).
// From kGemmMinRows activation rows (the plan's rows, batch · chunk: prefill and score chunks of 16
// or more) it is a GEMM of outer-product tiles (matmul_gemm, kernels/cpu/gemm_tiles.h), each output
// the chain of FMAs over k in order (gemm_ref) on every CPU; on the 2-core AVX-512 dev VM 59-74% of
// the FMA peak on SmolLM2's shapes at 64 rows, where the dot-product tiles below reached 37-41%.
// Fewer rows (decode, small batches) keep the dot products below, whose outputs are dot_f32's (16
// lanes, pairwise reduction): a row's logits from prefill and from a decode step agree to rounding,
// not bit for bit.
// The dot products: low-precision weight rows are widened to f32 in the worker's scratch, a block at
// a time, and reused for every activation row. With a single activation row (decode) bf16 and int8
// rows are instead widened in registers by dot_f32_bf16 and dot_f32_i8 (on x86-64-v3 as tiles of
// rows, dot_tile512_widen or dot_tile256_widen), which give the same bits without the round trip to
// scratch. Int8 rows (i8 weights) widen to their integers q; each output is then scaled by its row's
// w_scale. Int4 rows (i4 weights) widen to their dequantized values q · scale (dequant_i4; in
// registers for decode: weight_rows_dot, on x86-64-v3 the tiles dot_tile512_i4 or dot_tile256_i4,
// elsewhere dot_f32_i4), and are then used as f32 rows: every output is the f32 weights' on those
// values, bit for bit. F8e4m3 rows likewise widen to value · scale (dequant_f8; for decode
// weight_rows_dot: dot_tile512_f8, dot_tile256_f8 or dot_f32_f8).
// On CPUs with AVX-512 (cpu_has_avx512) several activation rows run as tiles of 4 rows × 6 weight
// rows (dot_tile512), and one row with bf16 or int8 weights as tiles of weight rows widened in
// registers (dot_tile512_widen); one row with f32 or f16 weights keeps the AVX2 tiles below.
// On other x86-64-v3 CPUs the products run as register tiles (kernels/cpu/tiles.h) of 2 activation
// rows × 3 weight rows (dot_tile): each x load feeds 3 FMAs and each weight load 2, where a dot
// product per output loads both operands for every FMA. With several activation rows and k over
// 2,048 (where 3 weight rows outgrow L1) they run as 2 × 6 tiles instead, k in blocks of 1,024
// that keep the weight rows' block in L1 while the activation rows stream past, each half of the
// lanes in turn (dot_half_tile; on the 2-core dev VM 42-46% of the FMA peak on Llama-3.2-1B's
// down projection against 33-36%; not faster at smaller k). Below kGemmMinRows every output keeps
// dot_f32's 16 lanes, association order and FMA contraction, so the results are bit-identical to
// dot_f32 (and to the one-row path).
#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/gemm_tiles.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/tiles.h"
#include "kernels/host_device.h"

namespace kiln {

namespace {

// The row scales each output is multiplied by: i8 weights' (an i4 row's scales are in its widened values).
inline const float* row_scales(const MatmulArgs& a) { return a.w_dtype == DType::I8 ? a.w_scale : nullptr; }

// Every path's last step: y ← the product v, times its row's scale (i8 weights), plus the bias (scale
// and bias as read for the output's feature; each used only when the op has it), stored or added.
inline void emit_output(const MatmulArgs& a, float& y, float v, float scale, float bias) {
  if (row_scales(a)) v *= scale;
  if (a.bias) v += bias;
  y = a.accumulate ? y + v : v;
}

// The output of activation row r at feature j.
inline void store_output(const MatmulArgs& a, int64_t r, int64_t j, float v) {
  emit_output(a, a.y[r * a.m + j], v, row_scales(a) ? row_scales(a)[j] : 1.0f,
              a.bias ? load_as_f32(a.bias, a.bias_dtype, uint64_t(j)) : 0.0f);
}

// Bytes of a weight row's first n values (i4: two a byte; n even).
inline int64_t w_bytes(const MatmulArgs& a, int64_t n) {
  return a.w_dtype == DType::I4 ? n / 2 : n * int64_t(dtype_size(a.w_dtype));
}

// An i4 weight row's zero points (matmul version 4), or null (symmetric).
inline const int8_t* i4_zeros(const MatmulArgs& a, int64_t j) {
  return a.w_zero ? a.w_zero + j * (a.k / a.group) : nullptr;
}

// An f8e4m3 weight row's scales: ceil(k / group).
inline int64_t f8_groups(const MatmulArgs& a) { return f8_scales_per_row(a.k, a.group); }

// Values k0 … k0+n of weight row j (k0 and n even) as f32 into dst: the float values, i8's q, i4's
// q · scale.
inline void widen_row(const MatmulArgs& a, int64_t j, int64_t k0, int64_t n, float* dst) {
  const uint8_t* row = static_cast<const uint8_t*>(a.w) + j * w_bytes(a, a.k);
  if (a.w_dtype == DType::I4) {
    dequant_i4(row, a.w_scale + j * (a.k / a.group), a.group, k0, n, dst, i4_zeros(a, j));
  } else if (a.w_dtype == DType::F8E4M3) {
    dequant_f8(row, a.w_scale + j * f8_groups(a), a.group, k0, n, dst);
  } else {
    convert_to_f32(row + w_bytes(a, k0), a.w_dtype, dst, uint64_t(n));
  }
}

// Weight rows m0 … m0+mb as f32: in place for f32 weights, else widened into scratch; rows[mb …
// pad_to) repeat the last (a tile's short end: their outputs are computed and dropped).
inline void weight_rows(const MatmulArgs& a, int64_t m0, int64_t mb, float* scratch, const float** rows,
                        int64_t pad_to = 0) {
  for (int64_t j = 0; j < mb; ++j) {
    if (a.w_dtype == DType::F32) {
      rows[j] = static_cast<const float*>(a.w) + (m0 + j) * a.k;
    } else {
      widen_row(a, m0 + j, 0, a.k, scratch + j * a.k);
      rows[j] = scratch + j * a.k;
    }
  }
  for (int64_t j = mb; j < pad_to; ++j) rows[j] = rows[mb - 1];
}

// Whether activation row r is computed (n_valid).
inline bool valid_row(const MatmulArgs& a, int64_t chunk, int64_t r) { return row_is_valid(a.n_valid, chunk, r); }

#ifdef KILN_X86_64_V3_KERNELS
// emit_output for a tile's rows l < nr (out[c·RB + l], weight rows c < mb ≤ 16) into y rows ids[l] from
// column m0, on AVX-512: 16 rows at a time transposed in registers (transpose_rows16), then each row's
// mb outputs as one masked vector, scale, bias and accumulate in emit_output's order. The products
// and sums are the rounded forms (no FMA contraction can fuse them), as emit_output's are.
template <int64_t RB>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void emit_rows512(const MatmulArgs& a, const float* out,
                                                                       const int64_t* ids, int64_t nr, int64_t m0,
                                                                       int64_t mb, const float* scale,
                                                                       const float* bias) {
  static_assert(RB % 16 == 0, "whole blocks of 16 rows");
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __mmask16 mask = __mmask16((1u << mb) - 1);
  const __m512 sv = _mm512_maskz_loadu_ps(mask, scale), bv = _mm512_maskz_loadu_ps(mask, bias);
  alignas(64) float t[16 * 16];
  for (int64_t l0 = 0; l0 < nr; l0 += 16) {
    const float* src[16];
    for (int64_t c = 0; c < 16; ++c) src[c] = c < mb ? out + c * RB + l0 : nullptr;
    transpose_rows16<16>(src, 16, t);  // t[i·16 + c] = out[c·RB + l0 + i]
    for (int64_t i = 0; i < std::min<int64_t>(16, nr - l0); ++i) {
      float* y = a.y + ids[l0 + i] * a.m + m0;
      __m512 v = _mm512_load_ps(t + i * 16);
      if (row_scales(a)) v = _mm512_maskz_mul_round_ps(mask, v, sv, kRound);
      if (a.bias) v = _mm512_maskz_add_round_ps(mask, v, bv, kRound);
      if (a.accumulate) v = _mm512_maskz_add_round_ps(mask, _mm512_maskz_loadu_ps(mask, y), v, kRound);
      _mm512_mask_storeu_ps(y, mask, v);
    }
  }
}
#endif

// Many activation rows (a.rows >= kGemmMinRows): per worker, its tiles of C weight rows against every
// valid activation row, a panel of up to gemm_panel_rows at a time transposed into its scratch (RB
// rows a step of k, zeros past the last), each tile's rows against each block of RB panel rows in
// registers (Tile: RB rows or, for a short last block, half), outputs scattered by emit_output.
// Weight rows are read in place (f32) or widened into the scratch, a short last tile repeating its
// last row. Over 2,048 of k, k runs in blocks (gemm_k_block): for each block, every tile of a group
// against every block of rows, the running sums kept in the scratch between blocks, so the panel
// holds all of a chunk's rows (Llama-3.2-1B's down projection, k = 8,192, 128 rows: 18.3 -> 14.6 ms
// f32 on the dev VM). Each output is gemm_ref's chain however the rows, tiles and blocks fall.
template <int64_t RB, int64_t C, typename Tile>
void matmul_gemm(const MatmulArgs& a, ThreadPool& pool, Tile tile) {
#ifdef KILN_X86_64_V3_KERNELS
  const bool avx512 = cpu_has_avx512();  // (read here, on the calling thread)
#else
  const bool avx512 = false;
#endif
  static_assert(RB <= kGemmRowBlock && C <= kGemmCols, "matmul_scratch_floats sizes the tile");
  const int64_t chunk = a.rows / a.batch, k = a.k;
  const int64_t panel_cap = gemm_panel_rows(k, a.rows), kc = gemm_k_block(k);
  const int64_t group = kc == k ? int64_t(1) << 40 : gemm_group_tiles(panel_cap);
  pool.parallel_for((a.m + C - 1) / C, 1, [&](int64_t t0, int64_t t1, int worker) {
    float* out = pool.scratch(worker);
    float* xt = out + kGemmRowBlock * kGemmCols;
    float* wbuf = xt + panel_cap * k;
    float* part = wbuf + kGemmCols * kc;  // (k in blocks) the group's running sums
    int64_t ids[512];
    for (int64_t r = 0;;) {
      int64_t n = 0;
      for (; r < a.rows && n < panel_cap; ++r)
        if (valid_row(a, chunk, r)) ids[n++] = r;
      if (n == 0) break;
      const int64_t blocks = (n + RB - 1) / RB;
      for (int64_t b = 0; b < blocks; ++b) {
        const float* src[RB];
        const int64_t nr = std::min(RB, n - b * RB);
        for (int64_t l = 0; l < RB; ++l) src[l] = l < nr ? a.x + ids[b * RB + l] * k : nullptr;
        transpose_rows<RB>(src, k, xt + b * RB * k, avx512);
      }
      // Tiles in groups whose running sums fit the scratch; for each block of k, each tile of the group
      // against every block of rows (one block of k: each tile's outputs emitted as they are done).
      for (int64_t g0 = t0; g0 < t1; g0 += group) {
        const int64_t g1 = std::min(t1, g0 + group);
        for (int64_t k0 = 0; k0 < k; k0 += kc) {
          const int64_t kn = std::min(kc, k - k0);
          const bool last = k0 + kn == k;
          for (int64_t t = g0; t < g1; ++t) {
            const int64_t m0 = t * C, mb = std::min(C, a.m - m0);
            const float* w = wbuf;
            int64_t ldw = kn;
            if (a.w_dtype == DType::F32 && mb == C) {
              w = static_cast<const float*>(a.w) + m0 * k + k0;
              ldw = k;
            } else {
              for (int64_t j = 0; j < C; ++j) widen_row(a, m0 + std::min(j, mb - 1), k0, kn, wbuf + j * kn);
            }
            // The tile's scales and biases, read once.
            float scale[C] = {}, bias[C] = {};
            if (last)
              for (int64_t c = 0; c < mb; ++c) {
                scale[c] = row_scales(a) ? row_scales(a)[m0 + c] : 1.0f;
                bias[c] = a.bias ? load_as_f32(a.bias, a.bias_dtype, uint64_t(m0 + c)) : 0.0f;
              }
            for (int64_t b = 0; b < blocks; ++b) {
              const int64_t nr = std::min(RB, n - b * RB);
              // Every block of rows prefetches its share of the next tile's weight rows (this block of
              // k): rows b, b + blocks, …
              TilePrefetch pf;
              if (t + 1 < g1 && b < C) {
                const int64_t row_bytes = w_bytes(a, k);
                pf.at = reinterpret_cast<uintptr_t>(a.w) + uintptr_t((m0 + C + b) * row_bytes + w_bytes(a, k0));
                pf.ld = blocks * row_bytes;
                pf.rows = (C - b + blocks - 1) / blocks;
                pf.esz = int64_t(dtype_size(a.w_dtype));
              }
              float* acc = kc == k ? out : part + ((t - g0) * blocks + b) * RB * C;
              tile(xt + b * RB * k + k0 * RB, w, ldw, kn, nr, acc, pf, k0 > 0);
              if (!last) continue;
#ifdef KILN_X86_64_V3_KERNELS
              if constexpr (RB % 16 == 0 && C <= 16)
                if (avx512) {
                  emit_rows512<RB>(a, acc, ids + b * RB, nr, m0, mb, scale, bias);
                  continue;
                }
#endif
              for (int64_t l = 0; l < nr; ++l) {
                float* y = a.y + ids[b * RB + l] * a.m + m0;
                for (int64_t c = 0; c < mb; ++c) emit_output(a, y[c], acc[c * RB + l], scale[c], bias[c]);
              }
            }
          }
        }
      }
    }
  });
}

#ifdef KILN_X86_64_V3_KERNELS
constexpr int64_t kTileCols = 3;  // weight rows per tile (kMatmulRowBlock bounds the scratch)
static_assert(kTileCols <= kMatmulRowBlock, "a tile's widened weight rows fit the scratch");

// fn(pair, r0, r1) for the valid activation rows two at a time, in order; r1 = -1 for an odd last one.
template <typename Fn>
void for_row_pairs(const MatmulArgs& a, const Fn& fn) {
  const int64_t chunk = a.rows / a.batch;
  int64_t pending = -1, pair = 0;
  for (int64_t r = 0; r < a.rows; ++r) {
    if (!valid_row(a, chunk, r)) continue;
    if (pending < 0) {
      pending = r;
      continue;
    }
    fn(pair++, pending, r);
    pending = -1;
  }
  if (pending >= 0) fn(pair, pending, int64_t(-1));
}

// The blocked product on dot_tile: per block of 3 weight rows, every valid activation row, two
// at a time (padding rows skipped, so a pair may straddle them).
void matmul_tiles(const MatmulArgs& a, ThreadPool& pool) {
  const int64_t n_tiles = (a.m + kTileCols - 1) / kTileCols;
  // One activation row of f32 weights read in place (contiguous rows): prefetch the next tile's.
  const bool decode_f32 = a.rows == 1 && a.w_dtype == DType::F32;
  pool.parallel_for(n_tiles, 1, [&](int64_t t0, int64_t t1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kTileCols, mb = std::min(kTileCols, a.m - m0);
      const float* w[kTileCols];
      weight_rows(a, m0, mb, scratch, w);
      float out[2 * kTileCols];
      for_row_pairs(a, [&](int64_t, int64_t r0, int64_t r1) {
        const float* x[2] = {a.x + r0 * a.k, a.x + (r1 >= 0 ? r1 : r0) * a.k};
        if (r1 >= 0) dot_tile_cols<2>(x, w, mb, a.k, out);
        else dot_tile_cols<1>(x, w, mb, a.k, out, decode_f32 ? kTileCols * a.k : 0);
        for (int64_t j = 0; j < mb; ++j) {
          store_output(a, r0, m0 + j, out[j]);
          if (r1 >= 0) store_output(a, r1, m0 + j, out[mb + j]);
        }
      });
    }
  });
}

constexpr int64_t kPanelCols = kMatmulRowBlock;  // 6 weight rows per tile
// Longer rows than this take matmul_panels: 3 f32 weight rows of them outgrow a 32 KiB L1.
constexpr int64_t kPanelMinK = 2048;
constexpr int64_t kPanelK = 1024;  // k per block: the tile's 6 weight rows of it (24 KB in f32) stay in L1

// Several activation rows: per tile of 6 weight rows, k's whole 16-blocks in blocks of kPanelK, each
// block against every pair of valid rows, lanes 0-7 then 8-15; a pair's accumulators wait in the
// worker's scratch (the panel, matmul_scratch_floats) between blocks. Then finish_dot_lanes.
void matmul_panels(const MatmulArgs& a, ThreadPool& pool) {
  constexpr int64_t C = kPanelCols, kPairFloats = 2 * 2 * C * 8;  // 2 halves × 2 rows × C outputs × 8 lanes
  static_assert(kPairFloats == kMatmulPanelPairFloats, "matmul_scratch_floats sizes the panel");
  const int64_t k16 = a.k - a.k % 16;  // > 0: panels run for k over kPanelMinK only
  const int64_t n_tiles = (a.m + C - 1) / C;
  pool.parallel_for(n_tiles, 1, [&](int64_t t0, int64_t t1, int worker) {
    float* scratch = pool.scratch(worker);
    float* panel = scratch + (a.w_dtype == DType::F32 ? 0 : C * a.k);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * C, mb = std::min(C, a.m - m0);
      const float* w[C];
      weight_rows(a, m0, mb, scratch, w, C);
      for (int64_t i0 = 0; i0 < k16; i0 += kPanelK) {
        const int64_t i1 = std::min(i0 + kPanelK, k16);
        for_row_pairs(a, [&](int64_t pair, int64_t r0, int64_t r1) {
          for (int64_t h = 0; h < 2; ++h) {
            float* acc = panel + pair * kPairFloats + h * (kPairFloats / 2);
            const float* wh[C];
            for (int64_t c = 0; c < C; ++c) wh[c] = w[c] + 8 * h;
            const float* x[2] = {a.x + r0 * a.k + 8 * h, a.x + (r1 >= 0 ? r1 : r0) * a.k + 8 * h};
            if (r1 >= 0) dot_half_tile<2, C>(x, wh, i0, i1, i0 == 0, acc);
            else dot_half_tile<1, C>(x, wh, i0, i1, i0 == 0, acc);
          }
        });
      }
      for_row_pairs(a, [&](int64_t pair, int64_t r0, int64_t r1) {
        const float* lo = panel + pair * kPairFloats;
        const float* hi = lo + kPairFloats / 2;
        for (int64_t i = 0; i < (r1 >= 0 ? 2 : 1); ++i) {
          const int64_t r = i ? r1 : r0;
          for (int64_t c = 0; c < mb; ++c) {
            const int64_t o = (i * C + c) * 8;
            store_output(a, r, m0 + c, finish_dot_lanes(lo + o, hi + o, a.x + r * a.k, w[c], k16, a.k));
          }
        }
      });
    }
  });
}
// On AVX-512: per tile of 6 weight rows, the valid activation rows 4 at a time (dot_tile512).
void matmul_tiles512(const MatmulArgs& a, ThreadPool& pool) {
  constexpr int64_t C = kMatmulRowBlock, R = 4;
  const int64_t chunk = a.rows / a.batch;
  const int64_t n_tiles = (a.m + C - 1) / C;
  pool.parallel_for(n_tiles, 1, [&](int64_t t0, int64_t t1, int worker) {
    float* scratch = pool.scratch(worker);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * C, mb = std::min(C, a.m - m0);
      const float* w[C];
      weight_rows(a, m0, mb, scratch, w, C);
      int64_t rows[R];
      int n = 0;
      auto flush = [&] {
        const float* x[R];
        float out[R * C];
        for (int i = 0; i < n; ++i) x[i] = a.x + rows[i] * a.k;
        switch (n) {
          case 1:
            dot_tile512<1, C>(x, w, a.k, out);
            break;
          case 2:
            dot_tile512<2, C>(x, w, a.k, out);
            break;
          case 3:
            dot_tile512<3, C>(x, w, a.k, out);
            break;
          default:
            dot_tile512<4, C>(x, w, a.k, out);
            break;
        }
        for (int i = 0; i < n; ++i)
          for (int64_t c = 0; c < mb; ++c) store_output(a, rows[i], m0 + c, out[i * C + c]);
        n = 0;
      };
      for (int64_t r = 0; r < a.rows; ++r) {
        if (!valid_row(a, chunk, r)) continue;
        rows[n++] = r;
        if (n == R) flush();
      }
      if (n > 0) flush();
    }
  });
}

// One activation row, bf16 (T = uint16_t) or int8 weights: on AVX-512 4 bf16 or 8 int8 weight rows at a
// time (8 streams: 1B-shape int8 decode 78 -> 75 ms), widened in registers (dot_tile512_widen); on AVX2
// 4 rows (dot_tile256_widen; its 16 registers hold 4 rows' lanes). The same bits as dot_f32_bf16 or
// dot_f32_i8 row by row.
template <typename T, bool Avx512>
void matvec_widen_tiles(const MatmulArgs& a, ThreadPool& pool) {
  constexpr int64_t C = Avx512 && sizeof(T) == 1 ? 8 : 4;
  const T* w = static_cast<const T*>(a.w);
  pool.parallel_for((a.m + C - 1) / C, 4, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * C, mb = std::min(C, a.m - m0);
      const T* rows[C];
      for (int64_t c = 0; c < C; ++c) rows[c] = w + (m0 + std::min(c, mb - 1)) * a.k;  // a short last tile repeats
      float out[C];
      if constexpr (Avx512) dot_tile512_widen<C>(a.x, rows, a.k, out);
      else dot_tile256_widen<C>(a.x, rows, a.k, out);
      for (int64_t c = 0; c < mb; ++c) store_output(a, 0, m0 + c, out[c]);
    }
  });
}
#endif

// One activation row of i4 or f8e4m3 weights, widened in registers: kWeightRowsDotMax weight rows at a
// time through weight_rows_dot (x86-64-v3: the tiles dot_tile512_i4/_f8 or dot_tile256_i4/_f8, else
// dot_f32_i4/_f8 a row), the same bits as dot_f32_i4 or dot_f32_f8 row by row. (8 rows, as int8 takes
// on AVX-512, decoded the 1B shape with the head in int4 in 29.9-31.3 ms against 4 rows' 27.9-28.5, and
// with an fp8 head in 41.8-42.2 ms against 38.3-39.0, alternated on the EPYC dev VM.)
void matvec_quantized(const MatmulArgs& a, ThreadPool& pool) {
  if (a.n_valid && a.n_valid[0] < 1) return;
  constexpr int64_t C = kWeightRowsDotMax;
  pool.parallel_for((a.m + C - 1) / C, 4, [&](int64_t t0, int64_t t1, int worker) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * C, mb = std::min(C, a.m - m0);
      int64_t rows[C];
      for (int64_t c = 0; c < mb; ++c) rows[c] = m0 + c;
      float out[C];
      weight_rows_dot(a.x, a.w, a.w_dtype, a.w_scale, a.group, rows, int(mb), a.k, pool.scratch(worker), out, a.w_zero);
      for (int64_t c = 0; c < mb; ++c) store_output(a, 0, m0 + c, out[c]);
    }
  });
}

// One activation row of bf16 (T = uint16_t) or int8 weights, widened in registers: AVX-512 or AVX2
// tiles, or a dot product per weight row.
template <typename T>
void matvec_widen(const MatmulArgs& a, ThreadPool& pool) {
  if (a.n_valid && a.n_valid[0] < 1) return;
#ifdef KILN_X86_64_V3_KERNELS
  if (cpu_has_avx512()) return matvec_widen_tiles<T, true>(a, pool);
  if (cpu_has_x86_64_v3()) return matvec_widen_tiles<T, false>(a, pool);
#endif
  const T* w = static_cast<const T*>(a.w);
  pool.parallel_for(a.m, 16, [&](int64_t m0, int64_t m1, int) {
    for (int64_t j = m0; j < m1; ++j) {
      if constexpr (sizeof(T) == 2) store_output(a, 0, j, dot_f32_bf16(a.x, w + j * a.k, a.k));
      else store_output(a, 0, j, dot_f32_i8(a.x, w + j * a.k, a.k));
    }
  });
}

// The portable GEMM tile: out[l] = gemm_ref over k for the 8 rows of xt (xt[i·8 + l]) and weight row w.
__attribute__((always_inline)) inline void gemm_tile8_body(const float* xt, const float* w, int64_t k, float* out,
                                                           bool cont) {
  float acc[8] = {};
  if (cont)
    for (int l = 0; l < 8; ++l) acc[l] = out[l];
  for (int64_t i = 0; i < k; ++i)
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(xt[i * 8 + l], w[i], acc[l]);
  for (int l = 0; l < 8; ++l) out[l] = acc[l];
}
void gemm_tile8(const float* xt, const float* w, int64_t k, float* out, bool cont) {
  gemm_tile8_body(xt, w, k, out, cont);
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2,fma"))) void gemm_tile8_fma(const float* xt, const float* w, int64_t k, float* out,
                                                        bool cont) {
  gemm_tile8_body(xt, w, k, out, cont);
}
#else
void gemm_tile8_fma(const float* xt, const float* w, int64_t k, float* out, bool cont) {
  gemm_tile8_body(xt, w, k, out, cont);
}
#endif

}  // namespace

void matmul_cpu(const MatmulArgs& a, ThreadPool& pool) {
  const int64_t chunk = a.rows / a.batch;
  if (a.rows == 1 && a.w_dtype == DType::BF16) return matvec_widen<uint16_t>(a, pool);
  if (a.rows == 1 && a.w_dtype == DType::I8) return matvec_widen<int8_t>(a, pool);
  if (a.rows == 1 && (a.w_dtype == DType::I4 || a.w_dtype == DType::F8E4M3)) return matvec_quantized(a, pool);
  if (a.rows >= kGemmMinRows) {
#ifdef KILN_X86_64_V3_KERNELS
    // AVX-512: 32 rows × 12 weight rows (24 accumulators); AVX2: 16 × 6 (12). A short last block of
    // rows runs half the vectors where it fits them.
    if (cpu_has_avx512())
      return matmul_gemm<32, 12>(a, pool,
                                 [](const float* xt, const float* w, int64_t ldw, int64_t k, int64_t nr, float* out,
                                    const TilePrefetch& pf, bool cont) {
                                   if (nr > 16) gemm_tile512<2, 12, 32>(xt, w, ldw, k, out, pf, cont);
                                   else gemm_tile512<1, 12, 32>(xt, w, ldw, k, out, pf, cont);
                                 });
    if (cpu_has_x86_64_v3())
      return matmul_gemm<16, 6>(a, pool,
                                [](const float* xt, const float* w, int64_t ldw, int64_t k, int64_t nr, float* out,
                                   const TilePrefetch&, bool cont) {
                                  if (nr > 8) gemm_tile256<2, 6, 16>(xt, w, ldw, k, out, cont);
                                  else gemm_tile256<1, 6, 16>(xt, w, ldw, k, out, cont);
                                });
#endif
      // Elsewhere the definition itself, 8 rows by 1 weight row a tile (gemm_tile8): independent lanes.
      // On x86-64 without the tiles above (clang and sanitizer builds) std::fma is a library call unless
      // the function may use FMA instructions, so an FMA clone runs where the CPU has them (about 10x).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    const bool fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    const bool fma = false;
#endif
    return matmul_gemm<8, 1>(a, pool,
                             [fma](const float* xt, const float* w, int64_t, int64_t k, int64_t, float* out,
                                   const TilePrefetch&, bool cont) {
                               if (fma) gemm_tile8_fma(xt, w, k, out, cont);
                               else gemm_tile8(xt, w, k, out, cont);
                             });
  }
#ifdef KILN_X86_64_V3_KERNELS
  // One row (decode) keeps the AVX2 tiles: memory-bound, it ran 4% slower on the 6-row AVX-512 tiles
  // (SmolLM2 f32 decode, alternating runs on the Xeon dev VM).
  if (cpu_has_avx512() && a.rows > 1) return matmul_tiles512(a, pool);
  if (cpu_has_x86_64_v3()) return a.rows > 1 && a.k > kPanelMinK ? matmul_panels(a, pool) : matmul_tiles(a, pool);
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
        if (!valid_row(a, chunk, r)) continue;
        for (int64_t j = 0; j < mb; ++j) store_output(a, r, m0 + j, dot_f32(a.x + r * a.k, wrows[j], a.k));
      }
    }
  });
}

}  // namespace kiln
