#!/usr/bin/env bash
# Builds kiln and runs the whole test suite (the README's test command; .ci/run calls it).
# The CUDA backend is compiled when nvcc is present (KILN_WITH_CUDA=AUTO); its tests skip
# without a GPU. BUILD_DIR overrides the build folder (default: build); KILN_UNITY=OFF compiles
# file by file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build="${BUILD_DIR:-build}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
                                          -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
# Unity batches (KILN_UNITY=OFF to build file by file): less compiling from scratch.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WITH_CUDA="${KILN_WITH_CUDA:-AUTO}" \
  -DCMAKE_UNITY_BUILD="${KILN_UNITY:-ON}" "${launcher[@]}"
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"

# Install to a prefix, then build and run the out-of-tree example against it, through both
# the CMake package (find_package(kiln)) and pkg-config.
prefix="$PWD/$build/install-prefix"
rm -rf "$prefix" "$build/consumer"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B "$build/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/consumer" >/dev/null
plan="$build/examples-kjv.kplan"   # made by the examples_compile_plan test above
want="268 258 611 669 835 11"      # transformers' greedy start (models/kjv-tiny/reference.json)
"$build/consumer/consumer_c" "$plan" 2046 1147 258 1801 1243 | grep -q "^$want" \
  || { echo "install check: find_package(kiln) consumer gave the wrong tokens"; exit 1; }
"$build/consumer/consumer_cpp" "$plan" "In the beginning" 8 2>/dev/null | grep -q "Lord Jesus" \
  || { echo "install check: the C++ consumer (kiln::runtime_shared) failed"; exit 1; }
pcdir="$(dirname "$(find "$prefix" -name kiln.pc | head -1)")"
cc examples/c_generate.c -o "$build/consumer/pkgconfig_c" \
  $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs kiln) -Wl,-rpath,"$(dirname "$pcdir")"
"$build/consumer/pkgconfig_c" "$plan" 2046 1147 258 1801 1243 | grep -q "^$want" \
  || { echo "install check: the pkg-config consumer gave the wrong tokens"; exit 1; }
# Static: `pkg-config --static` must name everything libkiln_runtime.a needs (with CUDA, the
# kernels' archive and the static CUDA runtime). A folder holding only the archive comes first, so
# -lkiln_runtime finds it rather than the .so.
mkdir -p "$build/consumer/static-only"
ln -sf "$(dirname "$pcdir")/libkiln_runtime.a" "$build/consumer/static-only/"
cc examples/c_generate.c -o "$build/consumer/pkgconfig_static" -L"$build/consumer/static-only" \
  $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --static --libs kiln)
! ldd "$build/consumer/pkgconfig_static" | grep -q kiln_runtime \
  || { echo "install check: the static pkg-config consumer linked the shared library"; exit 1; }
"$build/consumer/pkgconfig_static" "$plan" 2046 1147 258 1801 1243 | grep -q "^$want" \
  || { echo "install check: the static pkg-config consumer gave the wrong tokens"; exit 1; }
echo "install check: find_package(kiln) and pkg-config (shared and static) consumers built against $prefix and ran: passed"
