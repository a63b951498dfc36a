// kiln-bench: decode and prefill latency of a plan on the CPU or CUDA backend, next to a
// floor measured in the same run. A benchmark, never a test: it prints numbers, it asserts
// nothing about speed.
//   kiln-bench PLAN [--device cpu|cuda] [--steps 256] [--context 128] [--prefill 512] [--threads N] [--profile] [--pdl]
// --pdl: decode GEMVs launched with programmatic dependent launch (CudaExecutorOptions::use_pdl).
// --profile: one decode step (and one prefill with --prefill) replayed launch by launch with a
// timer around each (CUDA: events, stream mode), summed per kernel, next to the graph step time,
// so the gap between them is the launch/inter-kernel overhead; on CUDA also the cost of one graph
// node and of one stream launch, from 2000 empty kernels.
// decode_ms times Context::decode (logits copied back every step); generate_ms times the
// generate loop's steps (greedy, next token chosen and fed back on the backend, the default
// steps in flight), generate1_ms the same loop one step at a time (generate_depth 1).
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

#include "kernels/cuda/kernels_cuda.h"
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

// Microseconds per empty kernel: replayed from one captured graph of n nodes, and launched one by
// one on a stream (median of 11 runs each). {0, 0} without CUDA.
std::pair<double, double> cuda_node_overhead_us() {
#ifdef KILN_WITH_CUDA
  const int n = 2000;
  cudaStream_t s = nullptr;
  if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) return {0.0, 0.0};
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  for (int i = 0; i < n; ++i) kiln::noop_cuda(s);
  if (cudaStreamEndCapture(s, &g) != cudaSuccess || cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) return {0.0, 0.0};
  std::vector<double> graph_ms, stream_ms;
  for (int r = 0; r < 13; ++r) {
    double t0 = now_ms();
    cudaGraphLaunch(ge, s);
    cudaStreamSynchronize(s);
    if (r >= 2) graph_ms.push_back(now_ms() - t0);
    t0 = now_ms();
    for (int i = 0; i < n; ++i) kiln::noop_cuda(s);
    cudaStreamSynchronize(s);
    if (r >= 2) stream_ms.push_back(now_ms() - t0);
  }
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  return {median(graph_ms) * 1000.0 / n, median(stream_ms) * 1000.0 / n};
#else
  return {0.0, 0.0};
#endif
}

// Prints one profiled step: time per kernel (summed over its launches) against the step's time.
void print_profile(const char* what, const kiln::Plan& p, int program, const std::vector<double>& launch_ms,
                   double step_ms) {
  const auto& launches = p.programs()[size_t(program)].launches;
  std::map<std::string, std::pair<int, double>> by_kernel;
  double sum = 0.0;
  for (size_t i = 0; i < launches.size() && i < launch_ms.size(); ++i) {
    auto& e = by_kernel[p.kernels()[launches[i].kernel]->name];
    e.first += 1;
    e.second += launch_ms[i];
    sum += launch_ms[i];
  }
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [name, e] : by_kernel) order.push_back({e.second, name});
  std::sort(order.rbegin(), order.rend());
  std::printf("profile %s: %zu launches, %.3f ms in kernels; the timed step took %.3f ms (%.1f%% outside kernels)\n", what,
              launches.size(), sum, step_ms, step_ms > 0 ? 100.0 * (step_ms - sum) / step_ms : 0.0);
  for (const auto& [ms, name] : order) {
    const auto& e = by_kernel[name];
    std::printf("  %-20s %5d launches %9.3f ms %5.1f%%  (%.1f us each)\n", name.c_str(), e.first, ms,
                sum > 0 ? 100.0 * ms / sum : 0.0, 1000.0 * ms / e.first);
  }
  std::printf("PROFILE %s kernels_ms=%.3f step_ms=%.3f outside_pct=%.1f\n", what, sum, step_ms,
              step_ms > 0 ? 100.0 * (step_ms - sum) / step_ms : 0.0);
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
  bool profile = false, pdl = false;
  app.add_option("plan", path)->required();
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--steps", steps, "decode steps to time");
  app.add_option("--context", context, "prompt tokens before decoding");
  app.add_option("--prefill", prefill, "also time one prefill of this many tokens (0 = skip)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_flag("--profile", profile, "also time each launch of one decode (and prefill) step, per kernel");
  app.add_flag("--pdl", pdl, "CUDA: launch decode GEMVs with programmatic dependent launch");
  CLI11_PARSE(app, argc, argv);
  if (steps < 1 || context < 1 || prefill < 0) {
    std::fprintf(stderr, "error: --steps and --context must be at least 1, --prefill at least 0\n");
    return 1;
  }

  auto plan = kiln::Plan::load_file(path);
  if (!plan.is_ok()) {
    std::fprintf(stderr, "error: %s\n", plan.status().message().c_str());
    return 1;
  }
  kiln::ContextOptions co;
  co.n_threads = threads;
  co.device = device;
  co.use_pdl = pdl;
  auto ctx = kiln::Context::create(plan.value(), co);
  if (!ctx.is_ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().message().c_str());
    return 1;
  }
  kiln::Context& c = *ctx.value();
  if (context + steps + 1 > c.max_seq() || prefill > c.max_seq()) {
    std::fprintf(stderr, "error: context + steps + 1 (or --prefill) exceeds max_seq %lld\n", (long long)c.max_seq());
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
  // The generate loop as an application runs it: greedy, the next token chosen on the backend and
  // fed back there, the host reading each token as it lands. Per-token time is the interval between
  // consecutive callbacks: with the default steps in flight, and with one step at a time.
  const int depth = c.generate_depth();
  auto time_generate = [&](int d, double* out_ms) {
    if (!c.set_generate_depth(d).is_ok()) return false;
    std::vector<double> stamps;
    std::vector<int32_t> gen(static_cast<size_t>(steps + 1));
    int64_t n_gen = 0;
    kiln::Status gst = c.generate(prompt.data(), context, steps + 1, kiln::SamplingParams{}, -1, gen.data(), &n_gen,
                                  [&](int32_t) {
                                    stamps.push_back(now_ms());
                                    return true;
                                  });
    if (!gst.is_ok()) {
      std::fprintf(stderr, "error: %s\n", gst.message().c_str());
      return false;
    }
    std::vector<double> gen_ms;
    for (size_t i = 1; i < stamps.size(); ++i) gen_ms.push_back(stamps[i] - stamps[i - 1]);
    *out_ms = gen_ms.empty() ? 0.0 : median(gen_ms);
    return true;
  };
  double gen_med = 0, gen1_med = 0;
  if (!time_generate(1, &gen1_med) || !time_generate(depth, &gen_med)) return 1;
  const double wbytes = decode_weight_bytes(*plan.value());
  const double gbs = device == "cuda" ? cuda_copy_gbs() : cpu_read_gbs(*plan.value(), threads);
  const double floor_ms = gbs > 0 ? wbytes / 1e6 / gbs : 0.0;
  const double med = median(ms);
  std::printf("plan %s on %s (%s), context %d\n", path.c_str(), device.c_str(), c.describe().c_str(), context);
  if (prefill > 0) std::printf("prefill %d tokens: median %.2f ms of 5\n", prefill, prefill_ms);
  std::printf("decode: median %.3f ms/token over %d steps (min %.3f, max %.3f); %.1f GB/s of weights\n", med, steps,
              *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()),
              wbytes / 1e6 / med);
  std::printf("generate: median %.3f ms/token over %d steps with %d in flight, %.3f one step at a time (greedy, next "
              "token chosen on the %s)\n", gen_med, steps, depth, gen1_med, device.c_str());
  std::printf("floor: %.2f GB of weights read per step at %.1f GB/s measured now = %.3f ms/token; decode is %.2fx the floor\n",
              wbytes / 1e9, gbs, floor_ms, floor_ms > 0 ? med / floor_ms : 0.0);
  std::printf("RESULT device=%s decode_ms=%.3f floor_ms=%.3f prefill_ms=%.2f gbs=%.1f generate_ms=%.3f generate1_ms=%.3f\n",
              device.c_str(), med, floor_ms, prefill_ms, gbs, gen_med, gen1_med);
  if (profile) {
    std::vector<double> launch_ms;
    c.set_profile(&launch_ms);
    tok[0] = c.sample(0, kiln::SamplingParams{}, uint64_t(steps));
    if (!c.decode(tok.data()).is_ok()) return 1;
    print_profile("decode", *plan.value(), c.program_index(true), launch_ms, med);
    if (prefill > 0 && prefill <= c.prefill_chunk()) {  // one prefill replay: comparable with prefill_ms
      c.reset();
      if (!c.prefill(0, prompt.data(), prefill).is_ok()) return 1;
      print_profile("prefill", *plan.value(), c.program_index(false), launch_ms, prefill_ms);
    } else if (prefill > 0) {
      std::printf("profile prefill: skipped, %d tokens take several chunks of %lld\n", prefill, (long long)c.prefill_chunk());
    }
    c.set_profile(nullptr);
    if (device == "cuda") {
      const auto [graph_us, stream_us] = cuda_node_overhead_us();
      std::printf("graph replay: %.2f us per node; stream launch: %.2f us per kernel (2000 empty kernels)\n", graph_us,
                  stream_us);
      std::printf("OVERHEAD graph_node_us=%.2f stream_launch_us=%.2f\n", graph_us, stream_us);
    }
  }
  return 0;
}
