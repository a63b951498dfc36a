#!/usr/bin/env python3
"""Train models/kjv-tiny: a ~4.7 M parameter LLaMA that babbles King James Bible prose.

It exists so that tools/demo.sh can show readable text on a fresh machine instead of the random
token ids of the test fixtures. It is not a useful language model.

Usage (torch, transformers and tokenizers are needed; tools/make_fixtures.py builds
.venv-fixtures, which has them):
    apt-get install bible-kjv        # brings bible-kjv-text (the data) and the `bible` reader
    .venv-fixtures/bin/python tools/train_demo_model.py [--steps N] [--threads T] [--out DIR]

What it does, deterministically for a given --seed and --threads:
  1. corpus: the 31,102 verses of the KJV from Debian's bible-kjv-text, dumped with
     `bible -f Gen1:1-Rev22:21`, verse references stripped, one verse per line;
  2. tokenizer: byte-level BPE (vocab 2048) with the LLaMA-3 pre-tokenizer regex, trained with
     HF tokenizers; <|begin_of_text|> (bos) and <|end_of_text|> (eos) are the last two ids, as in
     LLaMA-3, and a TemplateProcessing post-processor prepends bos;
  3. model: LlamaForCausalLM from scratch (6 layers, hidden 256, GQA 8/2 heads, tied embeddings),
     trained on 128-token windows that start with bos at a verse start, AdamW + warmup + cosine;
  4. output (--out, default models/kjv-tiny): bf16 safetensors in two shards with their index,
     config.json,
     tokenizer.json, tokenizer_config.json and a README.md with the numbers of this run.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
VOCAB = 2048
N_VERSES = 31102
N_HELD_OUT = 500  # the last 500 verses (end of Revelation) are held out for a validation loss

MODEL_CFG = dict(
    vocab_size=VOCAB,
    hidden_size=256,
    intermediate_size=688,  # ~2.7 x hidden
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=32,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    hidden_act="silu",
    tie_word_embeddings=True,
    initializer_range=0.02,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
)


def die(msg):
    sys.exit(f"train_demo_model.py: {msg}")


def load_verses():
    data = "/usr/lib/bible.data"
    reader = shutil.which("bible")
    if not os.path.exists(data) or reader is None:
        die(
            "the KJV text is missing: this script reads Debian's bible-kjv-text "
            f"({data}) through the `bible` reader of the bible-kjv package.\n"
            "  Install both with:  sudo apt-get install bible-kjv bible-kjv-text"
        )
    # -f turns pretty-printing off: one verse per line, each preceded by its reference.
    out = subprocess.run(
        [reader, "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True
    ).stdout
    ref = re.compile(r"^[1-3]?[A-Za-z]+\d+:\d+ ")
    verses = []
    for line in out.splitlines():
        if not ref.match(line):
            die(f"unexpected line from `bible -f`: {line[:80]!r}")
        verses.append(ref.sub("", line).strip())
    if len(verses) != N_VERSES:
        die(f"expected {N_VERSES} verses from `bible -f`, got {len(verses)}")
    return verses


def train_tokenizer(verses):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 2,  # the two special tokens go last, as in LLaMA-3
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((v + "\n" for v in verses), trainer=trainer)
    if tok.get_vocab_size() != VOCAB - 2:
        die(f"BPE learned {tok.get_vocab_size()} tokens, expected {VOCAB - 2}")
    tok.add_special_tokens([BOS, EOS])
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    assert (bos_id, eos_id) == (VOCAB - 2, VOCAB - 1), (bos_id, eos_id)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS}:1 $B:1",
        special_tokens=[(BOS, bos_id)],
    )
    return tok, bos_id, eos_id


def write_reference(out):
    """Greedy continuations from transformers (float32 compute on the saved bf16 weights), which
    kiln's tests must reproduce. Each entry records the smallest top-1/top-2 logit gap, so a test
    knows how many tokens are robust."""
    import json

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    refs = []
    for prompt in ["In the beginning", "And the LORD said unto", "Blessed are"]:
        ids = tok.encode(prompt).ids  # the post-processor adds bos
        seq, gaps = list(ids), []
        with torch.no_grad():
            for _ in range(40):
                logits = model(torch.tensor([seq])).logits[0, -1]
                top = torch.topk(logits, 2)
                gaps.append(float(top.values[0] - top.values[1]))
                seq.append(int(top.indices[0]))
        # robust: tokens generated before the first near-tie (gap < 1e-3, as the other fixtures require)
        robust = next((i for i, g in enumerate(gaps) if g < 1e-3), len(gaps))
        refs.append({"prompt": prompt, "prompt_ids": ids, "greedy_ids": seq[len(ids):], "robust_tokens": robust,
                     "text": tok.decode(seq[len(ids):])})
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"generated_by": "tools/train_demo_model.py --reference-only (transformers, float32 compute)",
                   "cases": refs}, f, indent=1, ensure_ascii=False)
    print("wrote", os.path.join(out, "reference.json"), [r["robust_tokens"] for r in refs])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "models", "kjv-tiny"))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--reference-only", action="store_true",
                    help="only (re)write <out>/reference.json from the saved model, without training")
    args = ap.parse_args()
    if args.reference_only:
        write_reference(args.out)
        return

    t_start = time.time()
    verses = load_verses()  # before the heavy imports, so a missing package fails fast

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tok, bos_id, eos_id = train_tokenizer(verses)
    # Each verse is encoded with its trailing newline; pre-tokens never cross a newline, so this is
    # exactly how the joined text would be encoded, and verse starts stay known.
    encs = tok.encode_batch([v + "\n" for v in verses], add_special_tokens=False)
    ids, starts = [], []
    for e in encs:
        starts.append(len(ids))
        ids.extend(e.ids)
    n_train_tok = starts[N_VERSES - N_HELD_OUT]
    data = torch.tensor(ids, dtype=torch.long)
    train_starts = torch.tensor([s for s in starts[: N_VERSES - N_HELD_OUT] if s + args.ctx <= n_train_tok])
    val_starts = [s for s in starts[N_VERSES - N_HELD_OUT :] if s + args.ctx <= len(ids)]
    print(
        f"corpus: {len(verses)} verses, {sum(map(len, verses))} chars, {len(ids)} tokens "
        f"({n_train_tok} train / {len(ids) - n_train_tok} held out)",
        flush=True,
    )

    # A window: bos, then ctx-1 tokens of running text from a verse start (+1 for the targets).
    def batch_at(start_list):
        x = torch.stack([data[s : s + args.ctx] for s in start_list])
        x = torch.cat([torch.full((x.shape[0], 1), bos_id), x], dim=1)
        return x[:, :-1], x[:, 1:]

    gen = torch.Generator().manual_seed(args.seed)
    cfg = LlamaConfig(bos_token_id=bos_id, eos_token_id=eos_id, **MODEL_CFG)
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters ({n_params / 1e6:.2f} M, tied embeddings counted once)", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def val_loss():
        model.eval()
        losses = []
        with torch.no_grad():
            for i in range(0, min(len(val_starts), 256), args.batch):
                x, y = batch_at(val_starts[i : i + args.batch])
                logits = model(input_ids=x).logits
                losses.append(torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)).item())
        model.train()
        return sum(losses) / len(losses)

    model.train()
    t_train = time.time()
    recent = []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.randint(len(train_starts), (args.batch,), generator=gen)
        x, y = batch_at(train_starts[idx].tolist())
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            el = time.time() - t_train
            print(
                f"step {step + 1:5d}/{args.steps}  loss {sum(recent) / len(recent):.4f}  "
                f"lr {lr_at(step):.2e}  {el:6.0f}s ({el / (step + 1):.2f} s/step)",
                flush=True,
            )
            final_train = sum(recent) / len(recent)
            recent = []
    train_minutes = (time.time() - t_train) / 60
    vl = val_loss()
    print(f"held-out loss (last {N_HELD_OUT} verses): {vl:.4f}", flush=True)

    # ---- save: bf16 safetensors + config.json + tokenizer files + README.md ----
    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    model = model.to(torch.bfloat16)
    model.config.use_cache = True
    # Two shards (with model.safetensors.index.json) keep every file under 8 MiB.
    model.save_pretrained(out, safe_serialization=True, max_shard_size="6MB")
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, model_max_length=512)
    fast.save_pretrained(out)
    for extra in ("special_tokens_map.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    tc_path = os.path.join(out, "tokenizer_config.json")
    with open(tc_path) as f:
        tc = json.load(f)
    tc.pop("chat_template", None)
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"  # loadable by transformers 4 and 5 alike
    with open(tc_path, "w") as f:
        json.dump(tc, f, indent=2)
        f.write("\n")

    total_minutes = (time.time() - t_start) / 60
    readme = f"""# kjv-tiny

A tiny LLaMA-architecture model (`LlamaForCausalLM`) trained from scratch on the King James
Bible, so that kiln's demo prints readable text. It only babbles KJV-like prose: it has no
knowledge, no instruction following, and it often produces grammatical nonsense.

- **Data**: the 31,102 verses of the KJV (1611, public domain) from Debian's `bible-kjv-text`
  package, verse references stripped, one verse per line. The last {N_HELD_OUT} verses are held out.
- **Tokenizer**: byte-level BPE, vocab {VOCAB}, LLaMA-3 pre-tokenizer regex, trained on the same
  text. `{BOS}` = {bos_id} is bos, prepended by the post-processor. `{EOS}` = {eos_id}
  is eos; it never occurs in training, so the model does not stop by itself.
- **Model**: {n_params / 1e6:.2f} M parameters: hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers,
  {cfg.num_attention_heads} query / {cfg.num_key_value_heads} KV heads (head dim {cfg.head_dim}), MLP {cfg.intermediate_size},
  tied embeddings, default RoPE (theta 10000), max positions 512. Weights stored in bfloat16.
- **Training**: {args.steps} steps of {args.batch} x {args.ctx}-token windows (bos, then running text
  from a verse start), AdamW (betas 0.9/0.95, weight decay 0.1), lr {args.lr:g} with {args.warmup}
  warmup steps and cosine decay to 10%, seed {args.seed}, float32. Final train loss {final_train:.3f},
  held-out loss {vl:.3f} (nats/token, float32). Trained by `tools/train_demo_model.py` with
  {args.threads} threads on a 2-core CPU in {train_minutes:.1f} minutes ({total_minutes:.1f} minutes in
  all); rerun that script to reproduce it.

Prompt it with bos followed by the start of a verse, e.g. "In the beginning" or
"And the LORD said unto".
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(readme)
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"saved {out}: {sorted(os.listdir(out))}, {size / 1e6:.2f} MB, total {total_minutes:.1f} min", flush=True)

    write_reference(out)

if __name__ == "__main__":
    main()
