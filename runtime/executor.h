// An Executor replays a verified plan's programs on one backend. It owns that backend's
// memory (arena, KV cache, step state; on CUDA also the device copy of the weights) and the
// bound launches, all allocated when it is made. The Context (runtime/context.h) drives it:
// it writes a program's inputs into host_state(), calls run(), and reads host_output().
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/sample.h"
#include "runtime/plan.h"

namespace kiln {

class Executor {
 public:
  virtual ~Executor() = default;
  virtual const char* backend() const = 0;
  // The state region as the host writes it before run(). On the CPU it is the state itself;
  // on CUDA a pinned mirror that each replay copies to the device first.
  virtual uint8_t* host_state() = 0;
  // Host-visible bytes of an output tensor of the last program run (CUDA copies each
  // program's outputs back at the end of its replay).
  virtual const void* host_output(uint32_t tensor) = 0;
  // Replays program `index` and waits for it. After a CUDA error that poisons the device
  // context, this and every later call fail with the same message.
  virtual Status run(int index) = 0;
  // Copies every output of program `index`, as its last replay left them, to host_output().
  virtual Status fetch_outputs(int index) = 0;
  // Replays a loop program (ProgramInfo::repeat > 1) whole: every iteration, with its counter
  // set to 0, 1, …, then the outputs. On CUDA this is one captured graph for the whole loop.
  // For any other program the same as run().
  virtual Status run_loop(int index) = 0;
  // One line on how programs are replayed (e.g. "cuda graphs, captured 2 programs").
  virtual std::string describe() const = 0;
  // Runs program `index` once like run(), timing each launch: launch_ms[i] is launch i's time
  // in milliseconds (CPU: wall clock; CUDA: events between launches in stream mode, so the
  // launches run back to back and each interval is one kernel; where the CUDA backend fused
  // launches, the fused kernel's time is its main launch's and the others read 0). For
  // benchmarks (kiln-bench --profile), never for correctness.
  virtual Status profile(int index, std::vector<double>* launch_ms) = 0;

  // --- Token feedback: generate's decode loop with its tokens kept on the backend.
  // Prepares program `index` (an LLM decode program: tokens (batch, 1), start_pos and n_valid
  // (batch,), sampling (batch, 8) or absent, next_token (batch,)) for enqueue_step. CUDA
  // captures one more graph for it. Call once, when the context is made.
  struct FeedbackTensors {
    uint32_t tokens = kNoTensor, start_pos = kNoTensor, n_valid = kNoTensor, sampling = kNoTensor, next_token = kNoTensor;
    // The decode program's tensors by their names.
    static FeedbackTensors of(const ProgramInfo& decode) {
      return {decode.input("tokens"), decode.input("start_pos"), decode.input("n_valid"), decode.input("sampling"),
              decode.output("next_token")};
    }
  };
  virtual Status enable_feedback(int index, const FeedbackTensors& t) = 0;
  // Enqueues one replay of the feedback program and returns without waiting for it (the CPU runs
  // it before returning). first: the step's state is host_state(), as run() takes it, and the
  // step count starts again at 0; otherwise the backend first applies feedback_row
  // (kernels/sample.h) to every row, the previous step's next_token becoming the input. Each
  // step's next_token is kept for step_tokens in a ring of kFeedbackRing steps. The host must not
  // write host_state() again until finish_steps has returned.
  virtual Status enqueue_step(bool first) = 0;
  // Waits for step `seq` (0: the last first step) and returns its next_token (batch values). Only
  // the last kFeedbackRing steps enqueued can be read; the pointer is valid until the next call.
  virtual Result<const int32_t*> step_tokens(uint64_t seq) = 0;
  // Waits for every enqueued step; fetch_outputs then reads the last one's outputs.
  virtual Status finish_steps() = 0;
};

// feedback_row's arguments for these tensors, from every tensor's address in the executor's memory.
inline FeedbackArgs feedback_args(const Plan& p, const Executor::FeedbackTensors& t, const std::vector<void*>& ptrs) {
  auto i32 = [&](uint32_t tensor) { return static_cast<int32_t*>(ptrs[tensor]); };
  return FeedbackArgs{i32(t.tokens), i32(t.start_pos), i32(t.n_valid),
                      t.sampling == kNoTensor ? nullptr : static_cast<SampleParams*>(ptrs[t.sampling]), i32(t.next_token),
                      p.tensors()[t.n_valid].shape[0]};
}

// Steps of token feedback the backends keep (Executor::step_tokens); generate keeps fewer in flight.
constexpr uint32_t kFeedbackRing = 16;

// The step bookkeeping both backends share: which steps were enqueued, which can still be read.
class FeedbackSteps {
 public:
  // Before enqueueing a step: refuses a feedback step with no first step before it.
  Status check_enqueue(bool first) const {
    if (index < 0) return Status(StatusCode::kInternal, "token feedback was not enabled for any program");
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
      return Status(StatusCode::kInternal, "step " + std::to_string(seq) + " is not readable (" + std::to_string(enqueued_) +
                                               " steps enqueued, the last " + std::to_string(kFeedbackRing) + " are kept)");
    return Status::ok();
  }
  static uint32_t slot(uint64_t seq) { return uint32_t(seq % kFeedbackRing); }
  int index = -1;  // the program enable_feedback prepared

 private:
  uint64_t enqueued_ = 0;
  bool started_ = false;
};

Result<std::unique_ptr<Executor>> make_cpu_executor(std::shared_ptr<const Plan> plan, int n_threads);

struct CudaExecutorOptions {
  int device = 0;
  bool use_graphs = true;  // false: stream mode (launch by launch), for debugging
  // Prefill-sized bf16/f16 GEMMs on cuBLASLt when it can be loaded (runtime/cublaslt.h; the
  // environment variable KILN_CUBLASLT=off also switches it off); false: kiln's own kernels.
  bool use_cublaslt = true;
  // Decode GEMVs launched with programmatic dependent launch (sm_90): each starts while the kernel
  // before it finishes and hints its weights into L2 first. Same results; off by default until
  // measured. The environment variable KILN_PDL=1 (or 0) overrides it.
  bool use_pdl = false;
  // Called while the weights upload, with bytes done and the total (last with done == total).
  std::function<void(uint64_t, uint64_t)> upload_progress;
  void* stream = nullptr;  // a cudaStream_t the host owns (not owned; must outlive the context)
  // Device memory the host owns (not owned; must outlive the context), at least
  // cuda_device_bytes(plan) bytes and 256-byte aligned; null: kiln allocates its own.
  void* device_memory = nullptr;
  size_t device_memory_bytes = 0;
};
// Device bytes a CUDA context of this plan needs: weights, arena, KV cache, state, and the launch
// scratch (cuBLASLt's packed x and workspace for prefill-sized bf16/f16 GEMMs, split-K decode
// attention partials) and 256 bytes for token feedback's control block. A build without the CUDA
// backend counts all but the scratch.
uint64_t cuda_device_bytes(const Plan& plan);
// Fails with kUnsupported when this build has no CUDA backend or no device is usable.
Result<std::unique_ptr<Executor>> make_cuda_executor(std::shared_ptr<const Plan> plan, const CudaExecutorOptions& opts);
// Number of usable CUDA devices (0 without a CUDA build, driver or device).
int cuda_device_count();

}  // namespace kiln
