#!/usr/bin/env bash
# Configures the one clang tree (CUDA off) that tools/test-sanitizers.sh builds the tests in and
# tools/fuzz.sh builds the fuzzers in: AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer's
# coverage instrumentation. Usage: tools/configure-sanitizer-tree.sh BUILD_DIR [--gcc-tiles]
# (--gcc-tiles: the GCC tree of tools/test-tiles-asan.sh instead, the same sanitizers and levels).
#
# Line tables only (not full debug info): sanitizer reports keep their file:line, and the tree
# compiles in about two thirds of the time. -O0 for the test code and the tools (instrumented code
# compiles two to three times faster at -O0); the runtime and compiler libraries and the fuzz
# targets, where the tests and fuzzers spend their time, at -O1 (KILN_LIBRARY_OPT); the CPU kernels
# keep their own -O3 (CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
build="$1"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
case "${2:-}" in "" | --gcc-tiles) ;; *) echo "configure-sanitizer-tree.sh: unknown option '$2'" >&2; exit 2 ;; esac
if [ "${2:-}" = --gcc-tiles ]; then
  # tools/test-tiles-asan.sh's tree: GCC, with the hand-written AVX2/AVX-512 tiles on
  # (KILN_TILES_UNDER_ASAN, kernels/cpu/simd.h); no fuzzers (libFuzzer is clang's)
  compilers=(CC=gcc CXX=g++) lines=-g1 extra=(-DCMAKE_CXX_FLAGS=-DKILN_TILES_UNDER_ASAN -DKILN_FUZZ=OFF)
else
  compilers=(CC=clang CXX=clang++) lines=-gline-tables-only extra=(-DKILN_FUZZ=ON)
fi
env "${compilers[@]}" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WITH_CUDA=OFF \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O0 $lines -DNDEBUG" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 $lines -DNDEBUG" -DKILN_LIBRARY_OPT=-O1 -DKILN_TEST_OPT=-O0 \
  -DKILN_SANITIZE=ON "${extra[@]}" -DCMAKE_UNITY_BUILD="${KILN_UNITY:-ON}" "${launcher[@]}" >/dev/null
