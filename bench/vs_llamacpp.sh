#!/usr/bin/env bash
# kiln next to llama.cpp on the same CPU, model and dtype (issue 18's comparison). Measured only:
# llama.cpp is built in SCRATCH from the llama-cpp-python sdist on PyPI and never committed.
#
#   bench/vs_llamacpp.sh SCRATCH MODEL_DIR [THREADS] [RUNS]
#
# MODEL_DIR: a hub-layout LLaMA-family folder (tools/e2e_smollm2.py writes SmolLM2-135M-Instruct as
# one to /tmp/kiln-smollm2/model; for the 1B shape, `kiln-random-checkpoint --shape 1b DIR` with
# SmolLM2's tokenizer.json and tokenizer_config.json copied into DIR, since the converter needs a
# tokenizer and pads its vocabulary to the config's; use another SCRATCH per model, the GGUFs are
# named by dtype only). PYTHON (default .venv-fixtures/bin/python) must have what
# llama.cpp's convert_hf_to_gguf.py imports (torch, numpy, transformers; the fixtures venv does).
# Needs build/kiln and build/kiln-bench. For each of f32 and bf16: the GGUF and the kiln plan of
# the same checkpoint, then RUNS runs each of kiln-bench and llama-bench (128-token prompt, 128
# decode steps, and a 2,000-token prompt), printing their lines; take the medians from them.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,15p "$0"; exit 2; }
S=$1 M=$2 T=${3:-2} RUNS=${4:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv-fixtures/bin/python}
VER=0.3.36
mkdir -p "$S"
if [ ! -x "$S/build/bin/llama-bench" ]; then
  [ -d "$S/venv" ] || python3 -m venv "$S/venv"
  "$S/venv/bin/pip" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$S"
  tar -xzf "$S/llama_cpp_python-$VER.tar.gz" -C "$S"
  cmake -S "$S/llama_cpp_python-$VER/vendor/llama.cpp" -B "$S/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  ninja -C "$S/build" llama-bench
fi
CONVERT="$S/llama_cpp_python-$VER/vendor/llama.cpp/convert_hf_to_gguf.py"
[ -f "$CONVERT" ] || tar -xzf "$S/llama_cpp_python-$VER.tar.gz" -C "$S"
for dt in f32 bf16; do
  if [ ! -f "$S/model-$dt.gguf" ]; then
    "$PY" "$CONVERT" "$M" --outtype "$dt" --outfile "$S/model-$dt.gguf" >"$S/convert-$dt.log" 2>&1 ||
      { echo "GGUF conversion failed: $S/convert-$dt.log" >&2; exit 1; }
  fi
  "$REPO/build/kiln" compile "$M" -o "$S/model-$dt.kplan" --dtype "$dt" --target cpu --max-seq 2304 >/dev/null
  for r in $(seq "$RUNS"); do
    echo "== kiln $dt run $r"
    "$REPO/build/kiln-bench" "$S/model-$dt.kplan" --device cpu --threads "$T" --steps 128 --context 128 \
      --prefill 128 | grep -E '^(prefill|context)'
    "$REPO/build/kiln-bench" "$S/model-$dt.kplan" --device cpu --threads "$T" --steps 4 --context 64 \
      --prefill 2000 | grep -E '^prefill'
  done
  echo "== llama.cpp $dt ($RUNS repetitions each)"
  "$S/build/bin/llama-bench" -m "$S/model-$dt.gguf" -t "$T" -r "$RUNS" -p 128,2000 -n 128 -o md 2>/dev/null |
    grep -E 'pp|tg'
done
