// Launch validation, one function per kernel, mirroring the shape comments in kernels/*.h.
// A launch that passes cannot make its kernel touch memory outside its operands, whatever
// the state values the runtime later writes within their checked limits.
#include "runtime/ops.h"

#include <cstring>

#include "kernels/matmul.h"

namespace kiln {

const KernelSpec* find_kernel_spec(const std::string& name, uint32_t version) {
  for (const KernelSpec* s : kAllKernelSpecs)
    if (name == s->name && version == s->version) return s;
  return nullptr;
}

namespace {

// Operand access with the checks every kernel shares.
class Checker {
 public:
  Checker(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& t) : spec_(spec), l_(l), t_(t) {}

  Status counts() const {
    if (int(l_.inputs.size()) != spec_.n_inputs || int(l_.outputs.size()) != spec_.n_outputs ||
        int(l_.int_attrs.size()) != spec_.n_int_attrs || int(l_.float_attrs.size()) != spec_.n_float_attrs)
      return invalid_argument("operand or attribute count does not match the kernel");
    for (uint32_t i : l_.inputs)
      if (i != kNoTensor && i >= t_.size()) return invalid_argument("input index out of range");
    for (uint32_t i : l_.outputs) {
      if (i >= t_.size()) return invalid_argument("output index out of range");
      if (t_[i].region == Region::kWeights || t_[i].region == Region::kState)
        return invalid_argument("output '" + t_[i].name + "' is in the read-only " + region_name(t_[i].region) + " region");
    }
    return Status::ok();
  }

  bool has_in(int i) const { return l_.inputs[size_t(i)] != kNoTensor; }
  const TensorInfo* in(int i) const { return has_in(i) ? &t_[l_.inputs[size_t(i)]] : nullptr; }
  const TensorInfo& out(int i) const { return t_[l_.outputs[size_t(i)]]; }
  int64_t iattr(int i) const { return l_.int_attrs[size_t(i)]; }
  double fattr(int i) const { return l_.float_attrs[size_t(i)]; }

  // The tensor must exist, have one of the allowed dtypes and exactly the given shape.
  Status expect(const TensorInfo* t, const char* role, std::initializer_list<DType> dtypes,
                const std::vector<int64_t>& shape) const {
    if (!t) return invalid_argument(std::string("missing operand ") + role);
    bool ok = false;
    for (DType d : dtypes) ok = ok || t->dtype == d;
    if (!ok) return invalid_argument(std::string(role) + " '" + t->name + "' has dtype " + dtype_name(t->dtype));
    if (t->shape != shape)
      return invalid_argument(std::string(role) + " '" + t->name + "' has shape " + shape_str(t->shape) +
                              ", expected " + shape_str(shape));
    return Status::ok();
  }
  Status expect_rank(const TensorInfo* t, const char* role, size_t rank) const {
    if (!t) return invalid_argument(std::string("missing operand ") + role);
    if (t->shape.size() != rank)
      return invalid_argument(std::string(role) + " '" + t->name + "' must have rank " + std::to_string(rank));
    return Status::ok();
  }
  Status expect_state(const TensorInfo* t, const char* role) const {
    if (!t || t->region != Region::kState) return invalid_argument(std::string(role) + " must be a state tensor");
    return Status::ok();
  }

 private:
  const KernelSpec& spec_;
  const LaunchInfo& l_;
  const std::vector<TensorInfo>& t_;
};

constexpr std::initializer_list<DType> kFloat = {DType::F32, DType::BF16, DType::F16};
constexpr std::initializer_list<DType> kF32 = {DType::F32};
constexpr std::initializer_list<DType> kI32 = {DType::I32};

bool positive(std::initializer_list<int64_t> v) {
  for (int64_t x : v)
    if (x <= 0 || x > (int64_t(1) << 24)) return false;
  return true;
}

// Shared by kv_write and attention: head counts, the qkv buffer, the caches and the state.
Status check_kv(const Checker& c, const TensorInfo* qkv, const TensorInfo* kc, const TensorInfo* vc,
                const TensorInfo* start, const TensorInfo* valid, const ModelInfo& model) {
  const int64_t h = c.iattr(0), kvh = c.iattr(1), hd = c.iattr(2);
  if (!positive({h, kvh, hd}) || h % kvh != 0) return invalid_argument("head counts are invalid");
  KILN_RETURN_IF_ERROR(c.expect_rank(kc, "k_cache", 4));
  const int64_t b = kc->shape[0], s = kc->shape[1];
  if (s != model.max_seq) return invalid_argument("cache length differs from the plan's max_seq");
  KILN_RETURN_IF_ERROR(c.expect_rank(qkv, "qkv", 2));
  const int64_t rows = qkv->shape[0];
  if (rows % b != 0) return invalid_argument("qkv rows are not a multiple of the batch");
  KILN_RETURN_IF_ERROR(c.expect(qkv, "qkv", kF32, {rows, (h + 2 * kvh) * hd}));
  KILN_RETURN_IF_ERROR(c.expect(kc, "k_cache", kFloat, {b, s, kvh, hd}));
  KILN_RETURN_IF_ERROR(c.expect(vc, "v_cache", {kc->dtype}, {b, s, kvh, hd}));
  KILN_RETURN_IF_ERROR(c.expect(start, "start_pos", kI32, {b}));
  KILN_RETURN_IF_ERROR(c.expect(valid, "n_valid", kI32, {b}));
  KILN_RETURN_IF_ERROR(c.expect_state(start, "start_pos"));
  return c.expect_state(valid, "n_valid");
}

}  // namespace

Status validate_launch(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& tensors,
                       const ModelInfo& model, uint64_t* scratch_floats) {
  Checker c(spec, l, tensors);
  KILN_RETURN_IF_ERROR(c.counts());
  uint64_t scratch = 0;
  const std::string name = spec.name;

  if (&spec == &kEmbeddingSpec) {
    const TensorInfo* tok = c.in(0);
    const TensorInfo* table = c.in(1);
    KILN_RETURN_IF_ERROR(c.expect_rank(table, "table", 2));
    if (!tok || tok->dtype != DType::I32) return invalid_argument("tokens must be i32");
    KILN_RETURN_IF_ERROR(c.expect_state(tok, "tokens"));
    KILN_RETURN_IF_ERROR(c.expect(table, "table", kFloat, table->shape));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {tok->numel(), table->shape[1]}));
  } else if (&spec == &kRmsNormSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
    const auto& s = c.in(0)->shape;
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, s));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloat, {s[1]}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, s));
    if (c.fattr(0) < 0) return invalid_argument("eps is negative");
  } else if (&spec == &kMatmulSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 2));
    const int64_t rows = c.in(0)->shape[0], k = c.in(0)->shape[1], m = c.in(1)->shape[0];
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, {rows, k}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloat, {m, k}));
    if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "bias", kFloat, {m}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {rows, m}));
    if (c.iattr(0) != 0 && c.iattr(0) != 1) return invalid_argument("accumulate must be 0 or 1");
    if (c.has_in(3)) {
      KILN_RETURN_IF_ERROR(c.expect_rank(c.in(3), "n_valid", 1));
      KILN_RETURN_IF_ERROR(c.expect(c.in(3), "n_valid", kI32, c.in(3)->shape));
      KILN_RETURN_IF_ERROR(c.expect_state(c.in(3), "n_valid"));
      if (rows % c.in(3)->shape[0] != 0) return invalid_argument("x rows are not a multiple of the batch");
    }
    if (c.in(1)->dtype != DType::F32) scratch = matmul_scratch_floats(k);
  } else if (&spec == &kRopeSpec) {
    const TensorInfo* inv = c.in(0);
    const TensorInfo* start = c.in(1);
    const TensorInfo* qkv = c.in(2);
    const int64_t n_rot = c.iattr(0), hd = c.iattr(1);
    if (!positive({n_rot, hd}) || hd % 2 != 0) return invalid_argument("head attributes are invalid");
    KILN_RETURN_IF_ERROR(c.expect_rank(qkv, "qkv", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(start, "start_pos", 1));
    KILN_RETURN_IF_ERROR(c.expect(start, "start_pos", kI32, start->shape));
    KILN_RETURN_IF_ERROR(c.expect_state(start, "start_pos"));
    const int64_t b = start->shape[0];
    if (qkv->shape[0] % b != 0) return invalid_argument("qkv rows are not a multiple of the batch");
    if (n_rot * hd > qkv->shape[1]) return invalid_argument("rotated heads exceed the qkv width");
    KILN_RETURN_IF_ERROR(c.expect(qkv, "qkv", kF32, qkv->shape));
    KILN_RETURN_IF_ERROR(c.expect(inv, "inv_freq", kF32, {hd / 2}));
    if (l.outputs[0] != l.inputs[2]) return invalid_argument("rope must write its qkv input in place");
  } else if (&spec == &kKvWriteSpec) {
    KILN_RETURN_IF_ERROR(check_kv(c, c.in(0), &c.out(0), &c.out(1), c.in(1), c.in(2), model));
    if (l.outputs[0] == l.outputs[1]) return invalid_argument("k and v caches must differ");
  } else if (&spec == &kAttentionSpec) {
    KILN_RETURN_IF_ERROR(check_kv(c, c.in(0), c.in(1), c.in(2), c.in(3), c.in(4), model));
    const int64_t rows = c.in(0)->shape[0], h = c.iattr(0), hd = c.iattr(2);
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", kF32, {rows, h * hd}));
    scratch = uint64_t(model.max_seq + hd);
  } else if (&spec == &kSwigluSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "gu", 2));
    const auto& s = c.in(0)->shape;
    if (s[1] % 2 != 0) return invalid_argument("gate|up width is odd");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "gu", kF32, s));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "h", kF32, {s[0], s[1] / 2}));
  } else {
    return unsupported("no validator for kernel " + name);
  }
  if (scratch > *scratch_floats) *scratch_floats = scratch;
  return Status::ok();
}

}  // namespace kiln
