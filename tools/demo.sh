#!/usr/bin/env bash
# The README's demo: build kiln, compile a small LLaMA checkpoint into a plan, inspect it and
# generate from it on the CPU. MODEL overrides the checkpoint folder; by default it is a tiny
# random-weight test fixture made with transformers (tests/fixtures/llama/gqa_f32), so the
# ids it prints are not meaningful text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target kiln
model="${MODEL:-tests/fixtures/llama/gqa_f32}"
mkdir -p out
set -x
./build/kiln compile "$model" -o out/demo.kplan --max-seq 256 --batch 1
./build/kiln inspect out/demo.kplan
./build/kiln generate out/demo.kplan --ids 1,15,27,200 --max-new-tokens 24 --temperature 0 --output-ids
