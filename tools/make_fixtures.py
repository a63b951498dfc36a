#!/usr/bin/env python3
"""Generate tiny random Llama checkpoints + reference outputs for kiln tests.

Usage:  python3 tools/make_fixtures.py [--skip-install]

Step 1 (bootstrap, stdlib only): create <repo>/.venv-fixtures, pip-install
pinned torch (CPU use only; installed --no-deps so the multi-GB CUDA wheels
are skipped when `import torch` works without them), transformers 5.x,
safetensors and numpy, then re-exec this script inside the venv.

Step 2 (inside the venv): write tests/fixtures/llama/<variant>/ with
config.json, model.safetensors (or shards + index) and reference.safetensors
(input_ids, logits, prompt_ids, greedy_ids), plus VERSIONS.txt.

Deterministic and idempotent: every run wipes and rewrites the variant dirs.
"""

import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO, ".venv-fixtures")
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "llama")
TORCH_WHEEL_DIR = "/tmp/torchdl"  # optional local cache of the torch wheel

TORCH_PIN = "torch==2.15.0"
# torch's pure-python requirements (its CUDA requirements are left out on purpose)
TORCH_PY_DEPS = [
    "filelock",
    "typing-extensions>=4.13.0",
    "setuptools>=77.0.3",
    "sympy>=1.13.3",
    "networkx>=2.5.1",
    "jinja2",
    "fsspec>=0.8.5",
]
OTHER_PINS = ["transformers==5.24.0", "safetensors==0.8.0", "numpy==2.4.6"]

SMOKE = "import torch; print('torch', torch.__version__, (torch.randn(2) @ torch.randn(2)).item())"


def _in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def _venv_python():
    return os.path.join(VENV, "bin", "python")


def _run(cmd, check=True):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=check)


def bootstrap():
    py = _venv_python()
    if not os.path.exists(py):
        _run([sys.executable, "-m", "venv", VENV])
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    find_links = ["--find-links", TORCH_WHEEL_DIR] if os.path.isdir(TORCH_WHEEL_DIR) else []
    ok = subprocess.run([py, "-c", "import torch, transformers, safetensors, numpy; "
                         "assert torch.__version__.split('+')[0] == %r; "
                         "assert transformers.__version__ == %r"
                         % (TORCH_PIN.split("==")[1], OTHER_PINS[0].split("==")[1])],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not ok:
        _run(pip + find_links + ["--no-deps", TORCH_PIN])
        _run(pip + TORCH_PY_DEPS + OTHER_PINS)
        if subprocess.run([py, "-c", SMOKE]).returncode != 0:
            print("import torch failed without CUDA deps; installing full torch deps", flush=True)
            _run(pip + find_links + [TORCH_PIN])
    _run([py, "-c", SMOKE])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:] + ["--in-venv"])


if __name__ == "__main__" and not _in_venv():
    if "--in-venv" in sys.argv:
        sys.exit("re-exec did not land in %s (sys.prefix=%s)" % (VENV, sys.prefix))
    bootstrap()

# ---------------------------------------------------------------------------
# Everything below runs inside the venv.
# ---------------------------------------------------------------------------

import json  # noqa: E402
import math  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
import safetensors  # noqa: E402
import numpy  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

assert transformers.__version__.startswith("5."), transformers.__version__

SEQ_BATCH, SEQ_LEN = 2, 20
PROMPT_LEN, NEW_TOKENS = 5, 12
MIN_MARGIN = 1e-3
MAX_SEED_TRIES = 20
MIN_DISTINCT_NEW = 4  # reject degenerate greedy continuations (e.g. one token repeated)

BASE = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    initializer_range=0.1,
)

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
# legacy_config_f32: built with these rope params, then config.json is rewritten
# in transformers-4 style (top-level rope_theta + rope_scaling, torch_dtype).
LEGACY_ROPE = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 4.0,
               "low_freq_factor": 1.0, "high_freq_factor": 2.0,
               "original_max_position_embeddings": 128}

# name: (seed, config overrides, storage dtype, extra save_pretrained kwargs)
VARIANTS = [
    ("gqa_f32", 101, {}, torch.float32, {}),
    ("mha_f32", 202, {"num_key_value_heads": 4}, torch.float32, {}),
    ("tied_f32", 303, {"tie_word_embeddings": True}, torch.float32, {}),
    ("head_dim_f32", 404, {"head_dim": 32}, torch.float32, {}),
    ("llama3_rope_f32", 505, {"rope_parameters": LLAMA3_ROPE}, torch.float32, {}),
    ("linear_rope_f32", 606,
     {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}},
     torch.float32, {}),
    ("bias_f32", 707, {"attention_bias": True, "mlp_bias": True}, torch.float32, {}),
    ("bf16", 808, {}, torch.bfloat16, {}),
    ("f16", 909, {}, torch.float16, {}),
    ("sharded_f32", 1010, {}, torch.float32, {"max_shard_size": "200KB"}),
    ("legacy_config_f32", 1111, {"rope_parameters": LEGACY_ROPE}, torch.float32, {}),
]


def llama3_bands(rp, head_dim):
    """Count rotary frequencies per llama3 band (high: kept, mid: smoothed, low: /factor)."""
    inv = [rp["rope_theta"] ** (-(2 * i) / head_dim) for i in range(head_dim // 2)]
    orig = rp["original_max_position_embeddings"]
    low_wl = orig / rp["low_freq_factor"]
    high_wl = orig / rp["high_freq_factor"]
    bands = {"high": [], "mid": [], "low": []}
    for i, f in enumerate(inv):
        wl = 2 * math.pi / f
        key = "high" if wl < high_wl else ("low" if wl > low_wl else "mid")
        bands[key].append((i, round(wl, 2)))
    return bands


def check_llama3_rope(model, rp):
    head_dim = model.config.head_dim
    bands = llama3_bands(rp, head_dim)
    print("  llama3 rope bands (index, wavelength) with head_dim %d, thresholds %.1f/%.1f: %s"
          % (head_dim, rp["original_max_position_embeddings"] / rp["high_freq_factor"],
             rp["original_max_position_embeddings"] / rp["low_freq_factor"], bands))
    assert all(bands.values()), "some llama3 band is empty"
    inv = model.model.rotary_emb.inv_freq.double()
    base = torch.tensor([rp["rope_theta"] ** (-(2 * i) / head_dim) for i in range(head_dim // 2)],
                        dtype=torch.float64)
    for i, _ in bands["high"]:
        assert torch.isclose(inv[i], base[i], rtol=1e-5), (i, inv[i], base[i])
    for i, _ in bands["low"]:
        assert torch.isclose(inv[i], base[i] / rp["factor"], rtol=1e-5), (i, inv[i], base[i])
    for i, _ in bands["mid"]:
        assert base[i] / rp["factor"] * 1.0001 < inv[i] < base[i] * 0.9999, (i, inv[i], base[i])


def load(path, dtype):
    m = LlamaForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager")
    m = m.float().eval()
    return m


def greedy_manual(model, prompt):
    """Plain argmax decoding with full recompute; returns ids and per-step top1-top2 margins."""
    ids = prompt.clone()[None]
    margins = []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            last = model(ids).logits[0, -1]
            top2 = torch.topk(last, 2).values
            margins.append((top2[0] - top2[1]).item())
            ids = torch.cat([ids, last.argmax().view(1, 1)], dim=1)
    return ids[0], margins


def build_variant(name, seed, overrides, dtype, save_kwargs):
    out = os.path.join(OUT_DIR, name)
    for attempt in range(MAX_SEED_TRIES):
        s = seed + attempt
        if os.path.exists(out):
            shutil.rmtree(out)
        cfg_kwargs = dict(BASE)
        cfg_kwargs.update(overrides)
        torch.manual_seed(s)
        config = LlamaConfig(**cfg_kwargs)
        model = LlamaForCausalLM(config).eval()
        model.to(dtype)
        model.config.dtype = dtype
        model.save_pretrained(out, safe_serialization=True, **save_kwargs)
        gen_cfg = os.path.join(out, "generation_config.json")
        if os.path.exists(gen_cfg):
            os.remove(gen_cfg)

        ref_model = load(out, dtype)
        # stored weights must be exactly the (rounded) in-memory weights
        in_mem = {k: v.float() for k, v in model.state_dict().items()}
        for k, v in ref_model.state_dict().items():
            assert torch.equal(v, in_mem[k]), "reload mismatch for %s" % k

        g = torch.Generator().manual_seed(s)
        input_ids = torch.randint(0, config.vocab_size, (SEQ_BATCH, SEQ_LEN), generator=g)
        prompt_ids = torch.randint(0, config.vocab_size, (PROMPT_LEN,), generator=g)
        with torch.no_grad():
            logits = ref_model(input_ids).logits.float().contiguous()
            greedy = ref_model.generate(
                prompt_ids[None], max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                do_sample=False, eos_token_id=None, pad_token_id=0)[0]
        manual, margins = greedy_manual(ref_model, prompt_ids)
        assert greedy.shape == (PROMPT_LEN + NEW_TOKENS,), greedy.shape
        assert torch.equal(greedy, manual), (greedy, manual)
        new = greedy[PROMPT_LEN:].tolist()
        problems = []
        if min(margins) < MIN_MARGIN:
            problems.append("min greedy margin %.2e < %g" % (min(margins), MIN_MARGIN))
        if len(set(new)) < MIN_DISTINCT_NEW:
            problems.append("only %d distinct greedy ids" % len(set(new)))
        for special in (config.eos_token_id, config.bos_token_id):
            if special is not None and special in new:
                problems.append("greedy produced special id %d" % special)
        if problems:
            print("  %s seed %d rejected: %s; retrying with seed %d"
                  % (name, s, "; ".join(problems), s + 1))
            continue
        print("  %s: seed %d, logits std %.3f, min greedy margin %.3e, greedy new ids %s"
              % (name, s, logits.std().item(), min(margins), new))
        return out, model, ref_model, config, s, dict(
            input_ids=input_ids.contiguous(), logits=logits,
            prompt_ids=prompt_ids.contiguous(), greedy_ids=greedy.contiguous())
    raise SystemExit("%s: no seed with clean greedy margins in %d tries" % (name, MAX_SEED_TRIES))


def safetensors_keys(out):
    keys = {}
    for f in sorted(os.listdir(out)):
        if f.startswith("model") and f.endswith(".safetensors"):
            with safe_open(os.path.join(out, f), "pt") as sf:
                for k in sf.keys():
                    keys[k] = (f, sf.get_slice(k).get_dtype(), sf.get_slice(k).get_shape())
    return keys


def rewrite_legacy(out, rp, ref_logits, input_ids):
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    new_rp = cfg.pop("rope_parameters")
    assert new_rp == rp, (new_rp, rp)
    legacy = {}
    for k, v in cfg.items():
        if k == "dtype":
            legacy["torch_dtype"] = v
        else:
            legacy[k] = v
    scaling = {k: v for k, v in rp.items() if k != "rope_theta"}
    legacy["rope_theta"] = rp["rope_theta"]
    legacy["rope_scaling"] = scaling
    legacy["transformers_version"] = "4.57.1"  # what a transformers-4 export would say
    legacy = dict(sorted(legacy.items()))
    with open(path, "w") as f:
        json.dump(legacy, f, indent=2)
        f.write("\n")
    # the rewritten config must describe the same model
    c2 = LlamaConfig.from_pretrained(out)
    assert c2.rope_parameters == rp, (c2.rope_parameters, rp)
    m2 = load(out, torch.float32)
    with torch.no_grad():
        l2 = m2(input_ids).logits
    assert torch.equal(l2, ref_logits), "legacy config reload changed logits"
    print("  legacy_config_f32: rewritten config reloads to rope_parameters %s; logits identical"
          % c2.rope_parameters)


def main():
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, seed, overrides, dtype, save_kwargs in VARIANTS:
        print("== %s" % name, flush=True)
        out, model, ref_model, config, s, ref = build_variant(name, seed, overrides, dtype, save_kwargs)
        keys = safetensors_keys(out)
        files = sorted(os.listdir(out))
        if name == "tied_f32":
            assert "lm_head.weight" not in keys, "tied checkpoint stores lm_head.weight"
            assert torch.equal(ref_model.lm_head.weight, ref_model.model.embed_tokens.weight)
        else:
            assert "lm_head.weight" in keys
        if name == "sharded_f32":
            shards = [f for f in files if f.endswith(".safetensors")]
            assert len(shards) >= 2 and "model.safetensors.index.json" in files, files
        else:
            assert "model.safetensors" in files, files
        want = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[dtype]
        assert all(v[1] == want for v in keys.values()), keys
        rp = config.rope_parameters
        if rp.get("rope_type") == "llama3":
            check_llama3_rope(ref_model, rp)
        if name == "legacy_config_f32":
            rewrite_legacy(out, rp, ref["logits"], ref["input_ids"])
        save_file(ref, os.path.join(out, "reference.safetensors"))
        with open(os.path.join(out, "config.json")) as f:
            print("  config.json:", json.dumps(json.load(f), sort_keys=True))
        print("  files:", ", ".join("%s (%d B)" % (f, os.path.getsize(os.path.join(out, f)))
                                    for f in sorted(os.listdir(out))))
        print("  tensors:", ", ".join("%s %s %s" % (k, v[1], v[2]) for k, v in keys.items()))

    with open(os.path.join(OUT_DIR, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py\n")
        f.write("python %s\n" % sys.version.split()[0])
        f.write("torch %s\n" % torch.__version__)
        f.write("transformers %s\n" % transformers.__version__)
        f.write("safetensors %s\n" % safetensors.__version__)
        f.write("numpy %s\n" % numpy.__version__)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT_DIR) for f in fs)
    print("total size of %s: %d bytes" % (OUT_DIR, total))


if __name__ == "__main__":
    main()
