#!/usr/bin/env bash
# The robustness jobs CI runs after tools/test.sh, from one clang tree (CUDA off) built with
# AddressSanitizer + UndefinedBehaviorSanitizer and libFuzzer's coverage instrumentation:
#   1. the whole test suite, leak checking on, with the soak test running for 20 seconds;
#   2. every libFuzzer target for FUZZ_SECONDS (tools/fuzz.sh), two at a time, seeded from the
#      fixtures and the saved regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${ASAN_BUILD_DIR:-build-asan}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Line tables only (not full debug info): sanitizer reports keep their file:line, and the tree
# compiles in about two thirds of the time. -O0 for the test code and the tools (instrumented code
# compiles two to three times faster at -O0); the runtime and compiler libraries, where the tests
# and fuzzers spend their time, at -O1; the CPU kernels keep their -O3 (CMakeLists.txt).
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WITH_CUDA=OFF \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O0 -gline-tables-only -DNDEBUG" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -gline-tables-only -DNDEBUG" -DKILN_LIBRARY_OPT=-O1 -DKILN_TEST_OPT=-O0 \
  -DKILN_SANITIZE=ON -DKILN_FUZZ=ON -DCMAKE_UNITY_BUILD="${KILN_UNITY:-ON}" "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
KILN_SOAK_SECONDS="${KILN_SOAK_SECONDS:-20}" \
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
FUZZ_BUILD_DIR="$build" FUZZ_SECONDS="${FUZZ_SECONDS:-10}" bash tools/fuzz.sh
