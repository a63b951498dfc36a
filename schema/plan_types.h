// The plan's tables as plain data: tensors, segments, launches, the model's facts, memory, the
// plan kind and a text-to-image plan's settings (schema/plan.fbs). The runtime holds a verified
// plan as these (runtime/plan.h), ops validate and bind launches against them (kernels/op.h), and
// the compiler's IR fills them (compiler/ir/graph.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/dtype.h"

namespace kiln {

// Marks an absent optional operand in a launch's inputs (schema/plan.fbs).
inline constexpr uint32_t kNoTensor = 0xFFFFFFFFu;
// The most sampler steps a text-to-image plan may have (the compiler's bound; the verifier's).
inline constexpr int64_t kMaxDiffusionSteps = 10000;

// Where a tensor's bytes live (schema/plan.fbs): weight segments of the file, or one of the
// regions the runtime allocates once, zeroed.
enum class Region : uint8_t { kWeights = 0, kArena = 1, kKvCache = 2, kState = 3, kRequest = 4 };
inline const char* region_name(Region r) {
  switch (r) {
    case Region::kWeights:
      return "weights";
    case Region::kArena:
      return "arena";
    case Region::kKvCache:
      return "kv_cache";
    case Region::kState:
      return "state";
    case Region::kRequest:
      return "request";
  }
  return "?";
}

// "[2, 3]": how errors and tools print a shape.
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Region region = Region::kArena;
  uint64_t offset = 0;  // inside its region (weights: from the start of the weights section)
  uint64_t size_bytes = 0;
  uint32_t segment = 0;  // weights only
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

struct SegmentInfo {
  uint64_t offset = 0, size = 0, xxh3 = 0;
};

struct LaunchInfo {
  uint32_t kernel = 0;           // index into Plan::kernels()
  std::vector<uint32_t> inputs;  // kNoTensor for an absent optional operand
  std::vector<uint32_t> outputs;
  std::vector<int64_t> int_attrs;
  std::vector<double> float_attrs;
};

struct ModelInfo {
  std::string architecture;
  int64_t vocab_size = 0, max_seq = 0, batch = 0, chunk = 0;
  DType source_dtype = DType::F32, plan_dtype = DType::F32;
  std::string config_json;
  uint64_t kv_bytes_per_token = 0;      // over all layers, in the plan's KV dtype
  uint64_t mha_kv_bytes_per_token = 0;  // what full multi-head K/V would need for this model
  std::string notes;                    // what the compiler left out, and why
};

struct AdapterInfo {
  std::string name;
  uint64_t xxh3 = 0;
  double weight = 1.0;
};

struct MemoryInfo {
  uint64_t weights_bytes = 0, arena_bytes = 0, kv_bytes = 0, state_bytes = 0, workspace_bytes = 0;
  uint64_t request_bytes = 0;  // the Request region: a text-to-image plan's latents, text states, …
};

// What a plan is for (schema/plan.fbs PlanKind): an LLM (Context) or a text-to-image pipeline
// (DiffusionSession).
enum class PlanKind : uint8_t { kLlm = 0, kTextToImage = 1 };
inline const char* plan_kind_name(PlanKind k) {
  switch (k) {
    case PlanKind::kLlm:
      return "llm";
    case PlanKind::kTextToImage:
      return "text_to_image";
  }
  return "?";
}

// A text-to-image plan's settings (schema/plan.fbs DiffusionInfo).
struct DiffusionInfo {
  int64_t height = 0, width = 0, steps = 0, text_len = 0;
  std::string sampler, timestep_spacing, prediction_type;
  double guidance = 0.0, init_noise_sigma = 0.0, control_scale = 1.0, vae_scaling_factor = 0.0;
  std::vector<std::string> components;
  bool guided() const { return guidance > 1.0; }
};

}  // namespace kiln
