// Helpers of the CUDA executor (runtime/cuda_backend.cpp): making its device current for a scope,
// and the staged upload of the weights. Only for files built with the CUDA toolkit.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>

#include "runtime/status.h"

namespace kiln {

// Makes the executor's device current for a scope and restores the caller's afterwards, so a host
// that drives several devices from one thread never has its current device changed under it.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    ok_ = previous_ == device || cudaSetDevice(device) == cudaSuccess;
    if (previous_ == device) previous_ = -1;
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  bool ok() const { return ok_; }

 private:
  int previous_ = -1;
  bool ok_ = false;
};

// Copies n bytes from host memory `src` (the mapped plan: pageable) to device memory `dst` through
// two pinned 64 MiB staging buffers, so the host fills one while the other is on its way (the
// file's pages come from the page cache or the disk, which is the slow half). progress(done,
// total), if given, is called as chunks complete and once at the end. Waits for the copy.
Status upload_staged(void* dst, const uint8_t* src, uint64_t n, cudaStream_t stream,
                     const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace kiln
