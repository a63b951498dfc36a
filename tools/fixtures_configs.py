"""The config keys of the reference libraries' config classes, with their defaults.

Run by tools/make_fixtures.py --only configs (inside its venv). Writes
tests/fixtures/configs/<Class>.json = {"class", "library", "version", "defaults": {key: default}} (transformers
classes also "null_refused": the boolean keys whose null the class refuses)
for every config class kiln's compiler reads. tests/compiler/test_config_keys.cpp checks each key
against kiln's readers: a key is either read (modeled, with its non-default values built or
refused by name) or listed as not changing the numbers; a key a new library version adds fails
that test until a reader decides about it. Defaults that are not JSON are stored as repr().

transformers configs: the default instance's to_dict() (which also has the keys every
PreTrainedConfig has and the values __init__ derives), plus __init__ parameters to_dict() leaves
out. diffusers models and schedulers: the __init__ parameters (what register_to_config stores).
peft's LoraConfig: the dataclass fields.
"""
import dataclasses
import inspect
import json
import os

TRANSFORMERS = ["LlamaConfig", "MistralConfig", "MixtralConfig", "Qwen2Config", "Qwen3Config", "Qwen3MoeConfig", "Phi3Config", "GemmaConfig", "Gemma2Config", "Gemma3TextConfig", "GraniteConfig", "SmolLM3Config", "PhiConfig", "Ernie4_5Config", "Ernie4_5_MoeConfig", "HunYuanDenseV1Config", "HunYuanMoEV1Config", "Olmo2Config", "MinistralConfig", "GraniteMoeConfig", "Qwen2MoeConfig", "Olmo3Config", "Glm4Config", "GlmConfig", "OlmoConfig", "Ministral3Config", "Qwen2VLTextConfig", "Qwen2_5_VLTextConfig", "Qwen3VLTextConfig", "Qwen3VLMoeTextConfig", "Exaone4Config", "ExaoneConfig", "ExaoneMoeConfig", "InternLM3Config", "IQuestCoderConfig", "SeedOssConfig", "GptOssConfig", "HeliumConfig", "GraniteMoeSharedConfig", "ArceeConfig", "ApertusConfig", "PhimoeConfig", "Jais2Config", "CohereConfig", "Cohere2Config", "Starcoder2Config", "StableLmConfig", "OlmoeConfig", "NemotronConfig", "GPTNeoXConfig", "Glm4MoeConfig", "SolarOpenConfig", "MiniMaxM2Config", "HyperCLOVAXConfig", "NanoChatConfig", "VaultGemmaConfig", "CwmConfig", "FlexOlmoConfig", "Dots1Config", "FalconConfig", "GPTJConfig", "GPT2Config", "OPTConfig", "GPTNeoConfig", "GPTBigCodeConfig", "BloomConfig", "MptConfig", "DbrxConfig", "DeepseekV2Config", "DeepseekV3Config", "Glm4MoeLiteConfig", "YoutuConfig", "CLIPTextConfig"]
DIFFUSERS = ["UNet2DConditionModel", "AutoencoderKL", "ControlNetModel", "DDIMScheduler", "EulerDiscreteScheduler",
             "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "PNDMScheduler",
             "LMSDiscreteScheduler", "DDPMScheduler", "HeunDiscreteScheduler"]


def jsonable(v):
    try:
        json.dumps(v, allow_nan=False)
        return v
    except (TypeError, ValueError):
        pass
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return repr(v)


def init_defaults(cls):
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        assert p.default is not inspect.Parameter.empty, (cls.__name__, name)
        out[name] = jsonable(p.default)
    return out


def write(out_dir, name, library, version, defaults, extra=None):
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(dict({"class": name, "library": library, "version": version, "defaults": defaults}, **(extra or {})),
                  f, indent=1, sort_keys=True)
        f.write("\n")
    print("configs/%s.json: %d keys (%s %s)" % (name, len(defaults), library, version))


def main(repo):
    import diffusers
    import peft
    import transformers
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    out_dir = os.path.join(repo, "tests", "fixtures", "configs")
    os.makedirs(out_dir, exist_ok=True)
    for name in TRANSFORMERS:
        cls = getattr(transformers, name)
        defaults = jsonable(cls().to_dict())
        for k, v in init_defaults(cls).items():
            defaults.setdefault(k, v)
        # The boolean keys whose null the class refuses (typed bool, not Optional[bool]: strict dataclass checks)
        null_refused = []
        for k, v in sorted(defaults.items()):
            if isinstance(v, bool):
                try:
                    cls(**{k: None})
                except StrictDataclassFieldValidationError as e:
                    assert k in str(e), (name, k, str(e))
                    null_refused.append(k)
        write(out_dir, name, "transformers", transformers.__version__, defaults, {"null_refused": null_refused})
    for name in DIFFUSERS:
        write(out_dir, name, "diffusers", diffusers.__version__, init_defaults(getattr(diffusers, name)))
    fields = {}
    for f in dataclasses.fields(peft.LoraConfig):
        if f.default is not dataclasses.MISSING:
            fields[f.name] = jsonable(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = jsonable(f.default_factory())
    write(out_dir, "LoraConfig", "peft", peft.__version__, fields)
