#!/usr/bin/env bash
# Builds, on a machine without a GPU, the sm_90 binaries that tools/device_check.sh runs, and packs
# them small enough to carry to the GPU machine (the device tool's 64 MiB limit counts the working
# tree too), so the GPU's minutes are not spent compiling:
#   build-sm90/kiln-sm90.tar.xz  kiln, kiln-bench, kiln-bench-diffusion, kiln-random-checkpoint and
#       tests/kiln_cuda_tests, stripped, with static cudart, libstdc++, libgcc, xxHash, RE2 and PCRE2;
#       libpng and zlib beside them in lib/ (found through RUNPATH $ORIGIN), so only glibc and the driver
#       are needed there; BUILD_INFO holds tools/source_hash.sh's hash of the sources built.
#   build-sm90/deps.tar.xz  headers, flatc, static libraries and CMake package files for the fallback
#       build on the GPU machine (its image has nvcc, CMake and ninja but not these Debian packages),
#       used by device_check.sh when the packed binaries do not start there or are stale.
# The object tree is build-sm90-tree/ (never carried). Then, with the device tool:
#   tools/device_tree.sh slim   (the tracked tree alone is over the tool's 64 MiB)
#   run(command="tools/device_check.sh $OUT", carry=["build-sm90"], timeout_s=540)
#   tools/device_tree.sh restore
set -euo pipefail
cd "$(dirname "$0")/.."
tree="${TREE_DIR:-build-sm90-tree}"
dest="${DEST_DIR:-build-sm90}"
targets=(kiln kiln-bench kiln-bench-diffusion kiln-random-checkpoint kiln_cuda_tests)
command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"

cmake -S . -B "$tree" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DKILN_STATIC_DEPS=ON \
  -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" -DCMAKE_BUILD_RPATH='$ORIGIN/lib;$ORIGIN/../lib' >/dev/null
cmake --build "$tree" -j "$(nproc)" --target "${targets[@]}"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin/tests" "$stage/bin/lib" "$dest"
for t in kiln kiln-bench kiln-bench-diffusion kiln-random-checkpoint; do strip -o "$stage/bin/$t" "$tree/$t"; done
strip -o "$stage/bin/tests/kiln_cuda_tests" "$tree/tests/kiln_cuda_tests"
# The shared libraries the binaries still need beyond glibc: copied, and found through RUNPATH.
for lib in $(ldd "$tree/kiln" "$tree/tests/kiln_cuda_tests" | awk '/=> \//{print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*) ;;
    *) cp -L "$lib" "$stage/bin/lib/" ;;
  esac
done
for t in "$stage"/bin/kiln "$stage"/bin/tests/kiln_cuda_tests; do
  if ldd "$t" | grep -q "libstdc++\|libgcc_s\|libcudart"; then echo "build_sm90: $t still links a library meant to be static" >&2; exit 1; fi
done
glibc="$(objdump -T "$stage"/bin/kiln "$stage"/bin/kiln-bench* "$stage"/bin/tests/kiln_cuda_tests \
         | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
{
  echo "source_hash $(tools/source_hash.sh)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)')"
  echo "built $(date -u +%FT%TZ) on $(uname -m), $(nvcc --version | grep -o 'release [0-9.]*'), sm_90, needs ${glibc:-?}"
} > "$stage/bin/BUILD_INFO"
tar -C "$stage/bin" -cf - . | xz -9 -T "$(nproc)" > "$dest/kiln-sm90.tar.xz"

# Fallback build dependencies: the Debian packages' headers and libraries under one prefix that
# device_check.sh hands to CMake (CMAKE_PREFIX_PATH). CMake package files are rewritten to find
# their prefix from where they lie.
d="$stage/deps"
mkdir -p "$d/include" "$d/bin" "$d/lib/pkgconfig" "$d/lib/cmake" "$d/share/cmake"
cp -r /usr/include/flatbuffers /usr/include/CLI /usr/include/nlohmann /usr/include/doctest /usr/include/re2 "$d/include/"
cp /usr/include/xxhash.h /usr/include/pcre2.h /usr/include/png.h /usr/include/pngconf.h /usr/include/zlib.h "$d/include/"
cp /usr/include/x86_64-linux-gnu/pnglibconf.h /usr/include/x86_64-linux-gnu/zconf.h "$d/include/" 2>/dev/null \
  || cp /usr/include/pnglibconf.h /usr/include/zconf.h "$d/include/"
cp /usr/bin/flatc "$d/bin/"
multi=/usr/lib/x86_64-linux-gnu
cp "$multi/libxxhash.a" "$multi/libre2.a" "$multi/libpcre2-8.a" "$multi/libpng16.a" "$multi/libz.a" "$d/lib/"
for pc in libxxhash libpcre2-8; do
  sed -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' -e 's|^libdir=.*|libdir=${prefix}/lib|' \
    -e 's|^includedir=.*|includedir=${prefix}/include|' "$multi/pkgconfig/$pc.pc" > "$d/lib/pkgconfig/$pc.pc"
done
cp -r /usr/lib/cmake/doctest "$d/lib/cmake/"
sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$d/lib/cmake/doctest/doctestTargets.cmake"
cp -r /usr/share/cmake/nlohmann_json "$d/share/cmake/"
tar -C "$stage" -cf - deps | xz -9 -T "$(nproc)" > "$dest/deps.tar.xz"

cat "$stage/bin/BUILD_INFO"
du -h "$dest"/*.tar.xz
echo "carry: build-sm90 ($(du -sh "$dest" | cut -f1)); run: tools/device_check.sh \$OUT (after tools/device_tree.sh slim)"
