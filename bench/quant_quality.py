"""Perplexity of kiln's int8, int4 and fp8 plans against the same model's bf16 plan (issue 19's quality check).

    .venv-fixtures/bin/python bench/quant_quality.py MODEL_DIR TEXT... [--kiln build/kiln] [--tokens 1024]
        [--only NAME,...]

MODEL_DIR: a real trained LLaMA-family checkpoint (tools/e2e_smollm2.py writes SmolLM2-135M-Instruct to
/tmp/kiln-smollm2/model). Compiles it as bf16, int8, int8 with --quantize-head, int4 with its
default groups and in groups of 64 and 32 (symmetric; asymmetric with the default groups and 32), and fp8 with and without the head (plan dtype bf16, CPU; --only: bf16
and the named ones), runs `kiln eval` on the first --tokens tokens of each
text, and prints each plan's perplexity (exp of the mean next-token negative log-likelihood) and
its change from bf16. Measured only; the
numbers go to README.md.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("texts", nargs="+")
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    plans = {"bf16": [], "int8": ["--quantize", "int8"], "int8 + head": ["--quantize", "int8", "--quantize-head"],
             "int4": ["--quantize", "int4"], "int4 g64": ["--quantize", "int4", "--group-size", "64"],
             "int4 g32": ["--quantize", "int4", "--group-size", "32"],
             "int4 asymmetric": ["--quantize", "int4", "--asymmetric"],
             "int4 g32 asymmetric": ["--quantize", "int4", "--group-size", "32", "--asymmetric"],
             "fp8": ["--quantize", "fp8"],
             "fp8 + head": ["--quantize", "fp8", "--quantize-head"]}
    if a.only:
        keep = set(a.only.split(","))
        unknown = keep - set(plans)
        if unknown:
            sys.exit("--only: no plan named %s (%s)" % (", ".join(sorted(unknown)), ", ".join(plans)))
        plans = {n: e for n, e in plans.items() if n == "bf16" or n in keep}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, extra in plans.items():
            paths[name] = os.path.join(tmp, name.replace(" ", "_").replace("+", "") + ".kplan")
            run([a.kiln, "compile", a.model, "-o", paths[name], "--dtype", "bf16", "--target", "cpu",
                 "--max-seq", str(a.tokens)] + extra)
        for text_path in a.texts:
            with open(text_path, encoding="utf-8") as f:
                text = f.read()
            lst = os.path.join(tmp, "text.json")
            with open(lst, "w") as f:
                json.dump([text], f)
            ids = json.loads(run([a.kiln, "tokenize", paths["bf16"], "--file", lst, "--json"]))[0]
            ids = np.array(ids[: a.tokens], dtype=np.int64)[None]
            inp = os.path.join(tmp, "in.safetensors")
            save_file({"input_ids": ids}, inp)
            base = None
            for name in plans:
                out = os.path.join(tmp, "out.safetensors")
                run([a.kiln, "eval", paths[name], "--input", inp, "--output", out])
                logits = load_file(out)["logits"][0].astype(np.float64)
                logz = logits.max(-1) + np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))
                nll = float(np.mean(logz[:-1] - logits[np.arange(ids.shape[1] - 1), ids[0, 1:]]))
                ppl = math.exp(nll)
                base = base or ppl
                print("%-40s %-12s %5d tokens  perplexity %8.4f  (%+.2f%% vs bf16)"
                      % (os.path.basename(text_path), name, ids.shape[1], ppl, 100 * (ppl / base - 1)), flush=True)


if __name__ == "__main__":
    main()
