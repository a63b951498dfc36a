// The CPU backend: binds a validated launch to its CPU kernel with resolved pointers. The
// returned callable does no checks; validation happened when the plan was loaded. The CPU
// executor (make_cpu_executor in runtime/executor.h) is built on it.
#pragma once
#include <functional>
#include <vector>

#include "kernels/thread_pool.h"
#include "runtime/plan.h"

namespace kiln {

using BoundLaunch = std::function<void(ThreadPool&)>;

// ptrs[i] is the address of tensor i in this context (weights: in the mapped plan).
Result<BoundLaunch> bind_cpu_launch(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& tensors,
                                    const std::vector<void*>& ptrs);

}  // namespace kiln
