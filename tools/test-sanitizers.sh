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
bash tools/configure-sanitizer-tree.sh "$build"
cmake --build "$build" -j "$(nproc)"
KILN_SOAK_SECONDS="${KILN_SOAK_SECONDS:-20}" \
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
FUZZ_BUILD_DIR="$build" FUZZ_SECONDS="${FUZZ_SECONDS:-10}" bash tools/fuzz.sh
