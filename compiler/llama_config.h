// config.json of a LLaMA-family checkpoint (LlamaForCausalLM; Qwen2ForCausalLM: LLaMA with
// biases on q/k/v; Qwen3ForCausalLM: LLaMA with per-head RMSNorm on q and k before RoPE;
// MistralForCausalLM: LLaMA with a sliding window; MixtralForCausalLM: Mistral whose MLP is a
// softmax-routed mixture of experts; Qwen3MoeForCausalLM: Qwen3 with such experts in the layers
// its config picks; Qwen2MoeForCausalLM: Qwen2 with such experts and a gated shared expert; GptOssForCausalLM
// (LlamaConfig::gpt_oss); Phi3ForCausalLM: fused qkv
// and gate|up projections, LongRoPE), in both the transformers 4 style (top-level rope_theta, rope_scaling,
// torch_dtype) and the transformers 5 style (rope_parameters holding rope_theta, dtype). Unknown rope types and
// activations are errors.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "compiler/config_reader.h"
#include "kernels/dtype.h"
#include "kernels/elementwise.h"

namespace kiln {

struct LlamaConfig {
  std::string architecture = "LlamaForCausalLM";
  std::string config_note;  // what the reader read otherwise than a user may expect (a note in the plan)
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false, attention_bias = false, mlp_bias = false;
  bool qkv_bias = false;  // Qwen2: biases on q, k, v only (attention_bias: on o_proj too)
  bool out_bias = false;  // Seed-OSS's attention_out_bias: a bias on o_proj (whatever q, k and v have)
  // Sliding-window attention: a query of a windowed layer sees only the last sliding_window
  // positions (itself included); 0: no window. Mistral, Mixtral, Phi-3 and Qwen3-MoE window every
  // layer (window_layer empty); Qwen2 and Qwen3 the layers window_layer marks (layer_types, or
  // max_window_layers and up); GPT-Neo its local layers (window_layer always filled).
  int64_t sliding_window = 0;
  std::vector<bool> window_layer;
  int64_t window_of(int64_t i) const {
    return sliding_window > 0 && (window_layer.empty() || window_layer[size_t(i)]) ? sliding_window : 0;
  }
  bool qk_norm = false;  // Qwen3: q_norm and k_norm (RMSNorm over each head) before RoPE (HunYuan's: after it)
  // Phi-1/1.5/2 (PhiForCausalLM): one LayerNorm (with a bias; eps in rms_norm_eps) before
  // attention and the MLP, which run in parallel on it and both add into the residual; biases on
  // q, k, v, the output projection (self_attn.dense), fc1 and fc2; an fc1 -> mlp_activation -> fc2
  // MLP; a final LayerNorm (model.final_layernorm) and an LM head with a bias.
  bool phi = false;
  // Cohere (CohereForCausalLM: Command R, Command R+, Aya 23 and Expanse): Phi's parallel block with LayerNorms
  // without a bias (input_layernorm before attention and the MLP, model.norm at the end; eps in rms_norm_eps),
  // a SwiGLU MLP, biases on q, k, v and o_proj with attention_bias, a pairwise RoPE, the logits times
  // logit_scale, and with use_qk_norm (head_layernorm) a LayerNorm over each q and k head with weights of its
  // own ([heads, head_dim]) before RoPE. Cohere 2 (Cohere2ForCausalLM: Command R7B, Command A; cohere set
  // too): windows of sliding_window in the layers window_layer marks, RoPE in those only (nope_layer the
  // others), no q/k norms.
  bool cohere = false, cohere2 = false;
  double logit_scale = 1;
  // StableLM (StableLmForCausalLM: StableLM 2 1.6B/12B, StableLM Zephyr 3B): LLaMA's layer with LayerNorms
  // that have biases, RoPE over the first rotary_dim dims of each head (partial_rotary_factor, default
  // 0.25), biases on q, k and v with use_qkv_bias, with qk_layernorm (head_layernorm) a LayerNorm without a
  // bias over each q and k head, each head's weights in a tensor of its own (q_layernorm.norms.<h>), and
  // with use_parallel_residual (parallel_residual) Phi's parallel block.
  bool stablelm = false, parallel_residual = false;
  // A LayerNorm without a bias over each q and k head, every head with weights of its own, before RoPE
  // (Cohere's use_qk_norm, StableLM's qk_layernorm; qk_norm set too).
  bool head_layernorm = false;
  // One norm before attention and the MLP, which run in parallel on it (Phi, Cohere, StableLM's parallel
  // residual).
  bool parallel_block() const { return phi || cohere || parallel_residual; }
  // q, k and v in one tensor with each group's rows together (GPT-NeoX and BLOOM: a group a head; Falcon;
  // GPT-BigCode: a group a head, or with multi_query one of every head), regrouped into kiln's every q row, every k,
  // every v.
  bool grouped_qkv() const { return gpt_neox || falcon || gpt_bigcode || bloom; }
  Activation mlp_activation = Activation::kGeluTanh;  // (Phi's, Arcee's and Starcoder2's MLP)
  // Arcee (ArceeForCausalLM, AFM-4.5B): LLaMA whose MLP is up_proj -> mlp_activation (hidden_act,
  // relu² by default) -> down_proj, no gate (Nemotron's), biases on both with mlp_bias.
  bool arcee = false;
  // Apertus (ApertusForCausalLM: Apertus-8B, 70B): LLaMA's attention with q_norm and k_norm over each head before
  // RoPE, its norms named attention_layernorm and feedforward_layernorm, and an ungated MLP, up_proj ->
  // mlp_activation (xIELU by default, with each layer's parameters: xielu) -> down_proj.
  bool apertus = false;
  // Phi-3.5-MoE (PhimoeForCausalLM: Phi-3.5-MoE-instruct, Phi-tiny-MoE): Mixtral's experts routed by the sparsemixer
  // (router_jitter_noise its threshold), LayerNorms with biases, biases on q/k/v/o (attention_bias) and on the head
  // (lm_head_bias), LongRoPE times short_mscale.
  bool phimoe = false, lm_head_bias = false;
  // Jais 2 (Jais2ForCausalLM: Jais-2-8B-Chat, 70B): LLaMA's layer with LayerNorms that have biases (layer_norm_eps), an
  // ungated MLP (up_proj -> mlp_activation, relu² by default -> down_proj) and biases on q/k/v/o and up/down.
  bool jais2 = false;
  double router_jitter_noise = 0.01;
  // xIELU's parameters, layer by layer, as XIELUActivation computes them from mlp.act_fn.alpha_p, alpha_n, beta and
  // eps (the frontend reads them from the checkpoint).
  std::vector<XieluParams> xielu;
  // The layer's norm before attention and the MLP's input norm, as the checkpoint names them.
  const char* attn_norm_module() const { return apertus ? "attention_layernorm" : "input_layernorm"; }
  const char* mlp_norm_module() const {
    return apertus ? "feedforward_layernorm" : vaultgemma ? "pre_feedforward_layernorm" : "post_attention_layernorm";
  }
  // Starcoder2 (Starcoder2ForCausalLM: StarCoder2 3B/7B/15B): LLaMA's layer with LayerNorms that have biases
  // (eps in rms_norm_eps) and an ungated MLP, c_fc -> mlp_activation -> c_proj, biases everywhere with use_bias.
  bool starcoder2 = false;
  // Nemotron (NemotronForCausalLM: Minitron, Nemotron-Mini): LLaMA's layer with LayerNorms that multiply by
  // (1 + w) and have biases (LayerNorm1P; eps norm_eps), an ungated up_proj -> mlp_activation (relu² by
  // default) -> down_proj MLP, RoPE over the first partial_rotary_factor (0.5) of each head, biases with
  // attention_bias and mlp_bias.
  bool nemotron = false;
  // GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, Dolly v2, RedPajama-INCITE, StableLM-Alpha): LayerNorms with
  // biases (layer_norm_eps), q, k and v in one query_key_value tensor with each head's q, k and v rows together
  // (the frontend renames the checkpoint's gpt_neox.* names to kiln's and regroups those rows), a rotate-half RoPE
  // over the first rotary_pct (0.25) of each head, biases on query_key_value and dense with attention_bias (on by
  // default), an ungated dense_h_to_4h -> mlp_activation (exact GELU by default) -> dense_4h_to_h MLP with biases,
  // as many k/v heads as heads, and with use_parallel_residual (neox_parallel, on by default) the attention and
  // the MLP both reading the layer's input, each through its own norm (input_layernorm,
  // post_attention_layernorm), their outputs added to it.
  bool gpt_neox = false, neox_parallel = false;
  // Falcon (FalconForCausalLM: Falcon-7B/40B/180B, Falcon2-11B): LayerNorms with biases (layer_norm_epsilon), q, k
  // and v in one query_key_value (new_decoder_architecture: num_kv_heads groups of each group's q heads, its k, its
  // v; else with multi_query every q head then one k and one v, or each head's q, k and v together), a rotate-half
  // RoPE over every dim, biases on every projection with `bias`, an ungated dense_h_to_4h -> activation (exact GELU)
  // -> dense_4h_to_h MLP, the LM head tied by default; with parallel_attn attention and the MLP in parallel on one
  // norm (parallel_residual) or, with new_decoder_architecture and num_ln_in_parallel_attn 2, on two
  // (neox_parallel: ln_attn, ln_mlp), else LLaMA's sequential layer.
  bool falcon = false;
  // GPT-J (GPTJForCausalLM: GPT-J-6B, GPT4All-J, Pygmalion-6B): one LayerNorm with a bias (ln_1) before attention and
  // the MLP, which run in parallel on it (parallel_residual); q/k/v/out projections without biases; a pairwise RoPE
  // (rotate_every_two) over the first rotary_dim dims of each head, base 10000; an ungated fc_in -> activation
  // (tanh GELU by default) -> fc_out MLP with biases; a final LayerNorm and an LM head with a bias.
  bool gptj = false;
  // GPT-2 (GPT2LMHeadModel: GPT-2, DistilGPT2, DialoGPT, Cerebras-GPT, ...): learned absolute positions
  // (model.embed_positions, the hub's transformer.wpe, one row a position below n_positions) added to the embedding,
  // no RoPE; LayerNorms with biases (ln_1, ln_2, ln_f); q, k and v in one c_attn (every q row, every k, every v, as
  // kiln holds them) with a bias, c_proj with a bias; an ungated c_fc -> activation (tanh GELU) -> c_proj MLP with
  // biases, every projection a Conv1D (stored [in, out]: the frontend transposes it); attention scaled by
  // head_dim^-½ (1 with unscaled_attention) and by 1 / (layer + 1) with gpt2_layer_scaled; the LM head tied by default.
  bool gpt2 = false, gpt2_layer_scaled = false;
  // Attention scores not scaled (GPT-2's and GPT-BigCode's scale_attn_weights false; GPT-Neo's always).
  bool unscaled_attention = false;
  // GPT-Neo (GPTNeoForCausalLM: EleutherAI's GPT-Neo 125M/1.3B/2.7B, the TinyStories models): GPT-2's learned
  // positions (transformer.wpe), LayerNorms with biases (ln_1, ln_2, ln_f) and ungated c_fc -> activation -> c_proj
  // MLP with biases (Linear layers), q/k/v projections without biases and out_proj with one (attn.attention.*),
  // attention unscaled, windows of window_size in the layers its attention types mark local; the LM head tied.
  bool gpt_neo = false;
  // GPT-BigCode (GPTBigCodeForCausalLM: StarCoder, SantaCoder, WizardCoder, tiny_starcoder): GPT-2's layer with Linear
  // layers; c_attn holds q, k and v (with multi_query one k/v head: every q row, then k, then v; without, each
  // head's q, k and v together: grouped_qkv), attention scaled unless scale_attn_weights is false.
  bool gpt_bigcode = false;
  // OPT (OPTForCausalLM: Meta's OPT-125m to OPT-66B, Galactica): learned absolute positions (model.embed_positions,
  // the hub's model.decoder.embed_positions: max_position_embeddings + 2 rows, position p at row p + 2) added to the
  // embedding, no RoPE; LayerNorms with biases before attention and the MLP (self_attn_layer_norm, final_layer_norm)
  // and after the last layer; q, k, v and out_proj with biases and an ungated fc1 -> activation (relu) -> fc2 MLP with
  // biases, both with enable_bias; the LM head tied by default.
  bool opt = false;
  // BLOOM (BloomForCausalLM: BigScience's BLOOM 560m to 176B, BLOOMZ): the embedding followed by a LayerNorm
  // (model.embed_norm, the hub's word_embeddings_layernorm) and no positions: ALiBi (attention's linear biases,
  // each head's slope m_h: key j's score for the query at position p gains m_h·(j − p)); LayerNorms with biases;
  // q, k and v in one query_key_value with each head's rows together (grouped_qkv) and a bias, dense with a bias;
  // an ungated dense_h_to_4h -> tanh GELU -> dense_4h_to_h MLP of 4·hidden with biases; the LM head tied.
  bool bloom = false;
  // BLOOM with slow_but_exact and pretraining_tp > 1: transformers sums the attention's dense and the MLP's
  // dense_4h_to_h in slices of their weights and leaves their biases out (the checkpoint holds them all the same).
  bool output_biases_dropped = false;
  // MPT (MptForCausalLM: MosaicML's MPT-7B and MPT-30B and their instruct, chat and storywriter tunes): LayerNorms
  // without biases (norm_1, norm_2, norm_f), no positions but ALiBi (MPT's slopes), q, k and v in one Wqkv (every q
  // row, every k, every v) and out_proj without biases, an ungated up_proj -> exact GELU -> down_proj MLP of
  // 4·d_model without biases, the attention scaled by softmax_scale (head_dim^-½ when null); the LM head tied.
  bool mpt = false;
  // MPT's attn_config.softmax_scale, given: the attention's scale in place of head_dim^-½ (any finite value but 0)
  bool softmax_scale_given = false;
  double softmax_scale = 0;
  // DBRX (DbrxForCausalLM: Databricks' DBRX base and instruct): MPT's layout (LayerNorms without biases, q, k and v in
  // one Wqkv and out_proj without biases, clip_qkv) with RoPE and grouped kv heads, and experts in every layer: the
  // top moe_top_k of a softmax router (ffn.router.layer), renormalized unless moe_normalize_expert_weights is null,
  // SwiGLU experts whose gate (w1), up (v1) and down (w2) are each one [experts · ffn, d_model] tensor (w2 holds each
  // expert's down projection transposed); the LM head untied.
  bool dbrx = false;
  // ALiBi in place of RoPE (BLOOM's slopes, or MPT's).
  bool alibi() const { return bloom || mpt; }
  // q, k and v in one tensor, every q row, then every k, then every v (Phi-3's qkv_proj, GPT-2's c_attn, MPT's and
  // DBRX's Wqkv).
  bool fused_qkv() const { return fused_projections || gpt2 || mpt || dbrx; }
  // LayerNorms (with biases: norm_biases(); without: Cohere's, MPT's and DBRX's; with neither weight nor bias: OLMo's)
  // in place of RMSNorms.
  bool layer_norms() const { return norm_biases() || cohere || mpt || dbrx || olmo1; }
  // Learned absolute positions (GPT-2, GPT-Neo, GPT-BigCode, OPT) in place of RoPE, their table's row for position 0.
  bool learned_positions() const { return gpt2 || gpt_neo || gpt_bigcode || opt; }
  // GPT-2's layout (transformer.wte/wpe/ln_f, h.<i>.ln_1/ln_2, mlp.c_fc/c_proj): GPT-2, GPT-Neo, GPT-BigCode.
  bool gpt2_layout() const { return gpt2 || gpt_neo || gpt_bigcode; }
  int64_t position_offset() const { return opt ? 2 : 0; }
  // GLM-4.5 (Glm4MoeForCausalLM: GLM-4.5, GLM-4.5-Air, GLM-4.6): LLaMA's layer with q/k/v biases (attention_bias),
  // per-head q/k RMSNorms with use_qk_norm (qk_norm), a rotate-half RoPE over the first partial_rotary_factor
  // (0.5) of each head, dense SwiGLU MLPs in the first first_k_dense_replace layers and experts in the others:
  // routed as DeepSeek-V3 routes them (sigmoid scores, e_score_correction_bias for the choice, the best
  // topk_group of n_group groups by their two best scores, the top num_experts_per_tok, renormalized with
  // norm_topk_prob, times routed_scaling_factor), beside n_shared_experts shared experts (one SwiGLU of
  // shared_expert_intermediate_size, no gate) added to them. The checkpoint's mtp_layers multi-token-prediction
  // layers (num_nextn_predict_layers, after the model's) are not compiled.
  bool glm4_moe = false;
  double routed_scaling_factor = 1;
  int64_t n_group = 1, topk_group = 1, mtp_layers = 0;
  // HunYuan dense (HunYuanDenseV1ForCausalLM: Hunyuan-0.5B/1.8B/4B/7B, Hunyuan-MT-7B): LLaMA's layer with biases on q,
  // k, v and o under attention_bias, and q and k RMSNorm-ed over each head (self_attn.query_layernorm,
  // key_layernorm) after RoPE rather than before it.
  bool hunyuan = false;
  bool qk_norm_after_rope() const { return hunyuan || nanochat; }
  // HunYuan MoE (HunYuanMoEV1ForCausalLM: Hunyuan-A13B; `hunyuan` set too): HunYuan dense's layer with experts in every
  // layer, the top num_experts_per_tok of a softmax router (mlp.gate.wg) renormalized, beside one ungated shared MLP
  // (mlp.shared_mlp) of shared_expert_intermediate_size.
  bool hunyuan_moe = false;
  // Where an MoE layer's ungated shared experts are (GLM-4.5's, dots.llm1's, ERNIE 4.5 MoE's, HunYuan MoE's); empty:
  // none such.
  std::string ungated_shared_prefix() const {
    return glm4_moe || ernie_moe || dots1 || exaone_moe ? "mlp.shared_experts." : hunyuan_moe ? "mlp.shared_mlp." : "";
  }
  // The per-head q/k norms' modules (qk_norm): HunYuan's names, or Qwen3's (q_norm, k_norm) for the others.
  std::string q_norm_module() const { return hunyuan ? "self_attn.query_layernorm" : "self_attn.q_norm"; }
  std::string k_norm_module() const { return hunyuan ? "self_attn.key_layernorm" : "self_attn.k_norm"; }
  // ERNIE 4.5 MoE (Ernie4_5_MoeForCausalLM: ERNIE-4.5-21B-A3B, ERNIE-4.5-300B-A47B): ERNIE 4.5's
  // layer with experts in the layers moe_layer marks, routed by their softmax scores with e_score_correction_bias
  // added for the choice only (noaux_tc's, one group), the chosen scores renormalized over max(sum, moe_norm_min),
  // beside ungated shared experts (mlp.shared_experts, of shared_expert_intermediate_size). The checkpoint's
  // multi-token-prediction tensors (any name holding "mtp", which transformers leaves unread) are not compiled.
  bool ernie_moe = false;
  double moe_norm_min = 1e-12;
  // ERNIE 4.5 MoE's, EXAONE MoE's and MiniMax-M2's e_score_correction_bias under transformers 5's in-memory name
  // (ERNIE's mlp.gate.moe_statics.*, EXAONE's mlp.gate.*, MiniMax-M2's mlp.*) rather than the hub's
  // (mlp.moe_statics.*, mlp.*, block_sparse_moe.*). Set by the frontend from the checkpoint.
  bool correction_bias_in_gate = false;
  // Routing by noaux_tc with e_score_correction_bias for the choice (GLM-4.5, dots.llm1, EXAONE MoE: sigmoid scores;
  // ERNIE 4.5 MoE: softmax).
  bool noaux_experts() const { return glm4_moe || ernie_moe || dots1 || exaone_moe || minimax_m2; }
  // dots.llm1 (Dots1ForCausalLM: dots.llm1.base, dots.llm1.inst): Qwen3's attention (per-head q/k norms before RoPE,
  // biases with attention_bias), windows in the layers window_layer marks, dense MLPs in the first
  // first_k_dense_replace layers and GLM-4.5's experts after them (DeepSeek-V3's noaux_tc on sigmoid scores, groups,
  // routed_scaling_factor, ungated shared experts).
  bool dots1 = false;
  // EXAONE MoE (ExaoneMoeForCausalLM: K-EXAONE-236B-A23B): EXAONE 4.0's attention (per-head q/k norms before RoPE,
  // windows in the layers window_layer marks, no RoPE in the others when sliding_window is set) in LLaMA's layer, dense
  // MLPs where moe_layer is false and GLM-4.5's experts elsewhere (noaux_tc on sigmoid scores, groups,
  // routed_scaling_factor, ungated shared experts), the correction bias at mlp.e_score_correction_bias (the hub's) or
  // mlp.gate.e_score_correction_bias (transformers 5's). The checkpoint's multi-token-prediction tensors (any name
  // holding "mtp", which transformers leaves unread) are not compiled.
  bool exaone_moe = false;
  // MiniMax-M2 (MiniMaxM2ForCausalLM: MiniMax-M2, M2.1, M2.5): Mixtral's layer (block_sparse_moe, experts w1/w3/w2 of
  // intermediate_size in every layer) with q and k RMSNorm-ed whole after their projections (OLMo 2's), RoPE over the
  // first rotary_dim dims of each head, and the top num_experts_per_tok of sigmoid scores plus e_score_correction_bias
  // (block_sparse_moe.e_score_correction_bias, the hub's, or mlp.e_score_correction_bias, transformers 5's),
  // renormalized (noaux_tc with one group, no scaling, no shared expert).
  bool minimax_m2 = false;
  // noaux_tc routing on sigmoid scores, with groups and routed_scaling_factor (GLM-4.5, dots.llm1, EXAONE MoE,
  // MiniMax-M2).
  bool sigmoid_noaux() const { return glm4_moe || dots1 || exaone_moe || minimax_m2; }
  // Norm weights that multiply by (1 + w), folded in f32 at compile time (Gemma's RMSNorms, Nemotron's
  // LayerNorms).
  bool one_plus_norms() const { return gemma || nemotron; }
  // An MLP without a gate (Arcee, Starcoder2, Nemotron): up (c_fc) -> mlp_activation -> down (c_proj).
  bool ungated_mlp() const {
    return arcee || starcoder2 || nemotron || gpt_neox || falcon || gptj || gpt2_layout() || opt || bloom || mpt ||
           apertus || jais2 || nanochat;
  }
  // The MLP's up projection (of an ungated MLP) and its down projection, as the checkpoint names them.
  const char* mlp_up_name() const {
    return opt || nanochat               ? "mlp.fc1"
           : starcoder2 || gpt2_layout() ? "mlp.c_fc"
           : gptj                        ? "mlp.fc_in"
           : gpt_neox || falcon || bloom ? "mlp.dense_h_to_4h"
                                         : "mlp.up_proj";
  }
  const char* mlp_down_name() const {
    return phi || opt || nanochat        ? "mlp.fc2"
           : starcoder2 || gpt2_layout() ? "mlp.c_proj"
           : gptj                        ? "mlp.fc_out"
           : gpt_neox || falcon || bloom ? "mlp.dense_4h_to_h"
                                         : "mlp.down_proj";
  }
  // LayerNorms with biases as the layer's norms and the final one (Phi, Starcoder2, StableLM, Nemotron, GPT-NeoX).
  bool norm_biases() const {
    return phi || starcoder2 || stablelm || nemotron || gpt_neox || falcon || gptj || gpt2_layout() || opt || bloom ||
           phimoe || jais2;
  }
  // OLMo 2 (Olmo2ForCausalLM): no norm before attention or the MLP; an RMSNorm on each branch's
  // output (post_attention_layernorm, post_feedforward_layernorm) before the residual add; q and k
  // RMSNorm-ed whole (q_norm over H·head_dim values, k_norm over KVH·head_dim) after their
  // projections, before RoPE.
  bool olmo2 = false;
  // OLMo 3 (Olmo3ForCausalLM; olmo2 set too): OLMo 2's layer with sliding windows in the layers
  // window_layer marks, which take their own RoPE (rope_local; rope for the others).
  bool olmo3 = false;
  // EXAONE 4.0 (Exaone4ForCausalLM; olmo2 set too): OLMo 2's layer with q_norm/k_norm over each head
  // (Qwen3's), windows in the layers window_layer marks, and no RoPE on the others (nope_layer) when
  // sliding_window is set.
  bool exaone4 = false;
  // EXAONE 3.0 / 3.5 (ExaoneConfig: model_type exaone, the hub's remote ExaoneForCausalLM, which transformers 5 builds
  // as LlamaForCausalLM): LLaMA under other names (transformer.h.<i>.attn.attention.q_proj, ln_1, mlp.c_fc_0, ...,
  // which the frontend reads as kiln's) and other config spellings (num_layers, layer_norm_epsilon,
  // activation_function).
  bool exaone = false;
  // Whether the checkpoint names any tensor as the family's hub layout does (HubNames families; set by the frontend):
  // EXAONE's missing tensors are named so then, else as kiln (and LLaMA) name them.
  bool hub_named_checkpoint = true;

  // OLMoE (OlmoeForCausalLM: OLMoE-1B-7B): LLaMA's layer (input_layernorm, post_attention_layernorm) with q and
  // k RMSNorm-ed whole after their projections (OLMo 2's q_norm and k_norm) and experts in every layer
  // (Qwen3-MoE's: mlp.gate, mlp.experts.<e>), renormalized only with norm_topk_prob.
  bool olmoe = false;
  // FlexOlmo (FlexOlmoForCausalLM: FlexOlmo-7x7B-1T; olmo2 set too): OLMo 2's layer (norms on the branches only, q
  // and k normalized whole) with OLMoE's experts in every layer, the norm after the MLP taking the experts' sum alone.
  bool flex_olmo = false;
  // OLMo (OlmoForCausalLM: OLMo-1B-hf, OLMo-7B-hf, OLMo-7B-0424-hf, OLMo-7B-0724-hf): LLaMA's layer with LayerNorms
  // that have neither weight nor bias (the compiler gives them a weight of ones), LLaMA's biases with
  // attention_bias, and clip_qkv.
  bool olmo1 = false;
  // nanochat (NanoChatForCausalLM: karpathy's nanochat-d20, d32): LLaMA's layer with RMSNorms that have no weight
  // (its L2Norm, x·rsqrt(mean(x²) + eps): the compiler gives them a weight of ones), that norm on the embedding too, q
  // and k RMS-normalized per head after RoPE, a RoPE turning the other way (its rotate_half is (x2, -x1): the compiler
  // swaps the halves of each q and k head's rows, under which the standard RoPE computes the same scores), an ungated
  // MLP (mlp.fc1, hidden_act: relu² by default, mlp.fc2) and the logits soft-capped (final_logit_softcapping).
  bool nanochat = false;
  // Norms without a weight (OLMo's LayerNorms, nanochat's RMSNorms).
  bool weightless_norms() const { return olmo1 || nanochat; }
  // OLMo's, OLMoE's, MPT's and DBRX's clip_qkv: q, k and v clamped to [-clip_qkv, clip_qkv] after their projections
  // (and OLMoE's q/k norms), before RoPE; negative: none.
  double clip_qkv = -1;
  // q and k RMSNorm-ed whole (OLMo 2, OLMo 3, OLMoE, MiniMax-M2) rather than per head.
  bool qk_norm_whole() const { return (olmo2 && !exaone4) || olmoe || minimax_m2; }
  // ERNIE 4.5, GLM-4, Helium: RoPE rotates pairs (2i, 2i+1) (GLM's rotate_half); the compiler reorders q's
  // and k's rotary rows inside each head into rotate-half's order (deinterleave).
  bool pairwise_rope = false;
  // GLM-4 (Glm4ForCausalLM, and GlmForCausalLM's glm-4-9b): LLaMA with a pairwise RoPE over the first
  // rotary_dim dims of each head and gate|up in one gate_up_proj; with glm4_branch_norms (Glm4 only) an
  // RMSNorm on each branch's output (post_self_attn_layernorm, post_mlp_layernorm) before the residual
  // add, post_attention_layernorm as the MLP's input norm.
  bool glm4 = false;
  bool glm4_branch_norms = false;
  // SmolLM3: the layers nope_layer marks take no RoPE (no_rope_layers' zeros); empty: none.
  std::vector<bool> nope_layer;
  bool nope(int64_t i) const { return !nope_layer.empty() && nope_layer[size_t(i)]; }
  // Mixture of experts (Mixtral, Qwen3-MoE): an MoE layer's MLP is num_local_experts SwiGLU
  // experts (moe_intermediate_size each), of which a softmax router picks num_experts_per_tok,
  // weighed by their probabilities, renormalized to sum to one when norm_topk_prob. Layer i is
  // an MoE layer unless moe_layer says otherwise (Qwen3-MoE's decoder_sparse_step and
  // mlp_only_layers; those keep a dense MLP of intermediate_size).
  int64_t num_local_experts = 0, num_experts_per_tok = 0, moe_intermediate_size = 0;
  bool norm_topk_prob = true;
  // Qwen2-MoE: beside the routed experts, a shared SwiGLU expert of shared_expert_intermediate_size
  // (mlp.shared_expert) whose output is scaled by sigmoid(mlp.shared_expert_gate · x), per token; 0: none.
  int64_t shared_expert_intermediate_size = 0;
  // GraniteMoeShared: that shared MLP is shared_mlp.input_linear ([gate | up]) and output_linear, with no
  // gate of its own; its output joins the experts' before residual_multiplier scales them.
  bool granite_shared_mlp() const { return granite_moe && shared_expert_intermediate_size > 0; }
  // GPT-OSS (GptOssForCausalLM): LLaMA with q/k/v/o biases, a learned sink logit per head in each
  // attention softmax (self_attn.sinks), windows in the layers window_layer marks, and experts in every
  // layer: a router with a bias (mlp.router), the softmax over its top-k logits, and experts with biases
  // whose gate|up is one [experts, hidden, 2·ffn] tensor (gate and up columns interleaved) and down one
  // [experts, ffn, hidden], activated by the clamped SwiGLU (u' + 1)·g'·sigmoid(swiglu_alpha·g'), g' =
  // min(g, swiglu_limit), u' = clamp(u, ±swiglu_limit).
  bool gpt_oss = false;
  double swiglu_alpha = 1.702, swiglu_limit = 7.0;
  // GPT-OSS's experts stored as MXFP4 (quant_method "mxfp4", set by the frontend from the checkpoint):
  // gate_up_proj [E, 2·ffn, hidden] (rows interleaved) and down_proj [E, hidden, ffn], out-major as the
  // blocks hold them (Checkpoint::unpack_mxfp4), not transformers' in-major float layout.
  bool mxfp4_experts = false;
  std::vector<bool> moe_layer;  // by layer; empty: every layer (when there are experts)
  bool is_moe_layer(int64_t i) const { return num_local_experts > 0 && (moe_layer.empty() || moe_layer[size_t(i)]); }
  // Where the experts are: false, the hub's layout (Mixtral: block_sparse_moe.experts.<e>.w1/w3/w2;
  // Qwen3-MoE: mlp.experts.<e>.gate_proj/up_proj/down_proj; what transformers 5 also saves);
  // true, transformers 5's in-memory one (mlp.experts.gate_up_proj, mlp.experts.down_proj; Qwen3-VL-MoE's only
  // one, see experts_transposable). Set by the frontend from the checkpoint.
  bool moe_fused = false;
  // Qwen3-VL-MoE: fused experts only (moe_fused), each tensor in transformers' layout or the hub's, [E, hidden,
  // 2·ffn] and [E, ffn, hidden], which transformers transposes where a tensor's shape is not its own (a square one
  // kept as it is); experts_in_major: the tensors (kiln's names) the frontend found in the hub's layout.
  bool experts_transposable = false;
  std::set<std::string> experts_in_major;
  bool mixtral_names = false;  // block_sparse_moe / w1 w3 w2 rather than mlp / gate_proj up_proj down_proj
  // GraniteMoe: every expert in one tensor (moe_fused), named as shipped (block_sparse_moe.input_linear,
  // output_linear, router.layer) or, granite_moe_renamed (set by the frontend from the checkpoint),
  // as transformers 5 names them in memory (block_sparse_moe.experts.gate_up_proj, down_proj,
  // router.weight).
  bool granite_moe = false, granite_moe_renamed = false;
  // Phi-3: q, k and v in one qkv_proj tensor and gate|up in one gate_up_proj (the layout kiln
  // builds anyway), LongRoPE allowed.
  bool fused_projections = false;
  // Phi-3/4: RoPE over the first rotary_dim dims of each head (partial_rotary_factor < 1,
  // Phi-4-mini's 0.75); 0: all of them.
  int64_t rotary_dim = 0;
  int64_t rotary() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
  // Gemma 3 (Gemma3ForCausalLM, its text model): the embedding scaled by √hidden_size, RMSNorms
  // that multiply by (1 + w), q_norm/k_norm, a tanh-GELU GEGLU MLP, norms after attention and
  // around the MLP, attention scaled by query_pre_attn_scalar^-½, sliding layers (window_layer)
  // with their own RoPE (rope_local; rope for the others), and the logits soft-capped at
  // final_logit_softcapping (0: not).
  bool gemma = false;
  double query_pre_attn_scalar = 0;
  double final_logit_softcapping = 0;
  // Gemma 2 (gemma2 set besides gemma): Gemma 3 without q/k norms, one RoPE for every layer, and
  // attention scores soft-capped at attn_logit_softcapping (0: not).
  bool gemma2 = false;
  double attn_logit_softcapping = 0;
  // Gemma 1 (gemma1 set besides gemma): LLaMA's layer (post_attention_layernorm is the MLP's input
  // norm; no norms on the branches, no q/k norms, no windows or soft caps) with Gemma's embedding
  // scale, (1 + w) norms and GEGLU; query_pre_attn_scalar is head_dim.
  bool gemma1 = false;
  // Norms on each branch's output and pre_feedforward_layernorm as the MLP's input norm (Gemma 2, 3).
  // VaultGemma (VaultGemmaForCausalLM: Google's VaultGemma 1B; gemma2 set too): Gemma 2 without the branch norms
  // (post_attention_layernorm, post_feedforward_layernorm): LLaMA's norms, the MLP's pre_feedforward_layernorm.
  bool vaultgemma = false;
  bool sandwich_norms() const { return gemma && !gemma1 && !vaultgemma; }
  // Sliding layers with a RoPE of their own (rope_local): Gemma 2 and 3, OLMo 3.
  bool layer_type_rope() const { return (gemma && !gemma1) || olmo3; }
  // Granite (GraniteForCausalLM): LLaMA with four multipliers: the embedding times
  // embedding_multiplier, attention scores times attention_multiplier (in place of head_dim^-½),
  // each branch times residual_multiplier before the residual add, the logits divided by
  // logits_scaling.
  bool granite = false;
  double embedding_multiplier = 1, attention_multiplier = 0, residual_multiplier = 1, logits_scaling = 1;
  // HyperCLOVAX (HyperCLOVAXForCausalLM: HyperCLOVAX-SEED-Think-14B; `granite` set too): Granite's layer and
  // multipliers (attention_multiplier head_dim^-½ by default), the logits multiplied by logits_scaling rather than
  // divided, and with post_norms (use_post_norm) each branch's output RMSNorm-ed (post_norm1, post_norm2) before
  // residual_multiplier scales it into the residual stream (Peri-LN).
  bool hyperclovax = false, post_norms = false;
  // Norms on each branch's output before the residual add (Gemma 2/3, OLMo 2, GLM-4, HyperCLOVAX's Peri-LN).
  bool branch_norms() const { return sandwich_norms() || olmo2 || glm4_branch_norms || (hyperclovax && post_norms); }
  RopeConfig rope_local;
  // An image-text checkpoint's text model (architecture: Gemma3ForConditionalGeneration, Gemma 3 4B/12B/27B;
  // Mistral3ForConditionalGeneration, Mistral Small 3.1/3.2 and Ministral 3; Qwen2VLForConditionalGeneration,
  // Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration): Gemma 3's, Mistral's, Ministral 3's,
  // Qwen2's or Qwen3's layer, read from text_config (Qwen2-VL's hub files: from the top-level keys); the vision
  // tower's tensors left out.
  bool multimodal = false;
  // Where its tensors are: under language_model.model. or model.language_model. (kLlava: Gemma 3, Mistral 3); under
  // model. or model.language_model. beside visual. (kQwen2Vl: Qwen2-VL, Qwen2.5-VL); under model.language_model.
  // beside model.visual. (kQwen3Vl: Qwen3-VL). lm_head.weight as it is.
  enum class TextNames { kLlava, kQwen2Vl, kQwen3Vl } text_names = TextNames::kLlava;
  bool has_dtype = false;
  DType dtype = DType::F32;              // torch_dtype / dtype, when given
  std::string raw_json;                  // the file, verbatim
  // Pre-quantized weights: compressed-tensors (int8, int4, FP8), GPTQ, or FP8 in DeepSeek's block layout
  // (ConfigReader::quantization).
  ConfigReader::Quantization quant;
  std::vector<std::string> unmodeled;              // keys kiln does not model (ConfigReader::unmodeled)
};

// Parses `path` (a config.json); throws CompileError with the file and key at fault.
LlamaConfig read_llama_config(const std::string& path);
// The same from the file's text (`path` only names it in errors).
LlamaConfig parse_llama_config(const std::string& text, const std::string& path);

// A config from dimensions alone (head_dim = hidden / heads, default rope, no biases), for
// synthetic checkpoints (tests, kiln-random-llama).
LlamaConfig llama_config_from_shape(int64_t vocab, int64_t hidden, int64_t ffn, int64_t layers, int64_t heads,
                                    int64_t kv_heads, bool tied);

}  // namespace kiln
