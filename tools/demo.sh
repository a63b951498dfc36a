#!/usr/bin/env bash
# The README's demo: build kiln, compile a small LLaMA checkpoint into a plan, inspect it and
# generate text from it on the CPU. MODEL overrides the checkpoint folder; by default it is
# models/kjv-tiny, a ~4M-parameter LLaMA trained for minutes on the King James Bible by
# tools/train_demo_model.py (see its README): it writes KJV-flavoured English, nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target kiln
model="${MODEL:-models/kjv-tiny}"
prompt="${PROMPT:-In the beginning}"
mkdir -p out
set -x
./build/kiln compile "$model" -o out/demo.kplan --max-seq 256 --batch 1
./build/kiln inspect out/demo.kplan
./build/kiln generate out/demo.kplan -p "$prompt" --max-new-tokens 48 --temperature 0
