// Token sampling from one row of logits: greedy, temperature, top-k and top-p, driven by a
// counter-based random number (seed, step), so a given seed always gives the same tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/sample.h"

namespace kiln {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax_row: the lowest id wins a tie, NaN never)
  int32_t top_k = 0;         // <= 0: no top-k filter
  float top_p = 1.0f;        // >= 1: no nucleus filter
  uint64_t seed = 0;
};

// uniform_from_counter, argmax_row and sample_row (the rule itself, shared with the plan's
// `sample` kernel) are in kernels/sample.h.

// Scratch for sample_token, allocated once per context.
struct SamplerScratch {
  std::vector<int32_t> ids;
  std::vector<float> probs;
  explicit SamplerScratch(int64_t vocab = 0) : ids(size_t(vocab)), probs(size_t(vocab)) {}
};

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, uint64_t step,
                     SamplerScratch& scratch);

}  // namespace kiln
