// For op files: their CUDA entry points, compiled only in builds with the CUDA backend.
// KILN_CUDA_BIND(binder) is the binder there and null elsewhere, so an OpDef names its CUDA
// entry point once in either build.
#pragma once
#include "kernels/op.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

// bind_cuda for an op whose launcher takes its argument struct and the stream.
template <auto Make, auto Kernel>
Result<CudaLaunch> bind_cuda_kernel(const OpLaunch& l, const CudaBindEnv&) {
  return CudaLaunch([a = Make(l)](void* s) -> Status {
    Kernel(a, static_cast<cudaStream_t>(s));
    return Status::ok();
  });
}

}  // namespace kiln

#define KILN_CUDA_BIND(...) (__VA_ARGS__)
#else
#define KILN_CUDA_BIND(...) nullptr
#endif
