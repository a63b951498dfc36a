// rope (kernels/rope.h): rotary position embedding, in place on a fused QKV buffer.
#include "kernels/rope.h"
#include "kernels/ops/op_cuda.h"

namespace kiln {

namespace {

Status validate(const OpCheck& c, uint64_t*) {
  const TensorInfo* inv = c.in(0);
  const TensorInfo* start = c.in(1);
  const TensorInfo* qkv = c.in(2);
  const int64_t n_rot = c.iattr(0), hd = c.iattr(1);
  if (!all_positive({n_rot, hd}) || hd % 2 != 0) return invalid_argument("head attributes are invalid");
  KILN_RETURN_IF_ERROR(c.expect_rank(qkv, "qkv", 2));
  KILN_RETURN_IF_ERROR(c.expect_rank(start, "start_pos", 1));
  KILN_RETURN_IF_ERROR(c.expect(start, "start_pos", {DType::I32}, start->shape));
  KILN_RETURN_IF_ERROR(c.expect_state(start, "start_pos"));
  const int64_t b = start->shape[0];
  if (qkv->shape[0] % b != 0) return invalid_argument("qkv rows are not a multiple of the batch");
  if (!span_within(0, cmul(n_rot, hd), qkv->shape[1])) return invalid_argument("rotated heads exceed the qkv width");
  KILN_RETURN_IF_ERROR(c.expect(qkv, "qkv", {DType::F32}, qkv->shape));
  KILN_RETURN_IF_ERROR(c.expect_rank(inv, "inv_freq", 1));
  if (inv->shape[0] < 1 || inv->shape[0] > hd / 2) return invalid_argument("inv_freq is longer than head_dim / 2");
  KILN_RETURN_IF_ERROR(c.expect(inv, "inv_freq", {DType::F32}, inv->shape));
  if (c.launch().outputs[0] != c.launch().inputs[2]) return invalid_argument("rope must write its qkv input in place");
  if (c.launch().inputs.size() > 3) {
    KILN_RETURN_IF_ERROR(c.expect_n_valid(3, qkv->shape[0]));
    if (c.has_in(3) && c.in(3)->shape[0] != b) return invalid_argument("n_valid and start_pos differ in batch");
  }
  return Status::ok();
}

// Version 1 rotates the whole head: its inv_freq must be head_dim / 2 long.
Status validate_v1(const OpCheck& c, uint64_t* scratch) {
  KILN_RETURN_IF_ERROR(validate(c, scratch));
  return c.expect(c.in(0), "inv_freq", {DType::F32}, {c.iattr(1) / 2});
}

RopeArgs args(const OpLaunch& l) {
  const int64_t b = l.in(1)->shape[0];
  const bool nv = l.launch().inputs.size() > 3;  // (version 3)
  return {l.out_f32(0), l.in_f32(0),  l.in_i32(1),           b, l.in(2)->shape[0] / b, l.in(2)->shape[1], l.iattr(0),
          l.iattr(1),   l.fattr32(0), 2 * l.in(0)->shape[0], nv ? l.in_i32(3) : nullptr};
}

}  // namespace

// Version 2 allows an inv_freq shorter than head_dim / 2 (a partial rotary embedding); version 3
// adds the optional n_valid (padding rows skipped on the CPU). Version 1 plans (always the whole
// head) and version 2 plans still load.
const OpDef kRopeOp{"rope",
                    3,
                    4,
                    1,
                    2,
                    1,
                    {{1, "start_pos"}, {3, "n_valid"}},
                    2,
                    true,
                    validate,
                    bind_cpu_kernel<args, rope_cpu>,
                    KILN_CUDA_BIND(bind_cuda_kernel<args, rope_cuda>),
                    nullptr};

const OpDef kRopeOpV2 = older_version(kRopeOp, 2, 3, 1);

const OpDef kRopeOpV1 = [] {
  OpDef d = kRopeOpV2;
  d.version = 1;
  d.validate = validate_v1;
  return d;
}();

}  // namespace kiln
