// CPU attention: one work item per (row, head). Scores for the visible prefix go to the
// worker's scratch (max_seq floats; a sliding window reads only its last positions), then a max-subtracted softmax and
// a weighted sum of V.
// On x86-64-v3 CPUs one work item is a (row, pair of query heads of one KV group): the two heads
// share each cache row, read once (and widened once for bf16/f16 caches) instead of once each, and the
// scores and weighted sums run as register tiles (kernels/cpu/tiles.h). The arithmetic is the
// per-head loop's, operation for operation, so both give the same bits.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/tiles.h"

namespace kiln {

namespace {

// Reads head_dim values of a cache row as f32 into dst (or returns the row itself when f32).
const float* cache_row(const void* cache, DType t, uint64_t index, int64_t n, float* dst) {
  if (t == DType::F32) return static_cast<const float*>(cache) + index;
  convert_to_f32(static_cast<const uint8_t*>(cache) + index * dtype_size(t), t, dst, uint64_t(n));
  return dst;
}

#ifdef KILN_X86_64_V3_KERNELS
void attention_tiled(const AttentionArgs& a, ThreadPool& pool) {
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const int64_t group = a.n_heads / a.n_kv_heads, hd = a.head_dim;
  const int64_t kv = a.n_kv_heads * hd;
  const int64_t out_w = a.n_heads * hd;
  const bool f32 = a.cache_dtype == DType::F32;
  const int64_t pairs = (group + 1) / 2;  // work items per (row, KV head): its query heads, two at a time
  pool.parallel_for(a.batch * a.chunk * a.n_kv_heads * pairs, 1, [&](int64_t i0, int64_t i1, int worker) {
    float* scores = pool.scratch(worker);       // 2 × max_seq
    float* block = scores + 2 * a.max_seq;      // kAttentionKeyBlock widened cache rows
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t r = item / (a.n_kv_heads * pairs), kvh = item / pairs % a.n_kv_heads;
      const int64_t b = r / a.chunk, t = r % a.chunk;
      const int64_t h0 = kvh * group + item % pairs * 2, nh = std::min<int64_t>(2, (kvh + 1) * group - h0);
      float* out = a.out + r * out_w + h0 * hd;  // query heads h0 (and h0 + 1)
      std::fill(out, out + nh * hd, 0.0f);
      const int64_t p = int64_t(a.start_pos[b]) + t;
      if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) continue;
      const float* q = a.qkv + r * width + h0 * hd;
      const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * hd);
      const int64_t j0 = attention_first_key(p, a.window), n = p - j0 + 1;
      // Rows j0+jb … of one cache as f32 row pointers (widened into `block` unless f32).
      const float* rows[kAttentionKeyBlock];
      auto cache_rows = [&](const void* cache, int64_t jb, int64_t nb) {
        for (int64_t i = 0; i < nb; ++i) {
          const uint64_t at = base + uint64_t((j0 + jb + i) * kv);
          if (f32) {
            rows[i] = static_cast<const float*>(cache) + at;
          } else {
            convert_to_f32(static_cast<const uint8_t*>(cache) + at * dtype_size(a.cache_dtype), a.cache_dtype,
                           block + i * hd, uint64_t(hd));
            rows[i] = block + i * hd;
          }
        }
      };
      // Scores: the item's heads against each block of keys, two heads × three keys a tile.
      const float* qs[2] = {q, q + hd};
      for (int64_t jb = 0; jb < n; jb += kAttentionKeyBlock) {
        const int64_t nb = std::min(kAttentionKeyBlock, n - jb);
        cache_rows(a.k_cache, jb, nb);
        float tile[6];
        for (int64_t c = 0; c < nb; c += 3) {
          const int64_t nc = std::min<int64_t>(3, nb - c);
          if (nh == 2) dot_tile_cols<2>(qs, rows + c, nc, hd, tile);
          else dot_tile_cols<1>(qs, rows + c, nc, hd, tile);
          for (int64_t h = 0; h < nh; ++h)
            for (int64_t i = 0; i < nc; ++i) scores[h * a.max_seq + jb + c + i] = tile[h * nc + i] * a.scale;
        }
      }
      for (int64_t h = 0; h < nh; ++h) softmax_inplace(scores + h * a.max_seq, n);
      // The weighted sums of V, both heads sharing each value row.
      const float* s[2] = {scores, scores + a.max_seq};
      float* o[2] = {out, out + hd};
      for (int64_t jb = 0; jb < n; jb += kAttentionKeyBlock) {
        const int64_t nb = std::min(kAttentionKeyBlock, n - jb);
        cache_rows(a.v_cache, jb, nb);
        const float* sb[2] = {s[0] + jb, s[1] + jb};
        if (nh == 2) axpy_tile<2>(sb, rows, nb, o, hd);
        else axpy_tile<1>(sb, rows, nb, o, hd);
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
        scores[j - j0] = dot_f32(q, k, a.head_dim) * a.scale;
      }
      softmax_inplace(scores, p - j0 + 1);
      for (int64_t j = j0; j <= p; ++j) {
        const float* v = cache_row(a.v_cache, a.cache_dtype, base + uint64_t(j * kv), a.head_dim, rowbuf);
        axpy_f32(scores[j - j0], v, o, a.head_dim);
      }
    }
  });
}

}  // namespace kiln
