#!/usr/bin/env bash
# tools/device_check.sh must fail loudly where no GPU is visible: exit 1, a FAIL row for the GPU and
# one for the CUDA tests (which skip without a device), never "pass". Exits 77 (ctest: skipped)
# where a GPU is visible, since the script would then run the real check.
#   device_check_without_gpu.sh BUILD_DIR
set -uo pipefail
build="$1"
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "a GPU is visible: this test checks the no-GPU behaviour"
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$(dirname "$0")/../.."
BUILD_DIR="$build" WORK_DIR="$tmp/work" PARTS="tests sanitizer 1b" tools/device_check.sh "$tmp/out" > "$tmp/stdout" 2>&1
rc=$?
cat "$tmp/stdout"
status=0
check() { grep -qE "$1" "$tmp/out/table.txt" || { echo "missing from the table: $1"; status=1; }; }
[ $rc -eq 1 ] || { echo "device_check.sh exited $rc, expected 1"; status=1; }
check '^GPU +FAIL: none visible'
check '^CUDA tests \(tests/cuda\) +FAIL: skipped, no CUDA device'
check '^sanitizer +NOT RUN: no GPU'
check '^1b +NOT RUN: no GPU or no binaries'
grep -q '^FAIL: 2 failed' "$tmp/stdout" || { echo "no FAIL summary line"; status=1; }
grep -qiE '(^| )pass(;|$)' "$tmp/out/table.txt" && { echo "the table says pass"; status=1; }
grep -q 'SKIPPED: no CUDA device' "$tmp/out/cuda_tests.log" || { echo "cuda_tests.log lacks the tests' skip line"; status=1; }
exit $status
