// Launch validation, one function per kernel, mirroring the shape comments in kernels/*.h.
// A launch that passes cannot make its kernel touch memory outside its operands, whatever
// the state values the runtime later writes within their checked limits.
#include "runtime/ops.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/fused.h"
#include "kernels/matmul.h"
#include "kernels/sample.h"
#include "kernels/sampler.h"

namespace kiln {

std::vector<std::pair<int, const char*>> state_operands(const KernelSpec& s) {
  if (&s == &kEmbeddingSpec) return {{0, "tokens"}};
  if (&s == &kMatmulSpec) return {{3, "n_valid"}};
  if (&s == &kRopeSpec) return {{1, "start_pos"}};
  if (&s == &kKvWriteSpec) return {{1, "start_pos"}, {2, "n_valid"}};
  if (&s == &kAttentionSpec) return {{3, "start_pos"}, {4, "n_valid"}};
  if (&s == &kHeadMatmulSpec) return {{2, "n_valid"}};
  if (&s == &kMlaKvWriteSpec) return {{2, "start_pos"}, {3, "n_valid"}};
  if (&s == &kMlaAttentionSpec) return {{3, "start_pos"}, {4, "n_valid"}};
  if (&s == &kMoeRouteSpec) return {{3, "n_valid"}};
  if (&s == &kMoeExpertsSpec) return {{5, "n_valid"}};
  if (&s == &kTimestepEmbeddingSpec) return {{1, "step"}};
  if (&s == &kSamplerInputSpec) return {{2, "step"}};
  if (&s == &kSamplerStepSpec) return {{2, "step"}};
  if (&s == &kNormalNoiseSpec) return {{0, "seed"}, {1, "step"}};
  if (&s == &kSampleSpec) return {{1, "n_valid"}, {2, "sampling"}};
  if (&s == &kFusedMatmulSpec) return {{4, "n_valid"}};
  if (&s == &kRopeKvWriteSpec) return {{1, "start_pos"}, {3, "n_valid"}};
  return {};
}

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

  // No output may overlap another output or an input, except rope's exact in-place write:
  // overlapping operands would race between threads (and mean nothing on any backend).
  Status no_aliasing(bool allow_in_place_input) const {
    auto overlap = [&](uint32_t a, uint32_t b) {
      const TensorInfo &x = t_[a], &y = t_[b];
      return x.region == y.region && x.offset < y.offset + y.size_bytes && y.offset < x.offset + x.size_bytes;
    };
    for (size_t o = 0; o < l_.outputs.size(); ++o) {
      for (size_t p = o + 1; p < l_.outputs.size(); ++p)
        if (overlap(l_.outputs[o], l_.outputs[p])) return invalid_argument("outputs overlap");
      for (uint32_t i : l_.inputs)
        if (i != kNoTensor && overlap(l_.outputs[o], i) && !(allow_in_place_input && i == l_.outputs[o]))
          return invalid_argument("output '" + t_[l_.outputs[o]].name + "' overlaps input '" + t_[i].name + "'");
    }
    return Status::ok();
  }

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

// An optional n_valid operand: an i32 state tensor (batch,) dividing the rows.
Status check_n_valid(const Checker& c, int i, int64_t rows) {
  if (!c.has_in(i)) return Status::ok();
  KILN_RETURN_IF_ERROR(c.expect_rank(c.in(i), "n_valid", 1));
  KILN_RETURN_IF_ERROR(c.expect(c.in(i), "n_valid", kI32, c.in(i)->shape));
  KILN_RETURN_IF_ERROR(c.expect_state(c.in(i), "n_valid"));
  if (rows % c.in(i)->shape[0] != 0) return invalid_argument("rows are not a multiple of the batch");
  return Status::ok();
}

// The latent cache and the step state shared by mla_kv_write and mla_attention.
Status check_latent_cache(const Checker& c, const TensorInfo* cache, const TensorInfo* start, const TensorInfo* valid,
                          int64_t rows, int64_t width, const ModelInfo& model, int64_t* batch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(cache, "cache", 3));
  const int64_t b = cache->shape[0];
  if (cache->shape[1] != model.max_seq) return invalid_argument("cache length differs from the plan's max_seq");
  if (rows % b != 0) return invalid_argument("rows are not a multiple of the batch");
  KILN_RETURN_IF_ERROR(c.expect(cache, "cache", kFloat, {b, model.max_seq, width}));
  KILN_RETURN_IF_ERROR(c.expect(start, "start_pos", kI32, {b}));
  KILN_RETURN_IF_ERROR(c.expect(valid, "n_valid", kI32, {b}));
  KILN_RETURN_IF_ERROR(c.expect_state(start, "start_pos"));
  KILN_RETURN_IF_ERROR(c.expect_state(valid, "n_valid"));
  *batch = b;
  return Status::ok();
}

}  // namespace

Status validate_launch(const KernelSpec& spec, const LaunchInfo& l, const std::vector<TensorInfo>& tensors,
                       const ModelInfo& model, uint64_t* scratch_floats) {
  Checker c(spec, l, tensors);
  KILN_RETURN_IF_ERROR(c.counts());
  KILN_RETURN_IF_ERROR(c.no_aliasing(&spec == &kRopeSpec || &spec == &kActivationSpec || &spec == &kAddSpec ||
                                     &spec == &kRopeKvWriteSpec));
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
    KILN_RETURN_IF_ERROR(check_n_valid(c, 3, rows));
    if (c.in(1)->dtype != DType::F32) scratch = matmul_scratch_floats(k);
  } else if (&spec == &kFusedMatmulSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(2), "w", 2));
    const int64_t rows = c.in(0)->shape[0], k = c.in(0)->shape[1], m = c.in(2)->shape[0];
    const bool swiglu = c.iattr(1) == 1;
    if (c.iattr(0) != 0 && c.iattr(0) != 1) return invalid_argument("accumulate must be 0 or 1");
    if (c.iattr(1) != 0 && !swiglu) return invalid_argument("swiglu must be 0 or 1");
    if (!c.has_in(1) && !swiglu) return invalid_argument("a fused matmul with neither a norm nor SwiGLU");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, {rows, k}));
    if (c.has_in(1)) KILN_RETURN_IF_ERROR(c.expect(c.in(1), "norm_w", kFloat, {k}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(2), "w", kFloat, {m, k}));
    if (c.has_in(3)) KILN_RETURN_IF_ERROR(c.expect(c.in(3), "bias", kFloat, {m}));
    KILN_RETURN_IF_ERROR(check_n_valid(c, 4, rows));
    if (swiglu && (m % 2 != 0 || c.has_in(3) || c.iattr(0) != 0))
      return invalid_argument("a SwiGLU epilogue needs an even width, no bias and no accumulation");
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {rows, swiglu ? m / 2 : m}));
    if (!(c.fattr(0) >= 0)) return invalid_argument("eps is negative");
    if (c.in(2)->dtype != DType::F32) scratch = matmul_scratch_floats(k);
  } else if (&spec == &kRopeKvWriteSpec) {
    KILN_RETURN_IF_ERROR(check_kv(c, c.in(2), &c.out(1), &c.out(2), c.in(1), c.in(3), model));
    if (c.iattr(2) % 2 != 0) return invalid_argument("head_dim is odd");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "inv_freq", kF32, {c.iattr(2) / 2}));
    if (l.outputs[0] != l.inputs[2]) return invalid_argument("rope_kv_write must write its qkv input in place");
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
  } else if (&spec == &kAttentionSpec) {
    KILN_RETURN_IF_ERROR(check_kv(c, c.in(0), c.in(1), c.in(2), c.in(3), c.in(4), model));
    const int64_t rows = c.in(0)->shape[0], h = c.iattr(0), hd = c.iattr(2);
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", kF32, {rows, h * hd}));
    scratch = uint64_t(model.max_seq + hd);
  } else if (&spec == &kSampleSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "logits", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "n_valid", 1));
    const int64_t rows = c.in(0)->shape[0], vocab = c.in(0)->shape[1], b = c.in(1)->shape[0];
    if (b <= 0 || rows <= 0 || rows % b != 0 || vocab <= 0 || vocab > int64_t(INT32_MAX))
      return invalid_argument("sample shapes are invalid");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "logits", kF32, {rows, vocab}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "n_valid", kI32, {b}));
    KILN_RETURN_IF_ERROR(c.expect_state(c.in(1), "n_valid"));
    if (c.has_in(2)) {
      KILN_RETURN_IF_ERROR(c.expect(c.in(2), "params", kI32, {b, kSampleParamWords}));
      KILN_RETURN_IF_ERROR(c.expect_state(c.in(2), "params"));
    }
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "next", kI32, {b}));
    scratch = uint64_t(2 * vocab);
  } else if (&spec == &kSwigluSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "gu", 2));
    const auto& s = c.in(0)->shape;
    if (s[1] % 2 != 0) return invalid_argument("gate|up width is odd");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "gu", kF32, s));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "h", kF32, {s[0], s[1] / 2}));
  } else if (&spec == &kHeadMatmulSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 3));
    const int64_t rows = c.in(0)->shape[0], h = c.in(1)->shape[0], m = c.in(1)->shape[1], k = c.in(1)->shape[2];
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, {rows, h * k}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloat, {h, m, k}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {rows, h * m}));
    KILN_RETURN_IF_ERROR(check_n_valid(c, 2, rows));
    if (c.in(1)->dtype != DType::F32) scratch = uint64_t(k);
  } else if (&spec == &kMlaKvWriteSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "ckv", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "kpe", 2));
    const int64_t rows = c.in(0)->shape[0], rank = c.in(0)->shape[1], rope = c.in(1)->shape[1];
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "ckv", kF32, {rows, rank}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "kpe", kF32, {rows, rope}));
    int64_t b = 0;
    KILN_RETURN_IF_ERROR(check_latent_cache(c, &c.out(0), c.in(2), c.in(3), rows, rank + rope, model, &b));
  } else if (&spec == &kMlaAttentionSpec) {
    const int64_t heads = c.iattr(0), rank = c.iattr(1), rope = c.iattr(2);
    if (!positive({heads, rank, rope})) return invalid_argument("head attributes are invalid");
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "q_lat", 2));
    const int64_t rows = c.in(0)->shape[0];
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "q_lat", kF32, {rows, heads * rank}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "q_pe", kF32, {rows, heads * rope}));
    int64_t b = 0;
    KILN_RETURN_IF_ERROR(check_latent_cache(c, c.in(2), c.in(3), c.in(4), rows, rank + rope, model, &b));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", kF32, {rows, heads * rank}));
    scratch = uint64_t(model.max_seq + rank + rope);
  } else if (&spec == &kMoeRouteSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "h", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "gate", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(&c.out(0), "ids", 2));
    const int64_t rows = c.in(0)->shape[0], dim = c.in(0)->shape[1], e = c.in(1)->shape[0], k = c.out(0).shape[1];
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "h", kF32, {rows, dim}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "gate", kFloat, {e, dim}));
    if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "bias", kFloat, {e}));
    KILN_RETURN_IF_ERROR(check_n_valid(c, 3, rows));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "ids", kI32, {rows, k}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "weights", kF32, {rows, k}));
    const int64_t method = c.iattr(0), scoring = c.iattr(1), groups = c.iattr(2), topk_group = c.iattr(3);
    if (method < 0 || method > 2 || scoring < 0 || scoring > 1 || (c.iattr(4) != 0 && c.iattr(4) != 1))
      return invalid_argument("routing attributes are invalid");
    if (k > e) return invalid_argument("top_k exceeds the number of experts");
    if (method != 0 && (groups <= 0 || groups > 64 || e % groups != 0 || topk_group <= 0 || topk_group > groups ||
                        k > topk_group * (e / groups) || (method == 2 && e / groups < 2)))
      return invalid_argument("expert groups are invalid");
    if (method == 2 && !c.has_in(2)) return invalid_argument("noaux_tc routing needs the correction bias");
    scratch = uint64_t(2 * e);
  } else if (&spec == &kMoeExpertsSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "h", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "ids", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(4), "w_down", 2));
    const int64_t rows = c.in(0)->shape[0], dim = c.in(0)->shape[1], k = c.in(1)->shape[1], ffn = c.in(4)->shape[1];
    if (c.in(4)->shape[0] % dim != 0) return invalid_argument("w_down rows are not a multiple of dim");
    const int64_t e = c.in(4)->shape[0] / dim;
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "h", kF32, {rows, dim}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "ids", kI32, {rows, k}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(2), "weights", kF32, {rows, k}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(3), "w_gu", kFloat, {e * 2 * ffn, dim}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(4), "w_down", {c.in(3)->dtype}, {e * dim, ffn}));
    KILN_RETURN_IF_ERROR(check_n_valid(c, 5, rows));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {rows, dim}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "ws", kF32, {rows * k, ffn}));
    scratch = uint64_t(std::max(dim, ffn));

  } else if (&spec == &kLayerNormSpec || &spec == &kGroupNormSpec) {
    const bool group = &spec == &kGroupNormSpec;
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", group ? 3 : 2));
    const auto& s = c.in(0)->shape;
    const int64_t ch = s.back();
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, s));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloat, {ch}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(2), "b", {c.in(1)->dtype}, {ch}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, s));
    if (!(c.fattr(0) >= 0)) return invalid_argument("eps is negative");
    if (group && (c.iattr(0) <= 0 || ch % c.iattr(0) != 0 || (c.iattr(1) != 0 && c.iattr(1) != 1)))
      return invalid_argument("group count does not divide the channels");
  } else if (&spec == &kConv2dSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 4));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "w", 4));
    const auto& xs = c.in(0)->shape;
    const auto& ws = c.in(1)->shape;
    const int64_t b = xs[0], cin = xs[3], cout = ws[0], kh = ws[1], kw = ws[2];
    const int64_t stride = c.iattr(0), pad = c.iattr(1), up = c.iattr(2);
    if (stride < 1 || stride > 8 || pad < 0 || pad > 8 || (up != 0 && up != 1) || !positive({kh, kw}) || kh > 16 || kw > 16)
      return invalid_argument("convolution attributes are invalid");
    const int64_t ho = conv2d_out_size(xs[1], kh, stride, pad, up != 0), wo = conv2d_out_size(xs[2], kw, stride, pad, up != 0);
    if (ho < 1 || wo < 1) return invalid_argument("convolution output is empty");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, xs));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "w", kFloat, {cout, kh, kw, cin}));
    if (c.has_in(2)) KILN_RETURN_IF_ERROR(c.expect(c.in(2), "bias", {c.in(1)->dtype}, {cout}));
    if (c.has_in(3)) KILN_RETURN_IF_ERROR(c.expect(c.in(3), "chan_add", kF32, {b, cout}));
    if (c.has_in(4)) KILN_RETURN_IF_ERROR(c.expect(c.in(4), "residual", kF32, {b, ho, wo, cout}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {b, ho, wo, cout}));
    if (!std::isfinite(float(c.fattr(0)))) return invalid_argument("out_scale is not finite");
    scratch = conv2d_scratch_floats(kh, kw, cin);
  } else if (&spec == &kActivationSpec) {
    if (!c.in(0) || c.in(0)->shape.empty()) return invalid_argument("activation input is missing or has rank 0");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, c.in(0)->shape));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, c.in(0)->shape));
    if (!activation_valid(c.iattr(0))) return invalid_argument("unknown activation kind");
  } else if (&spec == &kGegluSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "x", 2));
    const auto& s = c.in(0)->shape;
    if (s[1] % 2 != 0) return invalid_argument("GEGLU input width is odd");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "x", kF32, s));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {s[0], s[1] / 2}));
  } else if (&spec == &kAddSpec) {
    const TensorInfo& y = c.out(0);
    if (y.shape.empty()) return invalid_argument("add output has rank 0");
    KILN_RETURN_IF_ERROR(c.expect(&y, "y", kF32, y.shape));
    const TensorInfo* b = c.in(1);
    if (!b || b->shape.empty() || b->shape.back() != y.shape.back() || b->numel() == 0 || y.numel() % b->numel() != 0)
      return invalid_argument("add operand b does not broadcast over the output rows");
    KILN_RETURN_IF_ERROR(c.expect(b, "b", kFloat, b->shape));
    if (c.has_in(0)) KILN_RETURN_IF_ERROR(c.expect(c.in(0), "a", kF32, y.shape));
    if (!std::isfinite(float(c.fattr(0)))) return invalid_argument("scale is not finite");
  } else if (&spec == &kConcatSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "a", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "b", 2));
    const int64_t rows = c.in(0)->shape[0], ca = c.in(0)->shape[1], cb = c.in(1)->shape[1];
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "a", kF32, {rows, ca}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "b", kF32, {rows, cb}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "y", kF32, {rows, ca + cb}));
  } else if (&spec == &kSdpaSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "q_src", 2));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "kv_src", 2));
    const int64_t b = c.iattr(0), h = c.iattr(1), hd = c.iattr(2), qo = c.iattr(3), ko = c.iattr(4), vo = c.iattr(5);
    const int64_t rq = c.in(0)->shape[0], wq = c.in(0)->shape[1], rk = c.in(1)->shape[0], wkv = c.in(1)->shape[1];
    if (!positive({b, h, hd}) || rq % b != 0 || rk % b != 0 || (c.iattr(6) != 0 && c.iattr(6) != 1))
      return invalid_argument("attention attributes are invalid");
    if (qo < 0 || ko < 0 || vo < 0 || qo + h * hd > wq || ko + h * hd > wkv || vo + h * hd > wkv)
      return invalid_argument("attention heads exceed their source columns");
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "q_src", kF32, {rq, wq}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "kv_src", kF32, {rk, wkv}));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "out", kF32, {rq, h * hd}));
    scratch = uint64_t(rk / b + hd);
  } else if (&spec == &kTimestepEmbeddingSpec) {
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(0), "t", 1));
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "t", kF32, c.in(0)->shape));
    if (c.has_in(1)) {
      KILN_RETURN_IF_ERROR(c.expect(c.in(1), "step", kI32, {1}));
      KILN_RETURN_IF_ERROR(c.expect_state(c.in(1), "step"));
    }
    KILN_RETURN_IF_ERROR(c.expect_rank(&c.out(0), "emb", 2));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "emb", kF32, c.out(0).shape));
    if (c.iattr(0) != 0 && c.iattr(0) != 1) return invalid_argument("flip_sin_to_cos must be 0 or 1");
    if (!std::isfinite(float(c.fattr(0))) || !(c.fattr(1) > 1) || !std::isfinite(float(c.fattr(1))) ||
        float(c.out(0).shape[1] / 2) - float(c.fattr(0)) == 0.0f)
      return invalid_argument("timestep embedding attributes are invalid");
  } else if (&spec == &kSamplerInputSpec || &spec == &kSamplerStepSpec) {
    const bool in = &spec == &kSamplerInputSpec;
    const TensorInfo* x = in ? c.in(0) : &c.out(0);
    const TensorInfo* big = in ? &c.out(0) : c.in(0);
    KILN_RETURN_IF_ERROR(c.expect_rank(x, "x", 1));
    KILN_RETURN_IF_ERROR(c.expect_rank(big, in ? "x_in" : "out", 1));
    const int64_t n = x->shape[0];
    if (big->shape[0] != n && big->shape[0] != 2 * n) return invalid_argument("the model batch must be 1 or 2 images");
    KILN_RETURN_IF_ERROR(c.expect(x, "x", kF32, {n}));
    KILN_RETURN_IF_ERROR(c.expect(big, in ? "x_in" : "out", kF32, big->shape));
    KILN_RETURN_IF_ERROR(c.expect_rank(c.in(1), "coefs", 2));
    KILN_RETURN_IF_ERROR(c.expect(c.in(1), "coefs", kF32, {c.in(1)->shape[0], kSamplerCoefs}));
    KILN_RETURN_IF_ERROR(c.expect(c.in(2), "step", kI32, {1}));
    KILN_RETURN_IF_ERROR(c.expect_state(c.in(2), "step"));
    if (!in) {
      if (c.has_in(3)) KILN_RETURN_IF_ERROR(c.expect(c.in(3), "noise", kF32, {n}));
      KILN_RETURN_IF_ERROR(c.expect(&c.out(1), "h", kF32, {n}));
      if (!std::isfinite(float(c.fattr(0)))) return invalid_argument("guidance is not finite");
    }
  } else if (&spec == &kNormalNoiseSpec) {
    KILN_RETURN_IF_ERROR(c.expect(c.in(0), "seed", kI32, {2}));
    KILN_RETURN_IF_ERROR(c.expect_state(c.in(0), "seed"));
    if (c.has_in(1)) {
      KILN_RETURN_IF_ERROR(c.expect(c.in(1), "step", kI32, {1}));
      KILN_RETURN_IF_ERROR(c.expect_state(c.in(1), "step"));
    }
    KILN_RETURN_IF_ERROR(c.expect_rank(&c.out(0), "z", 1));
    KILN_RETURN_IF_ERROR(c.expect(&c.out(0), "z", kF32, c.out(0).shape));
    if (c.iattr(0) < 0) return invalid_argument("noise stream is negative");
  } else {
    return unsupported("no validator for kernel " + name);
  }
  if (scratch > *scratch_floats) *scratch_floats = scratch;
  return Status::ok();
}

}  // namespace kiln
