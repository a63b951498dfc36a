// CUDA launchers, one per op, taking the same argument structs as the CPU kernels
// (kernels/<op>.h) with device pointers. Each only enqueues work on `stream` (no allocation,
// no synchronization), so every one can be captured into a CUDA graph. A launcher returns
// false if the shape is outside what its kernel handles (checked at bind time, not replay).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/head_matmul.h"
#include "kernels/kv_write.h"
#include "kernels/matmul.h"
#include "kernels/mla.h"
#include "kernels/moe.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace kiln {

void embedding_cuda(const EmbeddingArgs& a, cudaStream_t s);
void rmsnorm_cuda(const RmsNormArgs& a, cudaStream_t s);
void matmul_cuda(const MatmulArgs& a, cudaStream_t s);
void rope_cuda(const RopeArgs& a, cudaStream_t s);
void kv_write_cuda(const KvWriteArgs& a, cudaStream_t s);
void attention_cuda(const AttentionArgs& a, cudaStream_t s);
void swiglu_cuda(const SwigluArgs& a, cudaStream_t s);
void head_matmul_cuda(const HeadMatmulArgs& a, cudaStream_t s);
void mla_kv_write_cuda(const MlaKvWriteArgs& a, cudaStream_t s);
void mla_attention_cuda(const MlaAttentionArgs& a, cudaStream_t s);
void moe_route_cuda(const MoeRouteArgs& a, cudaStream_t s);
void moe_experts_cuda(const MoeExpertsArgs& a, cudaStream_t s);

// Limits of the CUDA kernels, checked when a plan is bound to the CUDA backend.
constexpr int64_t kCudaMaxHeadDim = 256;
constexpr int64_t kCudaMaxLatentRank = 512, kCudaMaxRopeDim = 64;  // mla_attention
constexpr int64_t kCudaMaxExperts = 4096;                           // moe_route (scores in shared memory)
constexpr int64_t kCudaMaxGridY = 65535;                            // moe_experts' grid.y (rows · top_k)

}  // namespace kiln
