// KILN_HOST_DEVICE marks inline functions shared by the CPU kernels and the CUDA kernels, so
// both backends run the same code (and cannot drift apart).
#pragma once

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif

#include <cstdint>

namespace kiln {

// Whether row r of a (batch·chunk)-row activation is a token: n_valid (batch,) absent, or
// r % chunk < n_valid[r / chunk]. The rest are the padding rows of a partly filled prefill, which
// the CPU kernels skip (and leave as they were).
KILN_HOST_DEVICE inline bool row_is_valid(const int32_t* n_valid, int64_t chunk, int64_t r) {
  return !n_valid || r % chunk < n_valid[r / chunk];
}

}  // namespace kiln
