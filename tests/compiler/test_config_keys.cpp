// Strict configs: every key of the config classes kiln reads (tests/fixtures/configs/, written by
// tools/make_fixtures.py from the pinned transformers, diffusers and peft) is either modeled by
// kiln's reader or known not to change the numbers, so a config at the library's defaults is
// accepted with nothing left over; a key kiln does not know (a new upstream key, a typo, a
// setting of another model) is refused by name unless --allow-unknown-config.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/compile.h"
#include "compiler/deepseek_config.h"
#include "compiler/diffusion_config.h"
#include "compiler/error.h"
#include "compiler/llama_config.h"
#include "compiler/lora.h"
#include "runtime/plan.h"
#include "test_util.h"

using namespace kiln;
using json = nlohmann::json;
using kiln::test::TempDir;

namespace {

json catalog(const std::string& cls) {
  std::ifstream in(kiln::test::fixtures_root() + "/configs/" + cls + ".json");
  REQUIRE_MESSAGE(in.good(), cls);
  return json::parse(in);
}

// The image-text model an image-text text config class (Qwen2_5_VLTextConfig ...) is read within, or null.
const char* image_text_of(const std::string& cls) {
  return cls == "Qwen2VLTextConfig"      ? "Qwen2VLForConditionalGeneration"
         : cls == "Qwen2_5_VLTextConfig" ? "Qwen2_5_VLForConditionalGeneration"
         : cls == "Qwen3VLTextConfig"    ? "Qwen3VLForConditionalGeneration"
         : cls == "Qwen3VLMoeTextConfig" ? "Qwen3VLMoeForConditionalGeneration"
                                         : nullptr;
}

// A config file of class `cls` holding j: j, or an image-text model's with j as its text_config.
std::string file_of(const std::string& cls, const json& j) {
  if (const char* arch = image_text_of(cls)) return json{{"architectures", {arch}}, {"text_config", j}}.dump();
  return j.dump();
}

// Runs kiln's reader for `cls` on the config j; returns what it left unmodeled (an image-text text config's keys
// named as text_config's own).
std::vector<std::string> read_as(const std::string& cls, json j, const TempDir& d) {
  const std::string path = d / (cls + ".json");
  std::ofstream(path) << j.dump();
  const std::string text = file_of(cls, j);
  if (image_text_of(cls)) {
    std::vector<std::string> left = parse_llama_config(text, path).unmodeled;
    for (std::string& k : left)
      if (k.rfind("text_config.", 0) == 0) k = k.substr(std::string("text_config.").size());
    return left;
  }
  if (cls == "LlamaConfig" || cls == "MistralConfig" || cls == "Qwen2Config" || cls == "Qwen3Config" ||
      cls == "Qwen3MoeConfig" || cls == "Phi3Config" || cls == "MixtralConfig" || cls == "Gemma3TextConfig" ||
      cls == "GraniteConfig" || cls == "Gemma2Config" || cls == "GemmaConfig" || cls == "SmolLM3Config" ||
      cls == "PhiConfig" || cls == "Ernie4_5Config" || cls == "Ernie4_5_MoeConfig" || cls == "HunYuanDenseV1Config" ||
      cls == "HunYuanMoEV1Config" || cls == "Olmo2Config" || cls == "MinistralConfig" || cls == "GraniteMoeConfig" ||
      cls == "Qwen2MoeConfig" || cls == "Olmo3Config" || cls == "Glm4Config" || cls == "GlmConfig" ||
      cls == "OlmoConfig" || cls == "Ministral3Config" || cls == "Exaone4Config" || cls == "ExaoneConfig" ||
      cls == "ExaoneMoeConfig" || cls == "InternLM3Config" || cls == "IQuestCoderConfig" || cls == "SeedOssConfig" ||
      cls == "GptOssConfig" || cls == "HeliumConfig" || cls == "GraniteMoeSharedConfig" || cls == "ArceeConfig" ||
      cls == "ApertusConfig" || cls == "PhimoeConfig" || cls == "Jais2Config" || cls == "CohereConfig" ||
      cls == "Cohere2Config" || cls == "Starcoder2Config" || cls == "StableLmConfig" || cls == "OlmoeConfig" ||
      cls == "NemotronConfig" || cls == "GPTNeoXConfig" || cls == "Glm4MoeConfig" || cls == "SolarOpenConfig" ||
      cls == "MiniMaxM2Config" || cls == "HyperCLOVAXConfig" || cls == "NanoChatConfig" || cls == "VaultGemmaConfig" ||
      cls == "CwmConfig" || cls == "FlexOlmoConfig" || cls == "Dots1Config" || cls == "FalconConfig" ||
      cls == "GPTJConfig" || cls == "GPT2Config" || cls == "OPTConfig" || cls == "GPTNeoConfig" ||
      cls == "GPTBigCodeConfig" || cls == "BloomConfig" || cls == "MptConfig" || cls == "DbrxConfig")
    return parse_llama_config(text, path).unmodeled;
  if (cls == "DeepseekV2Config" || cls == "DeepseekV3Config" || cls == "Glm4MoeLiteConfig" || cls == "YoutuConfig")
    return parse_deepseek_config(text, path).unmodeled;
  if (cls == "CLIPTextConfig") return read_clip_text_config(path).unmodeled;
  if (cls == "UNet2DConditionModel") return read_unet_config(path).unmodeled;
  if (cls == "ControlNetModel") return read_unet_config(path, true).unmodeled;
  if (cls == "AutoencoderKL") return read_vae_config(path).unmodeled;
  if (cls.find("Scheduler") != std::string::npos) return parse_scheduler_config(text, path).unmodeled;
  if (cls == "LoraConfig") return lora_config_unmodeled(text, path);
  FAIL("no reader for " << cls);
  return {};
}

// The library's defaults as a config file would hold them.
json defaults_of(const std::string& cls) {
  const json c = catalog(cls);
  json j = c["defaults"];
  if (c["library"] == "diffusers") j["_class_name"] = cls;
  // Python's float("-inf") is no JSON (the fixture holds its repr): a file holds -Infinity, read as absent.
  for (auto it = j.begin(); it != j.end(); ++it)
    if (*it == "-inf") *it = nullptr;
  // DeepseekV2Config defaults to 64 routed experts but num_experts_per_tok null, which no model
  // runs (transformers' router needs it): V2-Lite's value.
  if (cls == "DeepseekV2Config") j["num_experts_per_tok"] = 6;
  // MinistralConfig's head_dim defaults to None, with which its attention fails: Ministral-8B's value.
  // (HunYuanDenseV1Config's and HunYuanMoEV1Config's too: Hunyuan-7B's and -A13B's value)
  if (cls == "MinistralConfig" || cls == "HunYuanDenseV1Config" || cls == "HunYuanMoEV1Config") j["head_dim"] = 128;
  // Glm4MoeConfig's hidden_size 4096 over 96 heads leaves head_dim 42 (transformers' floor division) and 21 rotary
  // dims, which kiln refuses (odd): GLM-4.5's own head_dim.
  if (cls == "Glm4MoeConfig") j["head_dim"] = 128;
  // Dots1Config's expert counts default to None, with which its model fails: dots.llm1's values.
  if (cls == "Dots1Config") {
    j["n_routed_experts"] = 128;
    j["num_experts_per_tok"] = 6;
    j["n_shared_experts"] = 2;
  }
  if (cls == "LoraConfig") {  // a saved adapter has these set (peft fills them in save_pretrained)
    j["peft_type"] = "LORA";
    j["target_modules"] = json::array({"q_proj"});
  }
  return j;
}

const char* const kClasses[] = {"LlamaConfig",
                                "Qwen2VLTextConfig",
                                "Qwen2_5_VLTextConfig",
                                "Qwen3VLTextConfig",
                                "Qwen3VLMoeTextConfig",
                                "MistralConfig",
                                "MixtralConfig",
                                "Qwen2Config",
                                "Qwen3Config",
                                "Qwen3MoeConfig",
                                "Phi3Config",
                                "Gemma3TextConfig",
                                "GraniteConfig",
                                "Gemma2Config",
                                "GemmaConfig",
                                "SmolLM3Config",
                                "PhiConfig",
                                "Ernie4_5Config",
                                "Ernie4_5_MoeConfig",
                                "HunYuanDenseV1Config",
                                "HunYuanMoEV1Config",
                                "Olmo2Config",
                                "MinistralConfig",
                                "GraniteMoeConfig",
                                "Qwen2MoeConfig",
                                "Olmo3Config",
                                "Glm4Config",
                                "GlmConfig",
                                "OlmoConfig",
                                "Ministral3Config",
                                "Exaone4Config",
                                "ExaoneConfig",
                                "ExaoneMoeConfig",
                                "InternLM3Config",
                                "IQuestCoderConfig",
                                "SeedOssConfig",
                                "GptOssConfig",
                                "HeliumConfig",
                                "GraniteMoeSharedConfig",
                                "ArceeConfig",
                                "ApertusConfig",
                                "PhimoeConfig",
                                "Jais2Config",
                                "CohereConfig",
                                "Cohere2Config",
                                "Starcoder2Config",
                                "StableLmConfig",
                                "OlmoeConfig",
                                "NemotronConfig",
                                "GPTNeoXConfig",
                                "Glm4MoeConfig",
                                "SolarOpenConfig",
                                "MiniMaxM2Config",
                                "HyperCLOVAXConfig",
                                "NanoChatConfig",
                                "VaultGemmaConfig",
                                "CwmConfig",
                                "FlexOlmoConfig",
                                "Dots1Config",
                                "FalconConfig",
                                "GPTJConfig",
                                "GPT2Config",
                                "OPTConfig",
                                "GPTNeoConfig",
                                "GPTBigCodeConfig",
                                "BloomConfig",
                                "MptConfig",
                                "DbrxConfig",
                                "DeepseekV2Config",
                                "DeepseekV3Config",
                                "Glm4MoeLiteConfig",
                                "YoutuConfig",
                                "CLIPTextConfig",
                                "UNet2DConditionModel",
                                "ControlNetModel",
                                "AutoencoderKL",
                                "DDIMScheduler",
                                "EulerDiscreteScheduler",
                                "EulerAncestralDiscreteScheduler",
                                "DPMSolverMultistepScheduler",
                                "PNDMScheduler",
                                "LMSDiscreteScheduler",
                                "DDPMScheduler",
                                "HeunDiscreteScheduler",
                                "LoraConfig"};

}  // namespace

TEST_CASE("config keys: every key of each reference config class is modeled or known irrelevant") {
  TempDir d;
  for (const char* cls : kClasses) {
    CAPTURE(std::string(cls));
    const json c = catalog(cls);
    MESSAGE(std::string(cls) << ": " << c["defaults"].size() << " keys of " << c["library"].get<std::string>() << " "
                             << c["version"].get<std::string>());
    std::vector<std::string> left;
    std::string err;
    try {
      left = read_as(cls, defaults_of(cls), d);
    } catch (const CompileError& e) {
      err = e.what();
    }
    CHECK_MESSAGE(err.empty(), err);  // the library's own defaults are all built
    std::string list;
    for (const std::string& k : left) list += k + "; ";
    CHECK_MESSAGE(left.empty(), "not modeled: " << list);
  }
}

TEST_CASE("config keys: a key kiln does not know is refused by name, a null one is accepted") {
  TempDir d;
  for (const char* cls : kClasses) {
    CAPTURE(std::string(cls));
    json j = defaults_of(cls);
    j["kiln_new_upstream_key"] = nullptr;  // null: as if absent
    CHECK(read_as(cls, j, d).empty());
    j["kiln_new_upstream_key"] = 3;
    const std::vector<std::string> left = read_as(cls, j, d);
    REQUIRE(left.size() == 1);
    CHECK(left[0] == "kiln_new_upstream_key = 3");
  }
}

TEST_CASE("config keys: kiln compile refuses unmodeled keys naming the file and key, or notes them when allowed") {
  TempDir d;
  // The UNet's time_embedding_act_fn changes the images (by 4e-2 against diffusers); kiln does not
  // build it, so it is refused, never silently dropped.
  const std::string sd = d / "sd";
  kiln::test::copy_dir(kiln::test::fixtures_root() + "/diffusion/sd15_tiny/pipeline", sd);
  {
    std::ifstream in(sd + "/unet/config.json");
    json u = json::parse(in);
    u["time_embedding_act_fn"] = "silu";
    std::ofstream(sd + "/unet/config.json") << u.dump();
  }
  CompileOptions o;
  o.model_dir = sd;
  o.output = d / "sd.kplan";
  o.steps = 2;
  std::string err = kiln::test::compile_error(o);
  CHECK(err.find("unet/config.json: time_embedding_act_fn = \"silu\" is not supported") != std::string::npos);
  o.allow_unknown_config = true;  // a key kiln models is refused even then: it would build the wrong model
  CHECK(kiln::test::compile_error(o).find("time_embedding_act_fn") != std::string::npos);

  const std::string llm = d / "llm";
  kiln::test::copy_dir(kiln::test::fixture("gqa_f32"), llm);
  {
    std::ifstream in(llm + "/config.json");
    json c = json::parse(in);
    c["sliding_window"] = 4096;  // another family's key: not LLaMA's, so not modeled
    std::ofstream(llm + "/config.json") << c.dump();
  }
  o = CompileOptions{};
  o.model_dir = llm;
  o.output = d / "llm.kplan";
  err = kiln::test::compile_error(o);
  CHECK(err.find("config.json: sliding_window = 4096: a key kiln does not model") != std::string::npos);
  CHECK(err.find("--allow-unknown-config") != std::string::npos);
  o.allow_unknown_config = true;
  REQUIRE(kiln::test::compile_error(o).empty());
  auto plan = Plan::load_file(o.output);
  REQUIRE(plan.is_ok());
  CHECK(plan.value()->model().notes.find("ignored config keys (--allow-unknown-config) in " + llm +
                                         "/config.json: sliding_window = 4096") != std::string::npos);
}

TEST_CASE("config keys: keys inside the RoPE object are strict too, in both spellings") {
  TempDir d;
  json j = defaults_of("LlamaConfig");
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    CAPTURE(std::string(key));
    j.erase("rope_parameters");
    j.erase("rope_scaling");
    // Keys transformers reads for another rope type are ignored by it, and by kiln.
    j[key] = {{"rope_type", "linear"}, {"factor", 2.0}, {"low_freq_factor", 1.0}, {"partial_rotary_factor", 1.0}};
    CHECK(read_as("LlamaConfig", j, d).empty());
    // M-RoPE sections and a partial rotary fraction change the numbers; kiln builds neither.
    j[key]["mrope_section"] = {1, 2};
    j[key]["partial_rotary_factor"] = 0.5;
    const std::vector<std::string> left = read_as("LlamaConfig", j, d);
    REQUIRE(left.size() == 2);
    CHECK(left[0] == std::string(key) + ".mrope_section = [1,2]");
    CHECK(left[1] == std::string(key) + ".partial_rotary_factor = 0.5");
  }
}

namespace {

std::string rope_fingerprint(const RopeConfig& r) {
  std::ostringstream s;
  s << r.type << ' ' << r.theta << ' ' << r.factor << ' ' << r.low_freq_factor << ' ' << r.high_freq_factor << ' '
    << r.original_max_position_embeddings << ' ' << r.beta_fast << ' ' << r.beta_slow << ' ' << r.mscale << ' '
    << r.mscale_all_dim << ' ' << r.attention_factor << ' ' << r.truncate << ' ' << r.short_factor.size() << ' '
    << r.long_factor.size();
  for (double f : r.short_factor) s << ' ' << f;
  for (double f : r.long_factor) s << ' ' << f;
  return s.str();
}

// Every field of the parsed model config that shapes the model, as text (not raw_json, unmodeled).
std::string config_fingerprint(const std::string& cls, const json& j, const TempDir& d) {
  const std::string text = file_of(cls, j), path = d / (cls + ".json");
  std::ostringstream s;
  if (cls.rfind("Deepseek", 0) == 0 || cls == "Glm4MoeLiteConfig" || cls == "YoutuConfig") {
    const DeepseekConfig c = parse_deepseek_config(text, path);
    std::string moe_layers;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) moe_layers += c.is_moe_layer(i) ? 'm' : 'd';
    s << c.architecture << ' ' << c.v3 << ' ' << c.vocab_size << ' ' << c.hidden_size << ' ' << c.intermediate_size
      << ' ' << c.moe_intermediate_size << ' ' << c.num_hidden_layers << ' ' << c.num_attention_heads << ' '
      << c.q_lora_rank << ' ' << c.kv_lora_rank << ' ' << c.qk_nope_head_dim << ' ' << c.qk_rope_head_dim << ' '
      << c.v_head_dim << ' ' << c.first_k_dense_replace << ' ' << moe_layers << ' ' << c.n_routed_experts << ' '
      << c.num_experts_per_tok << ' ' << c.n_shared_experts << ' ' << c.n_group << ' ' << c.topk_group << ' '
      << int(c.topk_method) << ' ' << int(c.scoring) << ' ' << c.norm_topk_prob << ' ' << c.routed_scaling_factor << ' '
      << c.num_nextn_predict_layers << ' ' << c.max_position_embeddings << ' ' << c.rms_norm_eps << ' '
      << c.attention_bias << ' ' << c.tie_word_embeddings << ' ' << c.rope_interleave << ' ' << c.has_dtype << ' '
      << int(c.dtype) << " | " << rope_fingerprint(c.rope);
    return s.str();
  }
  const LlamaConfig c = parse_llama_config(text, path);
  s << c.architecture << ' ' << c.vocab_size << ' ' << c.hidden_size << ' ' << c.intermediate_size << ' '
    << c.num_hidden_layers << ' ' << c.num_attention_heads << ' ' << c.num_key_value_heads << ' ' << c.head_dim << ' '
    << c.max_position_embeddings << ' ' << c.rms_norm_eps << ' ' << c.tie_word_embeddings << ' ' << c.attention_bias
    << ' ' << c.mlp_bias << ' ' << c.qkv_bias << ' ' << c.sliding_window << ' ' << c.qk_norm << ' '
    << c.num_local_experts << ' ' << c.num_experts_per_tok << ' ' << c.moe_intermediate_size << ' ' << c.norm_topk_prob
    << ' ' << c.moe_fused << ' ' << c.shared_expert_intermediate_size << ' ' << c.moe_norm_min << ' ' << c.mixtral_names
    << ' ' << c.fused_projections << ' ' << c.rotary_dim << ' ' << c.gemma << ' ' << c.query_pre_attn_scalar << ' '
    << c.final_logit_softcapping << ' ' << c.gemma2 << ' ' << c.attn_logit_softcapping << ' ' << c.granite << ' '
    << c.embedding_multiplier << ' ' << c.attention_multiplier << ' ' << c.residual_multiplier << ' '
    << c.logits_scaling << ' ' << c.has_dtype << ' ' << int(c.dtype) << ' ' << int(c.mlp_activation) << ' '
    << c.unscaled_attention << ' ' << c.gpt2_layer_scaled << ' ' << c.neox_parallel << ' ' << c.parallel_residual << ' '
    << c.out_bias << ' ' << c.head_layernorm << ' ' << c.learned_positions() << " |";
  if (c.sliding_window > 0)  // (which layers would window matters only with a window)
    for (bool b : c.window_layer) s << ' ' << b;
  s << " |";
  for (bool b : c.moe_layer) s << ' ' << b;
  s << " | " << rope_fingerprint(c.rope) << " | " << rope_fingerprint(c.rope_local);
  return s.str();
}

}  // namespace

// The LLM config classes kiln reads.
const char* const kLlmConfigClasses[] = {"Qwen2VLTextConfig",
                                         "Qwen2_5_VLTextConfig",
                                         "Qwen3VLTextConfig",
                                         "Qwen3VLMoeTextConfig",
                                         "LlamaConfig",
                                         "MistralConfig",
                                         "MixtralConfig",
                                         "Qwen2Config",
                                         "Qwen3Config",
                                         "Qwen3MoeConfig",
                                         "Phi3Config",
                                         "GemmaConfig",
                                         "Gemma2Config",
                                         "Gemma3TextConfig",
                                         "GraniteConfig",
                                         "SmolLM3Config",
                                         "PhiConfig",
                                         "Ernie4_5Config",
                                         "Ernie4_5_MoeConfig",
                                         "HunYuanDenseV1Config",
                                         "HunYuanMoEV1Config",
                                         "Olmo2Config",
                                         "MinistralConfig",
                                         "GraniteMoeConfig",
                                         "Qwen2MoeConfig",
                                         "Olmo3Config",
                                         "Glm4Config",
                                         "GlmConfig",
                                         "OlmoConfig",
                                         "Ministral3Config",
                                         "Exaone4Config",
                                         "ExaoneConfig",
                                         "ExaoneMoeConfig",
                                         "InternLM3Config",
                                         "IQuestCoderConfig",
                                         "SeedOssConfig",
                                         "GptOssConfig",
                                         "HeliumConfig",
                                         "GraniteMoeSharedConfig",
                                         "ArceeConfig",
                                         "ApertusConfig",
                                         "PhimoeConfig",
                                         "Jais2Config",
                                         "CohereConfig",
                                         "Cohere2Config",
                                         "Starcoder2Config",
                                         "StableLmConfig",
                                         "OlmoeConfig",
                                         "NemotronConfig",
                                         "GPTNeoXConfig",
                                         "Glm4MoeConfig",
                                         "SolarOpenConfig",
                                         "MiniMaxM2Config",
                                         "HyperCLOVAXConfig",
                                         "NanoChatConfig",
                                         "VaultGemmaConfig",
                                         "CwmConfig",
                                         "FlexOlmoConfig",
                                         "Dots1Config",
                                         "FalconConfig",
                                         "GPTJConfig",
                                         "GPT2Config",
                                         "OPTConfig",
                                         "GPTNeoConfig",
                                         "GPTBigCodeConfig",
                                         "BloomConfig",
                                         "MptConfig",
                                         "DbrxConfig",
                                         "DeepseekV2Config",
                                         "DeepseekV3Config",
                                         "Glm4MoeLiteConfig",
                                         "YoutuConfig"};

TEST_CASE("config keys: a key left out reads as the library's default, or is refused by name") {
  // transformers fills a key a config.json leaves out with its config class's default: kiln must
  // build the same model, or refuse, naming the key; never quietly use another default.
  TempDir d;
  for (const char* cls : kLlmConfigClasses) {
    CAPTURE(std::string(cls));
    const json full = defaults_of(cls);
    const std::string want = config_fingerprint(cls, full, d);
    for (auto it = full.begin(); it != full.end(); ++it) {
      if (it->is_null()) continue;  // (absent and null read alike)
      const std::string key = it.key();
      CAPTURE(key);
      json j = full;
      j.erase(key);
      std::string got;
      try {
        got = config_fingerprint(cls, j, d);
      } catch (const CompileError& e) {
        CHECK_MESSAGE(std::string(e.what()).find(key) != std::string::npos, e.what());
        continue;
      }
      CHECK(got == want);
    }
  }
}

TEST_CASE("config keys: a null boolean is refused by name where the class refuses it, else reads as false") {
  // transformers 5 refuses a null for a key its class types bool (strict dataclass checks: the catalog's
  // null_refused): kiln refuses it too, naming the key, unless it does not read the key (the same model as without
  // it). A key typed Optional[bool] (DeepseekV3Config's norm_topk_prob, FalconConfig's switches) keeps a null as
  // None, which its models test with `if config.key:`: false, whatever the default.
  TempDir d;
  for (const char* cls : kLlmConfigClasses) {
    CAPTURE(std::string(cls));
    const json full = defaults_of(cls);
    const json refused = catalog(cls).at("null_refused");
    const std::string as_default = config_fingerprint(cls, full, d);
    for (auto it = full.begin(); it != full.end(); ++it) {
      if (!it->is_boolean()) continue;
      const std::string key = it.key();
      CAPTURE(key);
      const bool strict = std::find(refused.begin(), refused.end(), key) != refused.end();
      json null_j = full, false_j = full;
      null_j[key] = nullptr;
      false_j[key] = false;
      std::string got;
      try {
        got = config_fingerprint(cls, null_j, d);
      } catch (const CompileError& e) {
        if (strict) CHECK_MESSAGE(std::string(e.what()).find(key + " is null") != std::string::npos, e.what());
        else
          CHECK_THROWS_AS(config_fingerprint(cls, false_j, d), CompileError);  // (read as false, refused as false is)
        continue;
      }
      if (strict) {  // (read: refused above; not read: the model as without it, whatever its value)
        CHECK(got == as_default);
        json flipped = full;
        flipped[key] = !it->get<bool>();
        std::string other;
        try {
          other = config_fingerprint(cls, flipped, d);
        } catch (const CompileError& e) {
          FAIL_CHECK("kiln reads " << key << " (refuses " << flipped[key].dump() << ": " << std::string(e.what())
                                   << ") but not its null");
          continue;
        }
        CHECK_MESSAGE(other == as_default, "kiln reads " << key << " but not its null");
        continue;
      }
      try {
        CHECK(got == config_fingerprint(cls, false_j, d));
      } catch (const CompileError&) {
        // (false itself is refused: a null must not build a model then either)
        FAIL_CHECK("a null " << key << " built a model that false does not");
      }
    }
  }
}

// Qwen2VLConfig and Qwen2_5_VLConfig without text_config (the hub's files) move the text config class's keys from the
// top of the file into it: every key of the class read there builds the model text_config gives, nothing left over.
TEST_CASE("config keys: Qwen2-VL's flat layout (its text keys at the top) reads as its text_config") {
  TempDir d;
  for (const char* cls : {"Qwen2VLTextConfig", "Qwen2_5_VLTextConfig"}) {
    CAPTURE(std::string(cls));
    const json text = defaults_of(cls);
    json flat = text;
    flat.erase("model_type");
    flat["architectures"] = {image_text_of(cls)};
    std::vector<std::string> left = parse_llama_config(flat.dump(), d / "flat.json").unmodeled;
    std::string list;
    for (const std::string& k : left) list += k + "; ";
    CHECK_MESSAGE(left.empty(), "not modeled: " << list);
    CHECK(config_fingerprint("flat", flat, d) == config_fingerprint(cls, text, d));
    // (and a value there is read: not the default's model)
    flat["rms_norm_eps"] = 0.25;
    CHECK(config_fingerprint("flat", flat, d) != config_fingerprint(cls, text, d));
  }
}
