#include "runtime/sampling.h"

#include "kernels/argmax.h"

#include <algorithm>
#include <cmath>

namespace kiln {

float uniform_from_counter(uint64_t seed, uint64_t step) {
  uint64_t z = seed + (step + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);  // 24 random bits
}

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, uint64_t step,
                     SamplerScratch& s) {
  if (!(p.temperature > 0.0f)) return argmax_row(logits, vocab);

  // Candidates sorted by logit (descending, ties by id), cut by top-k.
  int64_t n = vocab;
  for (int64_t i = 0; i < vocab; ++i) s.ids[size_t(i)] = int32_t(i);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (p.top_k > 0 && p.top_k < vocab) {
    n = p.top_k;
    std::partial_sort(s.ids.begin(), s.ids.begin() + n, s.ids.begin() + vocab, by_logit);
  } else {
    std::sort(s.ids.begin(), s.ids.begin() + vocab, by_logit);
  }
  // Softmax at temperature over the candidates (max first, so exp never overflows).
  const double inv_t = 1.0 / double(p.temperature);
  const double mx = double(logits[s.ids[0]]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double e = std::exp((double(logits[s.ids[size_t(i)]]) - mx) * inv_t);
    s.probs[size_t(i)] = float(e);
    sum += e;
  }
  // Nucleus: the shortest prefix whose mass reaches top_p (at least one token).
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    int64_t keep = 0;
    while (keep < n) {
      cum += double(s.probs[size_t(keep)]) / sum;
      ++keep;
      if (cum >= double(p.top_p)) break;
    }
    n = keep;
    sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(s.probs[size_t(i)]);
  }
  const double u = double(uniform_from_counter(p.seed, step)) * sum;
  double cum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    cum += double(s.probs[size_t(i)]);
    if (u < cum) return s.ids[size_t(i)];
  }
  return s.ids[size_t(n - 1)];
}

}  // namespace kiln
