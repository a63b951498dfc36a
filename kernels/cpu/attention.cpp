// CPU attention: one work item per (row, head). Scores for the visible prefix go to the
// worker's scratch (max_seq floats; a sliding window reads only its last positions), then a max-subtracted softmax and
// a weighted sum of V.
// On x86-64-v3 CPUs one work item is (up to attention_row_block(max_seq) rows, a pair of query heads of one
// KV group): its rows and heads share each cache row, read once (and widened once for bf16/f16
// caches) instead of once per row and head, and the
// scores and weighted sums run as register tiles (kernels/cpu/tiles.h; their AVX-512 forms where
// the CPU has it). The arithmetic is the per-head loop's, operation for operation, so both give the
// same bits.
#include "kernels/attention.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cpu/gemm_tiles.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/tiles.h"
#include "kernels/matmul.h"

namespace kiln {

namespace {

// Reads head_dim values of a cache row as f32 into dst (or returns the row itself when f32).
const float* cache_row(const void* cache, DType t, uint64_t index, int64_t n, float* dst) {
  if (t == DType::F32) return static_cast<const float*>(cache) + index;
  convert_to_f32(static_cast<const uint8_t*>(cache) + index * dtype_size(t), t, dst, uint64_t(n));
  return dst;
}

// The scores s[0..] of keys j0..p for the query at position p of head h: ALiBi's bias added (attention_alibi), then
// Gemma 2's soft cap (cap 0: none).
void bias_and_cap(const AttentionArgs& a, int64_t h, float* s, int64_t j0, int64_t p) {
  if (a.alibi)
    for (int64_t j = j0; j <= p; ++j) s[j - j0] += attention_alibi(a, h, j, p);
  if (a.softcap > 0)
    for (int64_t j = 0; j <= p - j0; ++j) s[j] = attention_softcap(s[j], a.softcap);
}

// q·k for a chunk's scores: from kGemmMinRows rows (prefill) the chain of FMAs over head_dim (gemm_ref,
// as the matmul's GEMM), run as outer-product tiles; fewer (decode) dot_f32's lanes.
inline float score_dot(bool chain, const float* q, const float* k, int64_t hd) {
  return chain ? gemm_ref(q, k, hd) : dot_f32(q, k, hd);
}

#ifdef KILN_X86_64_V3_KERNELS
// out[c·kAttentionKeyBlock + j] = gemm_ref(q + c·hd, key j, hd) for c < nq packed query rows and the
// block's keys j < kAttentionKeyBlock, from kt, the keys transposed (kt[d·kAttentionKeyBlock + j]):
// outer-product tiles of 32 + 16 keys (AVX-512) or 3 × 16 (AVX2) by 12, 4 or 1 (6, 2 or 1) queries.
template <int C>
void score_tiles_c(bool avx512, const float* kt, const float* q, int64_t hd, float* out) {
  constexpr int64_t S = kAttentionKeyBlock;
  static_assert(S == 48, "the tiles cover 32 + 16 or 3 × 16 keys");
  if (avx512) {
    gemm_tile512<2, C, S>(kt, q, hd, hd, out);
    gemm_tile512<1, C, S>(kt + 32, q, hd, hd, out + 32);
  } else {
    for (int64_t j = 0; j < S; j += 16) gemm_tile256<2, C, S>(kt + j, q, hd, hd, out + j);
  }
}
void score_tiles(bool avx512, const float* kt, const float* q, int64_t nq, int64_t hd, float* out) {
  int64_t c = 0;
  if (avx512) {
    for (; c + 12 <= nq; c += 12) score_tiles_c<12>(true, kt, q + c * hd, hd, out + c * kAttentionKeyBlock);
    for (; c + 4 <= nq; c += 4) score_tiles_c<4>(true, kt, q + c * hd, hd, out + c * kAttentionKeyBlock);
  } else {
    for (; c + 6 <= nq; c += 6) score_tiles_c<6>(false, kt, q + c * hd, hd, out + c * kAttentionKeyBlock);
    for (; c + 2 <= nq; c += 2) score_tiles_c<2>(false, kt, q + c * hd, hd, out + c * kAttentionKeyBlock);
  }
  for (; c < nq; ++c) score_tiles_c<1>(avx512, kt, q + c * hd, hd, out + c * kAttentionKeyBlock);
}

// kt[d·kAttentionKeyBlock + j] = rows[j][d] for the block's nb keys, zeros for the rest of it.
void transpose_keys(bool avx512, const float* const* rows, int64_t nb, int64_t hd, float* kt) {
  const float* src[kAttentionKeyBlock];
  for (int64_t j = 0; j < kAttentionKeyBlock; ++j) src[j] = j < nb ? rows[j] : nullptr;
  transpose_rows<kAttentionKeyBlock>(src, hd, kt, avx512);
}

// o[r][d] += the weighted sums of R rows sharing one key range (axpy_tile512 or axpy_tile), R ≤ 6.
void axpy_rows(bool avx512, int64_t R, const float* const* s, const float* const* v, int64_t n, float* const* o,
               int64_t hd) {
  if (!avx512) {  // (AVX2: 2 rows of 4 × 8 columns fill its 16 registers)
    for (int64_t r = 0; r < R; r += 2)
      if (r + 1 < R) axpy_tile<2>(s + r, v, n, o + r, hd);
      else axpy_tile<1>(s + r, v, n, o + r, hd);
    return;
  }
  switch (R) {
    case 1:
      return axpy_tile512<1>(s, v, n, o, hd);
    case 2:
      return axpy_tile512<2>(s, v, n, o, hd);
    case 3:
      return axpy_tile512<3>(s, v, n, o, hd);
    case 4:
      return axpy_tile512<4>(s, v, n, o, hd);
    case 5:
      return axpy_tile512<5>(s, v, n, o, hd);
    default:
      return axpy_tile512<6>(s, v, n, o, hd);
  }
}

void attention_tiled(const AttentionArgs& a, ThreadPool& pool) {
  if (a.chunk <= 0 || a.batch <= 0) return;  // (plans have neither; direct callers might)
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const int64_t group = a.n_heads / a.n_kv_heads, hd = a.head_dim;
  const int64_t kv = a.n_kv_heads * hd;
  const int64_t out_w = a.n_heads * hd;
  const bool f32 = a.cache_dtype == DType::F32;
  const int64_t pairs = (group + 1) / 2;  // query heads of a KV group, two at a time
  const bool avx512 = cpu_has_avx512();
  // As few row blocks as the scratch allows, of even sizes (28, 28 and 8 rows would make some items
  // several times as long as others).
  const int64_t fit = attention_row_block(a.max_seq);
  const int64_t row_blocks = (a.chunk + fit - 1) / fit;
  const int64_t row_block = (a.chunk + row_blocks - 1) / row_blocks;
  const int64_t items = a.batch * row_blocks * a.n_kv_heads * pairs;
  const bool chain = a.chunk >= kGemmMinRows;
  // Items are claimed one at a time (their costs differ: a causal chunk's later rows see more keys,
  // a KV group of 3 heads pairs 2 + 1), the last row blocks of every batch row first.
  pool.parallel_items(items, [&](int64_t i0, int64_t i1, int worker) {
    float* scores = pool.scratch(worker);                       // (row, head) → max_seq, by key position
    float* block = scores + attention_score_floats(a.max_seq);  // kAttentionKeyBlock widened cache rows
    float* kt = block + kAttentionKeyBlock * hd;                // (chain) the block's keys transposed
    float* qp = kt + kAttentionKeyBlock * hd;                   // (chain) the item's query rows, (row, head) packed
    float* tile = qp + 2 * kAttentionMaxRowBlock * hd;          // (chain) their scores against one key block
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t pair = item % pairs, kvh = item / pairs % a.n_kv_heads;
      const int64_t b = item / (pairs * a.n_kv_heads) % a.batch;
      const int64_t rb = row_blocks - 1 - item / (pairs * a.n_kv_heads * a.batch);
      const int64_t h0 = kvh * group + pair * 2, nh = std::min<int64_t>(2, (kvh + 1) * group - h0);
      const int64_t t0 = rb * row_block, t1 = std::min(a.chunk, t0 + row_block);
      // The block's valid rows: each sees keys j0[i] … p[i]; jlo … jhi covers them all.
      int64_t nr = 0, ts[kAttentionMaxRowBlock], j0[kAttentionMaxRowBlock], p[kAttentionMaxRowBlock];
      int64_t jlo = INT64_MAX, jhi = -1;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t r = b * a.chunk + t;
        std::fill(a.out + r * out_w + h0 * hd, a.out + r * out_w + (h0 + nh) * hd, 0.0f);
        const int64_t pos = int64_t(a.start_pos[b]) + t;
        if (t >= a.n_valid[b] || pos < 0 || pos >= a.max_seq) continue;
        ts[nr] = t;
        p[nr] = pos;
        j0[nr] = attention_first_key(pos, a.window);
        jlo = std::min(jlo, j0[nr]);
        jhi = std::max(jhi, pos);
        ++nr;
      }
      if (nr == 0) continue;
      const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * hd);
      // Cache rows j … j+nb−1 as f32 row pointers (widened into `block` unless f32), once for
      // every row of the block.
      const float* rows[kAttentionKeyBlock];
      auto cache_rows = [&](const void* cache, int64_t j, int64_t nb) {
        for (int64_t i = 0; i < nb; ++i) {
          const uint64_t at = base + uint64_t((j + i) * kv);
          if (f32) {
            rows[i] = static_cast<const float*>(cache) + at;
          } else {
            convert_to_f32(static_cast<const uint8_t*>(cache) + at * dtype_size(a.cache_dtype), a.cache_dtype,
                           block + i * hd, uint64_t(hd));
            rows[i] = block + i * hd;
          }
        }
      };
      auto score_row = [&](int64_t i, int64_t h) { return scores + (2 * i + h) * a.max_seq; };
      auto q_row = [&](int64_t i, int64_t h) { return a.qkv + (b * a.chunk + ts[i]) * width + (h0 + h) * hd; };
      // Prefill: every (row, head) of the item against each whole key block as outer-product tiles
      // (keys transposed once a block, zeros past its last), each row's visible keys kept.
      if (chain) {
        for (int64_t i = 0; i < nr; ++i)
          for (int64_t h = 0; h < nh; ++h) std::copy(q_row(i, h), q_row(i, h) + hd, qp + (i * nh + h) * hd);
        for (int64_t jb = jlo; jb <= jhi; jb += kAttentionKeyBlock) {
          const int64_t nb = std::min(kAttentionKeyBlock, jhi + 1 - jb);
          cache_rows(a.k_cache, jb, nb);
          transpose_keys(avx512, rows, nb, hd, kt);
          score_tiles(avx512, kt, qp, nr * nh, hd, tile);
          for (int64_t i = 0; i < nr; ++i) {
            const int64_t lo = std::max(jb, j0[i]), hi = std::min(jb + nb - 1, p[i]);
            for (int64_t h = 0; h < nh; ++h) {
              const float* t = tile + (i * nh + h) * kAttentionKeyBlock;
              float* sr = score_row(i, h);
              for (int64_t j = lo; j <= hi; ++j) sr[j] = t[j - jb] * a.scale;
            }
          }
        }
      }
      // Scores: each row's two heads against its visible keys of each block, 2 heads × 3 keys a tile.
      for (int64_t jb = jlo; jb <= jhi && !chain; jb += kAttentionKeyBlock) {
        const int64_t nb = std::min(kAttentionKeyBlock, jhi + 1 - jb);
        cache_rows(a.k_cache, jb, nb);
        for (int64_t i = 0; i < nr; ++i) {
          const int64_t lo = std::max(jb, j0[i]), hi = std::min(jb + nb - 1, p[i]);
          const float* q = a.qkv + (b * a.chunk + ts[i]) * width + h0 * hd;
          const float* qs[2] = {q, q + hd};
          float dots[12];
          if (avx512) {  // 2 heads × 6 keys a tile; a short last tile repeats its last key
            for (int64_t j = lo; j <= hi; j += 6) {
              const int64_t nc = std::min<int64_t>(6, hi + 1 - j);
              const float* keys[6];
              for (int64_t c = 0; c < 6; ++c) keys[c] = rows[j - jb + std::min(c, nc - 1)];
              if (nh == 2) dot_tile512<2, 6>(qs, keys, hd, dots);
              else dot_tile512<1, 6>(qs, keys, hd, dots);
              for (int64_t h = 0; h < nh; ++h)
                for (int64_t c = 0; c < nc; ++c) score_row(i, h)[j + c] = dots[h * 6 + c] * a.scale;
            }
            continue;
          }
          for (int64_t j = lo; j <= hi; j += 3) {
            const int64_t nc = std::min<int64_t>(3, hi + 1 - j);
            if (nh == 2) dot_tile_cols<2>(qs, rows + (j - jb), nc, hd, dots);
            else dot_tile_cols<1>(qs, rows + (j - jb), nc, hd, dots);
            for (int64_t h = 0; h < nh; ++h)
              for (int64_t c = 0; c < nc; ++c) score_row(i, h)[j + c] = dots[h * nc + c] * a.scale;
          }
        }
      }
      for (int64_t i = 0; i < nr; ++i)
        for (int64_t h = 0; h < nh; ++h) {
          bias_and_cap(a, h0 + h, score_row(i, h) + j0[i], j0[i], p[i]);
          softmax_inplace(score_row(i, h) + j0[i], p[i] - j0[i] + 1, attention_sink(a, h0 + h));
        }
      // The weighted sums of V, in key order for every row: both heads share each value row.
      for (int64_t jb = jlo; jb <= jhi; jb += kAttentionKeyBlock) {
        const int64_t nb = std::min(kAttentionKeyBlock, jhi + 1 - jb);
        cache_rows(a.v_cache, jb, nb);
        // Consecutive rows whose visible keys of the block are the same share each value row, up to
        // 6 (row, head) sums at a time (each sum's chain over the keys is the same however many share).
        const float* s[6];
        float* o[6];
        int64_t n = 0, run_lo = 0, run_hi = -1;
        auto flush = [&] {
          if (n > 0) axpy_rows(avx512, n, s, rows + (run_lo - jb), run_hi + 1 - run_lo, o, hd);
          n = 0;
        };
        for (int64_t i = 0; i < nr; ++i) {
          const int64_t lo = std::max(jb, j0[i]), hi = std::min(jb + nb - 1, p[i]);
          if (lo > hi) continue;
          if (n > 0 && (lo != run_lo || hi != run_hi || n + nh > 6)) flush();
          run_lo = lo;
          run_hi = hi;
          float* out = a.out + (b * a.chunk + ts[i]) * out_w + h0 * hd;
          for (int64_t h = 0; h < nh; ++h) {
            s[n] = score_row(i, h) + lo;
            o[n++] = out + h * hd;
          }
        }
        flush();
      }
    }
  });
}
#endif

}  // namespace

void attention_cpu(const AttentionArgs& a, ThreadPool& pool) {
#ifdef KILN_X86_64_V3_KERNELS
  if (cpu_has_x86_64_v3()) return attention_tiled(a, pool);
#endif
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t kv = a.n_kv_heads * a.head_dim;
  const int64_t out_w = a.n_heads * a.head_dim;
  const bool chain = a.chunk >= kGemmMinRows;
  pool.parallel_for(a.batch * a.chunk * a.n_heads, 1, [&](int64_t i0, int64_t i1, int worker) {
    float* scores = pool.scratch(worker);  // max_seq
    float* rowbuf = scores + a.max_seq;    // head_dim, for non-f32 caches
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t r = item / a.n_heads, h = item % a.n_heads;
      const int64_t b = r / a.chunk, t = r % a.chunk;
      float* o = a.out + r * out_w + h * a.head_dim;
      for (int64_t d = 0; d < a.head_dim; ++d) o[d] = 0.0f;
      const int64_t p = int64_t(a.start_pos[b]) + t;
      if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) continue;
      const float* q = a.qkv + r * width + h * a.head_dim;
      const int64_t kvh = h / group;
      const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * a.head_dim);
      const int64_t j0 = attention_first_key(p, a.window);
      for (int64_t j = j0; j <= p; ++j) {
        const float* k = cache_row(a.k_cache, a.cache_dtype, base + uint64_t(j * kv), a.head_dim, rowbuf);
        scores[j - j0] = score_dot(chain, q, k, a.head_dim) * a.scale;
      }
      bias_and_cap(a, h, scores, j0, p);
      softmax_inplace(scores, p - j0 + 1, attention_sink(a, h));
      for (int64_t j = j0; j <= p; ++j) {
        const float* v = cache_row(a.v_cache, a.cache_dtype, base + uint64_t(j * kv), a.head_dim, rowbuf);
        axpy_f32(scores[j - j0], v, o, a.head_dim);
      }
    }
  });
}

}  // namespace kiln
