#include "runtime/sampling.h"

namespace kiln {

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, uint64_t step, SamplerScratch& s) {
  const SampleParams kp{p.temperature, p.top_k, p.top_p, 0, p.seed, step};
  return sample_row(logits, vocab, kp, s.ids.data(), s.probs.data());
}

}  // namespace kiln
