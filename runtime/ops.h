// Backend-independent checks of one launch against its kernel's contract: operand counts,
// dtypes, shapes and regions, so that no replay can read or write outside a tensor. Called
// by the plan loader for every launch; also reports the CPU scratch the launch needs.
#pragma once
#include <vector>

#include "runtime/plan.h"

namespace kiln {

// Looks a kernel up by name and version among the kernels this runtime knows.
const KernelSpec* find_kernel_spec(const std::string& name, uint32_t version);

// The operands of `spec` that read step state, as (operand index, program input name).
std::vector<std::pair<int, const char*>> state_operands(const KernelSpec& spec);

// Validates `l` (whose kernel is `spec`) against the tensor table and the model limits.
// On success adds the launch's CPU scratch need (floats per worker) to *scratch_floats.
Status validate_launch(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& tensors,
                       const ModelInfo& model, uint64_t* scratch_floats);

}  // namespace kiln
