#include "runtime/cpu_backend.h"

#include "runtime/executor.h"
#include "runtime/launch_args.h"

#include <chrono>
#include <algorithm>
#include <memory>
#include <new>

namespace kiln {

Result<BoundLaunch> bind_cpu_launch(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& t,
                                    const std::vector<void*>& ptrs) {
  auto args = make_launch_args(spec, l, t, ptrs);
  if (!args.is_ok()) return args.status();
  if (const auto* f = std::get_if<FusedMatmulArgs>(&args.value())) {  // the buffers its parts pass on
    std::shared_ptr<std::vector<float>> buffer;
    try {
      buffer = std::make_shared<std::vector<float>>(size_t(fused_matmul_cpu_buffer_floats(*f)));
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::kOutOfMemory, "out of memory for a fused matmul's buffers");
    }
    return BoundLaunch([a = *f, buffer](ThreadPool& pool) { fused_matmul_cpu(a, buffer->data(), pool); });
  }
  return BoundLaunch([a = args.take()](ThreadPool& pool) {
    std::visit(
        [&pool](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, EmbeddingArgs>) embedding_cpu(x, pool);
          else if constexpr (std::is_same_v<T, RmsNormArgs>) rmsnorm_cpu(x, pool);
          else if constexpr (std::is_same_v<T, MatmulArgs>) matmul_cpu(x, pool);
          else if constexpr (std::is_same_v<T, RopeArgs>) rope_cpu(x, pool);
          else if constexpr (std::is_same_v<T, KvWriteArgs>) kv_write_cpu(x, pool);
          else if constexpr (std::is_same_v<T, AttentionArgs>) attention_cpu(x, pool);
          else if constexpr (std::is_same_v<T, SwigluArgs>) swiglu_cpu(x, pool);
          else if constexpr (std::is_same_v<T, HeadMatmulArgs>) head_matmul_cpu(x, pool);
          else if constexpr (std::is_same_v<T, MlaKvWriteArgs>) mla_kv_write_cpu(x, pool);
          else if constexpr (std::is_same_v<T, MlaAttentionArgs>) mla_attention_cpu(x, pool);
          else if constexpr (std::is_same_v<T, MoeRouteArgs>) moe_route_cpu(x, pool);
          else if constexpr (std::is_same_v<T, MoeExpertsArgs>) moe_experts_cpu(x, pool);
          else if constexpr (std::is_same_v<T, LayerNormArgs>) layernorm_cpu(x, pool);
          else if constexpr (std::is_same_v<T, GroupNormArgs>) group_norm_cpu(x, pool);
          else if constexpr (std::is_same_v<T, Conv2dArgs>) conv2d_cpu(x, pool);
          else if constexpr (std::is_same_v<T, ActivationArgs>) activation_cpu(x, pool);
          else if constexpr (std::is_same_v<T, GegluArgs>) geglu_cpu(x, pool);
          else if constexpr (std::is_same_v<T, AddArgs>) add_cpu(x, pool);
          else if constexpr (std::is_same_v<T, ConcatArgs>) concat_cpu(x, pool);
          else if constexpr (std::is_same_v<T, SdpaArgs>) sdpa_cpu(x, pool);
          else if constexpr (std::is_same_v<T, TimestepEmbeddingArgs>) timestep_embedding_cpu(x, pool);
          else if constexpr (std::is_same_v<T, SamplerInputArgs>) sampler_input_cpu(x, pool);
          else if constexpr (std::is_same_v<T, SamplerStepArgs>) sampler_step_cpu(x, pool);
          else if constexpr (std::is_same_v<T, NormalNoiseArgs>) normal_noise_cpu(x, pool);
          else if constexpr (std::is_same_v<T, SampleArgs>) sample_cpu(x, pool);
          else if constexpr (std::is_same_v<T, RopeKvWriteArgs>) rope_kv_write_cpu(x, pool);
          else if constexpr (std::is_same_v<T, FusedMatmulArgs>) {}  // bound above
          else static_assert(sizeof(T) == 0, "a launch type without a CPU kernel");
        },
        a);
  });
}

// ---------------------------------------------------------------------------------------
// The CPU executor: host memory for every region, weights read in place from the mapped plan.

namespace {

constexpr uintptr_t kAlign = 64;

class CpuExecutor final : public Executor {
 public:
  const char* backend() const override { return "cpu"; }
  uint8_t* host_state() override { return state_; }
  const void* host_output(uint32_t tensor) override { return ptrs_[tensor]; }
  std::string describe() const override { return "cpu, " + std::to_string(pool_->size()) + " threads"; }

  Status run(int index) override {
    for (const BoundLaunch& l : programs_[size_t(index)]) l(*pool_);
    return Status::ok();
  }

  Status fetch_outputs(int) override { return Status::ok(); }

  Status profile(int index, std::vector<double>* launch_ms) override {
    launch_ms->clear();
    for (const BoundLaunch& l : programs_[size_t(index)]) {
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

  Status enable_feedback(int index, const FeedbackTensors& t) override {
    if (fb_.index >= 0) return Status(StatusCode::kInternal, "token feedback is already enabled");
    fb_args_ = feedback_args(*plan_, t, ptrs_);
    try {
      ring_.assign(size_t(kFeedbackRing * fb_args_.batch), -1);
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::kOutOfMemory, "out of memory for the token feedback ring");
    }
    fb_.index = index;
    return Status::ok();
  }

  // The state is the host's memory, so the feedback is applied in place and the step runs at once.
  Status enqueue_step(bool first) override {
    KILN_RETURN_IF_ERROR(fb_.check_enqueue(first));
    if (!first)
      for (int64_t r = 0; r < fb_args_.batch; ++r) feedback_row(fb_args_, r);
    KILN_RETURN_IF_ERROR(run(fb_.index));
    const uint64_t seq = fb_.push(first);
    std::copy(fb_args_.next, fb_args_.next + fb_args_.batch, ring_.begin() + FeedbackSteps::slot(seq) * fb_args_.batch);
    return Status::ok();
  }

  Result<const int32_t*> step_tokens(uint64_t seq) override {
    KILN_RETURN_IF_ERROR(fb_.check_read(seq));
    return static_cast<const int32_t*>(ring_.data() + FeedbackSteps::slot(seq) * fb_args_.batch);
  }

  Status finish_steps() override { return Status::ok(); }

  Status init(std::shared_ptr<const Plan> plan, int n_threads) {
    plan_ = std::move(plan);
    const Plan& p = *plan_;
    const MemoryInfo& mem = p.memory();
    uint64_t scratch = 0;
    for (const ProgramInfo& pr : p.programs()) scratch = std::max(scratch, pr.scratch_floats);
    try {
      pool_ = std::make_unique<ThreadPool>(n_threads, scratch);
      const uint64_t total = mem.arena_bytes + mem.kv_bytes + mem.state_bytes + 3 * kAlign;
      memory_.reset(new uint8_t[size_t(total + kAlign)]());
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
    state_ = align(kv + mem.kv_bytes);
    ptrs_.resize(p.tensors().size());
    for (size_t i = 0; i < p.tensors().size(); ++i) {
      const TensorInfo& t = p.tensors()[i];
      switch (t.region) {
        case Region::kWeights: ptrs_[i] = const_cast<void*>(p.weight_data(t)); break;
        case Region::kArena: ptrs_[i] = arena + t.offset; break;
        case Region::kKvCache: ptrs_[i] = kv + t.offset; break;
        case Region::kState: ptrs_[i] = state_ + t.offset; break;
      }
    }
    for (const ProgramInfo& pr : p.programs()) {
      std::vector<BoundLaunch> launches;
      for (const LaunchInfo& l : pr.launches) {
        auto bound = bind_cpu_launch(*p.kernels()[l.kernel], l, p.tensors(), ptrs_);
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
  std::unique_ptr<uint8_t[]> memory_;  // arena | kv cache | state, zeroed
  uint8_t* state_ = nullptr;
  std::vector<void*> ptrs_;
  std::vector<std::vector<BoundLaunch>> programs_;
  FeedbackSteps fb_;
  FeedbackArgs fb_args_{};
  std::vector<int32_t> ring_;  // kFeedbackRing steps of next_token
};

}  // namespace

Result<std::unique_ptr<Executor>> make_cpu_executor(std::shared_ptr<const Plan> plan, int n_threads) {
  if (!plan) return invalid_argument("plan is null");
  if (!plan->has_target("cpu")) return unsupported("plan was not compiled for the CPU backend");
  std::unique_ptr<CpuExecutor> e(new (std::nothrow) CpuExecutor());
  if (!e) return Status(StatusCode::kOutOfMemory, "out of memory creating the CPU executor");
  KILN_RETURN_IF_ERROR(e->init(std::move(plan), n_threads));
  return std::unique_ptr<Executor>(std::move(e));
}

}  // namespace kiln
