#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU (an H200 in practice):
#   1. use the sm_90 build in $BUILD_DIR (default build-sm90, e.g. carried from a dev machine)
#      or build one here when cmake and the Debian headers are present;
#   2. run the CUDA tests (tests/cuda) and the CPU suite;
#   3. benchmark decode and prefill on random-weight Llama-3.2-1B, Llama-3.1-8B and DeepSeek-V2-Lite shapes
#      (kiln-random-checkpoint) against the device-to-device copy floor measured in the same run,
#      and against HF transformers eager on the same weights when torch is importable.
# Logs go to the folder given as $1 (default ./device-check); a short table is printed last.
#   4. benchmark text-to-image on a random-weight SD1.5-shaped pipeline (512², 30 Euler steps, CFG)
#      with kiln-bench-diffusion (DIFFUSION=none skips it).
#   tools/device_check.sh OUT_DIR   (SHAPES="1b 8b v2-lite" by default; SHAPES=1b for a quick run)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-device-check}"
mkdir -p "$out"
build="${BUILD_DIR:-build-sm90}"
shapes="${SHAPES:-1b 8b v2-lite}"
work="${WORK_DIR:-/tmp/kiln-device-check}"
mkdir -p "$work"
table="$out/table.txt"
: > "$table"
row() { printf '%-44s %s\n' "$1" "$2" | tee -a "$table"; }

{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true; } > "$out/gpu.txt" 2>&1
gpu="$(head -1 "$out/gpu.txt")"

if [ ! -x "$build/kiln" ]; then
  echo "== building $build for sm_90"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    > "$out/build.log" 2>&1 && cmake --build "$build" -j "$(nproc)" >> "$out/build.log" 2>&1 \
    || { echo "build failed (see $out/build.log)"; tail -20 "$out/build.log"; exit 1; }
fi
export KILN_FIXTURES_DIR="$PWD/tests/fixtures"

echo "== CUDA tests"
"$build/tests/kiln_cuda_tests" --success=false > "$out/cuda_tests.log" 2>&1
cuda_rc=$?
row "CUDA tests (tests/cuda)" "$( [ $cuda_rc -eq 0 ] && echo pass || echo "FAIL rc=$cuda_rc" ); $(grep -E 'test cases' "$out/cuda_tests.log" | tail -1)"
grep -q "SKIPPED: no CUDA device" "$out/cuda_tests.log" && row "WARNING" "CUDA tests skipped: no device visible"
"$build/tests/kiln_tests" > "$out/cpu_tests.log" 2>&1
row "CPU tests (tests/)" "$( [ $? -eq 0 ] && echo pass || echo FAIL ); $(grep -E 'test cases' "$out/cpu_tests.log" | tail -1)"

for shape in $shapes; do
  ck="$work/llama-$shape"
  plan="$work/llama-$shape.kplan"
  [ -f "$ck/config.json" ] || "$build/kiln-random-checkpoint" --shape "$shape" "$ck" > "$out/random-$shape.log" 2>&1
  "$build/kiln" compile "$ck" -o "$plan" --dtype bf16 --max-seq 2048 --batch 1 --chunk 512 --target cuda \
    > "$out/compile-$shape.log" 2>&1 || { row "compile $shape" "FAIL (see compile-$shape.log)"; continue; }
  for ctxlen in 128 1024; do
    "$build/kiln-bench" "$plan" --device cuda --steps 256 --context $ctxlen --prefill 512 --profile \
      > "$out/bench-$shape-ctx$ctxlen.log" 2>&1
    r="$(grep '^RESULT' "$out/bench-$shape-ctx$ctxlen.log")"
    if [ -z "$r" ]; then row "kiln $shape decode ctx $ctxlen" "FAIL: $(tail -1 "$out/bench-$shape-ctx$ctxlen.log")"; continue; fi
    dec=$(sed -E 's/.*decode_ms=([0-9.]+).*/\1/' <<<"$r"); fl=$(sed -E 's/.*floor_ms=([0-9.]+).*/\1/' <<<"$r")
    pf=$(sed -E 's/.*prefill_ms=([0-9.]+).*/\1/' <<<"$r"); bw=$(sed -E 's/.*gbs=([0-9.]+).*/\1/' <<<"$r")
    gm=$(sed -E 's/.*generate_ms=([0-9.]+).*/\1/' <<<"$r"); g1=$(sed -E 's/.*generate1_ms=([0-9.]+).*/\1/' <<<"$r")
    row "kiln $shape decode ctx $ctxlen (ms/token)" "$dec decode(), $gm generate loop ($g1 one step at a time) (floor $fl at copy $bw GB/s)"
    p="$(grep '^PROFILE decode' "$out/bench-$shape-ctx$ctxlen.log")"
    [ -n "$p" ] && row "  $shape ctx $ctxlen: kernels / outside (%)" "$(sed -E 's/.*kernels_ms=([0-9.]+).*outside_pct=([-0-9.]+).*/\1 ms in kernels, \2% outside (target <= 5)/' <<<"$p")"
    if [ $ctxlen -eq 128 ]; then  # the same decode with the GEMVs on programmatic dependent launch
      "$build/kiln-bench" "$plan" --device cuda --steps 256 --context 128 --pdl > "$out/bench-$shape-ctx128-pdl.log" 2>&1
      rp="$(grep '^RESULT' "$out/bench-$shape-ctx128-pdl.log")"
      pdl_state="$(grep -o 'PDL [^;)]*' "$out/bench-$shape-ctx128-pdl.log" | head -1)"
      row "  $shape ctx 128 with --pdl (ms/token)" "$( [ -n "$rp" ] && sed -E 's/.*decode_ms=([0-9.]+).*generate_ms=([0-9.]+).*/\1 decode(), \2 generate loop/' <<<"$rp" || echo "FAIL: $(tail -1 "$out/bench-$shape-ctx128-pdl.log")") (${pdl_state:-PDL state not reported})"
    fi
    [ $ctxlen -eq 128 ] && row "kiln $shape prefill 512 tokens (ms)" "$pf ($(grep -o 'prefill GEMMs on [^:;]*' "$out/bench-$shape-ctx$ctxlen.log" | head -1 || echo 'GEMM path not reported'))"
  done
  if python3 -c "import torch, transformers" 2>/dev/null; then
    python3 bench/hf_decode.py "$ck" --steps 64 --context 128 > "$out/hf-$shape.log" 2>&1
    row "HF eager $shape decode ctx 128 (ms/token)" "$(grep '^RESULT' "$out/hf-$shape.log" | sed -E 's/.*decode_ms=([0-9.]+).*/\1/' || echo n/a)"
  fi
  rm -f "$plan"
done

o="$(cat "$out"/bench-*-ctx128.log 2>/dev/null | grep -m1 '^OVERHEAD')"
[ -n "$o" ] && row "graph node / stream launch (us)" "$(sed -E 's/.*graph_node_us=([0-9.]+) stream_launch_us=([0-9.]+).*/\1 per graph node, \2 per stream launch/' <<<"$o")"

if [ "${DIFFUSION:-sd15}" != none ]; then
  ck="$work/sd15"
  plan="$work/sd15.kplan"
  [ -f "$ck/model_index.json" ] || "$build/kiln-random-checkpoint" --shape sd15 "$ck" > "$out/random-sd15.log" 2>&1
  if "$build/kiln" compile "$ck" -o "$plan" --dtype bf16 --height 512 --width 512 --steps 30 --sampler euler \
       --guidance 7.5 --target cuda > "$out/compile-sd15.log" 2>&1; then
    "$build/kiln-bench-diffusion" "$plan" --device cuda --images 3 > "$out/bench-sd15.log" 2>&1
    r="$(grep '^RESULT' "$out/bench-sd15.log")"
    if [ -n "$r" ]; then
      row "kiln SD1.5 step, 64x64 latent, CFG 2 (ms)" "$(sed -E 's/.* loop_step_ms=([0-9.]+).*/\1/' <<<"$r") in the loop graph, $(sed -E 's/.*RESULT step_ms=([0-9.]+).*/\1/' <<<"$r") replayed alone (target 8)"
      row "kiln SD1.5 30-step 512x512 image (s)" "$(sed -E 's/.*image_s=([0-9.]+).*/\1/' <<<"$r") (target 0.35; decode $(sed -E 's/.*decode_ms=([0-9.]+).*/\1/' <<<"$r") ms)"
    else
      row "kiln SD1.5" "FAIL: $(tail -1 "$out/bench-sd15.log")"
    fi
  else
    row "compile sd15" "FAIL (see compile-sd15.log)"
  fi
  rm -f "$plan"
fi

echo
echo "== device check on ${gpu:-unknown GPU}, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%F)"
cat "$table"
