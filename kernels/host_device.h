// KILN_HOST_DEVICE marks inline functions shared by the CPU kernels and the CUDA kernels, so
// both backends run the same code (and cannot drift apart).
#pragma once

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif
