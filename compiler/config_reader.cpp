#include "compiler/config_reader.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "compiler/error.h"
#include "kernels/moe.h"

namespace kiln {

using json = nlohmann::json;

void ConfigReader::fail(const std::string& key, const std::string& msg) const {
  for (const auto& [k, as_written] : spelled_)
    if (k == key) throw CompileError(path_ + ": " + as_written + " " + msg);
  throw CompileError(path_ + ": " + key + " " + msg);
}

void ConfigReader::refuse_quantized() const {
  if (!has("quantization_config")) return;
  const json& q = j_["quantization_config"];
  std::string method = "(none given)";
  if (q.is_object() && q.contains("quant_method"))
    method =
        q["quant_method"].is_string() ? "\"" + q["quant_method"].get<std::string>() + "\"" : q["quant_method"].dump();
  fail("quantization_config",
       "has quant_method " + method +
           ": this is a quantized checkpoint kiln does not read (it reads f32, bf16 and f16 "
           "weights, compressed-tensors and GPTQ int8 and int4 ones, block-scaled FP8 ones as DeepSeek "
           "ships them, and GPT-OSS's MXFP4 experts); use the model's unquantized release");
}

int64_t ConfigReader::pos_int(const json& o, const char* k, bool required, int64_t def) const {
  if (!has(o, k)) {
    if (required) fail(k, "is missing");
    return def;
  }
  if (!o[k].is_number_integer() || o[k].get<int64_t>() <= 0) fail(k, "must be a positive integer");
  if (o[k].get<int64_t>() > (int64_t(1) << 31)) fail(k, "is more than 2^31, the most kiln reads");
  return o[k].get<int64_t>();
}

int64_t ConfigReader::aliased_count(const char* key, const char* alias, int64_t def) const {
  const int64_t n = count(key, count(alias, def));
  if (has(key) && has(alias) && count(alias, 0) != n)
    fail(alias, std::string("disagrees with ") + key + ", its other spelling");
  return n;
}

bool ConfigReader::mlp_layer_types(int64_t layers, std::vector<bool>* sparse, const char* unchecked_by) const {
  if (!has("mlp_layer_types")) return false;
  const json& m = j_["mlp_layer_types"];
  if (!m.is_array()) fail("mlp_layer_types", "must be a list");
  const std::string cls = unchecked_by ? std::string("transformers' ") + unchecked_by : "";
  if (int64_t(m.size()) != layers)
    fail("mlp_layer_types", "must name one type per layer (" +
                                (unchecked_by ? cls + " reads the first num_hidden_layers entries of a longer list "
                                                      "and fails on a shorter one: kiln refuses both"
                                              : std::string("transformers refuses the file otherwise")) +
                                ")");
  sparse->resize(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] != "dense" && m[i] != "sparse")
      fail("mlp_layer_types", "names a type other than \"dense\" and \"sparse\" (" + m[i].dump() + ")" +
                                  (unchecked_by ? ", which " + cls + " builds as a dense layer: kiln refuses it" : ""));
    (*sparse)[i] = m[i] == "sparse";
  }
  return true;
}

void ConfigReader::full_rotary_only(const std::string& model) const {
  const char* rk = rope_key();
  const char* key = "partial_rotary_factor";
  const json* f = has(key) ? &j_[key] : nullptr;
  const bool in_object = rk && j_[rk].is_object() && j_[rk].contains(key);
  if (in_object) f = &j_[rk][key];
  if (f && !(f->is_number() && f->get<double>() == 1.0))
    fail(in_object ? rk : key, std::string(in_object ? "has partial_rotary_factor " : "") + "= " + f->dump() +
                                   ", which transformers' " + model +
                                   " cannot run (its RoPE would cover only that fraction of the dimensions its "
                                   "attention rotates): only 1 is read");
}

int64_t ConfigReader::count(const char* k, int64_t def) const {
  if (!has(k)) return def;
  if (!j_[k].is_number_integer() || j_[k].get<int64_t>() < 0) fail(k, "must be a non-negative integer");
  if (j_[k].get<int64_t>() > (int64_t(1) << 31)) fail(k, "is more than 2^31, the most kiln reads");
  return j_[k].get<int64_t>();
}

double ConfigReader::num(const json& o, const char* k, double def) const {
  if (!has(o, k)) return def;
  if (!o[k].is_number()) fail(k, "must be a number");
  const double v = o[k].get<double>();
  if (!std::isfinite(v)) fail(k, "must be finite");
  return v;
}

void ConfigReader::only(const char* k, const json& allowed) const {
  if (!has(k)) return;
  if (allowed.is_array()) {
    for (const json& a : allowed)
      if (j_[k] == a) return;
  } else if (j_[k] == allowed) {
    return;
  }
  fail(k, "= " + j_[k].dump() + " is not supported (kiln builds " + allowed.dump() + ")");
}

void ConfigReader::hardwired(const char* k, const json& builds) const {
  if (!has(k) || j_[k] == builds) return;
  fail(k, "= " + j_[k].dump() + ", which transformers' " + architecture() + " never reads (it builds " + builds.dump() +
              "); kiln refuses rather than guess what the checkpoint means");
}

namespace {

// "key = value", the value cut at a character boundary (the text may end up in the plan's notes).
std::string key_value(const std::string& key, const nlohmann::json& value) {
  std::string v = value.dump();
  if (v.size() > 60) {
    size_t cut = 57;
    while (cut > 0 && (uint8_t(v[cut]) & 0xC0) == 0x80) --cut;
    v = v.substr(0, cut) + "...";
  }
  return key + " = " + v;
}

}  // namespace

std::vector<std::string> ConfigReader::unmodeled(std::initializer_list<const char*> irrelevant) const {
  std::vector<std::string> out;
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (it->is_null() || read_.count(it.key())) continue;
    bool known = false;
    for (const char* k : irrelevant) known = known || it.key() == k;
    if (!known) out.push_back(key_value(it.key(), *it));
  }
  out.insert(out.end(), nested_unmodeled_.begin(), nested_unmodeled_.end());
  out.insert(out.end(), quant_unmodeled_.begin(), quant_unmodeled_.end());
  return out;
}

bool ConfigReader::boolean(const char* k, bool def, bool nullable) const {
  if (strict_booleans_ && !nullable) refuse_null_switch(k);
  if (!has(k)) return j_.contains(k) ? false : def;  // null: Python's None, which reads as false
  if (!j_[k].is_boolean()) fail(k, "must be true or false");
  return j_[k].get<bool>();
}

std::string ConfigReader::str(const char* k, const std::string& def) const {
  if (!has(k)) return def;
  if (!j_[k].is_string()) fail(k, "must be a string");
  return j_[k].get<std::string>();
}

std::string ConfigReader::architecture() const {
  if (has("architectures") && j_["architectures"].is_array() && !j_["architectures"].empty() &&
      j_["architectures"][0].is_string())
    return j_["architectures"][0].get<std::string>();
  return has("model_type") && j_["model_type"].is_string() ? j_["model_type"].get<std::string>() : "";
}

std::string ConfigReader::model_architecture() const {
  std::string a = architecture();
  if (a.empty()) fail("architectures", "and model_type are both missing (or not strings): the config names no model");
  // The class name of a family's own (remote) code, which transformers' AutoModelForCausalLM reads by model_type as
  // its class: mosaicml's MPTForCausalLM.
  if (a == "MPTForCausalLM" && has("model_type") && j_["model_type"] == "mpt") a = "MptForCausalLM";
  // (Phi-3.5-MoE's hub files name its remote PhiMoEForCausalLM; transformers' class is PhimoeForCausalLM)
  if (a == "PhiMoEForCausalLM" && has("model_type") && j_["model_type"] == "phimoe") a = "PhimoeForCausalLM";
  // EXAONE 3.0 / 3.5: the hub's remote ExaoneForCausalLM, which transformers 5 builds (and saves) as LlamaForCausalLM
  // with model_type exaone; kiln's name for both is ExaoneForCausalLM.
  if (a == "LlamaForCausalLM" && has("model_type") && j_["model_type"] == "exaone") a = "ExaoneForCausalLM";
  // (InternLM3 likewise: the hub's remote InternLM3ForCausalLM, LlamaForCausalLM with model_type internlm3)
  if (a == "LlamaForCausalLM" && has("model_type") && j_["model_type"] == "internlm3") a = "InternLM3ForCausalLM";
  if (a == "LlamaForCausalLM" && has("model_type") && j_["model_type"] == "iquestcoder") a = "IQuestCoderForCausalLM";
  // (K-EXAONE's hub files name the class ExaoneMoEForCausalLM, transformers' ExaoneMoeForCausalLM: one class, whose
  // model_type is checked below)
  if (a == "ExaoneMoEForCausalLM") a = "ExaoneMoeForCausalLM";
  // transformers' AutoModelForCausalLM builds the class of model_type, whatever architectures says.
  static const std::pair<const char*, const char*> kTypes[] = {{"LlamaForCausalLM", "llama"},
                                                               {"MistralForCausalLM", "mistral"},
                                                               {"MixtralForCausalLM", "mixtral"},
                                                               {"Qwen2ForCausalLM", "qwen2"},
                                                               {"Qwen3ForCausalLM", "qwen3"},
                                                               {"Qwen3MoeForCausalLM", "qwen3_moe"},
                                                               {"Qwen2MoeForCausalLM", "qwen2_moe"},
                                                               {"Olmo3ForCausalLM", "olmo3"},
                                                               {"GlmForCausalLM", "glm"},
                                                               {"Ministral3ForCausalLM", "ministral3"},
                                                               {"OlmoForCausalLM", "olmo"},
                                                               {"Glm4ForCausalLM", "glm4"},
                                                               {"Exaone4ForCausalLM", "exaone4"},
                                                               {"ExaoneForCausalLM", "exaone"},
                                                               {"ExaoneMoeForCausalLM", "exaone_moe"},
                                                               {"InternLM3ForCausalLM", "internlm3"},
                                                               {"IQuestCoderForCausalLM", "iquestcoder"},
                                                               {"SeedOssForCausalLM", "seed_oss"},
                                                               {"GptOssForCausalLM", "gpt_oss"},
                                                               {"HeliumForCausalLM", "helium"},
                                                               {"GraniteMoeSharedForCausalLM", "granitemoeshared"},
                                                               {"ArceeForCausalLM", "arcee"},
                                                               {"ApertusForCausalLM", "apertus"},
                                                               {"PhimoeForCausalLM", "phimoe"},
                                                               {"Jais2ForCausalLM", "jais2"},
                                                               {"Starcoder2ForCausalLM", "starcoder2"},
                                                               {"StableLmForCausalLM", "stablelm"},
                                                               {"OlmoeForCausalLM", "olmoe"},
                                                               {"NemotronForCausalLM", "nemotron"},
                                                               {"GPTNeoXForCausalLM", "gpt_neox"},
                                                               {"Glm4MoeForCausalLM", "glm4_moe"},
                                                               {"FalconForCausalLM", "falcon"},
                                                               {"GPTJForCausalLM", "gptj"},
                                                               {"GPT2LMHeadModel", "gpt2"},
                                                               {"OPTForCausalLM", "opt"},
                                                               {"GPTNeoForCausalLM", "gpt_neo"},
                                                               {"GPTBigCodeForCausalLM", "gpt_bigcode"},
                                                               {"BloomForCausalLM", "bloom"},
                                                               {"MptForCausalLM", "mpt"},
                                                               {"DbrxForCausalLM", "dbrx"},
                                                               {"CohereForCausalLM", "cohere"},
                                                               {"Cohere2ForCausalLM", "cohere2"},
                                                               {"Phi3ForCausalLM", "phi3"},
                                                               {"Gemma3ForCausalLM", "gemma3_text"},
                                                               {"Gemma3ForConditionalGeneration", "gemma3"},
                                                               {"Mistral3ForConditionalGeneration", "mistral3"},
                                                               {"Qwen2VLForConditionalGeneration", "qwen2_vl"},
                                                               {"Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl"},
                                                               {"Qwen3VLForConditionalGeneration", "qwen3_vl"},
                                                               {"Qwen3VLMoeForConditionalGeneration", "qwen3_vl_moe"},
                                                               {"Gemma2ForCausalLM", "gemma2"},
                                                               {"GemmaForCausalLM", "gemma"},
                                                               {"GraniteForCausalLM", "granite"},
                                                               {"SmolLM3ForCausalLM", "smollm3"},
                                                               {"PhiForCausalLM", "phi"},
                                                               {"Ernie4_5ForCausalLM", "ernie4_5"},
                                                               {"Ernie4_5_MoeForCausalLM", "ernie4_5_moe"},
                                                               {"HunYuanDenseV1ForCausalLM", "hunyuan_v1_dense"},
                                                               {"HunYuanMoEV1ForCausalLM", "hunyuan_v1_moe"},
                                                               {"Dots1ForCausalLM", "dots1"},
                                                               {"Olmo2ForCausalLM", "olmo2"},
                                                               {"MinistralForCausalLM", "ministral"},
                                                               {"GraniteMoeForCausalLM", "granitemoe"},
                                                               {"DeepseekV2ForCausalLM", "deepseek_v2"},
                                                               {"DeepseekV3ForCausalLM", "deepseek_v3"},
                                                               {"Glm4MoeLiteForCausalLM", "glm4_moe_lite"},
                                                               {"YoutuForCausalLM", "youtu"},
                                                               {"SolarOpenForCausalLM", "solar_open"},
                                                               {"MiniMaxM2ForCausalLM", "minimax_m2"},
                                                               {"HyperCLOVAXForCausalLM", "hyperclovax"},
                                                               {"NanoChatForCausalLM", "nanochat"},
                                                               {"VaultGemmaForCausalLM", "vaultgemma"},
                                                               {"CwmForCausalLM", "cwm"},
                                                               {"FlexOlmoForCausalLM", "flex_olmo"}};
  if (has("model_type") && j_["model_type"].is_string())
    for (const auto& [arch, type] : kTypes)
      if (a == arch && j_["model_type"].get<std::string>() != type)
        fail("model_type", "'" + j_["model_type"].get<std::string>() + "' is not " + arch + "'s '" + type +
                               "' (transformers' AutoModelForCausalLM builds the model_type's class, kiln the "
                               "architecture's: make them agree)");
  return a;
}

bool ConfigReader::dtype(DType* out) const {
  // transformers 5 writes dtype, 4 torch_dtype; some writers (AutoRound) both, which must then agree.
  bool found = false;
  for (const char* k : {"dtype", "torch_dtype"}) {
    if (!has(k)) continue;
    const std::string d = str(k, "");
    DType t;
    if (d == "float32") t = DType::F32;
    else if (d == "bfloat16") t = DType::BF16;
    else if (d == "float16") t = DType::F16;
    else fail(k, "'" + d + "' is not supported (float32, bfloat16, float16)");
    if (found && t != *out) fail(k, "'" + d + "' differs from dtype " + j_["dtype"].dump());
    *out = t;
    found = true;
  }
  return found;
}

int64_t ConfigReader::experts_per_token(bool required, int64_t def) const {
  const int64_t k = pos_int("num_experts_per_tok", required, def);
  if (k > kMaxMoeTopK)
    fail("num_experts_per_tok", "is more than " + std::to_string(kMaxMoeTopK) + " (the most kiln routes a token to)");
  return k;
}

const char* ConfigReader::rope_key() const {
  const bool params = has("rope_parameters");  // (both read: transformers' choice is made here)
  if (has("rope_scaling") && !(j_["rope_scaling"].is_object() && j_["rope_scaling"].empty()) &&
      !(j_["rope_scaling"].is_boolean() && !j_["rope_scaling"].get<bool>()))
    return "rope_scaling";
  return params ? "rope_parameters" : nullptr;
}

RopeConfig ConfigReader::rope(std::initializer_list<const char*> allowed, double default_theta, bool partial_rotary,
                              bool top_level_theta) const {
  RopeConfig r;
  nested_unmodeled_.clear();
  const char* key = rope_key();
  const json* params = key ? &j_[key] : nullptr;
  r.theta = default_theta;
  if (top_level_theta) {
    refuse_null_base("rope_theta", params);
    r.theta = num("rope_theta", default_theta);
  }
  if (params) rope_object(*params, key, allowed, &r, partial_rotary, true);
  if (r.theta <= 0) fail("rope_theta", "must be positive");
  return r;
}

int64_t ConfigReader::top_level_original_positions(int64_t object, const std::string& type) const {
  if (!j_.contains("original_max_position_embeddings")) return object;
  if (j_["original_max_position_embeddings"].is_null())
    fail("original_max_position_embeddings", "is null, with which transformers cannot compute its " + type + " RoPE");
  return pos_int("original_max_position_embeddings", true);
}

RopeConfig ConfigReader::rope_at(const json& params, const std::string& key, std::initializer_list<const char*> allowed,
                                 double theta) const {
  RopeConfig r;
  r.theta = theta;
  rope_object(params, key, allowed, &r);
  if (r.theta <= 0) fail(key, "rope_theta must be positive");
  // transformers' yarn reads truncate from rope_parameters itself, never from a layer type's
  // entry: there it changes nothing in transformers, and kiln would apply it.
  if (r.type == "yarn" && !r.truncate)
    fail(key,
         "has truncate false, which transformers does not apply to a layer type's yarn (it reads truncate "
         "only at the top of rope_parameters): remove it to get transformers' model");
  return r;
}

void ConfigReader::rope_object(const json& params, const std::string& key_name,
                               std::initializer_list<const char*> allowed, RopeConfig* out, bool partial_rotary,
                               bool top_level_positions) const {
  RopeConfig& r = *out;
  const std::string& key = key_name;
  if (!params.is_object()) fail(key, "must be an object");
  const json& p = params;
  for (const char* k : {"rope_theta", "rope_type", "type", "partial_rotary_factor"})  // (transformers' RoPE init fails)
    if (p.contains(k) && p[k].is_null())
      fail(key, std::string(k) + " is null, with which transformers cannot compute its RoPE");
  if (p.contains("rope_theta")) r.theta = num(p, "rope_theta", r.theta);
  std::string type = "default";
  if (has(p, "rope_type")) type = p["rope_type"].is_string() ? p["rope_type"].get<std::string>() : "?";
  else if (has(p, "type")) type = p["type"].is_string() ? p["type"].get<std::string>() : "?";
  // (an entry "old=new" reads type old as new, as the config class renames it)
  std::string list, reads_as;
  for (const char* a : allowed) {
    const std::string entry = a, name = entry.substr(0, entry.find('='));
    if (type == name) reads_as = entry.find('=') == std::string::npos ? name : entry.substr(entry.find('=') + 1);
    list += (list.empty() ? "" : ", ") + name;
  }
  if (reads_as.empty())
    fail(key, "has rope type '" + type + "', which kiln does not support here (supported: " + list + ")");
  const std::string as_read =
      reads_as == type ? "" : " (the config class reads rope type " + type + " as " + reads_as + ")";
  type = reads_as;
  r.type = type;
  // transformers' standardize_rope_params: an absent original_max_position_embeddings is the model's
  // max_position_embeddings; for the model's llama3 and yarn (not a layer type's) a config-level one overrides the
  // object's, as the RoPE init computes them (checked against transformers 5.24's LlamaConfig: its inv_freq moves).
  // LongRoPE reads its own below (Phi3Config).
  std::string positions_source;  // (which of these gave it, for errors)
  auto original_positions = [&] {
    positions_source = "original_max_position_embeddings in " + key;
    if (top_level_positions && j_.contains("original_max_position_embeddings")) {
      positions_source = "the top-level original_max_position_embeddings";
      has(p, "original_max_position_embeddings");  // (its copy, overridden)
      return top_level_original_positions(0, type);
    }
    if (has(p, "original_max_position_embeddings")) return pos_int(p, "original_max_position_embeddings", true);
    if (max_positions_ <= 0) fail(key, "needs 'original_max_position_embeddings' for rope type " + type);
    positions_source = "max_position_embeddings (" + key + " gives no original_max_position_embeddings)";
    return max_positions_;
  };

  // yarn's factor null: max_position_embeddings / original_max_position_embeddings, as transformers derives it
  const bool yarn_derived_factor = type == "yarn" && p.contains("factor") && p["factor"].is_null();
  if ((type == "linear" || type == "llama3" || type == "yarn") && !yarn_derived_factor) {
    if (!has(p, "factor")) fail(key, "needs 'factor' for rope type " + type);
    r.factor = num(p, "factor", 1.0);
    if (r.factor <= 0) fail(key, "factor must be positive");
  }
  if (type == "llama3") {
    for (const char* k : {"low_freq_factor", "high_freq_factor"})
      if (!has(p, k)) fail(key, std::string("needs '") + k + "' for rope type llama3");
    r.low_freq_factor = num(p, "low_freq_factor", 1.0);
    r.high_freq_factor = num(p, "high_freq_factor", 4.0);
    r.original_max_position_embeddings = original_positions();
    if (r.low_freq_factor <= 0 || r.high_freq_factor <= r.low_freq_factor)
      fail(key, "needs 0 < low_freq_factor < high_freq_factor");
  }
  if (type == "longrope") {
    for (const char* k : {"short_factor", "long_factor"}) {
      if (!has(p, k) || !p[k].is_array())
        fail(key, std::string("needs the list '") + k + "' for rope type longrope" + as_read);
      std::vector<double>& out = std::string(k) == "short_factor" ? r.short_factor : r.long_factor;
      for (const json& x : p[k]) {
        if (!x.is_number() || !(x.get<double>() > 0)) fail(key, std::string(k) + " must hold positive numbers");
        out.push_back(x.get<double>());
      }
    }
    // original_max_position_embeddings: Phi3Config always has the attribute (default 4096; a null refused with the
    // file, where llama_config.cpp reads Phi-3), and transformers' standardize_rope_params lets it override the
    // object's copy.
    // (PhimoeConfig's: the object's, else max_position_embeddings, as standardize_rope_params fills it in)
    if (phimoe_rope_ && p.contains("original_max_position_embeddings") &&
        p["original_max_position_embeddings"].is_null())
      fail(key,
           "original_max_position_embeddings is null, with which transformers cannot compute Phimoe's LongRoPE: "
           "give its value or leave it out");
    if (phimoe_rope_)
      r.original_max_position_embeddings = has(p, "original_max_position_embeddings")
                                               ? pos_int(p, "original_max_position_embeddings", true)
                                               : max_positions_;
    else
      r.original_max_position_embeddings =
          has("original_max_position_embeddings") ? pos_int("original_max_position_embeddings", true) : 4096;
    has(p, "original_max_position_embeddings");  // (its copy, overridden)
    if (!has(p, "factor") && max_positions_ <= 0) fail(key, "needs 'factor' (or max_position_embeddings)");
    r.factor =
        has(p, "factor") ? num(p, "factor", 1.0) : double(max_positions_) / double(r.original_max_position_embeddings);
  }
  // (HunYuan's config class reads "dynamic" with a truthy alpha as ntk_alpha; without one, as dynamic NTK)
  // (HunYuanDenseV1RotaryEmbedding tests `rope_parameters.get("alpha")`: absent or falsy in Python's sense)
  const bool alpha_read = type == "ntk_alpha";
  if (alpha_read && (!p.contains("alpha") || python_falsy(p["alpha"]))) r.type = type = "dynamic";
  if (type == "dynamic") {  // (transformers' KeyError without a factor; a null or a string fails its RoPE init)
    if (!has(p, "factor") || !p["factor"].is_number())
      fail(key, "needs a number 'factor' for rope type dynamic (transformers' dynamic NTK RoPE)");
    r.factor = p["factor"].get<double>();
  }
  if (type == "ntk_alpha") {
    r.alpha = num(p, "alpha", 0.0);
    if (!(r.alpha > 0) || !std::isfinite(r.alpha)) fail(key, "alpha must be a positive number");
    // (transformers validates that a dynamic RoPE has a factor key, which the fixed NTK base never reads: it refuses
    // an object without one, null or not)
    if (!p.contains("factor")) fail(key, "needs 'factor' for rope type dynamic (transformers refuses it without one)");
  }
  if (phimoe_rope_ &&
      type != "default") {  // (PhimoeConfig.validate_rope: numbers; its RoPE never reads attention_factor)
    for (const char* k : {"short_mscale", "long_mscale"})
      if (!p.contains(k) || !p[k].is_number() || p[k].is_boolean())
        fail(key, std::string("needs a number '") + k + "' (PhimoeConfig refuses the file without one)");
    if (has(p, "attention_factor"))
      fail(key,
           "attention_factor is a key Phimoe's rotary embedding never reads (it multiplies by short_mscale): "
           "remove it");
    r.attention_factor = num(p, "short_mscale", 1.0);
    r.long_mscale = num(p, "long_mscale", 1.0);
    if (r.attention_factor < 0 || r.long_mscale < 0) fail(key, "short_mscale and long_mscale must not be negative");
  } else if (type == "longrope" || type == "yarn") {  // (cos and sin times it; < 0: derived, see rope_attention_factor)
    r.attention_factor = num(p, "attention_factor", -1.0);
    // (negative: transformers warns and multiplies cos and sin by it; kiln refuses rather than guess)
    if (has(p, "attention_factor") && r.attention_factor < 0) fail(key, "attention_factor must not be negative");
  }
  if (type == "yarn") {
    r.original_max_position_embeddings = original_positions();
    if (yarn_derived_factor) {
      if (max_positions_ <= 0) fail(key, "factor is null and max_position_embeddings unknown");
      r.factor = double(max_positions_) / double(r.original_max_position_embeddings);
    }
    r.beta_fast = num(p, "beta_fast", 32.0);
    r.beta_slow = num(p, "beta_slow", 1.0);
    r.mscale = num(p, "mscale", 0.0);
    r.mscale_all_dim = num(p, "mscale_all_dim", 0.0);
    if (has(p, "truncate")) {
      if (!p["truncate"].is_boolean()) fail(key, "truncate must be true or false");
      r.truncate = p["truncate"].get<bool>();
    }
    if (r.beta_fast == 0) r.beta_fast = 32;  // transformers: `or 32`
    if (r.beta_slow == 0) r.beta_slow = 1;
  }
  if (llama4_scaling_) {  // (a missing key: transformers' attention multiplies by or divides by None)
    // (the bound: the object's original_max_position_embeddings as standardize_rope_params leaves it, which fills
    // it in for llama3 and yarn only)
    const bool filled = type == "llama3" || type == "yarn";
    for (const char* k : {"llama_4_scaling_beta", "original_max_position_embeddings"})
      if (!has(p, k) && !(filled && std::string(k) == "original_max_position_embeddings"))
        fail(key, std::string("needs '") + k + "', which Ministral3's attention reads");
    r.llama4_scaling_beta = num(p, "llama_4_scaling_beta", 0.0);
    r.llama4_scaling_positions =
        filled ? r.original_max_position_embeddings : pos_int(p, "original_max_position_embeddings", true);
    r.llama4_scaling_source = filled ? positions_source : "original_max_position_embeddings in " + key;
  }
  // Strict configs inside the object too: the keys above (each read for the rope types that
  // use it, and ignored by transformers for the others), a rotary fraction of 1, and nothing
  // else (e.g. LongRoPE's factors, M-RoPE sections, a partial rotary fraction).
  static const char* const kRopeKeys[] = {"rope_type",
                                          "type",
                                          "rope_theta",
                                          "factor",
                                          "low_freq_factor",
                                          "high_freq_factor",
                                          "original_max_position_embeddings",
                                          "beta_fast",
                                          "beta_slow",
                                          "mscale",
                                          "mscale_all_dim",
                                          "attention_factor",
                                          "truncate",
                                          "short_factor",
                                          "long_factor"};
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (it->is_null() || std::find(std::begin(kRopeKeys), std::end(kRopeKeys), it.key()) != std::end(kRopeKeys))
      continue;
    if (it.key() == "partial_rotary_factor" && (partial_rotary || (it->is_number() && it->get<double>() == 1.0)))
      continue;
    // (Ministral3Config's own default object also carries max_position_embeddings, which transformers' RoPE never
    // reads there)
    if ((it.key() == "llama_4_scaling_beta" || it.key() == "max_position_embeddings") && llama4_scaling_) continue;
    if ((it.key() == "mrope_section" && mrope_ > 0) || (it.key() == "mrope_interleaved" && mrope_ == 2)) continue;
    if (it.key() == "alpha" && alpha_read) continue;
    if ((it.key() == "short_mscale" || it.key() == "long_mscale") && phimoe_rope_ && type != "default") continue;
    nested_unmodeled_.push_back(key_value(key + "." + it.key(), *it));
  }
}

bool python_falsy(const nlohmann::json& v) {
  return v.is_null() || v == false || (v.is_number() && v.get<double>() == 0) || v == "" ||
         ((v.is_array() || v.is_object()) && v.empty());
}

double yarn_get_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

double rope_attention_factor(const RopeConfig& r) {
  if (r.type == "longrope") {  // transformers' _compute_longrope_parameters
    if (r.attention_factor >= 0) return r.attention_factor;
    if (r.factor <= 1.0) return 1.0;
    return std::sqrt(1 + std::log(r.factor) / std::log(double(r.original_max_position_embeddings)));
  }
  if (r.type != "yarn") return 1.0;
  if (r.attention_factor >= 0) return r.attention_factor;
  if (r.mscale != 0 && r.mscale_all_dim != 0)
    return yarn_get_mscale(r.factor, r.mscale) / yarn_get_mscale(r.factor, r.mscale_all_dim);
  return yarn_get_mscale(r.factor, 1.0);
}

std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const float base = float(rope.theta);
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in f32.
    const float e = float(2 * i) / float(head_dim);
    inv[size_t(i)] = 1.0f / std::pow(base, e);
  }
  if (rope.type == "longrope") {  // HF: 1.0 / (short_factor · base ** (arange(0, dim, 2) / dim)), in f32
    for (int64_t i = 0; i < half; ++i) {
      const float e = float(2 * i) / float(head_dim);
      inv[size_t(i)] = 1.0f / (float(rope.short_factor[size_t(i)]) * std::pow(base, e));
    }
  } else if (rope.type == "linear") {
    for (float& f : inv) f = f / float(rope.factor);
  } else if (rope.type == "llama3") {
    const float factor = float(rope.factor), lo = float(rope.low_freq_factor), hi = float(rope.high_freq_factor);
    const float old_len = float(rope.original_max_position_embeddings);
    const float low_wavelen = old_len / lo, high_wavelen = old_len / hi;
    for (float& f : inv) {
      const float wavelen = 2.0f * float(M_PI) / f;
      const float scaled = wavelen > low_wavelen ? f / factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const float smooth = (old_len / wavelen - lo) / (hi - lo);
        f = (1.0f - smooth) * scaled / factor + smooth * scaled;
      } else {
        f = scaled;
      }
    }
  } else if (rope.type == "yarn") {
    // transformers' _compute_yarn_parameters: blend interpolated and extrapolated frequencies
    // with a linear ramp between the correction dims of beta_fast and beta_slow.
    const double dim = double(head_dim), orig = double(rope.original_max_position_embeddings), base_d = rope.theta;
    auto correction_dim = [&](double r) { return dim * std::log(orig / (r * 2 * M_PI)) / (2 * std::log(base_d)); };
    double low = correction_dim(rope.beta_fast), high = correction_dim(rope.beta_slow);
    if (rope.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, dim - 1);
    if (low == high) high += 0.001;
    const float factor = float(rope.factor);
    for (int64_t i = 0; i < half; ++i) {
      const float pos_freq = std::pow(base, float(2 * i) / float(head_dim));
      const float extra = 1.0f / pos_freq, inter = 1.0f / (factor * pos_freq);
      const float ramp = std::clamp((float(i) - float(low)) / (float(high) - float(low)), 0.0f, 1.0f);
      const float ef = 1.0f - ramp;
      inv[size_t(i)] = inter * (1.0f - ef) + extra * ef;
    }
  }
  // (a base or factor past f32's range: transformers' frequencies are inf or NaN too, and so are its logits)
  for (float f : inv)
    if (!std::isfinite(f))
      throw CompileError("the RoPE (type " + rope.type + ", rope_theta " + nlohmann::json(rope.theta).dump() +
                         ") gives frequencies that are not finite in f32, as transformers computes them (its logits "
                         "are then NaN): kiln refuses it");
  return inv;
}

std::string ConfigReader::prequantized(int* bits_out, int64_t* group_out, Fp8Layout* fp8_out,
                                       bool* asymmetric_out) const {
  if (!has("quantization_config")) return "";
  const json& q = j_["quantization_config"];
  if (!q.is_object() || !q.contains("quant_method") || q["quant_method"] != "compressed-tensors") refuse_quantized();
  read_.insert("quantization_config");
  auto refuse = [&](const std::string& what) {
    fail("quantization_config",
         "has quant_method \"compressed-tensors\" with " + what +
             ": kiln does not read this quantized checkpoint (it reads symmetric weights without activation "
             "quantization: pack-quantized 8-bit per channel, llm-compressor's W8A16, and 4-bit in groups of "
             "a multiple of 32 values, its W4A16, also asymmetric; float-quantized 8-bit float (e4m3) per "
             "channel, per tensor or in blocks)");
  };
  auto empty = [&](const char* k) { return !q.contains(k) || q[k].is_null() || (q[k].is_object() && q[k].empty()); };
  // Keys that do not change what the stored weights mean (or are checked below); any other is
  // refused (or, with --allow-unknown-config, noted) like an unmodeled config key.
  auto unknown = [&](const json& o, const std::string& path, std::initializer_list<const char*> known) {
    for (auto it = o.begin(); it != o.end(); ++it)
      if (std::find_if(known.begin(), known.end(), [&](const char* k) { return it.key() == k; }) == known.end())
        quant_unmodeled_.push_back(key_value(path + it.key(), *it));
  };
  unknown(q, "quantization_config.",
          {"quant_method", "format", "config_groups", "ignore", "quantization_status", "sparsity_config",
           "transform_config", "kv_cache_scheme", "moe_sparsity_config", "global_compression_ratio", "version"});
  const json fmt = q.value("format", json());
  // pack-quantized: int weights; float-quantized (or naive-quantized, which stores them alike): e4m3 ones
  const bool float_fmt = fmt == "float-quantized" || fmt == "naive-quantized";
  if (fmt != "pack-quantized" && !(float_fmt && fp8_out)) refuse("format " + fmt.dump());
  if (q.contains("quantization_status") && q["quantization_status"] != "compressed")
    refuse("quantization_status " + q["quantization_status"].dump());
  for (const char* k : {"sparsity_config", "transform_config", "kv_cache_scheme", "moe_sparsity_config"})
    if (!empty(k)) refuse(std::string(k) + " " + q[k].dump());
  if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].empty())
    refuse("no config_groups");
  int bits = 0;  // every config group's, which must agree
  int64_t group = 0;
  Fp8Layout fp8;
  int asymmetric = -1;  // every config group's, which must agree (-1: none seen yet)
  for (auto it = q["config_groups"].begin(); it != q["config_groups"].end(); ++it) {
    const json& g = *it;
    const std::string name = "config group '" + it.key() + "'";
    if (!g.is_object()) refuse(name + " that is not an object");
    if (g.contains("format") && !g["format"].is_null() && g["format"] != fmt)
      refuse(name + " of format " + g["format"].dump());
    for (const char* k : {"input_activations", "output_activations"})
      if (g.contains(k) && !g[k].is_null()) refuse(name + " quantizing " + std::string(k) + " " + g[k].dump());
    if (!g.contains("weights") || !g["weights"].is_object()) refuse(name + " without weights");
    const json& w = g["weights"];
    const std::string gpath = "quantization_config.config_groups." + it.key() + ".";
    unknown(g, gpath, {"targets", "weights", "input_activations", "output_activations", "format"});
    unknown(w, gpath + "weights.",
            {"num_bits", "type", "symmetric", "strategy", "group_size", "dynamic", "block_structure", "actorder",
             "observer", "observer_kwargs", "scale_dtype", "zp_dtype"});
    // compressed-tensors' defaults where a key is absent: 8 bits, int, symmetric
    const json nb = w.value("num_bits", json(8));
    if (nb != 8 && nb != 4) refuse(name + " of num_bits " + nb.dump());
    const int b = nb.get<int>();
    const json type = w.value("type", json("int"));
    if (type != (float_fmt ? "float" : "int")) refuse(name + " of type " + type.dump() + " in format " + fmt.dump());
    const bool asym = w.value("symmetric", json(true)) != true;
    if (asym && !(asymmetric_out && !float_fmt && b == 4 && w.value("strategy", json()) == "group"))
      refuse(name + " that is not symmetric");
    if (asymmetric >= 0 && asymmetric != int(asym)) refuse("config groups both symmetric and asymmetric");
    asymmetric = int(asym);
    const json strategy = w.value("strategy", json());
    const bool blocks = float_fmt && strategy == "block";
    if (!blocks && w.contains("block_structure") && !w["block_structure"].is_null() && w["block_structure"] != false)
      refuse(name + " with block_structure " + w["block_structure"].dump());
    // GPTQ's activation ordering: "static" and "weight" (llm-compressor's GPTQ default) only chose the
    // order in which columns were quantized, and the weights are stored as any others; "group" stores
    // a g_idx that permutes the groups, which kiln does not read.
    if (w.contains("actorder") && !w["actorder"].is_null() && w["actorder"] != false && w["actorder"] != "static" &&
        w["actorder"] != "weight")
      refuse(name + " with actorder " + w["actorder"].dump() + " (its g_idx permutes the groups)");
    int64_t gs = 0;
    Fp8Layout f;
    if (float_fmt) {  // e4m3: a scale per row, per tensor, or per block
      if (b != 8) refuse(name + " of " + std::to_string(b) + "-bit floats");
      if (w.contains("group_size") && !w["group_size"].is_null())
        refuse(name + " of floats and group_size " + w["group_size"].dump());
      f.on = true;
      if (strategy == "channel") f.block_rows = 1;
      else if (blocks) {
        const json bs = w.value("block_structure", json());
        if (!bs.is_array() || bs.size() != 2 || !bs[0].is_number_integer() || !bs[1].is_number_integer() ||
            bs[0].get<int64_t>() <= 0 || bs[1].get<int64_t>() <= 0 || bs[0].get<int64_t>() > 65536 ||
            bs[1].get<int64_t>() > 65536)
          refuse(name + " with block_structure " + bs.dump() + " (expected two positive integers)");
        f.block_rows = bs[0].get<int64_t>();
        f.block_cols = bs[1].get<int64_t>();
      } else if (strategy != "tensor") refuse(name + " of floats and strategy " + strategy.dump());
    } else if (b == 8) {  // 8-bit: one scale per row
      if (strategy != "channel") refuse(name + " of 8 bits and strategy " + strategy.dump());
      if (w.contains("group_size") && !w["group_size"].is_null())
        refuse(name + " of 8 bits and group_size " + w["group_size"].dump());
    } else {  // 4-bit: groups along each row, whole multiples of 32 values (kiln's int4 kernels)
      if (strategy != "group") refuse(name + " of 4 bits and strategy " + strategy.dump());
      const json g_size = w.value("group_size", json());
      if (!g_size.is_number_integer() || g_size.get<int64_t>() <= 0 || g_size.get<int64_t>() % 32 != 0)
        refuse(name + " of 4 bits and group_size " + g_size.dump() + " (kiln's int4 groups are multiples of 32)");
      gs = g_size.get<int64_t>();
    }
    if (w.value("dynamic", json(false)) != false) refuse(name + " with dynamic weights");
    if (bits != 0 && (bits != b || group != gs || fp8.block_rows != f.block_rows || fp8.block_cols != f.block_cols))
      refuse("config groups of different schemes (" + std::to_string(bits) + " and " + std::to_string(b) +
             " bits, groups of " + std::to_string(group) + " and " + std::to_string(gs) +
             (f.on ? ", FP8 blocks (0: the whole dimension) " + std::to_string(fp8.block_rows) + "x" +
                         std::to_string(fp8.block_cols) + " and " + std::to_string(f.block_rows) + "x" +
                         std::to_string(f.block_cols)
                   : std::string()) +
             ")");
    bits = b;
    group = gs;
    fp8 = f;
  }
  if (bits_out) *bits_out = bits;
  if (group_out) *group_out = group;
  if (fp8_out) *fp8_out = fp8;
  if (asymmetric_out) *asymmetric_out = asymmetric == 1;
  if (fp8.on)
    return "compressed-tensors fp8 (" +
           (fp8.block_rows == 1 && fp8.block_cols == 0 ? std::string("per-row scales")
            : fp8.block_rows == 0 && fp8.block_cols == 0
                ? std::string("per-tensor scales")
                : std::to_string(fp8.block_rows) + "x" + std::to_string(fp8.block_cols) + " block scales") +
           ")";
  return bits == 8 ? "compressed-tensors int8"
                   : "compressed-tensors int4 (groups of " + std::to_string(group) + ")" +
                         (asymmetric == 1 ? " asymmetric" : "");
}

bool GptqPattern::parse(const std::string& p) {
  static const std::string kSpecial = ".+?*()[]{}|^$\\";
  anchored = true;
  segments.assign(1, std::string());
  fail.clear();
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (i + 1 == p.size() || std::isalnum(static_cast<unsigned char>(p[i + 1]))) return false;  // (\d, \w, …)
      segments.back() += p[++i];
    } else if (p[i] == '.' && i + 1 < p.size() && p[i + 1] == '*') {
      if (segments.size() == 1 && segments[0].empty()) anchored = false;
      else if (!segments.back().empty()) segments.emplace_back();
      ++i;
    } else if (kSpecial.find(p[i]) != std::string::npos) {
      return false;
    } else {
      segments.back() += p[i];
    }
  }
  for (const std::string& seg : segments) {  // each segment's KMP failure table, built once
    std::vector<size_t> f(seg.size(), 0);
    for (size_t i = 1, k = 0; i < seg.size(); ++i) {
      while (k > 0 && seg[i] != seg[k]) k = f[k - 1];
      if (seg[i] == seg[k]) ++k;
      f[i] = k;
    }
    fail.push_back(std::move(f));
  }
  return true;
}

bool GptqPattern::matches(const std::string& name) const {
  // The first segment at the start (unless the pattern opens with ".*"), each next one at its earliest
  // place after the last (the earliest is never worse, the end being free), found in linear time (KMP).
  size_t at = 0;
  for (size_t s = 0; s < segments.size(); ++s) {
    const std::string& seg = segments[s];
    if (seg.empty()) continue;
    if (s == 0 && anchored) {
      if (name.compare(0, seg.size(), seg) != 0) return false;
      at = seg.size();
      continue;
    }
    const std::vector<size_t>& f = fail[s];
    size_t k = 0, i = at;
    for (; i < name.size() && k < seg.size(); ++i) {
      while (k > 0 && name[i] != seg[k]) k = f[k - 1];
      if (name[i] == seg[k]) ++k;
    }
    if (k < seg.size()) return false;
    at = i;
  }
  return true;
}

bool gptq_pattern_supported(const std::string& p) { return GptqPattern().parse(p); }

bool gptq_pattern_matches(const std::string& p, const std::string& name) {
  GptqPattern g;
  return g.parse(p) && g.matches(name);
}

std::string ConfigReader::gptq(int* bits_out, int64_t* group_out, bool* asymmetric_out,
                               std::vector<std::string>* skipped) const {
  if (!has("quantization_config")) return "";
  const json& q = j_["quantization_config"];
  if (!q.is_object() || q.value("quant_method", json()) != "gptq") refuse_quantized();
  read_.insert("quantization_config");
  auto refuse = [&](const std::string& what) {
    fail("quantization_config",
         "has quant_method \"gptq\" with " + what +
             ": kiln does not read this GPTQ checkpoint (it reads format \"gptq\" int32-packed weights: 4-bit in "
             "groups of a multiple of 32 values, symmetric or not, and symmetric 8-bit per channel "
             "(group_size -1), with desc_act false or groups in order)");
  };
  // Keys that do not change what the stored weights mean (how they were found, by whom, for which
  // kernels), or are checked below; any other is refused (or, with --allow-unknown-config, noted).
  // clang-format off
  static const std::initializer_list<const char*> kKnown = {
      "quant_method", "bits", "group_size", "desc_act", "sym", "checkpoint_format", "format", "pack_dtype",
      "dynamic", "lm_head", "data_type", "act_bits", "extra_config", "true_sequential", "damp_percent",
      "damp_auto_increment", "static_groups", "model_name_or_path", "model_file_base_name", "meta", "provider",
      "autoround_version", "amp", "enable_quanted_input", "iters", "nsamples", "seqlen", "batch_size", "lr",
      "minmax_lr", "low_gpu_mem_usage", "gradient_accumulate_steps", "enable_minmax_tuning", "scale_dtype",
      "tokenizer", "dataset", "use_cuda_fp16", "model_seqlen", "block_name_to_quantize",
      "module_name_preceding_first_block", "pad_token_id", "use_exllama", "max_input_length", "exllama_config",
      "cache_block_outputs", "modules_in_block_to_quantize", "backend", "to_quant_block_names", "quantizer", "mse",
      "act_group_aware", "v2", "v2_alpha"};
  // clang-format on
  for (auto it = q.begin(); it != q.end(); ++it)
    if (std::find_if(kKnown.begin(), kKnown.end(), [&](const char* k) { return it.key() == k; }) == kKnown.end())
      quant_unmodeled_.push_back(key_value("quantization_config." + it.key(), *it));
  auto absent = [&](const char* k) { return !q.contains(k) || q[k].is_null(); };
  auto empty = [&](const char* k) { return absent(k) || ((q[k].is_object() || q[k].is_array()) && q[k].empty()); };
  const json bits = q.value("bits", json());
  if (bits != 4 && bits != 8) refuse("bits " + bits.dump());
  const json gs = q.value("group_size", json());
  // -1 (one group a row) or a positive size (a JSON integer: unsigned when positive, so a huge one is not
  // read as a negative int64)
  const bool whole_row = gs.is_number_integer() && !gs.is_number_unsigned() && gs.get<int64_t>() == -1;
  if (!whole_row && !(gs.is_number_unsigned() && gs.get<uint64_t>() > 0 && gs.get<uint64_t>() <= (1u << 30)))
    refuse("group_size " + gs.dump());
  const int64_t group = whole_row ? 0 : int64_t(gs.get<uint64_t>());
  // (-1 at 4 bits would give each weight its own group size; kiln's int4 plans hold one)
  if (bits == 4 && (group <= 0 || group % 32 != 0))
    refuse("4 bits and group_size " + gs.dump() + " (kiln's int4 groups are a multiple of 32 values)");
  if (bits == 8 && group != 0) refuse("8 bits and group_size " + gs.dump() + " (kiln's int8 has one scale a row: -1)");
  for (const char* k : {"desc_act", "sym", "lm_head"})
    if (!absent(k) && !q[k].is_boolean()) refuse(std::string(k) + " " + q[k].dump() + " (expected true or false)");
  const bool asym = !absent("sym") && q["sym"] == false;
  if (asym && bits == 8) refuse("8 bits and sym false (kiln's int8 is symmetric)");
  // "gptq" is the format every writer saves (zero points stored minus one); GPTQModel's in-memory
  // "gptq_v2" and the kernel layouts (marlin, bitblas, ...) store other bits.
  for (const char* k : {"checkpoint_format", "format"})
    if (!absent(k) && q[k] != "gptq") refuse(std::string(k) + " " + q[k].dump());
  if (!absent("pack_dtype") && q["pack_dtype"] != "int32" && q["pack_dtype"] != "torch.int32")
    refuse("pack_dtype " + q["pack_dtype"].dump());
  if (!absent("data_type") && q["data_type"] != "int") refuse("data_type " + q["data_type"].dump());
  if (!absent("act_bits") && !(q["act_bits"].is_number() && q["act_bits"].get<double>() >= 16))
    refuse("act_bits " + q["act_bits"].dump() + " (quantized activations)");
  if (!empty("extra_config")) refuse("extra_config " + q["extra_config"].dump() + " (per-module overrides)");
  if (!empty("dynamic")) {  // per-module overrides: only "-:" (the module left unquantized) is read
    if (!q["dynamic"].is_object()) refuse("dynamic of type " + std::string(q["dynamic"].type_name()));
    if (q["dynamic"].size() > kMaxGptqExclusions)
      refuse("dynamic of " + std::to_string(q["dynamic"].size()) + " entries (kiln reads at most " +
             std::to_string(kMaxGptqExclusions) + ")");
    size_t total = 0;
    for (auto it = q["dynamic"].begin(); it != q["dynamic"].end(); ++it) {
      const std::string& k = it.key();
      auto shown = [&k] {  // the key, its first 200 bytes at most (cut between UTF-8 characters)
        size_t n = std::min<size_t>(k.size(), 200);
        while (n > 0 && n < k.size() && (static_cast<unsigned char>(k[n]) & 0xC0) == 0x80) --n;
        return json(k.substr(0, n)).dump(-1, ' ', false, json::error_handler_t::replace) + (n < k.size() ? "…" : "");
      };
      if (k.rfind("-:", 0) != 0 || !it->is_object() || !it->empty())
        refuse("dynamic entry " + shown() +
               " (a per-module override; kiln reads only \"-:<pattern>\": {}, a module left unquantized)");
      total += k.size() - 2;
      if (k.size() - 2 > kMaxGptqPattern || !gptq_pattern_supported(k.substr(2)))
        refuse("dynamic pattern " + shown() + " (kiln reads patterns of literal text, \"\\.\" and \".*\", up to " +
               std::to_string(kMaxGptqPattern) + " characters, as AutoRound writes them)");
      if (total > kMaxGptqPatternBytes)
        refuse("dynamic patterns of over " + std::to_string(kMaxGptqPatternBytes) + " characters in all");
      if (skipped) skipped->push_back(k.substr(2));
    }
  }
  if (bits_out) *bits_out = bits.get<int>();
  if (group_out) *group_out = group;
  if (asymmetric_out) *asymmetric_out = asym;
  if (bits == 8) return "GPTQ int8 (per channel)";
  return "GPTQ int4 (groups of " + std::to_string(group) + ")" + (asym ? " asymmetric" : "");
}

ConfigReader::Quantization ConfigReader::quantization() const {
  Quantization q;
  const json method = has("quantization_config") && j_["quantization_config"].is_object()
                          ? j_["quantization_config"].value("quant_method", json())
                          : json();
  // A list of module names or patterns at quantization_config.<path> (absent or null: none).
  auto names = [&](const json& v, const std::string& path, std::vector<std::string>* out) {
    if (v.is_null()) return;
    if (!v.is_array())
      fail("quantization_config", "has " + path + " of type " + v.type_name() + " (expected a list of module names)");
    for (const json& e : v) {
      if (!e.is_string()) fail("quantization_config", "has " + path + " entry " + e.dump() + " (expected a string)");
      out->push_back(e.get<std::string>());
    }
  };
  if (method == "mxfp4") {
    // GPT-OSS as OpenAI ships it: its experts' X_blocks / X_scales pairs (Checkpoint::unpack_mxfp4),
    // whatever modules_to_not_convert lists (the stored tensors say which are MXFP4; transformers
    // converts only the experts). dequantize (transformers' own choice of kernels) changes no value.
    read_.insert("quantization_config");
    const json& c = j_["quantization_config"];
    std::vector<std::string> unused;
    names(c.value("modules_to_not_convert", json()), "modules_to_not_convert", &unused);
    if (c.contains("dequantize") && !c["dequantize"].is_null() && !c["dequantize"].is_boolean())
      fail("quantization_config", "has dequantize " + c["dequantize"].dump() + " (expected true or false)");
    for (auto it = c.begin(); it != c.end(); ++it)
      if (!it->is_null() && it.key() != "quant_method" && it.key() != "modules_to_not_convert" &&
          it.key() != "dequantize")
        quant_unmodeled_.push_back(key_value("quantization_config." + it.key(), *it));
    q.mxfp4 = true;
  } else if (method == "fp8") {
    q.fp8 = fp8_blocks(&q.fp8_block_rows, &q.fp8_block_cols);
    names(j_["quantization_config"].value("modules_to_not_convert", json()), "modules_to_not_convert",
          &q.not_converted);
  } else if (method == "gptq") {
    q.prequantized = gptq(&q.bits, &q.group, &q.asymmetric, &q.gptq_skipped);
    q.gptq = true;
    q.gptq_lm_head = j_["quantization_config"].value("lm_head", json(false)) == true;
    const json& c = j_["quantization_config"];
    const json blocks = c.value("block_name_to_quantize", json());
    if (blocks.is_string()) q.gptq_blocks.push_back(blocks.get<std::string>());
    else names(blocks, "block_name_to_quantize", &q.gptq_blocks);
    q.gptq_blocks_given = !blocks.is_null();
    const json modules = c.value("modules_in_block_to_quantize", json());
    if (!modules.is_null() && !modules.is_array())
      fail("quantization_config", std::string("has modules_in_block_to_quantize of type ") + modules.type_name() +
                                      " (expected a list of lists of module names)");
    for (size_t i = 0; i < modules.size(); ++i)
      names(modules[i], "modules_in_block_to_quantize[" + std::to_string(i) + "]", &q.gptq_block_modules);
    q.gptq_block_modules_given = !modules.is_null();
  } else {
    Fp8Layout fp8;
    q.prequantized = prequantized(&q.bits, &q.group, &fp8, &q.asymmetric);
    if (!q.prequantized.empty() || fp8.on) {  // (config groups checked by prequantized)
      const json& c = j_["quantization_config"];
      names(c.value("ignore", json()), "ignore", &q.ignore);
      for (auto it = c["config_groups"].begin(); it != c["config_groups"].end(); ++it) {
        names(it->value("targets", json()), "config_groups." + it.key() + ".targets", &q.targets);
        q.targets_given = q.targets_given || !it->value("targets", json()).is_null();
      }
    }
    if (fp8.on) {  // compressed-tensors' e4m3 weights: read as DeepSeek's layout, with its own scales' name
      q.fp8 = true;
      q.fp8_block_rows = fp8.block_rows;
      q.fp8_block_cols = fp8.block_cols;
      q.fp8_scales = "weight_scale";
      q.prequantized.clear();
    }
  }
  return q;
}

bool ConfigReader::fp8_blocks(int64_t* block_rows, int64_t* block_cols) const {
  if (!has("quantization_config")) return false;
  const json& q = j_["quantization_config"];
  if (!q.is_object() || q.value("quant_method", json()) != "fp8") refuse_quantized();
  read_.insert("quantization_config");
  auto refuse = [&](const std::string& what) {
    fail("quantization_config", "has quant_method \"fp8\" with " + what +
                                    ": kiln does not read this quantized checkpoint (it reads e4m3 weights with "
                                    "block scales and dynamic activations, as DeepSeek-V3/R1 ship them)");
  };
  auto get = [&](const char* k, const json& def) { return q.contains(k) && !q[k].is_null() ? q[k] : def; };
  // (MiniMax-M2's files spell the same format as torch names it)
  if (get("fmt", "e4m3") != "e4m3" && get("fmt", "e4m3") != "float8_e4m3fn") refuse("fmt " + q["fmt"].dump());
  if (get("activation_scheme", "dynamic") != "dynamic") refuse("activation_scheme " + q["activation_scheme"].dump());
  // How the scales are formatted for activation kernels (DeepSeek-V3.1's ue8m0: powers of two,
  // still stored as floats), and what a loader should leave unconverted: the stored tensors say
  // which weights are FP8, so none of these changes what they mean.
  if (get("scale_fmt", "float") != "float" && get("scale_fmt", "float") != "ue8m0")
    refuse("scale_fmt " + q["scale_fmt"].dump());
  if (get("expert_dtype", "fp8") != "fp8") refuse("expert_dtype " + q["expert_dtype"].dump());
  if (get("dequantize", false) != false) refuse("dequantize " + q["dequantize"].dump());
  const json b = q.value("weight_block_size", json());
  if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
      b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0 || b[0].get<int64_t>() > 65536 ||
      b[1].get<int64_t>() > 65536)
    refuse("weight_block_size " + b.dump() + " (expected two positive integers)");
  static const char* const kKnown[] = {
      "quant_method", "fmt",        "activation_scheme",      "weight_block_size", "scale_fmt",
      "expert_dtype", "dequantize", "modules_to_not_convert", "modules_to_convert"};
  for (auto it = q.begin(); it != q.end(); ++it)
    if (!it->is_null() && std::find(std::begin(kKnown), std::end(kKnown), it.key()) == std::end(kKnown))
      quant_unmodeled_.push_back(key_value("quantization_config." + it.key(), *it));
  *block_rows = b[0].get<int64_t>();
  *block_cols = b[1].get<int64_t>();
  return true;
}

}  // namespace kiln
