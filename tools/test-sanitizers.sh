#!/usr/bin/env bash
# The robustness jobs CI runs after tools/test.sh:
#   1. the whole test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (clang,
#      CUDA off), leak checking on, with the soak test running for 2 minutes;
#   2. every libFuzzer target for FUZZ_SECONDS (tools/fuzz.sh), seeded from the fixtures and
#      the saved regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${ASAN_BUILD_DIR:-build-asan}"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WITH_CUDA=OFF \
  -DKILN_SANITIZE=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
KILN_SOAK_SECONDS="${KILN_SOAK_SECONDS:-120}" \
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
FUZZ_SECONDS="${FUZZ_SECONDS:-45}" bash tools/fuzz.sh
