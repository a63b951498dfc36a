// Device helpers shared by the CUDA kernels: dtype loads/stores matching kernels/dtype.h
// (round to nearest even), warp reductions and launch sizing.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "kernels/dtype.h"

namespace kiln::cuda {

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

__device__ __forceinline__ float ld(const void* p, DType t, uint64_t i) {
  switch (t) {
    case DType::F32:
      return static_cast<const float*>(p)[i];
    case DType::BF16:
      return bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::F16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return 0.0f;
  }
}

// 8 consecutive weights as stored: one 16-byte word for 16-bit types, two for f32. Loading a few of
// these into an array before widening any keeps their loads in flight together (the compiler
// otherwise tends to place each load next to its first use).
template <DType W>
struct Raw8 {
  uint4 v[W == DType::F32 ? 2 : 1];
};

// The 8 weights from element i (16-byte aligned).
template <DType W>
__device__ __forceinline__ Raw8<W> ldg8(const void* w, int64_t i) {
  Raw8<W> r;
  if constexpr (W == DType::F32) {
    r.v[0] = *reinterpret_cast<const uint4*>(static_cast<const float*>(w) + i);
    r.v[1] = *reinterpret_cast<const uint4*>(static_cast<const float*>(w) + i + 4);
  } else {
    r.v[0] = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w) + i);
  }
  return r;
}

// Raw8 widened to f32.
template <DType W>
__device__ __forceinline__ void widen8(const Raw8<W>& r, float out[8]) {
  if constexpr (W == DType::F32) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      out[4 * h] = __uint_as_float(r.v[h].x), out[4 * h + 1] = __uint_as_float(r.v[h].y);
      out[4 * h + 2] = __uint_as_float(r.v[h].z), out[4 * h + 3] = __uint_as_float(r.v[h].w);
    }
  } else {
    const uint32_t words[4] = {r.v[0].x, r.v[0].y, r.v[0].z, r.v[0].w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if constexpr (W == DType::BF16) {
        out[2 * q] = __uint_as_float(words[q] << 16);
        out[2 * q + 1] = __uint_as_float(words[q] & 0xffff0000u);
      } else {
        out[2 * q] = __half2float(__ushort_as_half(uint16_t(words[q] & 0xffffu)));
        out[2 * q + 1] = __half2float(__ushort_as_half(uint16_t(words[q] >> 16)));
      }
    }
  }
}

// Loads 8 consecutive weights starting at element i (16-byte aligned) and widens them to f32.
template <DType W>
__device__ __forceinline__ void load8(const void* w, int64_t i, float out[8]) {
  widen8<W>(ldg8<W>(w, i), out);
}

// Σ over 8 products, in the one order every 8-wide dot product here uses.
__device__ __forceinline__ float dot8(const float (&a)[8], const float (&b)[8]) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3] + a[4] * b[4] + a[5] * b[5] + a[6] * b[6] + a[7] * b[7];
}

__device__ __forceinline__ void st(void* p, DType t, uint64_t i, float v) {
  switch (t) {
    case DType::F32:
      static_cast<float*>(p)[i] = v;
      break;
    case DType::BF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case DType::F16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    default:
      break;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float v, float* smem32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  const int n_warps = int(blockDim.x >> 5);
  v = lane < n_warps ? smem32[lane] : 0.0f;
  return warp_sum(v);
}

// Programmatic dependent launch (sm_90). A kernel launched with the PDL attribute (launch_pdl) may
// start while the kernel before it in the stream still runs: it must call pdl_wait() before it
// reads anything that kernel (or any before it) wrote, and before it writes anything at all; what
// it may do first is read data nothing writes, such as weights. pdl_trigger() lets such a kernel
// after this one launch once every block of this one has triggered or exited. Both are no-ops
// otherwise, and compiled out below sm_90: launch_pdl's callers must check that the kernel was
// built for sm_90 or later (matmul_pdl_supported), or the wait would be missing.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Hints `bytes` bytes from p into L2, a warp's lanes taking 128-byte lines in turn.
__device__ __forceinline__ void prefetch_l2(const void* p, uint64_t bytes, int lane) {
  const char* c = static_cast<const char*>(p);
  for (uint64_t off = uint64_t(lane) * 128; off < bytes; off += 32 * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(c + off));
}

// kernel<<<grid, block, smem, s>>>(args...), with the PDL attribute when pdl is set (the kernel
// must then follow pdl_wait's rule). Errors surface through cudaGetLastError as for <<<>>>.
template <typename... Params, typename... Args>
void launch_pdl(bool pdl, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                Args&&... args) {
  if (!pdl) {
    kernel<<<grid, block, smem, s>>>(std::forward<Args>(args)...);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1] = {};
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  (void)cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

inline unsigned blocks_for(uint64_t n, unsigned threads) { return unsigned((n + threads - 1) / threads); }

// Row b·chunk + t of a batch × chunk buffer is a real token iff t < n_valid[b].
__device__ __forceinline__ bool row_valid(const int32_t* n_valid, int64_t row, int64_t chunk) {
  return n_valid == nullptr || (row % chunk) < n_valid[row / chunk];
}

}  // namespace kiln::cuda
