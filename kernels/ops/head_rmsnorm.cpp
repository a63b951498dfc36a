// head_rmsnorm (kernels/head_rmsnorm.h): per-head RMSNorm of q and k, in place on a fused QKV buffer.
#include "kernels/head_rmsnorm.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo* qkv = c.in(0);
  const int64_t nq = c.iattr(0), nk = c.iattr(1), hd = c.iattr(2);
  if (!all_positive({nq, nk, hd})) return invalid_argument("head attributes are invalid");
  KILN_RETURN_IF_ERROR(c.expect_rank(qkv, "qkv", 2));
  KILN_RETURN_IF_ERROR(c.expect(qkv, "qkv", {DType::F32}, qkv->shape));
  if (!span_within(0, cmul(cadd(nq, nk), hd), qkv->shape[1]))
    return invalid_argument("the normalized heads exceed the qkv width");
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w_q", kFloatTypes, {hd}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "w_k", {c.in(1)->dtype}, {hd}));
  if (c.launch().outputs[0] != c.launch().inputs[0])
    return invalid_argument("head_rmsnorm must write its qkv input in place");
  if (c.fattr(0) < 0) return invalid_argument("eps is negative");
  return Status::ok();
}

HeadRmsNormArgs args(const OpLaunch& l) {
  return {l.out_f32(0),      l.in_ptr(1), l.in_ptr(2), l.in(1)->dtype, l.in(0)->shape[0],
          l.in(0)->shape[1], l.iattr(0),  l.iattr(1),  l.iattr(2),     l.fattr32(0)};
}

}  // namespace

const OpDef kHeadRmsNormOp{"head_rmsnorm",
                           1,
                           3,
                           1,
                           3,
                           1,
                           {},
                           0,
                           true,
                           validate,
                           bind_cpu_kernel<args, head_rmsnorm_cpu>,
                           KILN_CUDA_BIND(bind_cuda_kernel<args, head_rmsnorm_cuda>),
                           nullptr};

}  // namespace kiln
