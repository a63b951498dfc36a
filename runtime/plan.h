// Plan: a loaded, verified, immutable plan file. Load verifies everything (header and
// section hashes, the FlatBuffers Verifier, semantic checks of every index, size and
// kernel, then every weight segment's hash) before anything else may use the plan; after
// that the runtime trusts it. One Plan may be shared by many Contexts and threads.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/kernel_specs.h"
#include "runtime/mapped_file.h"
#include "runtime/status.h"
#include "runtime/tokenizer.h"

namespace kiln {

enum class Region : uint8_t { kWeights = 0, kArena = 1, kKvCache = 2, kState = 3 };
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

struct ProgramInfo {
  std::string name;
  std::vector<uint32_t> inputs, outputs;
  std::vector<std::string> input_names, output_names;
  std::vector<LaunchInfo> launches;
  uint64_t scratch_floats = 0;  // CPU scratch per worker that the launches need
  uint32_t repeat = 1;           // a loop: iterations of a whole replay (Executor::run_loop)
  uint32_t counter = kNoTensor;  // its i32 (1,) state input, set to the iteration index
  // The tensor index of the named input/output, or kNoTensor.
  uint32_t input(const std::string& n) const;
  uint32_t output(const std::string& n) const;
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
};

struct TargetInfo {
  std::string backend;  // "cpu" or "cuda"
  std::vector<uint32_t> sm_archs;
};

class Plan {
 public:
  // progress(done, total), if given, is called while the weight segments are hashed (the
  // slow part of verifying a large plan).
  using Progress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;
  static Result<std::shared_ptr<const Plan>> load_file(const std::string& path, const Progress& progress = nullptr);
  // Verifies a plan held in memory (not owned; must outlive the Plan).
  static Result<std::shared_ptr<const Plan>> load_memory(const void* data, size_t size);

  uint32_t format_version() const { return format_version_; }
  uint32_t schema_version() const { return schema_version_; }
  const std::string& generator() const { return generator_; }
  uint64_t file_size() const { return file_->size(); }
  uint64_t fb_size() const { return fb_size_; }
  uint64_t fb_xxh3() const { return fb_xxh3_; }
  const ModelInfo& model() const { return model_; }
  const MemoryInfo& memory() const { return memory_; }
  const std::vector<TargetInfo>& targets() const { return targets_; }
  const std::vector<AdapterInfo>& adapters() const { return adapters_; }
  // The embedded tokenizer, or null (plans compiled with --no-tokenizer or without tokenizer.json).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::string& chat_template() const { return chat_template_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::vector<SegmentInfo>& segments() const { return segments_; }
  const std::vector<const KernelSpec*>& kernels() const { return kernels_; }
  const std::vector<ProgramInfo>& programs() const { return programs_; }
  // Index of the named program, or -1.
  int find_program(const std::string& name) const;
  bool has_target(const std::string& backend) const;
  // Pointer to a weight tensor's bytes inside the mapped file.
  const void* weight_data(const TensorInfo& t) const;
  // Start of the weight section inside the mapped file (segments and weight tensors are offsets from it).
  const uint8_t* weights_base() const;

 private:
  Plan() = default;
  static Result<std::shared_ptr<const Plan>> load(std::unique_ptr<MappedFile> file, const Progress& progress = nullptr);
  Status parse_and_verify(const Progress& progress);

  std::unique_ptr<MappedFile> file_;
  uint32_t format_version_ = 0, schema_version_ = 0;
  uint64_t fb_size_ = 0, fb_xxh3_ = 0, weights_offset_ = 0;
  std::string generator_;
  ModelInfo model_;
  MemoryInfo memory_;
  std::vector<TargetInfo> targets_;
  std::vector<AdapterInfo> adapters_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string chat_template_;
  std::vector<TensorInfo> tensors_;
  std::vector<SegmentInfo> segments_;
  std::vector<const KernelSpec*> kernels_;
  std::vector<ProgramInfo> programs_;
};

}  // namespace kiln
