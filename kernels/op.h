// Ops: the kinds of launch a plan may contain. Each op is defined once, in its own file
// kernels/ops/<op>.cpp, as an OpDef: its name and version, operand and attribute counts, the
// step-state inputs it reads, how a launch of it is validated against the plan's tensors (every
// shape, dtype, attribute and bound), how its kernel arguments are built, and its CPU and CUDA
// entry points. The plan loader, both backends and inspect go through an OpRegistry and name no
// op; adding one is its op file, its kernels and its line in kernels/ops/builtin.cpp
// (DESIGN.md shows the smallest, kernels/ops/swiglu.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"
#include "runtime/status.h"
#include "schema/plan_types.h"

namespace kiln {

class OpLaunch;
class OpCheck;
class CublasLt;

// An operand that reads the step state: it must be the program's own input named `input`, the
// ones the runtime bounds before every replay (start_pos + n_valid <= max_seq, …).
struct StateOperand {
  int operand;
  const char* input;
};

// A launch bound to the CPU kernel, with every pointer resolved.
using CpuLaunch = std::function<void(ThreadPool&)>;
// A launch bound to a CUDA kernel; `stream` is a cudaStream_t. Enqueues only (no allocation, no
// synchronization), so it can be captured into a graph.
using CudaLaunch = std::function<Status(void* stream)>;

// What the CPU backend lends an op when it binds a launch.
struct CpuBindEnv {
  // One buffer that a launch may use whole while it runs (launches run one at a time, so all
  // share it): grow it at bind time to what the launch needs, read its data() when it runs.
  // 64-byte aligned, as the arena is: the kernels read whole cache lines from it.
  std::vector<float, CacheLineAllocator<float>>* launch_buffer = nullptr;
};

// What the CUDA backend lends an op when it binds a launch.
struct CudaBindEnv {
  void* scratch = nullptr;  // device launch scratch, at least the largest cuda_scratch_bytes
  bool pdl = false;         // the launch may start early (programmatic dependent launch)
  // cuBLASLt for prefill GEMMs, loaded the first time an op asks; null when it is not wanted or
  // cannot be loaded (then kiln's own kernels run).
  std::function<CublasLt*()> cublaslt;
  // Counted for describe(): launches on cuBLASLt, launches it had no algorithm for, GEMVs on PDL.
  int* library_gemms = nullptr;
  int* library_refused = nullptr;
  int* pdl_gemvs = nullptr;
};

struct OpDef {
  const char* name;
  uint32_t version;  // bumped whenever operands, attributes or semantics change
  int n_inputs;      // including optional ones (kNoTensor in a launch)
  int n_outputs, n_int_attrs, n_float_attrs;
  StateOperand state[3];  // the first n_state entries
  int n_state;
  // An output may be exactly one of the inputs (an in-place update); other overlaps are refused.
  bool in_place;
  // Checks a launch whose operand counts, indices and overlaps are already checked (op.cpp).
  // On success it raises *cpu_scratch_floats to the CPU scratch the launch needs per worker.
  Status (*validate)(const OpCheck& c, uint64_t* cpu_scratch_floats);
  Result<CpuLaunch> (*bind_cpu)(const OpLaunch& l, const CpuBindEnv& env);
  // Null in builds without the CUDA backend. May refuse shapes its kernels lack (kUnsupported).
  Result<CudaLaunch> (*bind_cuda)(const OpLaunch& l, const CudaBindEnv& env);
  // Device scratch a launch needs (split-K partials, cuBLASLt's packed x, MoE gate logits); null: none.
  uint64_t (*cuda_scratch_bytes)(const OpLaunch& l);
  // Whether the launch reads output i's old value (it accumulates into it), so it must have been
  // written before the launch runs (the loader's program checks); null: never.
  bool (*reads_output)(const OpLaunch& l, int i) = nullptr;
};

// One launch as an op sees it: the tensor table, the launch, the model's limits and, once bound,
// every tensor's address (host addresses on the CPU, device addresses on CUDA).
class OpLaunch {
 public:
  OpLaunch(const LaunchInfo& l, const std::vector<TensorInfo>& tensors, const ModelInfo& model,
           const std::vector<void*>* ptrs = nullptr)
      : l_(l), t_(tensors), model_(model), ptrs_(ptrs) {}

  const LaunchInfo& launch() const { return l_; }
  const ModelInfo& model() const { return model_; }
  bool has_in(int i) const { return l_.inputs[size_t(i)] != kNoTensor; }
  // Input i's tensor, or null when absent; output i's tensor.
  const TensorInfo* in(int i) const { return has_in(i) ? &t_[l_.inputs[size_t(i)]] : nullptr; }
  const TensorInfo& out(int i) const { return t_[l_.outputs[size_t(i)]]; }
  int64_t iattr(int i) const { return l_.int_attrs[size_t(i)]; }
  double fattr(int i) const { return l_.float_attrs[size_t(i)]; }
  float fattr32(int i) const { return float(l_.float_attrs[size_t(i)]); }
  // Addresses (bound launches only): input i's (null when absent) and output i's.
  // Null when the launch is not bound (sizing scratch, for example).
  void* in_ptr(int i) const { return ptrs_ && has_in(i) ? (*ptrs_)[l_.inputs[size_t(i)]] : nullptr; }
  void* out_ptr(int i) const { return ptrs_ ? (*ptrs_)[l_.outputs[size_t(i)]] : nullptr; }
  float* in_f32(int i) const { return static_cast<float*>(in_ptr(i)); }
  float* out_f32(int i) const { return static_cast<float*>(out_ptr(i)); }
  const int32_t* in_i32(int i) const { return static_cast<const int32_t*>(in_ptr(i)); }
  // Input i's first dimension, or 1 when it is absent (an optional n_valid's batch).
  int64_t batch_of(int i) const { return has_in(i) ? in(i)->shape[0] : 1; }

 protected:
  const LaunchInfo& l_;
  const std::vector<TensorInfo>& t_;
  const ModelInfo& model_;
  const std::vector<void*>* ptrs_;
};

// The checks every op's validate() builds on.
class OpCheck : public OpLaunch {
 public:
  using OpLaunch::OpLaunch;
  // The tensor must exist, have one of the allowed dtypes and exactly the given shape.
  Status expect(const TensorInfo* t, const char* role, std::initializer_list<DType> dtypes,
                const std::vector<int64_t>& shape) const;
  Status expect_rank(const TensorInfo* t, const char* role, size_t rank) const;
  Status expect_state(const TensorInfo* t, const char* role) const;
  // An optional n_valid input i: an i32 state tensor (batch,) whose batch divides `rows`.
  Status expect_n_valid(int i, int64_t rows) const;
  // Input i (present): an i32 state tensor (batch,) whose batch divides `rows` (n_valid, embedding's start_pos).
  Status expect_batch_state(int i, const char* role, int64_t rows) const;
};

constexpr std::initializer_list<DType> kFloatTypes = {DType::F32, DType::BF16, DType::F16};
// Every value is in [1, 2^24] (head counts, dimensions, …).
bool all_positive(std::initializer_list<int64_t> v);

// Checked arithmetic, the only arithmetic validate() does on plan values (dimensions, attributes):
// the product or sum, or -1 when an operand is negative or the result overflows int64. -1 is no
// dimension and fails every bound, and it propagates, so a wrapped value never passes a check.
int64_t cmul(int64_t a, int64_t b);
int64_t cadd(int64_t a, int64_t b);
template <typename... T>
int64_t cmul(int64_t a, int64_t b, int64_t c, T... rest) {
  return cmul(cmul(a, b), c, rest...);
}
// [offset, offset + length) lies in [0, limit), computed without overflow.
inline bool span_within(int64_t offset, int64_t length, int64_t limit) {
  const int64_t end = cadd(offset, length);
  return length >= 0 && end >= 0 && end <= limit;
}

// The whole check of launch `l` against op `op`: operand and attribute counts, operand indices,
// outputs only in writable regions, no overlapping operands (but the op's in-place update), then
// op.validate. On success raises *cpu_scratch_floats.
Status validate_launch(const OpDef& op, const LaunchInfo& l, const std::vector<TensorInfo>& tensors,
                       const ModelInfo& model, uint64_t* cpu_scratch_floats);

// A set of ops to resolve plans against: the built-in ones (builtin_ops()), or those plus ops a
// host or a test defines (with()). Immutable; OpDefs are not owned and must outlive it.
class OpRegistry {
 public:
  explicit OpRegistry(std::vector<const OpDef*> ops) : ops_(std::move(ops)) {}
  // The op of this name and version, or null.
  const OpDef* find(const std::string& name, uint32_t version) const;
  const std::vector<const OpDef*>& ops() const { return ops_; }
  // This registry plus `op` (which replaces an op of the same name and version).
  OpRegistry with(const OpDef& op) const;

 private:
  std::vector<const OpDef*> ops_;
};

// OpDef::reads_output for an op whose int attribute 0 is "accumulate" (into its output 0), and
// for one that always accumulates into its output 0.
inline bool accumulates(const OpLaunch& l, int i) { return i == 0 && l.iattr(0) == 1; }
inline bool accumulates_first(const OpLaunch&, int i) { return i == 0; }
// ... and for one that updates every output from its old value (a sampler step: x and its history).
inline bool updates_outputs(const OpLaunch&, int) { return true; }

// Every op of kernels/ops (kernels/ops/builtin.cpp).
const OpRegistry& builtin_ops();

// --- Helpers for op files.

// An older version of op `now` that lacked its last operands (it had n_inputs inputs and n_state
// state operands), still registered so that plans compiled before load; args() reads the absent
// operands as their old meaning (launch().inputs.size()).
inline OpDef older_version(const OpDef& now, uint32_t version, int n_inputs, int n_state) {
  OpDef d = now;
  d.version = version;
  d.n_inputs = n_inputs;
  d.n_state = n_state;
  return d;
}

// A later version of op `base` that takes more operands or attributes (n_inputs inputs, n_int_attrs int
// attributes; the rest as base's).
inline OpDef later_version(const OpDef& base, uint32_t version, int n_inputs, int n_int_attrs) {
  OpDef d = base;
  d.version = version;
  d.n_inputs = n_inputs;
  d.n_int_attrs = n_int_attrs;
  return d;
}

// bind_cpu for an op whose kernel takes its argument struct: make(l) builds it.
template <auto Make, auto Kernel>
Result<CpuLaunch> bind_cpu_kernel(const OpLaunch& l, const CpuBindEnv&) {
  return CpuLaunch([a = Make(l)](ThreadPool& pool) { Kernel(a, pool); });
}

}  // namespace kiln
