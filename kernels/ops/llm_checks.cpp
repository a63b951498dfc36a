#include "kernels/ops/llm_checks.h"

#include <string>

#include "kernels/matmul.h"

namespace kiln {

Status check_qkv_and_caches(const OpCheck& c, const TensorInfo* qkv, const TensorInfo* kc, const TensorInfo* vc,
                            const TensorInfo* start, const TensorInfo* valid) {
  const int64_t h = c.iattr(0), kvh = c.iattr(1), hd = c.iattr(2);
  if (!all_positive({h, kvh, hd}) || h % kvh != 0) return invalid_argument("head counts are invalid");
  KILN_RETURN_IF_ERROR(c.expect_rank(kc, "k_cache", 4));
  const int64_t b = kc->shape[0], s = kc->shape[1];
  if (s != c.model().max_seq) return invalid_argument("cache length differs from the plan's max_seq");
  KILN_RETURN_IF_ERROR(c.expect_rank(qkv, "qkv", 2));
  const int64_t rows = qkv->shape[0];
  if (rows % b != 0) return invalid_argument("qkv rows are not a multiple of the batch");
  KILN_RETURN_IF_ERROR(c.expect(qkv, "qkv", {DType::F32}, {rows, cmul(cadd(h, cmul(2, kvh)), hd)}));
  KILN_RETURN_IF_ERROR(c.expect(kc, "k_cache", kFloatTypes, {b, s, kvh, hd}));
  KILN_RETURN_IF_ERROR(c.expect(vc, "v_cache", {kc->dtype}, {b, s, kvh, hd}));
  KILN_RETURN_IF_ERROR(c.expect(start, "start_pos", {DType::I32}, {b}));
  KILN_RETURN_IF_ERROR(c.expect(valid, "n_valid", {DType::I32}, {b}));
  KILN_RETURN_IF_ERROR(c.expect_state(start, "start_pos"));
  return c.expect_state(valid, "n_valid");
}

Status check_latent_cache(const OpCheck& c, const TensorInfo* cache, const TensorInfo* start, const TensorInfo* valid,
                          int64_t rows, int64_t width, int64_t* batch) {
  KILN_RETURN_IF_ERROR(c.expect_rank(cache, "cache", 3));
  const int64_t b = cache->shape[0], max_seq = c.model().max_seq;
  if (cache->shape[1] != max_seq) return invalid_argument("cache length differs from the plan's max_seq");
  if (rows % b != 0) return invalid_argument("rows are not a multiple of the batch");
  KILN_RETURN_IF_ERROR(c.expect(cache, "cache", kFloatTypes, {b, max_seq, width}));
  KILN_RETURN_IF_ERROR(c.expect(start, "start_pos", {DType::I32}, {b}));
  KILN_RETURN_IF_ERROR(c.expect(valid, "n_valid", {DType::I32}, {b}));
  KILN_RETURN_IF_ERROR(c.expect_state(start, "start_pos"));
  KILN_RETURN_IF_ERROR(c.expect_state(valid, "n_valid"));
  *batch = b;
  return Status::ok();
}

Status expect_quantized(const OpCheck& c, int i, const char* role, int si, const char* srole, DType t, int64_t rows,
                        int64_t k, int64_t group) {
  const std::string name = c.in(i)->name;
  if (!c.has_in(si))
    return invalid_argument(std::string(dtype_name(t)) + " " + role + " '" + name + "' without " + srole);
  if (k > kMaxQuantizedRow)
    return invalid_argument(std::string(dtype_name(t)) + " " + role + " '" + name + "' has rows of " +
                            std::to_string(k) + " values, more than " + std::to_string(kMaxQuantizedRow));
  if (t == DType::I8) {
    if (group != 0) return invalid_argument(std::string("i8 ") + role + " '" + name + "' with a group");
    KILN_RETURN_IF_ERROR(c.expect(c.in(i), role, {DType::I8}, {rows, k}));
    return c.expect(c.in(si), srole, {DType::F32}, {rows});
  }
  if (t == DType::I4) {
    if (k % 2 != 0 || group < kI4GroupMultiple || group % kI4GroupMultiple != 0 || k % group != 0)
      return invalid_argument(std::string("i4 ") + role + " '" + name + "' in groups of " + std::to_string(group) +
                              " for rows of " + std::to_string(k) + " (a multiple of 32 dividing them)");
    KILN_RETURN_IF_ERROR(c.expect(c.in(i), role, {DType::I4}, {rows, k / 2}));
    return c.expect(c.in(si), srole, {DType::F32}, {rows, k / group});
  }
  if (!f8_group_fits(k, group))
    return invalid_argument(std::string("f8e4m3 ") + role + " '" + name + "' in groups of " + std::to_string(group) +
                            " for rows of " + std::to_string(k) + " (a multiple of 16 up to them, or all)");
  KILN_RETURN_IF_ERROR(c.expect(c.in(i), role, {DType::F8E4M3}, {rows, k}));
  return c.expect(c.in(si), srole, {DType::F32}, {rows, f8_scales_per_row(k, group)});
}

Status expect_in_weights(const OpCheck& c, std::initializer_list<int> inputs) {
  for (int i : inputs)
    if (size_t(i) < c.launch().inputs.size() && c.has_in(i) && c.in(i)->region != Region::kWeights)
      return invalid_argument("'" + c.in(i)->name + "', a quantized weight, scale or zero point, is not a plan weight");
  return Status::ok();
}

}  // namespace kiln
