// sample (kernels/sample.h): each batch row's next token from its last valid logits row, greedy or
// with the row's temperature/top-k/top-p from the sampling state.
#include "kernels/sample.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "logits", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "n_valid", 1));
  const int64_t rows = c.in(0)->shape[0], vocab = c.in(0)->shape[1], b = c.in(1)->shape[0];
  if (b <= 0 || rows <= 0 || rows % b != 0 || vocab <= 0 || vocab > int64_t(INT32_MAX))
    return invalid_argument("sample shapes are invalid");
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "logits", {DType::F32}, {rows, vocab}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "n_valid", {DType::I32}, {b}));
  KILN_RETURN_IF_ERROR(c.expect_state(c.in(1), "n_valid"));
  if (c.has_in(2)) {
    KILN_RETURN_IF_ERROR(c.expect(c.in(2), "params", {DType::I32}, {b, kSampleParamWords}));
    KILN_RETURN_IF_ERROR(c.expect_state(c.in(2), "params"));
    // The kernels read its rows as SampleParams, whose seed and step are 8-byte fields (the
    // region bases are aligned further; the dtype check alone allows a 4-byte offset).
    if (c.in(2)->offset % alignof(SampleParams) != 0) return invalid_argument("params must be 8-byte aligned");
  }
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "next", {DType::I32}, {b}));
  *scratch = sample_scratch_floats(vocab);
  return Status::ok();
}

SampleArgs args(const OpLaunch& l) {
  const int64_t b = l.in(1)->shape[0];
  return {l.in_f32(0),
          l.in_i32(1),
          static_cast<const SampleParams*>(l.in_ptr(2)),
          static_cast<int32_t*>(l.out_ptr(0)),
          b,
          l.in(0)->shape[0] / b,
          l.in(0)->shape[1]};
}

}  // namespace

const OpDef kSampleOp{"sample",
                      1,
                      3,
                      1,
                      0,
                      0,
                      {{1, "n_valid"}, {2, "sampling"}},
                      2,
                      false,
                      validate,
                      bind_cpu_kernel<args, sample_cpu>,
                      KILN_CUDA_BIND(bind_cuda_kernel<args, sample_cuda>),
                      nullptr};

}  // namespace kiln
