// Model families. Each is a frontend, one file in compiler/frontends/ (llama.cpp, deepseek.cpp,
// diffusion_pipeline.cpp), listed once in frontends/registry.cpp: it says which folders it reads
// (by config.json's architecture, or by the folder's layout) and builds their graph, weights and
// summary. compile_model (compiler/compile.h) picks the frontend and runs the one compile tail:
// fusion, memory planning, the plan file and the summary.
#pragma once
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/ir/graph.h"
#include "compiler/lora.h"
#include "compiler/safetensors.h"

namespace kiln {

// What a frontend hands the compile tail.
struct FrontendBuild {
  Graph graph;
  Checkpoint checkpoint;          // where the weights' bytes come from
  LoraSet lora;                   // merged into them
  CompileSummary summary;         // the frontend's part: dtype, limits, notes
  int fp8_weights = 0;            // an FP8 checkpoint's FP8 weights the model reads (attach_fp8_weights)
  bool fp8_dtype_upcasts = true;  // --dtype alone upcasts them (DeepSeek's layout; not compressed-tensors')
};

struct Frontend {
  const char* family;                      // "llama"
  std::vector<const char*> architectures;  // config.json's "architectures"[0] (or "model_type") it reads
  // Whether it reads this folder by its layout (a diffusers pipeline: model_index.json); null:
  // by the architecture alone.
  bool (*reads_folder)(const std::string& dir);
  FrontendBuild (*build)(const CompileOptions& o);
};

// Every frontend (frontends/registry.cpp).
const std::vector<const Frontend*>& frontends();
// The frontend for a model folder: by its layout, else by config.json's architecture. Throws
// CompileError naming the architecture and listing every supported one.
const Frontend& frontend_for(const std::string& model_dir);
// "LlamaForCausalLM, DeepseekV2ForCausalLM, …" for messages.
std::string supported_architectures();

}  // namespace kiln
