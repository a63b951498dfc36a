#!/usr/bin/env python3
"""HF transformers eager decode on the same checkpoint kiln benchmarks (bench/README.md).

Loads the folder with transformers in bf16 on CUDA, feeds a --context token prompt, then times
--steps single-token greedy steps with the KV cache (median ms/token, CUDA-synchronized).
Prints a RESULT line that tools/device_check.sh reads.
"""
import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--context", type=int, default=128)
    a = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.bfloat16, attn_implementation="eager").cuda()
    model.eval()
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919) % vocab for i in range(a.context)]], device="cuda")
    times = []
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        for _ in range(a.steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times[4:])
    print(f"HF eager bf16 decode: median {med:.3f} ms/token over {len(times) - 4} steps, context {a.context}")
    print(f"RESULT decode_ms={med:.3f}")


if __name__ == "__main__":
    main()
