#!/usr/bin/env bash
# Prints one hash of every source file that goes into a kiln build (CMake files, schema, C/C++ and
# CUDA sources and headers; not fixtures, docs or scripts). tools/build_sm90.sh records it with the
# binaries it packs, and tools/device_check.sh compares it with the tree it runs in, so binaries
# built from other sources are never measured as if they were this tree's. Works without .git.
set -euo pipefail
cd "$(dirname "$0")/.."
find CMakeLists.txt cmake schema kernels runtime compiler codegen tools bench tests examples -type f \
     \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.c' -o -name '*.cu' -o -name '*.cuh' \
        -o -name '*.inc' -o -name '*.fbs' -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.in' \) \
     -not -path 'tests/fixtures/*' -print0 2>/dev/null \
  | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
