// Writes a planned Graph as a plan file (layout in runtime/plan_format.h). The FlatBuffer is
// built with force_defaults so its size does not depend on the hash values: it is built once
// to learn its size, the weights are streamed after it while their hashes are computed, and
// then the final FlatBuffer (same size) and header are written in front. The file appears
// under its name only when complete (written to PATH.tmp, then renamed).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "kernels/op.h"

namespace kiln {

// The backends a plan is compiled for. The kernels are the same ids on every backend; a CUDA
// target records the SM archs whose kernels the runtime must have (sm_90: H100/H200).
struct PlanTargets {
  bool cpu = true;
  std::vector<uint32_t> cuda_sm_archs = {90};  // empty: no CUDA target
};

using WeightBytesFn = std::function<void(const Value&, std::vector<uint8_t>&)>;

// progress(done, total) is called after each weight is written (may be null).
using ProgressFn = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

// The finished file is verified by the runtime's loader against `ops` (all but the weight
// checksums) before it takes its name: a plan the runtime would refuse throws CompileError.
void write_plan(const Graph& g, const PlanTargets& targets, const WeightBytesFn& weight_bytes, const std::string& path,
                const ProgressFn& progress = nullptr, const OpRegistry& ops = builtin_ops());

}  // namespace kiln
