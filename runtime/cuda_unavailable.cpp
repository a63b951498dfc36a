// The CUDA entry points of a build without the CUDA backend (KILN_WITH_CUDA=OFF, or no nvcc).
#include "runtime/executor.h"

#include <algorithm>

namespace kiln {

int cuda_device_count() { return 0; }

uint64_t cuda_device_bytes(const Plan& p) {
  auto a = [](uint64_t v) { return (v + 255) / 256 * 256; };
  uint64_t weights = 0;
  for (const SegmentInfo& s : p.segments()) weights = std::max(weights, s.offset + s.size);
  const MemoryInfo& m = p.memory();
  // The launch scratch depends on the CUDA kernels; the last 256 bytes are token feedback's control block.
  return a(weights) + a(m.arena_bytes) + a(m.kv_bytes) + a(m.request_bytes) + a(std::max<uint64_t>(m.state_bytes, 1)) +
         256;
}

Result<std::unique_ptr<Executor>> make_cuda_executor(std::shared_ptr<const Plan>, const CudaExecutorOptions&) {
  return unsupported("this kiln was built without the CUDA backend (configure with KILN_WITH_CUDA=ON and nvcc)");
}

}  // namespace kiln
