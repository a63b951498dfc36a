// The checks every op shares (operand counts, indices, regions, overlaps, dtypes and shapes) and
// the registry the plan loader resolves kernels against.
#include "kernels/op.h"

namespace kiln {

Status OpCheck::expect(const TensorInfo* t, const char* role, std::initializer_list<DType> dtypes,
                       const std::vector<int64_t>& shape) const {
  if (!t) return invalid_argument(std::string("missing operand ") + role);
  bool ok = false;
  for (DType d : dtypes) ok = ok || t->dtype == d;
  if (!ok) return invalid_argument(std::string(role) + " '" + t->name + "' has dtype " + dtype_name(t->dtype));
  if (t->shape != shape)
    return invalid_argument(std::string(role) + " '" + t->name + "' has shape " + shape_str(t->shape) + ", expected " +
                            shape_str(shape));
  return Status::ok();
}

Status OpCheck::expect_rank(const TensorInfo* t, const char* role, size_t rank) const {
  if (!t) return invalid_argument(std::string("missing operand ") + role);
  if (t->shape.size() != rank)
    return invalid_argument(std::string(role) + " '" + t->name + "' must have rank " + std::to_string(rank));
  return Status::ok();
}

Status OpCheck::expect_state(const TensorInfo* t, const char* role) const {
  if (!t || t->region != Region::kState) return invalid_argument(std::string(role) + " must be a state tensor");
  return Status::ok();
}

Status OpCheck::expect_n_valid(int i, int64_t rows) const {
  return has_in(i) ? expect_batch_state(i, "n_valid", rows) : Status::ok();
}

Status OpCheck::expect_batch_state(int i, const char* role, int64_t rows) const {
  KILN_RETURN_IF_ERROR(expect_rank(in(i), role, 1));
  KILN_RETURN_IF_ERROR(expect(in(i), role, {DType::I32}, in(i)->shape));
  KILN_RETURN_IF_ERROR(expect_state(in(i), role));
  if (rows % in(i)->shape[0] != 0) return invalid_argument("rows are not a multiple of the batch");
  return Status::ok();
}

bool all_positive(std::initializer_list<int64_t> v) {
  for (int64_t x : v)
    if (x <= 0 || x > (int64_t(1) << 24)) return false;
  return true;
}

int64_t cmul(int64_t a, int64_t b) {
  int64_t r = 0;
  return a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) ? -1 : r;
}

int64_t cadd(int64_t a, int64_t b) {
  int64_t r = 0;
  return a < 0 || b < 0 || __builtin_add_overflow(a, b, &r) ? -1 : r;
}

namespace {

bool overlap(const TensorInfo& x, const TensorInfo& y) {
  return x.region == y.region && x.offset < y.offset + y.size_bytes && y.offset < x.offset + x.size_bytes;
}

}  // namespace

Status validate_launch(const OpDef& op, const LaunchInfo& l, const std::vector<TensorInfo>& t, const ModelInfo& model,
                       uint64_t* cpu_scratch_floats) {
  if (int(l.inputs.size()) != op.n_inputs || int(l.outputs.size()) != op.n_outputs ||
      int(l.int_attrs.size()) != op.n_int_attrs || int(l.float_attrs.size()) != op.n_float_attrs)
    return invalid_argument("operand or attribute count does not match the kernel");
  for (uint32_t i : l.inputs)
    if (i != kNoTensor && i >= t.size()) return invalid_argument("input index out of range");
  for (uint32_t i : l.outputs) {
    if (i >= t.size()) return invalid_argument("output index out of range");
    if (t[i].region == Region::kWeights || t[i].region == Region::kState)
      return invalid_argument("output '" + t[i].name + "' is in the read-only " + region_name(t[i].region) + " region");
  }
  // No output may overlap another output or an input, except an in-place op's exact update:
  // overlapping operands would race between threads (and mean nothing on any backend).
  for (size_t o = 0; o < l.outputs.size(); ++o) {
    for (size_t p = o + 1; p < l.outputs.size(); ++p)
      if (overlap(t[l.outputs[o]], t[l.outputs[p]])) return invalid_argument("outputs overlap");
    for (uint32_t i : l.inputs)
      if (i != kNoTensor && overlap(t[l.outputs[o]], t[i]) && !(op.in_place && i == l.outputs[o]))
        return invalid_argument("output '" + t[l.outputs[o]].name + "' overlaps input '" + t[i].name + "'");
  }
  uint64_t scratch = 0;
  KILN_RETURN_IF_ERROR(op.validate(OpCheck(l, t, model), &scratch));
  if (scratch > *cpu_scratch_floats) *cpu_scratch_floats = scratch;
  return Status::ok();
}

const OpDef* OpRegistry::find(const std::string& name, uint32_t version) const {
  for (const OpDef* op : ops_)
    if (name == op->name && version == op->version) return op;
  return nullptr;
}

OpRegistry OpRegistry::with(const OpDef& op) const {
  std::vector<const OpDef*> ops;
  for (const OpDef* o : ops_)
    if (std::string(o->name) != op.name || o->version != op.version) ops.push_back(o);
  ops.push_back(&op);
  return OpRegistry(std::move(ops));
}

}  // namespace kiln
