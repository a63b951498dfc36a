// The built-in ops: every op file of kernels/ops, one line each.
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
#include "kernels/op.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/sample.h"
#include "kernels/sampler.h"
#include "kernels/sdpa.h"
#include "kernels/swiglu.h"
#include "kernels/timestep_embedding.h"

namespace kiln {

const OpRegistry& builtin_ops() {
  static const OpRegistry ops({
      // LLMs
      &kEmbeddingOp,
      &kEmbeddingOpV2,
      &kEmbeddingOpV1,
      &kLastRowsOp,
      &kRmsNormOp,
      &kRmsNormOpV1,
      &kHeadRmsNormOp,
      &kHeadRmsNormOpV2,
      &kHeadRmsNormOpV1,
      &kMatmulOp,
      &kMatmulOpV2,
      &kMatmulOpV3,
      &kMatmulOpV4,
      &kRopeOp,
      &kRopeOpV1,
      &kRopeOpV2,
      &kKvWriteOp,
      &kAttentionOp,
      &kAttentionOpV1,
      &kAttentionOpV2,
      &kAttentionOpV3,
      &kAttentionOpV4,
      &kSwigluOp,
      &kSwigluOpV1,
      &kSampleOp,
      &kHeadMatmulOp,
      &kHeadMatmulOpV2,
      &kMlaKvWriteOp,
      &kMlaAttentionOp,
      &kMoeRouteOp,
      &kMoeRouteOpV1,
      &kMoeRouteOpV3,
      &kMoeRouteOpV4,
      &kMoeExpertsOp,
      &kMoeExpertsOpV2,
      &kMoeExpertsOpV3,
      &kMoeExpertsOpV4,
      &kMoeExpertsOpV5,
      // fused (compiler/passes/fuse.h)
      &kFusedMatmulOp,
      &kRopeKvWriteOp,
      // diffusion
      &kLayerNormOp,
      &kLayerNormOpV1,
      &kGroupNormOp,
      &kConv2dOp,
      &kConv2dOpV1,
      &kActivationOp,
      &kActivationOpV3,
      &kActivationOpV2,
      &kActivationOpV1,
      &kGegluOp,
      &kGegluOpV1,
      &kSoftcapOp,
      &kClampOp,
      &kAddOp,
      &kAddOpV1,
      &kConcatOp,
      &kImageMeanOp,
      &kSdpaOp,
      &kTimestepEmbeddingOp,
      &kSamplerInputOp,
      &kSamplerStepOp,
      &kNormalNoiseOp,
  });
  return ops;
}

}  // namespace kiln
