// softcap (kernels/elementwise.h): y = cap · tanh(x / cap), in place or not.
#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  if (!c.in(0) || c.in(0)->shape.empty()) return invalid_argument("softcap input is missing or has rank 0");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, c.in(0)->shape));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, c.in(0)->shape));
  if (!(c.fattr32(0) > 0) || !std::isfinite(c.fattr32(0)))
    return invalid_argument("softcap must be positive and finite");
  return Status::ok();
}

SoftcapArgs args(const OpLaunch& l) { return {l.in_f32(0), l.out_f32(0), l.in(0)->numel(), l.fattr32(0)}; }

}  // namespace

const OpDef kSoftcapOp{"softcap",
                       1,
                       1,
                       1,
                       0,
                       1,
                       {},
                       0,
                       true,
                       validate,
                       bind_cpu_kernel<args, softcap_cpu>,
                       KILN_CUDA_BIND(bind_cuda_kernel<args, softcap_cuda>),
                       nullptr};

}  // namespace kiln
