// Helpers the CUDA tests share (tests/cuda/test_cuda*.cpp): the GPU check, device buffers,
// fixtures compiled to plans. Every CUDA test compares a kernel (or a plan) against the CPU on
// fresh random inputs with poisoned outputs; without a usable GPU each prints "SKIPPED: no CUDA
// device" and returns, which ctest reports as skipped (tests/CMakeLists.txt), never as passed.
#pragma once
#include <doctest/doctest.h>
#include <cstdint>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "runtime/context.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace kiln::cuda_test {

// Deterministic bytes (a 32-bit LCG's high byte): quantized weights, FP8 codes and zero points.
struct LcgBytes {
  uint32_t state;
  uint8_t operator()() {
    state = state * 1664525u + 1013904223u;
    return uint8_t(state >> 24);
  }
};

inline bool skip_without_gpu() {
  if (cuda_device_count() > 0) return false;
  std::printf("SKIPPED: no CUDA device\n");
  return true;
}

// A device copy of a host vector, freed on destruction.
struct Dev {
  void* p = nullptr;
  size_t bytes = 0;
  template <typename T>
  explicit Dev(const std::vector<T>& v) : bytes(v.size() * sizeof(T)) {
    REQUIRE(cudaMalloc(&p, std::max<size_t>(bytes, 1)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, v.data(), bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~Dev() { cudaFree(p); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
  template <typename T>
  std::vector<T> get() const {
    std::vector<T> v(bytes / sizeof(T));
    REQUIRE(cudaMemcpy(v.data(), p, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

inline void sync_ok() {
  REQUIRE(cudaGetLastError() == cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
}

inline const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A fixture compiled to a plan in `d` (max_seq 64) and loaded.
inline std::shared_ptr<const Plan> compile_plan(const test::TempDir& d, const std::string& name,
                                                const std::string& family, const std::string& dtype, int64_t chunk,
                                                int64_t batch = 1) {
  CompileOptions o;
  o.model_dir = kiln::test::fixture(name, family);
  o.output = d / (name + "-" + dtype + "-" + std::to_string(chunk) + "-" + std::to_string(batch) + ".kplan");
  o.dtype = dtype;
  o.max_seq = 64;
  o.chunk = chunk;
  o.batch = batch;
  compile_model(o);
  auto plan = Plan::load_file(o.output);
  REQUIRE_MESSAGE(plan.is_ok(), plan.status().message());
  return plan.take();
}

// A plan run in one device mode ("cpu", or "cuda" with "-stream": no graphs, and/or "-pdl"): its logits
// for ref's input (poisoned first) and its greedy continuation of ref's prompt, and the context's
// describe() line.
struct ModeRun {
  std::vector<float> logits;
  std::vector<int32_t> tokens;
  std::string describe;
};
inline ModeRun run_mode(const std::shared_ptr<const Plan>& plan, const test::Reference& ref, const std::string& mode) {
  ContextOptions co;
  co.device = mode == "cpu" ? "cpu" : "cuda";
  co.use_graphs = mode.find("stream") == std::string::npos;
  co.use_pdl = mode.find("pdl") != std::string::npos;
  auto ctx = Context::create(plan, co);
  REQUIRE_MESSAGE(ctx.is_ok(), ctx.status().message());
  ModeRun run{
      std::vector<float>(ref.logits.size(), std::numeric_limits<float>::quiet_NaN()), {}, ctx.value()->describe()};
  REQUIRE(ctx.value()->score(ref.input_ids.data(), ref.rows, ref.tokens, run.logits.data()).is_ok());
  const int64_t n_new = int64_t(ref.greedy_ids.size() - ref.prompt_ids.size());
  run.tokens.resize(static_cast<size_t>(n_new));
  int64_t n = 0;
  REQUIRE(ctx.value()
              ->generate(ref.prompt_ids.data(), int64_t(ref.prompt_ids.size()), n_new, SamplingParams{}, -1,
                         run.tokens.data(), &n, nullptr)
              .is_ok());
  return run;
}

inline std::vector<uint8_t> as_dtype(const std::vector<float>& v, DType t) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  convert_f32_to(v.data(), t, out.data(), v.size());
  return out;
}

}  // namespace kiln::cuda_test
