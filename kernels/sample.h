// The next token of each batch row, on the backend that ran the model. For each batch row b with
// n_valid[b] > 0 it reads row b·chunk + n_valid[b] − 1 of the logits (the row's last valid
// position, n_valid clamped to chunk) and writes one id; rows with n_valid[b] == 0 get −1.
//   params null, or temperature <= 0: greedy (argmax_row: the lowest id wins a tie, NaN is never
//     chosen, a row of only NaN gives 0);
//   otherwise sample_row: top-k, softmax at the temperature, top-p, then one uniform draw from
//     (seed, step), exactly as runtime/sampling.h's sample_token does on the host.
// The CUDA kernel samples with top_k in [1, kSampleMaxTopK] only (it selects the candidates by a
// radix select and sorts them in shared memory); for other top_k with a temperature it writes −1
// and the host samples from the logits (Context::generate knows this and copies them then).
// logits: (batch·chunk, vocab) f32; n_valid: (batch,) i32; params: (batch, 8) i32 words, each row a
// SampleParams (may be absent) → next: (batch,) i32
// Plan operands: inputs {logits, n_valid, params}; outputs {next}.
// CPU scratch: 2·vocab floats per worker.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kSampleOp;

// One batch row's sampling parameters, as the plan's state holds them (8 i32 words).
struct SampleParams {
  float temperature;  // <= 0: greedy
  int32_t top_k;      // <= 0: no top-k filter
  float top_p;        // >= 1: no nucleus filter
  uint32_t reserved;
  uint64_t seed;
  uint64_t step;  // the draw's counter: generate() uses the index of the token being chosen
};
static_assert(sizeof(SampleParams) == 32, "SampleParams is 8 i32 words");
constexpr int64_t kSampleParamWords = 8;
constexpr int32_t kSampleMaxTopK = 1024;

// Uniform float in [0, 1) from (seed, step): splitmix64 of a counter, no hidden state.
KILN_HOST_DEVICE inline float uniform_from_counter(uint64_t seed, uint64_t step) {
  uint64_t z = seed + (step + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(z >> 40) * (1.0f / 16777216.0f);  // 24 random bits
}

// The candidate order's key: larger logits give larger keys, -0 and +0 the same key (they compare
// equal), NaN the smallest (after every number). Candidates sort by (key desc, id asc).
KILN_HOST_DEVICE inline uint32_t sample_order_key(float f) {
  if (f != f) return 0u;  // NaN
  uint32_t u;
  static_assert(sizeof(u) == sizeof(f), "f32");
  __builtin_memcpy(&u, &f, sizeof(u));
  if (u == 0x80000000u) u = 0u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The end of the sampling rule, shared by both backends so they cannot drift apart: given the n
// candidates' ids in order, their probabilities as float (unnormalised, probs[i] = float(e_i))
// and sum = Σ e_i in double, cut the nucleus (the shortest prefix whose mass reaches top_p, at
// least one), then pick by inverse CDF with the (seed, step) draw.
KILN_HOST_DEVICE inline int32_t sample_pick(const int32_t* ids, const float* probs, int64_t n, double sum,
                                            const SampleParams& p) {
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    int64_t keep = 0;
    while (keep < n) {
      cum += double(probs[keep]) / sum;
      ++keep;
      if (cum >= double(p.top_p)) break;
    }
    n = keep;
    sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(probs[i]);
  }
  const double u = double(uniform_from_counter(p.seed, p.step)) * sum;
  double cum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    cum += double(probs[i]);
    if (u < cum) return ids[i];
  }
  return ids[n - 1];
}

// The greedy rule on one row of logits.
int32_t argmax_row(const float* logits, int64_t vocab);

// The sampling rule on one row, with scratch for vocab ids and vocab probabilities.
int32_t sample_row(const float* logits, int64_t vocab, const SampleParams& p, int32_t* ids, float* probs);

struct SampleArgs {
  const float* logits;
  const int32_t* n_valid;
  const SampleParams* params;  // null: greedy
  int32_t* next;
  int64_t batch, chunk, vocab;
};

// sample_cpu's scratch per worker (the op's validate() reserves it): vocab probabilities, then
// vocab token ids (i32, the size of a float).
inline uint64_t sample_scratch_floats(int64_t vocab) { return 2 * uint64_t(vocab); }

void sample_cpu(const SampleArgs& a, ThreadPool& pool);

// Token feedback, the step between two decode replays of a generate loop that the backend takes
// without the host (runtime/token_feedback.h): every row with n_valid > 0 takes the token the last
// replay chose as its input, one position further, and the next draw of its sampling counter.
// Idle rows (n_valid <= 0) keep their state. The CUDA backend runs this as a graph node.
struct FeedbackArgs {
  int32_t* tokens;         // (batch, 1): the decode input
  int32_t* start_pos;      // (batch,)
  const int32_t* n_valid;  // (batch,)
  SampleParams* sampling;  // (batch,), may be null
  const int32_t* next;     // (batch,): the last replay's next_token
  int64_t batch;
};

KILN_HOST_DEVICE inline void feedback_row(const FeedbackArgs& a, int64_t r) {
  if (a.n_valid[r] <= 0) return;
  a.tokens[r] = a.next[r];
  a.start_pos[r] += 1;
  if (a.sampling) a.sampling[r].step += 1;
}

}  // namespace kiln
