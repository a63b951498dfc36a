#include "runtime/token_feedback.h"

#include <algorithm>
#include <new>

#include "runtime/executor.h"

namespace kiln {

namespace {

// Token feedback for a backend without its own: each step is one replay through run_step, the
// feedback applied to the host state first, and next_token read from the step's host output.
class HostTokenFeedback final : public TokenFeedback {
 public:
  HostTokenFeedback(Executor& e, const Plan& p, const FeedbackTensors& t, std::function<Status()> run_step)
      : e_(e), next_tensor_(t.next_token), run_step_(std::move(run_step)) {
    std::vector<void*> host(p.tensors().size(), nullptr);
    for (uint32_t i : {t.tokens, t.start_pos, t.n_valid, t.sampling})
      if (i != kNoTensor) host[i] = e.host_state() + p.tensors()[i].offset;
    args_ = feedback_args(p, t, host);
    ring_.assign(size_t(kFeedbackRing * args_.batch), -1);
    last_.assign(size_t(args_.batch), -1);
    args_.next = last_.data();
  }

  Status enqueue_step(bool first) override {
    KILN_RETURN_IF_ERROR(steps_.check_enqueue(first));
    if (!first)
      for (int64_t r = 0; r < args_.batch; ++r) feedback_row(args_, r);
    KILN_RETURN_IF_ERROR(run_step_());
    const uint64_t seq = steps_.push(first);
    const int32_t* next = static_cast<const int32_t*>(e_.host_output(next_tensor_));
    std::copy(next, next + args_.batch, last_.begin());
    std::copy(next, next + args_.batch, ring_.begin() + FeedbackSteps::slot(seq) * args_.batch);
    return Status::ok();
  }

  Result<const int32_t*> step_tokens(uint64_t seq) override {
    KILN_RETURN_IF_ERROR(steps_.check_read(seq));
    return static_cast<const int32_t*>(ring_.data() + FeedbackSteps::slot(seq) * args_.batch);
  }

  Status finish_steps() override { return Status::ok(); }

 private:
  Executor& e_;
  uint32_t next_tensor_;
  std::function<Status()> run_step_;
  FeedbackArgs args_{};
  FeedbackSteps steps_;
  std::vector<int32_t> ring_;  // kFeedbackRing steps of next_token
  std::vector<int32_t> last_;  // the last step's next_token: the next step's input
};

}  // namespace

Result<std::unique_ptr<TokenFeedback>> make_token_feedback(Executor& e, const Plan& p, int index,
                                                           const FeedbackTensors& t, std::function<Status()> run_step) {
  for (uint32_t i : {t.tokens, t.start_pos, t.n_valid, t.next_token})
    if (i == kNoTensor) return unsupported("the decode program lacks a tensor token feedback needs");
  if (!run_step) {
    auto native = e.enable_token_feedback(index, t);
    if (!native.is_ok()) return native.status();
    if (native.value()) return native.take();
    run_step = [&e, index] { return e.run(index); };
  }
  try {
    return std::unique_ptr<TokenFeedback>(std::make_unique<HostTokenFeedback>(e, p, t, std::move(run_step)));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory for token feedback");
  }
}

}  // namespace kiln
