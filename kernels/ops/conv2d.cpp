// conv2d (kernels/conv2d.h): 2-D convolution over channels-last images, with the UNet's epilogues.
#include "kernels/conv2d.h"

#include <cmath>
#include <utility>

#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

// The size the input (stored h × w) is read at: version 2's {up_h, up_w} (both 0: as stored; else a
// nearest resize to it, each from h to 2·h), version 1's upsample flag (1: 2×). {0, 0}: invalid.
template <class L>
std::pair<int64_t, int64_t> read_size(const L& l, int64_t h, int64_t w) {
  if (l.launch().int_attrs.size() == 3) {  // version 1
    const int64_t up = l.iattr(2);
    if (up != 0 && up != 1) return {0, 0};
    return {h << up, w << up};
  }
  const int64_t uh = l.iattr(2), uw = l.iattr(3);
  if (uh == 0 && uw == 0) return {h, w};
  if (uh < h || uh > 2 * h || uw < w || uw > 2 * w) return {0, 0};
  return {uh, uw};
}

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 4));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 4));
  const auto& xs = c.in(0)->shape;
  const auto& ws = c.in(1)->shape;
  const int64_t b = xs[0], cin = xs[3], cout = ws[0], kh = ws[1], kw = ws[2];
  const int64_t stride = c.iattr(0), pad = c.iattr(1);
  const auto [hv, wv] = read_size(c, xs[1], xs[2]);
  if (stride < 1 || stride > 8 || pad < 0 || pad > 8 || hv < 1 || wv < 1 || !all_positive({kh, kw}) || kh > 16 ||
      kw > 16)
    return invalid_argument("convolution attributes are invalid");
  const int64_t ho = conv2d_out_size(hv, kh, stride, pad), wo = conv2d_out_size(wv, kw, stride, pad);
  if (ho < 1 || wo < 1) return invalid_argument("convolution output is empty");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, xs));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {cout, kh, kw, cin}));
  if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "bias", {c.in(1)->dtype}, {cout}));
  if (c.has_in(3)) KILN_RETURN_IF_ERROR(c.expect(c.in(3), "chan_add", {DType::F32}, {b, cout}));
  if (c.has_in(4)) KILN_RETURN_IF_ERROR(c.expect(c.in(4), "residual", {DType::F32}, {b, ho, wo, cout}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {b, ho, wo, cout}));
  if (!std::isfinite(c.fattr32(0))) return invalid_argument("out_scale is not finite");
  *scratch = conv2d_scratch_floats(kh, kw, cin);
  return Status::ok();
}

Conv2dArgs args(const OpLaunch& l) {
  const auto& xs = l.in(0)->shape;
  const auto& ws = l.in(1)->shape;
  const auto [hv, wv] = read_size(l, xs[1], xs[2]);
  return {l.in_f32(0),
          l.in_ptr(1),
          l.in(1)->dtype,
          l.in_ptr(2),
          l.in_f32(3),
          l.in_f32(4),
          l.out_f32(0),
          xs[0],
          xs[1],
          xs[2],
          xs[3],
          ws[0],
          ws[1],
          ws[2],
          l.iattr(0),
          l.iattr(1),
          hv,
          wv,
          l.fattr32(0),
          l.out(0).shape[1],
          l.out(0).shape[2]};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const Conv2dArgs a = args(l);
  if (a.kh * a.kw * a.cin >= kCudaMaxConvIndex || a.hv >= kCudaMaxConvIndex || a.wv >= kCudaMaxConvIndex ||
      a.cout >= kCudaMaxConvIndex || (a.cout + 31) / 32 > kCudaMaxGridY)
    return unsupported("CUDA conv2d indexes with 32 bits: the plan's convolution is too large");
  return bind_cuda_kernel<args, conv2d_cuda>(l, env);
}
#endif

}  // namespace

// Version 2 reads the input at any size from 1× to 2× (up_h, up_w) where version 1 had a 2× flag;
// version 1 plans still load.
const OpDef kConv2dOp{
    "conv2d", 2, 5, 1, 4, 1, {}, 0, false, validate, bind_cpu_kernel<args, conv2d_cpu>, KILN_CUDA_BIND(bind_cuda),
    nullptr};

const OpDef kConv2dOpV1 = [] {
  OpDef d = kConv2dOp;
  d.version = 1;
  d.n_int_attrs = 3;
  return d;
}();

}  // namespace kiln
