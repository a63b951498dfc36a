#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang under ASan+UBSan (in FUZZ_BUILD_DIR,
# default build-asan, the tree tools/test-sanitizers.sh also builds the tests in), seeds each
# corpus from the test fixtures plus any saved regression inputs (tests/fuzz/regressions/<target>/),
# and runs every target for FUZZ_SECONDS (default 60), FUZZ_JOBS (default 2) at a
# time. A crash fails the script and leaves its input in <build>/crashes/<target>/; copy it to
# tests/fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD_DIR:-build-asan}"
jobs="${FUZZ_JOBS:-2}"
bash tools/configure-sanitizer-tree.sh "$build"
cmake --build "$build" -j "$(nproc)" --target fuzz_safetensors fuzz_configs fuzz_tokenizer fuzz_chat fuzz_plan

corpus="$build/corpus"
rm -rf "$corpus" && mkdir -p "$corpus"/{fuzz_safetensors,fuzz_configs,fuzz_tokenizer,fuzz_chat,fuzz_plan}
fx=tests/fixtures
cp "$fx"/lora/*/adapter/adapter_model.safetensors "$corpus/fuzz_safetensors/" 2>/dev/null || true
for f in "$fx"/lora/*/adapter/adapter_model.safetensors; do cp "$f" "$corpus/fuzz_safetensors/$(basename "$(dirname "$(dirname "$f")")").st"; done
# pre-quantized checkpoints (GPTQ, compressed-tensors, FP8 blocks): the unpacking readers
for f in "$fx"/quantized/*/model.safetensors; do cp "$f" "$corpus/fuzz_safetensors/$(basename "$(dirname "$f")").st"; done
i=0; for f in "$fx"/llama/*/config.json "$fx"/deepseek/*/config.json "$fx"/quantized/*/config.json "$fx"/lora/*/adapter*/adapter_config.json "$fx"/lora/*/*/adapter_config.json; do
  [ -f "$f" ] && cp "$f" "$corpus/fuzz_configs/c$((i++))"; done
for m in 0 1 2 4; do printf '\\x0%dHello, kiln! 123 \\xe4\\xb8\\xad\\xe6\\x96\\x87 <|eot_id|>\\n\\tdone' "$m" > "$corpus/fuzz_tokenizer/t$m"; done
# Real chat templates (mode 0), one with a tool-call conversation (mode 1), and JSON (mode 2).
i=0; for f in "$fx"/chat_templates/templates/*.jinja; do
  { printf '\x00'; cat "$f"; } > "$corpus/fuzz_chat/t$((i++))"; done
{ printf '\x01'; cat "$fx/chat_templates/templates/Qwen-Qwen2.5-7B-Instruct.jinja"; printf '\x00'
  printf '{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]}'
} > "$corpus/fuzz_chat/tools"
{ printf '\x02'; head -c 20000 "$fx/chat_templates/e2e.json"; } > "$corpus/fuzz_chat/json"
# A small real plan, as raw bytes (mode 0) and as its FlatBuffer (mode 1).
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
# A 2-layer LLaMA with vocab 8 and hidden 4 in f32, written as safetensors with stdlib only.
cfg = {"architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 4, "intermediate_size": 4,
       "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "tie_word_embeddings": True}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
shapes = {"model.embed_tokens.weight": [8, 4], "model.norm.weight": [4]}
p = "model.layers.0."
for n, s in {"input_layernorm.weight": [4], "post_attention_layernorm.weight": [4], "self_attn.q_proj.weight": [4, 4],
             "self_attn.k_proj.weight": [2, 4], "self_attn.v_proj.weight": [2, 4], "self_attn.o_proj.weight": [4, 4],
             "mlp.gate_proj.weight": [4, 4], "mlp.up_proj.weight": [4, 4], "mlp.down_proj.weight": [4, 4]}.items():
    shapes[p + n] = s
hdr, off, blobs = {}, 0, []
for n, s in shapes.items():
    k = 1
    for x in s: k *= x
    blobs.append(struct.pack("<%df" % k, *[((i * 7) % 5 - 2) / 10 for i in range(k)]))
    hdr[n] = {"dtype": "F32", "shape": s, "data_offsets": [off, off + 4 * k]}
    off += 4 * k
h = json.dumps(hdr).encode()
open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
./build/kiln compile "$tmp" -o "$tmp/tiny.kplan" --max-seq 8 --chunk 4 --target cpu >/dev/null
# The same in bf16 for every target, so the fused ops (fused_matmul, rope_kv_write) are in a seed.
./build/kiln compile "$tmp" -o "$tmp/tiny_fused.kplan" --max-seq 8 --chunk 4 --dtype bf16 --target all >/dev/null
# A tiny text-to-image plan (8x8 pixels, 2 steps) so the diffusion kernels are reached too.
./build/kiln-random-checkpoint --shape sd-tiny "$tmp/sd" >/dev/null 2>&1
./build/kiln compile "$tmp/sd" -o "$tmp/sd.kplan" --height 8 --width 8 --steps 2 --target cpu >/dev/null
# The field mode (first byte 2) edits plans the harness compiles itself: one seed per base plan,
# unedited (the second byte picks it).
for k in 0 1 2 3 4; do printf "\\x02\\x0$k" > "$corpus/fuzz_plan/fields$k"; done
python3 - "$corpus/fuzz_plan" "$tmp/tiny.kplan" "$tmp/sd.kplan" "$tmp/tiny_fused.kplan" <<'PY'
import struct, sys
for i, path in enumerate(sys.argv[2:]):
    b = open(path, "rb").read()
    fb_off, fb_size = struct.unpack_from("<QQ", b, 24)
    if i == 0:  # the diffusion plan's raw file (weights included) is over -max_len
        open(sys.argv[1] + "/raw%d" % i, "wb").write(b"\x00" + b)
    open(sys.argv[1] + "/fb%d" % i, "wb").write(b"\x01" + b[fb_off:fb_off + fb_size])
PY

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# fuzz_one TARGET: runs it for secs seconds; its log is <build>/<target>.log.
fuzz_one() {
  local t=$1
  local seeds=("$corpus/$t")
  mkdir -p "$build/crashes/$t"
  [ -d "tests/fuzz/regressions/$t" ] && seeds+=("tests/fuzz/regressions/$t")
  "$build/tests/fuzz/$t" -max_total_time="$secs" -max_len=262144 -rss_limit_mb=4096 -timeout=20 \
    -artifact_prefix="$build/crashes/$t/" -print_final_stats=1 "${seeds[@]}" > "$build/$t.log" 2>&1
}
targets=(fuzz_safetensors fuzz_configs fuzz_tokenizer fuzz_chat fuzz_plan)
status=0
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  pids=() batch=("${targets[@]:i:jobs}")
  echo "== ${batch[*]} for ${secs}s"
  for t in "${batch[@]}"; do fuzz_one "$t" & pids+=($!); done
  for k in "${!batch[@]}"; do
    t="${batch[$k]}"
    if ! wait "${pids[$k]}"; then
      echo "FAILED: $t (see $build/$t.log and $build/crashes/$t/)"
      tail -30 "$build/$t.log"
      status=1
    fi
    echo "$t: $(grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$build/$t.log" | tail -1)"
    # The plan target's executions by mode: its field mode must have run, not only its seeds.
    if [ "$t" = fuzz_plan ]; then
      counts="$(grep -E "^fuzz_plan: executions" "$build/$t.log" | tail -1)"
      echo "$counts"
      fields="$(sed -nE 's/.*fields ([0-9]+) .*/\1/p' <<<"$counts")"
      if [ "${fields:-0}" -le 4 ]; then echo "FAILED: fuzz_plan's field mode ran only its seeds"; status=1; fi
    fi
  done
done
exit $status
