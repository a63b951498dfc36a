// The kernel ids that plans name, with their operand and attribute counts. The compiler
// emits launches against these specs and the runtime's registry binds each one to a backend
// implementation, validating shapes at load (runtime/kernel_registry.cpp). Bump a version
// whenever a kernel's operands, attributes or semantics change.
#pragma once
#include <cstdint>

namespace kiln {

struct KernelSpec {
  const char* name;
  uint32_t version;
  int n_inputs;       // including optional ones (which may be kNoTensor)
  int n_outputs;
  int n_int_attrs;
  int n_float_attrs;
};

inline constexpr uint32_t kNoTensor = 0xFFFFFFFFu;

// Each spec's operands are documented in the op's header in kernels/.
inline constexpr KernelSpec kEmbeddingSpec{"embedding", 1, 2, 1, 0, 0};  // kernels/embedding.h
inline constexpr KernelSpec kRmsNormSpec{"rmsnorm", 1, 2, 1, 0, 1};      // kernels/rmsnorm.h
inline constexpr KernelSpec kMatmulSpec{"matmul", 1, 4, 1, 1, 0};        // kernels/matmul.h
inline constexpr KernelSpec kRopeSpec{"rope", 1, 3, 1, 2, 1};            // kernels/rope.h
inline constexpr KernelSpec kKvWriteSpec{"kv_write", 1, 3, 2, 3, 0};     // kernels/kv_write.h
inline constexpr KernelSpec kAttentionSpec{"attention", 1, 5, 1, 3, 1};  // kernels/attention.h
inline constexpr KernelSpec kSwigluSpec{"swiglu", 1, 1, 1, 0, 0};        // kernels/swiglu.h
inline constexpr KernelSpec kSampleSpec{"sample", 1, 3, 1, 0, 0};        // kernels/sample.h
inline constexpr KernelSpec kHeadMatmulSpec{"head_matmul", 1, 3, 1, 0, 0};    // kernels/head_matmul.h
inline constexpr KernelSpec kMlaKvWriteSpec{"mla_kv_write", 1, 4, 1, 0, 0};   // kernels/mla.h
inline constexpr KernelSpec kMlaAttentionSpec{"mla_attention", 1, 5, 1, 3, 1};  // kernels/mla.h
inline constexpr KernelSpec kMoeRouteSpec{"moe_route", 1, 4, 2, 5, 1};        // kernels/moe.h
inline constexpr KernelSpec kMoeExpertsSpec{"moe_experts", 1, 6, 2, 0, 0};    // kernels/moe.h
// Diffusion (CLIP, UNet, VAE, ControlNet, samplers).
inline constexpr KernelSpec kLayerNormSpec{"layernorm", 1, 3, 1, 0, 1};       // kernels/layernorm.h
inline constexpr KernelSpec kGroupNormSpec{"group_norm", 1, 3, 1, 2, 1};      // kernels/group_norm.h
inline constexpr KernelSpec kConv2dSpec{"conv2d", 1, 5, 1, 3, 1};             // kernels/conv2d.h
inline constexpr KernelSpec kActivationSpec{"activation", 1, 1, 1, 1, 0};     // kernels/elementwise.h
inline constexpr KernelSpec kGegluSpec{"geglu", 1, 1, 1, 0, 0};               // kernels/elementwise.h
inline constexpr KernelSpec kAddSpec{"add", 1, 2, 1, 0, 1};                   // kernels/elementwise.h
inline constexpr KernelSpec kConcatSpec{"concat", 1, 2, 1, 0, 0};             // kernels/elementwise.h
inline constexpr KernelSpec kSdpaSpec{"sdpa", 1, 2, 1, 7, 1};                 // kernels/sdpa.h
inline constexpr KernelSpec kTimestepEmbeddingSpec{"timestep_embedding", 1, 2, 1, 1, 2};  // kernels/timestep_embedding.h
inline constexpr KernelSpec kSamplerInputSpec{"sampler_input", 1, 3, 1, 0, 0};  // kernels/sampler.h
inline constexpr KernelSpec kSamplerStepSpec{"sampler_step", 1, 4, 2, 0, 1};    // kernels/sampler.h
inline constexpr KernelSpec kNormalNoiseSpec{"normal_noise", 1, 2, 1, 1, 0};    // kernels/sampler.h
// Fused ops (compiler/passes/fuse.h).
inline constexpr KernelSpec kFusedMatmulSpec{"fused_matmul", 1, 5, 1, 2, 1};    // kernels/fused.h
inline constexpr KernelSpec kRopeKvWriteSpec{"rope_kv_write", 1, 4, 3, 3, 1};   // kernels/fused.h

inline constexpr const KernelSpec* kAllKernelSpecs[] = {
    &kEmbeddingSpec, &kRmsNormSpec,    &kMatmulSpec,       &kRopeSpec,     &kKvWriteSpec,   &kAttentionSpec,
    &kSwigluSpec,    &kHeadMatmulSpec, &kMlaKvWriteSpec,   &kMlaAttentionSpec, &kMoeRouteSpec, &kMoeExpertsSpec,
    &kLayerNormSpec, &kGroupNormSpec,  &kConv2dSpec,       &kActivationSpec,   &kGegluSpec,     &kAddSpec,
    &kConcatSpec,    &kSdpaSpec,       &kTimestepEmbeddingSpec, &kSamplerInputSpec, &kSamplerStepSpec,
    &kNormalNoiseSpec, &kSampleSpec, &kFusedMatmulSpec, &kRopeKvWriteSpec};

}  // namespace kiln
