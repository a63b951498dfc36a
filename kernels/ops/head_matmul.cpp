// head_matmul (kernels/head_matmul.h): one small matmul per head (MLA's absorbed projections).
// Version 2 reads the heads' weights as rows of a checkpoint matrix (transposed or not), float or
// quantized as matmul reads them.
#include "kernels/head_matmul.h"

#include <string>

#include "kernels/ops/llm_checks.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

bool is_v2(const OpLaunch& l) { return l.launch().int_attrs.size() == 3; }

// Version 2: int attrs {heads, transposed, group}; inputs {x, w, n_valid?, w_scale?, w_zero?}.
Status validate_v2(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 2));
  const int64_t heads = c.iattr(0), transposed = c.iattr(1), group = c.iattr(2);
  if (!all_positive({heads})) return invalid_argument("head_matmul heads " + std::to_string(heads) + " out of range");
  if (transposed != 0 && transposed != 1) return invalid_argument("head_matmul transposed must be 0 or 1");
  const TensorInfo* w = c.in(1);
  const DType t = w->dtype;
  const int64_t w_rows = w->shape[0], cols = cmul(w->shape[1], t == DType::I4 ? 2 : 1);
  if (w_rows % heads != 0)
    return invalid_argument("head_matmul weights '" + w->name + "' have " + std::to_string(w_rows) +
                            " rows, not a multiple of " + std::to_string(heads) + " heads");
  // Not transposed: w (heads·m, k); transposed: w (heads·k, m).
  const int64_t k = transposed ? w_rows / heads : cols, m = transposed ? cols : w_rows / heads;
  const int64_t rows = c.in(0)->shape[0];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, {rows, cmul(heads, k)}));
  if (dtype_is_float(t)) {
    if (c.has_in(3) || c.has_in(4) || group != 0)
      return invalid_argument("float head_matmul weights '" + w->name + "' with scales, zero points or a group");
  } else if (t == DType::I8 || t == DType::I4 || t == DType::F8E4M3) {
    KILN_RETURN_IF_ERROR(expect_quantized(c, 1, "w", 3, "w_scale", t, w_rows, cols, group));
    KILN_RETURN_IF_ERROR(expect_in_weights(c, {1, 3, 4}));
    if (c.has_in(4)) {
      if (t != DType::I4)
        return invalid_argument("zero points '" + c.in(4)->name + "' for " + dtype_name(t) + " weights '" + w->name +
                                "' (asymmetric i4 only)");
      KILN_RETURN_IF_ERROR(c.expect(c.in(4), "w_zero", {DType::I8}, c.in(3)->shape));
    }
  } else {
    return invalid_argument("head_matmul weights '" + w->name + "' of dtype " + dtype_name(t));
  }
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, cmul(heads, m)}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(2, rows));
  if (cmul(1 + 16 * kHeadMatmulRowBlock, m) < 0)
    return invalid_argument("head_matmul weights '" + w->name + "' too large");
  *scratch = head_matmul_scratch_floats(k, m, transposed != 0, t);
  return Status::ok();
}

Status validate(const OpCheck& c, uint64_t* scratch) {
  if (is_v2(c)) return validate_v2(c, scratch);
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 3));
  const int64_t rows = c.in(0)->shape[0], h = c.in(1)->shape[0], m = c.in(1)->shape[1], k = c.in(1)->shape[2];
  KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", {DType::F32}, {rows, cmul(h, k)}));
  KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloatTypes, {h, m, k}));
  KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", {DType::F32}, {rows, cmul(h, m)}));
  KILN_RETURN_IF_ERROR(c.expect_n_valid(2, rows));
  *scratch = head_matmul_scratch_floats(k, m, false, c.in(1)->dtype);
  return Status::ok();
}

HeadMatmulArgs args(const OpLaunch& l) {
  if (!is_v2(l))
    return {l.in_f32(0),       l.in_ptr(1),       l.in(1)->dtype,    l.out_f32(0), l.in(0)->shape[0],
            l.in(1)->shape[0], l.in(1)->shape[2], l.in(1)->shape[1], l.in_i32(2),  l.batch_of(2)};
  const int64_t heads = l.iattr(0), rows_per_head = l.in(1)->shape[0] / heads;
  const int64_t cols = l.in(1)->shape[1] * (l.in(1)->dtype == DType::I4 ? 2 : 1);
  const bool transposed = l.iattr(1) != 0;
  return {l.in_f32(0),
          l.in_ptr(1),
          l.in(1)->dtype,
          l.out_f32(0),
          l.in(0)->shape[0],
          heads,
          transposed ? rows_per_head : cols,
          transposed ? cols : rows_per_head,
          l.in_i32(2),
          l.batch_of(2),
          transposed,
          l.in_f32(3),
          l.iattr(2),
          static_cast<const int8_t*>(l.in_ptr(4))};
}

}  // namespace

const OpDef kHeadMatmulOp{"head_matmul",
                          1,
                          3,
                          1,
                          0,
                          0,
                          {{2, "n_valid"}},
                          1,
                          false,
                          validate,
                          bind_cpu_kernel<args, head_matmul_cpu>,
                          KILN_CUDA_BIND(bind_cuda_kernel<args, head_matmul_cuda>),
                          nullptr};

const OpDef kHeadMatmulOpV2 = later_version(kHeadMatmulOp, 2, 5, 3);

}  // namespace kiln
