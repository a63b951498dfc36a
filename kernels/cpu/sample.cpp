#include "kernels/sample.h"

#include <algorithm>
#include <cmath>

namespace kiln {

int32_t argmax_row(const float* logits, int64_t vocab) {
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
  return best < 0 ? 0 : int32_t(best);
}

int32_t sample_row(const float* logits, int64_t vocab, const SampleParams& p, int32_t* ids, float* probs) {
  if (!(p.temperature > 0.0f)) return argmax_row(logits, vocab);

  // Candidates sorted by logit (descending, ties by id), cut by top-k.
  int64_t n = vocab;
  for (int64_t i = 0; i < vocab; ++i) ids[i] = int32_t(i);
  // A total order (NaN last), so the sort is well defined for any row and the CUDA kernel, which
  // uses the same keys, orders the candidates identically.
  auto by_logit = [&](int32_t a, int32_t b) {
    const uint32_t ka = sample_order_key(logits[a]), kb = sample_order_key(logits[b]);
    return ka > kb || (ka == kb && a < b);
  };
  if (p.top_k > 0 && p.top_k < vocab) {
    n = p.top_k;
    std::partial_sort(ids, ids + n, ids + vocab, by_logit);
  } else {
    std::sort(ids, ids + vocab, by_logit);
  }
  // Softmax at temperature over the candidates (max first, so exp never overflows).
  const double inv_t = 1.0 / double(p.temperature);
  const double mx = double(logits[ids[0]]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double e = std::exp((double(logits[ids[i]]) - mx) * inv_t);
    probs[i] = float(e);
    sum += e;
  }
  return sample_pick(ids, probs, n, sum, p);
}

void sample_cpu(const SampleArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.batch, 1, [&](int64_t b0, int64_t b1, int worker) {
    float* probs = pool.scratch(worker);                         // vocab floats
    int32_t* ids = reinterpret_cast<int32_t*>(probs + a.vocab);  // then vocab ids
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = std::min<int64_t>(a.n_valid[b], a.chunk);
      if (n <= 0) {
        a.next[b] = -1;
        continue;
      }
      const float* row = a.logits + (b * a.chunk + n - 1) * a.vocab;
      a.next[b] = a.params ? sample_row(row, a.vocab, a.params[b], ids, probs) : argmax_row(row, a.vocab);
    }
  });
}

}  // namespace kiln
