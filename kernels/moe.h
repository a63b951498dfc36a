// Mixture of experts (DeepSeek V2/V3, Mixtral, Qwen-MoE, GraniteMoe, GPT-OSS, ERNIE 4.5 MoE, ...): the router and the
// routed experts.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The ops (their definitions: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kMoeRouteOp;
extern const OpDef kMoeRouteOpV1;    // version 1: no logit_bias attribute
extern const OpDef kMoeRouteOpV3;    // version 3: norm_min (ERNIE 4.5's renormalization floor)
extern const OpDef kMoeRouteOpV4;    // version 4: jitter_eps and the sparsemixer routing (Phi-3.5-MoE)
extern const OpDef kMoeExpertsOp;    // version 1: float expert weights
extern const OpDef kMoeExpertsOpV2;  // version 2: i8, i4 or f8e4m3 expert weights with their scales
extern const OpDef kMoeExpertsOpV3;  // version 3: asymmetric i4 expert weights with their scales and zero points
extern const OpDef kMoeExpertsOpV4;  // version 4: expert biases and GPT-OSS's clamped SwiGLU
extern const OpDef kMoeExpertsOpV5;  // version 5: y accumulated into or written

// kSparseMixer: Phi-3.5-MoE's sparsemixer (moe_route version 4; moe_sparsemixer).
enum class MoeTopk : int64_t { kGreedy = 0, kGroupLimitedGreedy = 1, kNoauxTc = 2, kSparseMixer = 3 };
enum class MoeScoring : int64_t { kSoftmax = 0, kSigmoid = 1 };

// Router, as transformers' DeepseekV2/V3 gates compute it in f32.
// h: (rows, dim) f32; gate: (experts, dim) f32|bf16|f16; bias: (experts,) or absent
//   (e_score_correction_bias: noaux_tc adds it for selection only; with logit_bias, GPT-OSS's
//   router bias, added to every logit before scoring)
//   → ids: (rows, top_k) i32; weights: (rows, top_k) f32
// int attrs {method (MoeTopk), scoring (MoeScoring), n_group, topk_group, norm_topk_prob, logit_bias
// (versions 2 and 3; version 1 has five)};
// float attrs {routed_scaling_factor, norm_min (versions 3 and 4)}: with norm_min, the renormalized weights are divided
// by max(sum, norm_min) (ERNIE 4.5's moe_norm_min) rather than by sum + 1e-20 (DeepSeek's). Version 4 adds a third
// float attribute, jitter_eps, and method kSparseMixer, which reads it (0 for the other methods): Phi-3.5-MoE's routing
// from the raw logits (moe_sparsemixer; top_k 2, scoring softmax, no bias, no groups, norm_topk_prob 0). Plan operands:
// inputs {h, gate, bias?, n_valid?}; outputs {ids, weights}. CPU scratch: 2·experts floats per worker.
struct MoeRouteArgs {
  const float* h;
  const void* gate;
  DType gate_dtype;
  const void* bias;
  DType bias_dtype;
  int32_t* ids;
  float* weights;
  int64_t rows, dim, experts, top_k;
  MoeTopk method;
  MoeScoring scoring;
  int64_t n_group, topk_group;
  bool norm_topk_prob;
  float routed_scaling_factor;
  const int32_t* n_valid;
  int64_t batch;
  bool logit_bias = false;  // bias added to the logits (GPT-OSS) rather than to the choice (noaux_tc)
  bool sum_floor = false;   // renormalize by max(sum, norm_min) (version 3) rather than by sum + 1e-20
  float norm_min = 0.0f;
  float jitter_eps = 0.0f;  // kSparseMixer's (version 4)
};

// Routed experts, reading only the selected experts' weights (a gather-GEMV per token).
// h: (rows, dim) f32; ids, weights: (rows, top_k); w_gu: (experts·2·ffn, dim), each expert's
// [gate | up] rows; w_down: (experts·dim, ffn) → y: (rows, dim) f32 [in/out], y += Σ_k
// weights[k] · down_e(silu(gate_e·h) · up_e·h); ws: (rows·top_k, ffn) f32 workspace holding
// each selected expert's activation (so a GPU can run the two halves as separate passes).
// Ids outside [0, experts) are skipped. Plan operands: inputs {h, ids, weights, w_gu, w_down,
// n_valid?}; outputs {y, ws}. CPU scratch: max(dim, ffn) floats per worker when weights are f16.
// Version 2: quantized expert weights as matmul reads them (kernels/matmul.h), each row with its scales:
// inputs {h, ids, weights, w_gu, w_down, n_valid?, gu_scale, down_scale}; int attrs {gu_group,
// down_group}. Both weights i8 (scales (rows,): a row's output is (x·q)·scale; groups 0), i4 (two values
// a byte, scales (rows, k/group), group a multiple of 32 dividing k) or f8e4m3 (scales (rows,
// ceil(k/group)), group a multiple of 16 up to k, or k), k being dim for w_gu and ffn for w_down; the
// i4 and f8e4m3 values are the f32 products q·scale, run as f32 weights.
// Version 3: asymmetric i4 expert weights: inputs {..., gu_scale, down_scale, gu_zero, down_zero}, the
// zero points I8 shaped as the scales (the nibble that stands for 0), each value the f32 product
// float(nibble − zero)·scale, as matmul version 4 reads them.
// Version 4: inputs {h, ids, weights, w_gu, w_down, n_valid?, gu_scale?, down_scale?, gu_zero?, down_zero?,
// gu_bias?, down_bias?} (the scales and zero points as versions 2-3 take them, absent for float weights);
// int attrs {gu_group, down_group, activation (MoeActivation)}; float attrs {alpha, limit}. gu_bias:
// (experts·2·ffn,) f32, added to each gate and up row's output; down_bias: (experts·dim,) f32, added to
// each down row's output before the routing weight multiplies it (GPT-OSS).
// Version 5: version 4's operands and attributes and a fourth int attribute, accumulate: 1 y += the sum (as versions
// 1-4 always do), 0 y = the sum, y's old value never read (FlexOlmo: OLMo 2's norm on the experts' sum alone).
// CUDA (kernels/cuda/deepseek.cu) runs every version; versions 2-5 have not run on a GPU yet.
enum class MoeActivation : int64_t {
  kSwiglu = 0,  // silu(g)·u
  // GPT-OSS: g' = min(g, limit), u' = clamp(u, −limit, limit), (u' + 1)·g'·sigmoid(alpha·g')
  kClampedSwiglu = 1,
};
struct MoeExpertsArgs {
  const float* h;
  const int32_t* ids;
  const float* weights;
  const void* w_gu;
  const void* w_down;
  DType w_dtype;
  float* y;
  float* ws;
  int64_t rows, dim, experts, ffn, top_k;
  const int32_t* n_valid;
  int64_t batch;
  const float* gu_scale = nullptr;  // version 2: the weights' scales and groups (see above)
  const float* down_scale = nullptr;
  int64_t gu_group = 0, down_group = 0;
  const int8_t* gu_zero = nullptr;  // version 3: asymmetric i4 weights' zero points (null: 8)
  const int8_t* down_zero = nullptr;
  const float* gu_bias = nullptr;  // version 4 (see above); null: none
  const float* down_bias = nullptr;
  MoeActivation activation = MoeActivation::kSwiglu;
  float alpha = 0, limit = 0;
  bool accumulate = true;  // version 5's attribute (see above); false: y = the sum
};

// GPT-OSS's expert activation of a gate value g and an up value u (MoeActivation::kClampedSwiglu), as
// transformers' GptOssExperts computes it in f32.
KILN_HOST_DEVICE inline float moe_clamped_swiglu(float g, float u, float alpha, float limit) {
  g = g > limit ? limit : g;  // (clamp(max=limit); a NaN stays NaN, as torch.clamp keeps it)
  u = u < -limit ? -limit : u > limit ? limit : u;
  return (u + 1.0f) * (g * (1.0f / (1.0f + expf(-g * alpha))));
}

// The most experts a token may be routed to (real models route to 1-16), so that a plan's
// routing costs what its weights say.
constexpr int64_t kMaxMoeTopK = 64;
// moe_route_cpu's scratch per worker (the op's validate() reserves it): scores and choices
// (experts floats each), then a gate row widened to f32 (dim floats) for a gate dtype the dot
// product does not read in place (f16), then moe_top_k's taken flags (experts bytes).
inline uint64_t moe_route_scratch_floats(int64_t experts, int64_t dim, DType gate) {
  return 2 * uint64_t(experts) + (gate == DType::F32 || gate == DType::BF16 ? 0 : uint64_t(dim)) +
         (uint64_t(experts) + 3) / 4;
}
// moe_experts_cpu's scratch per worker: one expert row (dim or ffn floats) widened to f32.
inline uint64_t moe_experts_scratch_floats(int64_t dim, int64_t ffn) { return uint64_t(dim > ffn ? dim : ffn); }

void moe_route_cpu(const MoeRouteArgs& a, ThreadPool& pool);
void moe_experts_cpu(const MoeExpertsArgs& a, ThreadPool& pool);

}  // namespace kiln
