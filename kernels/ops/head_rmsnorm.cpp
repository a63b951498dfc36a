// head_rmsnorm (kernels/head_rmsnorm.h): per-head RMSNorm of q and k, in place on a fused QKV buffer;
// version 3 per-head LayerNorms with per-head weights too (Cohere's q_norm and k_norm).
#include "kernels/head_rmsnorm.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo* qkv = c.in(0);
  const int64_t nq = c.iattr(0), nk = c.iattr(1), hd = c.iattr(2);
  const int64_t khd = c.launch().int_attrs.size() > 3 ? c.iattr(3) : hd;
  const int64_t mode = c.launch().int_attrs.size() > 4 ? c.iattr(4) : 0;
  if (!all_positive({nq, nk, hd, khd})) return invalid_argument("head attributes are invalid");
  if (mode < 0 || mode > (kHeadNormCenter | kHeadNormPerHeadWeights)) return invalid_argument("unknown norm mode");
  const bool per_head = mode & kHeadNormPerHeadWeights;
  KILN_RETURN_IF_ERROR(c.expect_rank(qkv, "qkv", 2));
  KILN_RETURN_IF_ERROR(c.expect(qkv, "qkv", {DType::F32}, qkv->shape));
  if (!span_within(0, cadd(cmul(nq, hd), cmul(nk, khd)), qkv->shape[1]))
    return invalid_argument("the normalized heads exceed the qkv width");
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w_q", kFloatTypes, {per_head ? cmul(nq, hd) : hd}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(2), "w_k", {c.in(1)->dtype}, {per_head ? cmul(nk, khd) : khd}));
  if (c.launch().outputs[0] != c.launch().inputs[0])
    return invalid_argument("head_rmsnorm must write its qkv input in place");
  if (c.fattr(0) < 0) return invalid_argument("eps is negative");
  return Status::ok();
}

HeadRmsNormArgs args(const OpLaunch& l) {
  return {l.out_f32(0),
          l.in_ptr(1),
          l.in_ptr(2),
          l.in(1)->dtype,
          l.in(0)->shape[0],
          l.in(0)->shape[1],
          l.iattr(0),
          l.iattr(1),
          l.iattr(2),
          l.fattr32(0),
          l.launch().int_attrs.size() > 3 ? l.iattr(3) : 0,
          l.launch().int_attrs.size() > 4 ? l.iattr(4) : 0};
}

}  // namespace

// Version 2 added k_head_dim (OLMo 2's whole-width q and k norms), version 3 the mode (Cohere's); version 1
// and 2 plans still load.
const OpDef kHeadRmsNormOp{"head_rmsnorm",
                           3,
                           3,
                           1,
                           5,
                           1,
                           {},
                           0,
                           true,
                           validate,
                           bind_cpu_kernel<args, head_rmsnorm_cpu>,
                           KILN_CUDA_BIND(bind_cuda_kernel<args, head_rmsnorm_cuda>),
                           nullptr};

const OpDef kHeadRmsNormOpV2 = [] {
  OpDef d = kHeadRmsNormOp;
  d.version = 2;
  d.n_int_attrs = 4;
  return d;
}();

const OpDef kHeadRmsNormOpV1 = [] {
  OpDef d = kHeadRmsNormOp;
  d.version = 1;
  d.n_int_attrs = 3;
  return d;
}();

}  // namespace kiln
