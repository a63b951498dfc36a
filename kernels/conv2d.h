// 2-D convolution on channels-last (NHWC) activations. The compiler permutes torch's
// (cout, cin, kh, kw) weights to (cout, kh, kw, cin), so one output pixel is a dot product
// of a contiguous weight row with the input patch. With `upsample` the input is read as its
// 2× nearest-neighbour enlargement (diffusers' Upsample2D: interpolate, then conv) without
// materialising it.
// x: (batch, h, w, cin) f32; w: (cout, kh, kw, cin) f32|bf16|f16; bias: (cout,) or absent;
// chan_add: (batch, cout) f32 or absent (a ResNet's time-embedding projection, per image);
// residual: (batch, ho, wo, cout) f32 or absent
//   → y: (batch, ho, wo, cout) f32 = (conv(x) + bias + chan_add + residual) · out_scale
// with h' = h·(1 + upsample), ho = (h' + 2·pad − kh) / stride + 1 (likewise wo).
// Plan operands: inputs {x, w, bias?, chan_add?, residual?}; outputs {y};
//   int attrs {stride, pad, upsample}; float attrs {out_scale}.
// CPU scratch: (kConvPixelBlock + 1)·kh·kw·cin floats per worker.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kConv2dOp;

struct Conv2dArgs {
  const float* x;
  const void* w;
  DType w_dtype;
  const void* bias;       // may be null; dtype w_dtype
  const float* chan_add;  // may be null
  const float* residual;  // may be null
  float* y;
  int64_t batch, h, w_in, cin;  // stored input size (before upsampling)
  int64_t cout, kh, kw;
  int64_t stride, pad;
  bool upsample;
  float out_scale;
  int64_t ho, wo;
};

constexpr int64_t kConvPixelBlock = 8;  // output pixels whose patches share one weight-row pass
inline uint64_t conv2d_scratch_floats(int64_t kh, int64_t kw, int64_t cin) {
  return uint64_t((kConvPixelBlock + 1) * kh * kw * cin);
}
// Output size along one axis (in = stored size; doubled first when upsampling).
inline int64_t conv2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, bool upsample) {
  return (in * (upsample ? 2 : 1) + 2 * pad - k) / stride + 1;
}

void conv2d_cpu(const Conv2dArgs& a, ThreadPool& pool);

}  // namespace kiln
