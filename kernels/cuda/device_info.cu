// Device discovery for the CUDA backend: how many devices there are and their SM arch.
// The CUDA kernels themselves arrive with issue #3; this file keeps the CUDA build wired
// and compiled in CI.
#include <cuda_runtime.h>

#include "kernels/cuda/device_info.h"

namespace kiln {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the "no device" error so it does not stick
    return 0;
  }
  return n;
}

int cuda_device_sm(int device) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
    return 0;
  return major * 10 + minor;
}

}  // namespace kiln
