#!/usr/bin/env python3
"""Encode speed of kiln's tokenizer against HF tokenizers on the same 1 MB text, same machine.

Usage (inside the fixtures venv, which has `tokenizers`; build/kiln-bench-tokenize built):
  .venv-fixtures/bin/python bench/tokenizer_vs_hf.py [--runs 5] MODEL_DIR [MODEL_DIR ...]

The text: every case text of tests/fixtures/real_tokenizers/*/cases.json (all scripts, emoji,
digit and whitespace runs) and the repository's Markdown, repeated to 1 MB. Both encode it as one
string on one thread (RAYON_NUM_THREADS=1), median of --runs after a warm-up; the ids must be
identical, or the script fails. Prints one Markdown table row per folder.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus(size=1 << 20):
    parts = []
    for f in sorted(glob.glob(os.path.join(REPO, "tests/fixtures/real_tokenizers/*/cases.json"))):
        parts += [c["text"] for c in json.load(open(f, encoding="utf-8")) if len(c["text"]) < 20000]
    for f in sorted(glob.glob(os.path.join(REPO, "*.md")) + glob.glob(os.path.join(REPO, "*/*.md"))):
        parts.append(open(f, encoding="utf-8").read())
    text, i = "", 0
    while len(text.encode()) < size:
        text += parts[i % len(parts)] + "\n"
        i += 1
    return text.encode()[:size].decode("utf-8", "ignore")


def main():
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    import tokenizers
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dirs", nargs="+")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "kiln-bench-tokenize"))
    a = ap.parse_args()
    text = corpus()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "text.txt")
        open(path, "w", encoding="utf-8").write(text)
        print("| tokenizer | bytes | ids | kiln median ms | HF tokenizers %s median ms | kiln / HF |" % tokenizers.__version__)
        print("|---|---|---|---|---|---|")
        for d in a.model_dirs:
            hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            want = hf.encode(text, add_special_tokens=False).ids  # warm-up, and the reference
            ms = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                hf.encode(text, add_special_tokens=False)
                ms.append((time.perf_counter() - t0) * 1e3)
            ids_path = os.path.join(tmp, "ids.txt")
            out = subprocess.run([a.bench, d, path, "--runs", str(a.runs), "--json", "--ids-out", ids_path],
                                 check=True, capture_output=True, text=True).stdout
            k = json.loads(out)
            got = [int(x) for x in open(ids_path).read().split()]
            if got != want:
                first = next(i for i, (x, y) in enumerate(zip(got + [None] * len(want), want)) if x != y)
                sys.exit("%s: kiln's ids differ from HF's (first at id %d of %d)" % (d, first, len(want)))
            hf_ms = statistics.median(ms)
            print("| %s | %d | %d | %.1f | %.1f | %.2fx |" % (os.path.basename(os.path.normpath(d)), len(text.encode()),
                                                           len(want), k["median_ms"], hf_ms, k["median_ms"] / hf_ms))


if __name__ == "__main__":
    main()
