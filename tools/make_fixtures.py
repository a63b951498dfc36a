#!/usr/bin/env python3
"""Generate tiny random Llama checkpoints + reference outputs for kiln tests.

Usage:  python3 tools/make_fixtures.py [--only {all,llama,lora}]

  --only all    (default) the llama fixtures, then the LoRA fixtures
  --only llama  only tests/fixtures/llama/
  --only lora   only tests/fixtures/lora/ (needs the llama fixtures in place:
                it reuses their checkpoints, input_ids and prompt_ids)

Step 1 (bootstrap, stdlib only): create <repo>/.venv-fixtures, pip-install
pinned torch (CPU use only; installed --no-deps so the multi-GB CUDA wheels
are skipped when `import torch` works without them), transformers 5.x,
safetensors, numpy and peft, then re-exec this script inside the venv.

Step 2 (inside the venv): write tests/fixtures/llama/<variant>/ with
config.json, model.safetensors (or shards + index) and reference.safetensors
(input_ids, logits, prompt_ids, greedy_ids), plus VERSIONS.txt.

Step 3 (inside the venv): write tests/fixtures/lora/<case>/ with base.txt (the
llama fixture folder the adapter belongs to), the adapter folder(s) exactly as
PeftModel.save_pretrained writes them (README.md removed), weights.txt for
multi-adapter cases and reference.safetensors computed from the merged model,
plus tests/fixtures/lora/VERSIONS.txt.

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
# installed --no-deps: their remaining requirements (pyyaml, tqdm, packaging,
# huggingface_hub, ...) already come with transformers, and a resolver run could
# otherwise try to pull torch's CUDA requirements back in.
PEFT_PINS = ["peft==0.21.2", "accelerate==1.15.0", "psutil==7.2.2"]

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
    peft_ok = subprocess.run([py, "-c", "import peft, accelerate; assert peft.__version__ == %r; "
                              "assert accelerate.__version__ == %r"
                              % (PEFT_PINS[0].split("==")[1], PEFT_PINS[1].split("==")[1])],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not peft_ok:
        _run(pip + ["--no-deps"] + PEFT_PINS)
    _run([py, "-c", SMOKE])
    _run([py, "-c", "import peft; print('peft', peft.__version__)"])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:] + ["--in-venv"])


def parse_args():
    import argparse
    ap = argparse.ArgumentParser(description="Generate kiln test fixtures (llama checkpoints, LoRA adapters).")
    ap.add_argument("--only", choices=["all", "llama", "lora"], default="all",
                    help="which fixture family to (re)generate (default: all)")
    ap.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()

if __name__ == "__main__" and not _in_venv():
    if "--in-venv" in sys.argv:
        sys.exit("re-exec did not land in %s (sys.prefix=%s)" % (VENV, sys.prefix))
    bootstrap()

# ---------------------------------------------------------------------------
# Everything below runs inside the venv.
# ---------------------------------------------------------------------------

# peft writes set-valued config fields (target_modules, modules_to_save) as list(set), whose order
# follows str hashing: pin the hash seed so adapter_config.json is byte-identical across runs.
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])

import json  # noqa: E402
import math  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach out to the hub

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


def main_llama():
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


# ---------------------------------------------------------------------------
# LoRA fixtures (tests/fixtures/lora/<case>/)
# ---------------------------------------------------------------------------

import peft  # noqa: E402
import accelerate  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from peft.utils import ModulesToSaveWrapper  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

LORA_DIR = os.path.join(REPO, "tests", "fixtures", "lora")
# relative to REPO (the LoRA step runs with cwd = REPO), so that the
# base_model_name_or_path peft writes into adapter_config.json is portable
LLAMA_REL = os.path.join("tests", "fixtures", "llama")

LORA_STD = 0.08            # lora_A / lora_B / lora_embedding_A / lora_embedding_B ~ N(0, LORA_STD^2)
MAGNITUDE_STD = 0.2        # DoRA magnitude = row norm of (W + s*B@A) * (1 + N(0, MAGNITUDE_STD^2))
SAVED_COPY_STD = 0.05      # modules_to_save copies get + N(0, SAVED_COPY_STD^2)
MIN_REL_L2 = 1e-2          # merged logits must differ from the base logits at least this much
MAX_MERGE_REL_DIFF = 1e-6  # peft's merged weights vs the formula kiln implements
MAX_UNMERGED_DIFF = 1e-4   # merged vs unmerged (adapter-in-the-loop) logits, max abs

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# adapters: [(adapter folder == peft adapter name, LoraConfig kwargs)];
# weights: user weight per adapter (multi-adapter cases, written to weights.txt);
# built_on: llama fixture the adapter is made for, when that is not `base` (must be rejected);
# reference: whether to write reference.safetensors.
LORA_CASES = [
    dict(name="all_linear_r8", base="gqa_f32", seed=2101,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=ALL_LINEAR))]),
    dict(name="rslora_qv", base="mha_f32", seed=2202,
         adapters=[("adapter", dict(r=4, lora_alpha=8, use_rslora=True,
                                    target_modules=["q_proj", "v_proj"]))]),
    dict(name="rank_pattern", base="gqa_f32", seed=2303,
         adapters=[("adapter", dict(r=8, lora_alpha=16,
                                    target_modules=r".*\.(q_proj|v_proj|down_proj)",
                                    rank_pattern={"q_proj": 4, "model.layers.1.mlp.down_proj": 2},
                                    alpha_pattern={"v_proj": 32}))]),
    dict(name="two_adapters", base="tied_f32", seed=2404,
         adapters=[("a", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
                   ("b", dict(r=4, lora_alpha=4,
                              target_modules=["gate_proj", "up_proj", "down_proj", "q_proj"]))],
         weights={"a": 0.7, "b": 0.3}),
    dict(name="embedding", base="gqa_f32", seed=2505,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["embed_tokens", "q_proj"],
                                    modules_to_save=["lm_head"]))]),
    dict(name="dora", base="gqa_f32", seed=2606,
         adapters=[("adapter", dict(r=8, lora_alpha=16, use_dora=True, target_modules=["q_proj", "v_proj"]))]),
    dict(name="wrong_shape", base="gqa_f32", built_on="head_dim_f32", seed=2707, reference=False,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj"]))]),
]


def lora_layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def randomize_adapters(pm, g):
    """peft initialises lora_B (and lora_embedding_A) to zero; overwrite every adapter tensor with seeded
    normals so that each adapter really changes the model. DoRA magnitudes are set from the randomized
    adapter's row norms times a random factor; modules_to_save copies are perturbed."""
    with torch.no_grad():
        for _, mod in pm.named_modules():
            if isinstance(mod, LoraLayer):
                for ad in sorted(mod.lora_A):
                    for p in (mod.lora_A[ad].weight, mod.lora_B[ad].weight):
                        p.copy_(torch.randn(p.shape, generator=g) * LORA_STD)
                for ad in sorted(mod.lora_embedding_A):
                    for p in (mod.lora_embedding_A[ad], mod.lora_embedding_B[ad]):
                        p.copy_(torch.randn(p.shape, generator=g) * LORA_STD)
                for ad in sorted(mod.lora_magnitude_vector):
                    w = mod.get_base_layer().weight + mod.get_delta_weight(ad)
                    norm = torch.linalg.norm(w, dim=1)
                    mag = mod.lora_magnitude_vector[ad].weight
                    assert mag.shape == norm.shape, (mag.shape, norm.shape)
                    mag.copy_(norm * (1 + MAGNITUDE_STD * torch.randn(norm.shape, generator=g)))
            elif isinstance(mod, ModulesToSaveWrapper):
                for ad in sorted(mod.modules_to_save):
                    for _, p in sorted(mod.modules_to_save[ad].named_parameters()):
                        p.add_(torch.randn(p.shape, generator=g) * SAVED_COPY_STD)


def describe_layers(pm):
    for n, mod in lora_layers(pm.base_model.model):
        parts = []
        for ad in sorted(set(mod.lora_A) | set(mod.lora_embedding_A)):
            a = mod.lora_A[ad].weight if ad in mod.lora_A else mod.lora_embedding_A[ad]
            parts.append("%s: r=%d alpha=%g scaling=%g A%s%s" % (
                ad, mod.r[ad], mod.lora_alpha[ad], mod.scaling[ad], list(a.shape),
                " dora" if ad in mod.lora_magnitude_vector else ""))
        print("    %-32s %-10s %s" % (n, type(mod).__name__, "; ".join(parts)))


def expected_merged(pm, weights):
    """Merged weights by the plain formulas (what kiln implements), from the loaded adapters:
    linear  W + sum_i w_i * s_i * B_i @ A_i
    embed   W + sum_i w_i * s_i * (B_i @ A_i)^T
    DoRA    m / ||W + s*B@A||_row * (W + s*B@A)   (single adapter, w = 1)
    modules_to_save: the saved copy."""
    want = {}
    with torch.no_grad():
        for n, mod in lora_layers(pm.base_model.model):
            W = mod.get_base_layer().weight.detach().clone()
            V = W.clone()
            for ad, w in weights.items():
                if ad in mod.lora_A:
                    delta = mod.lora_B[ad].weight @ mod.lora_A[ad].weight
                elif ad in mod.lora_embedding_A:
                    delta = (mod.lora_embedding_B[ad] @ mod.lora_embedding_A[ad]).T
                else:
                    continue
                s = mod.scaling[ad]
                if ad in mod.lora_magnitude_vector:
                    assert len(weights) == 1 and w == 1.0
                    V = W + s * delta
                    m = mod.lora_magnitude_vector[ad].weight
                    V = (m / torch.linalg.norm(V, dim=1))[:, None] * V
                else:
                    V = V + w * s * delta
            want[n + ".weight"] = V
        for n, mod in pm.base_model.model.named_modules():
            if isinstance(mod, ModulesToSaveWrapper):
                (ad,) = list(weights)
                for pn, p in mod.modules_to_save[ad].named_parameters():
                    want[n + "." + pn] = p.detach().clone()
    return want


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def describe_adapter_dir(path, built_on_dir):
    with open(os.path.join(path, "adapter_config.json")) as f:
        cfg = json.load(f)
    print("    %s/adapter_config.json: %s" % (os.path.basename(path), json.dumps(cfg, sort_keys=True)))
    base_sd = load_file(os.path.join(built_on_dir, "model.safetensors"))
    st = os.path.join(path, "adapter_model.safetensors")
    with safe_open(st, "pt") as sf:
        for k in sf.keys():
            t = sf.get_tensor(k)
            assert t.abs().max() > 0 and t.std() > 0, "adapter tensor %s is zero/constant" % k
            note = ""
            if k.endswith(".base_layer.weight"):
                # save_embedding_layers="auto" stores the targeted embedding's own (unchanged) base weight
                bk = k[len("base_model.model."):-len(".base_layer.weight")] + ".weight"
                assert torch.equal(t, base_sd[bk]), k
                note = "  (== base %s)" % bk
            print("    %s %s %s%s" % (k, sf.get_slice(k).get_dtype(), list(t.shape), note))
    return cfg


def load_name(folder):
    # peft warns that adapter names contained in "lora_" (like "a") may get re-initialised on loading,
    # so load under a longer name; load_adapters checks that what got loaded is what is on disk
    return "adapter_" + folder if folder in "lora_" else folder


def load_adapters(base, out, adapters):
    folders = [f for f, _ in adapters]
    pm = PeftModel.from_pretrained(base, os.path.join(out, folders[0]), adapter_name=load_name(folders[0]))
    for folder in folders[1:]:
        pm.load_adapter(os.path.join(out, folder), adapter_name=load_name(folder))
    pm.eval()
    for folder in folders:
        on_disk = load_file(os.path.join(out, folder, "adapter_model.safetensors"))
        loaded = get_peft_model_state_dict(pm, adapter_name=load_name(folder))
        assert sorted(on_disk) == sorted(loaded), (sorted(on_disk), sorted(loaded))
        for k, v in on_disk.items():
            assert torch.equal(loaded[k], v), "loaded adapter tensor %s differs from the file" % k
    return pm


def check_rejected(case, out):
    base = load(os.path.join(LLAMA_REL, case["base"]), torch.float32)
    try:
        load_adapters(base, out, case["adapters"])
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()
        print("    peft refuses it on %s as expected: %s: %s" % (
            case["base"], type(e).__name__, " | ".join(l.strip() for l in msg[:3])))
        return
    raise SystemExit("%s: peft accepted an adapter built for %s on %s"
                     % (case["name"], case["built_on"], case["base"]))


def reference_for(case, out, input_ids, prompt_ids, base_logits_ref):
    adapters = case["adapters"]
    weights = {load_name(f): w for f, w in (case.get("weights") or {adapters[0][0]: 1.0}).items()}
    base = load(os.path.join(LLAMA_REL, case["base"]), torch.float32)
    with torch.no_grad():
        base_logits = base(input_ids).logits.float()
    assert torch.allclose(base_logits, base_logits_ref, atol=1e-5, rtol=0), "base reload changed logits"
    pm = load_adapters(base, out, adapters)
    describe_layers(pm)
    want = expected_merged(pm, weights)
    if len(adapters) > 1:
        names = list(weights)
        pm.add_weighted_adapter(names, [weights[n] for n in names], "combined", combination_type="cat")
        pm.set_adapter("combined")
        print("    cat adapter: %s" % "; ".join(
            "%s r=%d scaling=%g" % (n, m.r["combined"], m.scaling["combined"])
            for n, m in lora_layers(pm.base_model.model)[:2]) + "; ...")
    with torch.no_grad():
        unmerged = pm(input_ids).logits.float()
    merged = pm.merge_and_unload().eval()
    sd = merged.state_dict()
    worst = max((rel(sd[k], v), k) for k, v in want.items())
    print("    merged weights vs formula: %d tensors, max rel diff %.2e (%s)" % (len(want), worst[0], worst[1]))
    if worst[0] > MAX_MERGE_REL_DIFF:
        print("    peft's merge differs from the formula; using the formula's weights")
        for k, v in sorted(want.items()):
            print("      %s rel diff %.2e" % (k, rel(sd[k], v)))
        with torch.no_grad():
            for k, v in want.items():
                sd[k].copy_(v)
    with torch.no_grad():
        logits = merged(input_ids).logits.float().contiguous()
        greedy = merged.generate(
            prompt_ids[None], max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
            do_sample=False, eos_token_id=None, pad_token_id=0)[0]
    manual, margins = greedy_manual(merged, prompt_ids)
    assert greedy.shape == (PROMPT_LEN + NEW_TOKENS,), greedy.shape
    assert torch.equal(greedy, manual), (greedy, manual)
    diff_unmerged = (logits - unmerged).abs().max().item()
    rel_l2 = rel(logits, base_logits)
    ref = dict(input_ids=input_ids.contiguous(), logits=logits,
               prompt_ids=prompt_ids.contiguous(), greedy_ids=greedy.contiguous())
    return ref, margins, rel_l2, diff_unmerged


def build_lora_case(case):
    name = case["name"]
    out = os.path.join(LORA_DIR, name)
    built_on = case.get("built_on", case["base"])
    base_ref = load_file(os.path.join(LLAMA_REL, case["base"], "reference.safetensors"))
    input_ids, prompt_ids = base_ref["input_ids"], base_ref["prompt_ids"]
    for attempt in range(MAX_SEED_TRIES):
        s = case["seed"] + attempt
        if os.path.exists(out):
            shutil.rmtree(out)
        torch.manual_seed(s)
        g = torch.Generator().manual_seed(s)
        model = load(os.path.join(LLAMA_REL, built_on), torch.float32)
        pm = None
        for folder, kw in case["adapters"]:
            cfg = LoraConfig(task_type="CAUSAL_LM", **kw)
            if pm is None:
                pm = get_peft_model(model, cfg, adapter_name=folder)
            else:
                pm.add_adapter(folder, cfg)
        randomize_adapters(pm, g)
        pm.save_pretrained(out)
        os.remove(os.path.join(out, "README.md"))
        folders = [f for f, _ in case["adapters"]]
        assert sorted(os.listdir(out)) == sorted(folders), os.listdir(out)
        for f in folders:
            got = sorted(os.listdir(os.path.join(out, f)))
            assert got == ["adapter_config.json", "adapter_model.safetensors"], (f, got)
        with open(os.path.join(out, "base.txt"), "w") as f:
            f.write(case["base"] + "\n")
        if case.get("weights"):
            assert list(case["weights"]) == folders
            with open(os.path.join(out, "weights.txt"), "w") as f:
                for k, v in case["weights"].items():
                    f.write("%s %s\n" % (k, v))
        print("  %s: seed %d, base %s%s" % (name, s, case["base"],
                                            "" if built_on == case["base"] else " (adapter built on %s)" % built_on))
        for f in folders:
            describe_adapter_dir(os.path.join(out, f), os.path.join(LLAMA_REL, built_on))
        if not case.get("reference", True):
            check_rejected(case, out)
            return
        ref, margins, rel_l2, diff_unmerged = reference_for(case, out, input_ids, prompt_ids, base_ref["logits"])
        new = ref["greedy_ids"][PROMPT_LEN:].tolist()
        problems = []
        if min(margins) < MIN_MARGIN:
            problems.append("min greedy margin %.2e < %g" % (min(margins), MIN_MARGIN))
        if len(set(new)) < MIN_DISTINCT_NEW:
            problems.append("only %d distinct greedy ids" % len(set(new)))
        if rel_l2 < MIN_REL_L2:
            problems.append("merged logits too close to base (rel L2 %.2e)" % rel_l2)
        if diff_unmerged > MAX_UNMERGED_DIFF:
            problems.append("merged vs unmerged logits differ by %.2e" % diff_unmerged)
        if problems:
            print("  %s seed %d rejected: %s; retrying with seed %d" % (name, s, "; ".join(problems), s + 1))
            continue
        save_file(ref, os.path.join(out, "reference.safetensors"))
        print("    logits rel L2 vs base %.3e, merged vs unmerged max abs %.2e, min greedy margin %.3e, "
              "greedy new ids %s" % (rel_l2, diff_unmerged, min(margins), new))
        return
    raise SystemExit("%s: no adapter seed passed the checks in %d tries" % (name, MAX_SEED_TRIES))


def main_lora():
    os.chdir(REPO)
    for case in LORA_CASES:
        for b in {case["base"], case.get("built_on", case["base"])}:
            if not os.path.exists(os.path.join(LLAMA_REL, b, "reference.safetensors")):
                raise SystemExit("missing %s/%s: run tools/make_fixtures.py (or --only llama) first"
                                 % (LLAMA_REL, b))
    if os.path.exists(LORA_DIR):
        shutil.rmtree(LORA_DIR)
    os.makedirs(LORA_DIR)
    for case in LORA_CASES:
        print("== lora/%s" % case["name"], flush=True)
        build_lora_case(case)
    with open(os.path.join(LORA_DIR, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only lora\n")
        f.write("python %s\n" % sys.version.split()[0])
        f.write("torch %s\n" % torch.__version__)
        f.write("transformers %s\n" % transformers.__version__)
        f.write("safetensors %s\n" % safetensors.__version__)
        f.write("peft %s\n" % peft.__version__)
        f.write("accelerate %s\n" % accelerate.__version__)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(LORA_DIR) for f in fs)
    print("total size of %s: %d bytes" % (LORA_DIR, total))
    assert total < 1_500_000, total


def main():
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    if ARGS.only in ("all", "llama"):
        main_llama()
    if ARGS.only in ("all", "lora"):
        main_lora()


if __name__ == "__main__":
    main()
