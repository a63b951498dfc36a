// DeepSeek V2/V3 frontend: MLA attention over a latent KV cache with W_UK and W_UV prepared at
// compile time, dense and MoE MLPs, and the prefill/decode programs of the LLaMA contract.
//
// Per layer and token the cache holds [c_kv (kv_lora_rank) | k_pe (qk_rope_head_dim)]. The
// compiler splits the projections into the pieces the kernels need (q_nope and q_pe rows,
// c_kv and k_pe rows of kv_a_proj_with_mqa) and folds these into weights:
//   W_UKᵀ (heads, kv_lora_rank, qk_nope): q_lat = W_UKᵀ·q_nope, so scores use the latent cache;
//   W_UV (heads, v_head_dim, kv_lora_rank): expands the latent attention output per head;
//   pairwise RoPE (V2, and V3 with rope_interleave) as a row permutation of the q_pe and k_pe
//   weights into [evens | odds], which turns it into the rotate-half kernel with equal scores.
// W_UK and W_UV are applied per token (kernels/head_matmul.h) rather than multiplied into
// q_proj and o_proj: the products would be kv_lora_rank/qk_nope times larger weights, and
// batch-1 decode is bound by the bytes of weights it reads. Plans that quantize or keep
// pre-quantized weights read them as kv_b_proj's own rows instead (DeepseekBuildOptions::kv_b_rows).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "compiler/deepseek_config.h"
#include "compiler/ir/graph.h"
#include "compiler/safetensors.h"

namespace kiln {

struct DeepseekBuildOptions {
  DType plan_dtype = DType::F32;
  int64_t max_seq = 0, batch = 1, chunk = 1;
  // W_UK and W_UV as rows of kv_b_proj (head_matmul version 2, W_UK read down its columns), so that
  // quantize_weights keeps or quantizes them as it does q_b and kv_a (rows it leaves in the plan dtype
  // stay float version 2 launches); else the per-head copies above (version 1), which plans that
  // quantize nothing keep.
  bool kv_b_rows = false;
};

std::map<std::string, std::vector<int64_t>> deepseek_tensor_shapes(const DeepseekConfig& c);
// Throws CompileError listing every missing, unexpected or mis-shaped tensor. Tensors of the
// multi-token-prediction layers (num_nextn_predict_layers) are skipped; *mtp_tensors counts them.
void check_deepseek_tensors(const DeepseekConfig& c, const Checkpoint& ck, size_t* mtp_tensors);

Graph build_deepseek_graph(const DeepseekConfig& c, const DeepseekBuildOptions& o);

}  // namespace kiln
