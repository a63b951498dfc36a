// The CUDA executor. At creation it:
//   1. checks the plan's CUDA target against the device's SM arch;
//   2. uploads the weights section once through pinned staging buffers (same layout as the
//      file, so a tensor is base + offset), and allocates arena | KV cache | request | state |
//      launch scratch | token feedback control in one block;
//   3. binds every launch through its op (OpDef::bind_cuda: the op picks its kernel, e.g.
//      prefill-sized bf16/f16 GEMMs on cuBLASLt when it can be loaded, runtime/cublaslt.h), one
//      bound launch per plan launch, and, unless stream mode was asked for, captures
//      each program once into a CUDA graph: state copy in (from a pinned mirror), the
//      launches, output copies out (to pinned buffers). Graphs are never re-captured; steps
//      differ only through the state bytes the host writes into the mirror.
// A failed CUDA call after creation poisons the executor: every later run() fails with the
// first error, since a sticky error leaves the CUDA context unusable.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <string>

#include "kernels/cuda/kernels_cuda.h"
#include "runtime/cublaslt.h"
#include "runtime/cuda_check.h"
#include "runtime/cuda_util.h"
#include "runtime/executor.h"

namespace kiln {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // "no device" is not sticky, but clear it anyway
    return 0;
  }
  return n;
}

namespace {

// The device scratch that launches borrow, one at a time (they run one after another on one
// stream): the most any launch asks for (OpDef::cuda_scratch_bytes: cuBLASLt's packed x and
// workspace, split-K attention partials, MoE gate logits). Part of cuda_device_bytes whether or not cuBLASLt turns
// out to be loadable, so a host sizing memory for a plan never needs to know.
uint64_t launch_scratch_bytes(const Plan& p) {
  uint64_t bytes = 0;
  for (const ProgramInfo& pr : p.programs())
    for (const LaunchInfo& l : pr.launches)
      if (const OpDef* op = p.kernels()[l.kernel]; op->cuda_scratch_bytes)
        bytes = std::max(bytes, op->cuda_scratch_bytes(OpLaunch(l, p.tensors(), p.model())));
  return bytes;
}

constexpr uint64_t kAlign = 256;
uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

class CudaExecutor final : public Executor {
 public:
  ~CudaExecutor() override {
    DeviceScope scope(opts_.device);
    if (stream_) cudaStreamSynchronize(stream_);  // queued work may still read what is freed below
    for (auto& p : programs_) {
      if (p.exec) cudaGraphExecDestroy(p.exec);
      if (p.loop_exec) cudaGraphExecDestroy(p.loop_exec);
    }
    if (fb_exec_) cudaGraphExecDestroy(fb_exec_);
    for (cudaEvent_t e : fb_done_)
      if (e) cudaEventDestroy(e);
    cudaFreeHost(fb_ring_);
    programs_.clear();  // the bound GEMMs hold cuBLASLt descriptors: gone before the handle
    cublas_.reset();
    cudaFreeHost(loop_values_);
    if (stream_ && owns_stream_) cudaStreamDestroy(stream_);
    if (owns_memory_) {
      cudaFree(weights_);
      cudaFree(memory_);
    }
    cudaFreeHost(host_state_);
    for (auto& [t, p] : host_outputs_) cudaFreeHost(p);
  }

  const char* backend() const override { return "cuda"; }
  uint8_t* host_state() override { return static_cast<uint8_t*>(host_state_); }
  const void* host_output(uint32_t tensor) override {
    auto it = host_outputs_.find(tensor);
    return it == host_outputs_.end() ? nullptr : it->second;
  }
  std::string describe() const override {
    char graphs[96];
    std::snprintf(graphs, sizeof(graphs), "%d graphs captured for %zu programs in %.1f ms", graphs_captured_,
                  programs_.size(), capture_ms_);
    return "cuda device " + std::to_string(opts_.device) + " (sm_" + std::to_string(sm_) + "), " +
           (opts_.use_graphs ? std::string(graphs) : std::string("stream mode (no graphs)")) + "; " + gemm_note_ +
           pdl_note_;
  }

  Status run(int index) override {
    return guarded([&] { return replay(programs_[size_t(index)], false); });
  }

  Status fetch_outputs(int index) override {
    return guarded([&]() -> Status {
      for (const Output& o : programs_[size_t(index)].outputs)
        KILN_CUDA_CHECK(cudaMemcpyAsync(o.host, o.dev, o.bytes, cudaMemcpyDeviceToHost, stream_));
      KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return Status::ok();
    });
  }

  Status run_loop(int index) override {
    if (programs_[size_t(index)].repeat <= 1) return run(index);
    return guarded([&] { return replay(programs_[size_t(index)], true); });
  }

  Status profile(int index, std::vector<double>* launch_ms) override {
    return guarded([&] { return profile_program(programs_[size_t(index)], launch_ms); });
  }

  // Token feedback of its own: the decode program captured once more between a feedback node and
  // a publish node into a ring of pinned host memory mapped for the device (feedback_advance_cuda,
  // feedback_publish_cuda), with one event per ring slot.
  Result<std::unique_ptr<TokenFeedback>> enable_token_feedback(int index, const FeedbackTensors& t) override {
    if (fb_index_ >= 0) return Status(StatusCode::kInternal, "token feedback is already enabled");
    const Status st = guarded([&]() -> Status {
      fb_args_ = feedback_args(*plan_, t, ptrs_);
      void* ring = nullptr;
      KILN_CUDA_CHECK(
          cudaHostAlloc(&ring, size_t(kFeedbackRing * fb_args_.batch) * sizeof(int32_t), cudaHostAllocMapped));
      fb_ring_ = static_cast<int32_t*>(ring);
      void* ring_dev = nullptr;
      KILN_CUDA_CHECK(cudaHostGetDevicePointer(&ring_dev, fb_ring_, 0));
      fb_ring_dev_ = static_cast<int32_t*>(ring_dev);
      for (cudaEvent_t& e : fb_done_) KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      fb_index_ = index;
      if (opts_.use_graphs) {
        const auto start = std::chrono::steady_clock::now();
        KILN_RETURN_IF_ERROR(capture(programs_[size_t(index)], false, &fb_exec_, /*feedback=*/true));
        capture_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      }
      return Status::ok();
    });
    if (!st.is_ok()) return st;
    return std::unique_ptr<TokenFeedback>(new Feedback(*this));
  }

  Status init(std::shared_ptr<const Plan> plan, const CudaExecutorOptions& opts) {
    plan_ = std::move(plan);
    opts_ = opts;
    DeviceScope scope(opts.device);
    KILN_CUDA_CHECK(cudaSetDevice(opts.device));
    KILN_RETURN_IF_ERROR(check_target());
    if (opts.stream) {
      stream_ = static_cast<cudaStream_t>(opts.stream);
      owns_stream_ = false;
    } else {
      KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    }
    void* scratch = nullptr;
    KILN_RETURN_IF_ERROR(allocate(&scratch));
    KILN_RETURN_IF_ERROR(bind_programs(scratch));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const auto capture_start = std::chrono::steady_clock::now();
    if (opts.use_graphs)
      for (Program& prog : programs_) {
        KILN_RETURN_IF_ERROR(capture(prog, false, &prog.exec));
        if (prog.repeat > 1) KILN_RETURN_IF_ERROR(capture(prog, true, &prog.loop_exec));
      }
    capture_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - capture_start).count();
    return Status::ok();
  }

 private:
  // The device's SM arch, which the plan's CUDA target must list.
  Status check_target() {
    int major = 0, minor = 0;
    KILN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, opts_.device));
    KILN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, opts_.device));
    sm_ = major * 10 + minor;
    std::vector<uint32_t> archs;
    for (const auto& t : plan_->targets())
      if (t.backend == "cuda") archs = t.sm_archs;
    if (archs.empty()) {
      for (const TensorInfo& t : plan_->tensors())
        if (dtype_is_quantized(t.dtype))  // (compiled for the CPU alone unless --target asked for CUDA)
          return unsupported(std::string("plan was not compiled for CUDA: with ") +
                             (t.dtype == DType::I8   ? "int8"
                              : t.dtype == DType::I4 ? "int4"
                                                     : "fp8") +
                             " weights a plan is for the CPU unless compiled with --target cuda or all (or run it "
                             "with --device cpu)");
      return unsupported("plan was not compiled for CUDA (kiln compile --target cuda or all)");
    }
    if (std::find(archs.begin(), archs.end(), uint32_t(sm_)) == archs.end()) {
      std::string want;
      for (uint32_t a : archs) want += (want.empty() ? "sm_" : ", sm_") + std::to_string(a);
      return unsupported("plan was compiled for " + want + " but CUDA device " + std::to_string(opts_.device) +
                         " is sm_" + std::to_string(sm_));
    }
    return Status::ok();
  }

  // The weights, uploaded once; then arena | KV cache | request | state | launch scratch | feedback
  // control in one allocation, zeroed (both in the host's device memory when it gave some), the
  // pinned host state, and every tensor's device address. *scratch: the launch scratch.
  Status allocate(void** scratch) {
    const Plan& p = *plan_;
    const uint64_t need = cuda_device_bytes(p);
    uint8_t* host_block = static_cast<uint8_t*>(opts_.device_memory);
    if (host_block) {
      if (opts_.device_memory_bytes < need)
        return invalid_argument("the host's device memory holds " + std::to_string(opts_.device_memory_bytes) +
                                " bytes but this plan needs " + std::to_string(need));
      if (reinterpret_cast<uintptr_t>(host_block) % kAlign != 0)
        return invalid_argument("device memory must be 256-byte aligned");
      owns_memory_ = false;
    }
    uint64_t weights_size = 0;
    for (const SegmentInfo& s : p.segments()) weights_size = std::max(weights_size, s.offset + s.size);
    if (weights_size > 0) {
      if (host_block) weights_ = host_block;
      else KILN_CUDA_CHECK(cudaMalloc(&weights_, weights_size));
      KILN_RETURN_IF_ERROR(upload_staged(weights_, p.weights_base(), weights_size, stream_, opts_.upload_progress));
    }
    const MemoryInfo& mem = p.memory();
    const uint64_t arena_off = 0, kv_off = align_up(mem.arena_bytes), request_off = kv_off + align_up(mem.kv_bytes);
    const uint64_t state_off = request_off + align_up(mem.request_bytes);
    const uint64_t scratch_off = state_off + align_up(std::max<uint64_t>(mem.state_bytes, 1));
    const uint64_t ctrl_off = scratch_off + align_up(launch_scratch_bytes(p));
    const uint64_t total = ctrl_off + kAlign;
    if (host_block) memory_ = host_block + align_up(weights_size);
    else KILN_CUDA_CHECK(cudaMalloc(&memory_, total));
    KILN_CUDA_CHECK(cudaMemsetAsync(memory_, 0, total, stream_));
    uint8_t* base = static_cast<uint8_t*>(memory_);
    state_dev_ = base + state_off;
    fb_ctrl_ = reinterpret_cast<FeedbackControl*>(base + ctrl_off);
    *scratch = base + scratch_off;
    KILN_CUDA_CHECK(cudaMallocHost(&host_state_, std::max<uint64_t>(mem.state_bytes, 1)));
    std::memset(host_state_, 0, std::max<uint64_t>(mem.state_bytes, 1));
    ptrs_.resize(p.tensors().size());
    for (size_t i = 0; i < p.tensors().size(); ++i) {
      const TensorInfo& t = p.tensors()[i];
      switch (t.region) {
        case Region::kWeights:
          ptrs_[i] = static_cast<uint8_t*>(weights_) + t.offset;
          break;
        case Region::kArena:
          ptrs_[i] = base + arena_off + t.offset;
          break;
        case Region::kKvCache:
          ptrs_[i] = base + kv_off + t.offset;
          break;
        case Region::kState:
          ptrs_[i] = base + state_off + t.offset;
          break;
        case Region::kRequest:
          ptrs_[i] = base + request_off + t.offset;
          break;
      }
    }
    return Status::ok();
  }

  // Every launch bound by its op (OpDef::bind_cuda), which may pick an implementation: prefill
  // GEMMs go to cuBLASLt, loaded the first time one asks for it; otherwise (or per launch, when it
  // has no algorithm for a shape) kiln's own kernels, and describe() says which and why.
  Status bind_programs(void* scratch) {
    const Plan& p = *plan_;
    std::shared_ptr<CublasLt> lt;
    bool lt_asked = false;
    std::string lt_why;
    int lib_launches = 0, lib_refused = 0, pdl_gemvs = 0;
    CudaBindEnv env;
    env.scratch = scratch;
    env.cublaslt = [&]() -> CublasLt* {
      if (!lt_asked) {
        lt_asked = true;
        if (!opts_.use_cublaslt) {
          lt_why = "cuBLASLt not asked for";
        } else {
          auto opened = CublasLt::open();
          if (opened.is_ok()) lt = opened.take();
          else lt_why = opened.status().message();
        }
      }
      return lt.get();
    };
    env.library_gemms = &lib_launches;
    env.library_refused = &lib_refused;
    env.pdl_gemvs = &pdl_gemvs;
    // Programmatic dependent launch for decode GEMVs: asked for, or KILN_PDL=1 (0 refuses it).
    bool use_pdl = opts_.use_pdl;
    if (const char* e = std::getenv("KILN_PDL")) {
      const std::string v = e;
      if (v == "1" || v == "on" || v == "true") use_pdl = true;
      if (v == "0" || v == "off" || v == "false") use_pdl = false;
    }
    if (use_pdl && !(sm_ >= 90 && matmul_pdl_supported())) {
      use_pdl = false;
      pdl_note_ = "; PDL not used (needs sm_90 device code)";
    }
    uint32_t max_repeat = 0;
    for (const ProgramInfo& pr : p.programs()) max_repeat = std::max(max_repeat, pr.repeat > 1 ? pr.repeat : 0u);
    if (max_repeat > 0) {  // the iteration indices the loop graphs copy into each counter
      KILN_CUDA_CHECK(cudaMallocHost(&loop_values_, max_repeat * sizeof(int32_t)));
      for (uint32_t r = 0; r < max_repeat; ++r) static_cast<int32_t*>(loop_values_)[r] = int32_t(r);
    }
    for (const ProgramInfo& pr : p.programs()) KILN_RETURN_IF_ERROR(bind_program(pr, env, use_pdl));
    if (pdl_gemvs > 0) pdl_note_ = "; PDL on " + std::to_string(pdl_gemvs) + " GEMVs";
    if (!lt_asked) {
      gemm_note_ = "no prefill-sized bf16/f16 GEMMs";
    } else if (!lt) {
      gemm_note_ = "prefill GEMMs on the built-in f32 kernel (" + lt_why + ")";
    } else {
      gemm_note_ = "prefill GEMMs on " + lt->describe() + ": " + std::to_string(lib_launches) + " launches";
      if (lib_refused > 0)
        gemm_note_ += ", " + std::to_string(lib_refused) + " on the built-in kernel (no cuBLASLt algorithm)";
      cublas_ = std::move(lt);
    }
    return Status::ok();
  }

  // One program: its launches, the state ranges a replay copies in, its outputs' pinned buffers.
  Status bind_program(const ProgramInfo& pr, CudaBindEnv& env, bool use_pdl) {
    const Plan& p = *plan_;
    Program prog;
    if (opts_.use_graphs && pr.repeat > 1 && uint64_t(pr.repeat) * pr.launches.size() > kCudaMaxLoopNodes)
      return unsupported("program '" + pr.name + "' loops " + std::to_string(pr.repeat) + " times over " +
                         std::to_string(pr.launches.size()) + " launches, over the " +
                         std::to_string(kCudaMaxLoopNodes) +
                         " graph nodes kiln captures in one graph (use stream mode, or fewer steps)");
    prog.repeat = pr.repeat;
    if (pr.counter != kNoTensor) prog.counter_dev = ptrs_[pr.counter];
    // The state this program reads, so a replay copies only that (a text-to-image plan's
    // state holds the control image and the noise, which a denoise step never reads).
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const LaunchInfo& l : pr.launches)
      for (uint32_t i : l.inputs)
        if (i != kNoTensor && p.tensors()[i].region == Region::kState)
          ranges.emplace_back(p.tensors()[i].offset, p.tensors()[i].offset + p.tensors()[i].size_bytes);
    std::sort(ranges.begin(), ranges.end());
    for (const auto& r : ranges) {
      if (!prog.state_ranges.empty() && r.first <= prog.state_ranges.back().second)
        prog.state_ranges.back().second = std::max(prog.state_ranges.back().second, r.second);
      else prog.state_ranges.push_back(r);
    }
    for (size_t li = 0; li < pr.launches.size(); ++li) {
      const LaunchInfo& l = pr.launches[li];
      const OpDef& op = *p.kernels()[l.kernel];
      if (!op.bind_cuda) return unsupported(std::string("op '") + op.name + "' has no CUDA kernel");
      // A GEMV after another kernel of the program may start early (PDL); the first launch follows
      // the state copy, which is not a kernel.
      env.pdl = use_pdl && li > 0;
      auto bound = op.bind_cuda(OpLaunch(l, p.tensors(), p.model(), &ptrs_), env);
      if (!bound.is_ok()) return bound.status();
      prog.launches.push_back(bound.take());
    }
    for (uint32_t o : pr.outputs) {
      if (!host_outputs_.count(o)) {
        void* h = nullptr;
        KILN_CUDA_CHECK(cudaMallocHost(&h, p.tensors()[o].size_bytes));
        host_outputs_[o] = h;
      }
      prog.outputs.push_back({ptrs_[o], host_outputs_[o], p.tensors()[o].size_bytes});
    }
    programs_.push_back(std::move(prog));
    return Status::ok();
  }

  // The TokenFeedback that enable_token_feedback returns; the executor keeps the state.
  class Feedback final : public TokenFeedback {
   public:
    explicit Feedback(CudaExecutor& e) : e_(e) {}
    Status enqueue_step(bool first) override { return e_.fb_enqueue(first); }
    Result<const int32_t*> step_tokens(uint64_t seq) override { return e_.fb_tokens(seq); }
    Status finish_steps() override { return e_.fb_finish(); }

   private:
    CudaExecutor& e_;
  };

  // first: the host's state goes in as run() copies it, and the control block is reset, so the
  // graph's feedback node leaves that state alone this once. Then the feedback graph, and an
  // event that step_tokens waits on.
  Status fb_enqueue(bool first) {
    KILN_RETURN_IF_ERROR(fb_steps_.check_enqueue(first));
    return guarded([&]() -> Status {
      cudaGetLastError();
      const Program& prog = programs_[size_t(fb_index_)];
      if (first) {
        KILN_RETURN_IF_ERROR(copy_state_in(prog));
        KILN_CUDA_CHECK(cudaMemsetAsync(fb_ctrl_, 0, sizeof(FeedbackControl), stream_));
      }
      if (fb_exec_) KILN_CUDA_CHECK(cudaGraphLaunch(fb_exec_, stream_));
      else KILN_RETURN_IF_ERROR(enqueue(prog, /*check_each=*/true, false, /*feedback=*/true));
      const uint64_t seq = fb_steps_.push(first);
      KILN_CUDA_CHECK(cudaEventRecord(fb_done_[FeedbackSteps::slot(seq)], stream_));
      return Status::ok();
    });
  }

  Result<const int32_t*> fb_tokens(uint64_t seq) {
    KILN_RETURN_IF_ERROR(fb_steps_.check_read(seq));
    const uint32_t slot = FeedbackSteps::slot(seq);
    KILN_RETURN_IF_ERROR(guarded([&]() -> Status {
      KILN_CUDA_CHECK(cudaEventSynchronize(fb_done_[slot]));
      return Status::ok();
    }));
    return static_cast<const int32_t*>(fb_ring_ + int64_t(slot) * fb_args_.batch);
  }

  // Waits even once poisoned (ignoring what the wait says then): the caller is about to reuse the
  // host state that queued steps may still be reading.
  Status fb_finish() {
    if (!poisoned_.empty()) {
      DeviceScope scope(opts_.device);
      cudaStreamSynchronize(stream_);
    }
    return guarded([&]() -> Status {
      KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return Status::ok();
    });
  }

  // Every entry point's frame: refuse once poisoned, make the executor's device current (and
  // restore the caller's after), and poison the executor when `f` fails.
  template <typename F>
  Status guarded(F&& f) {
    if (!poisoned_.empty())
      return Status(StatusCode::kInternal, "CUDA context poisoned by an earlier error: " + poisoned_);
    DeviceScope scope(opts_.device);
    if (!scope.ok())
      return Status(StatusCode::kInternal, "cannot make CUDA device " + std::to_string(opts_.device) + " current");
    Status st = f();
    if (!st.is_ok()) poisoned_ = st.message();
    return st;
  }

  struct Output {
    void* dev;
    void* host;
    uint64_t bytes;
  };
  struct Program {
    std::vector<CudaLaunch> launches;  // stream: the executor's cudaStream_t
    std::vector<Output> outputs;
    cudaGraphExec_t exec = nullptr;       // one iteration
    cudaGraphExec_t loop_exec = nullptr;  // a loop program's every iteration (repeat > 1)
    uint32_t repeat = 1;
    void* counter_dev = nullptr;
    std::vector<std::pair<uint64_t, uint64_t>> state_ranges;  // [begin, end) of the state it reads
  };

  // The replay body: state in, launches, outputs out. Recorded once into a graph, or run as is.
  // A loop enqueues every iteration, each preceded by a 4-byte copy of its index into the counter.
  // feedback: the token feedback replay (fb_enqueue) instead, whose state is fed back on the
  // device and whose next_token goes to the mapped ring, with no other copies.
  Status enqueue(const Program& prog, bool check_each, bool loop, bool feedback = false) {
    if (feedback) {
      feedback_advance_cuda(fb_args_, fb_ctrl_, stream_);
      if (check_each) KILN_CUDA_CHECK(cudaGetLastError());
    } else {
      KILN_RETURN_IF_ERROR(copy_state_in(prog));
    }
    for (uint32_t r = 0; r < (loop ? prog.repeat : 1); ++r) {
      if (loop)
        KILN_CUDA_CHECK(cudaMemcpyAsync(prog.counter_dev, static_cast<int32_t*>(loop_values_) + r, sizeof(int32_t),
                                        cudaMemcpyHostToDevice, stream_));
      for (const CudaLaunch& l : prog.launches) {
        KILN_RETURN_IF_ERROR(l(stream_));
        if (check_each) KILN_CUDA_CHECK(cudaGetLastError());
      }
    }
    if (feedback) {
      feedback_publish_cuda(fb_args_.next, fb_args_.batch, fb_ctrl_, fb_ring_dev_, kFeedbackRing, stream_);
      if (check_each) KILN_CUDA_CHECK(cudaGetLastError());
      return Status::ok();
    }
    for (const Output& o : prog.outputs)
      KILN_CUDA_CHECK(cudaMemcpyAsync(o.host, o.dev, o.bytes, cudaMemcpyDeviceToHost, stream_));
    return Status::ok();
  }

  // The state ranges `prog` reads, from the host's pinned mirror.
  Status copy_state_in(const Program& prog) {
    for (const auto& [b, e] : prog.state_ranges)
      KILN_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(state_dev_) + b,
                                      static_cast<const uint8_t*>(host_state_) + b, e - b, cudaMemcpyHostToDevice,
                                      stream_));
    return Status::ok();
  }

  // Stream mode with an event before each launch and after the last.
  Status profile_program(const Program& prog, std::vector<double>* launch_ms) {
    cudaGetLastError();
    const size_t n = prog.launches.size();
    std::vector<cudaEvent_t> ev(n + 1, nullptr);
    struct Events {
      std::vector<cudaEvent_t>& v;
      ~Events() {
        for (cudaEvent_t e : v)
          if (e) cudaEventDestroy(e);
      }
    } guard{ev};
    for (cudaEvent_t& e : ev) KILN_CUDA_CHECK(cudaEventCreate(&e));
    KILN_RETURN_IF_ERROR(copy_state_in(prog));
    for (size_t i = 0; i < n; ++i) {
      KILN_CUDA_CHECK(cudaEventRecord(ev[i], stream_));
      KILN_RETURN_IF_ERROR(prog.launches[i](stream_));
      KILN_CUDA_CHECK(cudaGetLastError());
    }
    KILN_CUDA_CHECK(cudaEventRecord(ev[n], stream_));
    for (const Output& o : prog.outputs)
      KILN_CUDA_CHECK(cudaMemcpyAsync(o.host, o.dev, o.bytes, cudaMemcpyDeviceToHost, stream_));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    launch_ms->assign(n, 0.0);
    for (size_t i = 0; i < n; ++i) {
      float t = 0.0f;
      KILN_CUDA_CHECK(cudaEventElapsedTime(&t, ev[i], ev[i + 1]));
      (*launch_ms)[i] = double(t);
    }
    return Status::ok();
  }

  Status capture(const Program& prog, bool loop, cudaGraphExec_t* out, bool feedback = false) {
    cudaGraph_t graph = nullptr;
    KILN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    // cudaGetLastError is legal during capture and reports a bad launch configuration at the launch
    // that caused it, which is the message a user needs.
    Status st = enqueue(prog, /*check_each=*/true, loop, feedback);
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    if (!st.is_ok()) {
      if (graph) cudaGraphDestroy(graph);
      return Status(st.code(), "graph capture failed: " + st.message());
    }
    if (end != cudaSuccess) return cuda_status(end, "cudaStreamEndCapture", __FILE__, __LINE__);
    const cudaError_t inst = cudaGraphInstantiate(out, graph, 0);
    cudaGraphDestroy(graph);
    if (inst != cudaSuccess) return cuda_status(inst, "cudaGraphInstantiate", __FILE__, __LINE__);
    ++graphs_captured_;
    return Status::ok();
  }

  Status replay(const Program& prog, bool loop) {
    // A launch error left behind by other code on this thread is not ours to report as a kiln failure.
    cudaGetLastError();
    const cudaGraphExec_t exec = loop ? prog.loop_exec : prog.exec;
    if (exec) KILN_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
    else KILN_RETURN_IF_ERROR(enqueue(prog, /*check_each=*/true, loop));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return Status::ok();
  }

  std::shared_ptr<const Plan> plan_;
  CudaExecutorOptions opts_;
  int sm_ = 0;
  cudaStream_t stream_ = nullptr;
  void* weights_ = nullptr;
  void* memory_ = nullptr;
  void* state_dev_ = nullptr;
  void* host_state_ = nullptr;
  void* loop_values_ = nullptr;  // pinned 0, 1, … for loop counters
  std::map<uint32_t, void*> host_outputs_;
  std::vector<Program> programs_;
  std::vector<void*> ptrs_;  // every tensor's device address
  // Token feedback (enable_token_feedback): the decode program's graph with the feedback and publish
  // nodes, the control block in device memory, the mapped ring of next tokens and one event per slot.
  int fb_index_ = -1;  // the program enable_token_feedback prepared
  FeedbackSteps fb_steps_;
  FeedbackArgs fb_args_{};
  FeedbackControl* fb_ctrl_ = nullptr;
  int32_t* fb_ring_ = nullptr;
  int32_t* fb_ring_dev_ = nullptr;
  cudaEvent_t fb_done_[kFeedbackRing] = {};
  cudaGraphExec_t fb_exec_ = nullptr;
  std::string poisoned_;
  std::shared_ptr<CublasLt> cublas_;
  std::string gemm_note_, pdl_note_;
  int graphs_captured_ = 0;
  double capture_ms_ = 0.0;
  bool owns_stream_ = true, owns_memory_ = true;
};

}  // namespace

uint64_t cuda_device_bytes(const Plan& p) {
  uint64_t weights = 0;
  for (const SegmentInfo& s : p.segments()) weights = std::max(weights, s.offset + s.size);
  const MemoryInfo& m = p.memory();
  return align_up(weights) + align_up(m.arena_bytes) + align_up(m.kv_bytes) + align_up(m.request_bytes) +
         align_up(std::max<uint64_t>(m.state_bytes, 1)) + align_up(launch_scratch_bytes(p)) +
         kAlign;  // the last: token feedback's control block
}

Result<std::unique_ptr<Executor>> make_cuda_executor(std::shared_ptr<const Plan> plan,
                                                     const CudaExecutorOptions& opts) {
  if (!plan) return invalid_argument("plan is null");
  if (cuda_device_count() <= opts.device) return unsupported("no usable CUDA device " + std::to_string(opts.device));
  std::unique_ptr<CudaExecutor> e(new (std::nothrow) CudaExecutor());
  if (!e) return Status(StatusCode::kOutOfMemory, "out of memory creating the CUDA executor");
  KILN_RETURN_IF_ERROR(e->init(std::move(plan), opts));
  return std::unique_ptr<Executor>(std::move(e));
}

}  // namespace kiln
