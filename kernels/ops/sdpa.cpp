// sdpa (kernels/sdpa.h): scaled dot-product attention of the diffusion models (self and cross).
#include "kernels/sdpa.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "q_src", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "kv_src", 2));
  const int64_t b = c.iattr(0), h = c.iattr(1), hd = c.iattr(2), qo = c.iattr(3), ko = c.iattr(4), vo = c.iattr(5);
  const int64_t rq = c.in(0)->shape[0], wq = c.in(0)->shape[1], rk = c.in(1)->shape[0], wkv = c.in(1)->shape[1];
  if (!all_positive({b, h, hd}) || rq % b != 0 || rk % b != 0 || (c.iattr(6) != 0 && c.iattr(6) != 1))
    return invalid_argument("attention attributes are invalid");
  const int64_t heads_width = cmul(h, hd);
  if (!span_within(qo, heads_width, wq) || !span_within(ko, heads_width, wkv) || !span_within(vo, heads_width, wkv))
    return invalid_argument("attention heads exceed their source columns");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "q_src", {DType::F32}, {rq, wq}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "kv_src", {DType::F32}, {rk, wkv}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", {DType::F32}, {rq, heads_width}));
  *scratch = sdpa_scratch_floats(rk / b, hd);
  return Status::ok();
}

SdpaArgs args(const OpLaunch& l) {
  const int64_t b = l.iattr(0);
  return {l.in_f32(0),
          l.in_f32(1),
          l.out_f32(0),
          b,
          l.in(0)->shape[0] / b,
          l.in(1)->shape[0] / b,
          l.in(0)->shape[1],
          l.in(1)->shape[1],
          l.iattr(1),
          l.iattr(2),
          l.iattr(3),
          l.iattr(4),
          l.iattr(5),
          l.iattr(6) != 0,
          l.fattr32(0)};
}

#ifdef KILN_WITH_CUDA
Result<CudaLaunch> bind_cuda(const OpLaunch& l, const CudaBindEnv& env) {
  const SdpaArgs a = args(l);
  if (!sdpa_cuda_supported(a))
    return unsupported("CUDA attention with head_dim " + std::to_string(a.head_dim) + " supports up to " +
                       std::to_string((kCudaMaxSdpaWideSmem / sizeof(float)) - uint64_t(a.head_dim)) +
                       " keys, the plan has " + std::to_string(a.lk) + " (a smaller image)");
  if (a.heads > kCudaMaxGridY || a.batch > kCudaMaxGridY)
    return unsupported("CUDA sdpa supports up to " + std::to_string(kCudaMaxGridY) + " heads and images per launch");
  return bind_cuda_kernel<args, sdpa_cuda>(l, env);
}
#endif

}  // namespace

const OpDef kSdpaOp{
    "sdpa", 1, 2, 1, 7, 1, {}, 0, false, validate, bind_cpu_kernel<args, sdpa_cpu>, KILN_CUDA_BIND(bind_cuda), nullptr};

}  // namespace kiln
