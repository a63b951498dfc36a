"""Diffusion fixtures for kiln (Step 6 of tools/make_fixtures.py; run it as
`python3 tools/make_fixtures.py --only diffusion`, which bootstraps the venv and calls main(repo)).

Writes tests/fixtures/diffusion/ (wiped and rewritten on every run, deterministic):

  tokenizer/            a CLIP-style BPE (vocab.json + merges.txt in openai/clip-vit-large-patch14's layout,
                        trained here by `tokenizers` on a corpus generated here), hub-style tokenizer_config.json
                        and special_tokens_map.json (no tokenizer.json, as on the hub),
                        and cases.json (texts with the ids CLIPTokenizer gives them, padded to 77 and unpadded)
  sd15_tiny/            pipeline/ (StableDiffusionPipeline.save_pretrained, float16 weights, PNDM scheduler with
                        Stable Diffusion 1.5's scheduler config) + reference.safetensors
  sd2_tiny/             pipeline/ (SD2 style: linear-projection transformers, OpenCLIP-style gelu text encoder,
                        pad token "!", DDIM v-prediction scheduler; float32 weights) + reference.safetensors
                        + tokenizer_cases.json (the cases of tokenizer/ through this pipeline's tokenizer)
  controlnet_tiny/      base.txt (sd15_tiny), controlnet/ (ControlNetModel.save_pretrained, float16),
                        control.png, reference.safetensors
  pipeline_schedules.json  the timesteps samplers get from sd15_tiny's folder under varied scheduler configs,
                        as StableDiffusionPipeline (and the ControlNet one) load and hand them on
  samplers/             scheduler configs (sd15.json, vpred.json, vp_sde.json) and one safetensors file per
                        config x sampler with a 10-step trajectory driven by random model outputs
  VERSIONS.txt

Every weight is re-randomized after construction (also the ones diffusers zero-initialises), and every
reference is computed with the pipeline loaded back from disk in float32, so it matches the stored weights.
"""

import json
import copy
import math
import peft
import os
import random
import shutil
import sys
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
import diffusers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL, ControlNetModel, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler, PNDMScheduler, StableDiffusionControlNetPipeline, StableDiffusionPipeline,
    UNet2DConditionModel)
from diffusers.schedulers import ScoreSdeVpScheduler  # noqa: E402

GENERATED_BY = "python3 tools/make_fixtures.py --only diffusion"

PROMPT = "a red fox in snow"
GUIDANCE = 7.5
HEIGHT = WIDTH = 64
LATENT = 32
UNET_T = 537.0
LOOP_STEPS = 4
ODD_HEIGHT, ODD_WIDTH = 40, 56  # odd_tiny: multiples of 8, not of its UNet's factor
CN_SCALE = 0.8
MAX_TOTAL_BYTES = int(12e6)  # the diffusion fixtures stay small enough for git

# --- tokenizer ------------------------------------------------------------------------------------------------

TOK_SEED = 6001
TOK_VOCAB = 1000  # 256 byte chars + 256 with </w> + merges + <|startoftext|> + <|endoftext|>
TOK_MERGES = TOK_VOCAB - 512 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# transformers' CLIPTokenizer pre-tokenizer pattern (models/clip/tokenization_clip.py)
CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

SUBJECTS = ["fox", "cat", "dog", "horse", "astronaut", "castle", "forest", "mountain", "river", "city", "robot",
            "dragon", "owl", "lighthouse", "garden", "ship", "train", "bridge", "portrait", "woman", "man", "child",
            "tree", "flower", "house", "village", "ocean", "desert", "tower", "knight", "wizard", "bird", "wolf",
            "bear", "rabbit", "street", "market", "temple", "island", "cloud", "moon", "sun", "star", "planet"]
ADJECTIVES = ["red", "blue", "green", "golden", "silver", "dark", "bright", "old", "ancient", "tiny", "giant",
              "beautiful", "detailed", "colorful", "misty", "snowy", "sunny", "quiet", "busy", "futuristic",
              "medieval", "cozy", "wet", "frozen", "glowing", "soft", "sharp", "realistic", "cinematic", "dramatic"]
PLACES = ["in snow", "in the rain", "at night", "at sunset", "in a forest", "on the moon", "under the sea",
          "in a city", "on a hill", "by the river", "in winter", "in summer", "in space", "on mars",
          "in the mountains", "near a lake", "inside a house", "on the street"]
STYLES = ["highly detailed", "trending on artstation", "oil painting", "digital art", "photograph", "4k", "8k",
          "sharp focus", "studio lighting", "concept art", "watercolor", "unreal engine", "octane render",
          "by greg rutkowski", "masterpiece", "best quality", "35mm film", "bokeh", "wide angle", "illustration"]
VERBS = ["running", "sitting", "standing", "flying", "walking", "sleeping", "jumping", "riding", "looking",
         "playing", "reading", "eating", "swimming", "dancing", "waiting", "watching", "holding", "painting"]
FUNCTION = ["the", "a", "an", "of", "and", "with", "in", "on", "at", "to", "from", "by", "for", "is", "was",
            "it", "this", "that", "there", "they", "we", "you", "he", "she", "not", "very", "but", "or", "as"]
CONTRACTIONS = ["it's", "don't", "they're", "we've", "i'm", "you'll", "he'd", "can't", "isn't", "she's",
                "we're", "i've", "they'll", "it'd", "won't", "that's"]
OTHER = ["café", "naïve", "façade", "señor", "zürich", "über", "crème brûlée", "jalapeño", "résumé", "garçon",
         "東京", "雪", "狐", "猫", "山", "東京の雪", "こんにちは", "北京", "你好世界", "한국", "서울",
         "🦊", "❄️", "🔥", "😀", "🌲", "🏔️", "✨", "привет", "москва", "ελλάδα", "αθήνα", "straße"]
PUNCT = [",", ".", "!", "?", "...", ":", ";", " - ", " (", ")", "!!", "?!", " \"", "\"", " '", "'", " &", " /",
         " #", " @", " *", "+", "=", " <", ">", "[", "]", "{", "}", "|", "~", "_", "%", "$"]


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable char table, in CLIP's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tok_corpus():
    rng = random.Random(TOK_SEED)
    docs = []
    for _ in range(4000):
        r = rng.random()
        if r < 0.45:
            parts = [rng.choice(["a", "an", "the", "a photo of a", "a painting of a", "portrait of a"]),
                     rng.choice(ADJECTIVES), rng.choice(SUBJECTS)]
            if rng.random() < 0.5:
                parts.append(rng.choice(VERBS))
            parts.append(rng.choice(PLACES))
            text = " ".join(parts)
            for _ in range(rng.randint(0, 4)):
                text += rng.choice([", ", ", ", " | ", ". "]) + rng.choice(STYLES)
        elif r < 0.70:
            words = [rng.choice(FUNCTION + SUBJECTS + ADJECTIVES + VERBS + CONTRACTIONS) for _ in range(rng.randint(4, 14))]
            text = " ".join(words)
            text = text[0].upper() + text[1:] + rng.choice([".", "!", "?", "...", ""])
        elif r < 0.82:
            text = " ".join(rng.choice(OTHER + FUNCTION) for _ in range(rng.randint(2, 6)))
        elif r < 0.92:
            text = "%s %d %s %d.%d" % (rng.choice(SUBJECTS), rng.randint(0, 99999), rng.choice(["x", "by", "in", "of"]),
                                       rng.randint(0, 2030), rng.randint(0, 99))
        else:
            text = "".join(rng.choice(SUBJECTS + FUNCTION) + rng.choice(PUNCT) for _ in range(rng.randint(2, 8)))
        if rng.random() < 0.15:
            text = text.upper() if rng.random() < 0.5 else text.title()
        docs.append(text)
    return docs


def train_clip_bpe(docs):
    """Train a BPE with CLIP's normalizer/pre-tokenizer and </w> suffix; return (vocab list, merges list)."""
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=TOK_VOCAB + 400, end_of_word_suffix="</w>", show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(docs, trainer=trainer)
    trained = json.loads(tok.to_str())["model"]["merges"]
    chars = bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars]
    seen = set(vocab)
    merges = []
    for a, b in trained:
        assert a in seen and b in seen, (a, b)
        if a + b in seen:  # keep "token id = 512 + merge rank", as CLIP's vocabulary has it
            continue
        merges.append((a, b))
        vocab.append(a + b)
        seen.add(a + b)
        if len(merges) == TOK_MERGES:
            break
    assert len(merges) == TOK_MERGES, len(merges)
    vocab += [BOS, EOS]
    assert len(vocab) == TOK_VOCAB
    return vocab, merges


def _added_token(content):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


def write_hub_tokenizer(folder, vocab, merges, pad_token):
    """vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json, as the SD hub repos ship them (no
    tokenizer.json: with one, transformers 5 loads the added tokens with other `normalized` flags, see main())."""
    os.makedirs(folder, exist_ok=True)
    vocab_path = os.path.join(folder, "vocab.json")
    merges_path = os.path.join(folder, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write("%s %s\n" % (a, b))
    cfg = {"add_prefix_space": False, "bos_token": _added_token(BOS), "do_lower_case": True,
           "eos_token": _added_token(EOS), "errors": "replace", "model_max_length": 77, "pad_token": pad_token,
           "tokenizer_class": "CLIPTokenizer", "unk_token": _added_token(EOS)}
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    stm = {k: ({kk: vv for kk, vv in v.items() if kk != "__type"} if isinstance(v, dict) else v)
           for k, v in cfg.items() if k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(stm, f, indent=2, ensure_ascii=False)
        f.write("\n")


def tok_case_texts():
    nfc = unicodedata.normalize("NFC", "café crème Ångström")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    long_text = ("a very long prompt about a red fox in snow, highly detailed, trending on artstation, " * 6
                 + "1 2 3 4 5 6 7 8 9 0").strip()
    texts = [
        PROMPT,
        "A RED FOX IN SNOW",
        "A Red Fox In Snow",
        "a  red\tfox\n\nin   snow",
        "  leading and trailing spaces  ",
        "\t\n tabs and newlines \r\n",
        "tab\tseparated\tvalues",
        "line1\nline2\rline3\r\nline4",
        "wow!!! really?! ... ok...",
        "!!!???",
        ".....",
        "(masterpiece:1.2), [best quality], {detailed}, <lora:x:0.5>",
        "1234567890",
        "in 2024 there were 3.14 apples and 1,000,000 pears",
        "it's don't they're we've i'm you'll he'd",
        "IT'S DON'T THEY'RE WE'VE I'M YOU'LL HE'D",
        "It'S dOn'T tHeY'Re",
        "rock'n'roll 'quoted' ''s '''",
        "'s",
        "'",
        "the fox's tail and the foxes' den",
        "café naïve façade señor zürich",
        nfc,
        nfd,
        "e\u0301\u0301 double accent, q\u0303 combining tilde",
        "東京の雪と狐",
        "日本語とEnglishの混在text123",
        "你好世界 北京",
        "한국어 텍스트 서울",
        "ｶﾀｶﾅ half width and ＦＵＬＬ ｗｉｄｔｈ",
        "Привет мир, Москва",
        "ΣΊΣΥΦΟΣ και ελλάδα",
        "مرحبا بالعالم",
        "नमस्ते दुनिया",
        "İstanbul straße STRASSE ẞ",
        "ﬁ ﬂ ligatures",
        "½ ² ① Ⅻ ٣ numbers",
        "🦊❄️🔥 fox emoji 👍🏽",
        "family 👨‍👩‍👧 zwj and flag 🇯🇵",
        "fish &amp; chips &lt;b&gt; &#39;quote&#39; &quot;",
        EOS,
        BOS,
        "a <|endoftext|> b <|startoftext|> c",
        "<|endoftext|><|endoftext|>",
        "<|ENDOFTEXT|> and <|StartOfText|>",
        "x<|endoftext|>y",
        "<|endoftext",
        "",
        " ",
        "\n\t ",
        long_text,
        " ".join(["fox"] * 80),
        "a" * 300,
        "xylophonequartz zzyzx qwertyuiop",
        "pneumonoultramicroscopicsilicovolcanoconiosis",
        "nbsp\u00a0here ideographic\u3000space thin\u2009space",
        "zero\u200bwidth and\ufeffbom",
        "control\x00chars\x07here\x7f",
        "e-mail: someone@example.com, url https://example.org/a?b=c#d",
        "C++ & C# -> <html> </div> a_b snake_case CamelCase",
        "$100 €50 £20 ¥1000 100%",
    ]
    assert len(set(texts)) == len(texts)
    return texts


def tok_cases(tok, texts):
    cases = []
    for text in texts:
        ids = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
        unpadded = tok(text).input_ids
        assert len(ids) == 77 and ids[0] == tok.bos_token_id, (text, ids)
        if len(unpadded) >= 77:  # truncation keeps <|endoftext|> last
            assert ids == unpadded[:76] + [tok.eos_token_id], text
        else:
            assert ids == unpadded + [tok.pad_token_id] * (77 - len(unpadded)), text
        cases.append({"text": text, "ids": ids, "ids_unpadded": unpadded,
                      "tokens_unpadded": tok.convert_ids_to_tokens(unpadded)})
    return cases


def build_tokenizer_t5(out, folder, cases):
    """tokenizer_t5/: the same tokenizer as transformers 5's save_pretrained writes it (tokenizer.json and
    tokenizer_config.json only, the layout of a pipeline saved with transformers 5), which loads to the
    same ids on every case of tokenizer/cases.json (checked here; the tests reuse those ids)."""
    t5 = os.path.join(out, "tokenizer_t5")
    CLIPTokenizer.from_pretrained(folder).save_pretrained(t5)
    assert sorted(os.listdir(t5)) == ["tokenizer.json", "tokenizer_config.json"], os.listdir(t5)
    tok = CLIPTokenizer.from_pretrained(t5)
    diff = [c["text"] for c in cases
            if tok(c["text"], padding="max_length", max_length=77, truncation=True).input_ids != c["ids"]]
    assert not diff, diff
    return "tokenizer_t5/ (save_pretrained: tokenizer.json alone) loads to the same ids on all %d cases" % len(cases)


def build_tokenizer(out):
    docs = tok_corpus()
    vocab, merges = train_clip_bpe(docs)
    folder = os.path.join(out, "tokenizer")
    write_hub_tokenizer(folder, vocab, merges, EOS)
    tok = CLIPTokenizer.from_pretrained(folder)
    assert tok.model_max_length == 77 and len(tok) == TOK_VOCAB, (tok.model_max_length, len(tok))
    texts = tok_case_texts()
    cases = tok_cases(tok, texts)
    # cross-checks: the direct constructor, and the folder plus the tokenizer.json that transformers 5's
    # save_pretrained writes (not shipped: it stores both special tokens with normalized=false)
    with_json = folder + ".with_json"
    shutil.copytree(folder, with_json)
    CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                  model_max_length=77).save_pretrained(with_json + ".saved")
    shutil.copy(os.path.join(with_json + ".saved", "tokenizer.json"), with_json)
    alt = {"CLIPTokenizer(vocab.json, merges.txt)": CLIPTokenizer(os.path.join(folder, "vocab.json"),
                                                                  os.path.join(folder, "merges.txt")),
           "tokenizer/ + save_pretrained's tokenizer.json": CLIPTokenizer.from_pretrained(with_json)}
    notes = []
    for name, other in alt.items():
        diff = [c["text"] for c in cases
                if other(c["text"], padding="max_length", max_length=77, truncation=True).input_ids != c["ids"]]
        notes.append("%s: %s" % (name, "agrees on every case" if not diff else "DIFFERS on %s"
                                 % json.dumps(diff, ensure_ascii=False)))
    shutil.rmtree(with_json)
    shutil.rmtree(with_json + ".saved")
    with open(os.path.join(folder, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    notes.append(build_tokenizer_t5(out, folder, cases))
    backend = json.loads(tok.backend_tokenizer.to_str())
    info = {k: backend[k] for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens")}
    info["model"] = {k: v for k, v in backend["model"].items() if k not in ("vocab", "merges")}
    print("  tokenizer: %s, %d tokens, %d merges, %d cases" % (type(tok).__name__, len(tok), len(merges), len(cases)))
    for k, v in info.items():
        print("    %s: %s" % (k, json.dumps(v, ensure_ascii=False)))
    for n in notes:
        print("    " + n)
    return {"vocab": vocab, "merges": merges, "texts": texts, "info": info, "notes": notes, "docs": docs}


# --- models -------------------------------------------------------------------------------------------------

def rerandomize(model, seed):
    """Add seeded noise to every parameter: weights N(0, 0.3/sqrt(fan_in)) on top of the default init (or
    N(0, 1/sqrt(fan_in)) where the default init is all zeros, e.g. ControlNet's zero convs), 1-D parameters
    (biases, norm weights) N(0, 0.05), so norm weights stay around 1 and nothing is trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim >= 2:
                fan_in = p[0].numel()
                std = (1.0 if not p.any() else 0.3) / math.sqrt(fan_in)
            else:
                std = 0.05
            p.add_(noise * std)
            assert p.any(), "parameter still zero"


def sd15_models(tok_len, bos_id, eos_id, pad_id):
    torch.manual_seed(1501)
    unet = UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=2)
    torch.manual_seed(1502)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=8, sample_size=HEIGHT)
    torch.manual_seed(1503)
    text = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3, vocab_size=tok_len,
        max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id))
    rerandomize(unet, 15011)
    rerandomize(vae, 15012)
    rerandomize(text, 15013)
    return unet, vae, text


def sd2_models(tok_len, bos_id, eos_id, pad_id):
    torch.manual_seed(2001)
    unet = UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=48, norm_num_groups=16,
        attention_head_dim=(2, 4), use_linear_projection=True)
    torch.manual_seed(2002)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=8, sample_size=HEIGHT)
    torch.manual_seed(2003)
    text = CLIPTextModel(CLIPTextConfig(
        hidden_size=48, intermediate_size=80, num_attention_heads=4, num_hidden_layers=2, vocab_size=tok_len,
        max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=48,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id))
    rerandomize(unet, 20011)
    rerandomize(vae, 20012)
    rerandomize(text, 20013)
    return unet, vae, text


SD15_SCHEDULER = {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
                  "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
                  "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                  "timestep_spacing": "leading", "trained_betas": None}
VPRED_SCHEDULER = {"_class_name": "DDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
                   "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
                   "prediction_type": "v_prediction", "set_alpha_to_one": False, "skip_prk_steps": True,
                   "steps_offset": 1, "timestep_spacing": "trailing", "trained_betas": None}

LOOP_SAMPLERS = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}


def seeded_randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def _check(name, t, min_std=1e-2):
    t = t.float()
    assert torch.isfinite(t).all(), name
    if t.numel() == 1:
        return "%s %s = %s" % (name, tuple(t.shape), t.flatten().tolist())
    std = t.std().item()
    assert std > min_std, (name, std)
    return "%s %s std %.4g max|.| %.4g" % (name, tuple(t.shape), std, t.abs().max().item())


def save_pipeline(folder, unet, vae, text, tok_folder, scheduler_cfg, dtype):
    tok = CLIPTokenizer.from_pretrained(tok_folder)
    cls = {"PNDMScheduler": PNDMScheduler, "DDIMScheduler": DDIMScheduler}[scheduler_cfg["_class_name"]]
    sched = cls.from_config({k: v for k, v in scheduler_cfg.items() if k != "_class_name"})
    pipe = StableDiffusionPipeline(vae=vae.to(dtype), text_encoder=text.to(dtype), tokenizer=tok,
                                   unet=unet.to(dtype), scheduler=sched, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    # the tokenizer as the hub repos ship it (vocab.json + merges.txt + hub-style configs)
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    shutil.copytree(tok_folder, os.path.join(folder, "tokenizer"),
                    ignore=shutil.ignore_patterns("cases.json"))


def check_loaded(model, path, prefix=""):
    """Every tensor of the file is in the loaded float32 model, unchanged (nothing re-initialised)."""
    sd = model.state_dict()
    stored = load_file(path)
    assert len(stored) == len([k for k in sd if not k.endswith("position_ids")]), (path, len(stored), len(sd))
    for k, v in stored.items():
        k2 = k[len(prefix):] if prefix and k.startswith(prefix) else k
        assert sd[k2].dtype == torch.float32 and torch.equal(sd[k2], v.float()), (path, k)


def load_pipeline(folder, text_prefix=""):
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for name in ("unet", "vae", "text_encoder"):
        m = getattr(pipe, name)
        assert all(p.dtype == torch.float32 for p in m.parameters()), name
        m.eval()
    check_loaded(pipe.unet, os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))
    check_loaded(pipe.vae, os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors"))
    check_loaded(pipe.text_encoder, os.path.join(folder, "text_encoder", "model.safetensors"), text_prefix)
    return pipe


def pipeline_refs(pipe, negative, seed, lines, samplers=None, height=HEIGHT, width=WIDTH):
    """The common reference tensors of a pipeline case (at height × width pixels)."""
    lh, lw = height // pipe.vae_scale_factor, width // pipe.vae_scale_factor
    assert (height, width) != (HEIGHT, WIDTH) or (lh, lw) == (LATENT, LATENT)
    ref = {}
    tok = pipe.tokenizer
    cond = tok(PROMPT, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    uncond = tok(negative, padding="max_length", max_length=77, truncation=True).input_ids
    ref["ids"] = torch.tensor([cond, uncond], dtype=torch.int32)
    with torch.no_grad():
        pe, ne = pipe.encode_prompt(PROMPT, "cpu", 1, True, negative_prompt=negative)
        direct = pipe.text_encoder(ref["ids"].long())[0]
    text_hidden = torch.cat([pe, ne])
    assert torch.allclose(direct, text_hidden, atol=1e-5, rtol=1e-5), (direct - text_hidden).abs().max()
    lines.append("text_hidden == cat(encode_prompt) (direct text_encoder(ids)[0] max diff %.3g)"
                 % (direct - text_hidden).abs().max().item())
    ref["text_hidden"] = text_hidden
    ref["unet_sample"] = seeded_randn((2, 4, lh, lw), seed + 1)
    ref["unet_timestep"] = torch.tensor([UNET_T], dtype=torch.float32)
    with torch.no_grad():
        ref["unet_out"] = pipe.unet(ref["unet_sample"], ref["unet_timestep"], encoder_hidden_states=text_hidden).sample
    ref["vae_latents"] = seeded_randn((1, 4, lh, lw), seed + 2)
    with torch.no_grad():
        ref["vae_out"] = pipe.vae.decode(ref["vae_latents"] / pipe.vae.config.scaling_factor).sample
    ref["init_latents"] = seeded_randn((1, 4, lh, lw), seed + 3)
    base_cfg = pipe.scheduler.config
    for s, (cls, kw) in LOOP_SAMPLERS.items():
        if samplers is not None and s not in samplers:
            continue
        for output_type in ("latent", "np"):
            pipe.scheduler = cls.from_config(base_cfg, **kw)
            with torch.no_grad():
                out = pipe(PROMPT, negative_prompt=negative, latents=ref["init_latents"].clone(),
                           num_inference_steps=LOOP_STEPS, guidance_scale=GUIDANCE, height=height, width=width,
                           output_type=output_type).images
            key = "loop_%s_%s" % (s, "latents" if output_type == "latent" else "image")
            ref[key] = torch.from_numpy(np.ascontiguousarray(out)) if output_type == "np" else out
            ref["loop_%s_timesteps" % s] = pipe.scheduler.timesteps.to(torch.float32)
        img = ref["loop_%s_image" % s]
        lines.append("loop_%s: timesteps %s, init_noise_sigma %s, image clamped fraction %.3f"
                     % (s, ref["loop_%s_timesteps" % s].tolist(), float(pipe.scheduler.init_noise_sigma),
                        ((img <= 0) | (img >= 1)).float().mean().item()))
    pipe.scheduler = type(pipe.scheduler).from_config(base_cfg)  # leave nothing stateful behind
    return ref


def write_ref(path, ref, lines):
    ref = {k: v.detach().contiguous() for k, v in ref.items()}
    for k in sorted(ref):
        if ref[k].dtype == torch.int32:
            lines.append("%s %s int32" % (k, tuple(ref[k].shape)))
        else:
            ref[k] = ref[k].to(torch.float32)
            lines.append(_check(k, ref[k]) + " f32")
    save_file(ref, path, metadata={"format": "pt"})


def model_summary(pipe):
    out = []
    for name in ("unet", "vae", "text_encoder"):
        m = getattr(pipe, name)
        out.append("%s: %d params" % (name, sum(p.numel() for p in m.parameters())))
    procs = sorted(set(type(p).__name__ for p in pipe.unet.attn_processors.values()))
    out.append("unet attention processors: %s; vae: %s" % (
        procs, sorted(set(type(p).__name__ for p in pipe.vae.attn_processors.values()))))
    return out


def build_sd15(out, tok_folder, tok_info):
    case = os.path.join(out, "sd15_tiny")
    tok = CLIPTokenizer.from_pretrained(tok_folder)
    unet, vae, text = sd15_models(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    unet_f32 = UNet2DConditionModel.from_config(unet.config)
    unet_f32.load_state_dict(unet.state_dict())
    save_pipeline(os.path.join(case, "pipeline"), unet, vae, text, tok_folder, SD15_SCHEDULER, torch.float16)
    pipe = load_pipeline(os.path.join(case, "pipeline"))
    lines = ["sd15_tiny"] + model_summary(pipe)
    ref = pipeline_refs(pipe, "", 1510, lines)
    write_ref(os.path.join(case, "reference.safetensors"), ref, lines)
    return pipe, ref, unet_f32, lines


def build_sd2(out, tok_info):
    case = os.path.join(out, "sd2_tiny")
    tok_folder = os.path.join(case, "tokenizer.tmp")
    write_hub_tokenizer(tok_folder, tok_info["vocab"], tok_info["merges"], "!")
    tok = CLIPTokenizer.from_pretrained(tok_folder)
    assert tok.pad_token_id == 0, tok.pad_token_id
    unet, vae, text = sd2_models(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    save_pipeline(os.path.join(case, "pipeline"), unet, vae, text, tok_folder, VPRED_SCHEDULER, torch.float32)
    shutil.rmtree(tok_folder)
    # transformers 5 writes CLIPTextModel's tensors without the "text_model." prefix; the hub SD repos (written by
    # transformers 4) have it: sd2_tiny ships the hub layout, sd15_tiny the transformers-5 one
    te_path = os.path.join(case, "pipeline", "text_encoder", "model.safetensors")
    te = load_file(te_path)
    assert not any(k.startswith("text_model.") for k in te), list(te)[:3]
    save_file({"text_model." + k: v for k, v in te.items()}, te_path, metadata={"format": "pt"})
    pipe = load_pipeline(os.path.join(case, "pipeline"), text_prefix="text_model.")
    cases = tok_cases(pipe.tokenizer, tok_info["texts"])
    with open(os.path.join(case, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    added = json.loads(pipe.tokenizer.backend_tokenizer.to_str())["added_tokens"]
    lines = ["sd2_tiny"] + model_summary(pipe) + ["tokenizer added_tokens: %s" % json.dumps(added)]
    ref = pipeline_refs(pipe, "blurry, low quality", 2010, lines)
    write_ref(os.path.join(case, "reference.safetensors"), ref, lines)
    return lines


def draw_control_image(path, WIDTH=WIDTH, HEIGHT=HEIGHT, seed=3001):
    rng = random.Random(seed)
    img = Image.new("RGB", (WIDTH, HEIGHT), (0, 0, 0))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.randint(0, WIDTH - 8), rng.randint(0, HEIGHT - 8)
        x1, y1 = rng.randint(x0 + 4, WIDTH - 1), rng.randint(y0 + 4, HEIGHT - 1)
        color = tuple(rng.randint(40, 255) for _ in range(3))
        kind = rng.choice(["rect", "ellipse", "line"])
        if kind == "rect":
            d.rectangle([x0, y0, x1, y1], outline=color, width=rng.randint(1, 3))
        elif kind == "ellipse":
            d.ellipse([x0, y0, x1, y1], fill=color if rng.random() < 0.3 else None, outline=color)
        else:
            d.line([x0, y0, x1, y1], fill=color, width=rng.randint(1, 3))
    img.save(path, format="PNG")


def build_controlnet(out, pipe15, ref15, unet_f32):
    case = os.path.join(out, "controlnet_tiny")
    os.makedirs(case)
    with open(os.path.join(case, "base.txt"), "w") as f:
        f.write("sd15_tiny\n")
    torch.manual_seed(3002)
    cn = ControlNetModel.from_unet(unet_f32, conditioning_embedding_out_channels=(16, 32))
    rerandomize(cn, 30021)
    cn.to(torch.float16).save_pretrained(os.path.join(case, "controlnet"), safe_serialization=True)
    cn = ControlNetModel.from_pretrained(os.path.join(case, "controlnet"), dtype=torch.float32).eval()
    assert all(p.dtype == torch.float32 for p in cn.parameters())
    draw_control_image(os.path.join(case, "control.png"))
    control = Image.open(os.path.join(case, "control.png")).convert("RGB")
    comps = {k: v for k, v in pipe15.components.items() if k in
             ("vae", "text_encoder", "tokenizer", "unet", "feature_extractor", "image_encoder")}
    cpipe = StableDiffusionControlNetPipeline(**comps, controlnet=cn, safety_checker=None,
                                              scheduler=EulerDiscreteScheduler.from_config(pipe15.scheduler.config),
                                              requires_safety_checker=False)
    cpipe.set_progress_bar_config(disable=True)
    ref = {k: ref15[k] for k in ("ids", "text_hidden", "unet_sample", "unet_timestep", "init_latents")}
    ref["cn_cond"] = cpipe.prepare_image(control, WIDTH, HEIGHT, 1, 1, "cpu", torch.float32,
                                         do_classifier_free_guidance=True, guess_mode=False)
    ref["cn_scale"] = torch.tensor([CN_SCALE], dtype=torch.float32)
    with torch.no_grad():
        down, mid = cn(ref["unet_sample"], ref["unet_timestep"], encoder_hidden_states=ref["text_hidden"],
                       controlnet_cond=ref["cn_cond"], conditioning_scale=CN_SCALE, return_dict=False)
        ref["cn_unet_out"] = pipe15.unet(ref["unet_sample"], ref["unet_timestep"],
                                         encoder_hidden_states=ref["text_hidden"],
                                         down_block_additional_residuals=list(down),
                                         mid_block_additional_residual=mid).sample
    rel = ((ref["cn_unet_out"] - ref15["unet_out"]).norm() / ref15["unet_out"].norm()).item()
    assert rel > 0.05, rel
    lines = ["controlnet_tiny", "controlnet: %d params, %d down residuals; |cn_unet_out - unet_out| / |unet_out| = "
             "%.3f" % (sum(p.numel() for p in cn.parameters()), len(down), rel)]
    controlnet_loop(cpipe, control, pipe15.scheduler.config, "euler_cn", ref)
    ref["loop_euler_cn_timesteps"] = cpipe.scheduler.timesteps.to(torch.float32)
    # Control images of other sizes, as the pipeline resizes them (PIL Lanczos) and scales to [0, 1].
    for w, h in ((97, 71), (150, 130)):
        name = "control_%dx%d.png" % (w, h)
        draw_control_image(os.path.join(case, name), w, h, seed=3003 + w)
        img = Image.open(os.path.join(case, name)).convert("RGB")
        ref["resized_%dx%d" % (w, h)] = cpipe.prepare_image(img, WIDTH, HEIGHT, 1, 1, "cpu", torch.float32,
                                                            do_classifier_free_guidance=False, guess_mode=False)
    diff = (ref["loop_euler_cn_latents"] - ref15["loop_euler_latents"]).abs().max().item()
    assert diff > 1e-3, diff
    write_ref(os.path.join(case, "reference.safetensors"), ref, lines)
    lines += build_controlnet_pool(case, cpipe, cn, ref, ref15, control)
    return lines


def controlnet_loop(pipe, control, scheduler_cfg, key, ref):
    """The ControlNet pipeline's Euler loop from ref["init_latents"]: ref["loop_<key>_latents"] and
    ref["loop_<key>_image"]."""
    for output_type in ("latent", "np"):
        pipe.scheduler = EulerDiscreteScheduler.from_config(scheduler_cfg)
        with torch.no_grad():
            img = pipe(PROMPT, image=control, negative_prompt="", latents=ref["init_latents"].clone(),
                       num_inference_steps=LOOP_STEPS, guidance_scale=GUIDANCE, height=HEIGHT, width=WIDTH,
                       controlnet_conditioning_scale=CN_SCALE, output_type=output_type).images
        if output_type == "latent":
            ref["loop_%s_latents" % key] = img
        else:
            ref["loop_%s_image" % key] = torch.from_numpy(np.ascontiguousarray(img))


def build_controlnet_pool(case, cpipe, cn, ref_cn, ref15, control):
    """The same ControlNet with global_pool_conditions true (as control_v11e_sd15_shuffle's config has it;
    the tests set it in a copy of controlnet/config.json): diffusers averages each residual over height and
    width, and its pipeline then runs in guess mode, the ControlNet on the positive prompt only with zeros
    added for the negative. pool_reference.safetensors holds the UNet call and the loop."""
    pool = ControlNetModel.from_config({**cn.config, "global_pool_conditions": True})
    pool.load_state_dict(cn.state_dict())
    pool.eval()
    ref = {k: ref_cn[k] for k in ("init_latents", "unet_sample", "unet_timestep")}  # (the checks read them here)
    # One UNet call on the reference's batch [positive, negative], as the pipeline's guess mode makes it.
    with torch.no_grad():
        down, mid = pool(ref_cn["unet_sample"][:1], ref_cn["unet_timestep"],
                         encoder_hidden_states=ref_cn["text_hidden"][:1], controlnet_cond=ref_cn["cn_cond"][:1],
                         conditioning_scale=CN_SCALE, guess_mode=True, return_dict=False)
        assert all(d.shape[2:] == (1, 1) for d in down) and mid.shape[2:] == (1, 1)
        down = [torch.cat([d, torch.zeros_like(d)]) for d in down]
        mid = torch.cat([mid, torch.zeros_like(mid)])
        ref["cn_pool_unet_out"] = cpipe.unet(ref_cn["unet_sample"], ref_cn["unet_timestep"],
                                             encoder_hidden_states=ref_cn["text_hidden"],
                                             down_block_additional_residuals=down,
                                             mid_block_additional_residual=mid).sample
    pipe = StableDiffusionControlNetPipeline(**{k: v for k, v in cpipe.components.items() if k != "controlnet"},
                                             controlnet=pool)
    pipe.set_progress_bar_config(disable=True)
    controlnet_loop(pipe, control, cpipe.scheduler.config, "euler_cn_pool", ref)
    rel = ((ref["cn_pool_unet_out"] - ref_cn["cn_unet_out"]).norm() / ref_cn["cn_unet_out"].norm()).item()
    rel15 = ((ref["cn_pool_unet_out"] - ref15["unet_out"]).norm() / ref15["unet_out"].norm()).item()
    assert rel > 0.01 and rel15 > 0.01, (rel, rel15)
    lines = ["controlnet_tiny, global_pool_conditions: |cn_pool_unet_out - cn_unet_out| / |cn_unet_out| = %.3f, "
             "- unet_out: %.3f" % (rel, rel15)]
    write_ref(os.path.join(case, "pool_reference.safetensors"), ref, lines)
    return lines


# --- samplers -----------------------------------------------------------------------------------------------

SAMPLERS = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}
SAMPLER_STEPS = 10
SAMPLER_SHAPE = (1, 4, 8, 8)


class NoiseRecorder:
    """Wrap `randn_tensor` in a scheduler module and record what it returns."""

    def __init__(self, module):
        self.module = module
        self.orig = module.randn_tensor
        self.drawn = []

    def __enter__(self):
        def wrapped(*a, **kw):
            t = self.orig(*a, **kw)
            self.drawn.append(t.clone())
            return t
        self.module.randn_tensor = wrapped
        return self

    def __exit__(self, *exc):
        self.module.randn_tensor = self.orig

    def take(self, shape):
        assert len(self.drawn) <= 1, len(self.drawn)
        t = self.drawn[0].reshape(shape).float() if self.drawn else torch.zeros(shape)
        self.drawn = []
        return t


def run_sampler(sched, seed, vp_sde=False, steps=None):
    module = sys.modules[type(sched).__module__]
    sched.set_timesteps(steps or SAMPLER_STEPS)
    ts = sched.timesteps
    init_sigma = float(getattr(sched, "init_noise_sigma", 1.0)) if not vp_sde else 1.0
    x = seeded_randn(SAMPLER_SHAPE, seed) * init_sigma
    gen = torch.Generator().manual_seed(seed + 1)
    rec = {"timesteps": ts.to(torch.float32).clone(), "init_noise_sigma": torch.tensor([init_sigma])}
    if getattr(sched, "sigmas", None) is not None:
        rec["sigmas"] = torch.as_tensor(sched.sigmas).to(torch.float32).clone()
    if hasattr(sched, "alphas_cumprod"):
        rec["alphas_cumprod"] = sched.alphas_cumprod.to(torch.float32).clone()
    scale_in, samples, outs, noises, prevs, means = [], [], [], [], [], []
    with NoiseRecorder(module) as nr:
        for i, t in enumerate(ts):
            if hasattr(sched, "scale_model_input"):
                s = sched.scale_model_input(torch.ones(SAMPLER_SHAPE), t)[0, 0, 0, 0].item()
            else:
                s = 1.0
            assert not nr.drawn
            mo = seeded_randn(SAMPLER_SHAPE, seed + 100 + i)
            samples.append(x.clone())
            outs.append(mo)
            scale_in.append(s)
            if vp_sde:
                x, x_mean = sched.step_pred(mo, x, t, generator=gen)
                means.append(x_mean.clone())
            else:
                x = sched.step(mo, t, x, generator=gen).prev_sample
            noises.append(nr.take(SAMPLER_SHAPE))
            prevs.append(x.clone())
    rec.update(scale_in=torch.tensor(scale_in, dtype=torch.float32), samples=torch.stack(samples),
               model_outputs=torch.stack(outs), noise=torch.stack(noises), prev_samples=torch.stack(prevs))
    if vp_sde:
        rec["prev_means"] = torch.stack(means)
    for k, v in rec.items():
        assert torch.isfinite(v).all(), k
    return {k: v.to(torch.float32).contiguous() for k, v in rec.items()}


def build_samplers(out):
    folder = os.path.join(out, "samplers")
    os.makedirs(folder)
    lines = ["samplers (%d steps, shape %s)" % (SAMPLER_STEPS, SAMPLER_SHAPE)]
    for cname, cfg in (("sd15", SD15_SCHEDULER), ("vpred", VPRED_SCHEDULER)):
        with open(os.path.join(folder, cname + ".json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        for si, (sname, (cls, kw)) in enumerate(SAMPLERS.items()):
            sched = cls.from_config({k: v for k, v in cfg.items() if k != "_class_name"}, **kw)
            rec = run_sampler(sched, 4000 + 100 * si + (0 if cname == "sd15" else 50))
            save_file(rec, os.path.join(folder, "%s_%s.safetensors" % (cname, sname)), metadata={"format": "pt"})
            lines.append("%s_%s: timesteps %s; init_noise_sigma %.6g; scale_in[0] %.6g; noise drawn: %s%s" % (
                cname, sname, [round(v, 3) for v in rec["timesteps"].tolist()], rec["init_noise_sigma"].item(),
                rec["scale_in"][0].item(), bool(rec["noise"].any()),
                "; sigmas %s" % [round(v, 4) for v in rec["sigmas"].tolist()] if "sigmas" in rec else ""))
    # linspace spacing at 30 steps: numpy's linspace/round edge cases (DPM's 31 points hit x.5 exactly).
    lin = dict(SD15_SCHEDULER, timestep_spacing="linspace")
    with open(os.path.join(folder, "lin.json"), "w") as f:
        json.dump(lin, f, indent=2, sort_keys=True)
        f.write("\n")
    for si, sname in enumerate(("ddim", "euler", "dpmpp_2m")):
        cls, kw = SAMPLERS[sname]
        sched = cls.from_config({k: v for k, v in lin.items() if k != "_class_name"}, **kw)
        rec = run_sampler(sched, 4700 + 10 * si, steps=30)
        save_file(rec, os.path.join(folder, "lin_%s.safetensors" % sname), metadata={"format": "pt"})
        lines.append("lin_%s (30 steps): timesteps %s" % (sname, [round(v, 3) for v in rec["timesteps"].tolist()]))
    # DPM-Solver++ 2M with solver_type "heun" (a different second-order coefficient).
    heun = dict(SD15_SCHEDULER, solver_type="heun")
    with open(os.path.join(folder, "heun.json"), "w") as f:
        json.dump(heun, f, indent=2, sort_keys=True)
        f.write("\n")
    cls, kw = SAMPLERS["dpmpp_2m"]
    sched = cls.from_config({k: v for k, v in heun.items() if k != "_class_name"}, **kw)
    assert sched.config.solver_type == "heun"
    rec = run_sampler(sched, 4800)
    save_file(rec, os.path.join(folder, "heun_dpmpp_2m.safetensors"), metadata={"format": "pt"})
    lines.append("heun_dpmpp_2m: timesteps %s" % [round(v, 3) for v in rec["timesteps"].tolist()])
    sched = ScoreSdeVpScheduler()
    cfg = {"_class_name": "ScoreSdeVpScheduler"}
    cfg.update({k: v for k, v in sched.config.items() if not k.startswith("_")})
    with open(os.path.join(folder, "vp_sde.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    rec = run_sampler(sched, 4900, vp_sde=True)
    save_file(rec, os.path.join(folder, "vp_sde.safetensors"), metadata={"format": "pt"})
    lines.append("vp_sde: timesteps %s; step_pred returns (x, x_mean)" % [round(v, 4) for v in rec["timesteps"].tolist()])
    return lines


# --- a held-out UNet variant --------------------------------------------------------------------------------

def build_var(out, pipe15):
    """sd15_tiny's text encoder, tokenizer and VAE with a UNet that varies what the other cases keep fixed: three
    blocks ending in a plain DownBlock2D, per-block heads (1, 2, 2) and transformer depths (1, 2, 1),
    flip_sin_to_cos false with freq_shift 1, non-unit mid-block and ResNet output scales; and a
    DPMSolverMultistepScheduler config as diffusers saves it (lambda_min_clipped written as -Infinity)."""
    case = os.path.join(out, "var_tiny")
    torch.manual_seed(5001)
    unet = UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4, block_out_channels=(16, 32, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8, attention_head_dim=(1, 2, 2), transformer_layers_per_block=(1, 2, 1),
        flip_sin_to_cos=False, freq_shift=1, mid_block_scale_factor=1.5, resnet_out_scale_factor=2.0)
    rerandomize(unet, 50011)
    comps = {k: v for k, v in pipe15.components.items() if k in ("vae", "text_encoder", "tokenizer")}
    sched = DPMSolverMultistepScheduler.from_config(pipe15.scheduler.config, algorithm_type="dpmsolver++",
                                                    solver_order=2)
    pipe = StableDiffusionPipeline(unet=unet, scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False, **comps)
    pipe.to(torch.float16).save_pretrained(os.path.join(case, "pipeline"), safe_serialization=True)  # size; refs in f32
    for comp in ("vae", "text_encoder"):  # reused components remember where they were loaded from
        path = os.path.join(case, "pipeline", comp, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg.pop("_name_or_path", None)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    with open(os.path.join(case, "pipeline", "scheduler", "scheduler_config.json")) as f:
        assert "-Infinity" in f.read(), "expected diffusers to write lambda_min_clipped as -Infinity"
    pipe = load_pipeline(os.path.join(case, "pipeline"))
    lines = ["var_tiny"] + model_summary(pipe)
    ref = pipeline_refs(pipe, "", 5010, lines, samplers=("dpmpp_2m",))
    write_ref(os.path.join(case, "reference.safetensors"), ref, lines)
    # The shared components are sd15_tiny's, byte for byte: keep one copy (the tests copy them back in).
    for comp in ("vae", "text_encoder", "tokenizer"):
        a, b = os.path.join(case, "pipeline", comp), os.path.join(out, "sd15_tiny", "pipeline", comp)
        for name in os.listdir(a) if comp != "tokenizer" else []:  # (transformers 5 adds tokenizer.json)
            if name != "config.json":
                with open(os.path.join(a, name), "rb") as f1, open(os.path.join(b, name), "rb") as f2:
                    assert f1.read() == f2.read(), (comp, name)
        shutil.rmtree(a)
    with open(os.path.join(case, "base.txt"), "w") as f:
        f.write("sd15_tiny: vae, text_encoder and tokenizer\n")
    return lines


def build_odd(out, pipe15):
    """sd15_tiny's text encoder, tokenizer and VAE (factor 2) with a four-block UNet (factor 8) at 40 × 56 pixels:
    latents of 20 × 28 that the UNet halves to 10 × 14, 5 × 7, then 3 × 4 (odd sizes round up), so its up path
    resizes 3 × 4 to 5 × 7 (nearest, not a doubling) before doubling twice, as diffusers does for sizes that are
    multiples of 8 but not of the UNet's full factor."""
    case = os.path.join(out, "odd_tiny")
    torch.manual_seed(5101)
    unet = UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8, attention_head_dim=2)
    rerandomize(unet, 51011)
    comps = {k: v for k, v in pipe15.components.items() if k in ("vae", "text_encoder", "tokenizer")}
    sched = EulerDiscreteScheduler.from_config(pipe15.scheduler.config)
    pipe = StableDiffusionPipeline(unet=unet, scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False, **comps)
    pipe.to(torch.float16).save_pretrained(os.path.join(case, "pipeline"), safe_serialization=True)  # size; refs in f32
    for comp in ("vae", "text_encoder", "tokenizer"):  # sd15_tiny's, byte for byte: the tests copy them back in
        shutil.rmtree(os.path.join(case, "pipeline", comp))
        shutil.copytree(os.path.join(out, "sd15_tiny", "pipeline", comp), os.path.join(case, "pipeline", comp))
    pipe = load_pipeline(os.path.join(case, "pipeline"))
    lines = ["odd_tiny"] + model_summary(pipe)
    ref = pipeline_refs(pipe, "", 5110, lines, samplers=("euler",), height=ODD_HEIGHT, width=ODD_WIDTH)
    # diffusers takes the resizing path only for such sizes: check that the case reaches it.
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, a, kw: seen.append(a[1] if len(a) > 1 else kw.get("output_size")), with_kwargs=True)
             for m in pipe.unet.modules() if type(m).__name__ == "Upsample2D"]
    with torch.no_grad():
        pipe.unet(ref["unet_sample"], ref["unet_timestep"], encoder_hidden_states=ref["text_hidden"])
    for h in hooks:
        h.remove()
    assert [tuple(s) for s in seen] == [(5, 7), (10, 14), (20, 28)], seen
    lines.append("odd_tiny: %d x %d pixels, latents %s; the UNet's upsamplers resize to %s"
                 % (ODD_HEIGHT, ODD_WIDTH, tuple(ref["init_latents"].shape), [tuple(s) for s in seen]))
    write_ref(os.path.join(case, "reference.safetensors"), ref, lines)
    for comp in ("vae", "text_encoder", "tokenizer"):
        shutil.rmtree(os.path.join(case, "pipeline", comp))
    with open(os.path.join(case, "base.txt"), "w") as f:
        f.write("sd15_tiny: vae, text_encoder and tokenizer\n")
    return lines


# --- LoRA ----------------------------------------------------------------------------------------------------

def peft_adapter(model, targets, rank, alpha, seed, folder, base_name):
    """A peft LoRA on `model` with every lora_B randomised (peft initialises B to zero), saved as peft's
    save_pretrained writes it; returns the merged copy (merge_and_unload)."""
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=True)
    pm = get_peft_model(copy.deepcopy(model), cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in sorted(pm.named_parameters()):
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(p.shape[-1])))
    pm.peft_config["default"].base_model_name_or_path = base_name  # not this machine's path
    pm.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    return pm.merge_and_unload().eval()


def build_lora(out, pipe15, ref15):
    """sd15_tiny with a UNet LoRA (attention, feed-forward, time projections) and a text-encoder LoRA, merged by
    peft; references from the merged pipeline on sd15_tiny's inputs."""
    case = os.path.join(out, "lora_tiny")
    os.makedirs(case)
    with open(os.path.join(case, "base.txt"), "w") as f:
        f.write("sd15_tiny\n")
    unet = peft_adapter(pipe15.unet, ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "time_emb_proj",
                                      "linear_1"], 4, 8, 4001, os.path.join(case, "unet_lora"), "sd15_tiny/unet")
    text = peft_adapter(pipe15.text_encoder, ["q_proj", "v_proj", "fc1"], 2, 4, 4002, os.path.join(case, "text_lora"),
                        "sd15_tiny/text_encoder")
    comps = dict(pipe15.components)
    comps["unet"], comps["text_encoder"] = unet, text
    pipe = StableDiffusionPipeline(**comps)
    pipe.set_progress_bar_config(disable=True)
    ref = {k: ref15[k] for k in ("ids", "unet_sample", "unet_timestep", "init_latents")}
    with torch.no_grad():
        ref["text_hidden"] = text(ref["ids"].long())[0]
        ref["unet_out"] = unet(ref["unet_sample"], ref["unet_timestep"], encoder_hidden_states=ref["text_hidden"]).sample
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe15.scheduler.config)
    for output_type in ("latent", "np"):
        with torch.no_grad():
            img = pipe(PROMPT, negative_prompt="", latents=ref["init_latents"].clone(), num_inference_steps=LOOP_STEPS,
                       guidance_scale=GUIDANCE, height=HEIGHT, width=WIDTH, output_type=output_type).images
        ref["loop_euler_" + ("latents" if output_type == "latent" else "image")] = (
            img if output_type == "latent" else torch.from_numpy(np.ascontiguousarray(img)))
    rel = ((ref["unet_out"] - ref15["unet_out"]).norm() / ref15["unet_out"].norm()).item()
    rel_t = ((ref["text_hidden"] - ref15["text_hidden"]).norm() / ref15["text_hidden"].norm()).item()
    assert rel > 0.02 and rel_t > 0.02, (rel, rel_t)
    # diffusers' own LoRA file format (save_lora_weights / load_lora_weights), for the UNet: once with
    # lora_adapter_metadata (r 4, lora_alpha 6) and once without (diffusers then takes lora_alpha = r).
    from peft.utils import get_peft_model_state_dict
    from peft import LoraConfig
    folder15 = os.path.join(out, "sd15_tiny", "pipeline")
    src = load_pipeline(folder15)
    src.unet.add_adapter(LoraConfig(r=4, lora_alpha=6, target_modules=["to_k", "to_out.0", "ff.net.2", "linear_2"],
                                    init_lora_weights=True))
    g = torch.Generator().manual_seed(4003)
    with torch.no_grad():
        for n, p in sorted(src.unet.named_parameters()):
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(p.shape[-1])))
    layers = get_peft_model_state_dict(src.unet)
    meta = src.unet.peft_config["default"].to_dict()
    meta["base_model_name_or_path"] = None
    StableDiffusionPipeline.save_lora_weights(os.path.join(case, "diffusers_lora"), unet_lora_layers=layers,
                                              unet_lora_adapter_metadata=meta)
    StableDiffusionPipeline.save_lora_weights(os.path.join(case, "diffusers_lora_nometa"), unet_lora_layers=layers)
    for name, key in (("diffusers_lora", "dlora_unet_out"), ("diffusers_lora_nometa", "dlora_nometa_unet_out")):
        dst = load_pipeline(folder15)
        dst.load_lora_weights(os.path.join(case, name))
        with torch.no_grad():
            ref[key] = dst.unet(ref["unet_sample"], ref["unet_timestep"], encoder_hidden_states=ref15["text_hidden"]).sample
    ref["base_text_hidden"] = ref15["text_hidden"]
    d1 = ((ref["dlora_unet_out"] - ref15["unet_out"]).norm() / ref15["unet_out"].norm()).item()
    d2 = ((ref["dlora_unet_out"] - ref["dlora_nometa_unet_out"]).norm() / ref15["unet_out"].norm()).item()
    assert d1 > 0.02 and d2 > 0.01, (d1, d2)
    lines = ["lora_tiny: unet LoRA r4/alpha8 and text LoRA r2/alpha4 (peft %s), merged by merge_and_unload; "
             "|unet_out - base| / |base| = %.3f, text %.3f; diffusers-format UNet LoRA (r4/alpha6 with metadata, "
             "alpha = r without): %.3f from base, %.3f between the two" % (peft.__version__, rel, rel_t, d1, d2)]
    write_ref(os.path.join(case, "reference.safetensors"), ref, lines)
    return lines


def build_conv_lora(out, pipe15, ref15):
    """peft LoRAs on sd15_tiny's convolutions: one on the 1x1 proj_in/proj_out (SD 1.x's transformer
    projections; peft merges B.A as for a Linear) with its merged UNet's output on sd15_tiny's inputs,
    and one on the 3x3 conv_in (no reference: kiln refuses it)."""
    case = os.path.join(out, "lora_tiny")
    unet = peft_adapter(pipe15.unet, ["proj_in", "proj_out"], 4, 8, 4004, os.path.join(case, "conv1x1_lora"),
                        "sd15_tiny/unet")
    peft_adapter(pipe15.unet, ["conv_in"], 2, 2, 4005, os.path.join(case, "conv3x3_lora"), "sd15_tiny/unet")
    ref = {k: ref15[k] for k in ("ids", "unet_sample", "unet_timestep", "text_hidden")}
    with torch.no_grad():
        ref["unet_out"] = unet(ref["unet_sample"], ref["unet_timestep"], encoder_hidden_states=ref["text_hidden"]).sample
    rel = ((ref["unet_out"] - ref15["unet_out"]).norm() / ref15["unet_out"].norm()).item()
    assert rel > 0.02, rel
    lines = ["lora_tiny/conv1x1_lora: unet LoRA r4/alpha8 on the 1x1 proj_in/proj_out (peft %s), merged by "
             "merge_and_unload; |unet_out - base| / |base| = %.3f; conv3x3_lora: r2 on conv_in, no reference"
             % (peft.__version__, rel)]
    write_ref(os.path.join(case, "conv1x1_reference.safetensors"), ref, lines)
    return lines


# --- the scheduler as a pipeline hands it on ------------------------------------------------------------------

PIPE_SCHED_STEPS = 4


def build_pipeline_schedules(out):
    """pipeline_schedules.json: the timesteps (and DDIM's clip_sample) a sampler gets from a pipeline folder
    whose scheduler config and model_index.json scheduler class vary. StableDiffusionPipeline rewrites an
    outdated config when it loads (steps_offset to 1, clip_sample to False; the ControlNet pipeline does not),
    and a sampler of another class is <class>.from_config(pipe.scheduler.config), which takes its own defaults
    for the keys the file lacked."""
    src = os.path.join(out, "sd15_tiny", "pipeline")
    controlnet = ControlNetModel.from_pretrained(os.path.join(out, "controlnet_tiny", "controlnet"))
    with open(os.path.join(src, "scheduler", "scheduler_config.json")) as f:
        base = json.load(f)
    with open(os.path.join(src, "model_index.json")) as f:
        index = json.load(f)
    classes = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
    drop = object()
    variants = [  # (pipeline, model_index scheduler class, config edits)
        ("StableDiffusionPipeline", "PNDMScheduler", {}),
        ("StableDiffusionPipeline", "PNDMScheduler", {"steps_offset": drop}),
        ("StableDiffusionPipeline", "PNDMScheduler", {"steps_offset": 0}),
        ("StableDiffusionPipeline", "PNDMScheduler", {"steps_offset": 3, "clip_sample": True}),
        ("StableDiffusionPipeline", "PNDMScheduler", {"clip_sample": drop}),
        ("StableDiffusionPipeline", "EulerDiscreteScheduler",
         {"_class_name": "EulerDiscreteScheduler", "steps_offset": drop}),
        ("StableDiffusionPipeline", "DDIMScheduler",
         {"_class_name": "DDIMScheduler", "steps_offset": drop, "clip_sample": drop}),
        ("StableDiffusionControlNetPipeline", "PNDMScheduler", {"steps_offset": 0}),
        ("StableDiffusionControlNetPipeline", "DDIMScheduler",
         {"_class_name": "DDIMScheduler", "steps_offset": drop, "clip_sample": drop}),
    ]
    cases = []
    tmp = os.path.join(out, "_pipe_sched")
    for pipeline, sched_class, edits in variants:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp)
        cfg = {k: v for k, v in base.items()}
        for k, v in edits.items():
            if v is drop:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        with open(os.path.join(tmp, "scheduler", "scheduler_config.json"), "w") as f:
            json.dump(cfg, f)
        idx = dict(index, scheduler=["diffusers", sched_class])
        with open(os.path.join(tmp, "model_index.json"), "w") as f:
            json.dump(idx, f)
        if pipeline == "StableDiffusionPipeline":
            pipe = StableDiffusionPipeline.from_pretrained(tmp, safety_checker=None, requires_safety_checker=False)
        else:
            pipe = StableDiffusionControlNetPipeline.from_pretrained(tmp, controlnet=controlnet, safety_checker=None,
                                                                     requires_safety_checker=False)
        for sampler, cls in classes.items():
            sched = pipe.scheduler if type(pipe.scheduler) is cls else cls.from_config(pipe.scheduler.config)
            sched.set_timesteps(PIPE_SCHED_STEPS)
            cases.append({"pipeline": pipeline, "scheduler_class": sched_class, "config": cfg, "sampler": sampler,
                          "steps": PIPE_SCHED_STEPS, "timesteps": [float(t) for t in sched.timesteps],
                          "steps_offset": sched.config.steps_offset,
                          "clip_sample": bool(sched.config.clip_sample) if sampler == "ddim" else None})
    shutil.rmtree(tmp)
    with open(os.path.join(out, "pipeline_schedules.json"), "w") as f:
        json.dump({"generated_by": GENERATED_BY, "cases": cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    offsets = sorted({c["steps_offset"] for c in cases})
    return ["pipeline_schedules.json: %d cases (steps_offset %s, DDIM clip_sample %s)"
            % (len(cases), offsets, sorted({c["clip_sample"] for c in cases if c["sampler"] == "ddim"}))]


# --- main ---------------------------------------------------------------------------------------------------

def main(repo):
    out = os.path.join(repo, "tests", "fixtures", "diffusion")
    print("diffusion fixtures -> %s" % out, flush=True)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    tok_info = build_tokenizer(out)
    tok_folder = os.path.join(out, "tokenizer")
    lines = []
    pipe15, ref15, unet_f32, l15 = build_sd15(out, tok_folder, tok_info)
    lines += l15
    lines += build_controlnet(out, pipe15, ref15, unet_f32)
    lines += build_lora(out, pipe15, ref15)
    lines += build_conv_lora(out, pipe15, ref15)
    lines += build_var(out, pipe15)
    lines += build_odd(out, pipe15)
    lines += build_sd2(out, tok_info)
    lines += build_samplers(out)
    lines += build_pipeline_schedules(out)
    for ln in lines:
        print("  " + ln)
    with open(os.path.join(out, "VERSIONS.txt"), "w") as f:
        f.write("generated by: %s\n" % GENERATED_BY)
        f.write("python %s\n" % sys.version.split()[0])
        f.write("torch %s\n" % torch.__version__)
        f.write("diffusers %s\n" % diffusers.__version__)
        f.write("transformers %s\n" % transformers.__version__)
        f.write("tokenizers %s\n" % tokenizers.__version__)
        f.write("tokenizer: CLIP-layout BPE trained by tokenizers' BpeTrainer (end_of_word_suffix </w>, ByteLevel "
                "alphabet) on tok_corpus() in tools/fixtures_diffusion.py (seed %d, %d texts; no external data); "
                "vocab %d = 256 byte chars, the same with </w>, %d merges (id = 512 + merge rank), %s, %s\n"
                % (TOK_SEED, len(tok_info["docs"]), TOK_VOCAB, TOK_MERGES, BOS, EOS))
        for n in tok_info["notes"]:
            f.write("tokenizer check: CLIPTokenizer.from_pretrained(tokenizer/) vs %s\n" % n)
        f.write("weights: default init + seeded noise on every parameter (rerandomize()); sd15_tiny and "
                "controlnet_tiny stored float16, sd2_tiny float32; references computed in float32 from the "
                "pipelines loaded back from disk\n")
        f.write("sd15_tiny/pipeline/text_encoder/model.safetensors: keys as transformers 5 writes them (no "
                "\"text_model.\" prefix); sd2_tiny's: rewritten with the \"text_model.\" prefix, as the hub SD "
                "repos (transformers 4) have them; both load to the same modules\n")
        f.write("tokenizer folders: hub layout, no tokenizer.json; sd2_tiny's tokenizer has pad_token \"!\" (a "
                "special added token, id 0); sd2_tiny/tokenizer_cases.json holds tokenizer/cases.json's texts "
                "through it\n")
    # no absolute paths may leak into the fixtures
    for d, _, fs in os.walk(out):
        for name in fs:
            if name.endswith((".json", ".txt")):
                with open(os.path.join(d, name), encoding="utf-8") as f:
                    text = f.read()
                assert repo not in text and "/tmp/" not in text, os.path.join(d, name)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print("total size of %s: %d bytes" % (out, total))
    assert total < MAX_TOTAL_BYTES, total
