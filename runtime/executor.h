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

#include "runtime/plan.h"
#include "runtime/token_feedback.h"

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
  // launches run back to back and each interval is one kernel). For benchmarks (kiln-bench
  // --profile), never for correctness.
  virtual Status profile(int index, std::vector<double>* launch_ms) = 0;

  // Token feedback for program `index` (runtime/token_feedback.h) when this backend has its own
  // (CUDA: one more captured graph); null when it has none. Call at most once, when the context
  // is made; the executor must outlive what it returns.
  virtual Result<std::unique_ptr<TokenFeedback>> enable_token_feedback(int index, const FeedbackTensors& t) {
    return std::unique_ptr<TokenFeedback>();
  }
};

// The most CPU threads a context may ask for (more is refused, not attempted: each thread keeps its
// own scratch, and thousands of them only cost memory and time); "every core" stops there too.
constexpr int kMaxCpuThreads = 1024;
// huge_pages: read the weights from the plan's huge-page copy (Plan::huge_page_weights_base).
Result<std::unique_ptr<Executor>> make_cpu_executor(std::shared_ptr<const Plan> plan, int n_threads,
                                                    bool huge_pages = false);

struct CudaExecutorOptions {
  int device = 0;
  bool use_graphs = true;  // false: stream mode (launch by launch), for debugging
  // Prefill-sized bf16/f16 GEMMs on cuBLASLt when it can be loaded (runtime/cublaslt.h; the
  // environment variable KILN_CUBLASLT=off also switches it off); false: kiln's own kernels.
  bool use_cublaslt = true;
  // Decode GEMVs launched with programmatic dependent launch (sm_90): each starts while the kernel
  // before it finishes and hints its weights into L2 first. Same results; off by default: on the
  // H200 it gained nothing (bench/RESULTS.md). The environment variable KILN_PDL=1 (or 0)
  // overrides it.
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
