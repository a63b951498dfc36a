// CUDA launchers, one per op, taking the same argument structs as the CPU kernels
// (kernels/<op>.h) with device pointers. Each only enqueues work on `stream` (no allocation,
// no synchronization), so every one can be captured into a CUDA graph. Shapes a kernel cannot
// handle are refused when a plan is bound (runtime/cuda_backend.cpp, the limits below), never
// at replay.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/attention.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/fused.h"
#include "kernels/group_norm.h"
#include "kernels/head_matmul.h"
#include "kernels/head_rmsnorm.h"
#include "kernels/kv_write.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/mla.h"
#include "kernels/moe.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/sample.h"
#include "kernels/sampler.h"
#include "kernels/sdpa.h"
#include "kernels/swiglu.h"
#include "kernels/timestep_embedding.h"

namespace kiln {

void embedding_cuda(const EmbeddingArgs& a, cudaStream_t s);
void last_rows_cuda(const LastRowsArgs& a, cudaStream_t s);
void rmsnorm_cuda(const RmsNormArgs& a, cudaStream_t s);
void head_rmsnorm_cuda(const HeadRmsNormArgs& a, cudaStream_t s);
// pdl (here and in the GEMV variants below): launch the GEMV with programmatic dependent launch
// (sm_90), so it starts while the kernel before it finishes, hints its weight rows into L2 and
// waits for that kernel before reading x. The results are the same; the tiled path ignores it.
void matmul_cuda(const MatmulArgs& a, cudaStream_t s, bool pdl = false);
// Whether the GEMVs' device code waits as PDL requires (built for sm_90 or later); the backend
// launches with pdl only then.
bool matmul_pdl_supported();
// matmul_cuda runs a GEMV up to kGemvMaxRows rows (kernels/fused.h); above it, the tiled f32 kernel.
// Quantized weights (i8, i4, f8e4m3 with w_scale, group and w_zero as MatmulArgs gives them) take
// their own GEMV, which decodes each load in registers (pdl is ignored), and the tiled kernel.
// The two halves around a library (cuBLASLt) GEMM for bf16/f16 weights: x rounded to the
// weight dtype into `out` (rows·k elements, padding rows zeroed), and y += bias on valid rows.
void matmul_pack_x_cuda(const MatmulArgs& a, void* out, cudaStream_t s);
void matmul_add_bias_cuda(const MatmulArgs& a, cudaStream_t s);
// The decode GEMV of a fused gate|up weight (m = 2·ffn rows) with SwiGLU as its epilogue:
// h (rows, ffn) = silu(x·w[0:ffn]ᵀ) · (x·w[ffn:2ffn]ᵀ), what matmul_cuda then swiglu_cuda give,
// in one launch and without the gate|up buffer (a.y is not used). For bf16/f16 weights, at most
// kGemvMaxRows rows, no bias and no accumulation (matmul_swiglu_cuda_supported: gemv_swiglu_fusable).
bool matmul_swiglu_cuda_supported(const MatmulArgs& a);
// RMSNorm as a decode GEMV's prologue: with a.x the norm's input, the GEMV of
// w_norm · (x · inv_rms(x)) (what rmsnorm_cuda then matmul_cuda give), the normalized rows never
// written. For bf16/f16 weights and at most kGemvMaxRows rows (matmul_norm_cuda_supported:
// gemv_norm_fusable).
struct GemvNorm {
  const void* w = nullptr;  // (k,) norm weight
  DType w_dtype = DType::F32;
  float eps = 0.0f;
};
bool matmul_norm_cuda_supported(const MatmulArgs& a);
void matmul_norm_cuda(const MatmulArgs& a, const GemvNorm& norm, cudaStream_t s, bool pdl = false);
// matmul_swiglu_cuda with the RMSNorm prologue when `norm` is given.
void matmul_swiglu_cuda(const MatmulArgs& a, float* h, cudaStream_t s, const GemvNorm* norm = nullptr,
                        bool pdl = false);
void rope_cuda(const RopeArgs& a, cudaStream_t s);
void kv_write_cuda(const KvWriteArgs& a, cudaStream_t s);
// rope (of every q and k head) then kv_write of the same qkv buffer, in one launch with the same
// results (the rope_kv_write op, kernels/fused.h), when rope_kv_write_cuda_supported holds.
bool rope_kv_write_cuda_supported(const RopeArgs& r, const KvWriteArgs& w);
void rope_kv_write_cuda(const RopeArgs& r, const KvWriteArgs& w, cudaStream_t s);
void attention_cuda(const AttentionArgs& a, cudaStream_t s);
// Split-K decode attention (flash-decoding) for launches of a few rows: `scratch` holds
// attention_cuda_scratch_floats(a) floats. Falls back to attention_cuda where the split kernel
// does not apply (attention_cuda_splits(a) == 0: many rows, or a head/group too large).
int attention_cuda_splits(const AttentionArgs& a);
uint64_t attention_cuda_scratch_floats(const AttentionArgs& a);
void attention_split_cuda(const AttentionArgs& a, float* scratch, cudaStream_t s);
void swiglu_cuda(const SwigluArgs& a, cudaStream_t s);
void sample_cuda(const SampleArgs& a, cudaStream_t s);
// Token feedback between decode replays (runtime/token_feedback.h), each a one-block graph node.
// The control block lives in device memory: mode 0 means the state was just written by the host
// (the advance leaves it), and the advance sets it to 1; seq counts published steps.
struct FeedbackControl {
  int32_t mode;
  uint32_t seq;
};
// feedback_row on every row when ctrl->mode != 0; then ctrl->mode = 1.
void feedback_advance_cuda(const FeedbackArgs& a, FeedbackControl* ctrl, cudaStream_t s);
// next (batch,) into ring slot ctrl->seq % slots (ring: slots·batch i32, host memory mapped for the
// device), then ctrl->seq += 1.
void feedback_publish_cuda(const int32_t* next, int64_t batch, FeedbackControl* ctrl, int32_t* ring, uint32_t slots,
                           cudaStream_t s);
// One empty kernel, to measure launch and graph-node overhead (kiln-bench).
void noop_cuda(cudaStream_t s);
void head_matmul_cuda(const HeadMatmulArgs& a, cudaStream_t s);
void mla_kv_write_cuda(const MlaKvWriteArgs& a, cudaStream_t s);
void mla_attention_cuda(const MlaAttentionArgs& a, cudaStream_t s);
// moe_route: `scratch` holds moe_route_cuda_scratch_floats(a) floats (the gate logits).
uint64_t moe_route_cuda_scratch_floats(const MoeRouteArgs& a);
void moe_route_cuda(const MoeRouteArgs& a, float* scratch, cudaStream_t s);
void moe_experts_cuda(const MoeExpertsArgs& a, cudaStream_t s);

// Diffusion (kernels/cuda/diffusion.cu).
void layernorm_cuda(const LayerNormArgs& a, cudaStream_t s);
void group_norm_cuda(const GroupNormArgs& a, cudaStream_t s);
void conv2d_cuda(const Conv2dArgs& a, cudaStream_t s);
void activation_cuda(const ActivationArgs& a, cudaStream_t s);
void geglu_cuda(const GegluArgs& a, cudaStream_t s);
void softcap_cuda(const SoftcapArgs& a, cudaStream_t s);
void clamp_cuda(const ClampArgs& a, cudaStream_t s);
void add_cuda(const AddArgs& a, cudaStream_t s);
void concat_cuda(const ConcatArgs& a, cudaStream_t s);
void image_mean_cuda(const ImageMeanArgs& a, cudaStream_t s);
void sdpa_cuda(const SdpaArgs& a, cudaStream_t s);
void timestep_embedding_cuda(const TimestepEmbeddingArgs& a, cudaStream_t s);
void sampler_input_cuda(const SamplerInputArgs& a, cudaStream_t s);
void sampler_step_cuda(const SamplerStepArgs& a, cudaStream_t s);
void normal_noise_cuda(const NormalNoiseArgs& a, cudaStream_t s);

// Limits of the CUDA kernels, checked when a plan is bound to the CUDA backend.
constexpr int64_t kCudaMaxHeadDim = 256;
constexpr int64_t kCudaMaxLatentRank = 512, kCudaMaxRopeDim = 64;  // mla_attention
constexpr int64_t kCudaMaxExperts = 4096;                          // moe_route (scores in shared memory)
constexpr int64_t kCudaMaxGridY = 65535;                           // moe_experts' grid.y (rows · top_k), moe_route's (rows)
constexpr int64_t kCudaMaxSdpaHeadDim = 256;  // sdpa's tiled kernel: 16 threads per row, at most 16 output dims each
// Wider heads take a kernel that keeps one query row's scores for every key in shared memory:
// (head_dim + keys) floats must fit in this many bytes.
constexpr uint64_t kCudaMaxSdpaWideSmem = 200 * 1024;
// conv2d indexes patches and weights with 32-bit ints: K = kh·kw·cin and the (virtual) input
// sides must stay below this.
constexpr int64_t kCudaMaxConvIndex = int64_t(1) << 30;
// A loop program's graph holds repeat × launches kernel nodes.
constexpr uint64_t kCudaMaxLoopNodes = 4u << 20;
// Whether sdpa_cuda handles these shapes (checked when a plan is bound to the CUDA backend).
inline bool sdpa_cuda_supported(const SdpaArgs& a) {
  return a.head_dim <= kCudaMaxSdpaHeadDim || uint64_t(a.head_dim + a.lk) * sizeof(float) <= kCudaMaxSdpaWideSmem;
}

}  // namespace kiln
