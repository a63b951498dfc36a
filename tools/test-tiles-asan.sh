#!/usr/bin/env bash
# The hand-written AVX2 and AVX-512 tiles (kernels/cpu/tiles.h, gemm_tiles.h) are built by GCC only
# (they match its x86-64-v3 clones bit for bit), so the clang sanitizer tree of
# tools/test-sanitizers.sh never runs them. This builds a GCC tree with AddressSanitizer +
# UndefinedBehaviorSanitizer and the tiles on (KILN_TILES_UNDER_ASAN, kernels/cpu/simd.h) and runs the
# test suite there: on an AVX-512 CPU the tier tests run both tiers' tiles. Not part of CI (the tree
# takes about 10 minutes on 2 cores); run it after changing a tile.
# Usage: tools/test-tiles-asan.sh [doctest options, e.g. -sf="*kernels*" for the kernel tests alone]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${TILES_ASAN_BUILD_DIR:-build-tiles-asan}"
bash tools/configure-sanitizer-tree.sh "$build" --gcc-tiles
cmake --build "$build" -j "$(nproc)" --target kiln_tests
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  KILN_SOAK_SECONDS="${KILN_SOAK_SECONDS:-5}" "$build/tests/kiln_tests" "$@"
