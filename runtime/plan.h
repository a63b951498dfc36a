// Plan: a loaded, verified, immutable plan file. Load verifies everything (header and
// section hashes, the FlatBuffers Verifier, semantic checks of every index, size and
// kernel, then every weight segment's hash) before anything else may use the plan; after
// that the runtime trusts it. One Plan may be shared by many Contexts and threads.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/op.h"
#include "runtime/mapped_file.h"
#include "runtime/status.h"
#include "runtime/tokenizer.h"
#include "schema/plan_types.h"

namespace kiln {

struct ProgramInfo {
  std::string name;
  std::vector<uint32_t> inputs, outputs;
  std::vector<std::string> input_names, output_names;
  std::vector<LaunchInfo> launches;
  uint64_t scratch_floats = 0;   // CPU scratch per worker that the launches need
  uint32_t repeat = 1;           // a loop: iterations of a whole replay (Executor::run_loop)
  uint32_t counter = kNoTensor;  // its i32 (1,) state input, set to the iteration index
  // The tensor index of the named input/output, or kNoTensor.
  uint32_t input(const std::string& n) const;
  uint32_t output(const std::string& n) const;
};

struct TargetInfo {
  std::string backend;  // "cpu" or "cuda"
  std::vector<uint32_t> sm_archs;
};

constexpr uintptr_t kPlanMemoryAlign = 8;  // (Plan::load_memory)

class Plan {
 public:
  // progress(done, total), if given, is called on the loading thread while the weight segments
  // are hashed (the slow part of verifying a large plan; several threads hash a large one), last
  // with done == total.
  // Launches are resolved and validated against `ops` (not owned; its ops must outlive the Plan):
  // the built-in ones, or those plus ops the host defines (OpRegistry::with).
  using Progress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;
  static Result<std::shared_ptr<const Plan>> load_file(const std::string& path, const Progress& progress = nullptr,
                                                       const OpRegistry& ops = builtin_ops());
  // Verifies a plan held in memory (not owned; must outlive the Plan), at an address aligned to
  // kPlanMemoryAlign (the FlatBuffer's 8-byte fields; else invalid_argument, not a corrupt plan).
  static Result<std::shared_ptr<const Plan>> load_memory(const void* data, size_t size,
                                                         const OpRegistry& ops = builtin_ops());
  // Every check load_file makes except the weight segments' checksums. kiln compile runs it on the
  // plan it has just written (it computed those sums itself), so that a plan this runtime would
  // refuse is a compile error rather than a load error. Its messages do not name the file.
  static Status verify_structure(const std::string& path, const OpRegistry& ops = builtin_ops());

  uint32_t format_version() const { return format_version_; }
  uint32_t schema_version() const { return schema_version_; }
  const std::string& generator() const { return generator_; }
  uint64_t file_size() const { return file_->size(); }
  uint64_t fb_size() const { return fb_size_; }
  uint64_t fb_xxh3() const { return fb_xxh3_; }
  PlanKind kind() const { return kind_; }
  const ModelInfo& model() const { return model_; }
  // TextToImage plans' settings (empty for an LLM).
  const DiffusionInfo& diffusion() const { return diffusion_; }
  const MemoryInfo& memory() const { return memory_; }
  const std::vector<TargetInfo>& targets() const { return targets_; }
  const std::vector<AdapterInfo>& adapters() const { return adapters_; }
  // The embedded tokenizer, or null (plans compiled with --no-tokenizer or without tokenizer.json).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::vector<SegmentInfo>& segments() const { return segments_; }
  // The op of each entry of the plan's kernel table (LaunchInfo::kernel indexes it).
  const std::vector<const OpDef*>& kernels() const { return kernels_; }
  const std::vector<ProgramInfo>& programs() const { return programs_; }
  // Index of the named program, or -1.
  int find_program(const std::string& name) const;
  bool has_target(const std::string& backend) const;
  // Pointer to a weight tensor's bytes inside the mapped file.
  const void* weight_data(const TensorInfo& t) const;
  // Start of the weight section inside the mapped file (segments and weight tensors are offsets from it).
  const uint8_t* weights_base() const;
  // The weight section copied into anonymous memory that asks for transparent huge pages
  // (MADV_HUGEPAGE), for CPU contexts that ask for it (ContextOptions::cpu_huge_pages): made on the
  // first call and kept, shared by every context, until the plan is destroyed. Decode streams every
  // weight each token, and the page cache's 4 KiB pages cost it TLB misses (a Llama-3.2-1B-shape
  // bf16 decode: 102 ms from the mapping, 88 ms from the copy on the dev VM), but the copy costs its
  // size in memory and the kernel's compaction at creation (4-7 s there). weights_base() itself for
  // a plan in borrowed memory, or when the mapping for the copy cannot be made.
  const uint8_t* huge_page_weights_base() const;
  // The copy's bytes (0 until huge_page_weights_base() made one, or when it could not).
  uint64_t weight_copy_bytes() const;

 private:
  Plan() = default;
  static Result<std::shared_ptr<const Plan>> load(std::unique_ptr<MappedFile> file, const Progress& progress,
                                                  const OpRegistry& ops, bool hash_weights = true);
  Status parse_and_verify(const Progress& progress, const OpRegistry& ops, bool hash_weights);

  std::unique_ptr<MappedFile> file_;
  uint32_t format_version_ = 0, schema_version_ = 0;
  uint64_t fb_size_ = 0, fb_xxh3_ = 0, weights_offset_ = 0, weights_size_ = 0;
  struct WeightCopy {
    void* data = nullptr;
    size_t size = 0;
    WeightCopy() = default;
    WeightCopy(const WeightCopy&) = delete;
    WeightCopy& operator=(const WeightCopy&) = delete;
    ~WeightCopy();
  };
  mutable std::once_flag weight_copy_once_;
  mutable WeightCopy weight_copy_;
  std::string generator_;
  PlanKind kind_ = PlanKind::kLlm;
  ModelInfo model_;
  DiffusionInfo diffusion_;
  MemoryInfo memory_;
  std::vector<TargetInfo> targets_;
  std::vector<AdapterInfo> adapters_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<TensorInfo> tensors_;
  std::vector<SegmentInfo> segments_;
  std::vector<const OpDef*> kernels_;
  std::vector<ProgramInfo> programs_;
};

// The index of the first segment (in plan order) whose bytes at base + offset do not hash to its
// XXH3, or segments.size() when all do. From parallel_bytes of segments on, up to 8 threads hash
// them; the answer does not depend on their timing. progress(bytes hashed, total), if given, is
// called on the calling thread only, with increasing values, last with (total, total) when every
// segment matched; an exception it throws reaches the caller once the helpers have stopped.
// (Plan loading uses it; exposed for tests.)
size_t first_bad_weight_segment(const uint8_t* base, const std::vector<SegmentInfo>& segments, uint64_t total,
                                const Plan::Progress& progress, uint64_t parallel_bytes = uint64_t(64) << 20);

}  // namespace kiln
