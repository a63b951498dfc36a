// CPU decode benchmark: median ms/token of batch-1 decode steps on a plan, next to the floor
// of reading every weight byte once with the same threads (what a decode step must at least
// do). Usage: kiln-bench-cpu PLAN [--steps N] [--context T] [--threads N]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "kernels/thread_pool.h"
#include "runtime/context.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln CPU decode benchmark"};
  std::string path;
  int steps = 32, context = 128, threads = 0;
  app.add_option("plan", path)->required();
  app.add_option("--steps", steps, "decode steps to time");
  app.add_option("--context", context, "prompt tokens before decoding");
  app.add_option("--threads", threads, "threads (0 = all cores)");
  CLI11_PARSE(app, argc, argv);

  auto plan = kiln::Plan::load_file(path);
  if (!plan.is_ok()) {
    std::fprintf(stderr, "error: %s\n", plan.status().message().c_str());
    return 1;
  }
  kiln::ContextOptions co;
  co.n_threads = threads;
  auto ctx = kiln::Context::create(plan.value(), co);
  if (!ctx.is_ok()) {
    std::fprintf(stderr, "error: %s\n", ctx.status().message().c_str());
    return 1;
  }
  kiln::Context& c = *ctx.value();
  if (context + steps > c.max_seq()) {
    std::fprintf(stderr, "error: context + steps exceeds max_seq %lld\n", (long long)c.max_seq());
    return 1;
  }
  std::vector<int32_t> prompt(static_cast<size_t>(context));
  for (int i = 0; i < context; ++i) prompt[size_t(i)] = int32_t((i * 7919) % c.vocab());
  double t0 = now_ms();
  if (!c.prefill(0, prompt.data(), context).is_ok()) return 1;
  const double prefill_ms = now_ms() - t0;
  std::vector<int32_t> tok(size_t(c.batch()), -1);
  std::vector<double> ms;
  for (int s = 0; s < steps; ++s) {
    tok[0] = c.sample(0, kiln::SamplingParams{}, uint64_t(s));
    t0 = now_ms();
    if (!c.decode(tok.data()).is_ok()) return 1;
    ms.push_back(now_ms() - t0);
  }

  // Floor: read every weight segment once, split over the same number of threads.
  const auto& p = *plan.value();
  kiln::ThreadPool pool(threads);
  std::vector<std::pair<const uint64_t*, uint64_t>> ranges;
  uint64_t bytes = 0;
  for (const auto& t : p.tensors())
    if (t.region == kiln::Region::kWeights) {
      ranges.push_back({static_cast<const uint64_t*>(p.weight_data(t)), t.size_bytes / 8});
      bytes += t.size_bytes;
    }
  std::vector<double> floor_ms;
  std::vector<uint64_t> sink(size_t(pool.size()), 0);
  for (int r = 0; r < 7; ++r) {
    t0 = now_ms();
    for (const auto& [ptr, n] : ranges)
      pool.parallel_for(int64_t(n), 1 << 14, [&, ptr = ptr](int64_t b, int64_t e, int w) {
        uint64_t acc = 0;
        for (int64_t i = b; i < e; ++i) acc += ptr[i];
        sink[size_t(w)] += acc;
      });
    floor_ms.push_back(now_ms() - t0);
  }
  uint64_t checksum = 0;
  for (uint64_t s : sink) checksum ^= s;
  const double med = median(ms), fl = median(floor_ms);
  std::printf("plan %s: %d threads, context %d\n", path.c_str(), pool.size(), context);
  std::printf("prefill %d tokens: %.1f ms\n", context, prefill_ms);
  std::printf("decode median %.2f ms/token over %d steps (min %.2f, max %.2f)\n", med, steps,
              *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()));
  std::printf("floor: read %.2f GB of weights once: median %.2f ms (%.1f GB/s); decode is %.2fx the floor [%llx]\n",
              double(bytes) / 1e9, fl, double(bytes) / 1e6 / fl, med / fl, (unsigned long long)(checksum & 0xf));
  return 0;
}
