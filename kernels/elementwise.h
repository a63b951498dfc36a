// Small elementwise ops (the diffusion models', Gemma's soft cap, clip_qkv's clamp), all f32 and channels-last.
//
// activation: y = f(x), f by kind: SiLU, exact (erf) GELU, tanh GELU, QuickGELU
//   (x·sigmoid(1.702x), CLIP's "quick_gelu"), relu(x)² (version 2; Arcee's "relu2"), relu (version 3)
//   or xIELU (version 4; Apertus's "xielu", xielu_value). y may be x itself (in place).
//   x: (rows, cols) → y: (rows, cols). Plan: inputs {x}; outputs {y}; int attrs {kind}; version 4 float
//   attrs {alpha_p, alpha_n, beta, eps}, finite, which only xIELU reads (0 for every other kind).
// geglu: GEGLU on a fused projection: y = h · act(g) with [h | g] = x, act exact GELU
//   (diffusers) or tanh GELU (Gemma's gelu_pytorch_tanh).
//   x: (rows, 2·f) → y: (rows, f). Plan: inputs {x}; outputs {y}; int attrs {kind: kGelu or
//   kGeluTanh} (version 1, without the attribute: kGelu).
// softcap: y = cap · tanh(x / cap) (Gemma's final logit soft-capping); y may be x.
//   x: (rows, cols) → y: (rows, cols). Plan: inputs {x}; outputs {y}; float attrs {cap > 0}.
// clamp: y = min(max(x, lo), hi), NaN kept (torch's clamp: OLMo's, OLMoE's and MPT's clip_qkv on q, k and v);
//   y may be x. x: (rows, cols) → y: (rows, cols); n_valid: (batch,) i32, whose batch divides rows: the CPU kernel
//   skips each batch row's padding rows (as swiglu). Plan: inputs {x, n_valid}; outputs {y}; float attrs {lo, hi},
//   finite, lo <= hi.
// add: y = a + scale · b, b broadcast over the rows (row r uses b[r mod m]); y may be a.
//   Without a, y = scale · b (a broadcast copy).
//   a: (rows, cols) f32 or absent; b: (m, cols) f32|bf16|f16 → y: (rows, cols); the shapes
//   may have any rank: cols is the last dimension.
//   Plan: inputs {a, b}; outputs {y}; float attrs {scale}.
//   Version 2 adds an optional third input, gate: (rows, 1) f32; with it each row's b is scaled by
//   sigmoid(gate[r]) too, y = a + (scale · sigmoid(gate[r])) · b (Qwen2-MoE's shared expert).
//   Plan: inputs {a, b, gate}; version 1 plans (inputs {a, b}) still load.
// concat: channel concatenation (the UNet's skip connections).
//   a: (rows, ca), b: (rows, cb) → y: (rows, ca + cb). Plan: inputs {a, b}; outputs {y}.
// image_mean: every row of an image becomes the image's mean row (a ControlNet with
//   global_pool_conditions: diffusers' mean over height and width, broadcast back when added), and
//   the first `skip` images become zeros (the negative prompt's half of a guided batch, where
//   diffusers runs such a ControlNet on the positive half only and adds zeros to the other).
//   x: (images, n, cols) → y: (images, n, cols); y may be x.
//   Plan: inputs {x}; outputs {y}; int attrs {skip, 0 <= skip <= images}.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The ops (their definitions: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kActivationOp;
extern const OpDef kActivationOpV3;  // version 3: without xIELU (and its float attributes)
extern const OpDef kActivationOpV2;  // version 2: without relu
extern const OpDef kActivationOpV1;  // version 1: without relu2
extern const OpDef kGegluOp;
extern const OpDef kGegluOpV1;
extern const OpDef kSoftcapOp;
extern const OpDef kClampOp;
extern const OpDef kAddOp;
extern const OpDef kAddOpV1;
extern const OpDef kConcatOp;
extern const OpDef kImageMeanOp;

// kRelu2: relu(x)² (Arcee's hidden_act "relu2"; activation version 2 and later); kRelu: relu(x) (OPT's
// activation_function "relu"; version 3); kXielu: xIELU (Apertus's hidden_act "xielu"; version 4).
enum class Activation : int64_t {
  kSilu = 0,
  kGelu = 1,
  kGeluTanh = 2,
  kQuickGelu = 3,
  kRelu2 = 4,
  kRelu = 5,
  kXielu = 6
};
// The kinds of activation version 1 and of geglu.
inline bool activation_valid(int64_t k) { return k >= 0 && k <= 3; }
// The activation op of the oldest version that has kind k (plans keep the version their kinds need).
const OpDef& activation_op_for(Activation k);

// xIELU's parameters as transformers' XIELUActivation computes them from its tensors: alpha_p = softplus(alpha_p),
// alpha_n = beta + softplus(alpha_n), beta and eps as stored.
struct XieluParams {
  float alpha_p = 0, alpha_n = 0, beta = 0, eps = 0;
};

// xIELU as transformers' _xielu_python computes it in f32: alpha_p·x·x + beta·x for x > 0, else
// (expm1(min(x, eps)) − x)·alpha_n + beta·x (a NaN stays NaN: torch.min keeps it).
KILN_HOST_DEVICE inline float xielu_value(float x, const XieluParams& p) {
  if (x > 0.0f) return p.alpha_p * x * x + p.beta * x;
  const float m = x > p.eps ? p.eps : x;
  return (expm1f(m) - x) * p.alpha_n + p.beta * x;
}

struct ActivationArgs {
  const float* x;
  float* y;
  int64_t n;  // rows · cols
  Activation kind;
  XieluParams xielu = {};  // (kXielu's)
};

struct GegluArgs {
  const float* x;
  float* y;
  int64_t rows, f;
  Activation kind = Activation::kGelu;
};

struct SoftcapArgs {
  const float* x;
  float* y;
  int64_t n;  // rows · cols
  float cap;
};

struct ClampArgs {
  const float* x;
  float* y;
  int64_t rows, cols;
  float lo, hi;
  const int32_t* n_valid = nullptr;  // (batch,), or null: every row
  int64_t batch = 1;
};

// clamp's value: lo below lo, hi above hi, x otherwise (NaN fails both tests: kept, as torch.clamp keeps it).
KILN_HOST_DEVICE inline float clamp_value(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

struct AddArgs {
  const float* a;  // may be null
  const void* b;
  DType b_dtype;
  float* y;
  int64_t rows, cols, b_rows;
  float scale;
  const float* gate = nullptr;  // (rows, 1) or null: row r's b times sigmoid(gate[r]) as well
};

// add's factor for row r: scale, or scale · sigmoid(gate[r]) (sigmoid in f32, as torch's).
KILN_HOST_DEVICE inline float add_row_factor(const AddArgs& a, int64_t r) {
  return a.gate ? a.scale * (1.0f / (1.0f + expf(-a.gate[r]))) : a.scale;
}

struct ConcatArgs {
  const float* a;
  const float* b;
  float* y;
  int64_t rows, ca, cb;
};

void activation_cpu(const ActivationArgs& a, ThreadPool& pool);
void geglu_cpu(const GegluArgs& a, ThreadPool& pool);
void softcap_cpu(const SoftcapArgs& a, ThreadPool& pool);
void clamp_cpu(const ClampArgs& a, ThreadPool& pool);
void add_cpu(const AddArgs& a, ThreadPool& pool);
void concat_cpu(const ConcatArgs& a, ThreadPool& pool);

struct ImageMeanArgs {
  const float* x;
  float* y;
  int64_t images, n, cols, skip;
};
constexpr int64_t kImageMeanCols = 64;  // columns per CPU task (their sums on the stack)

void image_mean_cpu(const ImageMeanArgs& a, ThreadPool& pool);

}  // namespace kiln
