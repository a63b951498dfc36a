#include "compiler/deepseek_config.h"

#include <cmath>

#include "compiler/error.h"
#include "compiler/json_util.h"

namespace kiln {

double DeepseekConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(double(qk_head_dim()));
  if (rope.type != "default" && rope.mscale_all_dim != 0) {
    const double m = yarn_get_mscale(rope.factor, rope.mscale_all_dim);
    s *= m * m;
  }
  return s;
}

DeepseekConfig read_deepseek_config(const std::string& path) {
  return parse_deepseek_config(read_text_file(path), path);
}

namespace {

// A config class's defaults for the keys kiln requires of DeepSeek V2/V3 files (`given` false: those keys must be
// present) and the rest; kv_heads 0: num_attention_heads (kiln's reading of DeepSeek V2/V3 files; their classes' own
// defaults differ, the hub's files give the key).
struct ClassDefaults {
  const char* cls;
  bool given;
  int64_t vocab, hidden, intermediate, layers, heads, kv_heads, q_lora, kv_lora, qk_nope, qk_rope, v_head, max_pos;
  double eps;
  bool tie;
};

const ClassDefaults& class_defaults(const std::string& arch) {
  static const ClassDefaults kV2{"DeepseekV2Config", false, 0, 0, 0, 0, 0, 0, 1536, 0, 0, 0, 0, 2048, 1e-6, false};
  static const ClassDefaults kV3{"DeepseekV3Config", false, 0, 0, 0, 0, 0, 0, 1536, 0, 0, 0, 0, 4096, 1e-6, false};
  static const ClassDefaults kLite{
      "Glm4MoeLiteConfig", true, 154880, 2048, 10240, 47, 20, 20, 768, 512, 192, 64, 256, 202752, 1e-5, false};
  static const ClassDefaults kYoutu{"YoutuConfig", true, 128256, 2048, 6144, 32,     16,   16,
                                    1536,          512,  128,    64,   128,  131072, 1e-6, true};
  if (arch == "Glm4MoeLiteForCausalLM") return kLite;
  if (arch == "YoutuForCausalLM") return kYoutu;
  return arch == "DeepseekV3ForCausalLM" ? kV3 : kV2;
}

}  // namespace

DeepseekConfig parse_deepseek_config(const std::string& text, const std::string& path) {
  DeepseekConfig c;
  c.raw_json = text;
  const nlohmann::json j = parse_json_limited(text.data(), text.data() + text.size(), path);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  ConfigReader r(j, path);
  r.set_strict_booleans();
  c.architecture = r.model_architecture();
  c.quant = r.quantization();
  if (c.architecture == "deepseek_v2") c.architecture = "DeepseekV2ForCausalLM";
  if (c.architecture == "deepseek_v3") c.architecture = "DeepseekV3ForCausalLM";
  if (c.architecture == "glm4_moe_lite") c.architecture = "Glm4MoeLiteForCausalLM";
  if (c.architecture == "youtu") c.architecture = "YoutuForCausalLM";
  if (c.architecture != "DeepseekV2ForCausalLM" && c.architecture != "DeepseekV3ForCausalLM" &&
      c.architecture != "Glm4MoeLiteForCausalLM" && c.architecture != "YoutuForCausalLM")
    throw CompileError(path + ": architecture '" + c.architecture +
                       "' is not a DeepSeek V2/V3 (or GLM-4.7-Flash, Youtu-LLM) model");
  // GLM-4.7-Flash: DeepseekV3Attention and V3's router; Youtu-LLM: DeepseekV3Attention in LLaMA's layer with a
  // dense MLP everywhere. Each with its config class's defaults for absent keys.
  const bool lite = c.glm_lite = c.architecture == "Glm4MoeLiteForCausalLM";
  const bool youtu = c.youtu = c.architecture == "YoutuForCausalLM";
  c.v3 = c.architecture == "DeepseekV3ForCausalLM" || lite || youtu;
  const ClassDefaults& def = class_defaults(c.architecture);
  if (c.quant.mxfp4)
    r.fail("quantization_config", "has quant_method \"mxfp4\", which kiln reads for GptOssForCausalLM only");
  r.refuse_null_values({"rms_norm_eps", "hidden_act", "max_position_embeddings"}, c.architecture);
  if (const std::string act = r.str("hidden_act", "silu"); act != "silu" && act != "swish")  // (ACT2FN: one)
    r.fail("hidden_act", "must be \"silu\"");

  c.vocab_size = r.pos_int("vocab_size", !def.given, def.vocab);
  c.hidden_size = r.pos_int("hidden_size", !def.given, def.hidden);
  c.intermediate_size = r.pos_int("intermediate_size", !def.given, def.intermediate);
  c.num_hidden_layers = r.pos_int("num_hidden_layers", !def.given, def.layers);
  c.num_attention_heads = r.pos_int("num_attention_heads", !def.given, def.heads);
  if (!c.v3 && c.hidden_size % c.num_attention_heads != 0)  // (DeepseekV2Config.validate_architecture)
    r.fail("hidden_size", "(" + std::to_string(c.hidden_size) + ") is not a multiple of num_attention_heads (" +
                              std::to_string(c.num_attention_heads) + "), which DeepseekV2Config refuses");
  // (Glm4MoeLiteConfig and YoutuConfig type these int or float, not Optional: transformers 5 refuses a null; a null
  // head_dim or num_local_experts, their aliases, leaves the model without a value)
  if (lite || youtu)
    r.refuse_null_values(
        {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
         "num_key_value_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "head_dim"},
        c.architecture);
  if (lite)
    r.refuse_null_values({"moe_intermediate_size", "n_shared_experts", "n_routed_experts", "num_local_experts",
                          "num_experts_per_tok", "routed_scaling_factor", "n_group", "topk_group"},
                         c.architecture);
  // MLA builds one K and V per head from the latent: transformers' attention repeats them num_attention_heads //
  // num_key_value_heads times, which runs (as the same model) only where that is 1, and its eager attention fails
  // where it is 0. (Absent: the class's default; kiln's reading of V2/V3 files takes num_attention_heads.)
  const int64_t kvh = r.pos_int("num_key_value_heads", false, def.kv_heads ? def.kv_heads : c.num_attention_heads);
  if (c.num_attention_heads / kvh != 1)
    r.fail("num_key_value_heads",
           (r.has("num_key_value_heads")
                ? std::string()
                : "is absent, which " + std::string(def.cls) + " reads as " + std::to_string(kvh) + ": ") +
               "num_attention_heads // num_key_value_heads is " + std::to_string(c.num_attention_heads / kvh) +
               ", and transformers repeats MLA's per-head K/V that many times, so its attention cannot run (MLA "
               "needs num_key_value_heads equal to num_attention_heads, or at least more than half of it)");
  // Absent keys read as the config class's defaults, as transformers reads them; q_lora_rank null is no low-rank
  // query (V2-Lite).
  c.q_lora_rank = r.count("q_lora_rank", j.contains("q_lora_rank") ? 0 : def.q_lora);
  if (r.has("q_lora_rank") && c.q_lora_rank == 0)  // (transformers builds a rank-0 q_a_proj: use null)
    r.fail("q_lora_rank", "0 is a low-rank query of rank 0 to transformers; null means a full q_proj");
  c.kv_lora_rank = r.pos_int("kv_lora_rank", !def.given, def.kv_lora);
  c.qk_nope_head_dim = r.pos_int("qk_nope_head_dim", !def.given, def.qk_nope);
  // (Glm4MoeLiteConfig's attribute_map: head_dim is qk_rope_head_dim's other spelling, which transformers reads over
  // it; two that disagree are refused, as other readers of the file take qk_rope_head_dim)
  c.qk_rope_head_dim = lite ? r.aliased_count("qk_rope_head_dim", "head_dim", def.qk_rope)
                            : r.pos_int("qk_rope_head_dim", !def.given, def.qk_rope);
  if (c.qk_rope_head_dim == 0) r.fail(r.has("head_dim") ? "head_dim" : "qk_rope_head_dim", "must be positive");
  // (DeepseekV3Config, YoutuConfig: head_dim is qk_rope_head_dim unless the file gives its own, over which the RoPE is
  // then computed, for the qk_rope_head_dim dimensions the attention rotates: transformers cannot run that)
  if (c.v3 && !lite)
    r.refuse_null("head_dim",
                  "with which transformers builds its RoPE over hidden_size / num_attention_heads "
                  "dimensions, not qk_rope_head_dim's: kiln refuses it (leave head_dim out)");
  if (c.v3 && !lite && r.has("head_dim") && r.count("head_dim", 0) != c.qk_rope_head_dim)
    r.fail("head_dim", "= " + std::to_string(r.count("head_dim", 0)) + ", which " + def.cls +
                           " builds its RoPE over, but the attention rotates qk_rope_head_dim (" +
                           std::to_string(c.qk_rope_head_dim) +
                           ") dimensions: transformers cannot run such a model (but for the degenerate cases where "
                           "the two broadcast) and kiln refuses it (leave head_dim out)");
  c.v_head_dim = r.pos_int("v_head_dim", !def.given, def.v_head);
  if (c.qk_rope_head_dim % 2 != 0) r.fail("qk_rope_head_dim", "must be even");
  c.max_position_embeddings = r.pos_int("max_position_embeddings", false, def.max_pos);
  r.set_max_positions(c.max_position_embeddings);
  c.rms_norm_eps = r.num("rms_norm_eps", def.eps);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(float(c.rms_norm_eps)))
    r.fail("rms_norm_eps", "must not be negative, and must be finite in f32");
  c.attention_bias = r.boolean("attention_bias", false);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", def.tie);
  c.has_dtype = r.dtype(&c.dtype);
  // (V3's, GLM-4.7-Flash's and Youtu-LLM's RoPE classes take transformers' RoPE types, of which kiln builds these;
  // dynamic NTK's frequencies follow the sequence length)
  c.rope = c.v3 ? r.rope({"default", "yarn", "linear", "llama3"}) : r.rope({"default", "yarn"});
  // (yarn's factor null: transformers infers it for the RoPE, but its attention's softmax scale reads it as given)
  if (const char* rk = r.rope_key(); c.rope.type == "yarn" && c.rope.mscale_all_dim != 0 && rk && j[rk].is_object() &&
                                     j[rk].contains("factor") && j[rk]["factor"].is_null())
    r.fail(rk,
           "has factor null beside mscale_all_dim, with which transformers' attention cannot compute its softmax "
           "scale (yarn_get_mscale of None): give factor");
  // (DeepseekV3Config's Optional[bool]: None is false; Glm4MoeLiteConfig types it bool and refuses a null)
  c.rope_interleave = c.v3 ? r.boolean("rope_interleave", true, !lite) : true;
  // (Glm4MoeLiteRotaryEmbedding covers qk_rope_head_dim * partial_rotary_factor of the qk_rope_head_dim rotated)
  if (lite) r.full_rotary_only(c.architecture);

  // --- MoE
  // (Youtu-LLM: YoutuConfig deletes DeepseekV3Config's MoE fields; its layers are all dense)
  c.n_routed_experts = youtu  ? 0
                       : lite ? r.aliased_count("n_routed_experts", "num_local_experts", 64)
                              : r.count("n_routed_experts", c.v3 ? 256 : 64);
  if (lite) {
    // MoE layers: mlp_layer_types, else all but the first (Glm4MoeLiteConfig never reads first_k_dense_replace,
    // which the hub's files carry; one that disagrees is refused). (A list is as long as the file allows; without
    // one, moe_layer stays empty and first_k_dense_replace is 1.)
    c.first_k_dense_replace = 1;
    const bool listed = r.mlp_layer_types(c.num_hidden_layers, &c.moe_layer, "Glm4MoeLiteForCausalLM");
    if (r.has("first_k_dense_replace")) {
      const int64_t k = r.count("first_k_dense_replace", 0);
      auto experts = [&](int64_t i) { return listed ? bool(c.moe_layer[size_t(i)]) : i >= 1; };
      // (without a list, the first layer where the two differ is 0 or 1)
      const int64_t n = listed ? c.num_hidden_layers : std::min<int64_t>(c.num_hidden_layers, 2);
      for (int64_t i = 0; i < n; ++i)
        if ((i >= k) != experts(i))
          r.fail("first_k_dense_replace",
                 "= " + std::to_string(k) +
                     ", which transformers' Glm4MoeLiteForCausalLM never reads: it builds layer " + std::to_string(i) +
                     (experts(i) ? " with experts" : " dense") +
                     (listed ? " from mlp_layer_types"
                             : " by default (mlp_layer_types absent: only the first layer dense)") +
                     "; make them agree");
    }
    bool sparse = !listed && c.num_hidden_layers > 1;
    for (bool s : c.moe_layer) sparse = sparse || s;
    if (sparse && c.n_routed_experts == 0)
      r.fail(r.has("num_local_experts") ? "num_local_experts" : "n_routed_experts",
             std::string("is 0: transformers' Glm4MoeLiteForCausalLM builds experts in the layers ") +
                 (listed ? "mlp_layer_types makes sparse" : "after the first (mlp_layer_types' default)") +
                 " and fails on them");
  } else if (!youtu) {
    c.first_k_dense_replace = r.count("first_k_dense_replace", c.v3 ? 3 : 0);
  }
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = r.pos_int("moe_intermediate_size", !lite, 1536);
    c.num_experts_per_tok = r.experts_per_token(!lite, 4);
    c.n_shared_experts = r.count("n_shared_experts", c.v3 ? 1 : 2);
    if (c.num_experts_per_tok > c.n_routed_experts) r.fail("num_experts_per_tok", "exceeds n_routed_experts");
    if (r.count("moe_layer_freq", 1) != 1)
      r.fail("moe_layer_freq", "other than 1 is not supported (transformers ignores it; the layers would differ)");
    c.routed_scaling_factor = r.num("routed_scaling_factor", lite ? 1.8 : c.v3 ? 2.5 : 1.0);
    if (c.v3) {
      c.topk_method = MoeTopk::kNoauxTc;
      c.scoring = MoeScoring::kSigmoid;
      c.norm_topk_prob = r.boolean("norm_topk_prob", true, !lite);  // (V3's Optional[bool]: None is false)
    } else {
      const std::string m = r.str("topk_method", "greedy");
      if (m == "greedy") c.topk_method = MoeTopk::kGreedy;
      else if (m == "group_limited_greedy") c.topk_method = MoeTopk::kGroupLimitedGreedy;
      else r.fail("topk_method", "'" + m + "' is not supported for DeepSeek V2 (greedy, group_limited_greedy)");
      const std::string sf = r.str("scoring_func", "softmax");
      if (sf != "softmax") r.fail("scoring_func", "'" + sf + "' is not supported for DeepSeek V2 (softmax)");
      c.scoring = MoeScoring::kSoftmax;
      c.norm_topk_prob = false;  // transformers' DeepseekV2 router never renormalizes
    }
    if (c.topk_method != MoeTopk::kGreedy) {
      c.n_group = r.pos_int("n_group", !lite, 1);
      c.topk_group = r.pos_int("topk_group", !lite, 1);
      if (c.n_routed_experts % c.n_group != 0) r.fail("n_group", "must divide n_routed_experts");
      if (c.topk_group > c.n_group || c.n_group > 64)
        r.fail("topk_group", "must be at most n_group (and n_group <= 64)");
      if (c.num_experts_per_tok > c.topk_group * (c.n_routed_experts / c.n_group))
        r.fail("num_experts_per_tok", "exceeds the experts of topk_group groups");
      if (c.topk_method == MoeTopk::kNoauxTc && c.n_routed_experts / c.n_group < 2)
        r.fail("n_group", "leaves fewer than 2 experts per group, which noaux_tc scoring needs");
    }
  }
  // (Glm4MoeLiteConfig has no such field: the hub's files give 1, whose model.layers.47.* transformers skips)
  c.num_nextn_predict_layers = r.count("num_nextn_predict_layers", c.v3 && !lite && !youtu ? 1 : 0);
  if (lite) {  // (the hub's keys, which Glm4MoeLiteConfig never reads: accepted at the router it builds)
    r.hardwired("topk_method", "noaux_tc");
    r.hardwired("scoring_func", "sigmoid");
  }
  if (!c.v3) r.refuse_null_switch("mlp_bias");  // (DeepseekV2Config types it bool; V3's has no such field)
  r.only("mlp_bias", false);
  // Keys transformers itself ignores for this model: V3 always routes noaux_tc on sigmoid scores,
  // V2 never renormalizes; the MoE keys of a dense model and the group keys of greedy routing.
  const bool moe = c.n_routed_experts > 0, grouped = moe && c.topk_method != MoeTopk::kGreedy;
  const std::vector<std::pair<const char*, bool>> ignored = {{"topk_method", c.v3},
                                                             {"scoring_func", c.v3},
                                                             {"norm_topk_prob", !c.v3 || youtu},
                                                             {"moe_intermediate_size", !moe},
                                                             {"num_experts_per_tok", !moe},
                                                             {"n_shared_experts", !moe},
                                                             {"routed_scaling_factor", !moe},
                                                             {"moe_layer_freq", !moe},
                                                             {"n_group", !grouped},
                                                             {"topk_group", !grouped},
                                                             {"rope_interleave", !c.v3},
                                                             {"n_routed_experts", youtu},
                                                             {"first_k_dense_replace", youtu},
                                                             {"num_local_experts", youtu}};
  for (const auto& [k, yes] : ignored)
    if (yes) r.has(k);
  // Derived (qk_head_dim, head_dim), the MTP alias (its layers are skipped), training-only keys (MoE losses,
  // YoutuConfig's embedding initializer).
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS, "qk_head_dim", "head_dim", "num_mtp_layers",
                             "aux_loss_alpha", "seq_aux", "ep_size", "embedding_initializer_range"});
  return c;
}

}  // namespace kiln
