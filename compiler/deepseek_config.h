// config.json of DeepseekV2ForCausalLM / DeepseekV3ForCausalLM checkpoints, read as
// transformers 5 reads them (the reference kiln is tested against): V2 routes with softmax
// and topk_method greedy or group_limited_greedy and never renormalizes (transformers drops
// norm_topk_prob for V2); V3 always routes with sigmoid scores and noaux_tc. GLM-4.7-Flash
// (Glm4MoeLiteForCausalLM) is V3's attention and router with its own defaults, its MoE layers
// named by mlp_layer_types. Youtu-LLM (YoutuForCausalLM) is V3's attention in LLaMA's layer, dense.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compiler/config_reader.h"
#include "kernels/dtype.h"
#include "kernels/moe.h"

namespace kiln {

struct DeepseekConfig {
  std::string architecture;
  // Pre-quantized weights: FP8 with block scales as DeepSeek ships V3/R1, compressed-tensors (int8, int4,
  // FP8) or GPTQ (ConfigReader::quantization).
  ConfigReader::Quantization quant;
  bool v3 = false;        // V3's router (noaux_tc on sigmoid scores, e_score_correction_bias)
  bool glm_lite = false;  // Glm4MoeLiteForCausalLM (v3 too)
  bool youtu = false;     // YoutuForCausalLM (v3's attention; dense layers)
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, moe_intermediate_size = 0;
  int64_t num_hidden_layers = 0, num_attention_heads = 0;
  int64_t q_lora_rank = 0;  // 0: q_proj (no low-rank query)
  int64_t kv_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  int64_t first_k_dense_replace = 0;  // (where moe_layer is empty)
  std::vector<bool> moe_layer;        // by layer (GLM-4.7-Flash's mlp_layer_types)
  int64_t n_routed_experts = 0, num_experts_per_tok = 0, n_shared_experts = 0;
  int64_t n_group = 1, topk_group = 1;
  MoeTopk topk_method = MoeTopk::kGreedy;
  MoeScoring scoring = MoeScoring::kSoftmax;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int64_t num_nextn_predict_layers = 0;  // multi-token-prediction layers: skipped
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool attention_bias = false, tie_word_embeddings = false;
  bool rope_interleave = true;  // pairwise rotation (V2 always; V3 by default)
  RopeConfig rope;
  bool has_dtype = false;
  DType dtype = DType::F32;
  std::string raw_json;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t i) const {
    return n_routed_experts > 0 && (moe_layer.empty() ? i >= first_k_dense_replace : bool(moe_layer[size_t(i)]));
  }
  // transformers' softmax scale: qk_head_dim^-0.5, times yarn's mscale(factor, mscale_all_dim)^2.
  double softmax_scale() const;
};

DeepseekConfig read_deepseek_config(const std::string& path);
DeepseekConfig parse_deepseek_config(const std::string& text, const std::string& path);

}  // namespace kiln
