// Token feedback: generate's decode loop with its tokens kept on the backend. Each step after the
// first takes its input token, position and sampling draw counter from the step before
// (feedback_row, kernels/sample.h); the host only reads the tokens as they land, so steps can be
// queued ahead of it. A backend may provide this itself (Executor::enable_token_feedback: CUDA
// captures a decode graph with a feedback node and a publish node); for one that does not (the
// CPU), make_token_feedback runs the same steps one at a time on the host state. Context::generate
// drives either the same way.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/sample.h"
#include "runtime/plan.h"

namespace kiln {

class Executor;

// Steps kept readable (TokenFeedback::step_tokens); generate keeps fewer in flight.
constexpr uint32_t kFeedbackRing = 16;

// The decode program's tensors the steps feed: tokens (batch, 1), start_pos and n_valid (batch,),
// sampling (batch, 8) or absent, and the output next_token (batch,).
struct FeedbackTensors {
  uint32_t tokens = kNoTensor, start_pos = kNoTensor, n_valid = kNoTensor, sampling = kNoTensor, next_token = kNoTensor;
  static FeedbackTensors of(const ProgramInfo& decode) {
    return {decode.input("tokens"), decode.input("start_pos"), decode.input("n_valid"), decode.input("sampling"),
            decode.output("next_token")};
  }
};

class TokenFeedback {
 public:
  virtual ~TokenFeedback() = default;
  // Enqueues one replay of the decode program and may return before it ran. first: the step's
  // state is the executor's host_state(), as run() takes it, and the step count starts again at 0;
  // otherwise every row first takes the step before's token (feedback_row). Each step's
  // next_token is kept for step_tokens in a ring of kFeedbackRing steps. The host must not write
  // host_state() again until finish_steps has returned.
  virtual Status enqueue_step(bool first) = 0;
  // Waits for step `seq` (0: the last first step) and returns its next_token (batch values). Only
  // the last kFeedbackRing steps enqueued can be read; the pointer is valid until the next call.
  virtual Result<const int32_t*> step_tokens(uint64_t seq) = 0;
  // Waits for every enqueued step; the executor's fetch_outputs then reads the last one's outputs.
  virtual Status finish_steps() = 0;
};

// The token feedback of program `index` on `e`: the backend's own when it has one, else steps run
// one at a time on the host state by `run_step` (default: e.run(index); a profiler passes its own).
Result<std::unique_ptr<TokenFeedback>> make_token_feedback(Executor& e, const Plan& p, int index,
                                                           const FeedbackTensors& t,
                                                           std::function<Status()> run_step = nullptr);

// feedback_row's arguments for these tensors, from every tensor's address.
inline FeedbackArgs feedback_args(const Plan& p, const FeedbackTensors& t, const std::vector<void*>& ptrs) {
  auto i32 = [&](uint32_t tensor) { return static_cast<int32_t*>(ptrs[tensor]); };
  return FeedbackArgs{
      i32(t.tokens),     i32(t.start_pos),
      i32(t.n_valid),    t.sampling == kNoTensor ? nullptr : static_cast<SampleParams*>(ptrs[t.sampling]),
      i32(t.next_token), p.tensors()[t.n_valid].shape[0]};
}

// The step bookkeeping every implementation shares: which steps were enqueued, which can be read.
class FeedbackSteps {
 public:
  // Before enqueueing a step: refuses a feedback step with no first step before it.
  Status check_enqueue(bool first) const {
    if (!first && !started_) return Status(StatusCode::kInternal, "a feedback step needs a first step before it");
    return Status::ok();
  }
  // Counts an enqueued step and returns its number.
  uint64_t push(bool first) {
    if (first) enqueued_ = 0, started_ = true;
    return enqueued_++;
  }
  Status check_read(uint64_t seq) const {
    if (seq >= enqueued_ || seq + kFeedbackRing < enqueued_)
      return Status(StatusCode::kInternal, "step " + std::to_string(seq) + " is not readable (" +
                                               std::to_string(enqueued_) + " steps enqueued, the last " +
                                               std::to_string(kFeedbackRing) + " are kept)");
    return Status::ok();
  }
  static uint32_t slot(uint64_t seq) { return uint32_t(seq % kFeedbackRing); }

 private:
  uint64_t enqueued_ = 0;
  bool started_ = false;
};

}  // namespace kiln
