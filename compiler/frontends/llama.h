// LLaMA frontend: checks a checkpoint against its config and builds the static graph with
// the `prefill` (batch × chunk tokens) and `decode` (batch × 1) programs.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/llama_config.h"
#include "compiler/safetensors.h"

namespace kiln {

struct LlamaBuildOptions {
  DType plan_dtype = DType::F32;  // weights and KV cache
  int64_t max_seq = 0, batch = 1, chunk = 1;
};

// name → shape of every checkpoint tensor the config implies (HF names).
std::map<std::string, std::vector<int64_t>> llama_tensor_shapes(const LlamaConfig& c);

// Throws CompileError listing every missing, unexpected or mis-shaped tensor.
void check_llama_tensors(const LlamaConfig& c, const Checkpoint& ck);

Graph build_llama_graph(const LlamaConfig& c, const LlamaBuildOptions& o);

// ALiBi's slopes for n heads by transformers' formulas, in f32: BLOOM's (_get_alibi_slopes) and MPT's
// (build_mpt_alibi_tensor, alibi_bias_max 8). (torch's vectorized pow may round a slope an ulp otherwise.)
std::vector<float> bloom_alibi_slopes(int64_t n);
std::vector<float> mpt_alibi_slopes(int64_t n);

}  // namespace kiln
