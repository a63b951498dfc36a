// One launch's kernel arguments, shared by every backend (see launch_args.cpp).
#pragma once
#include <variant>
#include <vector>

#include "kernels/sample.h"
#include "kernels/attention.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/group_norm.h"
#include "kernels/layernorm.h"
#include "kernels/embedding.h"
#include "kernels/fused.h"
#include "kernels/head_matmul.h"
#include "kernels/kv_write.h"
#include "kernels/matmul.h"
#include "kernels/mla.h"
#include "kernels/moe.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/sampler.h"
#include "kernels/sdpa.h"
#include "kernels/swiglu.h"
#include "kernels/timestep_embedding.h"
#include "runtime/plan.h"

namespace kiln {

using LaunchArgs = std::variant<EmbeddingArgs, RmsNormArgs, MatmulArgs, RopeArgs, KvWriteArgs, AttentionArgs, SwigluArgs,
                                HeadMatmulArgs, MlaKvWriteArgs, MlaAttentionArgs, MoeRouteArgs, MoeExpertsArgs,
                                LayerNormArgs, GroupNormArgs, Conv2dArgs, ActivationArgs, GegluArgs, AddArgs, ConcatArgs,
                                SdpaArgs, TimestepEmbeddingArgs, SamplerInputArgs, SamplerStepArgs, NormalNoiseArgs,
                                SampleArgs, FusedMatmulArgs, RopeKvWriteArgs>;

// ptrs[i] is where tensor i lives for the backend (weights included).
Result<LaunchArgs> make_launch_args(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& tensors,
                                    const std::vector<void*>& ptrs);

}  // namespace kiln
