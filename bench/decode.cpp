// kiln-bench: decode and prefill latency of a plan on the CPU or CUDA backend, next to a
// floor measured in the same run. A benchmark, never a test: it prints numbers, it asserts
// nothing about speed.
//   kiln-bench PLAN [--device cpu|cuda] [--steps 256] [--context 128] [--prefill 512] [--threads N]
// Floor: the weight bytes one decode step must read over the read bandwidth measured now (CPU:
// every weight read once with the same threads; CUDA: a 1 GiB device-to-device copy, counting
// read + write). For MoE layers only the selected experts count: top_k / experts of their weights.
#include <CLI/CLI.hpp>

#include "bench/bench_util.h"
#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <vector>

#include "kernels/thread_pool.h"
#include "runtime/context.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

using kiln::bench::median;
using kiln::bench::now_ms;

// GB/s of reading every weight once on the CPU with `threads` threads (median of 7).
double cpu_read_gbs(const kiln::Plan& p, int threads) {
  kiln::ThreadPool pool(threads);
  std::vector<std::pair<const uint64_t*, uint64_t>> ranges;
  uint64_t bytes = 0;
  for (const auto& t : p.tensors())
    if (t.region == kiln::Region::kWeights) {
      ranges.push_back({static_cast<const uint64_t*>(p.weight_data(t)), t.size_bytes / 8});
      bytes += t.size_bytes;
    }
  std::vector<double> ms;
  std::vector<uint64_t> sink(size_t(pool.size()), 0);
  for (int r = 0; r < 7; ++r) {
    const double t0 = now_ms();
    for (const auto& [ptr, n] : ranges)
      pool.parallel_for(int64_t(n), 1 << 14, [&, ptr = ptr](int64_t b, int64_t e, int w) {
        uint64_t acc = 0;
        for (int64_t i = b; i < e; ++i) acc += ptr[i];
        sink[size_t(w)] += acc;
      });
    ms.push_back(now_ms() - t0);
  }
  uint64_t x = 0;
  for (uint64_t s : sink) x ^= s;
  std::printf("(checksum %llx)\n", (unsigned long long)(x & 0xff));
  return double(bytes) / 1e6 / median(ms);
}

double cuda_copy_gbs() {
#ifdef KILN_WITH_CUDA
  const size_t n = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) return 0.0;
  cudaMemset(a, 1, n);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> ms;
  for (int r = 0; r < 12; ++r) {
    cudaEventRecord(e0);
    cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    if (r >= 2) ms.push_back(t);
  }
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(n) / 1e6 / median(ms);
#else
  return 0.0;
#endif
}

// Weight bytes one decode step reads: every weight the decode program uses once, with routed
// expert weights scaled by the fraction of experts a token selects and embedding tables by the
// rows looked up.
double decode_weight_bytes(const kiln::Plan& p) {
  const int prog = p.find_program("decode");
  if (prog < 0) return double(p.memory().weights_bytes);
  std::map<uint32_t, double> bytes;
  for (const kiln::LaunchInfo& l : p.programs()[size_t(prog)].launches) {
    double frac = 1.0;
    if (p.kernels()[l.kernel] == &kiln::kEmbeddingSpec) {  // one row per token
      const auto& table = p.tensors()[l.inputs[1]];
      frac = std::min(1.0, double(p.tensors()[l.inputs[0]].numel()) / double(table.shape[0]));
    } else if (p.kernels()[l.kernel] == &kiln::kMoeExpertsSpec) {
      const auto& ids = p.tensors()[l.inputs[1]];
      const auto& down = p.tensors()[l.inputs[4]];
      const auto& h = p.tensors()[l.inputs[0]];
      const double experts = double(down.shape[0] / h.shape[1]);
      frac = std::min(1.0, double(ids.shape[1]) / experts);
    }
    for (uint32_t i : l.inputs)
      if (i != kiln::kNoTensor && p.tensors()[i].region == kiln::Region::kWeights)
        bytes[i] = std::max(bytes[i], double(p.tensors()[i].size_bytes) * frac);
  }
  double total = 0;
  for (const auto& [i, b] : bytes) total += b;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln decode/prefill benchmark"};
  std::string path, device = "cpu";
  int steps = 64, context = 128, prefill = 0, threads = 0;
  app.add_option("plan", path)->required();
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--steps", steps, "decode steps to time");
  app.add_option("--context", context, "prompt tokens before decoding");
  app.add_option("--prefill", prefill, "also time one prefill of this many tokens (0 = skip)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  CLI11_PARSE(app, argc, argv);

  auto plan = kiln::Plan::load_file(path);
  if (!plan.is_ok()) {
    std::fprintf(stderr, "error: %s\n", plan.status().message().c_str());
    return 1;
  }
  kiln::ContextOptions co;
  co.n_threads = threads;
  co.device = device;
  auto ctx = kiln::Context::create(plan.value(), co);
  if (!ctx.is_ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().message().c_str());
    return 1;
  }
  kiln::Context& c = *ctx.value();
  if (context + steps > c.max_seq() || prefill > c.max_seq()) {
    std::fprintf(stderr, "error: context + steps (or --prefill) exceeds max_seq %lld\n", (long long)c.max_seq());
    return 1;
  }
  std::vector<int32_t> prompt(static_cast<size_t>(std::max(context, prefill)));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 7919) % size_t(c.vocab()));

  double prefill_ms = 0;
  if (prefill > 0) {
    std::vector<double> ms;
    for (int r = 0; r < 5; ++r) {
      c.reset();
      const double t0 = now_ms();
      if (!c.prefill(0, prompt.data(), prefill).is_ok()) return 1;
      ms.push_back(now_ms() - t0);
    }
    prefill_ms = median(ms);
  }
  c.reset();
  if (!c.prefill(0, prompt.data(), context).is_ok()) return 1;
  std::vector<int32_t> tok(size_t(c.batch()), -1);
  std::vector<double> ms;
  for (int s = 0; s < steps; ++s) {
    tok[0] = c.sample(0, kiln::SamplingParams{}, uint64_t(s));
    const double t0 = now_ms();
    kiln::Status st = c.decode(tok.data());
    if (!st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return 1;
    }
    ms.push_back(now_ms() - t0);
  }
  const double wbytes = decode_weight_bytes(*plan.value());
  const double gbs = device == "cuda" ? cuda_copy_gbs() : cpu_read_gbs(*plan.value(), threads);
  const double floor_ms = gbs > 0 ? wbytes / 1e6 / gbs : 0.0;
  const double med = median(ms);
  std::printf("plan %s on %s (%s), context %d\n", path.c_str(), device.c_str(), c.describe().c_str(), context);
  if (prefill > 0) std::printf("prefill %d tokens: median %.2f ms of 5\n", prefill, prefill_ms);
  std::printf("decode: median %.3f ms/token over %d steps (min %.3f, max %.3f); %.1f GB/s of weights\n", med, steps,
              *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()),
              wbytes / 1e6 / med);
  std::printf("floor: %.2f GB of weights read per step at %.1f GB/s measured now = %.3f ms/token; decode is %.2fx the floor\n",
              wbytes / 1e9, gbs, floor_ms, floor_ms > 0 ? med / floor_ms : 0.0);
  std::printf("RESULT device=%s decode_ms=%.3f floor_ms=%.3f prefill_ms=%.2f gbs=%.1f\n", device.c_str(), med, floor_ms,
              prefill_ms, gbs);
  return 0;
}
