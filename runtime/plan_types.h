// The plan's tables as the runtime holds them after verification: tensors, segments, launches and
// the model's facts. Ops (kernels/op.h) validate and bind launches against these.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/dtype.h"

namespace kiln {

// Marks an absent optional operand in a launch's inputs (schema/plan.fbs).
inline constexpr uint32_t kNoTensor = 0xFFFFFFFFu;

// Where a tensor's bytes live (schema/plan.fbs): weight segments of the file, or one of the
// regions the runtime allocates once, zeroed.
enum class Region : uint8_t { kWeights = 0, kArena = 1, kKvCache = 2, kState = 3, kRequest = 4 };
const char* region_name(Region r);
// "[2, 3]": how errors and tools print a shape.
std::string shape_str(const std::vector<int64_t>& shape);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Region region = Region::kArena;
  uint64_t offset = 0;       // inside its region (weights: from the start of the weights section)
  uint64_t size_bytes = 0;
  uint32_t segment = 0;      // weights only
  int64_t numel() const;
};

struct SegmentInfo {
  uint64_t offset = 0, size = 0, xxh3 = 0;
};

struct LaunchInfo {
  uint32_t kernel = 0;            // index into Plan::kernels()
  std::vector<uint32_t> inputs;   // kNoTensor for an absent optional operand
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

}  // namespace kiln
