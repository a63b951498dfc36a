#include "compiler/llama_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/error.h"
#include "compiler/frontends/frontend.h"
#include "compiler/json_util.h"
#include "kernels/moe.h"

namespace kiln {

LlamaConfig read_llama_config(const std::string& path) { return parse_llama_config(read_text_file(path), path); }

namespace {

// layer_types: one "full_attention" or "sliding_attention" per layer, as window_layer (true: sliding). (transformers 5
// reads the legacy "attention" as "full_attention": remap_legacy_layer_types)
std::vector<bool> read_layer_types(const ConfigReader& r, const nlohmann::json& j, int64_t layers) {
  const nlohmann::json& lt = j["layer_types"];
  if (!lt.is_array()) r.fail("layer_types", "must be a list");
  if (int64_t(lt.size()) != layers) r.fail("layer_types", "must name one type per layer");
  std::vector<bool> sliding;
  for (const auto& t : lt) {
    if (t != "full_attention" && t != "sliding_attention" && t != "attention")
      r.fail("layer_types",
             "names a layer type other than \"full_attention\" (or its legacy name \"attention\") and "
             "\"sliding_attention\" (" +
                 t.dump() + ")");
    sliding.push_back(t == "sliding_attention");
  }
  return sliding;
}

// Sliding layers every one but each pattern-th (Gemma's sliding_window_pattern, OLMo 3's and
// EXAONE 4.0's defaults).
std::vector<bool> periodic_windows(int64_t layers, int64_t pattern) {
  std::vector<bool> w;
  for (int64_t i = 0; i < layers; ++i) w.push_back((i + 1) % pattern != 0);
  return w;
}

// layer_types, or without it every sliding_window_pattern-th layer full (default `def`), as EXAONE 4.0's and
// Cohere 2's config classes fill them in (a null pattern, or one that is not a whole number such as the hub's
// "LLLG", is refused: transformers cannot read it without layer_types). Returns the pattern, or 0 when
// layer_types gave the layers.
int64_t read_window_layers(const ConfigReader& r, const nlohmann::json& j, int64_t def, LlamaConfig* c) {
  if (r.has("layer_types")) {
    c->window_layer = read_layer_types(r, j, c->num_hidden_layers);
    r.has("sliding_window_pattern");  // (read only to fill in an absent layer_types)
    return 0;
  }
  r.refuse_null("sliding_window_pattern", "without layer_types, which transformers cannot read: give them");
  int64_t pattern = def;
  if (r.has("sliding_window_pattern")) {
    const nlohmann::json& p = j["sliding_window_pattern"];
    if (!p.is_number() || !(p.get<double>() >= 1 && p.get<double>() <= 1e9) ||
        p.get<double>() != std::floor(p.get<double>()))
      r.fail("sliding_window_pattern",
             "= " + p.dump() +
                 " is not a whole number of layers, which transformers cannot read without layer_types: "
                 "give them");
    pattern = int64_t(p.get<double>());
  }
  c->window_layer = periodic_windows(c->num_hidden_layers, pattern);
  return pattern;
}

// A null sliding_window, which transformers 5 cannot run `arch` with: it builds the sliding mask whatever the
// layer types.
void refuse_null_window(const ConfigReader& r, const std::string& arch) {
  r.refuse_null("sliding_window", "with which transformers 5 cannot run " + arch +
                                      " (it builds the sliding mask whatever the layer types)");
}

// The expert count under num_local_experts or num_experts (transformers 5's attribute_map spellings; the
// class's default `def`), two that disagree refused.
int64_t read_expert_count(const ConfigReader& r, int64_t def) {
  return r.aliased_count("num_local_experts", "num_experts", def);
}

// clip_qkv (OLMo, OLMoE, MPT's attn_config; key: the key named in errors): q, k and v clamped to [-c, c] after their
// projections (OLMoE's after its q/k norms), or -1 for none. Null: none; 0 clamps every value to 0 where transformers
// tests the key against None (OLMo, OLMoE: kiln does as well) and none where it tests it for truth (MPT:
// zero_is_none). Refused: a negative value (torch would set every value to -c: min above max gives max) and one past
// f32's range.
double read_clip_qkv(const ConfigReader& r, const nlohmann::json& o, const char* key, bool zero_is_none) {
  if (!r.has(o, "clip_qkv")) return -1;
  const nlohmann::json& v = o["clip_qkv"];
  if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > double(std::numeric_limits<float>::max()))
    r.fail(key, std::string(&o == &r.doc() ? "" : "has clip_qkv = " + v.dump() + ", which ") +
                    "must be null or a number from 0 to f32's largest (transformers clamps q, k and v to "
                    "[-clip_qkv, clip_qkv])");
  const double c = v.get<double>();
  return c == 0 && zero_is_none ? -1 : c;
}

// Ernie4_5_MoeConfig (LlamaConfig::ernie_moe): experts (moe_num_experts, or num_experts: its attribute_map; default
// 64) of moe_intermediate_size (1536) in the layers i from moe_layer_start_index (1) to moe_layer_end_index (-1: the
// last) where i + 1 is a multiple of moe_layer_interval (1), moe_k (or num_experts_per_tok; 6) of them chosen,
// moe_num_shared_experts (2) shared ones of moe_intermediate_size each, and moe_norm_min (1e-12). A null where
// transformers computes with the value is refused (it cannot run the model). The ERNIE hub files' own keys, which
// transformers never reads: moe_capacity (training's token drop), moe_use_aux_free and num_nextn_predict_layers (the
// checkpoint's correction bias and mtp tensors say: kiln reads the bias, needed, and leaves the mtp tensors out) are
// left; moe_gate, moe_gate_act and use_rmsnorm are read at transformers' routing and norms ("topk", "softmax", true),
// others refused rather than dropped.
void read_ernie_moe(const ConfigReader& r, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.ernie_moe = true;
  for (const char* k :
       {"moe_num_experts", "num_experts", "moe_k", "num_experts_per_tok", "moe_intermediate_size",
        "moe_num_shared_experts", "moe_layer_start_index", "moe_layer_end_index", "moe_layer_interval", "moe_norm_min"})
    r.refuse_null(k, "with which transformers 5 cannot run Ernie4_5_MoeForCausalLM: give its value");
  if (r.boolean("use_bias", false, true))
    r.fail("use_bias",
           "is true, which kiln does not build for ERNIE 4.5 MoE (biases on the dense and shared MLPs beside experts "
           "without them)");
  c.num_local_experts = r.aliased_count("moe_num_experts", "num_experts", 64);
  if (c.num_local_experts < 2 || c.num_local_experts > 4096)
    r.fail(r.has("num_experts") && !r.has("moe_num_experts") ? "num_experts" : "moe_num_experts",
           "must be between 2 and 4096");
  c.num_experts_per_tok = r.aliased_count("moe_k", "num_experts_per_tok", 6);
  const char* k_key = r.has("num_experts_per_tok") && !r.has("moe_k") ? "num_experts_per_tok" : "moe_k";
  if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > kMaxMoeTopK)
    r.fail(k_key, "must be between 1 and " + std::to_string(kMaxMoeTopK) + " (the most kiln routes a token to)");
  if (c.num_experts_per_tok > c.num_local_experts) r.fail(k_key, "exceeds the number of experts");
  c.moe_intermediate_size = r.pos_int("moe_intermediate_size", false, 1536);
  c.shared_expert_intermediate_size = c.moe_intermediate_size * r.count("moe_num_shared_experts", 2);
  c.moe_norm_min = r.num("moe_norm_min", 1e-12);
  if (!std::isfinite(float(c.moe_norm_min))) r.fail("moe_norm_min", "must be a finite number (as an f32)");
  auto index = [&](const char* k, int64_t def) {  // (an integer, negative ones too)
    if (!r.has(k)) return def;
    const nlohmann::json& v = r.doc()[k];
    constexpr int64_t kBound = int64_t(1) << 31;
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() >= uint64_t(kBound)) ||
        v.get<int64_t>() < -kBound || v.get<int64_t>() >= kBound)
      r.fail(k, "must be an integer in [-2^31, 2^31)");
    return v.get<int64_t>();
  };
  const int64_t first = index("moe_layer_start_index", 1), end = index("moe_layer_end_index", -1);
  const int64_t last = end == -1 ? c.num_hidden_layers - 1 : end;  // (its __post_init__)
  const int64_t interval = r.pos_int("moe_layer_interval", false, 1);
  c.moe_layer.assign(size_t(c.num_hidden_layers), false);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    c.moe_layer[size_t(i)] = (i + 1) % interval == 0 && i >= first && i <= last;
  r.only("moe_gate", "topk");
  r.only("moe_gate_act", "softmax");
  r.hardwired("use_rmsnorm", true);
  for (const char* k :
       {"moe_capacity", "moe_use_aux_free", "num_nextn_predict_layers", "router_aux_loss_coef", "output_router_logits"})
    r.has(k);
}

// HunYuanMoEV1Config (LlamaConfig::hunyuan_moe): experts in every layer, num_experts (or num_local_experts, its
// attribute_map; default 1) of intermediate_size, the top moe_topk (1) by softmax, renormalized, beside one shared MLP
// of intermediate_size. moe_topk may be a list of one value per layer (its router reads moe_topk[layer]): kiln reads
// one whose layers agree. A list of expert counts transformers 5 cannot build (its experts take the list whole). The
// hub files' remote-code keys transformers never reads are read at what its model builds: moe_intermediate_size
// (intermediate_size), num_shared_expert (1), use_mixed_mlp_moe (true); an int or a list of such.
void read_hunyuan_moe(const ConfigReader& r, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.hunyuan_moe = true;
  r.refuse_null_values({"num_experts", "num_local_experts", "moe_topk"}, "HunYuanMoEV1ForCausalLM");
  for (const char* k : {"num_experts", "num_local_experts"})
    if (r.has(k) && r.doc()[k].is_array())
      r.fail(k,
             "is a list, with which transformers 5 cannot build HunYuanMoEV1ForCausalLM (its experts take the "
             "count whole): give one count");
  c.num_local_experts = r.aliased_count("num_experts", "num_local_experts", 1);
  if (c.num_local_experts < 1 || c.num_local_experts > 4096) r.fail("num_experts", "must be between 1 and 4096");
  // One value for every layer: a number, or a list of non-negative integers that agree: moe_topk's first
  // num_hidden_layers (its router reads moe_topk[layer]: a shorter list transformers cannot run), or the whole of a
  // remote-code key's (`by_layer` false: transformers never reads it).
  auto every_layer = [&](const char* k, int64_t def, bool by_layer) -> int64_t {
    if (!r.has(k)) return def;
    const nlohmann::json& v = r.doc()[k];
    if (!v.is_array()) return r.count(k, def);
    if (v.empty() || (by_layer && v.size() < size_t(c.num_hidden_layers)))
      r.fail(k, "lists " + std::to_string(v.size()) + " values for " + std::to_string(c.num_hidden_layers) +
                    " layers, which transformers cannot run");
    const size_t n = by_layer ? size_t(c.num_hidden_layers) : v.size();
    for (size_t i = 0; i < v.size(); ++i)
      if (!v[i].is_number_integer() || v[i].get<int64_t>() < 0 || v[i].get<int64_t>() > (int64_t(1) << 31))
        r.fail(k, "must list non-negative integers (as transformers types it)");
      else if (i < n && v[i] != v[0])
        r.fail(k, "lists different values for its layers (" + v[0].dump() + ", " + v[i].dump() +
                      "), which kiln does not build: one value for every layer");
    return v[0].get<int64_t>();
  };
  // (num_experts_per_tok: moe_topk under its attribute_map's spelling)
  const int64_t spelled = every_layer("num_experts_per_tok", 1, true);
  c.num_experts_per_tok = every_layer("moe_topk", spelled, true);
  if (r.has("moe_topk") && r.has("num_experts_per_tok") && spelled != c.num_experts_per_tok)
    r.fail("num_experts_per_tok", "disagrees with moe_topk, its other spelling");
  if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > kMaxMoeTopK)
    r.fail("moe_topk", "must be between 1 and " + std::to_string(kMaxMoeTopK) + " (the most kiln routes a token to)");
  if (c.num_experts_per_tok > c.num_local_experts)
    r.fail("moe_topk", "exceeds the number of experts (" + std::to_string(c.num_local_experts) +
                           (r.has("num_experts") || r.has("num_local_experts") ? "" : ", num_experts' default") + ")");
  c.moe_intermediate_size = c.shared_expert_intermediate_size = c.intermediate_size;
  c.norm_topk_prob = true;
  if (r.has("moe_intermediate_size") && every_layer("moe_intermediate_size", 0, false) != c.intermediate_size)
    r.fail("moe_intermediate_size",
           "is not intermediate_size, the width transformers builds HunYuan's experts with (it never reads this key)");
  if (r.has("num_shared_expert") && every_layer("num_shared_expert", 0, false) != 1)
    r.fail("num_shared_expert", "is not 1, the one shared MLP transformers builds (it never reads this key)");
  r.hardwired("use_mixed_mlp_moe", true);
  // (the remote code's training-time token dropping, off, and layers left dense, none: what transformers builds)
  r.hardwired("moe_drop_tokens", false);
  r.hardwired("moe_random_routing_dropped_token", false);
  r.hardwired("moe_layer_num_skipped", 0);
  for (const char* k : {"sep_token_id", "capacity_factor", "router_aux_loss_coef", "output_router_logits"}) r.has(k);
}

// Experts routed as DeepSeek-V3's noaux_tc, under the keys GLM-4.5's and dots.llm1's config classes share:
// n_routed_experts (or num_local_experts: their attribute_map) of moe_intermediate_size after the first
// first_k_dense_replace layers, num_experts_per_tok of them chosen by sigmoid scores plus e_score_correction_bias in
// the best topk_group of n_group groups, renormalized with norm_topk_prob, times routed_scaling_factor, beside
// n_shared_experts shared ones. `d`: the class's defaults, a negative one for a key it has none for that runs (absent
// or null refused), and its keys where they are spelled otherwise (ExaoneMoeConfig's num_experts, without an alias,
// and num_shared_experts). A null where the class types a number is refused (transformers cannot build the model).
struct NoauxDefaults {
  const char* architecture;
  int64_t experts, top_k, ffn, shared, dense;
  bool norm_topk_prob;
  const char* null_refused;  // why a null count is refused
  const char* experts_key = "n_routed_experts";
  const char* experts_alias = "num_local_experts";  // (null: none)
  bool dense_key = true;  // false: the class has no first_k_dense_replace (dense layers: `dense`)
  const char* shared_key = "n_shared_experts";
  double routed_scaling_factor = 1.0;
};
void read_noaux_experts(const ConfigReader& r, const NoauxDefaults& d, LlamaConfig* out) {
  LlamaConfig& c = *out;
  if (d.dense_key) r.refuse_null("first_k_dense_replace", d.null_refused);
  const int64_t dense = d.dense_key ? r.count("first_k_dense_replace", d.dense) : d.dense;
  std::vector<const char*> kKeys = {d.experts_key, "num_experts_per_tok",   "moe_intermediate_size",
                                    d.shared_key,  "routed_scaling_factor", "n_group",
                                    "topk_group",  "norm_topk_prob"};
  if (d.experts_alias) kKeys.push_back(d.experts_alias);
  // Dense layers only (Dots1Config types its expert keys Optional: its model never reads them then): none read.
  if (c.dots1 && dense >= c.num_hidden_layers) {
    for (const char* k : kKeys) r.has(k);
    c.moe_layer.assign(size_t(c.num_hidden_layers), false);
    return;
  }
  for (const char* k : kKeys)
    if (std::string(k) != "norm_topk_prob") r.refuse_null(k, d.null_refused);
  auto needed = [&](const char* k, int64_t def, const char* alias = nullptr) {
    if (def < 0 && !r.has(k) && !(alias && r.has(alias)))
      r.fail(k, std::string("is missing, with which transformers 5 cannot build ") + d.architecture +
                    " (its config class has no default that runs): give its value");
  };
  needed(d.experts_key, d.experts, d.experts_alias);
  needed("num_experts_per_tok", d.top_k);
  needed(d.shared_key, d.shared);
  c.num_local_experts =
      d.experts_alias ? r.aliased_count(d.experts_key, d.experts_alias, d.experts) : r.count(d.experts_key, d.experts);
  if (c.num_local_experts < 2 || c.num_local_experts > 4096)
    r.fail(d.experts_key, "must be between 2 and 4096 (noaux_tc routing scores groups by their two best)");
  c.num_experts_per_tok = r.experts_per_token(false, d.top_k);
  c.moe_intermediate_size = r.pos_int("moe_intermediate_size", false, d.ffn);
  c.shared_expert_intermediate_size = c.moe_intermediate_size * r.count(d.shared_key, d.shared);
  c.routed_scaling_factor = r.num("routed_scaling_factor", d.routed_scaling_factor);
  if (!std::isfinite(float(c.routed_scaling_factor)))
    r.fail("routed_scaling_factor", "must be a finite number (as an f32)");
  c.n_group = r.pos_int("n_group", false, 1);
  c.topk_group = r.pos_int("topk_group", false, 1);
  if (c.num_local_experts % c.n_group != 0) r.fail("n_group", std::string("must divide ") + d.experts_key);
  if (c.num_local_experts / c.n_group < 2)
    r.fail("n_group",
           "leaves fewer than 2 experts per group, which noaux_tc routing needs (it sums each group's two "
           "best scores)");
  if (c.n_group > 64) r.fail("n_group", "must be at most 64");
  if (c.topk_group > c.n_group) r.fail("topk_group", "must be at most n_group");
  if (c.num_experts_per_tok > c.topk_group * (c.num_local_experts / c.n_group))
    r.fail("num_experts_per_tok", "exceeds the experts of the topk_group groups routing keeps");
  c.norm_topk_prob = r.boolean("norm_topk_prob", d.norm_topk_prob, c.dots1);  // (Dots1Config: Optional[bool])
  c.moe_layer.assign(size_t(c.num_hidden_layers), false);
  for (int64_t i = dense; i < c.num_hidden_layers; ++i) c.moe_layer[size_t(i)] = true;
  for (const char* k : {"router_aux_loss_coef", "output_router_logits"}) r.has(k);
}

// SolarOpenConfig (LlamaConfig::glm4_moe, as SolarOpenForCausalLM): Glm4MoeConfig's noaux_tc experts in every layer
// (128 of 1280, top 8, renormalized, one shared) under LLaMA's attention (q/k/v biases with attention_bias). The keys
// it deletes from Glm4MoeConfig are never read by transformers: the hub's first_k_dense_replace 0 accepted (null too),
// use_qk_norm false, any intermediate_size (its layers have no dense MLP); num_nextn_predict_layers names layers whose
// tensors are left out (SolarOpenConfig has no MTP layers; the hub's files give none), num_mtp_layers nothing.
void read_solar_open(const ConfigReader& r, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.glm4_moe = true;
  const char* null_refused = "which SolarOpenConfig refuses (transformers 5 cannot build the model): give its value";
  r.hardwired("first_k_dense_replace", 0);
  r.hardwired("use_qk_norm", false);
  NoauxDefaults d{"SolarOpenForCausalLM", 128, 8, 1280, 1, 0, true, null_refused};
  d.dense_key = false;
  read_noaux_experts(r, d, &c);
  c.qkv_bias = r.boolean("attention_bias", false);
  c.mtp_layers = r.count("num_nextn_predict_layers", 0);
  r.has("num_mtp_layers");
}

// Glm4MoeConfig (LlamaConfig::glm4_moe): q/k/v biases with attention_bias, q/k norms with use_qk_norm, noaux_tc
// experts (read_noaux_experts: 128 experts of 1408, top 8, renormalized, one shared, after one dense layer).
// num_nextn_predict_layers (or num_mtp_layers; 1): the multi-token-prediction layers the checkpoint holds after the
// model's, not compiled.
void read_glm4_moe(const ConfigReader& r, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.glm4_moe = true;

  // (its switches are typed bool: a null is refused, as the strict reader refuses it)
  for (const char* k : {"num_nextn_predict_layers", "num_mtp_layers"})
    r.refuse_null(k, "which Glm4MoeConfig refuses (transformers 5 cannot build the model): give its value");
  read_noaux_experts(r,
                     {"Glm4MoeForCausalLM", 128, 8, 1408, 1, 1, true,
                      "which Glm4MoeConfig refuses (transformers 5 cannot build the model): give its value"},
                     &c);
  c.qkv_bias = r.boolean("attention_bias", false);
  c.qk_norm = r.boolean("use_qk_norm", false);
  c.mtp_layers = r.aliased_count("num_nextn_predict_layers", "num_mtp_layers", 1);
}

bool any_window_layer(const LlamaConfig& c);

// MiniMaxM2Config (LlamaConfig::minimax_m2): num_local_experts (or num_experts, its attribute_map; 256) experts of
// intermediate_size in every layer, the top num_experts_per_tok (8) of sigmoid scores plus e_score_correction_bias,
// renormalized; q/k norms over the whole projection. Its RoPE (rotary_dim) is read below. The hub's files carry
// MiniMax's own code's keys, which transformers never reads: at the values transformers' model is, accepted, others
// refused. Its multi-token-prediction keys describe modules transformers never builds: their layers' tensors are left
// out.
void read_minimax_m2(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.minimax_m2 = c.qk_norm = c.mixtral_names = true;
  for (const char* k : {"num_local_experts", "num_experts", "num_experts_per_tok"})
    r.refuse_null(k, "which MiniMaxM2Config refuses (transformers 5 cannot build the model): give its value");
  c.num_local_experts = read_expert_count(r, 256);
  const char* experts_key = r.has("num_local_experts") || !r.has("num_experts") ? "num_local_experts" : "num_experts";
  if (c.num_local_experts < 2 || c.num_local_experts > 4096)
    r.fail(experts_key, "must be between 2 and 4096 (kiln routes MiniMax-M2's experts as noaux_tc does)");
  c.num_experts_per_tok = r.experts_per_token(false, 8);
  if (c.num_experts_per_tok > c.num_local_experts)
    r.fail("num_experts_per_tok", std::string(r.has("num_experts_per_tok") ? "" : "(absent: MiniMaxM2Config's 8) ") +
                                      "exceeds " + experts_key + " (" + std::to_string(c.num_local_experts) + ")");
  c.moe_intermediate_size = c.intermediate_size;
  c.norm_topk_prob = true;  // (n_group, topk_group and routed_scaling_factor: 1, LlamaConfig's)
  // (a null: MiniMax's code tests these keys, and reads null as off, where transformers builds them on)
  for (const char* k : {"use_qk_norm", "qk_norm_type", "scoring_func", "use_routing_bias", "shared_intermediate_size",
                        "attn_type_list"})
    r.refuse_null(k,
                  "which transformers' MiniMaxM2ForCausalLM never reads and MiniMax's own code reads otherwise than "
                  "transformers' model is: kiln refuses rather than guess; give the hub's value or leave it out");
  r.hardwired("use_qk_norm", true);
  r.hardwired("qk_norm_type", "per_layer");
  r.hardwired("scoring_func", "sigmoid");
  r.hardwired("use_routing_bias", true);
  r.hardwired("shared_intermediate_size", 0);
  // (MiniMax-Text-01's layer kinds: 1 softmax attention, 0 lightning attention, which MiniMaxM2ForCausalLM never
  // builds: every layer of it is softmax attention)
  if (r.has("attn_type_list")) {
    const nlohmann::json& t = j["attn_type_list"];
    if (!t.is_array()) r.fail("attn_type_list", "must be a list of layer types (1: softmax attention)");
    for (size_t i = 0; i < t.size(); ++i)
      if (t[i] != 1)
        r.fail("attn_type_list",
               "has " + (t[i].is_number() ? t[i].dump() : std::string("a non-number")) + " at index " +
                   std::to_string(i) +
                   ", which transformers' MiniMaxM2ForCausalLM never reads (every layer of it is softmax attention, "
                   "type 1; 0 is MiniMax-Text-01's lightning attention): kiln refuses rather than guess what the "
                   "checkpoint means");
  }
  // (its multi-token-prediction modules, which transformers never builds: with use_mtp, num_mtp_modules layers after
  // the model's, model.layers.<num_hidden_layers + i>, whose tensors are left out as transformers leaves them unread)
  if (r.boolean("use_mtp", false)) c.mtp_layers = r.count("num_mtp_modules", 0);
  for (const char* k : {"num_mtp_modules", "mtp_transformer_layers", "router_jitter_noise", "router_aux_loss_coef",
                        "output_router_logits"})
    r.has(k);
}

// Dots1Config (LlamaConfig::dots1): Qwen3's attention (q/k norms over each head before RoPE; biases on q, k, v and o
// with attention_bias) with windows of sliding_window (4096; null: none) in the layers layer_types names, or without
// it the layers from max_window_layers (62) up; noaux_tc experts (read_noaux_experts: n_routed_experts,
// num_experts_per_tok and n_shared_experts required, 1408 wide, not renormalized, no dense layer).
void read_dots1(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.dots1 = c.qk_norm = true;
  c.attention_bias = r.boolean("attention_bias", false);
  read_noaux_experts(r,
                     {"Dots1ForCausalLM", -1, -1, 1408, -1, 0, false,
                      "with which transformers 5 cannot run Dots1ForCausalLM (its MoE layers compute with it): give "
                      "its value"},
                     &c);
  // (a null sliding_window: none; 0 is a window transformers cannot run in a sliding layer)
  const bool window_set = r.has("sliding_window") || !j.contains("sliding_window");
  const int64_t window = r.has("sliding_window") ? r.count("sliding_window", 0) : window_set ? 4096 : 0;
  if (r.has("layer_types")) {
    r.count("max_window_layers", 62);  // (layer_types rules; still a count, as its class types it)
    c.window_layer = read_layer_types(r, j, c.num_hidden_layers);
  } else {
    if (window_set)
      r.refuse_null("max_window_layers",
                    "with which transformers cannot pick the windowed layers (sliding_window is set, layer_types "
                    "absent): give its value");
    const int64_t from = r.count("max_window_layers", 62);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.window_layer.push_back(window_set && i >= from);
  }
  if (any_window_layer(c) && window == 0)
    r.fail(r.has("layer_types") ? "layer_types" : "max_window_layers",
           std::string("picks sliding_attention layers, but sliding_window is ") + (window_set ? "0" : "null") +
               ": they have no window (transformers cannot run this config)");
  if (any_window_layer(c)) c.sliding_window = window;
}

// FalconConfig's k/v heads: num_kv_heads (default one per head) with new_decoder_architecture; one with multi_query
// (the default; num_kv_heads is then never read); else one per head, which its layout ([heads, 3, head_dim]) needs.
int64_t read_falcon_kv_heads(const ConfigReader& r, int64_t heads) {
  // (FalconConfig types its switches Optional[bool]: None is false)
  const bool new_arch = r.boolean("new_decoder_architecture", false, true),
             multi_query = r.boolean("multi_query", true, true);
  const int64_t kv = r.pos_int("num_kv_heads", false, heads);
  if (new_arch) {
    if (heads % kv != 0)
      r.fail("num_kv_heads",
             "(" + std::to_string(kv) + ") must divide num_attention_heads (" + std::to_string(heads) + ")");
    return kv;
  }
  if (multi_query) return 1;
  if (kv != heads)
    r.fail("num_kv_heads",
           "must equal num_attention_heads without new_decoder_architecture or multi_query (its "
           "query_key_value holds each head's q, k and v: transformers cannot run this config)");
  return heads;
}

// FalconConfig (LlamaConfig::falcon): biases with `bias`, the block's layout from parallel_attn,
// new_decoder_architecture and num_ln_in_parallel_attn (null: 2 with the new architecture). ALiBi is refused
// (Falcon-RW's: transformers rounds its slopes and biases to bf16 and scales them with the scores, which kiln's ALiBi
// does not follow); layouts transformers cannot run are refused by name. Its dropouts act in training only; the old RW
// configs' apply_residual_connection_post_layernorm is read at the false transformers hard-wires.
void read_falcon(const ConfigReader& r, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.falcon = true;
  c.attention_bias = c.mlp_bias = r.boolean("bias", false, true);  // (Optional[bool] switches: None is false)
  r.only("alibi", false);
  const bool new_arch = r.boolean("new_decoder_architecture", false, true),
             parallel = r.boolean("parallel_attn", true, true);
  // (its layer builds ln_attn and ln_mlp for a parallel block with 2, input_layernorm otherwise; the new
  // architecture reads the two with 2 and input_layernorm alone with 1, the old one input_layernorm only)
  const int64_t norms = r.has("num_ln_in_parallel_attn") ? r.count("num_ln_in_parallel_attn", 0) : new_arch ? 2 : 0;
  if (new_arch && !parallel)
    r.fail("parallel_attn",
           "is false with new_decoder_architecture, which transformers cannot run (its layer "
           "reads norms it does not build)");
  if (new_arch && norms != 1 && norms != 2)
    r.fail("num_ln_in_parallel_attn",
           "must be 1 or 2 (or null) with new_decoder_architecture: transformers cannot "
           "run another");
  if (!new_arch && parallel && norms == 2)
    r.fail("num_ln_in_parallel_attn",
           "is 2 with parallel_attn and without new_decoder_architecture, which "
           "transformers cannot run (its layer builds two norms and reads input_layernorm)");
  c.neox_parallel = new_arch && norms == 2;
  c.parallel_residual = parallel && !c.neox_parallel;  // (multi_query: read with the k/v heads)
  r.hardwired("apply_residual_connection_post_layernorm", false);
}

bool any_window_layer(const LlamaConfig& c) {
  return std::find(c.window_layer.begin(), c.window_layer.end(), true) != c.window_layer.end();
}

// transformers 5's rope_parameters by layer type ({"full_attention": {...}, "sliding_attention":
// {...}}; absent: {}) into c.rope and c.rope_local. A layer type left out (or null) is default RoPE,
// a rope_theta left out full_theta or local_theta, and a legacy rope_scaling merges into the full
// layers' object, as Gemma3TextConfig's and Olmo3Config's convert_rope_params_to_dict fill them in.
// full_key, local_key: the top-level keys those bases come from (null: a constant), whose null is
// refused where the layer type's object gives no rope_theta.
void read_rope_by_layer_type(const ConfigReader& r, const nlohmann::json& j, std::initializer_list<const char*> types,
                             double full_theta, const char* full_key, double local_theta, const char* local_key,
                             LlamaConfig* out) {
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& rp = r.has("rope_parameters") ? j["rope_parameters"] : none;
  if (!rp.is_object()) r.fail("rope_parameters", "must be an object of RoPE objects by layer type");
  for (auto it = rp.begin(); it != rp.end(); ++it)
    if (it.key() != "full_attention" && it.key() != "sliding_attention")
      r.fail("rope_parameters", "has the key '" + it.key() + "', not a layer type");
  auto layer_rope = [&](const char* type) {
    return rp.contains(type) && !rp[type].is_null() ? rp[type] : nlohmann::json{{"rope_type", "default"}};
  };
  nlohmann::json full = layer_rope("full_attention");
  if (r.has("rope_scaling")) {
    if (!j["rope_scaling"].is_object() || !full.is_object()) r.fail("rope_scaling", "must be an object");
    // (transformers 5 merges it into rope_parameters' full_attention object, and fails without one)
    if (r.has("rope_parameters") && !(rp.contains("full_attention") && rp["full_attention"].is_object()))
      r.fail("rope_scaling",
             "is given beside a rope_parameters without a full_attention object, which transformers 5 cannot merge "
             "it into: put it in rope_parameters.full_attention");
    full.update(j["rope_scaling"]);
  }
  const nlohmann::json sliding = layer_rope("sliding_attention");
  r.refuse_null_base(full_key, &full);
  if (local_key) r.refuse_null_base(local_key, &sliding);
  out->rope = r.rope_at(full, "rope_parameters.full_attention", types, full_theta);
  out->rope_local = r.rope_at(sliding, "rope_parameters.sliding_attention", types, local_theta);
}

// Olmo3Config's keys past OLMo 2's: sliding windows of sliding_window (default 4096) in the layers
// layer_types names (by default all but every 4th), and a RoPE by layer type (rope_theta, default
// 500000; a legacy rope_scaling on the full layers only).
void read_olmo3(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.olmo3 = true;
  if (r.has("layer_types")) {
    c.window_layer = read_layer_types(r, j, c.num_hidden_layers);
  } else {
    c.window_layer = periodic_windows(c.num_hidden_layers, 4);
  }
  const bool any_sliding = any_window_layer(c);
  refuse_null_window(r, "Olmo3ForCausalLM");
  c.sliding_window = r.pos_int("sliding_window", false, 4096);
  // transformers 5 gives a sliding layer's RoPE without its own rope_theta Olmo3Config's 500000,
  // whatever the top-level rope_theta (convert_rope_params_to_dict pops it for the full layers
  // first); transformers 4 gave it rope_theta. Where the two differ kiln does not guess.
  constexpr double kTheta = 500000.0;
  const double theta = r.num("rope_theta", kTheta);
  const nlohmann::json& rp = r.has("rope_parameters") ? j["rope_parameters"] : nlohmann::json::object();
  const bool local_theta_given = rp.is_object() && rp.contains("sliding_attention") &&
                                 rp["sliding_attention"].is_object() && rp["sliding_attention"].contains("rope_theta");
  if (theta != kTheta && !local_theta_given && any_sliding)
    r.fail("rope_theta",
           "is not 500000 and the sliding layers' RoPE gives none of its own: transformers 5 gives those layers "
           "500000 (Olmo3Config's default), transformers 4 gave them rope_theta; give "
           "rope_parameters.sliding_attention.rope_theta");
  read_rope_by_layer_type(r, j, {"default", "linear", "llama3", "yarn", "dynamic"}, theta, "rope_theta", kTheta,
                          nullptr, &c);
}

// EXAONE 4.0's windows (Exaone4Config's, ExaoneMoeConfig's): of sliding_window in the layers layer_types names (else
// every sliding_window_pattern-th layer full), and with a window set, no RoPE on the full layers. A null
// sliding_window: no windows, RoPE everywhere.
void read_exaone_windows(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  LlamaConfig& c = *out;
  const bool window = r.has("sliding_window") || !j.contains("sliding_window");
  // (Exaone4Config's __post_init__ fails on a null window, a null pattern or a string one such as the hub's
  // "LLLG" without layer_types)
  if (!window && !r.has("layer_types"))
    r.fail("sliding_window", "is null without layer_types, which transformers cannot read: give them");
  read_window_layers(r, j, 4, &c);
  const bool any_sliding = any_window_layer(c);
  if (window) {
    c.sliding_window = r.pos_int("sliding_window", false, 4096);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.nope_layer.push_back(!c.window_layer[size_t(i)]);
  } else if (any_sliding) {
    r.fail("sliding_window", "is null, but layers are of type sliding_attention");
  }
}

// Exaone4Config's keys past LLaMA's: OLMo 2's layer with q and k normalized per head and EXAONE 4.0's windows.
void read_exaone4(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  out->olmo2 = out->exaone4 = out->qk_norm = true;
  read_exaone_windows(r, j, out);
}

// ExaoneMoeConfig (LlamaConfig::exaone_moe): EXAONE 4.0's attention and windows in LLaMA's layer, noaux_tc experts
// (read_noaux_experts: num_experts 64 of moe_intermediate_size 1024, top 8, renormalized, times
// routed_scaling_factor 2.5, num_shared_experts 1) in the layers mlp_layer_types calls "sparse" (else all but the
// first first_k_dense_replace, 1).
void read_exaone_moe(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  out->exaone_moe = out->qk_norm = true;
  // (ExaoneMoeConfig types sliding_window int: its full layers never take RoPE)
  r.refuse_null("sliding_window",
                "which ExaoneMoeConfig refuses (transformers 5 cannot build the model): give its "
                "value, or leave it out for 4096");
  read_exaone_windows(r, j, out);
  NoauxDefaults d{"ExaoneMoeForCausalLM",
                  64,
                  8,
                  1024,
                  1,
                  1,
                  true,
                  "which ExaoneMoeConfig refuses (transformers 5 cannot build the model): give its value"};
  d.experts_key = "num_experts";
  d.experts_alias = nullptr;
  d.shared_key = "num_shared_experts";
  d.routed_scaling_factor = 2.5;
  read_noaux_experts(r, d, out);
  LlamaConfig& c = *out;
  r.mlp_layer_types(c.num_hidden_layers, &c.moe_layer);  // (over first_k_dense_replace)
  // The keys of the remote code K-EXAONE's files were written with (its ExaoneMoEConfig), which transformers 5 never
  // reads: is_moe_layer (one 0/1 or boolean per layer) accepted where it names the layers transformers builds, else
  // refused (the two would build different models); first_last_k_dense_replace, which that code did not read either;
  // num_nextn_predict_layers, the mtp.* tensors' count (left out).
  if (r.has("is_moe_layer")) {
    const nlohmann::json& m = j["is_moe_layer"];
    if (!m.is_array() || int64_t(m.size()) != c.num_hidden_layers)
      r.fail("is_moe_layer", "must list one entry per layer");
    for (size_t i = 0; i < m.size(); ++i) {
      if (!(m[i].is_boolean() || (m[i].is_number_integer() && (m[i] == 0 || m[i] == 1))))
        r.fail("is_moe_layer", "must list 0 or 1 (or a boolean) per layer, not " + m[i].dump());
      const bool moe = m[i].is_boolean() ? m[i].get<bool>() : m[i] == 1;
      if (moe != c.is_moe_layer(int64_t(i)))
        r.fail("is_moe_layer", "says layer " + std::to_string(i) + " is " + (moe ? "" : "not ") +
                                   "an MoE layer, but transformers 5 (which never reads is_moe_layer) builds it " +
                                   (moe ? "dense" : "with experts") +
                                   " from mlp_layer_types or first_k_dense_replace: make them agree");
    }
  }
  r.has("first_last_k_dense_replace");
  r.has("num_nextn_predict_layers");
}

// Gemma3TextConfig's (v2: Gemma2Config's) keys past LLaMA's (see LlamaConfig::gemma), with its
// defaults for absent ones.
void read_gemma(const ConfigReader& r, const nlohmann::json& j, bool v2, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.gemma = true;
  c.gemma2 = v2;
  c.qk_norm = !v2;

  c.attention_bias = r.boolean("attention_bias", false);
  r.refuse_null("query_pre_attn_scalar", "which transformers 5 refuses: give its value, or leave it out for 256");
  c.query_pre_attn_scalar = r.num("query_pre_attn_scalar", 256);
  if (!(c.query_pre_attn_scalar > 0)) r.fail("query_pre_attn_scalar", "must be positive");
  // A soft cap: Gemma2Config's default when absent (30 and 50), none when null (None in transformers).
  auto softcap = [&](const char* k, double def) {
    if (j.contains(k) && j[k].is_null()) return 0.0;
    const double v = r.num(k, def);
    if (r.has(k) && (!(float(v) > 0) || !std::isfinite(float(v))))
      r.fail(k, "must be positive and finite in f32 (or null)");
    return v;
  };
  c.final_logit_softcapping = softcap("final_logit_softcapping", v2 ? 30.0 : 0.0);
  if (v2) {
    c.attn_logit_softcapping = softcap("attn_logit_softcapping", 50.0);
  } else if (r.has("attn_logit_softcapping")) {
    r.fail("attn_logit_softcapping",
           "is set, but transformers' Gemma 3 never applies it (hub configs set it null); kiln refuses rather than "
           "guess whether it should");
  }
  // (VaultGemmaConfig has no such key, and its attention is causal whatever a file says: transformers never reads it)
  if (c.vaultgemma) r.has("use_bidirectional_attention");
  else r.only("use_bidirectional_attention", false);
  r.has("cache_implementation");  // "hybrid" in hub configs: how generate() keeps its cache
  // Layer types: layer_types, or the hub's sliding_window_pattern (every n-th layer full), default
  // 6. transformers 5 also writes _sliding_window_pattern, which it never reads back. Gemma 2:
  // layer_types, by default sliding and full layers in turn (the first sliding).
  if (!v2) r.has("_sliding_window_pattern");
  if (r.has("layer_types")) {
    c.window_layer = read_layer_types(r, j, c.num_hidden_layers);
    if (!v2) r.has("sliding_window_pattern");
  } else if (v2) {
    c.window_layer = periodic_windows(c.num_hidden_layers, 2);
  } else {
    const int64_t pattern = r.pos_int("sliding_window_pattern", false, 6);
    c.window_layer = periodic_windows(c.num_hidden_layers, pattern);
  }
  const bool any_sliding = any_window_layer(c);
  if (!j.contains("sliding_window")) c.sliding_window = 4096;
  else if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
  else if (any_sliding) r.fail("sliding_window", "is null, but layers are of type sliding_attention");
  // RoPE: transformers 5's rope_parameters by layer type, or the hub's rope_theta (global, default
  // 1e6) with rope_scaling (global layers only) and rope_local_base_freq (sliding, default 1e4).
  // Gemma 2: one RoPE for every layer, as LLaMA's.
  const std::initializer_list<const char*> types = {"default", "linear", "llama3", "yarn", "dynamic"};
  if (v2) {
    c.rope = r.rope(types);
    c.rope_local = c.rope;
  } else if (r.has("rope_parameters")) {
    read_rope_by_layer_type(r, j, types, r.num("rope_theta", 1e6), "rope_theta", r.num("rope_local_base_freq", 1e4),
                            "rope_local_base_freq", &c);
  } else {
    r.refuse_null_base("rope_theta", r.has("rope_scaling") ? &j["rope_scaling"] : nullptr);
    r.refuse_null_base("rope_local_base_freq", nullptr);
    const double global_theta = r.num("rope_theta", 1e6), local_theta = r.num("rope_local_base_freq", 1e4);
    c.rope = r.has("rope_scaling") ? r.rope_at(j["rope_scaling"], "rope_scaling", types, global_theta) : RopeConfig{};
    if (!r.has("rope_scaling")) c.rope.theta = global_theta;
    c.rope_local.theta = local_theta;
    if (!(c.rope.theta > 0)) r.fail("rope_theta", "must be positive");
    if (!(c.rope_local.theta > 0)) r.fail("rope_local_base_freq", "must be positive");
  }
}

// SmolLM3Config's keys past LLaMA's: biases, RoPE-less layers (no_rope_layers, or every
// no_rope_layer_interval-th layer), and sliding windows in the layers layer_types names, by default
// the RoPE-less ones when use_sliding_window and sliding_window are set.
void read_smollm3(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  LlamaConfig& c = *out;
  const int64_t n = c.num_hidden_layers;
  c.attention_bias = r.boolean("attention_bias", false);
  c.mlp_bias = r.boolean("mlp_bias", false);
  // transformers tests each entry's truth (`if self.use_rope:`): 0 is a RoPE-less layer (SmolLM3Config
  // types the list as integers: it refuses true and false).
  if (r.has("no_rope_layers")) {
    const nlohmann::json& l = j["no_rope_layers"];
    if (!l.is_array() || int64_t(l.size()) < n) r.fail("no_rope_layers", "must hold one 0 or 1 per layer");
    for (int64_t i = 0; i < n; ++i) {
      const nlohmann::json& v = l[size_t(i)];
      if (!v.is_number_integer()) r.fail("no_rope_layers", "must hold one 0 or 1 per layer");
      c.nope_layer.push_back(v.get<int64_t>() == 0);
    }
    r.has("no_rope_layer_interval");  // (read only to fill in an absent no_rope_layers)
  } else {
    const int64_t interval = r.pos_int("no_rope_layer_interval", false, 4);
    for (int64_t i = 0; i < n; ++i) c.nope_layer.push_back((i + 1) % interval == 0);
  }
  const bool use_window = r.boolean("use_sliding_window", false);
  const int64_t window = r.has("sliding_window") ? r.pos_int("sliding_window", true) : 0;
  if (r.has("layer_types")) {
    c.window_layer = read_layer_types(r, j, n);
  } else {
    for (int64_t i = 0; i < n; ++i) c.window_layer.push_back(use_window && window > 0 && c.nope_layer[size_t(i)]);
  }
  // transformers masks the sliding layers by sliding_window whatever use_sliding_window says (its
  // flash attention windows them only with it): a file where the two disagree is refused.
  if (any_window_layer(c)) {
    if (window == 0)
      r.fail("layer_types", "names sliding_attention layers, but sliding_window is null (transformers cannot run it)");
    if (!use_window)
      r.fail("use_sliding_window",
             "is off, but layer_types names sliding_attention layers: transformers' eager and sdpa attention window "
             "them, its flash attention does not; kiln does not guess which was meant");
    c.sliding_window = window;
  }
  // SmolLM3's hub configs carry a Qwen2-style max_window_layers that SmolLM3Config never reads.
  r.has("max_window_layers");
}

// CohereConfig's and Cohere2Config's keys past LLaMA's (LlamaConfig::cohere): attention biases, use_qk_norm
// (Cohere only), logit_scale (default 0.0625); Cohere 2's windows of sliding_window (default 4096) in the
// layers layer_types names (by default all but every sliding_window_pattern-th, default 4), RoPE in those
// only, and the keys Cohere's own release wrote, each accepted at what transformers hard-wires.
void read_cohere(const ConfigReader& r, const nlohmann::json& j, bool v2, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.cohere = c.pairwise_rope = true;
  c.cohere2 = v2;
  c.attention_bias = r.boolean("attention_bias", false);
  r.refuse_null("logit_scale", "with which transformers cannot run " + c.architecture + ": give its value");
  c.logit_scale = r.num("logit_scale", 0.0625);
  if (!std::isfinite(float(c.logit_scale))) r.fail("logit_scale", "must be a finite number (as an f32)");
  if (!v2) {
    c.qk_norm = c.head_layernorm = r.boolean("use_qk_norm", false, true);  // (CohereConfig: Optional[bool])
    return;
  }
  r.hardwired("use_qk_norm", false);
  refuse_null_window(r, "Cohere2ForCausalLM");
  c.sliding_window = r.pos_int("sliding_window", false, 4096);
  const int64_t pattern = read_window_layers(r, j, 4, &c);  // (0: layer_types gave them)
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.nope_layer.push_back(!c.window_layer[size_t(i)]);
  // Cohere's release wrote its own code's settings beside transformers' keys; transformers never reads them
  // and hard-wires what they describe: accepted at those values, refused otherwise (kiln does not guess).
  r.has("cache_implementation");    // (how generate() keeps its cache)
  r.has("use_parallel_embedding");  // (how a tensor-parallel run splits the embedding)
  r.hardwired("order_of_interleaved_layers", "local_attn_first");
  r.hardwired("position_embedding_type", "rope_gptj");
  r.hardwired("rotary_pct", 1.0);
  r.hardwired("use_gated_activation", true);
  r.hardwired("use_parallel_block", true);
  if (r.has("use_embedding_sharing") && j["use_embedding_sharing"] != c.tie_word_embeddings)
    r.fail("use_embedding_sharing", "= " + j["use_embedding_sharing"].dump() + " disagrees with tie_word_embeddings (" +
                                        (c.tie_word_embeddings ? "true" : "false") +
                                        "), which transformers reads (it never reads this key); kiln does not guess");
  // layer_switch: the period of full layers in that code; it must describe the layer types transformers reads.
  if (r.has("layer_switch")) {
    const nlohmann::json& ls = j["layer_switch"];
    if (!ls.is_number_integer() || ls.get<int64_t>() < 1 ||
        periodic_windows(c.num_hidden_layers, ls.get<int64_t>()) != c.window_layer)
      r.fail("layer_switch", "= " + ls.dump() + " does not describe the layer types transformers reads (" +
                                 (pattern ? "every " + std::to_string(pattern) + "th layer full" : "layer_types") +
                                 "), and transformers never reads it; kiln does not guess which was meant");
  }
}

// The names act2fn_kind reads, for errors.
const char* const kAct2fnNames =
    "\"relu\", \"relu2\", \"silu\" (\"swish\"), \"gelu\", \"gelu_new\", \"gelu_fast\", \"gelu_pytorch_tanh\" or "
    "\"quick_gelu\"";

// The activation op's kind of an ACT2FN name (transformers' activations.py): gelu_new, gelu_fast and
// gelu_pytorch_tanh are the tanh GELU, gelu the exact one, swish SiLU, relu and relu2 (relu²) theirs; false for a name
// kiln has no kind for.
bool act2fn_kind(const std::string& name, Activation* kind) {
  static const std::pair<const char*, Activation> kNames[] = {{"gelu_new", Activation::kGeluTanh},
                                                              {"gelu_fast", Activation::kGeluTanh},
                                                              {"gelu_pytorch_tanh", Activation::kGeluTanh},
                                                              {"gelu", Activation::kGelu},
                                                              {"silu", Activation::kSilu},
                                                              {"swish", Activation::kSilu},
                                                              {"quick_gelu", Activation::kQuickGelu},
                                                              {"relu2", Activation::kRelu2},
                                                              {"relu", Activation::kRelu}};
  for (const auto& [n, k] : kNames)
    if (name == n) {
      *kind = k;
      return true;
    }
  return false;
}

// GptOssConfig's keys past LLaMA's: q/k/v/o biases (attention_bias, on by default), a sink logit per
// head, windows of sliding_window (default 128) in the layers layer_types names (by default the even
// ones), experts in every layer (LlamaConfig::gpt_oss), and GptOssConfig's default RoPE (yarn, factor
// 32 over 4096 positions, truncate false, rope_theta 150000) when the file gives none.
void read_gpt_oss(const ConfigReader& r, const nlohmann::json& j, LlamaConfig* out) {
  LlamaConfig& c = *out;
  c.gpt_oss = true;
  c.attention_bias = r.boolean("attention_bias", true);
  c.window_layer =
      r.has("layer_types") ? read_layer_types(r, j, c.num_hidden_layers) : periodic_windows(c.num_hidden_layers, 2);
  refuse_null_window(r, "GptOssForCausalLM");
  c.sliding_window = r.pos_int("sliding_window", false, 128);
  for (const char* k : {"num_local_experts", "num_experts", "num_experts_per_tok", "swiglu_alpha", "swiglu_limit"})
    r.refuse_null(k, "with which transformers cannot run GptOssForCausalLM: give its value");
  c.num_local_experts = read_expert_count(r, 128);
  if (c.num_local_experts < 1) r.fail("num_local_experts", "must be a positive integer");
  if (c.num_local_experts > 4096) r.fail("num_local_experts", "is more than 4096");
  c.num_experts_per_tok = r.experts_per_token(false, 4);
  if (c.num_experts_per_tok > c.num_local_experts)
    r.fail("num_experts_per_tok", "exceeds num_local_experts (" + std::to_string(c.num_local_experts) + ")");
  // The hub's files also carry experts_per_token (OpenAI's own loader reads it; transformers never does):
  // one that disagrees is refused rather than guessed.
  if (r.has("experts_per_token") && r.count("experts_per_token", 0) != c.num_experts_per_tok)
    r.fail("experts_per_token", "disagrees with num_experts_per_tok (" + std::to_string(c.num_experts_per_tok) +
                                    "), which transformers reads: kiln does not guess which was meant");
  c.moe_intermediate_size = c.intermediate_size;
  c.norm_topk_prob = true;  // (the softmax over the top k logits)
  c.swiglu_alpha = r.num("swiglu_alpha", 1.702);
  c.swiglu_limit = r.num("swiglu_limit", 7.0);
  if (!std::isfinite(float(c.swiglu_alpha))) r.fail("swiglu_alpha", "must be a finite number (as an f32)");
  if (!(std::isfinite(float(c.swiglu_limit)) && float(c.swiglu_limit) > 0))
    r.fail("swiglu_limit", "must be a positive finite number (as an f32)");
  // hidden_act: never read (the experts' activation is the clamped SwiGLU whatever it says; a null is
  // refused above, as GptOssConfig refuses it);
  // initial_context_length: OpenAI's copy of the yarn original length; the rest act in training only.
  for (const char* k : {"hidden_act", "initial_context_length", "router_aux_loss_coef", "output_router_logits"})
    r.has(k);
  if (!r.rope_key()) {  // GptOssConfig's __post_init__ default
    c.rope.type = "yarn";
    r.refuse_null_base("rope_theta", nullptr);
    c.rope.theta = r.num("rope_theta", 150000.0);
    if (c.rope.theta <= 0) r.fail("rope_theta", "must be positive");
    c.rope.factor = 32.0;
    c.rope.beta_fast = 32.0;
    c.rope.beta_slow = 1.0;
    c.rope.truncate = false;
    c.rope.original_max_position_embeddings = r.top_level_original_positions(4096, "yarn");  // (or the file's)
  } else {
    c.rope = r.rope({"default", "linear", "llama3", "yarn", "dynamic"}, 150000.0);  // (GptOssConfig's default_theta)
  }
}

// A mixture of experts in every layer (Mixtral, GraniteMoe): num_local_experts SwiGLU experts of
// intermediate_size, num_experts_per_tok of them (defaults default_experts, Mixtral's 8, and 2) picked per token.
// OlmoeConfig's and FlexOlmoConfig's experts (num_experts, default `experts`, of intermediate_size in every layer,
// the top num_experts_per_tok, default `top_k`, by softmax, renormalized with norm_topk_prob, default false). The
// router's aux loss acts in training only.
void read_olmoe_experts(const ConfigReader& r, LlamaConfig* out, int64_t experts, int64_t top_k) {
  LlamaConfig& c = *out;
  for (const char* k : {"num_experts", "num_local_experts", "num_experts_per_tok"})
    r.refuse_null(k, "with which transformers cannot run " + c.architecture + ": give its value");
  c.num_local_experts = read_expert_count(r, experts);
  if (c.num_local_experts < 1)
    r.fail(r.has("num_local_experts") ? "num_local_experts" : "num_experts", "must be a positive integer");
  if (c.num_local_experts > 4096) r.fail("num_experts", "is more than 4096");
  c.num_experts_per_tok = r.experts_per_token(false, top_k);
  if (c.num_experts_per_tok > c.num_local_experts)
    r.fail("num_experts_per_tok",
           (r.has("num_experts_per_tok") ? ""
                                         : "(absent: " + c.architecture.substr(0, c.architecture.size() - 11) +
                                               "Config's " + std::to_string(top_k) + ") ") +
               "exceeds num_experts (" + std::to_string(c.num_local_experts) + ")");
  c.moe_intermediate_size = c.intermediate_size;
  c.norm_topk_prob = r.boolean("norm_topk_prob", false);
  for (const char* k : {"router_aux_loss_coef", "output_router_logits"}) r.has(k);
}

void read_experts_in_every_layer(const ConfigReader& r, LlamaConfig* out, int64_t default_experts = 8) {
  LlamaConfig& c = *out;
  c.num_local_experts = r.pos_int("num_local_experts", false, default_experts);
  c.num_experts_per_tok = r.experts_per_token(false, 2);
  c.moe_intermediate_size = c.intermediate_size;
  if (c.num_experts_per_tok > c.num_local_experts)
    r.fail("num_experts_per_tok", "exceeds num_local_experts (" + std::to_string(c.num_local_experts) + ")");
  if (c.num_local_experts > 4096) r.fail("num_local_experts", "is more than 4096");
}

// quant_method "mxfp4", which kiln reads for GPT-OSS only.
void refuse_mxfp4(const ConfigReader& r, const ConfigReader::Quantization& q, bool gpt_oss) {
  if (q.mxfp4 && !gpt_oss)
    r.fail("quantization_config", "has quant_method \"mxfp4\", which kiln reads for GptOssForCausalLM only");
}

// An image-text model whose text model kiln compiles (for text prompts): its class and model_type, its
// text model's, the config class's defaults for keys kiln otherwise requires (where the hub's text_config
// relies on them), and the vision tower's keys, read only to be left out.
struct ImageTextModel {
  const char *arch, *type, *text_arch, *text_type;
  std::vector<std::pair<const char*, nlohmann::json>> text_defaults;
  std::vector<const char*> vision_keys;
  bool softcap_unread;  // the text model's final_logit_softcapping, which this class never applies
  bool tie_nullable;    // the class types tie_word_embeddings Optional[bool] (None: untied)
  // A second text model the class builds where text_config's model_type names it (none: null)
  const char *alt_text_arch = nullptr, *alt_text_type = nullptr;
  LlamaConfig::TextNames names = LlamaConfig::TextNames::kLlava;
  // Qwen2-VL's and Qwen2.5-VL's config classes: without text_config, the text model's keys are the file's top-level
  // ones (kQwen2VlTextKeys), as the hub ships them; the LM head tied where either the file or text_config ties it.
  bool flat = false;
  bool tie_default = true;  // (the class's tie_word_embeddings where the file gives none)
  // text_config's class types tie_word_embeddings bool (a null refused); else it has no such field, and a null there
  // is no value (Qwen2-VL's, Qwen3-VL's)
  bool text_tie_typed = true;
};

// The keys Qwen2VLConfig and Qwen2_5_VLConfig move into their text_config when the file has none (the text config
// class's own, and the RoPE's); the file's dtype is copied.
const char* const kQwen2VlTextKeys[] = {
    "vocab_size",          "hidden_size",         "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "hidden_act",        "max_position_embeddings",
    "initializer_range",   "rms_norm_eps",        "use_cache",         "use_sliding_window",
    "sliding_window",      "max_window_layers",   "layer_types",       "attention_dropout",
    "rope_parameters",     "rope_scaling",        "rope_theta",        "bos_token_id",
    "eos_token_id",        "pad_token_id"};

// Qwen2VLTextConfig's and Qwen2_5_VLTextConfig's defaults (the same), and Qwen3VLTextConfig's, where they differ from
// Qwen2Config's and Qwen3Config's or where kiln requires the key (tests/fixtures/configs/Qwen2_5_VLTextConfig.json
// ...).
std::vector<std::pair<const char*, nlohmann::json>> qwen_vl_text_defaults(bool qwen3, bool moe = false) {
  if (moe)  // (Qwen3VLMoeTextConfig's; its head_dim: hidden_size / num_attention_heads)
    return {{"vocab_size", 151936},
            {"hidden_size", 2048},
            {"intermediate_size", 5632},
            {"num_hidden_layers", 24},
            {"num_attention_heads", 16},
            {"num_key_value_heads", 16},
            {"max_position_embeddings", 128000},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 500000.0},
            {"num_experts", 60},
            {"num_experts_per_tok", 4},
            {"moe_intermediate_size", 1408}};
  if (qwen3)
    return {{"vocab_size", 151936},
            {"hidden_size", 4096},
            {"intermediate_size", 22016},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 32},
            {"head_dim", 128},
            {"max_position_embeddings", 128000},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 500000.0}};
  return {{"vocab_size", 152064},
          {"hidden_size", 8192},
          {"intermediate_size", 29568},
          {"num_hidden_layers", 80},
          {"num_attention_heads", 64},
          {"num_key_value_heads", 8},
          {"max_position_embeddings", 32768},
          {"rms_norm_eps", 1e-5},
          {"max_window_layers", 80},
          {"rope_theta", 1000000.0}};
}

// M-RoPE (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) rotates sections of the frequencies by an image token's temporal, height
// and width positions; a text token's three are its position, so for text alone it is the plain RoPE kiln builds. The
// sections must be what transformers can run: a list of integers (null: refused); Qwen2-VL's (`split`, default
// [16, 24, 24]) non-negative and summing to head_dim / 2, which torch.split needs; Qwen3-VL's (default [24, 20, 20])
// at least three, which it indexes (and slices by: any integers).
void check_mrope_section(const ConfigReader& r, const nlohmann::json& j, int64_t head_dim, bool split) {
  const char* key = r.rope_key();
  const nlohmann::json* p = key && j[key].is_object() && j[key].contains("mrope_section") ? &j[key] : nullptr;
  const nlohmann::json s = p ? (*p)["mrope_section"] : split ? nlohmann::json{16, 24, 24} : nlohmann::json{24, 20, 20};
  // (named as the file has it: its RoPE object's mrope_section, or the default where the file gives none)
  const std::string name = p ? key : "mrope_section", where = p ? "mrope_section" : "is not given, and the default";
  const int64_t bound = int64_t(1) << 20;
  const bool ints =
      s.is_array() && std::all_of(s.begin(), s.end(), [&](const nlohmann::json& x) {
        return x.is_number_integer() && x.get<int64_t>() >= (split ? 0 : -bound) && x.get<int64_t>() <= bound;
      });
  if (!ints || s.size() < (split ? 1u : 3u))
    r.fail(name, where + (split ? " must be a list of non-negative integers (transformers cannot split the rotary "
                                  "frequencies by anything else)"
                                : " must be a list of at least three integers (transformers indexes and slices by "
                                  "them; kiln reads nothing else)"));
  int64_t sum = 0;
  for (const nlohmann::json& x : s) sum += x.get<int64_t>();
  if (split && sum != head_dim / 2)
    r.fail(name, where + " " + s.dump() + " sums to " + std::to_string(sum) + ", not head_dim / 2 = " +
                     std::to_string(head_dim / 2) + ": transformers cannot split the rotary frequencies by it");
}

// The image-text models' vision keys Qwen2-VL, Qwen2.5-VL and Qwen3-VL share (vision_token_id: the hub files', which
// no config class reads)
std::vector<const char*> qwen_vl_vision_keys() {
  return {"vision_config",         "image_token_id",      "video_token_id",
          "vision_start_token_id", "vision_end_token_id", "vision_token_id"};
}

const ImageTextModel* image_text_model(const std::string& arch) {
  static const ImageTextModel kModels[] = {
      // Gemma 3 4B/12B/27B: Gemma3TextConfig's defaults (tests/fixtures/configs/Gemma3TextConfig.json)
      {"Gemma3ForConditionalGeneration",
       "gemma3",
       "Gemma3ForCausalLM",
       "gemma3_text",
       {{"vocab_size", 262208},
        {"hidden_size", 2304},
        {"intermediate_size", 9216},
        {"num_hidden_layers", 26},
        {"num_attention_heads", 8}},
       {"vision_config", "mm_tokens_per_image", "boi_token_index", "eoi_token_index", "image_token_index",
        "boi_token_id", "eoi_token_id", "image_token_id"},
       true,
       true},
      // Mistral Small 3.1/3.2, Magistral Small: a MistralConfig text_config (the hub's is complete); Ministral 3
      {"Mistral3ForConditionalGeneration",
       "mistral3",
       "MistralForCausalLM",
       "mistral",
       {},
       {"vision_config", "image_token_index", "image_token_id", "projector_hidden_act", "vision_feature_layer",
        "multimodal_projector_bias", "spatial_merge_size"},
       false,
       false,
       // Ministral 3 (3B, 8B, 14B): a Ministral3Config text_config
       "Ministral3ForCausalLM",
       "ministral3"},
      // Qwen2-VL 2B/7B/72B, Qwen2.5-VL 3B/7B/32B/72B: Qwen2's layer (M-RoPE, plain RoPE for text alone)
      {"Qwen2VLForConditionalGeneration", "qwen2_vl", "Qwen2VLTextModel", "qwen2_vl_text", qwen_vl_text_defaults(false),
       qwen_vl_vision_keys(), /*softcap_unread=*/false, /*tie_nullable=*/false, nullptr, nullptr,
       LlamaConfig::TextNames::kQwen2Vl, /*flat=*/true, /*tie_default=*/false, /*text_tie_typed=*/false},
      {"Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl", "Qwen2_5_VLTextModel", "qwen2_5_vl_text",
       qwen_vl_text_defaults(false), qwen_vl_vision_keys(), /*softcap_unread=*/false, /*tie_nullable=*/false, nullptr,
       nullptr, LlamaConfig::TextNames::kQwen2Vl, /*flat=*/true, /*tie_default=*/false, /*text_tie_typed=*/false},
      // Qwen3-VL 2B/4B/8B/32B: Qwen3's layer (interleaved M-RoPE, plain RoPE for text alone)
      {"Qwen3VLForConditionalGeneration", "qwen3_vl", "Qwen3VLTextModel", "qwen3_vl_text", qwen_vl_text_defaults(true),
       qwen_vl_vision_keys(), /*softcap_unread=*/false, /*tie_nullable=*/false, nullptr, nullptr,
       LlamaConfig::TextNames::kQwen3Vl, /*flat=*/false, /*tie_default=*/false, /*text_tie_typed=*/false},
      // Qwen3-VL 30B-A3B, 235B-A22B: Qwen3-MoE's layer (top-k weights always normalized, experts fused)
      {"Qwen3VLMoeForConditionalGeneration", "qwen3_vl_moe", "Qwen3VLMoeTextModel", "qwen3_vl_moe_text",
       qwen_vl_text_defaults(true, true), qwen_vl_vision_keys(), /*softcap_unread=*/false, /*tie_nullable=*/false,
       nullptr, nullptr, LlamaConfig::TextNames::kQwen3Vl, /*flat=*/false, /*tie_default=*/false,
       /*text_tie_typed=*/true}};
  for (const ImageTextModel& m : kModels)
    if (arch == m.arch || arch == m.type) return &m;
  return nullptr;
}

// An image-text model's text model, from text_config (absent keys: m.text_defaults, then the text config
// class's as for a text checkpoint). The file's dtype applies where text_config gives none (where both give one and
// they disagree, kiln refuses rather than guess); the file's tie_word_embeddings (its class's default where absent)
// is what transformers 5 ties the LM head by, whatever text_config says (noted where that differs).
// `spelled`: set where the text is an EXAONE or InternLM3 file read under its attributes' names (parse_exaone,
// parse_internlm3): the keys the file spells otherwise, for errors.
using Spellings = std::vector<std::pair<std::string, std::string>>;  // (attribute, the file's key)
LlamaConfig parse_llama_text(const std::string& text, const std::string& path, const ImageTextModel* within,
                             const Spellings* spelled = nullptr);

using AttributeMap = std::vector<std::pair<const char*, const char*>>;  // (alias, attribute)

// A config class's attribute_map: j read with each alias under its attribute's name (into *k), errors naming the
// file's key (*spelled); both spellings given with different values are refused (transformers reads the alias's,
// whatever the order: kiln does not guess which was meant).
void read_attribute_map(const ConfigReader& r, const nlohmann::json& j, const AttributeMap& aliases,
                        const char* config_class, nlohmann::json* k, Spellings* spelled) {
  for (const auto& [alias, key] : aliases) {
    if (!j.contains(alias)) continue;
    // (a value of another JSON type disagrees too: 2.0 is no int to the class)
    if (j.contains(key) && (j[key] != j[alias] || j[key].type() != j[alias].type()))
      r.fail(alias, "= " + j[alias].dump() + " disagrees with " + key + " = " + j[key].dump() +
                        ", its other spelling (" + config_class + "'s attribute_map; transformers reads " + alias +
                        "): give one");
    (*k)[key] = j[alias];
    k->erase(alias);
    spelled->emplace_back(key, alias);
  }
}

// ExaoneConfig's attribute_map: the hub's EXAONE 3.0 / 3.5 files (its remote code's) spell num_hidden_layers,
// rms_norm_eps and hidden_act as num_layers, layer_norm_epsilon and activation_function.
LlamaConfig parse_exaone(const ConfigReader& r, const nlohmann::json& j, const std::string& text,
                         const std::string& path) {
  const AttributeMap aliases = {{"num_layers", "num_hidden_layers"},
                                {"layer_norm_epsilon", "rms_norm_eps"},
                                {"activation_function", "hidden_act"}};
  // (ExaoneConfig refuses a null attribute; a null alias it takes, and its model fails on it)
  r.refuse_null_values({"num_hidden_layers", "rms_norm_eps", "hidden_act"}, "ExaoneForCausalLM");
  for (const auto& [alias, key] : aliases)
    r.refuse_null(alias, std::string("with which transformers cannot run ExaoneForCausalLM (it reads it as ") + key +
                             "): give its value, or leave it out for " + key + " or its default");
  nlohmann::json k = j;
  Spellings spelled;
  read_attribute_map(r, j, aliases, "ExaoneConfig", &k, &spelled);
  LlamaConfig c = parse_llama_text(k.dump(), path, nullptr, &spelled);
  c.raw_json = text;
  return c;
}

// InternLM3Config's attribute_map: the hub's files (its remote code's) spell attention_bias and mlp_bias as qkv_bias
// and bias; the remote code puts qkv_bias on q, k and v and bias on o_proj and the MLP, LlamaForCausalLM
// attention_bias on q, k, v and o_proj: the class refuses the two apart (validate_architecture), which is where they
// agree. A null alias it takes as given (no biases, where both are null).
LlamaConfig parse_internlm3(const ConfigReader& r, const nlohmann::json& j, const std::string& text,
                            const std::string& path) {
  r.refuse_null_values({"attention_bias", "mlp_bias"}, "InternLM3ForCausalLM");  // (strict bools; the aliases not)
  nlohmann::json k = j;
  Spellings spelled;
  read_attribute_map(r, j, {{"qkv_bias", "attention_bias"}, {"bias", "mlp_bias"}}, "InternLM3Config", &k, &spelled);
  auto as_read = [&](const char* key) { return k.contains(key) ? k[key] : nlohmann::json(false); };
  const nlohmann::json attention = as_read("attention_bias"), mlp = as_read("mlp_bias");
  auto named = [&](const char* key) {
    for (const auto& [key_, alias] : spelled)
      if (key_ == key) return alias;
    return std::string(key);
  };
  if (attention != mlp || attention.type() != mlp.type())
    r.fail(named("attention_bias"), "= " + attention.dump() + " differs from " + named("mlp_bias") + " = " +
                                        mlp.dump() +
                                        ", which InternLM3Config refuses (LlamaForCausalLM puts one bias setting on "
                                        "q, k, v and o_proj): give them the same value");
  if (attention.is_null()) k["attention_bias"] = k["mlp_bias"] = false;  // (both aliases null: no biases)
  LlamaConfig c = parse_llama_text(k.dump(), path, nullptr, &spelled);
  c.raw_json = text;
  return c;
}

LlamaConfig parse_image_text(const ConfigReader& r, const nlohmann::json& j, const std::string& text,
                             const std::string& path, const ImageTextModel& m) {
  // (Qwen2-VL's and Qwen2.5-VL's hub files: no text_config, the text model's keys at the top)
  const bool flat = m.flat && !r.has("text_config");
  if (!flat && (!r.has("text_config") || !j["text_config"].is_object()))
    r.fail("text_config",
           std::string("is missing or not an object: kiln compiles ") + m.arch + "'s text model from it");
  nlohmann::json t = nlohmann::json::object();
  for (const char* k : kQwen2VlTextKeys) {
    if (!m.flat || !j.contains(k)) continue;
    if (flat) t[k] = j[k];
    // (beside text_config, a top-level copy transformers never reads: read where it is text_config's)
    if (flat || (j["text_config"].contains(k) && j["text_config"][k] == j[k])) r.has(k);
  }
  if (!flat) t = j["text_config"];
  // (the other text model the class takes, by text_config's model_type; without one, the first)
  const bool alt = m.alt_text_type && t.contains("model_type") && t["model_type"] == m.alt_text_type;
  const char* text_arch = alt ? m.alt_text_arch : m.text_arch;
  const char* text_type = alt ? m.alt_text_type : m.text_type;
  if (t.contains("model_type") && t["model_type"] != text_type)
    r.fail("text_config",
           "has model_type " + t["model_type"].dump() + ", not \"" + m.text_type + "\" (" + m.text_arch +
               (m.alt_text_type ? std::string(") or \"") + m.alt_text_type + "\" (" + m.alt_text_arch : std::string()) +
               ", the text models kiln reads for " + m.arch + ")");
  if (t.contains("architectures") && !t["architectures"].is_null() && t["architectures"] != nlohmann::json{text_arch})
    r.fail("text_config", "names architectures " + t["architectures"].dump() + ", not " + text_arch + "'s");
  t["model_type"] = text_type;
  t["architectures"] = {text_arch};
  if (!alt)
    for (const auto& [k, v] : m.text_defaults)  // (num_experts: absent under either of its names)
      if (!t.contains(k) && !(std::string(k) == "num_experts" && t.contains("num_local_experts"))) t[k] = v;
  const nlohmann::json given = t;  // (text_config as the file gives it)
  DType outer_dtype;
  r.dtype(&outer_dtype);  // (refuses a dtype and a torch_dtype that disagree)
  for (const char* k : {"torch_dtype", "dtype"}) {
    if (!r.has(k)) continue;
    for (const char* tk : {"torch_dtype", "dtype"})
      if (given.contains(tk) && !given[tk].is_null() && given[tk] != j[k])
        r.fail(k, "(" + j[k].dump() + ") disagrees with text_config's " + tk + " (" + given[tk].dump() + ")");
    t[k] = j[k];
  }
  // (Gemma3Config types it Optional[bool], None untied; Mistral3Config bool; their text configs bool)
  bool tie = r.boolean("tie_word_embeddings", m.tie_default, m.tie_nullable);
  if (given.contains("tie_word_embeddings") && given["tie_word_embeddings"].is_null() && m.text_tie_typed)
    r.fail("text_config.tie_word_embeddings", "is null, which transformers 5 refuses: give true or false");
  if (given.contains("tie_word_embeddings") && !given["tie_word_embeddings"].is_null()) {
    if (!given["tie_word_embeddings"].is_boolean())
      r.fail("text_config", "has a tie_word_embeddings that is not true or false");
  }
  // (both given and apart, as transformers 5 saves a tied Mistral3Config over Ministral3Config's untied default:
  // transformers 5 ties by the file's own, and so does kiln, with a note)
  // (Qwen2VLConfig and Qwen2_5_VLConfig tie where text_config does, whatever the file says)
  if (m.flat && given.contains("tie_word_embeddings") && given["tie_word_embeddings"] == true) tie = true;
  const bool tie_apart = given.contains("tie_word_embeddings") && given["tie_word_embeddings"].is_boolean() &&
                         given["tie_word_embeddings"] != tie;
  t["tie_word_embeddings"] = tie;  // (a checkpoint with an LM head of its own is untied, as transformers does)
  // Gemma3ForConditionalGeneration never soft-caps its logits (Gemma3ForCausalLM does, by the same key).
  if (m.softcap_unread && t.contains("final_logit_softcapping") && !t["final_logit_softcapping"].is_null())
    r.fail("text_config", std::string("sets final_logit_softcapping, which transformers' ") + m.arch +
                              " never applies (its " + text_arch +
                              " does); kiln refuses rather than guess whether it should");
  // (transformers reads the wrapper's quantization_config only: text_config's is reported below, as unknown keys)
  const bool text_quantization = t.contains("quantization_config") && !t["quantization_config"].is_null();
  t.erase("quantization_config");
  for (const char* k : m.vision_keys) r.has(k);  // (the vision tower's, which kiln does not compile)
  LlamaConfig c = parse_llama_text(t.dump(), flat ? path : path + ": text_config", &m);
  if (!c.rope.llama4_scaling_source.empty()) c.rope.llama4_scaling_source += " (text_config)";
  if (tie_apart)
    c.config_note += std::string(c.config_note.empty() ? "" : "; ") + "text_config's tie_word_embeddings (" +
                     given["tie_word_embeddings"].dump() +
                     ") is not what transformers 5 ties the LM head by: " + m.arch + "'s own (" +
                     (tie ? "true" : "false") + ") is read";
  c.architecture = m.arch;
  c.multimodal = true;
  c.text_names = m.names;
  c.raw_json = text;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  if (!flat)
    for (std::string& k : c.unmodeled) k = "text_config." + k;  // (the text config's unknown keys, named as such)
  if (text_quantization) c.unmodeled.push_back("text_config.quantization_config (transformers never reads it)");
  for (std::string& k : r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS})) c.unmodeled.push_back(std::move(k));
  return c;
}

// A GPT-style config class's own attribute names for its dimensions (its attribute_map reads hidden_size,
// num_hidden_layers, num_attention_heads and max_position_embeddings as them), its inner size's (4 · hidden when
// absent or null) and its default activation; `cls` and `family` name the class and the family in errors.
struct GptNames {
  const char *embd, *layer, *head, *positions, *inner, *activation, *cls, *family;
};
GptNames gpt2_names(const char* cls, const char* family, const char* activation = "gelu_new") {
  return {"n_embd", "n_layer", "n_head", "n_positions", "n_inner", activation, cls, family};
}

// Which of a config class's own attribute name and the name its attribute_map reads as it the file gives (the own
// one where both are given; refused where they disagree).
const char* attribute_key(const ConfigReader& r, const char* own, const char* mapped, const char* cls) {
  if (r.has(own) && r.has(mapped) && r.num(own, 0) != r.num(mapped, 0))
    r.fail(mapped, std::string("disagrees with ") + own + ", the attribute " + cls + " maps it to");
  return r.has(mapped) && !r.has(own) ? mapped : own;
}

// The dimensions of a GPT-style config class under its own names (n.embd ...) or those its attribute_map reads as
// them (attribute_key), null refused as transformers 5 refuses it; vocab_size too, layer_norm_epsilon and
// activation_function.
void read_gpt_dims(const ConfigReader& r, LlamaConfig& c, const GptNames& n, int64_t vocab, int64_t hidden,
                   int64_t layers, int64_t heads, int64_t positions) {
  r.refuse_null_values(
      {"layer_norm_epsilon", "activation_function", n.positions, n.embd, n.head, n.layer, "max_position_embeddings",
       "hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size"},
      c.architecture);
  auto spelled = [&](const char* own, const char* mapped) { return attribute_key(r, own, mapped, n.cls); };
  c.vocab_size = r.pos_int("vocab_size", false, vocab);
  c.hidden_size = r.pos_int(spelled(n.embd, "hidden_size"), false, hidden);
  c.num_hidden_layers = r.pos_int(spelled(n.layer, "num_hidden_layers"), false, layers);
  const char* head_key = spelled(n.head, "num_attention_heads");
  c.num_attention_heads = c.num_key_value_heads = r.pos_int(head_key, false, heads);
  c.max_position_embeddings = r.pos_int(spelled(n.positions, "max_position_embeddings"), false, positions);
  r.set_max_positions(c.max_position_embeddings);
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail(n.embd, std::string("is not divisible by ") + head_key + " (transformers refuses the model)");
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.intermediate_size = r.pos_int(n.inner, false, 4 * c.hidden_size);
  c.rms_norm_eps = r.num("layer_norm_epsilon", 1e-5);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(float(c.rms_norm_eps)))
    r.fail("layer_norm_epsilon", "must not be negative, and must be finite in f32");
  if (!act2fn_kind(r.str("activation_function", n.activation), &c.mlp_activation))
    r.fail("activation_function", std::string("must be ") + kAct2fnNames + " for " + n.family);
}

// GPT-2's and GPT-BigCode's switches: scale_attn_weights (false: unscaled_attention), add_cross_attention (refused:
// its layers' cross-attention is an encoder-decoder model's decoder's), the LM head tied by default.
void read_gpt2_switches(const ConfigReader& r, LlamaConfig& c) {
  c.unscaled_attention = !r.boolean("scale_attn_weights", true);
  if (r.boolean("add_cross_attention", false))
    r.fail("add_cross_attention",
           "is true: its layers' cross-attention belongs to an encoder-decoder model's decoder; kiln compiles " +
               c.architecture + " as a decoder-only model");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
}

// GPTJConfig (LlamaConfig::gptj), under its attribute names (n_embd, n_head, n_layer, n_positions; its attribute_map
// reads hidden_size, num_attention_heads, num_hidden_layers and max_position_embeddings as them, refused where both
// spellings disagree) and defaults: n_inner (4 · n_embd when null), rotary_dim (64; null, a RoPE over hidden_size
// that transformers cannot apply to a head, refused), activation_function (gelu_new), layer_norm_epsilon, untied.
// GPT-J-6B's file also carries rotary and scale_attn_weights, which GPTJ never reads (read at what it hard-wires), and
// the sequence-summary settings of a head GPTJForCausalLM has not.
LlamaConfig parse_gptj(const ConfigReader& r, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "GPTJForCausalLM";
  c.gptj = c.parallel_residual = c.pairwise_rope = c.mlp_bias = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  read_gpt_dims(r, c, gpt2_names("GPTJConfig", "GPT-J"), 50400, 4096, 28, 16, 2048);
  if (c.head_dim % 2 != 0)
    r.fail("n_embd", "/ n_head gives heads of " + std::to_string(c.head_dim) +
                         " dims: kiln's RoPE needs an even head (transformers runs it)");
  r.refuse_null("rotary_dim",
                "with which GPT-J's RoPE spans hidden_size, not a head: transformers cannot apply it; give its value");
  const int64_t rd = r.pos_int("rotary_dim", false, 64);
  if (rd > c.head_dim || rd % 2 != 0 || rd < 2)
    r.fail("rotary_dim", "(" + std::to_string(rd) + ") must be even, at least 2 and at most a head's " +
                             std::to_string(c.head_dim) + " dims");
  if (rd != c.head_dim) c.rotary_dim = rd;
  c.rope.type = "default";
  c.rope.theta = 10000.0;  // (GPT-J's sinusoid table: a fixed base)
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  r.hardwired("rotary", true);
  r.hardwired("scale_attn_weights", true);
  for (const char* k : {"attn_pdrop", "summary_activation", "summary_first_dropout", "summary_proj_to_labels",
                        "summary_type", "summary_use_proj"})
    r.has(k);
  c.has_dtype = r.dtype(&c.dtype);
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS});
  return c;
}

// GPT2Config (LlamaConfig::gpt2), under the same attribute names as GPT-J's (read_gpt_dims) and its defaults:
// activation_function (gelu_new), scale_attn_weights (head_dim^-½; false: 1) and scale_attn_by_inverse_layer_idx (a
// further 1 / (layer + 1)), the LM head tied. reorder_and_upcast_attn only upcasts eager attention to f32 (kiln
// computes in f32 anyway). Pre-quantized checkpoints (their Conv1D layers) and add_cross_attention (an encoder-decoder
// model's decoder) are refused; n_ctx, which old configs carry and transformers never reads, and the
// sequence-summary settings of a head GPT2LMHeadModel has not, are read and left.
LlamaConfig parse_gpt2(const ConfigReader& r, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "GPT2LMHeadModel";
  c.gpt2 = c.attention_bias = c.mlp_bias = true;
  c.quant = r.quantization();
  if (!c.quant.prequantized.empty() || c.quant.fp8 || c.quant.mxfp4)
    r.fail("quantization_config",
           "is set: kiln does not read pre-quantized GPT-2 checkpoints (their Conv1D layers); compile the "
           "unquantized checkpoint, with --quantize for quantized weights");
  read_gpt_dims(r, c, gpt2_names("GPT2Config", "GPT-2"), 50257, 768, 12, 12, 1024);
  read_gpt2_switches(r, c);
  c.gpt2_layer_scaled = r.boolean("scale_attn_by_inverse_layer_idx", false);
  r.refuse_null_switch("reorder_and_upcast_attn");  // (read and left below: a bool switch all the same)
  // (and the keys of GPT-2's older hub files, which transformers 5 never reads: gpt2-medium's n_special and
  // predict_special_tokens, distilgpt2's _num_labels, output_past)
  for (const char* k : {"attn_pdrop", "n_ctx", "reorder_and_upcast_attn", "summary_activation", "summary_first_dropout",
                        "summary_proj_to_labels", "summary_type", "summary_use_proj", "n_special",
                        "predict_special_tokens", "_num_labels", "output_past"})
    r.has(k);
  c.has_dtype = r.dtype(&c.dtype);
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS});
  return c;
}

// GPTNeoConfig (LlamaConfig::gpt_neo) and its defaults: hidden_size, num_layers and num_heads (its attribute_map
// reads num_hidden_layers and num_attention_heads as them), max_position_embeddings, intermediate_size (4 · hidden
// when null), activation_function (gelu_new), window_size (256), the LM head tied. Each layer's attention is "global"
// or "local" (a window of window_size): attention_types ([[["global", "local"], 12]] when absent or null) repeats
// each list of types its count of times; a file's attention_layers (the expanded list, which transformers 5 saves)
// overrides it, as transformers sets the file's keys after expanding attention_types.
LlamaConfig parse_gpt_neo(const ConfigReader& r, const nlohmann::json& j, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "GPTNeoForCausalLM";
  c.gpt_neo = c.unscaled_attention = c.out_bias = c.mlp_bias = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  read_gpt_dims(r, c,
                {"hidden_size", "num_layers", "num_heads", "max_position_embeddings", "intermediate_size", "gelu_new",
                 "GPTNeoConfig", "GPT-Neo"},
                50257, 2048, 24, 16, 2048);
  r.refuse_null_values({"window_size"}, c.architecture);
  // (a window past 2^31 covers any sequence kiln compiles: global attention, as transformers runs it)
  const bool past = r.has("window_size") && j["window_size"].is_number_unsigned() &&
                    j["window_size"].get<uint64_t>() > (uint64_t(1) << 31);
  c.sliding_window = past ? int64_t(1) << 31 : r.pos_int("window_size", false, 256);
  // Each layer's attention type, "global" or "local" (true: windowed).
  auto layer_type = [](const nlohmann::json& t, std::string* problem) {
    if (!(t == "global" || t == "local"))
      *problem =
          "has a layer type " + t.dump() + ": GPT-Neo's are \"global\" and \"local\" (transformers runs no other)";
    return t == "local";
  };
  // attention_types: a list of [types, count], each list of types repeated count times (none for a count below 1, as
  // Python's range), in order; its length counted before anything is expanded (a count may be huge). from_types
  // stays empty where it does not give num_layers types of those two (problem says why).
  const bool given_types = r.has("attention_types") && !j["attention_types"].is_null();
  const nlohmann::json at =
      given_types ? j["attention_types"] : nlohmann::json::parse(R"([[["global", "local"], 12]])");
  std::string problem, structure;  // (structure: what transformers cannot expand, refused beside attention_layers too)
  constexpr int64_t kHuge = (int64_t(1) << 31) + 1;  // (counts saturate here: past 2^31 types, refused below)
  int64_t count = 0;
  std::vector<int64_t> counts;  // (each entry's)
  if (!at.is_array()) structure = "must be a list of [[types...], count] entries";
  for (size_t e = 0; structure.empty() && e < at.size(); ++e) {
    const nlohmann::json& entry = at[e];
    // (as Python reads item[0] and item[1]: more items are left, a bool counts 0 or 1, a string's characters are
    // types)
    if (!entry.is_array() || entry.size() < 2 || !(entry[0].is_array() || entry[0].is_string()) ||
        !(entry[1].is_number_integer() || entry[1].is_boolean())) {
      structure = "has an entry " + entry.dump() + " that is not [[types...], count]";
      break;
    }
    const int64_t n = entry[1].is_boolean() ? int64_t(entry[1] == true)
                      : entry[1].is_number_unsigned() && entry[1].get<uint64_t>() > uint64_t(kHuge)
                          ? kHuge
                          : std::min(kHuge, std::max<int64_t>(0, entry[1].get<int64_t>()));
    counts.push_back(n);
    if (!entry[0].is_array()) problem = "has an entry " + entry.dump() + " whose types are a string, not a list";
    if (n > 0) count = std::min(kHuge, count + n * int64_t(std::min<size_t>(entry[0].size(), size_t(kHuge) / n)));
  }
  if (!structure.empty()) r.fail("attention_types", structure);
  if (problem.empty() && count != c.num_hidden_layers)
    problem = "gives " + std::to_string(count) +
              " layer types for num_layers = " + std::to_string(c.num_hidden_layers) +
              " (transformers refuses the config)";
  std::vector<bool> from_types;
  for (size_t e = 0; problem.empty() && e < at.size(); ++e)
    for (int64_t k = 0; !at[e][0].empty() && k < counts[e]; ++k)
      for (const nlohmann::json& t : at[e][0]) from_types.push_back(layer_type(t, &problem));
  if (!problem.empty()) from_types.clear();
  // (transformers expands attention_types even beside attention_layers: past 2^31 types it runs out of memory)
  if (count == kHuge)
    r.fail("attention_types",
           "gives more than 2^31 layer types, which transformers cannot expand (it does so before "
           "reading attention_layers)");
  r.refuse_null("attention_layers",
                "which transformers 5 refuses (it reads the file's list over attention_types): "
                "give the list, or leave it out for attention_types'");
  if (r.has("attention_layers")) {  // (the file's list, which transformers sets over what the types expand to)
    const nlohmann::json& al = j["attention_layers"];
    if (!al.is_array()) r.fail("attention_layers", "must be a list of \"global\" and \"local\"");
    if (int64_t(al.size()) != c.num_hidden_layers)
      r.fail("attention_layers", "gives " + std::to_string(al.size()) + " layer types for num_layers = " +
                                     std::to_string(c.num_hidden_layers) + " (transformers refuses the config)");
    std::string bad;
    for (const nlohmann::json& t : al) c.window_layer.push_back(layer_type(t, &bad));
    if (!bad.empty()) r.fail("attention_layers", bad);
    if (given_types && from_types != c.window_layer)
      c.config_note =
          "config.json's attention_layers differs from what its attention_types expands to; kiln reads "
          "attention_layers, as transformers does (it sets the file's keys after expanding the types)";
  } else {
    if (!problem.empty()) r.fail("attention_types", problem);
    c.window_layer = from_types;
  }
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  // (and EleutherAI's hub files' sequence-summary settings of a head GPTNeoForCausalLM has not)
  for (const char* k : {"embed_dropout", "resid_dropout", "classifier_dropout", "summary_activation",
                        "summary_first_dropout", "summary_proj_to_labels", "summary_type", "summary_use_proj"})
    r.has(k);
  c.has_dtype = r.dtype(&c.dtype);
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS});
  return c;
}

// GPTBigCodeConfig (LlamaConfig::gpt_bigcode), under GPT-2's attribute names (read_gpt_dims) and its defaults:
// activation_function (gelu_pytorch_tanh), multi_query (one k/v head), scale_attn_weights, the LM head tied.
// attention_softmax_in_fp32 and scale_attention_softmax_in_fp32 only upcast the softmax (kiln's is f32 anyway);
// num_key_value_heads, which GPTBigCodeConfig derives from multi_query, is never read by its model. StarCoder's hub
// file also carries the first implementation's runtime settings (inference_runner, pre_allocate_kv_cache, ...),
// which transformers never read, and the sequence-summary settings of a head GPTBigCodeForCausalLM has not.
LlamaConfig parse_gpt_bigcode(const ConfigReader& r, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "GPTBigCodeForCausalLM";
  c.gpt_bigcode = c.attention_bias = c.mlp_bias = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  read_gpt_dims(r, c, gpt2_names("GPTBigCodeConfig", "GPT-BigCode", "gelu_pytorch_tanh"), 50257, 768, 12, 12, 1024);
  if (r.boolean("multi_query", true)) c.num_key_value_heads = 1;
  read_gpt2_switches(r, c);
  r.boolean("attention_softmax_in_fp32", true);
  r.boolean("scale_attention_softmax_in_fp32", true);
  for (const char* k :
       {"attn_pdrop", "num_key_value_heads", "inference_runner", "max_batch_size", "max_sequence_length",
        "pad_key_length", "pre_allocate_kv_cache", "validate_runner_input", "summary_activation",
        "summary_first_dropout", "summary_proj_to_labels", "summary_type", "summary_use_proj", "n_ctx"})
    r.has(k);
  c.has_dtype = r.dtype(&c.dtype);
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS});
  return c;
}

// BloomConfig (LlamaConfig::bloom) and its defaults: hidden_size (64; a file's n_embed in its place, as BloomConfig
// reads it), n_layer (2) and n_head (8) (its attribute_map reads num_hidden_layers and num_attention_heads as them),
// layer_norm_epsilon, vocab_size (250880), the LM head tied. The MLP is 4 · hidden and its GELU the tanh one,
// whatever the file says (BLOOM's hub files carry n_inner null and Megatron's settings, which transformers never
// reads: read and left). slow_but_exact with pretraining_tp > 1 sums the output projections in slices without their
// biases (output_biases_dropped, noted). apply_residual_connection_post_layernorm true is refused. ALiBi reaches
// any length: max_position_embeddings is left unbounded (--max-seq defaults to 2048).
LlamaConfig parse_bloom(const ConfigReader& r, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "BloomForCausalLM";
  c.bloom = c.attention_bias = c.mlp_bias = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  r.refuse_null_values({"vocab_size", "hidden_size", "n_layer", "n_head", "num_hidden_layers", "num_attention_heads",
                        "layer_norm_epsilon", "pretraining_tp"},
                       c.architecture);
  c.vocab_size = r.pos_int("vocab_size", false, 250880);
  c.hidden_size = r.pos_int("hidden_size", false, 64);
  if (r.has("n_embed")) {  // (BloomConfig pops it and sets hidden_size from it; null: hidden_size stays)
    const int64_t n_embed = r.pos_int("n_embed", false, c.hidden_size);
    if (r.has("hidden_size") && n_embed != c.hidden_size)
      c.config_note = "config.json's n_embed (" + std::to_string(n_embed) + ") replaces its hidden_size (" +
                      std::to_string(c.hidden_size) + "), as BloomConfig reads them";
    c.hidden_size = n_embed;
  }
  c.num_hidden_layers = r.pos_int(attribute_key(r, "n_layer", "num_hidden_layers", "BloomConfig"), false, 2);
  c.num_attention_heads = c.num_key_value_heads =
      r.pos_int(attribute_key(r, "n_head", "num_attention_heads", "BloomConfig"), false, 8);
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail(r.has("n_embed") ? "n_embed" : "hidden_size",
           std::string("is not divisible by ") +
               (r.has("n_head") || !r.has("num_attention_heads") ? "n_head" : "num_attention_heads") +
               " (transformers refuses the model)");
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.intermediate_size = 4 * c.hidden_size;
  c.mlp_activation = Activation::kGeluTanh;
  c.rms_norm_eps = r.num("layer_norm_epsilon", 1e-5);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(float(c.rms_norm_eps)))
    r.fail("layer_norm_epsilon", "must not be negative, and must be finite in f32");
  c.max_position_embeddings = int64_t(1) << 24;
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  if (r.boolean("apply_residual_connection_post_layernorm", false))
    r.fail("apply_residual_connection_post_layernorm",
           "is true (each branch's residual the normed input), which kiln does not build");
  const bool slow_but_exact = r.boolean("slow_but_exact", false);
  // (any whole number: BloomConfig takes 0 or less, which runs the plain projections)
  const double tp = r.num("pretraining_tp", 1);
  if (tp != std::floor(tp)) r.fail("pretraining_tp", "must be a whole number");
  if (slow_but_exact && tp > 1) {
    c.output_biases_dropped = true;
    c.config_note +=
        std::string(c.config_note.empty() ? "" : "; ") +
        "config.json's slow_but_exact with pretraining_tp > 1: transformers' BLOOM then multiplies by the "
        "attention's dense and the MLP's dense_4h_to_h weights in slices and leaves out their biases; kiln "
        "does as it does (set slow_but_exact false for the biases)";
  }
  for (const char* k : {"hidden_dropout", "attention_softmax_in_fp32", "bias_dropout_fusion", "masked_softmax_fusion",
                        "n_inner", "offset_alibi", "skip_bias_add", "skip_bias_add_qkv", "seq_length"})
    r.has(k);
  c.has_dtype = r.dtype(&c.dtype);
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS});
  return c;
}

// A RoPE's base folded in as theta · b^(d / (d - 2)) (HunYuan's ntk_alpha, dynamic NTK's), read as type default
// thereafter; one that is not a positive finite number refused (key: the RoPE's key; what: the formula, in errors).
void stretch_rope_base(const ConfigReader& r, RopeConfig* rope, double b, int64_t d, const char* key,
                       const std::string& what) {
  rope->theta *= std::pow(b, double(d) / double(d - 2));
  rope->type = "default";
  if (!std::isfinite(rope->theta) || !(rope->theta > 0))  // (Python overflows, or the base is 0: no RoPE)
    r.fail(key, "gives a " + what + " that is not a positive finite number");
}

// rope type dynamic over d rotary dims: transformers' _compute_dynamic_ntk_parameters at M (max_position_embeddings,
// positive as read), in double as Python computes it; plans longer than M are refused (dynamic_positions: transformers
// recomputes the frequencies past it, which one fixed plan cannot follow).
void fold_dynamic_rope(const ConfigReader& r, RopeConfig* rope, int64_t d, int64_t M, const char* key) {
  if (rope->type != "dynamic") return;
  if (d <= 2) r.fail(key, "rope type dynamic needs a rotary dimension above 2 (its base is raised to d / (d - 2))");
  const double f = rope->factor, m = double(M);
  stretch_rope_base(r, rope, f * m / m - (f - 1), d, key,
                    "dynamic NTK base theta · ((factor · M / M) - (factor - 1))^(d / (d - 2))");
  rope->dynamic_positions = M;
}

// MosaicML's config classes' dimensions (MptConfig's and DbrxConfig's, `cls`): d_model (2048), n_layers (24) and
// n_heads (16), or the names their attribute_map reads as them (attribute_key), n_heads dividing d_model (one K/V head
// a head: DBRX sets its own), and vocab_size (default `vocab`). Returns the heads' key as the file spells it.
const char* read_mosaic_dims(const ConfigReader& r, LlamaConfig& c, const char* cls, int64_t vocab) {
  c.vocab_size = r.pos_int("vocab_size", false, vocab);
  c.hidden_size = r.pos_int(attribute_key(r, "d_model", "hidden_size", cls), false, 2048);
  c.num_hidden_layers = r.pos_int(attribute_key(r, "n_layers", "num_hidden_layers", cls), false, 24);
  const char* head_key = attribute_key(r, "n_heads", "num_attention_heads", cls);
  c.num_attention_heads = c.num_key_value_heads = r.pos_int(head_key, false, 16);
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail(head_key, std::string("does not divide d_model (transformers refuses the model)"));
  c.head_dim = c.hidden_size / c.num_attention_heads;
  return head_key;
}

// A sub-config (MPT's and DBRX's attn_config, DBRX's ffn_config: key k, of class cls's keys): an object, {} where
// absent or null (the class's defaults).
nlohmann::json sub_config(const ConfigReader& r, const nlohmann::json& j, const char* k, const char* cls) {
  if (r.has(k) && !j[k].is_object()) r.fail(k, std::string("must be an object of ") + cls + "'s keys");
  return r.has(k) ? j[k] : nlohmann::json::object();
}

// A sub-config's keys (MPT's and DBRX's attn_config, DBRX's ffn_config: `name`) its reader left unmodeled, as
// "name.key = value". (transformers 4 wrote every PretrainedConfig attribute into them, databricks' files so: its
// dtype and tie_word_embeddings there are the class defaults, which no model reads.)
void add_unmodeled(LlamaConfig& c, const ConfigReader& sub, const std::string& name) {
  for (std::string& k :
       sub.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS, "dtype", "torch_dtype", "tie_word_embeddings"}))
    c.unmodeled.push_back(name + "." + k);
}

// MptConfig (LlamaConfig::mpt) and its defaults: d_model (2048), n_heads (16) and n_layers (24) (its attribute_map
// reads hidden_size, num_attention_heads and num_hidden_layers as them), max_seq_len (2048: the ALiBi table
// transformers builds, past which it cannot run), vocab_size (50368), layer_norm_epsilon, the LM head tied, and
// attn_config (MptAttentionConfig's defaults when absent or null) for softmax_scale. transformers' MPT hard-wires
// what mosaicml's own code reads from these: 4 · d_model MLPs (expansion_ratio), no biases (no_bias), LayerNorms,
// ALiBi with alibi_bias_max 8, multi-head attention, no logit_scale, prefix_lm, qk_ln or sequence ids; any other value
// is refused by name, as is softmax_scale 0 (which transformers multiplies by and mosaicml's code reads as the
// default); clip_qkv clamps Wqkv's output (read_clip_qkv). emb_pdrop, embedding_fraction
// (a training-time gradient split), learned_pos_emb (which transformers never reads: no positions beside ALiBi),
// init_device, init_config, verbose, tokenizer_name and attn_impl change nothing: read and left.
LlamaConfig parse_mpt(const ConfigReader& r, const nlohmann::json& j, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "MptForCausalLM";
  c.mpt = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  r.refuse_null_values({"d_model", "n_heads", "n_layers", "hidden_size", "num_attention_heads", "num_hidden_layers",
                        "max_seq_len", "vocab_size", "layer_norm_epsilon", "expansion_ratio"},
                       c.architecture);
  read_mosaic_dims(r, c, "MptConfig", 50368);
  c.intermediate_size = 4 * c.hidden_size;
  c.mlp_activation = Activation::kGelu;
  c.max_position_embeddings = r.pos_int("max_seq_len", false, 2048);
  c.rms_norm_eps = r.num("layer_norm_epsilon", 1e-5);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(float(c.rms_norm_eps)))
    r.fail("layer_norm_epsilon", "must not be negative, and must be finite in f32");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  r.hardwired("expansion_ratio", 4);
  r.refuse_null_switch("no_bias");
  r.hardwired("no_bias", true);
  r.refuse_null_switch("learned_pos_emb");
  r.hardwired("logit_scale", nullptr);
  r.only("norm_type", {"low_precision_layernorm", "layernorm"});
  for (const char* k : {"emb_pdrop", "embedding_fraction", "learned_pos_emb", "init_device", "init_config", "verbose",
                        "tokenizer_name"})
    r.has(k);
  const nlohmann::json attn = sub_config(r, j, "attn_config", "MptAttentionConfig");
  ConfigReader a(attn, "attn_config");
  a.set_strict_booleans();
  auto wired = [&](const char* k, const nlohmann::json& builds) {
    if (attn.contains(k) && attn[k].is_null())  // (MptAttentionConfig types each of these: null refused)
      r.fail("attn_config", std::string("has a null ") + k + ", which transformers 5 refuses: give " + builds.dump() +
                                " or leave it out");
    if (a.has(k) && attn[k] != builds)
      r.fail("attn_config", std::string("has ") + k + " = " + attn[k].dump() +
                                ", which transformers' MptForCausalLM never reads (it builds " + builds.dump() +
                                "); kiln refuses rather than guess what the checkpoint means");
  };
  wired("attn_type", "multihead_attention");
  wired("alibi", true);
  wired("alibi_bias_max", 8);
  wired("prefix_lm", false);
  wired("qk_ln", false);
  wired("attn_uses_sequence_id", false);
  // (clip_qkv 0 clamps nothing: transformers tests it for truth)
  if (a.has("clip_qkv")) c.clip_qkv = read_clip_qkv(r, attn, "attn_config", true);
  if (a.has("softmax_scale")) {
    // (0: transformers multiplies the scores by it, mosaicml's code reads it as head_dim^-1/2: refused)
    const nlohmann::json& s = attn["softmax_scale"];
    if (!s.is_number() || !std::isfinite(s.get<double>()) || s.get<double>() == 0)
      r.fail("attn_config", "has softmax_scale = " + s.dump() +
                                ": give a finite number other than 0, which transformers and mosaicml's code read "
                                "otherwise (null: head_dim^-1/2)");
    c.softmax_scale_given = true;
    c.softmax_scale = s.get<double>();
  }
  for (const char* k : {"attn_pdrop", "attn_impl"}) a.has(k);
  add_unmodeled(c, a, "attn_config");
  c.has_dtype = r.dtype(&c.dtype);
  for (std::string& k : r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS})) c.unmodeled.push_back(std::move(k));
  return c;
}

// DbrxConfig (LlamaConfig::dbrx) and its defaults: d_model (2048), n_heads (16), n_layers (24) and max_seq_len (2048)
// (its attribute_map reads hidden_size, num_attention_heads, num_hidden_layers and max_position_embeddings as them),
// vocab_size (32000), the LM head untied (tied refused, as DbrxConfig refuses it). attn_config (DbrxAttentionConfig's
// keys; absent or null: its defaults): kv_n_heads (1), clip_qkv (Wqkv's output clamped; null: none, 0 clamps every
// value to 0 as transformers tests it against None). ffn_config (DbrxFFNConfig's): ffn_hidden_size (3584),
// moe_num_experts (4), moe_top_k (1), moe_normalize_expert_weights (1.0: the top-k weights divided by their sum, the
// 1-norm; null: not renormalized; another p-norm refused), ffn_act_fn ({"name": "silu"}). LayerNorms at torch's eps
// (1e-5: no key sets it). RoPE: transformers 5 reads rope_parameters (or rope_theta / rope_scaling; default theta 1e4)
// and never attn_config.rope_theta, which DBRX's own code and transformers 4 take as the base (databricks/dbrx-*'s
// files give 5e5 there and no RoPE of their own): kiln takes attn_config.rope_theta where the file has no RoPE at the
// top, and refuses the two where they disagree rather than guess. Training-only keys (the dropouts, moe_jitter_eps,
// moe_loss_weight) change nothing, nor do the top-level num_key_value_heads (DbrxConfig's copy of kv_n_heads, which
// its attention never reads) and ffn_config.hidden_size (which DbrxConfig overwrites with d_model); mosaicml's
// uniform_expert_assignment is read only at false (what transformers builds). An odd head size is refused (RoPE
// rotates pairs).
LlamaConfig parse_dbrx(const ConfigReader& r, const nlohmann::json& j, const std::string& text,
                       const std::string& path) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "DbrxForCausalLM";
  c.dbrx = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  r.refuse_null_values({"d_model", "n_heads", "n_layers", "max_seq_len", "hidden_size", "num_attention_heads",
                        "num_hidden_layers", "max_position_embeddings", "vocab_size"},
                       c.architecture);
  const char* head_key = read_mosaic_dims(r, c, "DbrxConfig", 32000);
  if (c.head_dim % 2 != 0)
    r.fail(head_key, "leaves an odd head size (d_model / n_heads = " + std::to_string(c.head_dim) +
                         "), which RoPE cannot rotate in pairs (transformers cannot run the model)");
  c.max_position_embeddings =
      r.pos_int(attribute_key(r, "max_seq_len", "max_position_embeddings", "DbrxConfig"), false, 2048);
  r.set_max_positions(c.max_position_embeddings);
  c.rms_norm_eps = 1e-5;  // (nn.LayerNorm's default)
  r.refuse_null_switch("tie_word_embeddings");
  if (r.boolean("tie_word_embeddings", false))
    r.fail("tie_word_embeddings", "is true, which DbrxConfig refuses (DBRX's LM head is its own)");
  // attn_config and ffn_config: objects of their classes' keys (null: the defaults)
  const nlohmann::json attn = sub_config(r, j, "attn_config", "DbrxAttentionConfig"),
                       ffn = sub_config(r, j, "ffn_config", "DbrxFFNConfig");
  ConfigReader a(attn, path + ": attn_config"), f(ffn, path + ": ffn_config");
  a.set_strict_booleans();
  f.set_strict_booleans();
  a.refuse_null_values({"kv_n_heads", "attn_pdrop"}, c.architecture);
  c.num_key_value_heads = a.pos_int("kv_n_heads", false, 1);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    a.fail("kv_n_heads", "does not divide n_heads (transformers cannot run the model)");
  r.has("num_key_value_heads");  // (DbrxConfig's copy of kv_n_heads, which no DBRX attention reads)
  c.clip_qkv = read_clip_qkv(a, attn, "clip_qkv", false);
  a.has("attn_pdrop");
  // RoPE: the top level's (transformers 5's) or attn_config.rope_theta (DBRX's own); both: they must agree
  const char* rope_key = r.rope_key();
  const bool top_rope = rope_key != nullptr || r.has("rope_theta");
  const bool top_theta =
      r.has("rope_theta") || (rope_key && j[rope_key].is_object() && r.has(j[rope_key], "rope_theta"));
  c.rope = r.rope({"default", "linear", "llama3", "yarn", "dynamic"}, 10000.0);
  if (a.has("rope_theta")) {
    const nlohmann::json& t = attn["rope_theta"];
    if (!t.is_number() || !(t.get<double>() > 0) || !std::isfinite(t.get<double>()))
      a.fail("rope_theta", "= " + t.dump() + " must be a positive number");
    if (!top_rope) {
      c.rope.theta = t.get<double>();
      if (c.rope.theta != 10000.0)
        c.config_note = "RoPE base " + t.dump() +
                        " from attn_config.rope_theta, as DBRX's own code and transformers 4 read it (transformers 5 "
                        "reads this file at its default base 10000: it never reads attn_config.rope_theta)";
    } else if (c.rope.theta != t.get<double>()) {
      r.fail("attn_config",
             "has rope_theta = " + t.dump() +
                 " (the RoPE base of DBRX's own code and transformers 4), but the file's RoPE at the "
                 "top " +
                 (top_theta ? "has base " : "gives no base, which transformers 5 reads as its default ") +
                 nlohmann::json(c.rope.theta).dump() +
                 " (the one transformers 5 reads): kiln refuses rather than guess; keep one, or make "
                 "them agree");
    }
  }
  fold_dynamic_rope(r, &c.rope, c.head_dim, c.max_position_embeddings, rope_key ? rope_key : "rope_parameters");
  // ffn_config
  f.refuse_null_values({"ffn_hidden_size", "moe_num_experts", "moe_top_k", "moe_loss_weight", "hidden_size"},
                       c.architecture);
  c.intermediate_size = c.moe_intermediate_size = f.pos_int("ffn_hidden_size", false, 3584);
  c.num_local_experts = f.pos_int("moe_num_experts", false, 4);
  if (c.num_local_experts > 4096) f.fail("moe_num_experts", "is more than 4096");
  c.num_experts_per_tok = f.pos_int("moe_top_k", false, 1);
  if (c.num_experts_per_tok > kMaxMoeTopK)
    f.fail("moe_top_k", "is more than " + std::to_string(kMaxMoeTopK) + " (the most kiln routes a token to)");
  if (c.num_experts_per_tok > c.num_local_experts)
    f.fail("moe_top_k", "exceeds moe_num_experts (" + std::to_string(c.num_local_experts) + ")");
  c.norm_topk_prob = true;
  if (ffn.contains("moe_normalize_expert_weights")) {
    f.has("moe_normalize_expert_weights");
    const nlohmann::json& p = ffn["moe_normalize_expert_weights"];
    // (an integer 1 too, as DBRX's own code and transformers 4 read it; transformers 5.24's strict class takes floats)
    if (p.is_null()) c.norm_topk_prob = false;
    else if (!p.is_number() || p.get<double>() != 1)
      f.fail("moe_normalize_expert_weights",
             "= " + p.dump() +
                 ": transformers divides the chosen experts' weights by their p-norm for this p; kiln builds p = 1 "
                 "(their sum) or null (no division) only");
  }
  if (f.has("ffn_act_fn")) {  // (null: silu)
    const nlohmann::json& act = ffn["ffn_act_fn"];
    if (!act.is_object()) f.fail("ffn_act_fn", "must be an object with the activation's name");
    for (const auto& [k, v] : act.items())
      if (k != "name")
        f.fail("ffn_act_fn", "has " + k + " = " + v.dump() +
                                 ", an argument DBRX's own code passes to the activation and transformers drops: "
                                 "kiln refuses rather than guess");
    if (act.contains("name") && act["name"] != "silu" && act["name"] != "swish")
      f.fail("ffn_act_fn",
             "names the activation " + act["name"].dump() + ": kiln builds DBRX's experts with silu only");
  }
  f.has("hidden_size");  // (which DbrxConfig overwrites with d_model and DBRX's own code never has)
  if (f.has("uniform_expert_assignment") && ffn["uniform_expert_assignment"] != false)
    f.fail("uniform_expert_assignment",
           "= " + ffn["uniform_expert_assignment"].dump() +
               ", which transformers never reads (mosaicml's code then routes tokens uniformly): kiln builds false");
  for (const char* k : {"moe_jitter_eps", "moe_loss_weight"}) f.has(k);
  r.has("emb_pdrop");
  add_unmodeled(c, a, "attn_config");
  add_unmodeled(c, f, "ffn_config");
  c.has_dtype = r.dtype(&c.dtype);
  for (std::string& k : r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS})) c.unmodeled.push_back(std::move(k));
  return c;
}

// OPTConfig (LlamaConfig::opt) and its defaults: hidden_size, num_hidden_layers, num_attention_heads, ffn_dim,
// max_position_embeddings, activation_function (relu), enable_bias, the LM head tied; its LayerNorms' eps is
// torch's default (1e-5: no key sets it). OPT-350m's layout (a LayerNorm after each branch with do_layer_norm_before
// false, word_embed_proj_dim other than hidden_size: projections around the decoder), LayerNorms without weights
// (layer_norm_elementwise_affine false) and _remove_final_layer_norm are refused by name.
LlamaConfig parse_opt(const ConfigReader& r, const std::string& text) {
  LlamaConfig c;
  c.raw_json = text;
  c.architecture = "OPTForCausalLM";
  c.opt = true;
  c.quant = r.quantization();
  refuse_mxfp4(r, c.quant, false);
  r.refuse_null_values({"activation_function", "hidden_size", "num_attention_heads", "num_hidden_layers", "ffn_dim",
                        "max_position_embeddings", "vocab_size"},
                       c.architecture);
  c.vocab_size = r.pos_int("vocab_size", false, 50272);
  c.hidden_size = r.pos_int("hidden_size", false, 768);
  c.num_hidden_layers = r.pos_int("num_hidden_layers", false, 12);
  c.num_attention_heads = c.num_key_value_heads = r.pos_int("num_attention_heads", false, 12);
  if (c.hidden_size % c.num_attention_heads != 0)
    r.fail("hidden_size", "is not divisible by num_attention_heads (transformers refuses the model)");
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.intermediate_size = r.pos_int("ffn_dim", false, 3072);
  c.max_position_embeddings = r.pos_int("max_position_embeddings", false, 2048);
  r.set_max_positions(c.max_position_embeddings);
  if (!act2fn_kind(r.str("activation_function", "relu"), &c.mlp_activation))
    r.fail("activation_function", std::string("must be ") + kAct2fnNames + " for OPT");
  c.attention_bias = c.mlp_bias = r.boolean("enable_bias", true);
  c.rms_norm_eps = 1e-5;  // (nn.LayerNorm's default)
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  if (!r.boolean("do_layer_norm_before", true))
    r.fail("do_layer_norm_before",
           "is false (OPT-350m's layout: a LayerNorm after each branch), which kiln does not build");
  if (r.boolean("_remove_final_layer_norm", false))
    r.fail("_remove_final_layer_norm", "is true: kiln builds OPT with its final LayerNorm");
  if (!r.boolean("layer_norm_elementwise_affine", true))
    r.fail("layer_norm_elementwise_affine", "is false (LayerNorms without weights), which kiln does not build");
  if (r.pos_int("word_embed_proj_dim", false, c.hidden_size) != c.hidden_size)  // (null: hidden_size)
    r.fail("word_embed_proj_dim",
           "differs from hidden_size (OPT-350m's projections around the decoder), which kiln does not build");
  // (activation_dropout: old files'; learned_embeddings, scale_embeddings: Galactica's, which OPT never reads)
  for (const char* k : {"layerdrop", "init_std", "activation_dropout", "learned_embeddings", "scale_embeddings"})
    r.has(k);
  c.has_dtype = r.dtype(&c.dtype);
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS});
  return c;
}

}  // namespace

namespace {

// parse_llama_config; `within`: the image-text model whose text model this is (its text classes are read there only)
LlamaConfig parse_llama_text(const std::string& text, const std::string& path, const ImageTextModel* within,
                             const Spellings* spelled) {
  LlamaConfig c;
  c.raw_json = text;
  const nlohmann::json j = parse_json_limited(text.data(), text.data() + text.size(), path);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  ConfigReader r(j, path);
  r.set_strict_booleans();
  if (spelled)
    for (const auto& [key, as_written] : *spelled) r.set_spelling(key, as_written);
  const std::string arch = r.model_architecture();
  const bool exaone = arch == "ExaoneForCausalLM" || arch == "exaone";
  if (exaone && !spelled) return parse_exaone(r, j, text, path);
  const bool internlm3 = arch == "InternLM3ForCausalLM" || arch == "internlm3";
  if (internlm3 && !spelled) return parse_internlm3(r, j, text, path);
  const bool iquestcoder = arch == "IQuestCoderForCausalLM" || arch == "iquestcoder";
  if (const ImageTextModel* m = image_text_model(arch)) return parse_image_text(r, j, text, path, *m);
  if (arch == "GPTJForCausalLM" || arch == "gptj") return parse_gptj(r, text);
  if (arch == "GPT2LMHeadModel" || arch == "gpt2") return parse_gpt2(r, text);
  if (arch == "OPTForCausalLM" || arch == "opt") return parse_opt(r, text);
  if (arch == "GPTNeoForCausalLM" || arch == "gpt_neo") return parse_gpt_neo(r, j, text);
  if (arch == "GPTBigCodeForCausalLM" || arch == "gpt_bigcode") return parse_gpt_bigcode(r, text);
  if (arch == "BloomForCausalLM" || arch == "bloom") return parse_bloom(r, text);
  if (arch == "MptForCausalLM" || arch == "mpt") return parse_mpt(r, j, text);
  if (arch == "DbrxForCausalLM" || arch == "dbrx") return parse_dbrx(r, j, text, path);
  c.quant = r.quantization();
  // (the text models of Qwen2-VL, Qwen2.5-VL and Qwen3-VL: Qwen2's and Qwen3's layers with M-RoPE)
  const bool qwen2_vl = within && (arch == "Qwen2VLTextModel" || arch == "Qwen2_5_VLTextModel");
  const bool qwen3_vl_moe = within && arch == "Qwen3VLMoeTextModel";
  const bool qwen3_vl = within && (arch == "Qwen3VLTextModel" || qwen3_vl_moe);
  const bool qwen2 = arch == "Qwen2ForCausalLM" || arch == "qwen2" || qwen2_vl;
  const bool mistral = arch == "MistralForCausalLM" || arch == "mistral";
  const bool ministral = arch == "MinistralForCausalLM" || arch == "ministral";
  const bool ministral3 = arch == "Ministral3ForCausalLM" || arch == "ministral3";
  // Ministral3Config without rope_parameters: its own (yarn, Ministral 3's), set before transformers reads a legacy
  // rope_scaling over it (`rope_scaling or rope_parameters`: an empty or false one leaves the default).
  if (ministral3 && !(j.contains("rope_parameters") && !j["rope_parameters"].is_null())) {
    nlohmann::json k = j;
    k["rope_parameters"] = {{"rope_type", "yarn"},
                            {"rope_theta", 1e6},
                            {"factor", 16.0},
                            {"original_max_position_embeddings", 16384},
                            {"beta_fast", 32.0},
                            {"beta_slow", 1.0},
                            {"mscale", 1.0},
                            {"mscale_all_dim", 1.0},
                            {"llama_4_scaling_beta", 0.1}};
    LlamaConfig d = parse_llama_text(k.dump(), path, within);
    d.raw_json = text;
    if (d.rope.llama4_scaling_source == "original_max_position_embeddings in rope_parameters")  // (the default's)
      d.rope.llama4_scaling_source = "original_max_position_embeddings of Ministral3Config's default RoPE object";
    return d;
  }
  // ApertusConfig without a RoPE object (rope_parameters absent or null, rope_scaling absent or one Python reads as
  // false): its own (llama3, theta 1.2e7, factor 8 over 8192 positions), whatever rope_theta says. transformers
  // 4.56-4.57 took that default only for an absent rope_scaling, with rope_theta, and read a null one as no scaling; it
  // never reads rope_parameters, which transformers 5 reads as given where it is {} (the default RoPE): where the two
  // read a file apart kiln refuses rather than guess.
  // CwmConfig likewise (llama3, theta 1e6, factor 16 over 8192 positions): transformers 5 ignores a top-level
  // rope_theta there, which kiln refuses rather than guess (a {} rope_parameters is the default RoPE, read below).
  if (const bool apertus = arch == "ApertusForCausalLM" || arch == "apertus",
      cwm = arch == "CwmForCausalLM" || arch == "cwm";
      (apertus || cwm) && (!j.contains("rope_scaling") || python_falsy(j["rope_scaling"])) &&
      (!j.contains("rope_parameters") || j["rope_parameters"].is_null() ||
       (apertus && j["rope_parameters"].is_object() && j["rope_parameters"].empty()))) {
    const double kTheta = apertus ? 1.2e7 : 1e6;
    if (j.contains("rope_parameters") && !j["rope_parameters"].is_null())
      r.fail("rope_parameters",
             "= {}: transformers 5 reads it as the default RoPE (no scaling, rope_theta "
             "1.2e7 or as given), transformers 4.56-4.57 never read it (ApertusConfig's llama3 "
             "RoPE): kiln does not guess which was meant; give the RoPE object");
    if (apertus && j.contains("rope_scaling"))
      r.fail(
          "rope_scaling",
          "= " + j["rope_scaling"].dump() +
              ": transformers 5 reads ApertusConfig's default RoPE in its place (llama3, rope_theta 1.2e7, factor 8, "
              "original_max_position_embeddings 8192, low_freq_factor 1, high_freq_factor 4), transformers 4.56-4.57 "
              "read it as no scaling (the default RoPE, rope_theta as given): kiln does not guess which was meant; "
              "give the RoPE object");
    if (cwm && r.has("rope_theta") && !(j["rope_theta"].is_number() && j["rope_theta"].get<double>() == kTheta))
      r.fail("rope_theta", "= " + j["rope_theta"].dump() +
                               " without a RoPE object: transformers 5 ignores it for CwmConfig's default RoPE "
                               "(llama3, rope_theta 1e6, factor 16, original_max_position_embeddings 8192, "
                               "low_freq_factor 1, high_freq_factor 4): kiln refuses rather than guess which was "
                               "meant; give rope_parameters");
    if (apertus && j.contains("rope_theta") &&
        !(j["rope_theta"].is_number() && j["rope_theta"].get<double>() == kTheta))
      r.fail("rope_theta",
             "= " + j["rope_theta"].dump() +
                 " without rope_scaling: transformers 5 ignores it for ApertusConfig's default RoPE "
                 "(llama3, rope_theta 1.2e7), transformers 4.56-4.57 " +
                 (j["rope_theta"].is_null() ? "cannot build that RoPE without it" : "read that RoPE with it") +
                 ": kiln does not guess which was meant; give rope_scaling or rope_parameters");
    nlohmann::json k = j;
    k.erase("rope_theta");
    k.erase("rope_scaling");
    k["rope_parameters"] = {{"rope_type", "llama3"},          {"rope_theta", kTheta},
                            {"factor", apertus ? 8.0 : 16.0}, {"original_max_position_embeddings", 8192},
                            {"low_freq_factor", 1.0},         {"high_freq_factor", 4.0}};
    LlamaConfig d = parse_llama_text(k.dump(), path, within);
    d.raw_json = text;
    return d;
  }
  const bool qwen3_moe = arch == "Qwen3MoeForCausalLM" || arch == "qwen3_moe" || qwen3_vl_moe;
  const bool qwen2_moe = arch == "Qwen2MoeForCausalLM" || arch == "qwen2_moe";
  const bool qwen3 = arch == "Qwen3ForCausalLM" || arch == "qwen3" || qwen3_moe || qwen3_vl;
  const bool mixtral = arch == "MixtralForCausalLM" || arch == "mixtral";
  const bool phi3 = arch == "Phi3ForCausalLM" || arch == "phi3";
  const bool phi = arch == "PhiForCausalLM" || arch == "phi";
  const bool hunyuan_moe = arch == "HunYuanMoEV1ForCausalLM" || arch == "hunyuan_v1_moe";
  const bool hunyuan = arch == "HunYuanDenseV1ForCausalLM" || arch == "hunyuan_v1_dense" || hunyuan_moe;
  const bool ernie_moe = arch == "Ernie4_5_MoeForCausalLM" || arch == "ernie4_5_moe";
  const bool ernie = arch == "Ernie4_5ForCausalLM" || arch == "ernie4_5" || ernie_moe;
  const bool olmo3 = arch == "Olmo3ForCausalLM" || arch == "olmo3";
  const bool glm1 = arch == "GlmForCausalLM" || arch == "glm";
  const bool glm4 = arch == "Glm4ForCausalLM" || arch == "glm4" || glm1;
  const bool exaone4 = arch == "Exaone4ForCausalLM" || arch == "exaone4";
  const bool exaone_moe = arch == "ExaoneMoeForCausalLM" || arch == "exaone_moe";
  const bool seed_oss = arch == "SeedOssForCausalLM" || arch == "seed_oss";
  const bool gpt_oss = arch == "GptOssForCausalLM" || arch == "gpt_oss";
  const bool helium = arch == "HeliumForCausalLM" || arch == "helium";
  const bool arcee = arch == "ArceeForCausalLM" || arch == "arcee";
  const bool starcoder2 = arch == "Starcoder2ForCausalLM" || arch == "starcoder2";
  const bool stablelm = arch == "StableLmForCausalLM" || arch == "stablelm";
  const bool olmoe = arch == "OlmoeForCausalLM" || arch == "olmoe";
  const bool olmo1 = arch == "OlmoForCausalLM" || arch == "olmo";
  const bool nemotron = arch == "NemotronForCausalLM" || arch == "nemotron";
  const bool gpt_neox = arch == "GPTNeoXForCausalLM" || arch == "gpt_neox";
  // (Solar Open: Glm4MoeConfig's experts in every layer under LLaMA's attention; read as GLM-4.5's otherwise)
  const bool solar = arch == "SolarOpenForCausalLM" || arch == "solar_open";
  const bool glm4_moe = arch == "Glm4MoeForCausalLM" || arch == "glm4_moe" || solar;
  const bool dots1 = arch == "Dots1ForCausalLM" || arch == "dots1";
  const bool minimax_m2 = arch == "MiniMaxM2ForCausalLM" || arch == "minimax_m2";
  const bool falcon = arch == "FalconForCausalLM" || arch == "falcon";
  const bool cohere2 = arch == "Cohere2ForCausalLM" || arch == "cohere2";
  const bool cohere = arch == "CohereForCausalLM" || arch == "cohere" || cohere2;
  const bool olmo2 = arch == "Olmo2ForCausalLM" || arch == "olmo2" || olmo3;
  const bool vaultgemma = arch == "VaultGemmaForCausalLM" || arch == "vaultgemma";
  const bool gemma2 = arch == "Gemma2ForCausalLM" || arch == "gemma2" || vaultgemma;
  const bool gemma1 = arch == "GemmaForCausalLM" || arch == "gemma";
  const bool gemma = arch == "Gemma3ForCausalLM" || arch == "gemma3_text" || gemma2 || gemma1;
  const bool granite_moe_shared = arch == "GraniteMoeSharedForCausalLM" || arch == "granitemoeshared";
  const bool granite_moe = arch == "GraniteMoeForCausalLM" || arch == "granitemoe" || granite_moe_shared;
  const bool hyperclovax = arch == "HyperCLOVAXForCausalLM" || arch == "hyperclovax";
  const bool nanochat = arch == "NanoChatForCausalLM" || arch == "nanochat";
  const bool granite = arch == "GraniteForCausalLM" || arch == "granite" || granite_moe || hyperclovax;
  const bool smollm3 = arch == "SmolLM3ForCausalLM" || arch == "smollm3";
  const bool apertus = arch == "ApertusForCausalLM" || arch == "apertus";
  const bool phimoe = arch == "PhimoeForCausalLM" || arch == "phimoe";
  const bool jais2 = arch == "Jais2ForCausalLM" || arch == "jais2";
  const bool cwm = arch == "CwmForCausalLM" || arch == "cwm";
  const bool flex_olmo = arch == "FlexOlmoForCausalLM" || arch == "flex_olmo";
  if (arch != "LlamaForCausalLM" && arch != "llama" && !qwen2 && !mistral && !ministral3 && !qwen3 && !mixtral &&
      !phi3 && !gemma && !granite && !smollm3 && !phi && !ernie && !olmo2 && !ministral && !qwen2_moe && !glm4 &&
      !exaone4 && !seed_oss && !gpt_oss && !helium && !arcee && !cohere && !starcoder2 && !stablelm && !olmoe &&
      !olmo1 && !nemotron && !gpt_neox && !glm4_moe && !falcon && !hunyuan && !dots1 && !exaone && !exaone_moe &&
      !internlm3 && !iquestcoder && !apertus && !phimoe && !jais2 && !minimax_m2 && !nanochat && !cwm && !flex_olmo)
    throw CompileError(path + ": architecture '" + arch +
                       "' is not LLaMA (kiln supports: " + supported_architectures() + ")");
  refuse_mxfp4(r, c.quant, gpt_oss);
  c.architecture = qwen2                ? "Qwen2ForCausalLM"
                   : qwen2_moe          ? "Qwen2MoeForCausalLM"
                   : qwen3_moe          ? "Qwen3MoeForCausalLM"
                   : qwen3              ? "Qwen3ForCausalLM"
                   : mistral            ? "MistralForCausalLM"
                   : ministral3         ? "Ministral3ForCausalLM"
                   : ministral          ? "MinistralForCausalLM"
                   : mixtral            ? "MixtralForCausalLM"
                   : phimoe             ? "PhimoeForCausalLM"
                   : phi3               ? "Phi3ForCausalLM"
                   : phi                ? "PhiForCausalLM"
                   : hunyuan_moe        ? "HunYuanMoEV1ForCausalLM"
                   : hunyuan            ? "HunYuanDenseV1ForCausalLM"
                   : ernie_moe          ? "Ernie4_5_MoeForCausalLM"
                   : ernie              ? "Ernie4_5ForCausalLM"
                   : olmo3              ? "Olmo3ForCausalLM"
                   : glm1               ? "GlmForCausalLM"
                   : glm4               ? "Glm4ForCausalLM"
                   : exaone4            ? "Exaone4ForCausalLM"
                   : exaone             ? "ExaoneForCausalLM"
                   : exaone_moe         ? "ExaoneMoeForCausalLM"
                   : internlm3          ? "InternLM3ForCausalLM"
                   : iquestcoder        ? "IQuestCoderForCausalLM"
                   : seed_oss           ? "SeedOssForCausalLM"
                   : gpt_oss            ? "GptOssForCausalLM"
                   : helium             ? "HeliumForCausalLM"
                   : arcee              ? "ArceeForCausalLM"
                   : apertus            ? "ApertusForCausalLM"
                   : cwm                ? "CwmForCausalLM"
                   : jais2              ? "Jais2ForCausalLM"
                   : starcoder2         ? "Starcoder2ForCausalLM"
                   : stablelm           ? "StableLmForCausalLM"
                   : olmoe              ? "OlmoeForCausalLM"
                   : olmo1              ? "OlmoForCausalLM"
                   : nemotron           ? "NemotronForCausalLM"
                   : gpt_neox           ? "GPTNeoXForCausalLM"
                   : solar              ? "SolarOpenForCausalLM"
                   : glm4_moe           ? "Glm4MoeForCausalLM"
                   : dots1              ? "Dots1ForCausalLM"
                   : minimax_m2         ? "MiniMaxM2ForCausalLM"
                   : nanochat           ? "NanoChatForCausalLM"
                   : falcon             ? "FalconForCausalLM"
                   : cohere2            ? "Cohere2ForCausalLM"
                   : cohere             ? "CohereForCausalLM"
                   : flex_olmo          ? "FlexOlmoForCausalLM"
                   : olmo2              ? "Olmo2ForCausalLM"
                   : gemma1             ? "GemmaForCausalLM"
                   : vaultgemma         ? "VaultGemmaForCausalLM"
                   : gemma2             ? "Gemma2ForCausalLM"
                   : gemma              ? "Gemma3ForCausalLM"
                   : granite_moe_shared ? "GraniteMoeSharedForCausalLM"
                   : granite_moe        ? "GraniteMoeForCausalLM"
                   : hyperclovax        ? "HyperCLOVAXForCausalLM"
                   : granite            ? "GraniteForCausalLM"
                   : smollm3            ? "SmolLM3ForCausalLM"
                                        : "LlamaForCausalLM";
  if (qwen2_vl || qwen3_vl) c.architecture = arch;
  // Nulls every one of these config classes refuses (Gemma 2's and 3's activation key is
  // hidden_activation; Phi's eps layer_norm_eps).
  // (their eps key: layer_norm_eps; Starcoder2's norm_epsilon)
  const bool layer_norm = phi || cohere || stablelm || gpt_neox || jais2;
  // (OlmoConfig has none: its LayerNorms take 1e-5)
  const char* eps_key = olmo1        ? ""
                        : starcoder2 ? "norm_epsilon"
                        : nemotron   ? "norm_eps"
                        : falcon     ? "layer_norm_epsilon"
                        : layer_norm ? "layer_norm_eps"
                                     : "rms_norm_eps";
  r.refuse_null_values({eps_key,
                        gemma && !gemma1 ? "hidden_activation"
                        : falcon         ? "activation"
                                         : "hidden_act",
                        "max_position_embeddings"},
                       c.architecture);
  if (gemma1) {
    // GemmaConfig reads hidden_act, and its hub value "gelu" as the tanh GELU the checkpoints were
    // trained with. The hub files also carry hidden_activation, which transformers 4.40-4.x read
    // in its place and transformers 5 never reads: any other value is refused as ambiguous.
    if (const std::string act = r.str("hidden_act", "gelu_pytorch_tanh"); act != "gelu_pytorch_tanh" && act != "gelu")
      r.fail("hidden_act", "must be \"gelu_pytorch_tanh\" (or \"gelu\", which GemmaConfig reads as it) for Gemma");
    if (r.str("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh")
      r.fail("hidden_activation",
             "must be \"gelu_pytorch_tanh\" or null: transformers 5 ignores it for hidden_act, earlier versions "
             "used it in hidden_act's place, and kiln does not guess which was meant");
  } else if (phi) {
    // PhiConfig's MLP: fc1, ACT2FN[hidden_act], fc2 (gelu_new, gelu_fast and gelu_pytorch_tanh are the
    // tanh GELU; gelu the exact one).
    if (!act2fn_kind(r.str("hidden_act", "gelu_new"), &c.mlp_activation) ||
        (c.mlp_activation != Activation::kGeluTanh && c.mlp_activation != Activation::kGelu))
      r.fail("hidden_act", "must be \"gelu_new\", \"gelu_fast\", \"gelu_pytorch_tanh\" or \"gelu\" for Phi");
  } else if (gemma) {
    // Gemma3TextConfig's activation key; hidden_act is not one of its attributes. Gemma 2's hub
    // configs carry hidden_act beside hidden_activation, which its MLP never reads.
    // (and gemma-2-9b's and 27b's carry sliding_window_size, a copy of sliding_window it never reads).
    if (gemma2) {
      r.has("hidden_act");
      r.has("sliding_window_size");
    }
    if (r.str("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh")
      r.fail("hidden_activation", "must be \"gelu_pytorch_tanh\" for Gemma 2, VaultGemma and Gemma 3");
  } else if (gpt_oss) {
    // (read_gpt_oss: GptOssConfig's hidden_act is never read)
  } else if (falcon) {
    // FalconConfig: get_activation(activation) between dense_h_to_4h and dense_4h_to_h (default gelu, the exact one)
    if (!act2fn_kind(r.str("activation", "gelu"), &c.mlp_activation))
      r.fail("activation", std::string("must be ") + kAct2fnNames + " for Falcon");
  } else if (arcee || starcoder2 || nemotron || gpt_neox || jais2 || nanochat) {
    // ArceeConfig and NemotronConfig: ACT2FN[hidden_act] between up_proj and down_proj (default relu2);
    // Starcoder2Config: between c_fc and c_proj (default gelu_pytorch_tanh); GPTNeoXConfig: between
    // dense_h_to_4h and dense_4h_to_h (default gelu, the exact one)
    if (!act2fn_kind(r.str("hidden_act", starcoder2 ? "gelu_pytorch_tanh"
                                         : gpt_neox ? "gelu"
                                                    : "relu2"),
                     &c.mlp_activation))
      r.fail("hidden_act", std::string("must be ") + kAct2fnNames + " for " +
                               (arcee        ? "Arcee"
                                : jais2      ? "Jais 2"
                                : nanochat   ? "nanochat"
                                : starcoder2 ? "Starcoder2"
                                : gpt_neox   ? "GPT-NeoX"
                                             : "Nemotron"));
  } else if (apertus) {
    // ApertusConfig: xIELU (its default; the MLP's act_fn then holds its parameters) or ACT2FN[hidden_act] between
    // up_proj and down_proj (NemotronMLP's)
    if (const std::string act = r.str("hidden_act", "xielu"); act == "xielu") c.mlp_activation = Activation::kXielu;
    else if (!act2fn_kind(act, &c.mlp_activation))
      r.fail("hidden_act", std::string("must be \"xielu\" or ") + kAct2fnNames + " for Apertus");
  } else if (const std::string act = r.str("hidden_act", "silu"); act != "silu" && act != "swish") {  // (ACT2FN: one)
    r.fail(
        "hidden_act",
        "must be \"silu\" for LLaMA, Cohere, Cohere 2, StableLM, OLMo, OLMoE, ERNIE 4.5, EXAONE 3.0 and 3.5, EXAONE 4.0, EXAONE MoE, GLM, GLM-4, GLM-4.5, Granite, GraniteMoe, Helium, HunYuan, HyperCLOVAX, InternLM3, IQuest-Coder, dots.llm1, MiniMax-M2, Ministral, Ministral 3, Mistral, Mixtral, OLMo 2, OLMo 3, FlexOlmo, Phi-3, Phi-3.5-MoE, CWM, "
        "Qwen2, Qwen2-MoE, Qwen3, Qwen3-MoE, Seed-OSS, SmolLM3 and Solar Open (GPT-OSS never reads it)");
  }

  c.vocab_size = r.pos_int("vocab_size", true);
  // (FalconConfig takes n_embed, its old name, in hidden_size's place)
  if (falcon && r.has("n_embed") && r.has("hidden_size") &&
      r.pos_int("n_embed", true) != r.pos_int("hidden_size", true))
    r.fail("n_embed", "disagrees with hidden_size (FalconConfig takes n_embed in its place): give one");
  c.hidden_size = falcon && r.has("n_embed") ? r.pos_int("n_embed", true) : r.pos_int("hidden_size", true);
  // (FalconConfig's ffn_hidden_size: 4 · hidden_size when absent or null)
  // (SolarOpenConfig deletes intermediate_size: its layers have no dense MLP, whatever the hub's file gives)
  if (solar) r.has("intermediate_size");
  c.intermediate_size = falcon  ? r.pos_int("ffn_hidden_size", false, 4 * c.hidden_size)
                        : solar ? 0
                                : r.pos_int("intermediate_size", true);
  c.num_hidden_layers = r.pos_int("num_hidden_layers", true);
  c.num_attention_heads = r.pos_int("num_attention_heads", true);
  // Absent: the config class's default (MistralConfig and MixtralConfig 8, Qwen3MoeConfig 4,
  // Qwen2Config and Qwen3Config 32, ...); null, where the class allows it: one per head.
  // A null transformers 5 cannot build the model from, where kiln's reading of it would differ from
  // an absent key's, is refused: the config class types the key as a plain int and refuses the file
  // (transformers 4 read a null num_key_value_heads as one per head, a null head_dim as hidden /
  // heads, where absent keys are these classes' own defaults), or the class has no such attribute
  // and the attention takes the file's None (Phi, Granite, OLMo 2, SmolLM3: getattr(config,
  // "head_dim", ...)). Other nulls read as absent keys.
  const std::string no_null = "from which transformers 5 cannot build " + c.architecture +
                              " (transformers 4 read it otherwise than an absent one): give its value";
  if (mistral || ministral || ministral3 || mixtral || qwen3_moe || qwen2_moe || gemma || glm4 || exaone4 || gpt_oss ||
      helium || starcoder2 || stablelm || glm4_moe || ernie_moe || exaone_moe || phimoe || minimax_m2 || cwm)
    r.refuse_null("num_key_value_heads", no_null);
  if ((qwen3 && !qwen3_moe) || gemma || phi || (granite && !hyperclovax) || olmo2 || smollm3 || qwen2_moe || glm4 ||
      exaone4 || gpt_oss || helium || cohere || olmoe || olmo1 || ministral3 || glm4_moe || dots1 || ernie_moe ||
      exaone_moe || apertus || phimoe || minimax_m2 || nanochat || cwm ||
      flex_olmo)  // (SeedOssConfig reads a null as hidden / heads, as kiln does below)
    r.refuse_null("head_dim", no_null);
  if ((ministral || hunyuan) && !r.has("head_dim"))  // (MinistralConfig's, HunYuanDenseV1Config's None: it fails)
    r.fail("head_dim",
           "is missing or null, with which transformers 5 cannot build " + c.architecture + ": give its value");
  // (GPTNeoXConfig has no such key: its attention has a k and a v head for each head)
  if (gpt_neox) r.hardwired("num_key_value_heads", c.num_attention_heads);
  const int64_t kv_default = j.contains("num_key_value_heads")                          ? c.num_attention_heads
                             : mistral || ministral || mixtral || ministral3 || phimoe  ? 8
                             : starcoder2                                               ? 2
                             : stablelm                                                 ? 32
                             : qwen3_moe || smollm3 || ernie_moe                        ? 4
                             : ernie || glm4 || internlm3                               ? 2
                             : qwen2_moe                                                ? 16
                             : exaone4 || dots1 || exaone_moe                           ? 32
                             : seed_oss || gpt_oss || glm4_moe || exaone || iquestcoder ? 8
                             : minimax_m2 || cwm                                        ? 8
                             : helium                                                   ? 20
                             : qwen2 || qwen3                                           ? 32
                             : gemma1                                                   ? 16
                             : gemma                                                    ? 4
                                                                                        : c.num_attention_heads;
  if (falcon) c.num_key_value_heads = read_falcon_kv_heads(r, c.num_attention_heads);
  else c.num_key_value_heads = r.pos_int("num_key_value_heads", false, kv_default);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(c.num_attention_heads) + ")");
  // (StableLM's and GPT-NeoX's projections use hidden / heads, their RoPE head_dim: kiln refuses a head the two read
  // apart; FalconConfig derives head_dim and cannot take it as a key)
  if (falcon && r.has("head_dim"))
    r.fail("head_dim",
           "is a key FalconConfig cannot take (it derives head_dim from hidden_size / num_attention_heads; "
           "transformers refuses the file): remove it");
  if ((stablelm || gpt_neox || qwen2_vl) && r.has("head_dim") &&
      (c.hidden_size % c.num_attention_heads != 0 ||
       r.pos_int("head_dim", true) != c.hidden_size / c.num_attention_heads))
    r.fail("head_dim", std::string("is not hidden_size / num_attention_heads, which ") +
                           (stablelm   ? "StableLM"
                            : gpt_neox ? "GPT-NeoX"
                                       : c.architecture.c_str()) +
                           "'s projections use (its RoPE would read head_dim): kiln refuses a head the two read apart");
  if (!stablelm && !gpt_neox && !falcon && r.has("head_dim")) {
    c.head_dim = r.pos_int("head_dim", true);
  } else if ((gpt_oss || helium) && !j.contains("head_dim")) {
    c.head_dim = gpt_oss ? 64 : 128;  // (GptOssConfig's, HeliumConfig's)
  } else if (((qwen3 && !qwen3_moe) || gemma || (ernie && !ernie_moe) || glm4 || seed_oss || ministral3 || internlm3 ||
              iquestcoder || solar || minimax_m2 || cwm) &&
             !j.contains("head_dim")) {
    // Qwen3Config's default 128 and GemmaConfig's (Gemma2Config's, Gemma3TextConfig's) 256, whatever hidden_size /
    // num_attention_heads is (Qwen3MoeConfig has no head_dim: its attention takes hidden_size /
    // num_attention_heads)
    // (Ernie4_5Config's, Glm4Config's, SeedOssConfig's, Ministral3Config's, InternLM3Config's, IQuestCoderConfig's and
    // SolarOpenConfig's, MiniMaxM2Config's and CwmConfig's 128 too)
    c.head_dim = gemma ? 256 : 128;
  } else {
    // (Glm4MoeConfig's, OLMo 2's, OLMo 3's, EXAONE 4.0's and FlexOlmo's attention and RoPE take hidden_size //
    // num_attention_heads, rounded down)
    if (c.hidden_size % c.num_attention_heads != 0 && !glm4_moe && !olmo2 && !exaone4 && !flex_olmo)
      r.fail("hidden_size", "is not divisible by num_attention_heads");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
  // (validate_architecture of LlamaConfig (CwmConfig's too), ExaoneConfig, InternLM3Config, IQuestCoderConfig,
  // ArceeConfig, Gemma2Config and Gemma3TextConfig: whatever head_dim is)
  if ((arch == "LlamaForCausalLM" || arch == "llama" || exaone || internlm3 || iquestcoder || arcee || jais2 ||
       (gemma && !gemma1) || hyperclovax || cwm) &&
      c.hidden_size % c.num_attention_heads != 0)
    r.fail("hidden_size", "(" + std::to_string(c.hidden_size) + ") is not a multiple of num_attention_heads (" +
                              std::to_string(c.num_attention_heads) + "), which " + c.architecture +
                              "'s config class refuses whatever head_dim is");
  // Absent: the config class's default (it sizes LongRoPE's and yarn's derived factors).
  c.max_position_embeddings = r.pos_int(
      "max_position_embeddings", false,
      ministral3                                                                                               ? 262144
      : seed_oss                                                                                               ? 524288
      : gemma1 || gemma2 || cohere || jais2                                                                    ? 8192
      : mistral || ministral || mixtral || gemma || ernie || glm4 || gpt_oss || glm4_moe || iquestcoder || cwm ? 131072
      : qwen2 || qwen3 || smollm3 || qwen2_moe || internlm3                                                    ? 32768
      : phi3 || helium || arcee || starcoder2 || stablelm || olmoe || nemotron || exaone || flex_olmo          ? 4096
      : apertus                                                                                                ? 65536
      : minimax_m2                                                                                             ? 196608
      : phimoe                                                                                                 ? 131072
                                                                                                               : 2048);
  r.set_max_positions(c.max_position_embeddings);
  // (the config classes' defaults; PhiConfig's LayerNorms read layer_norm_eps)
  c.rms_norm_eps =
      olmo1        ? 1e-5
      : starcoder2 ? r.num("norm_epsilon", 1e-5)
      : nemotron   ? r.num("norm_eps", 1e-5)
      : falcon     ? r.num("layer_norm_epsilon", 1e-5)
      : layer_norm ? r.num("layer_norm_eps", 1e-5)
      : glm4       ? r.num("rms_norm_eps", 1.5625e-7)  // (Glm4Config's)
      : helium     ? r.num("rms_norm_eps", 1e-8)       // (HeliumConfig's)
                   : r.num("rms_norm_eps", mixtral || phi3 || ernie || olmo2 || exaone4 || gpt_oss || arcee || olmoe ||
                                               glm4_moe || ministral3 || hunyuan || exaone || exaone_moe || internlm3 ||
                                               iquestcoder || apertus || phimoe || cwm
                                               ? 1e-5
                                               : 1e-6);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(float(c.rms_norm_eps)))
    r.fail(eps_key, "must not be negative, and must be finite in f32");
  // (Gemma's, SmolLM3's, ERNIE 4.5's, Cohere's and Starcoder2's config classes tie by default)
  // (and FalconConfig's)
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", gemma || smollm3 || ernie || cohere || starcoder2 || falcon);
  if (qwen2 || qwen3 || qwen2_moe) {
    // Qwen2: biases on q, k and v (never on o_proj or the MLP). Qwen3: no biases unless
    // attention_bias (then on q, k, v and o_proj), and q_norm/k_norm over each head before RoPE.
    // Both have sliding-window attention off unless use_sliding_window is set (then
    // sliding_window and max_window_layers pick the layers, which transformers 5 also writes out
    // as layer_types; read below).
    if (qwen2) {
      c.qkv_bias = true;
      if (!qwen2_vl) r.only("use_mrope", false);  // hub Qwen2/2.5 configs carry it; true is Qwen2-VL's M-RoPE
    } else if (qwen2_moe) {
      c.qkv_bias = r.boolean("qkv_bias", true);  // (Qwen2MoeConfig's key)
    } else {
      c.qk_norm = true;
      c.attention_bias = r.boolean("attention_bias", false);
    }
    if (qwen3_moe || qwen2_moe) {
      // Experts in layer i unless i is in mlp_only_layers or (i + 1) % decoder_sparse_step != 0.
      // transformers 5 writes num_local_experts (Qwen3MoeConfig's attribute_map), the hub num_experts
      // (Qwen2MoeConfig has only num_experts). A null count transformers cannot run (its config class
      // refuses it, its router or layer loop fails on it) is refused rather than read as the default.
      for (const char* k : {"num_experts", qwen2_moe ? "shared_expert_intermediate_size" : "num_local_experts",
                            "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step"})
        r.refuse_null(k, "with which transformers cannot run " + c.architecture + ": give its value");
      if (qwen2_moe) {
        c.num_local_experts = r.count("num_experts", 60);
      } else {
        c.num_local_experts = read_expert_count(r, 128);
      }
      c.num_experts_per_tok = r.experts_per_token(false, qwen2_moe ? 4 : 8);
      c.moe_intermediate_size = r.pos_int("moe_intermediate_size", false, qwen2_moe ? 1408 : 768);
      // Qwen2-MoE: a shared expert beside the routed ones, gated by sigmoid(shared_expert_gate(x)).
      if (qwen2_moe) c.shared_expert_intermediate_size = r.pos_int("shared_expert_intermediate_size", false, 5632);
      // (Qwen3-VL-MoE's router always normalizes its top-k weights: its config class has no such key)
      if (qwen3_vl_moe) r.hardwired("norm_topk_prob", true);
      c.norm_topk_prob = qwen3_vl_moe || r.boolean("norm_topk_prob", false);
      // (its experts fused, in transformers' layout or the hub's transposed one: the frontend reads either)
      c.experts_transposable = qwen3_vl_moe;
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
    // Sliding windows (transformers' Qwen2Config/Qwen3Config): on only with use_sliding_window,
    // then of sliding_window positions (default 4096; null: none) in the layers layer_types names
    // "sliding_attention", or without layer_types in layers max_window_layers (default 28) and
    // up (Qwen2-MoE: refused, below). Qwen3MoeConfig has neither key: its window covers every
    // layer. Qwen3-VL's text configs read none of these keys: its attention sees every position (a file's keys
    // are unknown). (Qwen2VLTextConfig types use_sliding_window Optional[bool]: None, no window)
    const bool use_window = !qwen3_vl && r.boolean("use_sliding_window", false, qwen2_vl);
    // (Qwen2MoeConfig writes 0 when use_sliding_window is off: none, as null)
    const int64_t window = qwen3_vl                        ? 0
                           : !j.contains("sliding_window") ? 4096
                           : !r.has("sliding_window")      ? 0
                           : qwen2_moe                     ? r.count("sliding_window", 0)
                                                           : r.pos_int("sliding_window", true);
    if (use_window) c.sliding_window = window;
    if (qwen2_moe) {  // (Qwen2MoeConfig refuses a null max_window_layers; its model builds the sliding
                      // mask with use_sliding_window on, and fails without a window)
      r.refuse_null("max_window_layers", "with which transformers cannot run Qwen2MoeForCausalLM: give its value");
      if (use_window)
        r.refuse_null("sliding_window",
                      "with which transformers cannot run Qwen2MoeForCausalLM with use_sliding_window on: give its "
                      "value, or turn use_sliding_window off");
    }
    const int64_t max_window_layers = qwen3_vl ? 0 : r.count("max_window_layers", 28);
    if (qwen3_vl) {
      c.window_layer.assign(size_t(c.num_hidden_layers), false);
    } else if (qwen3_moe) {
      r.has("layer_types");  // not a Qwen3MoeConfig attribute: transformers never reads it
    } else if (r.has("layer_types")) {
      c.window_layer = read_layer_types(r, j, c.num_hidden_layers);
      // (transformers fails at its first forward there: a sliding layer's mask needs a window)
      if (any_window_layer(c) && (!use_window || window == 0))
        r.fail("layer_types", std::string("names sliding_attention layers, but ") +
                                  (!use_window ? "use_sliding_window is off"
                                   : qwen2_moe ? "sliding_window is null or 0"
                                               : "sliding_window is null") +
                                  ": they have no window (transformers cannot run this config)");
    } else if (qwen2_moe) {
      // Which layers use_sliding_window windows without layer_types: Qwen2MoeConfig (transformers 5)
      // the even ones below max_window_layers, transformers 4's Qwen2-MoE attention those from
      // max_window_layers up. kiln does not guess. (The hub's configs have it off.)
      if (use_window)
        r.fail("use_sliding_window",
               "is on without layer_types: transformers 5 windows the even layers below max_window_layers, "
               "transformers 4 the layers from max_window_layers up; kiln does not guess which was meant: give "
               "layer_types");
      c.window_layer.assign(size_t(c.num_hidden_layers), false);
    } else {
      // (Qwen2VLTextConfig types it Optional[int], but fails on a null where it picks the windowed layers)
      if (qwen2_vl && use_window && window > 0 && j.contains("max_window_layers") && j["max_window_layers"].is_null())
        r.fail("max_window_layers",
               "is null, with which transformers cannot pick the windowed layers (use_sliding_window is on, "
               "layer_types absent): give its value");
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.window_layer.push_back(i >= max_window_layers);
    }
  } else if (gemma1) {
    // Gemma 1: LLaMA's layer with Gemma's numerics (LlamaConfig::gemma1); attention scaled by
    // head_dim^-½.
    c.gemma = c.gemma1 = true;
    c.attention_bias = r.boolean("attention_bias", false);
    c.query_pre_attn_scalar = double(c.head_dim);
    r.only("use_bidirectional_attention", false);
  } else if (gemma) {
    c.vaultgemma = vaultgemma;  // (Gemma2Config's keys and defaults, its layer without the branch norms)
    read_gemma(r, j, gemma2, &c);
  } else if (phi) {
    // Phi-1/1.5/2: biases everywhere, one LayerNorm before attention and MLP in parallel
    // (LlamaConfig::phi). Dropouts act in training only.
    c.phi = c.attention_bias = c.mlp_bias = true;
    if (r.boolean("qk_layernorm", false))  // (typed bool: a null refused)
      r.fail("qk_layernorm", "is true, which kiln does not build for Phi (transformers' per-head q/k LayerNorms)");
    for (const char* k : {"resid_pdrop", "embd_pdrop"}) r.has(k);
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
    read_experts_in_every_layer(r, &c);
    c.mixtral_names = true;
    for (const char* k : {"router_jitter_noise", "router_aux_loss_coef", "output_router_logits"}) r.has(k);
  } else if (phimoe) {
    // PhimoeConfig (LlamaConfig::phimoe): Mixtral's experts in every layer (block_sparse_moe) routed by the
    // sparsemixer, two experts a token whatever num_experts_per_tok says (refused unless 2), with router_jitter_noise
    // its threshold; LayerNorms with biases (eps rms_norm_eps); biases on q, k, v and o with attention_bias and on the
    // head with lm_head_bias; windows of sliding_window (none by default). input_jitter_noise and the aux loss act in
    // training only. Its LongRoPE is read below.
    c.phimoe = true;
    if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
    read_experts_in_every_layer(r, &c, 16);  // (PhimoeConfig's 16)
    if (c.num_experts_per_tok != 2)
      r.fail("num_experts_per_tok", "= " + std::to_string(c.num_experts_per_tok) +
                                        ", which Phimoe's sparsemixer never reads (it always routes a token to two "
                                        "experts): give 2");
    c.mixtral_names = true;
    c.attention_bias = r.boolean("attention_bias", false);
    c.lm_head_bias = r.boolean("lm_head_bias", false);
    r.refuse_null("router_jitter_noise",
                  "which PhimoeConfig types float (transformers 5 refuses the file): give its value");
    c.router_jitter_noise = r.num("router_jitter_noise", 0.01);
    if (!std::isfinite(float(c.router_jitter_noise)) || c.router_jitter_noise < 0)
      r.fail("router_jitter_noise",
             "must be a number of at least 0, finite in f32 (below 0 the sparsemixer masks every "
             "expert, and transformers' logits are NaN)");
    for (const char* k : {"input_jitter_noise", "router_aux_loss_coef", "output_router_logits"}) r.has(k);
    r.set_phimoe_rope();
  } else if (ministral) {
    // MinistralConfig: Mistral's layer with windows of sliding_window (default 4096) in the layers
    // layer_types names sliding (by default every layer). transformers builds the sliding mask
    // whatever the layer types, so it cannot run a null sliding_window.
    refuse_null_window(r, "MinistralForCausalLM");
    c.sliding_window = r.pos_int("sliding_window", false, 4096);
    c.window_layer = r.has("layer_types") ? read_layer_types(r, j, c.num_hidden_layers)
                                          : std::vector<bool>(size_t(c.num_hidden_layers), true);
  } else if (mistral || ministral3) {
    // Mistral: LLaMA whose attention sees the last sliding_window positions (MistralConfig's
    // default 4096 when the key is absent, Ministral3Config's none; null: all). Ministral 3 also scales its
    // queries past the RoPE object's original_max_position_embeddings (read below; refused there by the compiler).
    if (!j.contains("sliding_window") && mistral) c.sliding_window = 4096;
    else if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
    if (ministral3) r.set_llama4_scaling();
  } else if (smollm3) {
    read_smollm3(r, j, &c);
  } else if (olmo2 || flex_olmo) {
    // Olmo2Config: LLaMA's keys but mlp_bias (its MLP has no biases), and the layer of
    // LlamaConfig::olmo2; Olmo3Config's windows and RoPE by layer type besides. FlexOlmoConfig: that layer with
    // OLMoE's experts (default 7, the top 5) in every layer (LlamaConfig::flex_olmo).
    c.olmo2 = c.qk_norm = true;
    c.attention_bias = r.boolean("attention_bias", false);
    if (olmo3) read_olmo3(r, j, &c);
    if (flex_olmo) {
      c.flex_olmo = true;
      read_olmoe_experts(r, &c, 7, 5);
    }
  } else if (exaone4) {
    read_exaone4(r, j, &c);
  } else if (exaone_moe) {
    read_exaone_moe(r, j, &c);
  } else if (gpt_oss) {
    read_gpt_oss(r, j, &c);
  } else if (apertus) {
    // ApertusConfig: LlamaAttention (attention_bias on q, k, v and o) with q_norm and k_norm over each head before
    // RoPE, its norms attention_layernorm and feedforward_layernorm, an ungated MLP (its activation read above). Its
    // hub files carry the remote code's keys, which transformers never reads: at the values its model is, read; others
    // refused. (hidden_dropout acts in training only)
    c.apertus = true;
    c.qk_norm = true;
    c.attention_bias = r.boolean("attention_bias", false);
    r.hardwired("qk_norm", true);
    r.hardwired("post_norm", false);
    r.hardwired("mlp_bias", false);
    r.has("hidden_dropout");
  } else if (jais2) {
    // Jais2Config (LlamaConfig::jais2): LlamaConfig's keys with LayerNorms that have biases (layer_norm_eps; it has no
    // rms_norm_eps, which a file may still carry: read where it is the LayerNorms' eps, else refused), biases on q, k,
    // v and o (attention_bias) and on up and down (mlp_bias), both on by default, an ungated MLP (its activation,
    // relu² by default, read above).
    c.jais2 = true;
    c.attention_bias = r.boolean("attention_bias", true);
    c.mlp_bias = r.boolean("mlp_bias", true);
    if (r.has("rms_norm_eps") && r.num("rms_norm_eps", 0.0) != c.rms_norm_eps)
      r.fail("rms_norm_eps", "= " + j["rms_norm_eps"].dump() +
                                 ", which Jais2Config never reads (its LayerNorms take layer_norm_eps = " +
                                 short_float(float(c.rms_norm_eps)) + "): kiln refuses rather than guess");
  } else if (arcee) {
    // ArceeConfig: LlamaConfig's biases (attention_bias on q, k, v and o; mlp_bias on up and down) and an
    // ungated MLP (its activation read above).
    c.arcee = true;
    c.attention_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
  } else if (cohere) {
    read_cohere(r, j, cohere2, &c);
  } else if (nemotron) {
    // NemotronConfig (LlamaConfig::nemotron): LLaMA's biases (attention_bias on q, k, v and o; mlp_bias on
    // up_proj and down_proj); the rest is read below (partial_rotary_factor) and above (hidden_act).
    c.nemotron = true;
    c.attention_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
  } else if (olmo1) {
    // OlmoConfig (LlamaConfig::olmo1): LLaMA's layer with LayerNorms that have neither weight nor bias (eps 1e-5,
    // no key), biases on q, k, v and o with attention_bias, and clip_qkv.
    c.olmo1 = true;
    c.attention_bias = r.boolean("attention_bias", false);
    r.has("rms_norm_eps");  // (OlmoConfig keeps a stray one, from LLaMA-style tooling, as an attribute never read)
    c.clip_qkv = read_clip_qkv(r, r.doc(), "clip_qkv", false);
  } else if (olmoe) {
    // OlmoeConfig (LlamaConfig::olmoe): LLaMA's biases with attention_bias; clip_qkv (q, k and v clamped after
    // their projections and norms: read_clip_qkv); num_experts (default 64) experts of
    // intermediate_size in every layer, num_experts_per_tok (default 8) picked by softmax, renormalized with
    // norm_topk_prob (default false). The router's aux loss acts in training only.
    c.olmoe = c.qk_norm = true;
    c.attention_bias = r.boolean("attention_bias", false);
    c.clip_qkv = read_clip_qkv(r, r.doc(), "clip_qkv", false);
    read_olmoe_experts(r, &c, 64, 8);
    // (q_norm spans hidden_size and k_norm (hidden_size / heads) · KV heads: other heads cannot run there)
    if (c.head_dim * c.num_attention_heads != c.hidden_size)
      r.fail("head_dim", "(" + std::to_string(c.head_dim) + ") times num_attention_heads is not hidden_size (" +
                             std::to_string(c.hidden_size) +
                             "): OLMoE's q_norm spans hidden_size, and transformers cannot run this config");
  } else if (solar) {
    read_solar_open(r, &c);
  } else if (glm4_moe) {
    read_glm4_moe(r, &c);
  } else if (dots1) {
    read_dots1(r, j, &c);
  } else if (minimax_m2) {
    read_minimax_m2(r, j, &c);
  } else if (nanochat) {
    // NanoChatConfig (LlamaConfig::nanochat): biases on q, k, v and o with attention_bias (Qwen3's attention), the
    // logits capped at final_logit_softcapping (15; null: none); its norms have no weight, its MLP no bias.
    c.nanochat = c.qk_norm = true;
    c.attention_bias = r.boolean("attention_bias", false);
    if (!(j.contains("final_logit_softcapping") && j["final_logit_softcapping"].is_null())) {
      c.final_logit_softcapping = r.num("final_logit_softcapping", 15.0);
      if (!(float(c.final_logit_softcapping) > 0) || !std::isfinite(float(c.final_logit_softcapping)))
        r.fail("final_logit_softcapping", "must be positive and finite in f32 (or null: no cap)");
    }
  } else if (falcon) {
    read_falcon(r, &c);
  } else if (gpt_neox) {
    // GPTNeoXConfig (LlamaConfig::gpt_neox): biases on query_key_value and dense with attention_bias (on by
    // default), on the MLP always; the parallel block with use_parallel_residual (on by default). Its dropouts
    // act in training only; Dolly v2's custom_pipelines registers a pipeline class, which the model never reads.
    c.gpt_neox = true;
    c.attention_bias = r.boolean("attention_bias", true);
    c.mlp_bias = true;
    c.neox_parallel = r.boolean("use_parallel_residual", true);
    // (GPT-NeoX-20B's file names its dropouts attention_probs_dropout_prob and hidden_dropout_prob)
    for (const char* k : {"hidden_dropout", "attention_dropout", "classifier_dropout", "custom_pipelines",
                          "attention_probs_dropout_prob", "hidden_dropout_prob"})
      r.has(k);
  } else if (stablelm) {
    // StableLmConfig (LlamaConfig::stablelm): biases on q, k and v with use_qkv_bias, per-head q/k LayerNorms with
    // qk_layernorm, the parallel block with use_parallel_residual. Its dropouts act in training only.
    c.stablelm = true;
    c.qkv_bias = r.boolean("use_qkv_bias", false);
    c.qk_norm = c.head_layernorm = r.boolean("qk_layernorm", false);
    c.parallel_residual = r.boolean("use_parallel_residual", false);
    for (const char* k : {"hidden_dropout", "attention_dropout"}) r.has(k);
  } else if (starcoder2) {
    // Starcoder2Config: LayerNorms with biases (input_layernorm, post_attention_layernorm, model.norm), biases on
    // q, k, v, o and the MLP's c_fc and c_proj with use_bias (on by default), windows of sliding_window in every
    // layer (none by default). Its dropouts act in training only; the hub's files carry mlp_type and norm_type,
    // which it never reads.
    c.starcoder2 = true;
    c.attention_bias = c.mlp_bias = r.boolean("use_bias", true);
    if (r.has("sliding_window")) c.sliding_window = r.pos_int("sliding_window", true);
    // (StarCoder2-15B's file also carries rms_norm_eps, which Starcoder2Config never reads: its LayerNorms read
    // norm_epsilon)
    for (const char* k : {"residual_dropout", "embedding_dropout", "rms_norm_eps"}) r.has(k);
    r.hardwired("mlp_type", "default");
    r.hardwired("norm_type", "layer_norm");
  } else if (helium) {
    // HeliumConfig: biases on q, k and v with attention_bias (never on o_proj), on the MLP with
    // mlp_bias; a pairwise RoPE (GLM's rotate_half); o_proj maps hidden_size to hidden_size, so the
    // heads must fill it (transformers cannot run the model otherwise).
    c.qkv_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
    c.pairwise_rope = true;
    if (c.num_attention_heads * c.head_dim != c.hidden_size)
      r.fail("head_dim",
             "times num_attention_heads (" + std::to_string(c.num_attention_heads * c.head_dim) +
                 ") is not hidden_size (" + std::to_string(c.hidden_size) +
                 "): Helium's o_proj maps hidden_size to hidden_size, and transformers cannot run this config");
  } else if (seed_oss) {
    // SeedOssConfig: biases on q, k and v with attention_bias (on by default), on o_proj with
    // attention_out_bias, on the MLP with mlp_bias. Its dropouts act in training only.
    c.qkv_bias = r.boolean("attention_bias", true);
    c.out_bias = r.boolean("attention_out_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
    r.has("residual_dropout");
  } else if (glm4) {
    // Glm4Config: q, k and v biases with attention_bias (on by default; never on o_proj), norms on
    // each branch's output, fused gate|up, a pairwise RoPE over the first partial_rotary_factor
    // (default 0.5) of each head (read below).
    c.glm4 = c.pairwise_rope = true;
    c.glm4_branch_norms = !glm1;  // (GlmConfig: GLM-4's layer without them)
    c.qkv_bias = r.boolean("attention_bias", true);
  } else if (hunyuan) {
    // HunYuanDenseV1Config: LLaMA's biases with attention_bias (q, k, v and o; never the MLP), q/k norms over each head
    // after RoPE. The hub's files (Hy-MT2-7B's, HunyuanImage-2.1's reprompt model's) carry the remote code's
    // switches, which transformers never reads: read at the values its class hard-wires (others refused by name);
    // cla_share_factor acts only with use_cla, class_num, dense_list and pool_type only with a classification head,
    // and the multimodal token ids, pad_id and org_vocab_size change no logit.
    c.hunyuan = c.qk_norm = true;
    c.attention_bias = r.boolean("attention_bias", false);
    r.hardwired("use_qk_norm", true);
    r.hardwired("use_cla", false);
    r.hardwired("mlp_bias", false);
    r.hardwired("use_rotary_pos_emb", true);
    r.hardwired("attention_head_dim", c.head_dim);
    r.hardwired("add_classification_head", false);
    r.only("norm_type", nlohmann::json::array({"rms", "hf_rms"}));  // (RMSNorm, either implementation)
    for (const char* k :
         {"cla_share_factor", "eod_token_id", "class_num", "dense_list", "pool_type", "im_start_id", "im_end_id",
          "im_newline_id", "text_start_id", "text_end_id", "mask_init_id", "pad_id", "org_vocab_size"})
      r.has(k);
    if (hunyuan_moe) read_hunyuan_moe(r, &c);
  } else if (ernie) {
    // Ernie4_5Config: LLaMA with use_bias (q, k, v, o and the MLP) and a pairwise RoPE.
    c.attention_bias = c.mlp_bias = r.boolean("use_bias", false, true);  // (Ernie4_5Config: Optional[bool])
    c.pairwise_rope = true;
    if (ernie_moe) read_ernie_moe(r, &c);
  } else if (granite) {
    // GraniteConfig: LLaMA's biases and four multipliers (its defaults 1; attention_multiplier
    // replaces head_dim^-½ whatever it is).
    c.granite = true;
    c.attention_bias = r.boolean("attention_bias", false);
    if (granite_moe) {
      // GraniteMoeConfig: experts in every layer, the top num_experts_per_tok by router logit
      // weighed by the softmax over those (Mixtral's renormalized top-k); no MLP biases. The aux
      // loss acts in training only.
      for (const char* k : {"num_local_experts", "num_experts_per_tok"})  // (its router fails on None)
        r.refuse_null(k, "with which transformers 5 cannot run " + c.architecture + ": give its value");
      read_experts_in_every_layer(r, &c);
      c.norm_topk_prob = true;
      c.granite_moe = c.moe_fused = true;
      if (granite_moe_shared) {
        // GraniteMoeSharedConfig: beside the experts, a shared SwiGLU MLP of shared_intermediate_size
        // (default 0: none) whose output joins theirs before residual_multiplier scales the sum.
        r.refuse_null("shared_intermediate_size",
                      "which GraniteMoeSharedConfig refuses: give its value (0 for no shared MLP)");
        c.shared_expert_intermediate_size = r.count("shared_intermediate_size", 0);
      }
      for (const char* k : {"router_aux_loss_coef", "output_router_logits"}) r.has(k);
      r.hardwired("mlp_bias", false);
    } else {
      c.mlp_bias = r.boolean("mlp_bias", false);
    }
    // (a null multiplier: transformers' eager attention fails on it, its sdpa takes a null
    // attention_multiplier as head_dim^-½, and the others fail in both: refused rather than read as 1)
    auto multiplier = [&](const char* k) {
      r.refuse_null(k, "with which transformers 5 cannot run " + c.architecture + " (give its value; absent, it is 1)");
      const double v = r.num(k, 1.0);
      if (!std::isfinite(float(v))) r.fail(k, "must be a finite number (as an f32)");
      return v;
    };
    c.embedding_multiplier = multiplier("embedding_multiplier");
    // (HyperCLOVAXConfig: attention_multiplier Optional, null or absent head_dim^-½ in Python's double)
    c.attention_multiplier = hyperclovax && !r.has("attention_multiplier") ? std::pow(double(c.head_dim), -0.5)
                                                                           : multiplier("attention_multiplier");
    c.residual_multiplier = multiplier("residual_multiplier");
    c.logits_scaling = multiplier("logits_scaling");
    if (hyperclovax) {  // (its logits are multiplied by logits_scaling, and its branches normalized with use_post_norm)
      c.hyperclovax = true;
      c.post_norms = r.boolean("use_post_norm", true);
    } else if (float(c.logits_scaling) == 0) {
      r.fail("logits_scaling", "must not be zero (the logits are divided by it)");
    }
  } else if (cwm) {
    // CwmConfig: LLaMA (mlp_bias on the MLP) whose attention has no biases whatever attention_bias says (CwmConfig
    // drops the key; its q, k, v and o have none), with windows of sliding_window (default 8192; null: transformers
    // cannot build the mask) in the layers layer_types names sliding (by default all but every 4th, from layer 0).
    c.mlp_bias = r.boolean("mlp_bias", false);
    r.has("attention_bias");
    refuse_null_window(r, "CwmForCausalLM");
    c.sliding_window = r.pos_int("sliding_window", false, 8192);
    if (r.has("layer_types")) {
      c.window_layer = read_layer_types(r, j, c.num_hidden_layers);
    } else {
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.window_layer.push_back(i % 4 != 0);
    }
  } else if (exaone) {
    // ExaoneConfig: LlamaConfig's biases (attention_bias on q, k, v and o; mlp_bias on the MLP). The hub's files carry
    // the remote code's embed_dropout, which acts in training only.
    c.exaone = true;
    c.attention_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
    r.has("embed_dropout");
  } else {
    c.attention_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
    if (iquestcoder) {
      // IQuestCoderConfig refuses a clip_qkv other than None and a use_sliding_window Python reads as true (its
      // remote code's clamp and windows, which LlamaForCausalLM has not); the window's size and first layer, which
      // only a window reads, are read and left (the hub's files: false, null and 0).
      if (r.has("clip_qkv"))
        r.fail("clip_qkv", "= " + j["clip_qkv"].dump() +
                               ", which IQuestCoderConfig refuses (transformers' LlamaForCausalLM clamps nothing): "
                               "give null");
      if (j.contains("use_sliding_window") && !python_falsy(j["use_sliding_window"]))
        r.fail("use_sliding_window", "= " + j["use_sliding_window"].dump() +
                                         ", which IQuestCoderConfig refuses (transformers' LlamaForCausalLM has no "
                                         "windows): give false");
      for (const char* k : {"use_sliding_window", "sliding_window", "max_window_layers"}) r.has(k);
    }
    // SmolLM2's hub config (nanotron's export): a marker, transformers.js's settings, and the RoPE
    // layout transformers' rotate_half always is.
    r.has("is_llama_config");
    r.has("transformers.js_config");
    r.hardwired("rope_interleaved", false);
  }
  // Bias keys these classes never read: their MLPs have none, and Mistral's, Mixtral's and
  // Phi-3's attention none (Qwen2's hard-wires q/k/v biases without o_proj's: no value of
  // attention_bias says that). Phi-4-mini's hub config also carries its remote code's keys, at
  // the values that change nothing.
  if (qwen2 || qwen3 || mistral || ministral || ministral3 || mixtral || phi3 || gemma || olmo2 || glm4 || gpt_oss ||
      cohere || glm4_moe || minimax_m2 || flex_olmo)
    r.hardwired("mlp_bias", false);
  if (mistral || ministral || ministral3 || mixtral || phi3 || minimax_m2) r.hardwired("attention_bias", false);
  if (phi3) {
    r.hardwired("lm_head_bias", false);
    r.hardwired("full_attn_mod", 1);
    r.hardwired("interpolate_factor", 1);
  }
  // GPTNeoXConfig's RoPE: rope_parameters (or rope_scaling) as given, its rope_theta and partial_rotary_factor
  // filled in from rotary_emb_base (default 10000) and rotary_pct (default 0.25) where it has none. The top-level
  // rope_theta and partial_rotary_factor other config classes read, it never reads: refused unless they agree.
  double neox_theta = 10000.0, neox_pct = 0.25;
  const char* neox_pct_key = "rotary_pct";
  if (gpt_neox) {
    const char* k = r.rope_key();
    const nlohmann::json* params = k && j[k].is_object() ? &j[k] : nullptr;
    auto given = [&](const char* key) { return params && params->contains(key) && !(*params)[key].is_null(); };
    const std::string why = "and the RoPE object gives no value in its place: transformers cannot compute its RoPE";
    if (!given("rope_theta")) r.refuse_null("rotary_emb_base", why);
    if (!given("partial_rotary_factor")) r.refuse_null("rotary_pct", why);
    const double base = r.num("rotary_emb_base", 10000.0), pct = r.num("rotary_pct", 0.25);
    neox_theta = given("rope_theta") ? r.num(*params, "rope_theta", base) : base;
    neox_pct = given("partial_rotary_factor") ? r.num(*params, "partial_rotary_factor", pct) : pct;
    if (given("partial_rotary_factor")) neox_pct_key = k;
    for (const auto& [key, value] :
         {std::pair<const char*, double>{"rope_theta", neox_theta}, {"partial_rotary_factor", neox_pct}})
      if (r.has(key) && r.num(key, value) != value)
        r.fail(key, "= " + j[key].dump() +
                        ", which GPTNeoXConfig never reads (it reads rotary_emb_base, rotary_pct and the RoPE "
                        "object, which give " +
                        short_float(value) + "); kiln refuses rather than guess which was meant");
  }
  if (solar) {
    r.full_rotary_only(c.architecture);  // (LlamaAttention rotates all of head_dim)
  } else if (phi3 || phi || glm4 || stablelm || nemotron || gpt_neox || glm4_moe || minimax_m2) {
    // Phi3Config: the fraction in rope_parameters (transformers 5) or top-level (the hub), of
    // head_dim dims (transformers' RoPE init: head_dim, or hidden_size / num_attention_heads),
    // rounded down (int()). PhiConfig's and Glm4Config's default is 0.5, StableLmConfig's 0.25;
    // GPT-NeoX's read above.
    // (NemotronConfig's and Glm4MoeConfig's 0.5)
    const double def = stablelm ? 0.25 : phi || glm4 || nemotron || glm4_moe ? 0.5 : 1.0;
    double f = neox_pct;
    const char* fkey = neox_pct_key;
    if (!gpt_neox) {
      // (MiniMaxM2Config: a null factor is no factor to transformers, which then rotates every dim, whatever
      // rotary_dim says; MiniMax's code reads rotary_dim)
      if (minimax_m2)
        for (const char* k : {"partial_rotary_factor", "rotary_dim"})
          r.refuse_null(k,
                        "which transformers 5 reads as RoPE over all of head_dim (whatever rotary_dim says) and "
                        "MiniMax's code otherwise: kiln does not guess; give its value or leave it out");
      r.refuse_null("partial_rotary_factor", "with which transformers cannot compute its RoPE: give its value");
      f = r.num("partial_rotary_factor", def);
      fkey = "partial_rotary_factor";
      if (const char* k = r.rope_key();
          k && j[k].is_object() && j[k].contains("partial_rotary_factor") && !j[k]["partial_rotary_factor"].is_null()) {
        f = r.num(j[k], "partial_rotary_factor", def);
        fkey = k;
      }
      // MiniMaxM2Config: rotary_dim / head_dim where no partial_rotary_factor is given (setdefault); MiniMax's code
      // reads rotary_dim, transformers a factor given beside it: the two must agree.
      if (minimax_m2 && r.has("rotary_dim")) {
        const int64_t dims = r.pos_int("rotary_dim", true);
        if (dims > c.head_dim)
          r.fail("rotary_dim", "= " + std::to_string(dims) + " exceeds head_dim (" + std::to_string(c.head_dim) + ")");
        if (fkey == std::string("partial_rotary_factor") && !r.has("partial_rotary_factor")) {
          f = double(dims) / double(c.head_dim);
          fkey = "rotary_dim";
        } else if (int64_t(double(c.head_dim) * f) != dims) {
          r.fail("rotary_dim", "= " + std::to_string(dims) + ", but partial_rotary_factor (" + short_float(float(f)) +
                                   ") gives " + std::to_string(int64_t(double(c.head_dim) * f)) +
                                   " rotary dims: transformers reads the factor, MiniMax's code rotary_dim; kiln "
                                   "does not guess which was meant");
        }
      }
    }
    if (!(f > 0 && f <= 1)) r.fail(fkey, "partial_rotary_factor must be in (0, 1]");
    const int64_t rd = int64_t(double(c.head_dim) * f);
    if (fkey == std::string("rotary_dim") && (rd < 2 || rd % 2 != 0))  // (MiniMaxM2Config's factor, read back)
      r.fail("rotary_dim", "= " + j["rotary_dim"].dump() + " over head_dim " + std::to_string(c.head_dim) +
                               " is the factor " + short_float(float(f)) + ", which transformers reads back as " +
                               std::to_string(rd) +
                               " rotary dims (int(head_dim · factor)): they must be even and at "
                               "least 2");
    if (rd < 2 || rd % 2 != 0 || rd > c.head_dim)
      r.fail(fkey, "partial_rotary_factor " + std::to_string(f) + " gives " + std::to_string(rd) +
                       " rotary dims, which must be even, at least 2 and at most head_dim");
    if (rd != c.head_dim) c.rotary_dim = rd;
  } else if (r.has("partial_rotary_factor") && r.num("partial_rotary_factor", 1.0) != 1.0) {
    r.fail("partial_rotary_factor", "other than 1 is not supported for this architecture");
  }
  c.has_dtype = r.dtype(&c.dtype);
  if (phi3)
    r.refuse_null(
        "original_max_position_embeddings",
        "which Phi3Config types int (transformers 5 refuses the file): give its value or leave it out for 4096");
  if (qwen2_vl || qwen3_vl) r.set_mrope(qwen3_vl);
  // (the rope types of the families whose rotary embedding is transformers' shared one, dynamic_rope_update's: also
  // read_gemma's, read_olmo3's and read_gpt_oss's)
  const std::initializer_list<const char*> scaled = {"default", "linear", "llama3", "yarn", "dynamic"};
  if ((!gemma || gemma1) && !olmo3 && !gpt_oss)  // (read_gemma, read_olmo3 and read_gpt_oss read theirs; Phi3Config
                                                 // reads its old names su and yarn as longrope)
    c.rope = phi3              ? r.rope({"default", "longrope", "su=longrope", "yarn=longrope"}, 10000.0, true)
             : mixtral         ? r.rope(scaled, 1e6)                   // MixtralConfig's default_theta
             : phimoe          ? r.rope({"default", "longrope"}, 1e6)  // PhimoeConfig's
             : smollm3         ? r.rope(scaled, 2e6)                   // SmolLM3Config's
             : ernie || exaone ? r.rope(scaled, 5e5)                   // Ernie4_5Config's, ExaoneConfig's
             : helium          ? r.rope(scaled, 1e5)                   // HeliumConfig's
             : apertus         ? r.rope(scaled, 1.2e7)  // ApertusConfig's default_theta (its RoPE object's, above)
             // (HunYuanDenseV1Config: "dynamic" with an alpha is a fixed NTK base, its ntk_alpha; without, dynamic NTK)
             : hunyuan ? r.rope({"default", "linear", "llama3", "yarn", "dynamic=ntk_alpha"}, 10000.0)
             // (Qwen2VLTextConfig reads rope type mrope as default)
             : qwen2_vl           ? r.rope({"default", "linear", "llama3", "yarn", "mrope=default"}, 1e6)
             : qwen3_vl           ? r.rope({"default", "linear", "llama3", "yarn"}, 5e5)
             : gpt_neox           ? r.rope(scaled, neox_theta, true, false)
             : cohere && !cohere2 ? r.rope(scaled, 5e5)        // CohereConfig's
             : solar              ? r.rope(scaled, 1e6)        // SolarOpenConfig's default_theta
             : minimax_m2         ? r.rope(scaled, 5e6, true)  // MiniMaxM2Config's (the factor read above)
             : cwm                ? r.rope(scaled, 1e6)        // CwmConfig's default_theta (its RoPE object's, above)
             : flex_olmo          ? r.rope(scaled, 5e5)        // FlexOlmoConfig's default_theta
                                  : r.rope(scaled, 10000.0, phi || glm4 || stablelm || nemotron || glm4_moe);
  if (qwen2_vl || qwen3_vl) check_mrope_section(r, j, c.head_dim, qwen2_vl);
  // (PhimoeConfig's own original_max_position_embeddings, which its LongRoPE never reads: the object's is, else
  // max_position_embeddings; the hub's files give both, equal)
  if (phimoe && r.has("original_max_position_embeddings") && c.rope.type == "longrope" &&
      r.pos_int("original_max_position_embeddings", true) != c.rope.original_max_position_embeddings)
    r.fail("original_max_position_embeddings",
           "= " + j["original_max_position_embeddings"].dump() +
               ", which Phimoe's LongRoPE never reads (it reads the RoPE object's, or without one "
               "max_position_embeddings: " +
               std::to_string(c.rope.original_max_position_embeddings) +
               "): kiln refuses rather than guess which was meant");
  // NTK-stretched bases (stretch_rope_base): HunYuan's ntk_alpha, dynamic NTK's
  const char* rope_key = r.rope_key() ? r.rope_key() : "rope_parameters";
  if (c.rope.type == "ntk_alpha") {  // (HunYuan's: b = alpha, d = head_dim as transformers takes it)
    if (c.head_dim <= 2) r.fail("head_dim", "must be more than 2 for the ntk_alpha RoPE (alpha^(d / (d - 2)))");
    stretch_rope_base(r, &c.rope, c.rope.alpha, c.head_dim, rope_key, "base theta · alpha^(d / (d - 2))");
  }
  // rope type dynamic (fold_dynamic_rope; the sliding layers' RoPE of Gemma 3 and OLMo 3 likewise)
  auto fold_dynamic = [&](RopeConfig* rope, const char* key) {
    if (rope->type != "dynamic") return;
    // (it takes getattr(config, "head_dim", hidden // heads), None where these classes leave a null (MixtralConfig an
    // absent) head_dim so, which its init cannot multiply: transformers cannot build the model)
    if ((mixtral && !r.has("head_dim")) || (j.contains("head_dim") && j["head_dim"].is_null() &&
                                            (qwen2 || qwen3_moe || starcoder2 || stablelm || gpt_neox)))
      r.fail("head_dim", std::string(j.contains("head_dim") ? "is null" : "is missing") + ", which " + c.architecture +
                             "'s config keeps as None, and transformers' dynamic NTK RoPE cannot build from it (it "
                             "reads head_dim before hidden_size / num_attention_heads): give its value");
    fold_dynamic_rope(r, rope, c.rotary(), c.max_position_embeddings, key);
  };
  fold_dynamic(&c.rope, rope_key);
  fold_dynamic(&c.rope_local, "rope_parameters.sliding_attention");
  if (c.rope.type == "longrope" && int64_t(c.rope.short_factor.size()) != c.rotary() / 2)
    r.fail("rope_parameters",
           "short_factor must hold rotary dims / 2 = " + std::to_string(c.rotary() / 2) + " numbers");
  // max_sequence_length: early LLaMA conversions' copy of the training length, which transformers never reads.
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS, "max_sequence_length"});
  return c;
}

}  // namespace

LlamaConfig parse_llama_config(const std::string& text, const std::string& path) {
  return parse_llama_text(text, path, nullptr);
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
