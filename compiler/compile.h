// The compile driver: checkpoint folder → plan file. Used by `kiln compile` and the tests.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "compiler/lora.h"
#include "kernels/dtype.h"

namespace kiln {

struct CompileOptions {
  std::string model_dir;
  std::string output;
  std::string dtype;    // "", "f32", "bf16", "f16" ("" = the checkpoint's)
  int64_t max_seq = 0;  // 0 = min(max_position_embeddings, 2048)
  int64_t batch = 1;
  int64_t chunk = 0;                  // 0 = min(64, max_seq); min(128, max_seq) in a CPU-only plan
  std::vector<LoraAdapterSpec> lora;  // merged in order
  std::string target;                 // "cpu", "cuda" (sm_90), "all", or "" (all; cpu with quantize)
  std::string quantize;  // "" or "none" (weights in the plan dtype), "int8", "int4", "fp8" (compiler/passes/quantize.h)
  int64_t group_size = 0;             // --group-size with int4 (0: the default rule, compiler/passes/quantize.h)
  bool quantize_head = false;         // --quantize the LM head too
  bool asymmetric = false;            // --asymmetric: int4 with a zero point per group (compiler/passes/quantize.h)
  bool allow_unknown_config = false;  // config keys kiln does not model: noted in the plan, not refused
  bool no_tokenizer = false;          // compile for ids only, even if tokenizer.json exists
  bool no_chat_template = false;      // embed the tokenizer without its chat template
  std::function<void(uint64_t done, uint64_t total)> progress;  // weight bytes written so far
  // Diffusion pipelines (a folder with model_index.json) only; 0 / "" = the defaults noted.
  int64_t height = 0, width = 0;  // pixels; 0 = the UNet's sample_size × the VAE factor
  int64_t steps = 30;
  std::string sampler = "euler";  // ddim, euler, euler_a, dpmpp_2m, vp_sde, pf_ode
  double guidance = 7.5;          // classifier-free guidance; <= 1 compiles without the negative prompt
  std::string controlnet;         // a ControlNetModel folder
  double control_scale = 1.0;     // controlnet_conditioning_scale
};

struct CompileSummary {
  bool text_to_image = false;
  DType plan_dtype = DType::F32;
  int64_t max_seq = 0, batch = 0, chunk = 0;  // an LLM's limits (0 for a text-to-image plan)
  uint64_t weights_bytes = 0, arena_bytes = 0, kv_bytes = 0,
           state_bytes = 0;  // kv_bytes: the KV cache or the request state
  std::vector<LoraRecord> adapters;
  std::string notes;
  std::string tokenizer;                                 // "" or a one-line summary
  std::vector<std::pair<std::string, size_t>> programs;  // name, launches
};

// Throws CompileError with one clear line on any failure; no output file is left behind.
CompileSummary compile_model(const CompileOptions& opts);

struct PlanTargets;
// --dtype (f32, bf16, f16; "" = def).
DType parse_plan_dtype(const std::string& s, DType def);
// --target cpu|cuda|all as the plan writer's targets ("" = all); throws CompileError otherwise.
PlanTargets parse_targets(const std::string& target);
// Whether the plan is for the CPU alone: --target cpu, or no target with int8, int4 or fp8 weights
// (--quantize int8|int4|fp8, or a checkpoint's pre-quantized weights kept as shipped: prequantized and
// no --quantize): their CUDA kernels are not the default until measured on a GPU; --target cuda or all
// asks for them.
bool cpu_only_plan(const CompileOptions& o, bool prequantized);

// Whether the plan holds int8, int4 or fp8 weights: --quantize int8|int4|fp8, or no --quantize on a
// checkpoint whose pre-quantized weights stay as shipped (prequantized).
bool quantizes_weights(const CompileOptions& o, bool prequantized);
// Whether a checkpoint's FP8 weights stay f8e4m3 in the plan: --quantize fp8, or no --quantize (another
// re-quantizes them) and, where --dtype upcasts them (DeepSeek's quant_method fp8: dtype_upcasts), no
// --dtype. compressed-tensors' FP8 stays as shipped whatever --dtype says, as its int8 and int4 do.
bool keeps_fp8(const CompileOptions& o, bool dtype_upcasts = true);

}  // namespace kiln
