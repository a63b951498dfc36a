#include "compiler/frontends/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "compiler/error.h"
#include "compiler/frontends/common.h"
#include "compiler/frontends/frontend.h"
#include "kernels/attention.h"
#include "kernels/dtype.h"
#include "kernels/elementwise.h"
#include "kernels/head_rmsnorm.h"
#include "kernels/kv_write.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace kiln {

namespace {

// The checkpoint tensors of one MoE layer's experts (prefix p: "model.layers.<i>."): the router,
// then what stacks into gate|up (each expert's gate rows, then its up rows) and into down.
struct MoeTensors {
  std::string router;
  std::vector<std::string> gate_up, down;
};

// noaux_tc's e_score_correction_bias of an MoE layer (GLM-4.5's [experts]; ERNIE 4.5 MoE's [1, experts], EXAONE
// MoE's and MiniMax-M2's [experts], the hub's name or transformers 5's).
// `in_gate`: under transformers 5's name (c.correction_bias_in_gate, once the frontend has read the checkpoint).
std::string correction_bias_name(const LlamaConfig& c, const std::string& p, bool in_gate) {
  const std::string where = in_gate ? "mlp.gate." : "mlp.";
  if (c.ernie_moe) return p + where + "moe_statics.e_score_correction_bias";
  if (c.exaone_moe) return p + where + "e_score_correction_bias";
  if (c.minimax_m2) return p + (in_gate ? "mlp." : "block_sparse_moe.") + "e_score_correction_bias";
  return p + "mlp.gate.e_score_correction_bias";
}
std::string correction_bias_name(const LlamaConfig& c, const std::string& p) {
  return correction_bias_name(c, p, c.correction_bias_in_gate);
}

MoeTensors moe_tensors(const LlamaConfig& c, const std::string& p) {
  MoeTensors t;
  if (c.gpt_oss) {  // (with their biases: mlp.router.bias, experts.gate_up_proj_bias, experts.down_proj_bias)
    const std::string m = p + "mlp.";
    return {m + "router.weight", {m + "experts.gate_up_proj"}, {m + "experts.down_proj"}};
  }
  if (c.granite_moe) {
    const std::string m = p + "block_sparse_moe.";
    if (c.granite_moe_renamed) return {m + "router.weight", {m + "experts.gate_up_proj"}, {m + "experts.down_proj"}};
    return {m + "router.layer.weight", {m + "input_linear.weight"}, {m + "output_linear.weight"}};
  }
  if (c.dbrx) {  // (gate, up and down: [experts · ffn, hidden] each)
    const std::string m = p + "mlp.";
    return {m + "gate.weight", {m + "experts.w1", m + "experts.v1"}, {m + "experts.w2"}};
  }
  const std::string m = c.mixtral_names && !c.moe_fused ? p + "block_sparse_moe." : p + "mlp.";
  t.router = m + (c.hunyuan_moe ? "gate.wg.weight" : "gate.weight");  // (HunYuan MoE's router: gate.wg)
  if (c.moe_fused) {
    t.gate_up = {m + "experts.gate_up_proj"};
    t.down = {m + "experts.down_proj"};
    return t;
  }
  for (int64_t x = 0; x < c.num_local_experts; ++x) {
    const std::string ex = m + "experts." + std::to_string(x) + ".";
    if (c.mixtral_names) {
      t.gate_up.insert(t.gate_up.end(), {ex + "w1.weight", ex + "w3.weight"});
      t.down.push_back(ex + "w2.weight");
    } else {
      t.gate_up.insert(t.gate_up.end(), {ex + "gate_proj.weight", ex + "up_proj.weight"});
      t.down.push_back(ex + "down_proj.weight");
    }
  }
  return t;
}

// Phi-1/1.5/2's tensors (LlamaConfig::phi).
std::map<std::string, std::vector<int64_t>> phi_tensor_shapes(const LlamaConfig& c) {
  const int64_t D = c.hidden_size, F = c.intermediate_size, hd = c.head_dim;
  const int64_t q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
  std::map<std::string, std::vector<int64_t>> e;
  e["model.embed_tokens.weight"] = {c.vocab_size, D};
  e["model.final_layernorm.weight"] = e["model.final_layernorm.bias"] = {D};
  if (!c.tie_word_embeddings) e["lm_head.weight"] = {c.vocab_size, D};
  e["lm_head.bias"] = {c.vocab_size};  // (also when tied: only the weight is shared)
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = hf_layer_prefix(i);
    e[p + "input_layernorm.weight"] = e[p + "input_layernorm.bias"] = {D};
    for (const auto& [name, rows] : {std::pair<const char*, int64_t>{"self_attn.q_proj", q},
                                     {"self_attn.k_proj", kv},
                                     {"self_attn.v_proj", kv},
                                     {"self_attn.dense", D},
                                     {"mlp.fc1", F},
                                     {"mlp.fc2", D}}) {
      const std::string n = std::string(name);
      e[p + n + ".weight"] = {rows, n == "self_attn.dense" ? q : n == "mlp.fc2" ? F : D};
      e[p + n + ".bias"] = {rows};
    }
  }
  return e;
}

// GPT-2's Conv1D weights (stored [in, out]) under kiln's names: the frontend transposes them.
std::vector<std::string> gpt2_conv1d_weights(const LlamaConfig& c) {
  std::vector<std::string> names;
  for (int64_t i = 0; c.gpt2 && i < c.num_hidden_layers; ++i)
    for (const char* m : {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.c_fc", "mlp.c_proj"})
      names.push_back(hf_layer_prefix(i) + m + ".weight");
  return names;
}

}  // namespace

// BLOOM's ALiBi slopes for n heads by transformers' _get_alibi_slopes: with p the largest power of
// two up to n, base^k for k = 1..p (base = 2^(-2^-(log2 p - 3)), rounded to f32; the powers in f32), then for the
// other n - p heads extra^k for k = 1, 3, 5, ... (extra: the base for 2p).
std::vector<float> bloom_alibi_slopes(int64_t n) {
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  auto base_for = [](int64_t q) { return float(std::pow(2.0, -std::pow(2.0, -(std::log2(double(q)) - 3.0)))); };
  std::vector<float> s;
  for (int64_t k = 1; k <= p; ++k) s.push_back(powf(base_for(p), float(k)));
  for (int64_t k = 1; int64_t(s.size()) < n; k += 2) s.push_back(powf(base_for(2 * p), float(k)));
  return s;
}

// MPT's ALiBi slopes for n heads, as transformers' build_mpt_alibi_tensor computes them (alibi_bias_max 8): with P
// the power of two at or above n, 1 / 2^(i · 8 / P) for i = 1..P (in f32), the odd-numbered then the even-numbered
// ones where P is not n, the first n kept.
std::vector<float> mpt_alibi_slopes(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  std::vector<float> all;
  for (int64_t i = 1; i <= p; ++i) all.push_back(1.0f / exp2f(float(i) * float(8.0 / double(p))));
  if (p == n) return all;
  std::vector<float> s;
  for (int64_t i = 1; i < p; i += 2) s.push_back(all[size_t(i)]);
  for (int64_t i = 0; i < p; i += 2) s.push_back(all[size_t(i)]);
  s.resize(size_t(n));
  return s;
}

std::map<std::string, std::vector<int64_t>> llama_tensor_shapes(const LlamaConfig& c) {
  if (c.phi) return phi_tensor_shapes(c);
  const int64_t D = c.hidden_size, F = c.intermediate_size, hd = c.head_dim;
  const int64_t q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
  std::map<std::string, std::vector<int64_t>> e;
  e["model.embed_tokens.weight"] = {c.vocab_size, D};
  if (!c.weightless_norms()) e["model.norm.weight"] = {D};  // (OLMo's LayerNorms, nanochat's RMSNorms: none)
  if (c.norm_biases()) e["model.norm.bias"] = {D};  // (Starcoder2's LayerNorms)
  if (!c.tie_word_embeddings) e["lm_head.weight"] = {c.vocab_size, D};
  if (c.gptj || c.lm_head_bias) e["lm_head.bias"] = {c.vocab_size};  // (also when tied: only the weight is shared)
  if (c.learned_positions()) e["model.embed_positions.weight"] = {c.max_position_embeddings + c.position_offset(), D};
  if (c.bloom) e["model.embed_norm.weight"] = e["model.embed_norm.bias"] = {D};
  const std::string up = c.mlp_up_name(), down = c.mlp_down_name();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = hf_layer_prefix(i);
    const std::string attn_norm = p + c.attn_norm_module(), mlp_norm = p + c.mlp_norm_module();
    if (!c.olmo2 && !c.weightless_norms()) e[attn_norm + ".weight"] = {D};
    if (!c.parallel_block() && !c.weightless_norms()) e[mlp_norm + ".weight"] = {D};  // (one norm, both branches)
    if (c.norm_biases()) e[attn_norm + ".bias"] = {D};
    if (c.norm_biases() && !c.parallel_block()) e[mlp_norm + ".bias"] = {D};
    if (c.mlp_activation == Activation::kXielu) {  // (as XIELUActivation holds them: [1], [1], scalars)
      e[p + "mlp.act_fn.alpha_p"] = e[p + "mlp.act_fn.alpha_n"] = {1};
      e[p + "mlp.act_fn.beta"] = e[p + "mlp.act_fn.eps"] = {};
    }
    if (c.sandwich_norms()) e[p + "pre_feedforward_layernorm.weight"] = {D};
    if (c.sandwich_norms() || c.olmo2) e[p + "post_feedforward_layernorm.weight"] = {D};
    if (c.glm4_branch_norms) e[p + "post_self_attn_layernorm.weight"] = e[p + "post_mlp_layernorm.weight"] = {D};
    if (c.hyperclovax && c.post_norms) e[p + "post_norm1.weight"] = e[p + "post_norm2.weight"] = {D};
    if (c.fused_qkv() || c.grouped_qkv()) {
      e[p + "self_attn.qkv_proj.weight"] = {q + 2 * kv, D};
      if ((c.grouped_qkv() || c.gpt2) && c.attention_bias)
        e[p + "self_attn.qkv_proj.bias"] = {q + 2 * kv};  // (not Phi-3's)
    } else {
      e[p + "self_attn.q_proj.weight"] = {q, D};
      e[p + "self_attn.k_proj.weight"] = {kv, D};
      e[p + "self_attn.v_proj.weight"] = {kv, D};
    }
    e[p + "self_attn.o_proj.weight"] = {D, q};
    if (c.is_moe_layer(i)) {
      const int64_t E = c.num_local_experts, Fm = c.moe_intermediate_size;
      const MoeTensors t = moe_tensors(c, p);
      e[t.router] = {E, D};
      if (c.noaux_experts())
        e[correction_bias_name(c, p)] = c.ernie_moe ? std::vector<int64_t>{1, E} : std::vector<int64_t>{E};
      if (c.gpt_oss) {  // [E, D, 2F] (gate and up columns interleaved) and [E, F, D] (MXFP4: [E, 2F, D] and [E, D,
                        // F]), with biases
        e[t.gate_up[0]] = c.mxfp4_experts ? std::vector<int64_t>{E, 2 * Fm, D} : std::vector<int64_t>{E, D, 2 * Fm};
        e[t.down[0]] = c.mxfp4_experts ? std::vector<int64_t>{E, D, Fm} : std::vector<int64_t>{E, Fm, D};
        e[p + "mlp.router.bias"] = {E};
        e[t.gate_up[0] + "_bias"] = {E, 2 * Fm};
        e[t.down[0] + "_bias"] = {E, D};
      } else if (c.dbrx) {
        for (const std::string& n : t.gate_up) e[n] = {E * Fm, D};
        e[t.down[0]] = {E * Fm, D};
      } else if (c.moe_fused) {
        // [E, 2F, D] and [E, D, F]; Qwen3-VL-MoE's in the hub's layout (experts_in_major): [E, D, 2F], [E, F, D]
        const bool gu_in = c.experts_in_major.count(t.gate_up[0]) > 0,
                   down_in = c.experts_in_major.count(t.down[0]) > 0;
        e[t.gate_up[0]] = gu_in ? std::vector<int64_t>{E, D, 2 * Fm} : std::vector<int64_t>{E, 2 * Fm, D};
        e[t.down[0]] = down_in ? std::vector<int64_t>{E, Fm, D} : std::vector<int64_t>{E, D, Fm};
      } else {
        for (const std::string& n : t.gate_up) e[n] = {Fm, D};
        for (const std::string& n : t.down) e[n] = {D, Fm};
      }
      if (const int64_t Fs = c.shared_expert_intermediate_size; Fs > 0 && c.granite_shared_mlp()) {
        e[p + "shared_mlp.input_linear.weight"] = {2 * Fs, D};
        e[p + "shared_mlp.output_linear.weight"] = {D, Fs};
      } else if (const std::string sh = p + c.ungated_shared_prefix(); Fs > 0 && sh != p) {  // (no gate)
        e[sh + "gate_proj.weight"] = e[sh + "up_proj.weight"] = {Fs, D};
        e[sh + "down_proj.weight"] = {D, Fs};
      } else if (Fs > 0) {  // (Qwen2-MoE)
        e[p + "mlp.shared_expert.gate_proj.weight"] = e[p + "mlp.shared_expert.up_proj.weight"] = {Fs, D};
        e[p + "mlp.shared_expert.down_proj.weight"] = {D, Fs};
        e[p + "mlp.shared_expert_gate.weight"] = {1, D};
      }
    } else if (c.fused_projections || c.glm4) {
      e[p + "mlp.gate_up_proj.weight"] = {2 * F, D};
      e[p + "mlp.down_proj.weight"] = {D, F};
    } else if (c.ungated_mlp()) {  // (no gate)
      e[p + up + ".weight"] = {F, D};
      e[p + down + ".weight"] = {D, F};
    } else {
      e[p + "mlp.gate_proj.weight"] = {F, D};
      e[p + "mlp.up_proj.weight"] = {F, D};
      e[p + "mlp.down_proj.weight"] = {D, F};
    }
    if ((c.attention_bias || c.qkv_bias) && !c.grouped_qkv() && !c.gpt2) {
      e[p + "self_attn.q_proj.bias"] = {q};
      e[p + "self_attn.k_proj.bias"] = {kv};
      e[p + "self_attn.v_proj.bias"] = {kv};
    }
    if (c.attention_bias || c.out_bias) e[p + "self_attn.o_proj.bias"] = {D};
    if (c.gpt_oss) e[p + "self_attn.sinks"] = {c.num_attention_heads};
    if (c.head_layernorm && c.stablelm) {  // (a tensor for each head)
      for (int64_t h = 0; h < c.num_attention_heads; ++h)
        e[p + "self_attn.q_layernorm.norms." + std::to_string(h) + ".weight"] = {hd};
      for (int64_t h = 0; h < c.num_key_value_heads; ++h)
        e[p + "self_attn.k_layernorm.norms." + std::to_string(h) + ".weight"] = {hd};
    } else if (c.head_layernorm) {  // (Cohere's weights for each head)
      e[p + "self_attn.q_norm.weight"] = {c.num_attention_heads, hd};
      e[p + "self_attn.k_norm.weight"] = {c.num_key_value_heads, hd};
    } else if (c.qk_norm && !c.weightless_norms()) {  // (OLMo 2's over q and k whole)
      e[p + c.q_norm_module() + ".weight"] = {c.qk_norm_whole() ? q : hd};
      e[p + c.k_norm_module() + ".weight"] = {c.qk_norm_whole() ? kv : hd};
    }
    if (c.mlp_bias) {
      if (!c.ungated_mlp()) e[p + "mlp.gate_proj.bias"] = {F};
      e[p + up + ".bias"] = {F};
      e[p + down + ".bias"] = {D};
    }
  }
  for (const std::string& n : gpt2_conv1d_weights(c))
    std::swap(e.at(n)[0], e.at(n)[1]);  // (as the checkpoint holds them)
  return e;
}

namespace {

// A family whose checkpoints name kiln's modules otherwise (GPT-NeoX, Falcon, the GPT-2 family, OPT, BLOOM, MPT, GPT-J,
// EXAONE 3): its names as kiln's (from_hub) and back as transformers 5 holds the model, which is what peft names
// (to_hub; EXAONE's: see load_name). A module's path
// or a tensor's name, by whole-component prefixes: `top` (both ways), a layer's modules under `layers`.<i>. (`inner`),
// the rest of a layer kept under model.layers.<i>. Other names are kept.
struct HubNames {
  std::string architecture, root;                          // (root: the model's prefix, "gpt_neox")
  std::vector<std::pair<std::string, std::string>> top;    // (the hub's, kiln's)
  std::string layers;                                      // the hub's layer list ("gpt_neox.layers")
  std::vector<std::pair<std::string, std::string>> inner;  // a layer's modules (the hub's, kiln's)
  std::vector<std::string> buffers;  // a layer's buffers transformers ignores (left out), name suffixes
  std::string old_head;              // the hub's name for the head transformers 5 calls lm_head (GPT-NeoX's embed_out)
  // Set where transformers 5 renames the checkpoint's names by rules as it loads them (EXAONE's conversion mapping):
  // each name as it loads it. It holds the model under kiln's names, which peft's adapters and the quantization
  // libraries' module lists then name; the table above only names tensors in messages.
  std::string (*load_name)(const std::string&) = nullptr;
};

// transformers 5's renaming of EXAONE 3's checkpoint names as it loads them (conversion_mapping's "exaone" rules, in
// their order, each replacing its first match; the first three only at the start): the hub's names to LLaMA's,
// whatever mix of the two a name holds. A module's path renames as its tensors' do (with a trailing dot).
std::string exaone_loaded_name(const std::string& name) {
  std::string n = name;
  static const std::pair<std::string, std::string> kStart[] = {{"transformer.wte.", "model.embed_tokens."},
                                                               {"transformer.h.", "model.layers."},
                                                               {"transformer.ln_f.", "model.norm."}};
  static const std::pair<std::string, std::string> kAnywhere[] = {
      {".attn.attention.", ".self_attn."}, {".self_attn.out_proj.", ".self_attn.o_proj."},
      {".ln_1.", ".input_layernorm."},     {".ln_2.", ".post_attention_layernorm."},
      {".mlp.c_fc_0.", ".mlp.gate_proj."}, {".mlp.c_fc_1.", ".mlp.up_proj."},
      {".mlp.c_proj.", ".mlp.down_proj."}};
  for (const auto& [from, to] : kStart)
    if (n.compare(0, from.size(), from) == 0) n = to + n.substr(from.size());
  for (const auto& [from, to] : kAnywhere)
    if (const size_t at = n.find(from); at != std::string::npos) n.replace(at, from.size(), to);
  return n;
}
// GPT-NeoX: gpt_neox.embed_in, gpt_neox.final_layer_norm, embed_out (the hub's) or lm_head (transformers 5's),
// gpt_neox.layers.<i>.attention.query_key_value and .dense; Pythia's old causal-mask and RoPE buffers.
const HubNames kNeoxNames{
    "GPTNeoXForCausalLM",
    "gpt_neox",
    {{"gpt_neox.embed_in", "model.embed_tokens"}, {"gpt_neox.final_layer_norm", "model.norm"}, {"lm_head", "lm_head"}},
    "gpt_neox.layers",
    {{"attention.query_key_value", "self_attn.qkv_proj"}, {"attention.dense", "self_attn.o_proj"}},
    {".attention.bias", ".attention.masked_bias", ".attention.rotary_emb.inv_freq"},
    "embed_out"};
// Falcon: transformer.word_embeddings, transformer.ln_f, lm_head, transformer.h.<i>.self_attention.query_key_value
// and .dense; with two norms before the parallel attention and MLP (kFalconTwoNormNames) ln_attn and ln_mlp, else
// input_layernorm (and post_attention_layernorm) as kiln names them.
const HubNames kFalconNames{
    "FalconForCausalLM",
    "transformer",
    {{"transformer.word_embeddings", "model.embed_tokens"}, {"transformer.ln_f", "model.norm"}, {"lm_head", "lm_head"}},
    "transformer.h",
    {{"self_attention.query_key_value", "self_attn.qkv_proj"}, {"self_attention.dense", "self_attn.o_proj"}},
    {},
    ""};
const HubNames kFalconTwoNormNames = [] {
  HubNames h = kFalconNames;
  h.inner.insert(h.inner.end(), {{"ln_attn", "input_layernorm"}, {"ln_mlp", "post_attention_layernorm"}});
  return h;
}();

// BLOOM: transformer.word_embeddings, word_embeddings_layernorm, ln_f, lm_head, transformer.h.<i>.
// self_attention.query_key_value and .dense (the norms and the MLP as kiln names them).
const HubNames kBloomNames{
    "BloomForCausalLM",
    "transformer",
    {{"transformer.word_embeddings", "model.embed_tokens"},
     {"transformer.word_embeddings_layernorm", "model.embed_norm"},
     {"transformer.ln_f", "model.norm"},
     {"lm_head", "lm_head"}},
    "transformer.h",
    {{"self_attention.query_key_value", "self_attn.qkv_proj"}, {"self_attention.dense", "self_attn.o_proj"}},
    {},
    ""};

// MPT: transformer.wte, transformer.norm_f, lm_head, transformer.blocks.<i>.norm_1, norm_2, attn.Wqkv, attn.out_proj,
// ffn.up_proj and ffn.down_proj.
const HubNames kMptNames{
    "MptForCausalLM",
    "transformer",
    {{"transformer.wte", "model.embed_tokens"}, {"transformer.norm_f", "model.norm"}, {"lm_head", "lm_head"}},
    "transformer.blocks",
    {{"norm_1", "input_layernorm"},
     {"norm_2", "post_attention_layernorm"},
     {"attn.Wqkv", "self_attn.qkv_proj"},
     {"attn.out_proj", "self_attn.o_proj"},
     {"ffn.up_proj", "mlp.up_proj"},
     {"ffn.down_proj", "mlp.down_proj"}},
    {},
    ""};

// DBRX: transformer.wte, transformer.norm_f, lm_head, transformer.blocks.<i>.norm_attn_norm.norm_1, norm_2,
// attn.Wqkv and attn.out_proj, ffn.router.layer (the router, kiln's mlp.gate) and ffn.experts.mlp.w1, v1 and w2 (the
// experts' gate, up and down, kiln's mlp.experts.*: parameters, no .weight).
const HubNames kDbrxNames{
    "DbrxForCausalLM",
    "transformer",
    {{"transformer.wte", "model.embed_tokens"}, {"transformer.norm_f", "model.norm"}, {"lm_head", "lm_head"}},
    "transformer.blocks",
    {{"norm_attn_norm.norm_1", "input_layernorm"},
     {"norm_attn_norm.norm_2", "post_attention_layernorm"},
     {"norm_attn_norm.attn.Wqkv", "self_attn.qkv_proj"},
     {"norm_attn_norm.attn.out_proj", "self_attn.o_proj"},
     {"ffn.router.layer", "mlp.gate"},
     {"ffn.experts.mlp", "mlp.experts"}},
    {},
    ""};

// GPT-J: transformer.wte, transformer.ln_f, lm_head, transformer.h.<i>.ln_1, attn.q_proj/k_proj/v_proj/out_proj, and
// the mlp's fc_in/fc_out as they are; its old checkpoints' causal-mask buffers.
const HubNames kGptjNames{
    "GPTJForCausalLM",
    "transformer",
    {{"transformer.wte", "model.embed_tokens"}, {"transformer.ln_f", "model.norm"}, {"lm_head", "lm_head"}},
    "transformer.h",
    {{"ln_1", "input_layernorm"},
     {"attn.q_proj", "self_attn.q_proj"},
     {"attn.k_proj", "self_attn.k_proj"},
     {"attn.v_proj", "self_attn.v_proj"},
     {"attn.out_proj", "self_attn.o_proj"}},
    {".attn.bias", ".attn.masked_bias"},
    ""};

// GPT-2: transformer.wte, transformer.wpe, transformer.ln_f, lm_head, transformer.h.<i>.ln_1, ln_2, attn.c_attn and
// attn.c_proj (the mlp's c_fc and c_proj as they are); the old causal-mask buffers.
const HubNames kGpt2Names{"GPT2LMHeadModel",
                          "transformer",
                          {{"transformer.wte", "model.embed_tokens"},
                           {"transformer.wpe", "model.embed_positions"},
                           {"transformer.ln_f", "model.norm"},
                           {"lm_head", "lm_head"}},
                          "transformer.h",
                          {{"ln_1", "input_layernorm"},
                           {"ln_2", "post_attention_layernorm"},
                           {"attn.c_attn", "self_attn.qkv_proj"},
                           {"attn.c_proj", "self_attn.o_proj"}},
                          {".attn.bias", ".attn.masked_bias"},
                          ""};

// GPT-Neo: GPT-2's names but for attn.attention.q_proj/k_proj/v_proj/out_proj; the old causal-mask buffers.
const HubNames kGptNeoNames = [] {
  HubNames h = kGpt2Names;
  h.architecture = "GPTNeoForCausalLM";
  h.inner = {{"ln_1", "input_layernorm"},
             {"ln_2", "post_attention_layernorm"},
             {"attn.attention.q_proj", "self_attn.q_proj"},
             {"attn.attention.k_proj", "self_attn.k_proj"},
             {"attn.attention.v_proj", "self_attn.v_proj"},
             {"attn.attention.out_proj", "self_attn.o_proj"}};
  h.buffers = {".attn.attention.bias", ".attn.attention.masked_bias"};
  return h;
}();

// GPT-BigCode: GPT-2's names (c_attn and c_proj Linear layers), no buffers.
const HubNames kBigCodeNames = [] {
  HubNames h = kGpt2Names;
  h.architecture = "GPTBigCodeForCausalLM";
  h.buffers = {};
  return h;
}();

// OPT: model.decoder.embed_tokens, embed_positions and final_layer_norm, lm_head, model.decoder.layers.<i>.
// self_attn_layer_norm, final_layer_norm (the MLP's norm), self_attn.out_proj, fc1 and fc2 (q/k/v_proj as they are).
const HubNames kOptNames{"OPTForCausalLM",
                         "model",
                         {{"model.decoder.embed_tokens", "model.embed_tokens"},
                          {"model.decoder.embed_positions", "model.embed_positions"},
                          {"model.decoder.final_layer_norm", "model.norm"},
                          {"lm_head", "lm_head"}},
                         "model.decoder.layers",
                         {{"self_attn_layer_norm", "input_layernorm"},
                          {"final_layer_norm", "post_attention_layernorm"},
                          {"self_attn.out_proj", "self_attn.o_proj"},
                          {"fc1", "mlp.fc1"},
                          {"fc2", "mlp.fc2"}},
                         {},
                         ""};

// EXAONE 3.0 / 3.5: transformer.wte, transformer.ln_f, lm_head, transformer.h.<i>.ln_1, ln_2,
// attn.attention.q_proj/k_proj/v_proj/out_proj, mlp.c_fc_0 (gate), c_fc_1 (up) and c_proj (down), which transformers 5
// renames to LLaMA's (kiln's) as it loads them.
const HubNames kExaoneNames{
    "ExaoneForCausalLM",
    "transformer",
    {{"transformer.wte", "model.embed_tokens"}, {"transformer.ln_f", "model.norm"}, {"lm_head", "lm_head"}},
    "transformer.h",
    {{"ln_1", "input_layernorm"},
     {"ln_2", "post_attention_layernorm"},
     {"attn.attention.q_proj", "self_attn.q_proj"},
     {"attn.attention.k_proj", "self_attn.k_proj"},
     {"attn.attention.v_proj", "self_attn.v_proj"},
     {"attn.attention.out_proj", "self_attn.o_proj"},
     {"mlp.c_fc_0", "mlp.gate_proj"},
     {"mlp.c_fc_1", "mlp.up_proj"},
     {"mlp.c_proj", "mlp.down_proj"}},
    {},
    "",
    exaone_loaded_name};

// The family's names, or null where the checkpoint names modules as kiln does.
const HubNames* hub_names(const LlamaConfig& c) {
  if (c.opt) return &kOptNames;
  if (c.exaone) return &kExaoneNames;
  if (c.gpt_neox) return &kNeoxNames;
  if (c.gpt2) return &kGpt2Names;
  if (c.gpt_neo) return &kGptNeoNames;
  if (c.gpt_bigcode) return &kBigCodeNames;
  if (c.bloom) return &kBloomNames;
  if (c.mpt) return &kMptNames;
  if (c.dbrx) return &kDbrxNames;
  if (c.gptj) return &kGptjNames;
  if (c.falcon) return c.neox_parallel ? &kFalconTwoNormNames : &kFalconNames;
  return nullptr;
}

// n with its leading component(s) `from` (a whole dotted prefix) replaced by `to`; "" when it has no such prefix.
std::string swap_prefix(const std::string& n, const std::string& from, const std::string& to) {
  if (n.compare(0, from.size(), from) != 0 || (n.size() > from.size() && n[from.size()] != '.')) return "";
  return to + n.substr(from.size());
}

// Renames a name under layers_from.<i>. as layers_to.<i>. with the layer's own names mapped (h.inner, in the
// direction `forward` gives); "" when n is not a layer's.
std::string hub_layer_name(const HubNames& h, const std::string& n, const std::string& layers_from,
                           const std::string& layers_to, bool forward) {
  const std::string rest = swap_prefix(n, layers_from, "");
  if (rest.size() < 2) return "";
  const size_t dot = rest.find('.', 1);
  const std::string index = rest.substr(1, dot == std::string::npos ? std::string::npos : dot - 1);
  if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) return "";
  const std::string layer = layers_to + "." + index;
  if (dot == std::string::npos) return layer;
  const std::string inner = rest.substr(dot + 1);
  for (const auto& [hub, kiln] : h.inner)
    if (std::string r = swap_prefix(inner, forward ? hub : kiln, forward ? kiln : hub); !r.empty())
      return layer + "." + r;
  return layer + "." + inner;
}

std::string to_hub(const HubNames& h, const std::string& n) {
  for (const auto& [hub, kiln] : h.top)
    if (std::string r = swap_prefix(n, kiln, hub); !r.empty()) return r;
  const std::string r = hub_layer_name(h, n, "model.layers", h.layers, false);
  return r.empty() ? n : r;
}

// Only the family's name maps: one kiln's name for it maps back to (the old head name aside), so that kiln's own
// names under its layers (self_attn.qkv_proj, ...), which transformers does not load, stay as they are and are
// refused as unexpected.
std::string from_hub(const HubNames& h, const std::string& n) {
  if (!h.old_head.empty())
    if (std::string r = swap_prefix(n, h.old_head, "lm_head"); !r.empty()) return r;
  std::string r;
  for (const auto& [hub, kiln] : h.top)
    if (r.empty()) r = swap_prefix(n, hub, kiln);
  if (r.empty()) r = hub_layer_name(h, n, h.layers, "model.layers", true);
  return !r.empty() && to_hub(h, r) == n ? r : n;
}

// A module or tensor as peft names it on transformers 5's model (lm_head, not the old head name), as kiln's.
std::string peft_to_kiln(const HubNames& h, const std::string& n) {
  const bool old_head =
      !h.old_head.empty() && n.compare(0, h.old_head.size(), h.old_head) == 0 &&
      (n.size() == h.old_head.size() || n[h.old_head.size()] == '.');  // (the module itself, or its tensors)
  return old_head ? n : from_hub(h, n);
}

// A module under its names in a quantization config's lists: kiln's, transformers 5's, the hub's old head name.
std::vector<std::string> hub_spellings(const HubNames& h, const std::string& module) {
  std::vector<std::string> s = {module, to_hub(h, module)};
  if (module == "lm_head" && !h.old_head.empty()) s.push_back(h.old_head);
  return s;
}

// A module's path as transformers loads it, for a family whose names it renames by rules (h.load_name): as its
// tensors' names rename, with a trailing dot.
std::string loaded_module(const HubNames& h, const std::string& module) {
  const std::string n = h.load_name(module + ".");
  return n.substr(0, n.size() - 1);
}

// A tensor the checkpoint lacks, as the hub names it (the old head name for the head).
std::string hub_file_name(const HubNames& h, const std::string& n) {
  return n == "lm_head.weight" && !h.old_head.empty() ? h.old_head + ".weight" : to_hub(h, n);
}

bool ignorable(const std::string& name, const LlamaConfig& c) {
  // Old conversions ship rotary buffers; tied checkpoints sometimes ship lm_head anyway.
  if (name.find("rotary_emb.inv_freq") != std::string::npos) return true;
  // GLM-4.5's multi-token-prediction layers, after the model's (not compiled)
  if (static const std::string kLayers = "model.layers."; c.mtp_layers > 0 && name.rfind(kLayers, 0) == 0) {
    const size_t dot = name.find('.', kLayers.size());
    const std::string index = name.substr(kLayers.size(), dot == std::string::npos ? 0 : dot - kLayers.size());
    // (a layer index as transformers writes it: digits, no leading zero)
    if (!index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos &&
        (index == "0" || index[0] != '0')) {
      const int64_t i = std::stoll(index);
      if (i >= c.num_hidden_layers && i < c.num_hidden_layers + c.mtp_layers) return true;
    }
  }
  // ERNIE 4.5 MoE's multi-token-prediction tensors (mtp_block, mtp_emb_norm, ...), which transformers leaves unread
  // (_keys_to_ignore_on_load_unexpected: "mtp" anywhere in the name)
  // (EXAONE MoE's likewise: transformers leaves "mtp.*" unread)
  if ((c.ernie_moe || c.exaone_moe) && name.find("mtp") != std::string::npos) return true;
  return c.tie_word_embeddings && name == "lm_head.weight";
}

}  // namespace

void check_llama_tensors(const LlamaConfig& c, const Checkpoint& ck) {
  // (6 tensors a layer: the fewest of any family kiln reads, Phi-3's, MPT's and Falcon-7B's: two norms or one
  // norm's weight and bias, fused q/k/v, o, two MLP weights)
  check_layer_count(c.num_hidden_layers, ck, 6);
  // (GLM-4.5 with n_shared_experts 0: transformers saves its shared MLP's empty tensors)
  auto empty_shared = [&](const std::string& n) {
    return c.sigmoid_noaux() && c.shared_expert_intermediate_size == 0 &&
           n.find(".mlp.shared_experts.") != std::string::npos && ck.find(n)->numel() == 0;
  };
  check_checkpoint_tensors(
      llama_tensor_shapes(c), ck,
      [&](const std::string& n) { return ignorable(n, c) || gptq_zero_bias(n, ck) || empty_shared(n); },
      // (EXAONE's under kiln's names where the checkpoint names none of its tensors as the hub does)
      hub_names(c) && (c.hub_named_checkpoint || !hub_names(c)->load_name)
          ? std::function<std::string(const std::string&)>(
                [h = hub_names(c)](const std::string& n) { return hub_file_name(*h, n); })
          : nullptr);
}

Graph build_llama_graph(const LlamaConfig& c, const LlamaBuildOptions& o) {
  Graph g;
  const DType wt = o.plan_dtype;
  const int64_t D = c.hidden_size, F = c.intermediate_size, hd = c.head_dim, V = c.vocab_size;
  const int64_t H = c.num_attention_heads, KVH = c.num_key_value_heads, B = o.batch, S = o.max_seq;
  const int64_t W = (H + 2 * KVH) * hd;
  // (rows: those of the parts concatenated, in that order; empty: all)
  auto w = [&](const std::string& name, std::vector<int64_t> shape, std::vector<std::string> parts,
               std::vector<int64_t> rows = {}) {
    return g.weight(name, wt, std::move(shape), WeightSource{std::move(parts), {}, nullptr, std::move(rows)});
  };
  auto opt_bias = [&](bool on, const std::string& name, int64_t n, std::vector<std::string> parts,
                      std::vector<int64_t> rows = {}) {
    return on ? w(name, {n}, std::move(parts), std::move(rows)) : kNoTensor;
  };
  // ERNIE 4.5's, GLM-4's and Helium's pairwise RoPE: q's and k's rotary rows reordered inside each head
  // (deinterleave), the rest and v's kept.
  std::vector<int64_t> qkv_rows;
  if (c.grouped_qkv()) {
    // query_key_value: KVH groups of each group's H / KVH q heads, its k head, its v head (GPT-NeoX: a group a head;
    // Falcon's and GPT-BigCode's multi_query: one group); kiln's: every q row, every k, every v.
    const int64_t per = H / KVH;
    for (int64_t r = 0; r < W; ++r) {
      const int64_t head = r / hd, group = head < H ? head / per : head < H + KVH ? head - H : head - H - KVH;
      const int64_t in_group = head < H ? head % per : head < H + KVH ? per : per + 1;
      qkv_rows.push_back((group * (per + 2) + in_group) * hd + r % hd);
    }
  } else if (c.pairwise_rope) {
    const std::vector<int64_t> perm = deinterleave(c.rotary(), true);
    for (int64_t h = 0; h < H + KVH; ++h)
      for (int64_t i = 0; i < hd; ++i) qkv_rows.push_back(h * hd + (i < c.rotary() ? perm[size_t(i)] : i));
    for (int64_t i = (H + KVH) * hd; i < W; ++i) qkv_rows.push_back(i);
  } else if (c.nanochat) {  // (its RoPE turns the other way: the standard one on each q and k head's halves swapped)
    for (int64_t h = 0; h < H + KVH; ++h)
      for (int64_t i = 0; i < hd; ++i) qkv_rows.push_back(h * hd + (i + hd / 2) % hd);
    for (int64_t i = (H + KVH) * hd; i < W; ++i) qkv_rows.push_back(i);
  }
  // An RMSNorm weight. Gemma's norms multiply by (1 + w): folded in here, in f32 whatever the plan
  // dtype (transformers computes 1 + w in f32 too).
  // OLMo's LayerNorms and nanochat's RMSNorms: one weight of ones (f32) for all of them of a width.
  std::map<int64_t, uint32_t> ones;
  auto norm_w = [&](const std::string& name, int64_t n) {  // (Nemotron's LayerNorm1P too: its biases f32 then)
    if (c.weightless_norms()) {
      if (!ones.count(n))
        ones[n] = g.weight(n == D ? "layernorm.ones" : "layernorm.ones." + std::to_string(n), DType::F32, {n},
                           WeightSource{{}, std::vector<float>(size_t(n), 1.0f), nullptr});
      return ones[n];
    }
    if (!c.one_plus_norms()) return w(name, {n}, {name});
    return g.weight(name, DType::F32, {n}, WeightSource{{}, {}, [name](const WeightFetch& fetch) {
                                                          std::vector<float> v = fetch(name);
                                                          for (float& x : v) x += 1.0f;
                                                          return v;
                                                        }});
  };

  // A LayerNorm's bias: in the plan dtype, f32 beside a folded (1 + w) weight (the op takes w and b of one dtype).
  auto norm_b_w = [&](const std::string& name, int64_t n) {
    if (!c.one_plus_norms()) return w(name, {n}, {name});
    return g.weight(name, DType::F32, {n}, WeightSource{{name}, {}, nullptr});
  };

  // Cohere's per-head q/k norm weights ([heads, head_dim]) as one row, each head's values reordered as
  // a pairwise RoPE reorders q's and k's rows (deinterleave; none without one).
  auto head_norm_w = [&](const std::string& name, int64_t heads) {
    const std::vector<int64_t> perm = deinterleave(c.rotary(), c.pairwise_rope);
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < heads * hd; ++i) rows.push_back(i % hd < c.rotary() ? perm[size_t(i % hd)] : i % hd);
    return g.weight(name, wt, {heads * hd}, WeightSource{{}, {}, [name, rows, hd](const WeightFetch& fetch) {
                                                           const std::vector<float> v = fetch(name);
                                                           std::vector<float> out(rows.size());
                                                           for (size_t i = 0; i < rows.size(); ++i)
                                                             out[i] = v[i / size_t(hd) * size_t(hd) + size_t(rows[i])];
                                                           return out;
                                                         }});
  };

  // --- weights (QKV and gate|up concatenated along the output dimension)
  struct Layer {
    uint32_t attn_norm, qkv_w, qkv_b, q_norm, k_norm, o_w, o_b, mlp_norm, gu_w, gu_b, down_w, down_b, k_cache, v_cache;
    uint32_t attn_out_norm = kNoTensor, mlp_out_norm = kNoTensor;  // Gemma: on each branch before the residual add
    uint32_t attn_norm_b = kNoTensor, mlp_norm_b = kNoTensor;      // Phi, Starcoder2, StableLM: the LayerNorms' biases
    uint32_t router = kNoTensor;  // Mixtral: the router; gu_w and down_w then hold every expert
    // Qwen2-MoE: the shared expert's gate|up and down, and its gate (one row)
    uint32_t shared_gu_w = kNoTensor, shared_down_w = kNoTensor, shared_gate = kNoTensor;
    // GPT-OSS: the attention's sinks, the router's bias, the experts' gate|up and down biases
    uint32_t sinks = kNoTensor, router_b = kNoTensor, experts_gu_b = kNoTensor, experts_down_b = kNoTensor;
  };
  // GPT-OSS's experts in kiln's layout, f32, from the checkpoint's [E, D, 2F] gate_up_proj (gate and
  // up interleaved: column 2f gate row f, 2f + 1 up row f) and [E, F, D] down_proj: every expert's gate
  // rows, then its up rows, each of D values; every expert's D down rows of F values. Their biases
  // likewise (gate_up_proj_bias [E, 2F] deinterleaved; down_proj_bias as it is). MXFP4 experts are
  // stored out-major already ([E, 2F, D] with interleaved rows, [E, D, F]): deinterleaved only.
  // Qwen3-VL-MoE's in the hub's layout (experts_in_major: [E, D, 2F], gate columns then up columns, or [E, F, D]):
  // transposed only. DBRX's w2 ([E · F, D], each expert's down projection transposed) likewise.
  auto fused_experts = [&](const std::string& name, bool gate_up, bool bias) {
    const int64_t E = c.num_local_experts, Fm = c.moe_intermediate_size;
    // (transformers' float layout for GPT-OSS, the hub's for Qwen3-VL-MoE, DBRX's w2: transposed here)
    const bool in_major = !bias && (c.gpt_oss ? !c.mxfp4_experts : c.dbrx || c.experts_in_major.count(name) > 0),
               interleaved = c.gpt_oss;
    return [name, gate_up, bias, in_major, interleaved, E, Fm, D](const WeightFetch& fetch) {
      const std::vector<float> src = fetch(name);
      std::vector<float> out(src.size());
      const int64_t n = gate_up ? 2 * Fm : D, k = bias ? 1 : gate_up ? D : Fm;  // (out rows and their length)
      for (int64_t e = 0; e < E; ++e)
        for (int64_t j = 0; j < n; ++j) {
          // the source row (out-major) or column (in-major) of out row j: gate_up's interleaving
          const int64_t col = gate_up && interleaved ? (j < Fm ? 2 * j : 2 * (j - Fm) + 1) : j;
          for (int64_t i = 0; i < k; ++i)
            out[size_t((e * n + j) * k + i)] = src[size_t(in_major ? (e * k + i) * n + col : (e * n + col) * k + i)];
        }
      return out;
    };
  };
  const uint32_t embed = w("model.embed_tokens.weight", {V, D}, {"model.embed_tokens.weight"});
  std::vector<Layer> layers;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = hf_layer_prefix(i);
    Layer L;
    L.attn_norm = c.olmo2 ? kNoTensor : norm_w(p + c.attn_norm_module() + ".weight", D);
    if (c.norm_biases()) L.attn_norm_b = norm_b_w(p + c.attn_norm_module() + ".bias", D);
    L.qkv_w = w(p + "self_attn.qkv_proj.weight", {W, D},
                c.fused_qkv() || c.grouped_qkv()
                    ? std::vector<std::string>{p + "self_attn.qkv_proj.weight"}
                    : std::vector<std::string>{p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
                                               p + "self_attn.v_proj.weight"},
                qkv_rows);
    L.qkv_b = opt_bias(c.attention_bias || c.qkv_bias, p + "self_attn.qkv_proj.bias", W,
                       c.grouped_qkv() || c.gpt2
                           ? std::vector<std::string>{p + "self_attn.qkv_proj.bias"}
                           : std::vector<std::string>{p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias",
                                                      p + "self_attn.v_proj.bias"},
                       qkv_rows);
    if (c.head_layernorm && c.stablelm) {  // each head's weights in a tensor of its own, one after another
      for (const auto& [qk, heads, out] :
           {std::tuple<const char*, int64_t, uint32_t*>{"q", H, &L.q_norm}, {"k", KVH, &L.k_norm}}) {
        const std::string n = p + "self_attn." + qk + "_layernorm.norms.";
        std::vector<std::string> parts;
        for (int64_t h = 0; h < heads; ++h) parts.push_back(n + std::to_string(h) + ".weight");
        *out = w(n + "weight", {heads * hd}, parts);
      }
    } else if (c.head_layernorm) {  // [heads, head_dim], each head's rows in the order a pairwise RoPE gave q's and k's
      L.q_norm = head_norm_w(p + "self_attn.q_norm.weight", H);
      L.k_norm = head_norm_w(p + "self_attn.k_norm.weight", KVH);
    } else {
      L.q_norm = c.qk_norm ? norm_w(p + c.q_norm_module() + ".weight", c.qk_norm_whole() ? H * hd : hd) : kNoTensor;
      L.k_norm = c.qk_norm ? norm_w(p + c.k_norm_module() + ".weight", c.qk_norm_whole() ? KVH * hd : hd) : kNoTensor;
    }
    const std::string o = p + (c.phi ? "self_attn.dense" : "self_attn.o_proj");
    L.o_w = w(o + ".weight", {D, H * hd}, {o + ".weight"});
    L.o_b = opt_bias((c.attention_bias || c.out_bias) && !c.output_biases_dropped, o + ".bias", D, {o + ".bias"});
    // LLaMA's post_attention_layernorm is the MLP's input norm; Gemma's normalizes the attention
    // output, and pre_feedforward_layernorm is the MLP's input norm (Gemma 1's are LLaMA's).
    if (c.parallel_block()) {
      L.mlp_norm = kNoTensor;  // (the MLP reads the attention's input norm)
    } else if (c.olmo2) {      // norms on the branches only
      L.attn_out_norm = norm_w(p + "post_attention_layernorm.weight", D);
      L.mlp_norm = kNoTensor;
      L.mlp_out_norm = norm_w(p + "post_feedforward_layernorm.weight", D);
    } else if (c.glm4_branch_norms) {
      L.attn_out_norm = norm_w(p + "post_self_attn_layernorm.weight", D);
      L.mlp_norm = norm_w(p + "post_attention_layernorm.weight", D);
      L.mlp_out_norm = norm_w(p + "post_mlp_layernorm.weight", D);
    } else if (c.hyperclovax && c.post_norms) {  // (Peri-LN: LLaMA's norms, and one on each branch's output)
      L.attn_out_norm = norm_w(p + "post_norm1.weight", D);
      L.mlp_norm = norm_w(p + "post_attention_layernorm.weight", D);
      L.mlp_out_norm = norm_w(p + "post_norm2.weight", D);
    } else if (c.sandwich_norms()) {
      L.attn_out_norm = norm_w(p + "post_attention_layernorm.weight", D);
      L.mlp_norm = norm_w(p + "pre_feedforward_layernorm.weight", D);
      L.mlp_out_norm = norm_w(p + "post_feedforward_layernorm.weight", D);
    } else {
      L.mlp_norm = norm_w(p + c.mlp_norm_module() + ".weight", D);
      if (c.norm_biases()) L.mlp_norm_b = norm_b_w(p + c.mlp_norm_module() + ".bias", D);
    }
    if (c.is_moe_layer(i)) {
      // Experts stacked as DeepSeek's are: expert e's gate rows, then its up rows; its down rows.
      // The router stays f32, as for DeepSeek.
      const int64_t E = c.num_local_experts, Fm = c.moe_intermediate_size;
      const MoeTensors t = moe_tensors(c, p);
      L.router = g.weight(t.router, DType::F32, {E, D}, WeightSource{{t.router}, {}, nullptr});
      L.gu_b = kNoTensor;
      // (a fused tensor transposed or deinterleaved here: only moved, so --quantize quantizes it)
      auto moved = [&](const std::string& n, bool gate_up) {
        return g.weight(n + ".weight", wt,
                        gate_up ? std::vector<int64_t>{E * 2 * Fm, D} : std::vector<int64_t>{E * D, Fm},
                        WeightSource{{}, {}, fused_experts(n, gate_up, false), {}, true});
      };
      if (c.gpt_oss) {
        const std::string gu = t.gate_up[0], dn = t.down[0];
        L.gu_w = moved(gu, true);
        L.down_w = moved(dn, false);
        L.experts_gu_b = g.weight(gu + "_bias", DType::F32, {E * 2 * Fm},
                                  WeightSource{{}, {}, fused_experts(gu + "_bias", true, true)});
        L.experts_down_b =
            g.weight(dn + "_bias", DType::F32, {E * D}, WeightSource{{}, {}, fused_experts(dn + "_bias", false, true)});
        L.router_b =
            g.weight(p + "mlp.router.bias", DType::F32, {E}, WeightSource{{p + "mlp.router.bias"}, {}, nullptr});
      } else if (c.dbrx) {  // (expert e: its block of w1's rows (gate), then of v1's (up); w2's block transposed)
        L.gu_w = g.weight(p + "mlp.experts.gate_up_proj.weight", wt, {E * 2 * Fm, D},
                          WeightSource{{},
                                       {},
                                       [gate = t.gate_up[0], up = t.gate_up[1], E, Fm, D](const WeightFetch& fetch) {
                                         // (one source held at a time beside the output: the real model's are GBs)
                                         const size_t block = size_t(Fm * D);
                                         std::vector<float> out(2 * size_t(E) * block);
                                         for (size_t half = 0; half < 2; ++half) {
                                           const std::vector<float> src = fetch(half == 0 ? gate : up);
                                           for (size_t e = 0; e < size_t(E); ++e)
                                             std::copy(src.begin() + ptrdiff_t(e * block),
                                                       src.begin() + ptrdiff_t((e + 1) * block),
                                                       out.begin() + ptrdiff_t((2 * e + half) * block));
                                         }
                                         return out;
                                       },
                                       {},
                                       true});
        L.down_w = moved(t.down[0], false);
      } else {  // (Qwen3-VL-MoE's in the hub's layout: transposed)
        L.gu_w = c.experts_in_major.count(t.gate_up[0])
                     ? moved(t.gate_up[0], true)
                     : w(p + "mlp.experts.gate_up_proj.weight", {E * 2 * Fm, D}, t.gate_up);
        L.down_w = c.experts_in_major.count(t.down[0]) ? moved(t.down[0], false)
                                                       : w(p + "mlp.experts.down_proj.weight", {E * D, Fm}, t.down);
      }
      if (c.noaux_experts()) {  // (e_score_correction_bias: f32, as the router)
        const std::string b = correction_bias_name(c, p);
        L.router_b = g.weight(b, DType::F32, {E}, WeightSource{{b}, {}, nullptr});
      }
      if (const int64_t Fs = c.shared_expert_intermediate_size; Fs > 0 && c.granite_shared_mlp()) {
        const std::string sh = p + "shared_mlp.";  // (GraniteMoeShared: [gate | up] as the gate|up weight)
        L.shared_gu_w = w(sh + "input_linear.weight", {2 * Fs, D}, {sh + "input_linear.weight"});
        L.shared_down_w = w(sh + "output_linear.weight", {D, Fs}, {sh + "output_linear.weight"});
      } else if (const std::string sh = p + c.ungated_shared_prefix();
                 Fs > 0 &&
                 sh != p) {  // (GLM-4.5's, dots.llm1's, ERNIE 4.5 MoE's, HunYuan MoE's shared experts: no gate)
        L.shared_gu_w = w(sh + "gate_up_proj.weight", {2 * Fs, D}, {sh + "gate_proj.weight", sh + "up_proj.weight"});
        L.shared_down_w = w(sh + "down_proj.weight", {D, Fs}, {sh + "down_proj.weight"});
      } else if (Fs > 0) {
        const std::string sh = p + "mlp.shared_expert.";
        L.shared_gu_w = w(sh + "gate_up_proj.weight", {2 * Fs, D}, {sh + "gate_proj.weight", sh + "up_proj.weight"});
        L.shared_down_w = w(sh + "down_proj.weight", {D, Fs}, {sh + "down_proj.weight"});
        L.shared_gate = w(p + "mlp.shared_expert_gate.weight", {1, D}, {p + "mlp.shared_expert_gate.weight"});
        g.values[L.shared_gate].gate = true;  // (--quantize leaves it, as the routers)
      }
    } else if (c.phi) {
      L.gu_w = w(p + "mlp.fc1.weight", {F, D}, {p + "mlp.fc1.weight"});
      L.gu_b = w(p + "mlp.fc1.bias", {F}, {p + "mlp.fc1.bias"});
      L.down_w = w(p + "mlp.fc2.weight", {D, F}, {p + "mlp.fc2.weight"});
    } else if (c.ungated_mlp()) {  // up only: the activation op, no gate (Starcoder2's c_fc and c_proj)
      const std::string up = p + c.mlp_up_name(), dn = p + c.mlp_down_name();
      L.gu_w = w(up + ".weight", {F, D}, {up + ".weight"});
      L.gu_b = opt_bias(c.mlp_bias, up + ".bias", F, {up + ".bias"});
      L.down_w = w(dn + ".weight", {D, F}, {dn + ".weight"});
    } else if (c.gemma) {  // [up | gate], the GEGLU op's [h | g]
      L.gu_w = w(p + "mlp.up_gate_proj.weight", {2 * F, D}, {p + "mlp.up_proj.weight", p + "mlp.gate_proj.weight"});
      L.gu_b = kNoTensor;
      L.down_w = w(p + "mlp.down_proj.weight", {D, F}, {p + "mlp.down_proj.weight"});
    } else {
      L.gu_w = w(p + "mlp.gate_up_proj.weight", {2 * F, D},
                 c.fused_projections || c.glm4
                     ? std::vector<std::string>{p + "mlp.gate_up_proj.weight"}
                     : std::vector<std::string>{p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
      L.gu_b =
          opt_bias(c.mlp_bias, p + "mlp.gate_up_proj.bias", 2 * F, {p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias"});
      L.down_w = w(p + "mlp.down_proj.weight", {D, F}, {p + "mlp.down_proj.weight"});
    }
    const std::string down = p + c.mlp_down_name();
    L.down_b = opt_bias(c.mlp_bias && !c.output_biases_dropped, down + ".bias", D, {down + ".bias"});
    if (c.gpt_oss)  // (f32, as the routers)
      L.sinks = g.weight(p + "self_attn.sinks", DType::F32, {H}, WeightSource{{p + "self_attn.sinks"}, {}, nullptr});
    L.k_cache = g.kv(p + "k_cache", wt, {B, S, KVH, hd});
    L.v_cache = g.kv(p + "v_cache", wt, {B, S, KVH, hd});
    layers.push_back(L);
  }
  // Granite divides the logits by logits_scaling, Cohere multiplies them by logit_scale (HyperCLOVAX by
  // logits_scaling): folded into the final norm's weight (no bias in any), kept in f32.
  const std::string norm_name = c.phi ? "model.final_layernorm" : "model.norm";
  const bool divide = c.granite && !c.hyperclovax && c.logits_scaling != 1.0,
             multiply = (c.cohere && c.logit_scale != 1.0) || (c.hyperclovax && c.logits_scaling != 1.0);
  const char* scale_key = c.cohere ? "logit_scale" : "logits_scaling";
  const uint32_t norm =
      !divide && !multiply
          ? norm_w(norm_name + ".weight", D)
          : g.weight(
                "model.norm.weight", DType::F32, {D},
                WeightSource{
                    {},
                    {},
                    [divide, scale_key, s = c.cohere ? c.logit_scale : c.logits_scaling](const WeightFetch& fetch) {
                      std::vector<float> v = fetch("model.norm.weight");
                      for (float& x : v) {
                        x = float(divide ? double(x) / s : double(x) * s);
                        // (an f32 that overflows would turn the LM head's sums into NaN)
                        if (!std::isfinite(x))
                          throw CompileError(std::string("config.json's ") + scale_key +
                                             " times model.norm.weight overflows f32, where kiln folds it");
                      }
                      return v;
                    }});
  const uint32_t lm_head = c.tie_word_embeddings ? embed : w("lm_head.weight", {V, D}, {"lm_head.weight"});
  // The final LayerNorm's bias (Phi, Starcoder2, StableLM) and the LM head's (Phi)
  const uint32_t norm_b = c.norm_biases() ? norm_b_w(norm_name + ".bias", D) : kNoTensor;
  const uint32_t lm_head_b = c.phi || c.gptj || c.lm_head_bias ? w("lm_head.bias", {V}, {"lm_head.bias"}) : kNoTensor;
  // (Phi-4-mini: over the first rotary dims of each head only; none for learned positions and BLOOM's ALiBi)
  const uint32_t inv_freq = c.learned_positions() || c.alibi()
                                ? kNoTensor
                                : g.weight("rope.inv_freq", DType::F32, {c.rotary() / 2},
                                           WeightSource{{}, rope_inv_freq(c.rope, c.rotary()), nullptr});
  // Learned positions: the rows of the max_seq positions a plan can hold (OPT's from row 2).
  std::vector<int64_t> positions(size_t(c.learned_positions() ? S : 0));
  for (size_t r = 0; r < positions.size(); ++r) positions[r] = int64_t(r) + c.position_offset();
  const uint32_t pos_table =
      c.learned_positions() ? w("model.embed_positions.weight", {S, D}, {"model.embed_positions.weight"}, positions)
                            : kNoTensor;
  // BLOOM's LayerNorm of the embedding, and its ALiBi slopes (f32, by transformers' formula)
  // (nanochat's weightless RMSNorm: the final norm's module, on the embedding too)
  const uint32_t embed_norm = c.bloom      ? w("model.embed_norm.weight", {D}, {"model.embed_norm.weight"})
                              : c.nanochat ? norm_w("model.norm.weight", D)
                                           : kNoTensor;
  const uint32_t embed_norm_b = c.bloom ? w("model.embed_norm.bias", {D}, {"model.embed_norm.bias"}) : kNoTensor;
  const uint32_t alibi = c.alibi()
                             ? g.weight("alibi.slopes", DType::F32, {H},
                                        WeightSource{{}, c.mpt ? mpt_alibi_slopes(H) : bloom_alibi_slopes(H), nullptr})
                             : kNoTensor;
  // Gemma 2's and 3's and OLMo 3's sliding layers have their own RoPE.
  const uint32_t inv_freq_local = c.layer_type_rope()
                                      ? g.weight("rope.inv_freq_local", DType::F32, {hd / 2},
                                                 WeightSource{{}, rope_inv_freq(c.rope_local, hd), nullptr})
                                      : kNoTensor;

  // --- step state shared by both programs
  const uint32_t start_pos = g.state("start_pos", {B});
  const uint32_t n_valid = g.state("n_valid", {B});
  const double eps = c.rms_norm_eps;
  const double scale = c.granite               ? c.attention_multiplier
                       : c.softmax_scale_given ? c.softmax_scale
                       : c.unscaled_attention  ? 1.0
                                               : 1.0 / std::sqrt(c.gemma ? c.query_pre_attn_scalar : double(hd));
  const double rope_scale = rope_attention_factor(c.rope);  // multiplies cos and sin (LongRoPE's)
  // Gemma: the embedding times √hidden_size as transformers has it, a buffer cast to the weights'
  // dtype (f32, or rounded to bf16/f16: √1152 is 34 in bf16).
  double embed_scale = 1.0;
  if (c.gemma) {
    float s = float(std::sqrt(double(D)));
    if (wt == DType::BF16 || wt == DType::F16) {
      uint16_t h = 0;
      store_from_f32(&h, wt, 0, s);
      s = load_as_f32(&h, wt, 0);
    }
    embed_scale = double(s);
  }
  if (c.granite) embed_scale = c.embedding_multiplier;
  // Granite's branches join the residual stream times residual_multiplier (1 leaves the LLaMA path).
  const bool scaled_residual = c.granite && c.residual_multiplier != 1.0;

  for (const LmProgramSpec& spec : lm_programs(o.chunk)) {
    LmProgramStart st = begin_lm_program(g, spec, B, D, embed, embed_scale, start_pos, pos_table, embed_norm,
                                         embed_norm_b, eps, c.nanochat);
    GraphProgram& P = st.program;
    const int64_t N = st.rows;
    const std::string& a = st.prefix;
    const uint32_t tokens = st.tokens, x = st.x;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const Layer& L = layers[size_t(i)];
      const std::string p = a + "layers." + std::to_string(i) + ".";
      // (OLMo 2's attention and MLP read x itself)
      const uint32_t h = c.olmo2 ? x : g.activation(p + "attn_in", {N, D});
      const uint32_t qkv = g.activation(p + "qkv", {N, W});
      const uint32_t att = g.activation(p + "attn_out", {N, H * hd});
      const uint32_t h2 = c.olmo2 ? x : g.activation(p + "mlp_in", {N, D});
      const bool moe = c.is_moe_layer(i);
      const uint32_t gu = moe ? kNoTensor : g.activation(p + "gate_up", {N, c.phi || c.ungated_mlp() ? F : 2 * F});
      const uint32_t m = moe ? kNoTensor : g.activation(p + "mlp_act", {N, F});
      // Gemma 2/3, OLMo 2, GLM-4 and HyperCLOVAX: each branch's output, then its norm, before the residual add
      // (HyperCLOVAX's norm times residual_multiplier); Granite: the output times residual_multiplier.
      const bool branch_norms = c.branch_norms();
      const uint32_t branch = branch_norms || scaled_residual ? g.activation(p + "branch_out", {N, D}) : kNoTensor;
      const uint32_t branch_n = branch_norms ? g.activation(p + "branch_norm", {N, D}) : kNoTensor;
      // x += the branch buffer (or its norm) (residual_multiplier: 1 but for Granite's family).
      auto join_branch = [&](uint32_t out_norm) {
        if (branch_norms) add_node(P, kRmsNormOp, {branch, out_norm, n_valid}, {branch_n}, {}, {eps});
        add_node(P, kAddOp, {x, branch_norms ? branch_n : branch, kNoTensor}, {x}, {}, {c.residual_multiplier});
      };
      // x += in·Wᵀ + b: accumulated straight into x (LLaMA), or through the branch buffer.
      auto project_into_x = [&](uint32_t in, uint32_t w, uint32_t bias, uint32_t out_norm) {
        if (branch == kNoTensor) {
          add_node(P, kMatmulOp, {in, w, bias, n_valid}, {x}, {1});
          return;
        }
        add_node(P, kMatmulOp, {in, w, bias, n_valid}, {branch}, {0});
        join_branch(out_norm);
      };
      if (c.layer_norms()) add_layernorm(P, x, L.attn_norm, L.attn_norm_b, h, eps);  // (Cohere's, MPT's: no bias)
      else if (!c.olmo2) add_node(P, kRmsNormOp, {x, L.attn_norm, n_valid}, {h}, {}, {eps});
      // (GPT-NeoX's parallel residual: the MLP's norm of the layer's input, before attention adds to it)
      if (c.neox_parallel) add_layernorm(P, x, L.mlp_norm, L.mlp_norm_b, h2, eps);
      add_node(P, kMatmulOp, {h, L.qkv_w, L.qkv_b, n_valid}, {qkv}, {0});
      if (c.head_layernorm)  // a LayerNorm over each head, its weights its own (version 3)
        add_node(P, kHeadRmsNormOp, {qkv, L.q_norm, L.k_norm}, {qkv},
                 {H, KVH, hd, hd, kHeadNormCenter | kHeadNormPerHeadWeights}, {eps});
      // per head of hd values, or (OLMo 2) one of H·hd and one of KVH·hd (HunYuan's: after RoPE, below)
      auto qk_norms = [&] {
        add_node(
            P, kHeadRmsNormOpV2, {qkv, L.q_norm, L.k_norm}, {qkv},
            c.qk_norm_whole() ? std::vector<int64_t>{1, 1, H * hd, KVH * hd} : std::vector<int64_t>{H, KVH, hd, hd},
            {eps});
      };
      if (c.qk_norm && !c.head_layernorm && !c.qk_norm_after_rope()) qk_norms();
      // (OLMo's, OLMoE's, MPT's and DBRX's clip_qkv: q, k and v clamped, after OLMoE's norms, before RoPE)
      if (c.clip_qkv >= 0) add_node(P, kClampOp, {qkv, n_valid}, {qkv}, {}, {-c.clip_qkv, c.clip_qkv});
      const bool local_rope = inv_freq_local != kNoTensor && c.window_of(i) > 0;
      if (!c.nope(i) && !c.learned_positions() && !c.alibi())  // (SmolLM3's RoPE-less layers; GPT-2's, BLOOM's)
        add_node(P, kRopeOp, {local_rope ? inv_freq_local : inv_freq, start_pos, qkv, n_valid}, {qkv}, {H + KVH, hd},
                 {local_rope ? rope_attention_factor(c.rope_local) : rope_scale});
      if (c.qk_norm_after_rope()) qk_norms();
      add_node(P, kKvWriteOp, {qkv, start_pos, n_valid}, {L.k_cache, L.v_cache}, {H, KVH, hd});
      // A window as long as the cache cuts nothing: the plan says none.
      const int64_t win = c.window_of(i) < S ? c.window_of(i) : 0;
      // GPT-2: head_dim^-½ (or 1), and with scale_attn_by_inverse_layer_idx over (layer + 1) (in double: transformers
      // divides its f32 scale by float(layer + 1) in Python floats, then the kernel rounds the product)
      const double layer_scale = c.gpt2_layer_scaled ? scale / double(i + 1) : scale;
      if (alibi != kNoTensor)  // (BLOOM: version 5, with the slopes)
        add_node(P, kAttentionOp, {qkv, L.k_cache, L.v_cache, start_pos, n_valid, kNoTensor, alibi}, {att},
                 {H, KVH, hd, win}, {layer_scale, c.attn_logit_softcapping});
      else if (L.sinks != kNoTensor)  // (GPT-OSS: version 4, with the sinks)
        add_node(P, kAttentionOpV4, {qkv, L.k_cache, L.v_cache, start_pos, n_valid, L.sinks}, {att}, {H, KVH, hd, win},
                 {layer_scale, c.attn_logit_softcapping});
      else
        add_node(P, kAttentionOpV3, {qkv, L.k_cache, L.v_cache, start_pos, n_valid}, {att}, {H, KVH, hd, win},
                 {layer_scale, c.attn_logit_softcapping});
      project_into_x(att, L.o_w, L.o_b, L.attn_out_norm);  // x += o_proj(att)
      if (c.parallel_block()) {  // x += fc2(act(fc1(h))) (Cohere: down(SwiGLU(gate|up(h)))): the attention's input
        add_node(P, kMatmulOp, {h, L.gu_w, L.gu_b, n_valid}, {gu}, {0});
        if (c.phi || c.ungated_mlp())  // (Falcon's ungated MLP too; the version its kind needs)
          add_node(P, activation_op_for(c.mlp_activation), {gu}, {m}, {int64_t(c.mlp_activation)});
        else add_node(P, kSwigluOp, {gu, n_valid}, {m});  // (Cohere's, StableLM's)
        project_into_x(m, L.down_w, L.down_b, kNoTensor);
        continue;
      }
      if (c.layer_norms() && !c.neox_parallel) add_layernorm(P, x, L.mlp_norm, L.mlp_norm_b, h2, eps);
      else if (!c.olmo2 && !c.neox_parallel) add_node(P, kRmsNormOp, {x, L.mlp_norm, n_valid}, {h2}, {}, {eps});
      if (const int64_t K = c.num_experts_per_tok; moe) {
        // The router: softmax over every expert, the top K, renormalized to sum to one (Mixtral;
        // Qwen3-MoE with norm_topk_prob).
        const uint32_t ids = g.activation(p + "expert_ids", {N, K}, DType::I32);
        const uint32_t ew = g.activation(p + "expert_weights", {N, K});
        const uint32_t ws = g.activation(p + "expert_act", {N * K, c.moe_intermediate_size});
        // GPT-OSS: the router's bias added to its logits, then the softmax over the top K (the same).
        // GLM-4.5, dots.llm1: DeepSeek-V3's noaux_tc on sigmoid scores, e_score_correction_bias (the router's bias
        // input) for the choice, the weights times routed_scaling_factor.
        std::vector<int64_t> route = {int64_t(MoeTopk::kGreedy), int64_t(MoeScoring::kSoftmax), 1, 1,
                                      c.norm_topk_prob ? 1 : 0};
        if (c.sigmoid_noaux())
          route = {int64_t(MoeTopk::kNoauxTc), int64_t(MoeScoring::kSigmoid), c.n_group, c.topk_group,
                   c.norm_topk_prob ? 1 : 0};
        // ERNIE 4.5 MoE: noaux_tc on softmax scores (one group), the chosen scores over max(sum, moe_norm_min)
        // (version 3's norm_min).
        if (c.ernie_moe) route = {int64_t(MoeTopk::kNoauxTc), int64_t(MoeScoring::kSoftmax), 1, 1, 1, 0};
        // Phi-3.5-MoE: the sparsemixer from the raw logits, router_jitter_noise its threshold (version 4)
        if (c.phimoe) route = {int64_t(MoeTopk::kSparseMixer), int64_t(MoeScoring::kSoftmax), 1, 1, 0, 0};
        if (c.gpt_oss) route.push_back(1);  // (logit_bias: version 2)
        std::vector<double> route_f = {c.granite           ? c.residual_multiplier  // (GraniteMoe's branch scale)
                                       : c.sigmoid_noaux() ? c.routed_scaling_factor
                                                           : 1.0};
        if (c.ernie_moe) route_f.push_back(c.moe_norm_min);
        if (c.phimoe) route_f.insert(route_f.end(), {0.0, c.router_jitter_noise});
        add_node(P,
                 c.phimoe      ? kMoeRouteOpV4
                 : c.ernie_moe ? kMoeRouteOpV3
                 : c.gpt_oss   ? kMoeRouteOp
                               : kMoeRouteOpV1,
                 {h2, L.router, L.router_b, n_valid}, {ids, ew}, route, route_f);
        if (c.gpt_oss)  // x += the experts, with their biases and the clamped SwiGLU (version 4)
          add_node(P, kMoeExpertsOpV4,
                   {h2, ids, ew, L.gu_w, L.down_w, n_valid, kNoTensor, kNoTensor, kNoTensor, kNoTensor, L.experts_gu_b,
                    L.experts_down_b},
                   {x, ws}, {0, 0, int64_t(MoeActivation::kClampedSwiglu)}, {c.swiglu_alpha, c.swiglu_limit});
        else if (branch_norms) {  // (FlexOlmo: the experts' sum written (version 5), normalized, then added to x)
          add_node(P, kMoeExpertsOpV5,
                   {h2, ids, ew, L.gu_w, L.down_w, n_valid, kNoTensor, kNoTensor, kNoTensor, kNoTensor, kNoTensor,
                    kNoTensor},
                   {branch, ws}, {0, 0, int64_t(MoeActivation::kSwiglu), 0}, {0.0, 0.0});
          join_branch(L.mlp_out_norm);
        } else {
          add_node(P, kMoeExpertsOp, {h2, ids, ew, L.gu_w, L.down_w, n_valid}, {x, ws});  // x += the experts
        }
        // x += sigmoid(shared_expert_gate(h2)) · shared_expert(h2) (Qwen2-MoE), or
        // residual_multiplier · shared_mlp(h2) (GraniteMoeShared: no gate)
        if (L.shared_gu_w != kNoTensor) {
          const int64_t Fs = c.shared_expert_intermediate_size;
          const uint32_t sgu = g.activation(p + "shared_gate_up", {N, 2 * Fs});
          const uint32_t sm = g.activation(p + "shared_act", {N, Fs});
          const uint32_t sout = g.activation(p + "shared_out", {N, D});
          const uint32_t sg = L.shared_gate == kNoTensor ? kNoTensor : g.activation(p + "shared_gate", {N, 1});
          add_node(P, kMatmulOp, {h2, L.shared_gu_w, kNoTensor, n_valid}, {sgu}, {0});
          add_node(P, kSwigluOp, {sgu, n_valid}, {sm});
          add_node(P, kMatmulOp, {sm, L.shared_down_w, kNoTensor, n_valid}, {sout}, {0});
          if (sg != kNoTensor) add_node(P, kMatmulOp, {h2, L.shared_gate, kNoTensor, n_valid}, {sg}, {0});
          add_node(P, kAddOp, {x, sout, sg}, {x}, {}, {c.granite ? c.residual_multiplier : 1.0});
        }
        continue;
      }
      add_node(P, kMatmulOp, {h2, L.gu_w, L.gu_b, n_valid}, {gu}, {0});
      if (c.mlp_activation == Activation::kXielu) {  // (Apertus: version 4, with the layer's parameters)
        const XieluParams& a = c.xielu.at(size_t(i));
        add_node(P, kActivationOp, {gu}, {m}, {int64_t(Activation::kXielu)}, {a.alpha_p, a.alpha_n, a.beta, a.eps});
      } else if (c.ungated_mlp())  // (the version its kind needs; Arcee's plans keep version 2 but for relu)
        add_node(
            P, c.arcee && c.mlp_activation != Activation::kRelu ? kActivationOpV2 : activation_op_for(c.mlp_activation),
            {gu}, {m}, {int64_t(c.mlp_activation)});
      else if (c.gemma) add_node(P, kGegluOp, {gu}, {m}, {int64_t(Activation::kGeluTanh)});
      else add_node(P, kSwigluOp, {gu, n_valid}, {m});
      project_into_x(m, L.down_w, L.down_b, L.mlp_out_norm);  // x += down_proj(m)
    }
    finish_lm_program(g, std::move(st), x, norm, lm_head, eps, {tokens, start_pos, n_valid}, c.final_logit_softcapping,
                      norm_b, lm_head_b, c.layer_norms());
  }
  set_lm_info(g, c.architecture, V, S, B, o.chunk, c.dtype, wt, c.raw_json);
  return g;
}

namespace {

// An image-text checkpoint's text model (Gemma3ForConditionalGeneration's, Mistral3ForConditionalGeneration's): its
// tensors renamed as the text model's class names them (language_model.model.X as the hub and transformers save
// them, model.language_model.X as transformers 5 holds them, language_model.X as a saved Gemma3Model has them:
// model.X; language_model.lm_head.*: lm_head.*), the vision tower's and the projector's left out. Qwen2-VL's and
// Qwen2.5-VL's (LlamaConfig::TextNames::kQwen2Vl): model.X as the hub has them, model.language_model.X as
// transformers 5 holds them, language_model.X as a saved Qwen2VLModel has them, visual.* or model.visual.* left out;
// Qwen3-VL's: the same but model.X. Returns the note that says so.
std::string text_model_of(const CompileOptions& o, const LlamaConfig& c, Checkpoint* ck) {
  const std::string& arch = c.architecture;
  const bool llava = c.text_names == LlamaConfig::TextNames::kLlava;
  if (!o.lora.empty())
    throw CompileError(o.model_dir + ": --lora with " + arch +
                       " is not supported (kiln compiles "
                       "its text model; adapters name the image-text model's modules)");
  int left_out = 0;
  std::map<std::string, std::string> source;  // text model name -> the checkpoint's
  Checkpoint text;
  text.absorb(std::move(*ck), "", [&](const std::string& n) -> std::string {
    static const std::vector<const char*> kLlavaVision = {"vision_tower.", "multi_modal_projector.",
                                                          "model.vision_tower.", "model.multi_modal_projector."};
    static const std::vector<const char*> kQwenVision = {"visual.", "model.visual."};
    for (const char* p : llava ? kLlavaVision : kQwenVision)
      if (n.rfind(p, 0) == 0) {
        ++left_out;
        return "";
      }
    std::string to = n;  // (lm_head.* as it is; anything else check_llama_tensors names)
    // (the first rule whose prefix the name has: transformers' image-text loading rules, ^language_model last; a
    // saved Qwen2VLModel's or Qwen3VLModel's language_model.X loads as model.language_model.X)
    using Rule = std::pair<const char*, const char*>;
    static const std::vector<Rule> kLlavaRules = {{"language_model.model.", "model."},
                                                  {"model.language_model.", "model."},
                                                  {"language_model.lm_head.", "lm_head."},
                                                  {"language_model.", "model."}};
    static const std::vector<Rule> kQwenRules = {{"model.language_model.", "model."}, {"language_model.", "model."}};
    for (const auto& [from, into] : llava ? kLlavaRules : kQwenRules)
      if (n.rfind(from, 0) == 0) {
        to = into + n.substr(std::string(from).size());
        break;
      }
    // (a text checkpoint's names: transformers leaves them unread, but for Qwen2-VL's, whose hub files have them)
    if (to == n && n.rfind("model.", 0) == 0 && c.text_names != LlamaConfig::TextNames::kQwen2Vl)
      throw CompileError(o.model_dir + ": tensor '" + n + "' is not where " + arch + " keeps its text model (" +
                         (llava ? "language_model.model., or model.language_model." : "model.language_model.") +
                         "): transformers does not load it");
    if (const auto [it, fresh] = source.emplace(to, n); !fresh)
      throw CompileError(o.model_dir + ": tensors '" + it->second + "' and '" + n + "' are both the text model's '" +
                         to + "'");
    return to;
  });
  *ck = std::move(text);
  return arch + ": its text model compiled (text prompts only); " + std::to_string(left_out) +
         (llava ? " vision tower and projector tensors left out" : " vision tower tensors left out");
}

// Apertus's xIELU parameters, layer by layer, as transformers' XIELUActivation (_xielu_python) computes them in f32
// from its tensors (softplus: torch's, x above 20 kept): an adapter's saved copy (modules_to_save) in place of the
// checkpoint's, as peft's model reads it. A value that is not finite is refused by name. (transformers run in bf16
// rounds softplus and beta + softplus to bf16, within the bf16 plans' bound; its optional xIELU CUDA wheel takes
// beta and eps from the constructor, not the checkpoint, which kiln does not follow.)
std::vector<XieluParams> read_xielu_params(const CompileOptions& o, const Checkpoint& ck, const LoraSet& lora,
                                           int64_t layers) {
  auto softplus = [](float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); };
  std::vector<XieluParams> out;
  for (int64_t i = 0; i < layers; ++i) {
    float v[4];
    const char* names[4] = {"alpha_p", "alpha_n", "beta", "eps"};
    for (int k = 0; k < 4; ++k) {
      const std::string n = hf_layer_prefix(i) + "mlp.act_fn." + names[k];
      const StTensor* copy = lora.replacement(n);
      read_f32(copy ? *copy : *ck.find(n), &v[k]);
      if (!std::isfinite(v[k]))
        throw CompileError(o.model_dir + ": tensor '" + n + "'" + (copy ? " (an adapter's saved copy)" : "") + " is " +
                           short_float(v[k]) + ", with which xIELU is not finite");
    }
    XieluParams a{softplus(v[0]), v[2] + softplus(v[1]), v[2], v[3]};
    if (!std::isfinite(a.alpha_p) || !std::isfinite(a.alpha_n))
      throw CompileError(o.model_dir + ": layer " + std::to_string(i) +
                         "'s xIELU parameters overflow f32 (softplus of mlp.act_fn.alpha_p or alpha_n)");
    out.push_back(a);
  }
  return out;
}

// A checkpoint's tensors under kiln's names (from_hub). The layers' old buffers, which transformers ignores
// (Pythia's attention.bias, attention.masked_bias: the causal mask; attention.rotary_emb.inv_freq), are left out; a
// name already kiln's (model.*, not the family's own: OPT's model.decoder.*) is refused: transformers does not load it.
// A checkpoint of the base model (no tensor under the family's root) is read under it, as transformers reads it.
// Returns whether any name was the family's (not kiln's).
bool hub_model_of(const CompileOptions& o, const HubNames& h, Checkpoint* ck) {
  std::map<std::string, std::string> source;  // kiln's name -> the checkpoint's
  bool renamed_any = false;
  // A base model's names (GPT2Model's, as the hub ships GPT-2: h.<i>.*, wte; OPTModel's decoder.*) are read under the
  // root, name by name as transformers reads them (a checkpoint may mix both), the head's (lm_head) aside.
  Checkpoint renamed;
  renamed.absorb(std::move(*ck), "", [&](const std::string& given) -> std::string {
    auto under = [&](const std::string& module) {
      return !module.empty() && (given == module || given.rfind(module + ".", 0) == 0);
    };
    const bool keep = under(h.root) || under("lm_head") || under(h.old_head) || under("model") || h.load_name;
    const std::string n = keep ? given : h.root + "." + given;
    if (n.rfind(h.layers + ".", 0) == 0)
      for (const std::string& buffer : h.buffers)
        if (n.size() > buffer.size() && n.compare(n.size() - buffer.size(), std::string::npos, buffer) == 0) return "";
    const std::string to = h.load_name ? h.load_name(n) : from_hub(h, n);
    const std::string model = h.layers.substr(0, h.layers.rfind('.') + 1);
    renamed_any = renamed_any || to != n;
    // (kiln's own names; a stray name under OPT's model.decoder. is reported as unexpected, as the others' are)
    if (to == n && n.rfind("model.", 0) == 0 && n.rfind(model, 0) != 0 && !h.load_name)
      throw CompileError(o.model_dir + ": tensor '" + given + "' is not a " + h.architecture +
                         " name (its model is under " + model + "): transformers does not load it");
    if (const auto [it, fresh] = source.emplace(to, given); !fresh)
      throw CompileError(o.model_dir + ": tensors '" + it->second + "' and '" + given + "' are both " + h.architecture +
                         "'s '" + to_hub(h, to) + "'");
    return to;
  });
  *ck = std::move(renamed);
  return renamed_any;
}

FrontendBuild build_llama(const CompileOptions& o) {
  refuse_pipeline_options(o);
  LlamaConfig c = read_llama_config(o.model_dir + "/config.json");
  const std::string key_note = check_config_keys(c.unmodeled, o.model_dir + "/config.json", o);
  FrontendBuild b;
  b.checkpoint = Checkpoint::open_dir(o.model_dir);
  const std::string vision_note = c.multimodal ? text_model_of(o, c, &b.checkpoint) : "";
  const HubNames* hub = hub_names(c);
  if (hub) c.hub_named_checkpoint = hub_model_of(o, *hub, &b.checkpoint);
  // (EXAONE: transformers' quantizers match kiln's names, its FP8 one after renaming modules_to_not_convert by the
  // family's rules)
  if (hub && hub->load_name)
    for (std::string& m : c.quant.not_converted) m = loaded_module(*hub, m);
  const ConfigReader::Quantization& q = c.quant;
  unpack_prequantized(o, q, b.checkpoint, c.num_hidden_layers,
                      c.multimodal ? ModuleSpellings(image_text_spellings)
                      : hub && !hub->load_name
                          ? ModuleSpellings([hub](const std::string& m) { return hub_spellings(*hub, m); })
                          : ModuleSpellings());
  std::string mxfp4_note;
  if (q.mxfp4) {  // (GPT-OSS only: the config reader refuses it elsewhere)
    const int n = b.checkpoint.unpack_mxfp4();
    if (n == 0)
      throw CompileError(o.model_dir +
                         ": config.json's quantization_config is MXFP4, but the checkpoint has no *_blocks tensor");
    const StTensor* gu = b.checkpoint.find(hf_layer_prefix(0) + "mlp.experts.gate_up_proj");
    c.mxfp4_experts = gu && gu->mx_scale;
    // One layout for every expert tensor (transformers reads a float one beside MXFP4 ones in its own
    // layout; kiln does not mix them): all MXFP4, or refused by name.
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      for (const char* part : {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"})
        if (const StTensor* t = b.checkpoint.find(hf_layer_prefix(i) + part); t && bool(t->mx_scale) != c.mxfp4_experts)
          throw CompileError(o.model_dir + ": the checkpoint mixes MXFP4 and unquantized experts ('" + t->name +
                             "' is " + (t->mx_scale ? "MXFP4" : "unquantized") + ", " + hf_layer_prefix(0) +
                             "mlp.experts.gate_up_proj " + (c.mxfp4_experts ? "MXFP4" : "unquantized") +
                             "), which kiln does not read");
    if (c.mxfp4_experts && (c.hidden_size % 32 != 0 || c.moe_intermediate_size % 32 != 0))
      throw CompileError(o.model_dir + "/config.json: hidden_size (" + std::to_string(c.hidden_size) +
                         ") and intermediate_size (" + std::to_string(c.moe_intermediate_size) +
                         ") must be multiples of 32 for MXFP4 experts (32 values a group along each row)");
    mxfp4_note = std::to_string(n) +
                 " MXFP4 expert tensors dequantized (FP4 times a power of two: exact in bf16 and "
                 "f32; --quantize re-quantizes them)";
  }
  const std::string fp8_note = q.fp8 ? attach_fp8_weights(o, b.checkpoint, q.fp8_block_rows, q.fp8_block_cols,
                                                          c.num_hidden_layers, nullptr, q.fp8_scales, &b.fp8_weights)
                                     : "";
  const std::string head_note = embedding_from_tied_head(b.checkpoint, c.tie_word_embeddings);
  const std::string tie_note = untie_distinct_head(b.checkpoint, &c.tie_word_embeddings);
  refuse_prequantized_embedding(b.checkpoint, c.tie_word_embeddings);
  if (c.granite_moe)  // (the names of the first layer's experts)
    c.granite_moe_renamed = b.checkpoint.find(hf_layer_prefix(0) + "block_sparse_moe.experts.gate_up_proj") != nullptr;
  // Qwen3-VL-MoE: fused experts (transformers loads no per-expert tensors), each tensor in its layout or, where the
  // shape is not its own but the transpose of it, the hub's (transformers' check_dims transpose, tensor by tensor)
  if (c.experts_transposable) {
    c.moe_fused = true;
    const int64_t E = c.num_local_experts, F2 = 2 * c.moe_intermediate_size, F = c.moe_intermediate_size,
                  D = c.hidden_size;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      if (c.is_moe_layer(i))
        for (const auto& [part, own, hub] : {std::tuple<const char*, std::vector<int64_t>, std::vector<int64_t>>{
                                                 "gate_up_proj", {E, F2, D}, {E, D, F2}},
                                             {"down_proj", {E, D, F}, {E, F, D}}}) {
          const std::string n = hf_layer_prefix(i) + "mlp.experts." + part;
          if (const StTensor* t = b.checkpoint.find(n); t && t->shape != own && t->shape == hub)
            c.experts_in_major.insert(n);
        }
  }
  for (int64_t i = 0; i < c.num_hidden_layers && !c.moe_fused; ++i)  // the layout of the first MoE layer
    if (c.is_moe_layer(i)) {
      c.moe_fused = b.checkpoint.find(hf_layer_prefix(i) + "mlp.experts.gate_up_proj") != nullptr;
      // (ERNIE 4.5 MoE's, EXAONE MoE's and MiniMax-M2's correction bias under transformers 5's name, else the hub's)
      c.correction_bias_in_gate = b.checkpoint.find(correction_bias_name(c, hf_layer_prefix(i), true)) != nullptr;
      break;
    }
  if (c.gpt_oss && !q.mxfp4 && b.checkpoint.find(hf_layer_prefix(0) + "mlp.experts.gate_up_proj_blocks"))
    throw CompileError(o.model_dir +
                       ": the checkpoint holds MXFP4 expert blocks (mlp.experts.gate_up_proj_blocks), but config.json "
                       "has no quantization_config with quant_method \"mxfp4\"");
  check_llama_tensors(c, b.checkpoint);

  const std::vector<std::string> conv1d = gpt2_conv1d_weights(c);
  for (const std::string& n : conv1d) b.checkpoint.transpose(n);  // (kiln's [out, in] rows)
  LoraSet::ModuleNames lora_names =
      hub && hub->load_name ? LoraSet::ModuleNames{nullptr, nullptr, nullptr,
                                                   [hub](const std::string& m) { return loaded_module(*hub, m); }}
      : hub                 ? LoraSet::ModuleNames{
                  [hub](const std::string& n) { return to_hub(*hub, n); },
                  [hub](const std::string& n) { return peft_to_kiln(*hub, n); },
                  [conv1d](const std::string& n) { return std::find(conv1d.begin(), conv1d.end(), n) != conv1d.end(); }}
            : LoraSet::ModuleNames{};
  // (the MoE model types peft's transformers 5 conversion maps to Qwen2-MoE's: its MLP targets go to fused experts)
  if (c.architecture == "Qwen3MoeForCausalLM" || c.glm4_moe || c.dots1 || c.ernie_moe || c.hunyuan_moe || c.olmoe ||
      c.exaone_moe || c.flex_olmo)
    lora_names.moe_fused_targets = {"gate_proj", "up_proj", "down_proj"};
  b.lora = LoraSet::load(o.lora, b.checkpoint, c.tie_word_embeddings, lora_names);
  if (c.mlp_activation == Activation::kXielu) c.xielu = read_xielu_params(o, b.checkpoint, b.lora, c.num_hidden_layers);

  for (int64_t i = 0; i < c.num_hidden_layers && c.mxfp4_experts; ++i)  // (a saved copy is in transformers' layout)
    for (const char* part : {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"})
      if (b.lora.replacement(hf_layer_prefix(i) + part))
        throw CompileError("an adapter saves its own copy of " + hf_layer_prefix(i) + part +
                           " (modules_to_save), which kiln does not merge over MXFP4 experts");
  // (BLOOM's sliced output projections multiply by the base weights themselves: peft's model leaves an adapter on
  // them out, its merged one does not; kiln does not pick one)
  for (int64_t i = 0; i < c.num_hidden_layers && c.output_biases_dropped; ++i)
    for (const char* m : {"self_attn.o_proj", "mlp.dense_4h_to_h"})
      if (b.lora.touches(hf_layer_prefix(i) + m + ".weight") || b.lora.touches(hf_layer_prefix(i) + m + ".bias"))
        throw CompileError(o.model_dir +
                           "/config.json: slow_but_exact with pretraining_tp > 1 makes transformers' BLOOM "
                           "multiply by " +
                           to_hub(*hub, hf_layer_prefix(i) + m) +
                           "'s weights itself, so peft's model leaves an adapter on it out (and its merge_and_unload "
                           "does not); kiln refuses rather than pick one: set slow_but_exact false, or leave the "
                           "module out of the adapter");
  const std::string lora_note = check_lora_config_keys(b.lora, o);
  const std::string untie_note = untie_saved_copies(b.lora, &c.tie_word_embeddings);
  // The checkpoint's dtype is what its weights are stored in (config.json's dtype may say
  // otherwise; the embedding decides).
  const DType stored = b.checkpoint.find("model.embed_tokens.weight")->dtype;
  const DType plan_dtype = parse_plan_dtype(o.dtype, stored);
  const std::string dtype_note = config_dtype_note(o, c.has_dtype, c.dtype, stored);
  b.fp8_dtype_upcasts = q.fp8_scales == "weight_scale_inv";
  // (the default --max-seq stops at Ministral 3's query scale's bound, past which it is refused below)
  const LlmLimits lim =
      llm_limits(o,
                 c.rope.llama4_scaling_beta != 0 ? std::min(c.max_position_embeddings, c.rope.llama4_scaling_positions)
                                                 : c.max_position_embeddings,
                 !q.prequantized.empty() || (q.fp8 && keeps_fp8(o, b.fp8_dtype_upcasts)));
  // (a RoPE that changes past `bound` positions, which one fixed plan cannot follow: `what` it does, `then` below it)
  auto bound_max_seq = [&](bool applies, int64_t bound, const std::string& what, const std::string& then) {
    if (applies && lim.max_seq > bound)
      throw CompileError(o.model_dir + "/config.json: " + what + "; compile with --max-seq " + std::to_string(bound) +
                         " or less" + then);
  };
  const int64_t long_after = c.rope.original_max_position_embeddings;
  bound_max_seq(c.rope.type == "longrope", long_after,
                c.phimoe ? "Phi-3.5-MoE's LongRoPE switches to long_mscale (transformers 5, keeping short_factor; its "
                           "hub code to long_factor and long_mscale) for sequences longer than "
                           "original_max_position_embeddings = " +
                               std::to_string(long_after) + ", which one fixed plan cannot follow"
                         : "LongRoPE switches to its long_factor for sequences longer than "
                           "original_max_position_embeddings = " +
                               std::to_string(long_after) + ", which one fixed plan cannot follow",
                "");
  const int64_t dynamic_after = std::max(c.rope.dynamic_positions, c.rope_local.dynamic_positions);
  bound_max_seq(dynamic_after > 0, dynamic_after,
                "rope type dynamic (transformers' dynamic NTK RoPE) recomputes its frequencies from the sequence "
                "length once it passes " +
                    std::string(c.dbrx ? "max_seq_len" : "max_position_embeddings") + " = " +
                    std::to_string(dynamic_after) + ", which one fixed plan cannot follow",
                ", where they are the default RoPE's");
  // (Ministral 3's query scale is 1 below llama4_scaling_positions: a plan no longer would need it)
  bound_max_seq(c.rope.llama4_scaling_beta != 0, c.rope.llama4_scaling_positions,
                c.architecture + " scales its queries at position p by 1 + llama_4_scaling_beta * ln(1 + floor(p / " +
                    std::to_string(c.rope.llama4_scaling_positions) + ")) (" + c.rope.llama4_scaling_source +
                    "), which kiln does not build",
                ", where that scale is 1");
  // (GPT-J's sin/cos table and the learned positions have n_positions rows; GPT-Neo's local layers' mask too)
  if ((c.gptj || c.learned_positions() || c.mpt) && lim.max_seq > c.max_position_embeddings)
    throw CompileError(
        o.model_dir + "/config.json: " +
        (c.gptj  ? std::string("GPT-J's RoPE is a table")
         : c.mpt ? std::string("MPT's ALiBi is a table (transformers builds it for max_seq_len)")
                 : c.architecture + " learned its positions (" + to_hub(*hub, "model.embed_positions") + ")") +
        " of " +
        (c.opt || c.gpt_neo ? "max_position_embeddings"
         : c.mpt            ? "max_seq_len"
                            : "n_positions") +
        " = " + std::to_string(c.max_position_embeddings) +
        " positions, past which transformers cannot run it; compile with --max-seq " +
        std::to_string(c.max_position_embeddings) + " or less");
  Graph& g = b.graph = build_llama_graph(c, LlamaBuildOptions{plan_dtype, lim.max_seq, lim.batch, lim.chunk});
  g.info.kv_bytes_per_token =
      uint64_t(c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim) * dtype_size(plan_dtype);
  g.info.mha_kv_bytes_per_token =
      uint64_t(c.num_hidden_layers * 2 * c.num_attention_heads * c.head_dim) * dtype_size(plan_dtype);
  g.info.source_dtype = stored;
  read_llm_tokenizer(o, g);
  add_note(&g.info.notes, c.config_note);
  add_note(&g.info.notes, key_note);
  add_note(&g.info.notes, head_note);
  add_note(&g.info.notes, tie_note);
  add_note(&g.info.notes, lora_note);
  add_note(&g.info.notes, untie_note);
  add_note(&g.info.notes, dtype_note);
  add_note(&g.info.notes, fp8_note);
  add_note(&g.info.notes, mxfp4_note);
  add_note(&g.info.notes, vision_note);
  b.summary = llm_summary(plan_dtype, lim, g.info.notes);
  return b;
}

}  // namespace

extern const Frontend kLlamaFrontend{"llama",
                                     {"LlamaForCausalLM",
                                      "llama",
                                      "MistralForCausalLM",
                                      "mistral",
                                      "Ministral3ForCausalLM",
                                      "ministral3",
                                      "Qwen2ForCausalLM",
                                      "qwen2",
                                      "Qwen3ForCausalLM",
                                      "qwen3",
                                      "MixtralForCausalLM",
                                      "mixtral",
                                      "Qwen3MoeForCausalLM",
                                      "qwen3_moe",
                                      "Phi3ForCausalLM",
                                      "phi3",
                                      "Gemma3ForCausalLM",
                                      "gemma3_text",
                                      "Gemma3ForConditionalGeneration",
                                      "gemma3",
                                      "Mistral3ForConditionalGeneration",
                                      "mistral3",
                                      "Qwen2VLForConditionalGeneration",
                                      "qwen2_vl",
                                      "Qwen2_5_VLForConditionalGeneration",
                                      "qwen2_5_vl",
                                      "Qwen3VLForConditionalGeneration",
                                      "qwen3_vl",
                                      "Qwen3VLMoeForConditionalGeneration",
                                      "qwen3_vl_moe",
                                      "Gemma2ForCausalLM",
                                      "gemma2",
                                      "GemmaForCausalLM",
                                      "gemma",
                                      "GraniteForCausalLM",
                                      "granite",
                                      "SmolLM3ForCausalLM",
                                      "smollm3",
                                      "PhiForCausalLM",
                                      "phi",
                                      "Ernie4_5ForCausalLM",
                                      "ernie4_5",
                                      "Ernie4_5_MoeForCausalLM",
                                      "ernie4_5_moe",
                                      "HunYuanDenseV1ForCausalLM",
                                      "hunyuan_v1_dense",
                                      "HunYuanMoEV1ForCausalLM",
                                      "hunyuan_v1_moe",
                                      "Olmo2ForCausalLM",
                                      "olmo2",
                                      "MinistralForCausalLM",
                                      "ministral",
                                      "GraniteMoeForCausalLM",
                                      "granitemoe",
                                      "Qwen2MoeForCausalLM",
                                      "qwen2_moe",
                                      "Olmo3ForCausalLM",
                                      "olmo3",
                                      "GlmForCausalLM",
                                      "glm",
                                      "Glm4ForCausalLM",
                                      "glm4",
                                      "OlmoForCausalLM",
                                      "olmo",
                                      "Exaone4ForCausalLM",
                                      "exaone4",
                                      "ExaoneForCausalLM",
                                      "exaone",
                                      "ExaoneMoeForCausalLM",
                                      "exaone_moe",
                                      "InternLM3ForCausalLM",
                                      "internlm3",
                                      "IQuestCoderForCausalLM",
                                      "iquestcoder",
                                      "SeedOssForCausalLM",
                                      "seed_oss",
                                      "GptOssForCausalLM",
                                      "gpt_oss",
                                      "HeliumForCausalLM",
                                      "helium",
                                      "GraniteMoeSharedForCausalLM",
                                      "granitemoeshared",
                                      "ArceeForCausalLM",
                                      "arcee",
                                      "ApertusForCausalLM",
                                      "apertus",
                                      "PhimoeForCausalLM",
                                      "phimoe",
                                      "Jais2ForCausalLM",
                                      "jais2",
                                      "Starcoder2ForCausalLM",
                                      "starcoder2",
                                      "StableLmForCausalLM",
                                      "stablelm",
                                      "OlmoeForCausalLM",
                                      "olmoe",
                                      "NemotronForCausalLM",
                                      "nemotron",
                                      "GPTNeoXForCausalLM",
                                      "gpt_neox",
                                      "Glm4MoeForCausalLM",
                                      "glm4_moe",
                                      "SolarOpenForCausalLM",
                                      "solar_open",
                                      "MiniMaxM2ForCausalLM",
                                      "minimax_m2",
                                      "HyperCLOVAXForCausalLM",
                                      "hyperclovax",
                                      "NanoChatForCausalLM",
                                      "nanochat",
                                      "VaultGemmaForCausalLM",
                                      "vaultgemma",
                                      "CwmForCausalLM",
                                      "cwm",
                                      "FlexOlmoForCausalLM",
                                      "flex_olmo",
                                      "Dots1ForCausalLM",
                                      "dots1",
                                      "FalconForCausalLM",
                                      "falcon",
                                      "GPTJForCausalLM",
                                      "gptj",
                                      "GPT2LMHeadModel",
                                      "gpt2",
                                      "OPTForCausalLM",
                                      "opt",
                                      "GPTNeoForCausalLM",
                                      "gpt_neo",
                                      "GPTBigCodeForCausalLM",
                                      "gpt_bigcode",
                                      "BloomForCausalLM",
                                      "bloom",
                                      "MptForCausalLM",
                                      "mpt",
                                      "DbrxForCausalLM",
                                      "dbrx",
                                      "CohereForCausalLM",
                                      "cohere",
                                      "Cohere2ForCausalLM",
                                      "cohere2"},
                                     nullptr,
                                     build_llama};

}  // namespace kiln
