// swiglu (kernels/swiglu.h): h = silu(g) · u of a fused gate|up buffer. The smallest op, and the
// pattern for a new one: validate() checks every operand against the shape comment in its header,
// args() builds the kernel's argument struct, and the OpDef names both entry points.
#include "kernels/swiglu.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "gu", 2));
  const auto& s = c.in(0)->shape;
  if (s[1] % 2 != 0) return invalid_argument("gate|up width is odd");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "gu", {DType::F32}, s));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "h", {DType::F32}, {s[0], s[1] / 2}));
  return c.launch().inputs.size() > 1 ? c.expect_n_valid(1, s[0]) : Status::ok();
}

SwigluArgs args(const OpLaunch& l) {
  const bool nv = l.launch().inputs.size() > 1;  // (version 2)
  return {l.in_f32(0), l.out_f32(0), l.in(0)->shape[0], l.in(0)->shape[1] / 2, nv ? l.in_i32(1) : nullptr,
          nv ? l.batch_of(1) : 1};
}

}  // namespace

// Version 2 adds the optional n_valid (padding rows skipped on the CPU); version 1 plans still load.
const OpDef kSwigluOp{"swiglu",
                      2,
                      2,
                      1,
                      0,
                      0,
                      {{1, "n_valid"}},
                      1,
                      false,
                      validate,
                      bind_cpu_kernel<args, swiglu_cpu>,
                      KILN_CUDA_BIND(bind_cuda_kernel<args, swiglu_cuda>),
                      nullptr};

const OpDef kSwigluOpV1 = older_version(kSwigluOp, 1, 1, 0);

}  // namespace kiln
