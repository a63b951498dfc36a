// kiln-bench: decode and prefill latency of a plan on the CPU or CUDA backend, next to a
// floor measured in the same run. A benchmark, never a test: it prints numbers, it asserts
// nothing about speed.
//   kiln-bench PLAN [--device cpu|cuda] [--steps 256] [--context 128 [--context 1024]] [--prefill 512]
//              [--threads N] [--profile] [--pdl] [--compare-pdl] [--huge-pages]
// The plan is loaded once. LOAD: plan load and verification, context creation (CUDA: weight
// upload, graph capture) and the first token after the first --context prompt, from the start of
// the load. Then one RESULT line per --context.
// --pdl: decode GEMVs launched with programmatic dependent launch (CudaExecutorOptions::use_pdl);
// --compare-pdl: then the first context's decode again in a fresh context with PDL the other way.
// --profile: one decode step (and one prefill with --prefill) replayed launch by launch with a
// timer around each (CUDA: events, stream mode), summed per kernel, next to the generate loop's
// step time, so the gap between them is the launch/inter-kernel overhead; on CUDA also the cost
// of one graph node and of one stream launch, from 2000 empty kernels.
// decode_ms times Context::decode (logits copied back every step); generate_ms times the
// generate loop's steps (greedy, next token chosen and fed back on the backend, the default
// steps in flight), generate1_ms the same loop one step at a time (generate_depth 1).
// Floor: the weight bytes one decode step must read over the read bandwidth measured now (CPU:
// every weight read once with the same threads; CUDA: a 1 GiB device-to-device copy, counting
// read + write). For MoE layers only the selected experts count: top_k / experts of their weights.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>
#include "bench/bench_util.h"

#include "kernels/embedding.h"
#include "kernels/moe.h"
#include "kernels/thread_pool.h"
#include "runtime/context.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/kernels_cuda.h"
#endif

namespace {

using kiln::bench::median;
using kiln::bench::now_ms;

// GB/s of reading every weight once on the CPU with `threads` threads (median of 7), from where the
// context reads them: the mapped plan, or its huge-page copy (huge_pages).
double cpu_read_gbs(const kiln::Plan& p, int threads, bool huge_pages) {
  const uint8_t* base = huge_pages ? p.huge_page_weights_base() : p.weights_base();
  kiln::ThreadPool pool(threads);
  std::vector<std::pair<const uint64_t*, uint64_t>> ranges;
  uint64_t bytes = 0;
  for (const auto& t : p.tensors())
    if (t.region == kiln::Region::kWeights) {
      ranges.push_back({reinterpret_cast<const uint64_t*>(base + t.offset), t.size_bytes / 8});
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
  std::printf("profile %s: %zu launches, %.3f ms in kernels; the timed step took %.3f ms (%.1f%% outside kernels)\n",
              what, launches.size(), sum, step_ms, step_ms > 0 ? 100.0 * (step_ms - sum) / step_ms : 0.0);
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
    const std::string op = p.kernels()[l.kernel]->name;
    if (op == "embedding") {  // one row per token, of the table and of a position table (every version)
      for (size_t k : {size_t(1), size_t(3)}) {
        if (k >= l.inputs.size() || l.inputs[k] == kiln::kNoTensor) continue;
        const auto& table = p.tensors()[l.inputs[k]];
        const double rows = std::min(double(table.shape[0]), double(p.tensors()[l.inputs[0]].numel()));
        bytes[l.inputs[k]] = std::max(bytes[l.inputs[k]], double(table.size_bytes) * rows / double(table.shape[0]));
      }
      continue;
    } else if (op == "moe_experts") {  // (every version)
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

// Decode timings of one context after a prompt of `context` tokens: Context::decode (logits
// copied back each step), and the generate loop with the default steps in flight and with one
// step at a time (per-token time = the interval between consecutive callbacks).
struct DecodeTimes {
  double decode_ms = 0, min_ms = 0, max_ms = 0, generate_ms = 0, generate1_ms = 0;
  int depth = 0;
};

bool time_decode(kiln::Context& c, const std::vector<int32_t>& prompt, int context, int steps, DecodeTimes* out) {
  c.reset();
  if (!c.prefill(0, prompt.data(), context).is_ok()) return false;
  std::vector<int32_t> tok(size_t(c.batch()), -1);
  std::vector<double> ms;
  for (int s = 0; s < steps; ++s) {
    tok[0] = c.sample(0, kiln::SamplingParams{}, uint64_t(s));
    const double t0 = now_ms();
    kiln::Status st = c.decode(tok.data());
    if (!st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return false;
    }
    ms.push_back(now_ms() - t0);
  }
  auto time_generate = [&](int d, double* out_ms) {
    if (!c.set_generate_depth(d).is_ok()) return false;
    std::vector<double> stamps;
    std::vector<int32_t> gen(static_cast<size_t>(steps + 1));
    int64_t n_gen = 0;
    kiln::Status gst =
        c.generate(prompt.data(), context, steps + 1, kiln::SamplingParams{}, -1, gen.data(), &n_gen, [&](int32_t) {
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
  out->depth = c.generate_depth();
  const int depth = out->depth;
  if (!time_generate(1, &out->generate1_ms) || !time_generate(depth, &out->generate_ms)) return false;
  if (!c.set_generate_depth(depth).is_ok()) return false;
  out->decode_ms = median(ms);
  out->min_ms = *std::min_element(ms.begin(), ms.end());
  out->max_ms = *std::max_element(ms.begin(), ms.end());
  return true;
}

std::unique_ptr<kiln::Context> create_context(const std::shared_ptr<const kiln::Plan>& plan,
                                              const kiln::ContextOptions& co) {
  auto ctx = kiln::Context::create(plan, co);
  if (!ctx.is_ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().message().c_str());
    return nullptr;
  }
  return ctx.take();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln decode/prefill benchmark"};
  std::string path, device = "cpu";
  int steps = 64, prefill = 0, threads = 0;
  std::vector<int> contexts;
  bool profile = false, pdl = false, compare_pdl = false, time_score = false;
  app.add_option("plan", path)->required();
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--steps", steps, "decode steps to time");
  app.add_option("--context", contexts, "prompt tokens before decoding (default 128; repeat for several)");
  app.add_option("--prefill", prefill, "also time one prefill of this many tokens (0 = skip)");
  app.add_option("--threads", threads, "CPU threads (0 = all cores)");
  app.add_flag("--profile", profile, "also time each launch of one decode (and prefill) step, per kernel");
  app.add_flag("--score", time_score, "with --prefill: also time scoring those tokens (logits of every position)");
  app.add_flag("--pdl", pdl, "CUDA: launch decode GEMVs with programmatic dependent launch");
  bool huge_pages = false;
  app.add_flag("--huge-pages", huge_pages, "CPU: weights from a copy in transparent huge pages (ContextOptions)");
  app.add_flag("--compare-pdl", compare_pdl, "CUDA: then time decode again in a context with PDL the other way");
  bool no_avx512 = false;
  kiln::bench::add_no_avx512_flag(app, no_avx512);
  CLI11_PARSE(app, argc, argv);
  kiln::bench::apply_no_avx512(no_avx512);
  if (contexts.empty()) contexts.push_back(128);
  bool bad_context = false;
  for (int ctx_len : contexts) bad_context = bad_context || ctx_len < 1;
  if (steps < 1 || bad_context || prefill < 0) {
    std::fprintf(stderr, "error: --steps and --context must be at least 1, --prefill at least 0\n");
    return 1;
  }

  // Load → first token: the plan loaded and verified, the context created (CUDA: weights uploaded,
  // graphs captured), the first prompt prefilled and its next token chosen. The page cache is as
  // the caller left it (warm right after kiln compile wrote the plan).
  const double t_load = now_ms();
  auto plan = kiln::Plan::load_file(path);
  if (!plan.is_ok()) {
    std::fprintf(stderr, "error: %s\n", plan.status().message().c_str());
    return 1;
  }
  const double t_loaded = now_ms();
  kiln::ContextOptions co;
  co.n_threads = threads;
  co.device = device;
  co.use_pdl = pdl;
  co.cpu_huge_pages = huge_pages;
  std::unique_ptr<kiln::Context> ctx = create_context(plan.value(), co);
  if (!ctx) return 1;
  const double t_created = now_ms();
  kiln::Context* c = ctx.get();
  int max_context = 0;
  for (int ctx_len : contexts) max_context = std::max(max_context, ctx_len);
  if (max_context + steps + 1 > c->max_seq() || prefill > c->max_seq()) {
    std::fprintf(stderr, "error: context + steps + 1 (or --prefill) exceeds max_seq %lld\n", (long long)c->max_seq());
    return 1;
  }
  std::vector<int32_t> prompt(static_cast<size_t>(std::max(max_context, prefill)));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 7919) % size_t(c->vocab()));
  if (!c->prefill(0, prompt.data(), contexts[0]).is_ok()) return 1;
  const int32_t first = c->sample(0, kiln::SamplingParams{}, 0);
  const double t_first = now_ms();
  std::printf(
      "load: plan loaded and verified in %.1f ms, context created in %.1f ms, first token (%d) after a "
      "%d-token prompt %.1f ms after the load began\n",
      t_loaded - t_load, t_created - t_loaded, int(first), contexts[0], t_first - t_load);
  std::printf("LOAD load_ms=%.1f create_ms=%.1f first_token_ms=%.1f\n", t_loaded - t_load, t_created - t_loaded,
              t_first - t_load);

  double prefill_ms = 0, score_ms = 0;
  if (prefill > 0) {
    std::vector<double> ms;
    for (int r = 0; r < 5; ++r) {
      c->reset();
      const double t0 = now_ms();
      if (!c->prefill(0, prompt.data(), prefill).is_ok()) return 1;
      ms.push_back(now_ms() - t0);
    }
    prefill_ms = median(ms);
    // The same tokens scored (Context::score: the `score` program, logits for every position),
    // which is what a prefill cost before it kept the LM head to the last position.
    if (time_score) {
      std::vector<float> all(size_t(prefill) * size_t(c->vocab()));
      ms.clear();
      for (int r = 0; r < 5; ++r) {
        const double t0 = now_ms();
        const kiln::Status st = c->score(prompt.data(), 1, prefill, all.data());
        if (!st.is_ok()) {
          std::fprintf(stderr, "error: score: %s\n", st.message().c_str());
          return 1;
        }
        ms.push_back(now_ms() - t0);
      }
      score_ms = median(ms);
    }
  }
  const double wbytes = decode_weight_bytes(*plan.value());
  const double gbs = device == "cuda" ? cuda_copy_gbs() : cpu_read_gbs(*plan.value(), threads, huge_pages);
  const double floor_ms = gbs > 0 ? wbytes / 1e6 / gbs : 0.0;
  std::printf("plan %s on %s (%s)\n", path.c_str(), device.c_str(), c->describe().c_str());
  if (prefill > 0) std::printf("prefill %d tokens: median %.2f ms of 5\n", prefill, prefill_ms);
  if (score_ms > 0)
    std::printf("score %d tokens (logits of every position): median %.2f ms of 5\n", prefill, score_ms);
  std::printf("floor: %.2f GB of weights read per step at %.1f GB/s measured now = %.3f ms/token\n", wbytes / 1e9, gbs,
              floor_ms);
  // One RESULT line per (context, PDL) pair; prefill_ms is the same prefill in each.
  auto report = [&](int ctx_len, bool with_pdl, const DecodeTimes& d) {
    std::printf(
        "context %d%s: decode median %.3f ms/token over %d steps (min %.3f, max %.3f; %.2fx the floor, "
        "%.1f GB/s of weights); generate %.3f ms/token with %d in flight, %.3f one step at a time\n",
        ctx_len, with_pdl ? ", PDL" : "", d.decode_ms, steps, d.min_ms, d.max_ms,
        floor_ms > 0 ? d.decode_ms / floor_ms : 0.0, wbytes / 1e6 / d.decode_ms, d.generate_ms, d.depth,
        d.generate1_ms);
    std::printf(
        "RESULT device=%s huge_pages=%d context=%d pdl=%d decode_ms=%.3f floor_ms=%.3f prefill_ms=%.2f gbs=%.1f "
        "generate_ms=%.3f generate1_ms=%.3f score_ms=%.2f\n",
        device.c_str(), huge_pages ? 1 : 0, ctx_len, with_pdl ? 1 : 0, d.decode_ms, floor_ms, prefill_ms, gbs, d.generate_ms,
        d.generate1_ms, score_ms);
    std::fflush(stdout);
  };
  DecodeTimes first_times;
  for (size_t i = 0; i < contexts.size(); ++i) {
    DecodeTimes d;
    if (!time_decode(*c, prompt, contexts[i], steps, &d)) return 1;
    report(contexts[i], pdl, d);
    if (i == 0) first_times = d;
  }
  if (profile) {
    // The share outside kernels is taken against the generate loop's step (graph replays back to
    // back, nothing copied to the host but the token), the closest to one decode graph alone.
    std::vector<double> launch_ms;
    c->reset();
    if (!c->prefill(0, prompt.data(), contexts[0]).is_ok()) return 1;
    std::vector<int32_t> tok(size_t(c->batch()), -1);
    tok[0] = c->sample(0, kiln::SamplingParams{}, 0);
    c->set_profile(&launch_ms);
    if (!c->decode(tok.data()).is_ok()) return 1;
    print_profile("decode", *plan.value(), c->program_index(true), launch_ms, first_times.generate_ms);
    if (prefill > 0 && prefill <= c->prefill_chunk()) {  // one prefill replay: comparable with prefill_ms
      c->reset();
      if (!c->prefill(0, prompt.data(), prefill).is_ok()) return 1;
      print_profile("prefill", *plan.value(), c->program_index(false), launch_ms, prefill_ms);
    } else if (prefill > 0) {
      std::printf("profile prefill: skipped, %d tokens take several chunks of %lld\n", prefill,
                  (long long)c->prefill_chunk());
    }
    c->set_profile(nullptr);
    if (device == "cuda") {
      const auto [graph_us, stream_us] = cuda_node_overhead_us();
      std::printf("graph replay: %.2f us per node; stream launch: %.2f us per kernel (2000 empty kernels)\n", graph_us,
                  stream_us);
      std::printf("OVERHEAD graph_node_us=%.2f stream_launch_us=%.2f\n", graph_us, stream_us);
    }
  }
  if (compare_pdl && device == "cuda") {  // the same decode in a fresh context with PDL the other way
    ctx.reset();
    co.use_pdl = !pdl;
    ctx = create_context(plan.value(), co);
    if (!ctx) return 1;
    std::printf("context with PDL %s: %s\n", co.use_pdl ? "asked for" : "off", ctx->describe().c_str());
    DecodeTimes d;
    if (!time_decode(*ctx, prompt, contexts[0], steps, &d)) return 1;
    report(contexts[0], co.use_pdl, d);
  }
  return 0;
}
