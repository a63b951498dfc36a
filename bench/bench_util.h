// Helpers shared by the benchmarks: a wall clock and medians.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

namespace kiln::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace kiln::bench
