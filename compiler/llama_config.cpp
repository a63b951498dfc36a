#include "compiler/llama_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/error.h"
#include "compiler/frontends/frontend.h"
#include "compiler/json_util.h"

namespace kiln {

LlamaConfig read_llama_config(const std::string& path) { return parse_llama_config(read_text_file(path), path); }

LlamaConfig parse_llama_config(const std::string& text, const std::string& path) {
  LlamaConfig c;
  c.raw_json = text;
  const nlohmann::json j = parse_json_limited(text.data(), text.data() + text.size(), path);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  ConfigReader r(j, path);
  const std::string arch = r.architecture();
  const bool qwen2 = arch == "Qwen2ForCausalLM" || arch == "qwen2";
  const bool mistral = arch == "MistralForCausalLM" || arch == "mistral";
  const bool qwen3_moe = arch == "Qwen3MoeForCausalLM" || arch == "qwen3_moe";
  const bool qwen3 = arch == "Qwen3ForCausalLM" || arch == "qwen3" || qwen3_moe;
  const bool mixtral = arch == "MixtralForCausalLM" || arch == "mixtral";
  const bool phi3 = arch == "Phi3ForCausalLM" || arch == "phi3";
  if (arch != "LlamaForCausalLM" && arch != "llama" && !qwen2 && !mistral && !qwen3 && !mixtral && !phi3)
    throw CompileError(path + ": architecture '" + arch +
                       "' is not LLaMA (kiln supports: " + supported_architectures() + ")");
  c.architecture = qwen2       ? "Qwen2ForCausalLM"
                   : qwen3_moe ? "Qwen3MoeForCausalLM"
                   : qwen3     ? "Qwen3ForCausalLM"
                   : mistral   ? "MistralForCausalLM"
                   : mixtral   ? "MixtralForCausalLM"
                   : phi3      ? "Phi3ForCausalLM"
                               : "LlamaForCausalLM";
  if (r.str("hidden_act", "silu") != "silu")
    r.fail("hidden_act", "must be \"silu\" for LLaMA, Mistral, Mixtral, Phi-3, Qwen2, Qwen3 and Qwen3-MoE");

  c.vocab_size = r.pos_int("vocab_size", true);
  c.hidden_size = r.pos_int("hidden_size", true);
  c.intermediate_size = r.pos_int("intermediate_size", true);
  c.num_hidden_layers = r.pos_int("num_hidden_layers", true);
  c.num_attention_heads = r.pos_int("num_attention_heads", true);
  // Absent: the config class's default (MistralConfig and MixtralConfig 8, Qwen3MoeConfig 4,
  // Qwen2Config and Qwen3Config 32); null: one per head.
  const int64_t kv_default = j.contains("num_key_value_heads") ? c.num_attention_heads
                             : mistral || mixtral              ? 8
                             : qwen3_moe                       ? 4
                             : qwen2 || qwen3                  ? 32
                                                               : c.num_attention_heads;
  c.num_key_value_heads = r.pos_int("num_key_value_heads", false, kv_default);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  if (r.has("head_dim")) {
    c.head_dim = r.pos_int("head_dim", true);
  } else if (qwen3 && !qwen3_moe && !j.contains("head_dim")) {
    c.head_dim = 128;  // Qwen3Config's default, whatever hidden_size / num_attention_heads is
    // (Qwen3MoeConfig has no head_dim: its attention takes hidden_size / num_attention_heads)
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) r.fail("hidden_size", "is not divisible by num_attention_heads");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
  c.max_position_embeddings = r.pos_int("max_position_embeddings", false, 2048);
  c.rms_norm_eps = r.num("rms_norm_eps", mixtral || phi3 ? 1e-5 : 1e-6);  // the config classes' defaults
  if (c.rms_norm_eps < 0) r.fail("rms_norm_eps", "must not be negative");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  if (qwen2 || qwen3) {
    // Qwen2: biases on q, k and v (never on o_proj or the MLP). Qwen3: no biases unless
    // attention_bias (then on q, k, v and o_proj), and q_norm/k_norm over each head before RoPE.
    // Both have sliding-window attention off unless use_sliding_window is set (then
    // sliding_window and max_window_layers pick the layers, which transformers 5 also writes out
    // as layer_types): kiln has no windowed attention yet, so any sliding layer is refused.
    if (qwen2) {
      c.qkv_bias = true;
      r.only("use_mrope", false);  // hub Qwen2/2.5 configs carry it; true is Qwen2-VL's M-RoPE
    } else {
      c.qk_norm = true;
      c.attention_bias = r.boolean("attention_bias", false);
    }
    if (qwen3_moe) {
      // Experts in layer i unless i is in mlp_only_layers or (i + 1) % decoder_sparse_step != 0.
      // transformers 5 writes num_local_experts (Qwen3MoeConfig's attribute_map), the hub num_experts.
      c.num_local_experts = r.count("num_local_experts", r.count("num_experts", 128));
      if (r.has("num_local_experts") && r.has("num_experts") && r.count("num_experts", 0) != c.num_local_experts)
        r.fail("num_experts", "disagrees with num_local_experts, its other spelling");
      c.num_experts_per_tok = r.pos_int("num_experts_per_tok", false, 8);
      c.moe_intermediate_size = r.pos_int("moe_intermediate_size", false, 768);
      c.norm_topk_prob = r.boolean("norm_topk_prob", false);
      const int64_t step = r.pos_int("decoder_sparse_step", false, 1);
      c.moe_layer.assign(size_t(c.num_hidden_layers), false);
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.moe_layer[size_t(i)] = (i + 1) % step == 0;
      if (r.has("mlp_only_layers")) {
        const nlohmann::json& m = j["mlp_only_layers"];
        if (!m.is_array()) r.fail("mlp_only_layers", "must be a list of layer indices");
        for (const auto& x : m) {
          if (!x.is_number_integer()) r.fail("mlp_only_layers", "must be a list of layer indices");
          const int64_t i = x.get<int64_t>();
          if (i >= 0 && i < c.num_hidden_layers) c.moe_layer[size_t(i)] = false;  // others name no layer
        }
      }
      if (c.num_local_experts > 4096) r.fail("num_experts", "is more than 4096");
      if (c.num_local_experts > 0 && c.num_experts_per_tok > c.num_local_experts)
        r.fail("num_experts_per_tok", "exceeds num_experts (" + std::to_string(c.num_local_experts) + ")");
      for (const char* k : {"router_aux_loss_coef", "output_router_logits"}) r.has(k);  // training only
    }
    if (r.boolean("use_sliding_window", false))
      r.fail("use_sliding_window", "is true: sliding-window attention is not supported yet");
    r.has("sliding_window");
    r.has("max_window_layers");
    if (r.has("layer_types")) {
      const nlohmann::json& lt = j["layer_types"];
      if (!lt.is_array()) r.fail("layer_types", "must be a list");
      for (const auto& t : lt)
        if (t != "full_attention")
          r.fail("layer_types", "names a layer type other than \"full_attention\" (" + t.dump() +
                                    "): sliding-window attention is not supported yet");
      if (int64_t(lt.size()) != c.num_hidden_layers) r.fail("layer_types", "must name one type per layer");
    }
  } else if (phi3) {
    // Phi-3: LLaMA with fused projections, an optional window (none unless set) and LongRoPE
    // (rope() reads it; original_max_position_embeddings matters only there). Dropouts act in
    // training only.
    c.fused_projections = true;
    if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
    for (const char* k : {"original_max_position_embeddings", "resid_pdrop", "embd_pdrop"}) r.has(k);
  } else if (mixtral) {
    // Mixtral: Mistral's attention (MixtralConfig's sliding_window defaults to none) and a mixture
    // of experts in every layer. The router's jitter noise and aux loss act in training only.
    if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
    c.num_local_experts = r.pos_int("num_local_experts", false, 8);
    c.num_experts_per_tok = r.pos_int("num_experts_per_tok", false, 2);
    c.moe_intermediate_size = c.intermediate_size;
    c.mixtral_names = true;
    if (c.num_experts_per_tok > c.num_local_experts)
      r.fail("num_experts_per_tok", "exceeds num_local_experts (" + std::to_string(c.num_local_experts) + ")");
    if (c.num_local_experts > 4096) r.fail("num_local_experts", "is more than 4096");
    for (const char* k : {"router_jitter_noise", "router_aux_loss_coef", "output_router_logits"}) r.has(k);
  } else if (mistral) {
    // Mistral: LLaMA whose attention sees the last sliding_window positions (MistralConfig's
    // default 4096 when the key is absent; null: all). The frontend refuses a window shorter
    // than the compiled max-seq, the one case where it changes results.
    if (!j.contains("sliding_window")) c.sliding_window = 4096;
    else if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
  } else {
    c.attention_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
  }
  if (r.has("partial_rotary_factor") && r.num("partial_rotary_factor", 1.0) != 1.0)
    r.fail("partial_rotary_factor", "other than 1 is not supported for this architecture");
  c.has_dtype = r.dtype(&c.dtype);
  c.rope = phi3      ? r.rope({"default", "longrope", "su"})
           : mixtral ? r.rope({"default", "linear", "llama3"}, 1e6)  // MixtralConfig's default_theta
                     : r.rope({"default", "linear", "llama3"});
  if (c.rope.type == "longrope" && int64_t(c.rope.short_factor.size()) != c.head_dim / 2)
    r.fail("rope_parameters", "short_factor must hold head_dim / 2 = " + std::to_string(c.head_dim / 2) + " numbers");
  // max_sequence_length: early LLaMA conversions' copy of the training length, which transformers never reads.
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS, "max_sequence_length"});
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

}  // namespace kiln
