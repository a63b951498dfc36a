// The arena planner, randomized: no two buffers that are live at the same time overlap, every
// offset is aligned, and the arena is no larger than the sum of the buffers.
#include <doctest/doctest.h>

#include <random>

#include "compiler/passes/memory_plan.h"

using namespace kiln;

TEST_CASE("memory planner: randomized lifetimes never overlap in memory") {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + int(rng() % 60), steps = 1 + int(rng() % 40);
    std::vector<PlanBuffer> bufs(static_cast<size_t>(n));
    uint64_t sum = 0;
    for (auto& b : bufs) {
      b.size = 1 + rng() % 5000;
      b.first = int(rng() % uint32_t(steps));
      b.last = b.first + int(rng() % uint32_t(steps - b.first));
      sum += (b.size + 255) / 256 * 256;
    }
    const uint64_t total = plan_buffers(bufs, 256);
    REQUIRE(total <= sum);
    uint64_t peak = 0;  // the most bytes live at one step is a lower bound
    for (int s = 0; s < steps; ++s) {
      uint64_t live = 0;
      for (const auto& b : bufs)
        if (b.first <= s && s <= b.last) live += (b.size + 255) / 256 * 256;
      peak = std::max(peak, live);
    }
    REQUIRE(total >= peak);
    for (size_t i = 0; i < bufs.size(); ++i) {
      REQUIRE(bufs[i].offset % 256 == 0);
      REQUIRE(bufs[i].offset + bufs[i].size <= total);
      for (size_t j = i + 1; j < bufs.size(); ++j) {
        const auto &a = bufs[i], &b = bufs[j];
        const bool live_together = a.first <= b.last && b.first <= a.last;
        const bool disjoint = a.offset + a.size <= b.offset || b.offset + b.size <= a.offset;
        REQUIRE((!live_together || disjoint));
      }
    }
  }
}

TEST_CASE("memory planner: a chain of short-lived buffers reuses memory") {
  std::vector<PlanBuffer> bufs;
  for (int i = 0; i < 10; ++i) bufs.push_back(PlanBuffer{1024, i, i + 1, 0});
  // Each buffer overlaps only its neighbours, so two slots suffice.
  CHECK(plan_buffers(bufs, 256) == 2048);
}
