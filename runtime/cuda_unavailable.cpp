// The CUDA entry points of a build without the CUDA backend (KILN_WITH_CUDA=OFF, or no nvcc).
#include "runtime/executor.h"

namespace kiln {

int cuda_device_count() { return 0; }

Result<std::unique_ptr<Executor>> make_cuda_executor(std::shared_ptr<const Plan>, const CudaExecutorOptions&) {
  return unsupported("this kiln was built without the CUDA backend (configure with KILN_WITH_CUDA=ON and nvcc)");
}

}  // namespace kiln
