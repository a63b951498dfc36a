#include "compiler/llama_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/error.h"
#include "compiler/json_util.h"

namespace kiln {

namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& path;

  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    throw CompileError(path + ": " + key + " " + msg);
  }
  bool has(const json& o, const char* k) const { return o.contains(k) && !o[k].is_null(); }
  int64_t pos_int(const json& o, const char* k, bool required, int64_t def = 0) const {
    if (!has(o, k)) {
      if (required) fail(k, "is missing");
      return def;
    }
    if (!o[k].is_number_integer() || o[k].get<int64_t>() <= 0 || o[k].get<int64_t>() > (int64_t(1) << 31))
      fail(k, "must be a positive integer");
    return o[k].get<int64_t>();
  }
  double num(const json& o, const char* k, double def) const {
    if (!has(o, k)) return def;
    if (!o[k].is_number()) fail(k, "must be a number");
    double v = o[k].get<double>();
    if (!std::isfinite(v)) fail(k, "must be finite");
    return v;
  }
  bool boolean(const json& o, const char* k, bool def) const {
    if (!has(o, k)) return def;
    if (!o[k].is_boolean()) fail(k, "must be true or false");
    return o[k].get<bool>();
  }
};

void read_rope(const Reader& r, const json& j, LlamaConfig& c) {
  // transformers 5: rope_parameters {rope_type, rope_theta, ...}; transformers 4: top-level
  // rope_theta plus rope_scaling {type|rope_type, ...} or null.
  const json* params = nullptr;
  const char* key = nullptr;
  if (r.has(j, "rope_parameters")) {
    params = &j["rope_parameters"];
    key = "rope_parameters";
  } else if (r.has(j, "rope_scaling")) {
    params = &j["rope_scaling"];
    key = "rope_scaling";
  }
  c.rope.theta = r.num(j, "rope_theta", 10000.0);
  if (!params) return;
  if (!params->is_object()) r.fail(key, "must be an object");
  const json& p = *params;
  if (p.contains("rope_theta")) c.rope.theta = r.num(p, "rope_theta", c.rope.theta);
  std::string type = "default";
  if (r.has(p, "rope_type")) type = p["rope_type"].is_string() ? p["rope_type"].get<std::string>() : "?";
  else if (r.has(p, "type")) type = p["type"].is_string() ? p["type"].get<std::string>() : "?";
  if (type != "default" && type != "linear" && type != "llama3")
    r.fail(key, "has rope type '" + type + "', which kiln does not support (supported: default, linear, llama3)");
  c.rope.type = type;
  if (type == "linear" || type == "llama3") {
    if (!r.has(p, "factor")) r.fail(key, "needs 'factor' for rope type " + type);
    c.rope.factor = r.num(p, "factor", 1.0);
    if (c.rope.factor <= 0) r.fail(key, "factor must be positive");
  }
  if (type == "llama3") {
    for (const char* k : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      if (!r.has(p, k)) r.fail(key, std::string("needs '") + k + "' for rope type llama3");
    c.rope.low_freq_factor = r.num(p, "low_freq_factor", 1.0);
    c.rope.high_freq_factor = r.num(p, "high_freq_factor", 4.0);
    c.rope.original_max_position_embeddings = r.pos_int(p, "original_max_position_embeddings", true);
    if (c.rope.low_freq_factor <= 0 || c.rope.high_freq_factor <= c.rope.low_freq_factor)
      r.fail(key, "needs 0 < low_freq_factor < high_freq_factor");
  }
  if (c.rope.theta <= 0) r.fail("rope_theta", "must be positive");
}

}  // namespace

LlamaConfig read_llama_config(const std::string& path) {
  LlamaConfig c;
  const json j = read_json_file(path, &c.raw_json);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  Reader r{j, path};

  std::string arch;
  if (r.has(j, "architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  const std::string model_type = r.has(j, "model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  if (arch != "LlamaForCausalLM" && !(arch.empty() && model_type == "llama"))
    throw CompileError(path + ": architecture '" + (arch.empty() ? model_type : arch) +
                       "' is not supported (supported: LlamaForCausalLM)");
  if (r.has(j, "hidden_act") && (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu"))
    r.fail("hidden_act", "must be \"silu\" for LLaMA");

  c.vocab_size = r.pos_int(j, "vocab_size", true);
  c.hidden_size = r.pos_int(j, "hidden_size", true);
  c.intermediate_size = r.pos_int(j, "intermediate_size", true);
  c.num_hidden_layers = r.pos_int(j, "num_hidden_layers", true);
  c.num_attention_heads = r.pos_int(j, "num_attention_heads", true);
  c.num_key_value_heads = r.pos_int(j, "num_key_value_heads", false, c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  if (r.has(j, "head_dim")) {
    c.head_dim = r.pos_int(j, "head_dim", true);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) r.fail("hidden_size", "is not divisible by num_attention_heads");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
  c.max_position_embeddings = r.pos_int(j, "max_position_embeddings", false, 2048);
  c.rms_norm_eps = r.num(j, "rms_norm_eps", 1e-6);
  if (c.rms_norm_eps < 0) r.fail("rms_norm_eps", "must not be negative");
  c.tie_word_embeddings = r.boolean(j, "tie_word_embeddings", false);
  c.attention_bias = r.boolean(j, "attention_bias", false);
  c.mlp_bias = r.boolean(j, "mlp_bias", false);
  if (r.has(j, "partial_rotary_factor") && r.num(j, "partial_rotary_factor", 1.0) != 1.0)
    r.fail("partial_rotary_factor", "other than 1 is not supported for LLaMA");
  for (const char* k : {"dtype", "torch_dtype"}) {
    if (!r.has(j, k)) continue;
    if (!j[k].is_string()) r.fail(k, "must be a string");
    const std::string d = j[k].get<std::string>();
    if (d == "float32") c.dtype = DType::F32;
    else if (d == "bfloat16") c.dtype = DType::BF16;
    else if (d == "float16") c.dtype = DType::F16;
    else r.fail(k, "'" + d + "' is not supported (float32, bfloat16, float16)");
    c.has_dtype = true;
    break;
  }
  read_rope(r, j, c);
  return c;
}

LlamaConfig llama_config_from_shape(int64_t vocab, int64_t hidden, int64_t ffn, int64_t layers, int64_t heads,
                                    int64_t kv_heads, bool tied) {
  LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.tie_word_embeddings = tied;
  return c;
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
  if (rope.type == "linear") {
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
  }
  return inv;
}

}  // namespace kiln
