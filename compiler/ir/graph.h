// The compiler's static-shape graph IR. A Graph holds every value (weights, KV caches, state
// inputs, activations) and the programs, each an ordered list of nodes naming an op
// (kernels/op.h). Shapes are fixed at build time; memory planning assigns arena
// offsets afterwards and codegen turns the graph into a plan file.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "schema/plan_types.h"
#include "schema/tokenizer_data.h"

namespace kiln {

struct OpDef;  // kernels/op.h

// f32 values of a checkpoint tensor, with any LoRA adapters already merged.
using WeightFetch = std::function<std::vector<float>(const std::string& name)>;

// Where a weight's bytes come from, cast to the value's dtype:
// - parts: the named checkpoint tensors concatenated along dim 0 (QKV, gate|up folding); with rows,
//   only those rows of the concatenation, in that order (slices and row permutations: DeepSeek's MLA
//   q and kv_a split into their nope and rope rows), so they stay checkpoint rows that --quantize
//   (each row on its own) and pre-quantized checkpoints' rows can keep quantized;
// - constant: f32 data the compiler computed (rope inv_freq);
// - build: f32 data computed from checkpoint tensors (per-head transposes, as MLA absorption needs);
//   with layout_only, checkpoint values only moved (GPT-OSS's experts transposed and deinterleaved), which
//   --quantize quantizes as it would their checkpoint rows.
struct WeightSource {
  std::vector<std::string> parts;
  std::vector<float> constant;
  std::function<std::vector<float>(const WeightFetch&)> build;
  std::vector<int64_t> rows = {};  // parts only; empty: every row
  bool layout_only = false;        // build only
};

struct Value {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Region region = Region::kArena;
  WeightSource weight;           // Region::kWeights only
  uint64_t offset = 0;           // arena / kv / state offset, filled by planning
  uint32_t view_of = kNoTensor;  // a view: the same bytes as that value, another shape
  bool lm_head = false;          // an LLM's LM head weight (--quantize leaves it unless asked)
  bool gate = false;  // a gate weight read by a matmul (Qwen2-MoE's shared_expert_gate): --quantize leaves it
  uint64_t bytes() const;
};

struct Node {
  const OpDef* kernel = nullptr;
  std::vector<uint32_t> inputs;  // value ids; kNoTensor for an absent optional operand
  std::vector<uint32_t> outputs;
  std::vector<int64_t> int_attrs;
  std::vector<double> float_attrs;
};

struct GraphProgram {
  std::string name;
  std::vector<std::pair<std::string, uint32_t>> inputs, outputs;
  std::vector<Node> nodes;
  uint32_t repeat = 1;           // a loop of `repeat` iterations (schema/plan.fbs Program.repeat)
  uint32_t counter = kNoTensor;  // the i32 (1,) state input holding the iteration index
};

class Graph {
 public:
  uint32_t add(Value v);
  uint32_t weight(const std::string& name, DType dtype, std::vector<int64_t> shape, WeightSource src);
  uint32_t activation(const std::string& name, std::vector<int64_t> shape, DType dtype = DType::F32);
  uint32_t state(const std::string& name, std::vector<int64_t> shape, DType dtype = DType::I32);
  // A reshape: a new value over base's bytes (same dtype and element count, any region but
  // weights). Planning gives it base's offset and keeps base live wherever the view is used.
  uint32_t view(uint32_t base, const std::string& name, std::vector<int64_t> shape);
  // The value whose memory v occupies (v itself unless v is a view).
  uint32_t storage(uint32_t v) const;
  uint32_t kv(const std::string& name, DType dtype, std::vector<int64_t> shape);
  // Per-request state that is not a KV cache (Region::kRequest): kept across replays.
  uint32_t request(const std::string& name, DType dtype, std::vector<int64_t> shape);

  std::vector<Value> values;
  std::vector<GraphProgram> programs;
  PlanKind kind = PlanKind::kLlm;
  ModelInfo info;                     // the plan's ModelInfo table
  DiffusionInfo diffusion;            // TextToImage plans' DiffusionInfo table
  std::vector<AdapterInfo> adapters;  // merged LoRA adapters
  std::optional<TokenizerData> tokenizer;
  uint64_t arena_bytes = 0, kv_bytes = 0, request_bytes = 0, state_bytes = 0, weight_bytes = 0;
};

// Appends a node, checking operand and attribute counts against the kernel spec.
void add_node(GraphProgram& p, const OpDef& k, std::vector<uint32_t> in, std::vector<uint32_t> out,
              std::vector<int64_t> iattrs = {}, std::vector<double> fattrs = {});

}  // namespace kiln
