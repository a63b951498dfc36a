// Helpers shared by the benchmarks: a wall clock, medians, the CPU tier switch.
#pragma once
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/simd.h"

namespace kiln::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// --no-avx512: the CPU kernels' AVX2 tiles on an AVX-512 CPU (the same bits), so that one machine
// measures what AVX2-only CPUs run. Call apply_no_avx512 after parsing.
inline void add_no_avx512_flag(CLI::App& app, bool& no_avx512) {
  app.add_flag("--no-avx512", no_avx512, "run the AVX2 tiles on an AVX-512 CPU (the same bits; AVX2 machines' speed)");
}
inline void apply_no_avx512(bool no_avx512) {
#ifdef KILN_X86_64_V3_KERNELS
  if (no_avx512) kiln::set_avx512_tiles_for_tests(false);
#else
  (void)no_avx512;
#endif
}

}  // namespace kiln::bench
