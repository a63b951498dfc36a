// Greedy next token on the backend that ran the model: for each batch row b with
// n_valid[b] > 0, the id of the largest logit in row b·chunk + n_valid[b] − 1 (the row's last
// valid position); the lowest id wins a tie, NaN logits are never chosen, and a row of only NaN
// gives 0. Rows with n_valid[b] == 0 get −1. The same rule as sample_token's greedy case
// (runtime/sampling.h), so a host that samples greedily from the logits gets the same ids.
// logits: (batch·chunk, vocab) f32; n_valid: (batch,) i32 → next: (batch,) i32
// Plan operands: inputs {logits, n_valid}; outputs {next}.
#pragma once
#include <cstdint>

namespace kiln {

struct ArgmaxArgs {
  const float* logits;
  const int32_t* n_valid;
  int32_t* next;
  int64_t batch, chunk, vocab;
};

// The greedy rule on one row of logits (shared by argmax_cpu and sample_token).
int32_t argmax_row(const float* logits, int64_t vocab);

void argmax_cpu(const ArgmaxArgs& a);

}  // namespace kiln
