// The CPU executor: host memory for every region, weights read in place from the mapped plan (or
// its shared huge-page copy), and each launch bound to its op's CPU kernel (OpDef::bind_cpu) with
// resolved pointers. A bound launch does no checks; validation happened when the plan was loaded.
#include <algorithm>
#include <chrono>
#include <memory>
#include <new>
#include <system_error>
#include <thread>

#include "runtime/executor.h"

namespace kiln {

namespace {

constexpr uintptr_t kAlign = 64;

class CpuExecutor final : public Executor {
 public:
  const char* backend() const override { return "cpu"; }
  uint8_t* host_state() override { return state_; }
  const void* host_output(uint32_t tensor) override { return ptrs_[tensor]; }
  std::string describe() const override {
    return "cpu, " + std::to_string(pool_->size()) + " threads" + weights_note_;
  }

  Status run(int index) override {
    for (const CpuLaunch& l : programs_[size_t(index)]) l(*pool_);
    return Status::ok();
  }

  Status fetch_outputs(int) override { return Status::ok(); }

  Status profile(int index, std::vector<double>* launch_ms) override {
    launch_ms->clear();
    for (const CpuLaunch& l : programs_[size_t(index)]) {
      const auto t0 = std::chrono::steady_clock::now();
      l(*pool_);
      launch_ms->push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return Status::ok();
  }

  Status run_loop(int index) override {
    const ProgramInfo& pr = plan_->programs()[size_t(index)];
    if (pr.counter == kNoTensor) return run(index);
    int32_t* counter = reinterpret_cast<int32_t*>(state_ + plan_->tensors()[pr.counter].offset);
    for (uint32_t r = 0; r < pr.repeat; ++r) {
      *counter = int32_t(r);
      KILN_RETURN_IF_ERROR(run(index));
    }
    return Status::ok();
  }

  Status init(std::shared_ptr<const Plan> plan, int n_threads, bool huge_pages) {
    plan_ = std::move(plan);
    const Plan& p = *plan_;
    const MemoryInfo& mem = p.memory();
    uint64_t scratch = 0;
    for (const ProgramInfo& pr : p.programs()) scratch = std::max(scratch, pr.scratch_floats);
    // (<= 0: every core, up to kMaxCpuThreads)
    if (n_threads <= 0)
      n_threads = int(std::min<unsigned>(std::max(1u, std::thread::hardware_concurrency()), kMaxCpuThreads));
    if (n_threads > kMaxCpuThreads)
      return invalid_argument("n_threads " + std::to_string(n_threads) + " exceeds " + std::to_string(kMaxCpuThreads) +
                              " (<= 0 uses every core)");
    try {
      pool_ = std::make_unique<ThreadPool>(n_threads, scratch);
      const uint64_t total = mem.arena_bytes + mem.kv_bytes + mem.request_bytes + mem.state_bytes + 4 * kAlign;
      memory_.reset(new uint8_t[size_t(total + kAlign)]());
    } catch (const std::system_error& e) {  // (the pool joined the threads it had started)
      // (EAGAIN: out of threads, or of memory for their stacks)
      const bool resources = e.code() == std::errc::resource_unavailable_try_again;
      return Status(resources ? StatusCode::kOutOfMemory : StatusCode::kInternal,
                    "could not start " + std::to_string(n_threads) + " CPU threads: " + e.what());
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::kOutOfMemory, "out of memory allocating the context (arena " +
                                                  std::to_string(mem.arena_bytes) + " bytes, KV cache " +
                                                  std::to_string(mem.kv_bytes) + " bytes)");
    }
    auto align = [](uint8_t* q) {
      return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(q) + kAlign - 1) & ~(kAlign - 1));
    };
    uint8_t* arena = align(memory_.get());
    uint8_t* kv = align(arena + mem.arena_bytes);
    uint8_t* request = align(kv + mem.kv_bytes);
    state_ = align(request + mem.request_bytes);
    ptrs_.resize(p.tensors().size());
    // The mapped plan, or its shared huge-page copy (Plan::huge_page_weights_base)
    const uint8_t* weights = huge_pages ? p.huge_page_weights_base() : p.weights_base();
    if (huge_pages)  // say where the weights are read from (the copy may be unavailable)
      weights_note_ = weights != p.weights_base()
                          ? ", weights in a huge-page copy (" + std::to_string(p.weight_copy_bytes() >> 20) + " MiB)"
                          : ", weights read in place (no huge-page copy for a plan in borrowed memory, or none could "
                            "be made)";
    for (size_t i = 0; i < p.tensors().size(); ++i) {
      const TensorInfo& t = p.tensors()[i];
      switch (t.region) {
        case Region::kWeights:
          ptrs_[i] = const_cast<uint8_t*>(weights + t.offset);
          break;
        case Region::kArena:
          ptrs_[i] = arena + t.offset;
          break;
        case Region::kKvCache:
          ptrs_[i] = kv + t.offset;
          break;
        case Region::kState:
          ptrs_[i] = state_ + t.offset;
          break;
        case Region::kRequest:
          ptrs_[i] = request + t.offset;
          break;
      }
    }
    const CpuBindEnv env{&launch_buffer_};
    for (const ProgramInfo& pr : p.programs()) {
      std::vector<CpuLaunch> launches;
      for (const LaunchInfo& l : pr.launches) {
        auto bound = p.kernels()[l.kernel]->bind_cpu(OpLaunch(l, p.tensors(), p.model(), &ptrs_), env);
        if (!bound.is_ok()) return bound.status();
        launches.push_back(bound.take());
      }
      programs_.push_back(std::move(launches));
    }
    return Status::ok();
  }

 private:
  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<ThreadPool> pool_;
  std::string weights_note_;  // describe(): where the weights are read from, with cpu_huge_pages
  std::unique_ptr<uint8_t[]> memory_;  // arena | kv cache | request | state, zeroed
  uint8_t* state_ = nullptr;
  std::vector<void*> ptrs_;
  std::vector<float, CacheLineAllocator<float>> launch_buffer_;  // CpuBindEnv::launch_buffer, sized while binding
  std::vector<std::vector<CpuLaunch>> programs_;
};

}  // namespace

Result<std::unique_ptr<Executor>> make_cpu_executor(std::shared_ptr<const Plan> plan, int n_threads, bool huge_pages) {
  if (!plan) return invalid_argument("plan is null");
  if (!plan->has_target("cpu")) return unsupported("plan was not compiled for the CPU backend");
  std::unique_ptr<CpuExecutor> e(new (std::nothrow) CpuExecutor());
  if (!e) return Status(StatusCode::kOutOfMemory, "out of memory creating the CPU executor");
  KILN_RETURN_IF_ERROR(e->init(std::move(plan), n_threads, huge_pages));
  return std::unique_ptr<Executor>(std::move(e));
}

}  // namespace kiln
