#!/usr/bin/env bash
# Installs kiln's build and test dependencies from Debian packages (nothing is downloaded
# from anywhere else). Safe to run repeatedly: it only calls apt-get when something is missing.
# The CUDA Toolkit is optional: when nvcc is on PATH the CUDA backend is built too.
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config libflatbuffers-dev flatbuffers-compiler libcli11-dev
          libxxhash-dev libre2-dev libpcre2-dev doctest-dev nlohmann-json3-dev libpng-dev
          clang libclang-rt-14-dev python3  # sanitizer and fuzzer builds (tools/test-sanitizers.sh)
          ccache)                           # compiler cache for repeated builds on one machine
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
