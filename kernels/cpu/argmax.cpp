#include "kernels/argmax.h"

#include <cmath>

namespace kiln {

int32_t argmax_row(const float* logits, int64_t vocab) {
  int64_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
  return best < 0 ? 0 : int32_t(best);
}

void argmax_cpu(const ArgmaxArgs& a) {
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t n = a.n_valid[b] < a.chunk ? a.n_valid[b] : a.chunk;
    a.next[b] = n > 0 ? argmax_row(a.logits + (b * a.chunk + n - 1) * a.vocab, a.vocab) : -1;
  }
}

}  // namespace kiln
