// The one checked-call macro for CUDA: a failing call returns a Status naming the expression,
// file:line and CUDA's error string. Only for files built with the CUDA toolkit.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "runtime/status.h"

namespace kiln {

inline Status cuda_status(cudaError_t e, const char* expr, const char* file, int line) {
  return Status(e == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kInternal,
                std::string(expr) + " failed at " + file + ":" + std::to_string(line) + ": " + cudaGetErrorString(e));
}

#define KILN_CUDA_CHECK(expr)                                                                   \
  do {                                                                                          \
    const cudaError_t _kiln_e = (expr);                                                         \
    if (_kiln_e != cudaSuccess) return ::kiln::cuda_status(_kiln_e, #expr, __FILE__, __LINE__); \
  } while (0)

}  // namespace kiln
