#!/usr/bin/env bash
# Builds kiln and runs the whole test suite (the README's test command; .ci/run calls it).
# The CUDA backend is compiled when nvcc is present (KILN_WITH_CUDA=AUTO); its tests skip
# without a GPU. BUILD_DIR overrides the build folder (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WITH_CUDA="${KILN_WITH_CUDA:-AUTO}"
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
