// 2-D convolution on channels-last (NHWC) activations. The compiler permutes torch's
// (cout, cin, kh, kw) weights to (cout, kh, kw, cin), so one output pixel is a dot product
// of a contiguous weight row with the input patch. The input may be read as its nearest-neighbour
// resize to hv × wv (diffusers' Upsample2D: interpolate, then conv) without materialising it:
// 2× in general, one less than 2× where the UNet's up path meets an odd-sized skip.
// x: (batch, h, w, cin) f32; w: (cout, kh, kw, cin) f32|bf16|f16; bias: (cout,) or absent;
// chan_add: (batch, cout) f32 or absent (a ResNet's time-embedding projection, per image);
// residual: (batch, ho, wo, cout) f32 or absent
//   → y: (batch, ho, wo, cout) f32 = (conv(x) + bias + chan_add + residual) · out_scale
// with ho = (hv + 2·pad − kh) / stride + 1 (likewise wo); hv = h unless resized.
// Plan operands: inputs {x, w, bias?, chan_add?, residual?}; outputs {y};
//   int attrs {stride, pad, up_h, up_w} (version 2: up_h = up_w = 0, or the resize's size, each
//   from h to 2·h; version 1: {stride, pad, upsample}, upsample 1 meaning 2×); float attrs {out_scale}.
// CPU scratch: (kConvPixelBlock + 1)·kh·kw·cin floats per worker.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kConv2dOp;
extern const OpDef kConv2dOpV1;

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
  int64_t hv, wv;  // the input as the convolution reads it: (h, w_in), or the size it is resized to
  float out_scale;
  int64_t ho, wo;
};

constexpr int64_t kConvPixelBlock = 8;  // output pixels whose patches share one weight-row pass
inline uint64_t conv2d_scratch_floats(int64_t kh, int64_t kw, int64_t cin) {
  return uint64_t((kConvPixelBlock + 1) * kh * kw * cin);
}
// Output size along one axis (in = the size read: after the resize, if any).
inline int64_t conv2d_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  return (in + 2 * pad - k) / stride + 1;
}

// The stored index that index i of a nearest-neighbour resize from `in` to `out` reads, as torch's
// upsample_nearest computes it for an explicit output size: exact for out == in and out == 2·in,
// else floor(i · (in / out)) in f32 arithmetic, clamped to in − 1.
// (Int is int64_t on the CPU, int in the CUDA kernel.)
template <class Int>
KILN_HOST_DEVICE inline Int nearest_source(Int i, Int in, Int out) {
  if (out == in) return i;
  if (out == 2 * in) return i >> 1;
  const float scale = float(in) / float(out);
  const Int s = Int(floorf(float(i) * scale));
  return s < in - 1 ? s : in - 1;
}

void conv2d_cpu(const Conv2dArgs& a, ThreadPool& pool);

}  // namespace kiln
