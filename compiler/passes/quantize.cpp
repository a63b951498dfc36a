#include "compiler/passes/quantize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "kernels/head_matmul.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/op.h"

namespace kiln {

namespace {

// max |v[i]| over n values of row j of `what`; CompileError naming them on a value that is not finite.
float finite_absmax(const float* v, int64_t n, int64_t j, const std::string& what) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i]))
      throw CompileError("cannot quantize '" + what + "': row " + std::to_string(j) + " has a non-finite value (" +
                         std::to_string(v[i]) + ")");
    amax = std::max(amax, std::fabs(v[i]));
  }
  return amax;
}

}  // namespace

void quantize_rows_int8(const float* w, int64_t m, int64_t k, int8_t* q, float* scale, const std::string& what) {
  for (int64_t j = 0; j < m; ++j) {
    const float* row = w + j * k;
    const float s = finite_absmax(row, k, j, what) / 127.0f;
    scale[j] = s;
    for (int64_t i = 0; i < k; ++i)
      q[j * k + i] = s == 0.0f ? int8_t(0) : int8_t(std::min(127.0f, std::max(-127.0f, std::nearbyint(row[i] / s))));
  }
}

void quantize_rows_int4(const float* w, int64_t m, int64_t k, int64_t group, uint8_t* packed, float* scale,
                        const std::string& what, int8_t* zeros) {
  if (group <= 0 || k % group != 0 || k % 32 != 0)
    throw CompileError("internal: int4 group " + std::to_string(group) + " for rows of " + std::to_string(k));
  const int64_t groups = k / group;
  for (int64_t j = 0; j < m; ++j)
    for (int64_t g = 0; g < groups; ++g) {
      const float* v = w + j * k + g * group;
      uint8_t* row = packed + j * k / 2;
      if (g == 0) std::fill(row, row + k / 2, uint8_t(0));  // (store_i4 keeps a byte's other nibble)
      finite_absmax(v, group, j, what);
      float lo = 0.0f, hi = 0.0f;  // the group's range [min(w, 0), max(w, 0)]
      for (int64_t i = 0; i < group; ++i) lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
      if (!zeros) {
        // The value of the larger magnitude (the positive one on a tie) at q = −8: a negative scale when
        // it is positive. (+ 0.0f: a group of zeros has scale +0, not −0.)
        const float s = (-lo > hi ? lo : hi) / -8.0f + 0.0f;
        scale[j * groups + g] = s;
        for (int64_t i = 0; i < group; ++i)
          store_i4(row, uint64_t(g * group + i),
                   s == 0.0f ? 0 : int(std::min(7.0f, std::max(-8.0f, std::nearbyint(v[i] / s)))));
        continue;
      }
      // Asymmetric: the range in 15 steps; the zero point the q of 0.
      const float s = (hi - lo) / 15.0f;
      const float zp = s == 0.0f ? -8.0f : std::nearbyint(std::min(7.0f, std::max(-8.0f, -8.0f - lo / s)));
      scale[j * groups + g] = s;
      zeros[j * groups + g] = int8_t(zp + 8.0f);
      for (int64_t i = 0; i < group; ++i) {
        const float t = s == 0.0f ? -8.0f : v[i] / s + zp;  // (in f32, as compressed-tensors adds them)
        store_i4(row, uint64_t(g * group + i), int(std::nearbyint(std::min(7.0f, std::max(-8.0f, t)))));
      }
    }
}

void quantize_rows_fp8(const float* w, int64_t m, int64_t k, int64_t group, uint8_t* codes, float* scale,
                       const std::string& what) {
  if (!f8_group_fits(k, group))
    throw CompileError("internal: fp8 group " + std::to_string(group) + " for rows of " + std::to_string(k));
  const int64_t groups = (k + group - 1) / group;
  for (int64_t j = 0; j < m; ++j)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t i0 = g * group, n = std::min(group, k - i0);
      const float* v = w + j * k + i0;
      const float s = finite_absmax(v, n, j, what) / 448.0f;
      scale[j * groups + g] = s;
      for (int64_t i = 0; i < n; ++i)
        codes[j * k + i0 + i] = s == 0.0f ? uint8_t(0) : f32_to_f8e4m3(std::min(448.0f, std::max(-448.0f, v[i] / s)));
    }
}

std::string quantize_scheme_error(const std::string& s) {
  return "--quantize '" + s + "' is not one of int8, int4, fp8, none";
}

std::string parse_quantize(const std::string& s) {
  if (s.empty() || s == "none" || s == "int8" || s == "int4" || s == "fp8") return s;
  throw CompileError(quantize_scheme_error(s));
}

std::string group_size_error(const std::string& group_size) {
  return "--group-size " + group_size + " is not a positive multiple of " + std::to_string(kI4GroupMultiple) +
         " (32, 64, 128, …)";
}

int64_t parse_group_size(const std::string& scheme, int64_t group_size) {
  if (group_size == 0) return 0;
  if (scheme != "int4")
    throw CompileError("--group-size is for --quantize int4 (" +
                       (scheme == "int8" ? std::string("int8 has one scale a row")
                        : scheme.empty() ? std::string("--quantize was not given")
                                         : "not --quantize " + scheme) +
                       ")");
  if (group_size < 0 || group_size % kI4GroupMultiple != 0)
    throw CompileError(group_size_error(std::to_string(group_size)));
  return group_size;
}

namespace {

// One quantized weight: its checkpoint parts, concatenated along dim 0 (LoRA merged by fetch; with rows,
// those rows of them),
// quantized when its bytes are written (i8: q per value; i4, group > 0: the packed bytes, two values
// each; f8e4m3: each code's value, which the plan writer turns back into the code); the scales are
// kept for its scale tensor.
struct Quantized {
  std::vector<std::string> parts;
  std::vector<const StTensor*> stored;  // per part: its pre-quantized rows, or null
  std::vector<int64_t> rows;            // the value's rows of the parts concatenated (WeightSource::rows)
  // A layout-only build (WeightSource::layout_only): the value's rows, the one part (named as the value).
  std::function<std::vector<float>(const WeightFetch&)> build;
  std::string name;
  int64_t m = 0, k = 0;
  bool fp8 = false;           // f8e4m3 codes, group values a scale (the last group of a row may be short)
  bool asymmetric = false;    // i4 with a zero point per group
  int64_t group = 0;          // i4 and f8e4m3: values per scale; 0: i8
  std::vector<float> scales;  // filled by the first build that needs them
  std::vector<int8_t> zeros;  // asymmetric: likewise

  int64_t scales_per_row() const { return fp8 ? f8_scales_per_row(k, group) : group > 0 ? k / group : 1; }
  int64_t elements_per_row() const { return !fp8 && group > 0 ? k / 2 : k; }

  // A checkpoint's FP8 part t: its codes' values (into q, when not null), its block scales repeated down
  // each block's rows (into s; the plan's groups are the blocks' columns).
  void copy_fp8(const StTensor& t, const std::string& p, float* q, float* s) const {
    const int64_t rows = t.shape[0], spr = scales_per_row(), grid = (k + t.block_cols - 1) / t.block_cols;
    if (grid != spr) throw CompileError("internal: FP8 blocks of '" + p + "' are not the groups of '" + name + "'");
    for (int64_t r = 0; r < rows; ++r)
      std::copy(t.block_scale + (r / t.block_rows) * grid, t.block_scale + (r / t.block_rows + 1) * grid, s + r * spr);
    if (!q) return;
    uint64_t nan_codes = 0;  // (counted in the same pass)
    for (int64_t i = 0; i < rows * k; ++i) {
      q[i] = f8e4m3_value(t.data[i]);
      nan_codes += is_fp8_nan_code(t.data[i]);
    }
    refuse_fp8_nan_codes(t, nan_codes);
  }

  // A pre-quantized part t of n rows: its q (into q, when not null), scales and zero points as stored.
  void copy_stored(const StTensor& t, const std::string& p, int64_t n, float* q, float* s, int8_t* z) const {
    if (fp8) return copy_fp8(t, p, q, s);
    const int64_t spr = scales_per_row();
    std::copy(t.row_scale, t.row_scale + n * spr, s);
    if (asymmetric != (t.row_zero != nullptr))
      throw CompileError("internal: pre-quantized '" + p + "' and '" + name + "' differ in zero points");
    if (asymmetric) std::copy(t.row_zero, t.row_zero + n * spr, z);
    if (!q) return;
    std::vector<float> v(static_cast<size_t>(k));
    std::vector<uint8_t> packed(static_cast<size_t>(k / 2));
    for (int64_t r = 0; r < n; ++r) {
      float* out = q + r * elements_per_row();
      if (group == 0) {
        quantized_q(t, r, out);
        continue;
      }
      quantized_q(t, r, v.data());  // int4: packed again in kiln's layout (kernels/dtype.h)
      for (int64_t c = 0; c < k; ++c) store_i4(packed.data(), uint64_t(c), int(v[size_t(c)]));
      std::copy(packed.begin(), packed.end(), out);
    }
  }

  // The f32 rows w (n of them, from part p) quantized by kiln's formulas.
  void quantize_part(const std::vector<float>& w, int64_t n, const std::string& p, float* q, float* s,
                     int8_t* z) const {
    if (fp8) {
      std::vector<uint8_t> codes(w.size());
      quantize_rows_fp8(w.data(), n, k, group, codes.data(), s, p);
      if (q)
        for (size_t c = 0; c < codes.size(); ++c) q[c] = f8e4m3_value(codes[c]);
    } else if (group > 0) {
      std::vector<uint8_t> packed(w.size() / 2);
      quantize_rows_int4(w.data(), n, k, group, packed.data(), s, p, asymmetric ? z : nullptr);
      if (q) std::copy(packed.begin(), packed.end(), q);
    } else {
      std::vector<int8_t> q8(w.size());
      quantize_rows_int8(w.data(), n, k, q8.data(), s, p);
      if (q) std::copy(q8.begin(), q8.end(), q);
    }
  }

  void run(const WeightFetch& fetch, std::vector<float>* q_out) {
    const int64_t spr = scales_per_row(), epr = elements_per_row();
    if (!rows.empty() && int64_t(rows.size()) != m)
      throw CompileError("internal: '" + name + "' gathers " + std::to_string(rows.size()) + " rows, not " +
                         std::to_string(m));
    scales.assign(size_t(m * spr), 0.0f);
    if (asymmetric) zeros.assign(size_t(m * spr), int8_t(0));
    if (q_out) q_out->assign(size_t(m * epr), 0.0f);
    // With a gather (rows) each part is quantized whole into these, then its rows are taken: every
    // scheme quantizes a row on its own, so they are what quantizing only those rows gives.
    std::vector<float> part_q, part_s;
    std::vector<int8_t> part_z;
    int64_t row = 0;                             // rows of the parts so far
    for (size_t i = 0; i < parts.size(); ++i) {  // part by part, so an error names the checkpoint tensor and its row
      const std::string& p = parts[i];
      const StTensor* t = stored[i];  // the checkpoint's own q and scales, or null
      std::vector<float> w;
      if (t && (t->shape.size() != 2 || t->shape[1] != k || (!fp8 && t->group != group) ||
                fp8 != (t->block_scale != nullptr)))
        throw CompileError("internal: pre-quantized '" + p + "' does not fit '" + name + "'");
      if (!t) w = build ? build(fetch) : fetch(p);
      const int64_t n = t ? t->shape[0] : int64_t(w.size()) / k;
      if ((!t && n * k != int64_t(w.size())) || (rows.empty() && row + n > m))
        throw CompileError("internal: parts of '" + name + "' do not fit it");
      float *q = nullptr, *s = nullptr;
      int8_t* z = nullptr;
      if (rows.empty()) {  // straight into the value's rows
        q = q_out ? q_out->data() + row * epr : nullptr;
        s = scales.data() + row * spr;
        z = asymmetric ? zeros.data() + row * spr : nullptr;
      } else {
        if (q_out) part_q.assign(size_t(n * epr), 0.0f);
        part_s.assign(size_t(n * spr), 0.0f);
        part_z.assign(asymmetric ? size_t(n * spr) : 0, int8_t(0));
        q = q_out ? part_q.data() : nullptr;
        s = part_s.data();
        z = asymmetric ? part_z.data() : nullptr;
      }
      if (t) {
        copy_stored(*t, p, n, q, s, z);
      } else {
        quantize_part(w, n, p, q, s, z);
      }
      for (size_t o = 0; o < rows.size(); ++o) {  // the gather: the value's rows among this part's
        const int64_t r = rows[o] - row;
        if (r < 0 || r >= n) continue;
        if (q) std::copy(q + r * epr, q + (r + 1) * epr, q_out->data() + int64_t(o) * epr);
        std::copy(s + r * spr, s + (r + 1) * spr, scales.data() + int64_t(o) * spr);
        if (z) std::copy(z + r * spr, z + (r + 1) * spr, zeros.data() + int64_t(o) * spr);
      }
      row += n;
    }
    if (rows.empty() ? row != m : std::any_of(rows.begin(), rows.end(), [row](int64_t r) { return r < 0 || r >= row; }))
      throw CompileError("internal: parts of '" + name + "' do not fill it");
  }
};

}  // namespace

QuantizeReport quantize_weights(Graph& g, const QuantizeOptions& o) {
  QuantizeReport rep;
  const bool as_shipped = o.scheme.empty() && o.stored;
  if ((o.scheme.empty() && !as_shipped) || o.scheme == "none") return rep;
  if (!o.scheme.empty() && o.scheme != "int8" && o.scheme != "int4" && o.scheme != "fp8")
    throw CompileError("internal: quantize scheme '" + o.scheme + "'");
  // fp8 or int4 asked for, or kept as a checkpoint ships it (FP8 blocks, int4 groups).
  const bool fp8 = o.scheme == "fp8" || (as_shipped && o.stored_fp8);
  const bool int4 = !fp8 && (o.scheme == "int4" || (as_shipped && o.stored_group > 0));
  const bool asym = int4 && (o.asymmetric || (as_shipped && o.stored_asymmetric));
  rep.asymmetric = asym;
  if (o.asymmetric && o.scheme != "int4") throw CompileError("internal: asymmetric " + o.scheme);
  if (int4 && (o.group_size < 0 || o.group_size % kI4GroupMultiple != 0 || o.stored_group % kI4GroupMultiple != 0))
    throw CompileError("internal: int4 group size " + std::to_string(o.group_size));
  const DType qtype = fp8 ? DType::F8E4M3 : int4 ? DType::I4 : DType::I8;
  const std::string kind = fp8 ? "fp8" : int4 ? "int4" : "int8";
  rep.scheme = kind;
  // The group of a weight (0: none fits, or int8). fp8: the block columns (at most k) of its first FP8
  // checkpoint part where it has one, else the checkpoint's FP8 blocks' (stored_fp8_cols), else the whole
  // row. int4: --group-size; the checkpoint's, as shipped or when --quantize int4 gives none; else the
  // largest of 128, 96, 64 and 32 that divides k.
  auto group_for = [&](const Value& v) -> int64_t {
    const int64_t k = v.shape[1];
    if (fp8) {
      if (o.stored)  // the weight's own FP8 parts' blocks, or none fits
        for (const std::string& part : v.weight.parts)
          if (const StTensor* t = o.stored(part); t && t->block_scale)
            return f8_group_fits(k, std::min(t->block_cols, k)) ? std::min(t->block_cols, k) : 0;
      const int64_t g = o.stored_fp8_cols > 0 ? std::min(o.stored_fp8_cols, k) : k;
      return f8_group_fits(k, g) ? g : k;  // (blocks kiln cannot group: one scale a row for the weights it quantizes)
    }
    if (!int4) return 0;
    const int64_t fixed = o.group_size > 0 ? o.group_size : o.stored_group;
    if (fixed > 0) return k % fixed == 0 ? fixed : 0;
    for (int64_t gs = kDefaultInt4Group; gs >= kI4GroupMultiple; gs -= kI4GroupMultiple)
      if (k % gs == 0) return gs;
    return 0;
  };
  // A part keeps its stored q and scales when they are what the plan holds (int8 rows for int8, int4
  // groups of the same size for int4); otherwise it is re-quantized from its dequantized values.
  auto stored_parts = [&](const Value& v) {
    std::vector<const StTensor*> s(v.weight.parts.size(), nullptr);
    // (-1 matches no stored part: not a matrix, or int4 groups that do not fit its rows)
    const int64_t group = v.shape.size() != 2 || ((int4 || fp8) && group_for(v) == 0) ? -1 : group_for(v);
    if (o.stored)
      for (size_t i = 0; i < s.size(); ++i)
        if (const StTensor* t = o.stored(v.weight.parts[i]);
            t && (fp8 ? t->block_scale && group > 0 && std::min(t->block_cols, v.shape[1]) == group
                      : !t->block_scale && t->group == group && (t->row_zero != nullptr) == asym))
          s[i] = t;
    return s;
  };
  // Every use of each value: quantizable only if each is a version 1 matmul's w, a version 1
  // moe_experts' w_gu or w_down (whose partner must be quantizable too: the op takes both or neither),
  // or a version 2 head_matmul's w (DeepSeek's kv_b rows).
  std::vector<int> matmul_uses(g.values.size(), 0), other_uses(g.values.size(), 0);
  std::vector<uint32_t> moe_partner(g.values.size(), kNoTensor);
  for (const GraphProgram& p : g.programs)
    for (const Node& n : p.nodes) {
      // (version 5: version 4's operands and accumulate)
      const bool v4 = n.kernel == &kMoeExpertsOpV4 || n.kernel == &kMoeExpertsOpV5;
      const bool moe = n.kernel == &kMoeExpertsOp || v4;
      if (n.kernel == &kMoeExpertsOp && n.inputs.size() != 6)
        throw CompileError("internal: a moe_experts node without its 6 operands");
      if (v4 && (n.inputs.size() != 12 || n.int_attrs.size() != (n.kernel == &kMoeExpertsOpV4 ? 3u : 4u) ||
                 std::any_of(n.inputs.begin() + 6, n.inputs.begin() + 10, [](uint32_t v) { return v != kNoTensor; })))
        throw CompileError("internal: a moe_experts version 4 or 5 node without its 12 operands, or with scales");
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] != kNoTensor)
          ++((n.kernel == &kMatmulOp && i == 1) || (moe && (i == 3 || i == 4)) ||
                     (n.kernel == &kHeadMatmulOpV2 && i == 1)
                 ? matmul_uses
                 : other_uses)[n.inputs[i]];
      if (moe) {
        moe_partner[n.inputs[3]] = n.inputs[4];
        moe_partner[n.inputs[4]] = n.inputs[3];
      }
      for (uint32_t v : n.outputs)
        if (v != kNoTensor) ++other_uses[v];
    }
  std::map<std::string, int> kept;  // reason → count
  // Checkpoint tensors a quantized value keeps as shipped, and those some value does not (re-quantized, or
  // in the plan dtype): a part counts as kept (rep.stored_parts) when every value taking its rows keeps it.
  std::set<std::string> kept_parts;
  std::map<std::string, std::string>& other_parts = rep.not_kept;  // part → why it is not kept
  // The quantized value whose rows a matmul reads in place of each value, its scales and group (fp8).
  std::vector<uint32_t> i8_of(g.values.size(), kNoTensor), scale_of(g.values.size(), kNoTensor);
  std::vector<int64_t> group_of(g.values.size(), 0);
  std::vector<uint32_t> zero_of(g.values.size(), kNoTensor);  // asymmetric int4: the zero points
  // Makes value id i8 (in place, or as a copy when other ops read the original), with its scales.
  auto quantize = [&](uint32_t id, bool copy) {
    uint32_t q_id = id;
    if (copy) {
      Value c = g.values[id];
      c.name += fp8 ? ".f8" : int4 ? ".i4" : ".i8";
      c.lm_head = false;
      q_id = g.add(std::move(c));
    }
    auto qz = std::make_shared<Quantized>();
    Value& v = g.values[q_id];
    qz->parts = v.weight.build ? std::vector<std::string>{v.name} : v.weight.parts;
    qz->rows = v.weight.rows;
    qz->build = v.weight.build;
    qz->stored = v.weight.build ? std::vector<const StTensor*>{nullptr} : stored_parts(v);
    if (!qz->stored.empty() && std::all_of(qz->stored.begin(), qz->stored.end(), [](const StTensor* t) { return t; }))
      ++rep.as_shipped;
    if (!copy && !v.weight.build)  // (a copy's parts are counted with the value it copies)
      for (size_t i = 0; i < qz->stored.size(); ++i) {
        const std::string& part = qz->parts[i];
        if (qz->stored[i]) kept_parts.insert(part);
        else if (!o.stored || !o.stored(part)) other_parts.emplace(part, "merged with an adapter and re-quantized");
        else
          other_parts.emplace(part, "re-quantized as " + kind + (asym ? " asymmetric" : "") +
                                        (int4 ? " in groups of " + std::to_string(group_for(v)) : std::string()) +
                                        " from their dequantized values (not the checkpoint's scheme)");
      }
    qz->name = v.name;
    qz->m = v.shape[0];
    qz->k = v.shape[1];
    qz->fp8 = fp8;
    qz->group = group_for(v);
    if (int4 || fp8) ++rep.groups[fp8 && qz->group == qz->k ? 0 : qz->group];
    rep.bytes_before += copy ? 0 : v.bytes();
    v.dtype = qtype;
    if (int4) v.shape[1] = qz->k / 2;  // bytes of two values
    v.weight = WeightSource{{}, {}, [qz](const WeightFetch& fetch) {
                              std::vector<float> q;
                              qz->run(fetch, &q);
                              return q;
                            }};
    rep.bytes_after += v.bytes();
    const std::string scale_name = v.name + ".scale";
    const int64_t m = v.shape[0];
    const std::vector<int64_t> s_shape =
        int4 || fp8 ? std::vector<int64_t>{m, qz->scales_per_row()} : std::vector<int64_t>{m};
    const uint32_t s_id =
        g.weight(scale_name, DType::F32, s_shape, WeightSource{{}, {}, [qz](const WeightFetch& fetch) {
                                                                 if (qz->scales.empty()) qz->run(fetch, nullptr);
                                                                 std::vector<float> s = std::move(qz->scales);
                                                                 qz->scales.clear();
                                                                 return s;
                                                               }});
    rep.bytes_after += g.values[s_id].bytes();
    if (asym) {
      qz->asymmetric = true;
      const uint32_t z_id = g.weight(v.name + ".zero", DType::I8, s_shape,
                                     WeightSource{{}, {}, [qz](const WeightFetch& fetch) {
                                                    if (qz->zeros.empty()) qz->run(fetch, nullptr);
                                                    std::vector<float> z(qz->zeros.begin(), qz->zeros.end());
                                                    qz->zeros.clear();
                                                    return z;
                                                  }});
      rep.bytes_after += g.values[z_id].bytes();
      zero_of[id] = z_id;
    }
    i8_of[id] = q_id;
    scale_of[id] = s_id;
    group_of[id] = qz->group;
    ++rep.quantized;
  };
  // Why value id stays in the plan dtype ("" when it is quantized).
  auto why_kept = [&](uint32_t id) {
    std::string why;
    {
      const Value& v = g.values[id];
      const std::vector<const StTensor*> st = stored_parts(v);
      const bool all_stored = !st.empty() && std::all_of(st.begin(), st.end(), [](const StTensor* t) { return t; });
      if (v.region != Region::kWeights || !dtype_is_float(v.dtype) || v.shape.size() != 2) why = "not a float weight";
      else if (v.weight.build ? !v.weight.layout_only : v.weight.parts.empty())
        why = "computed by the compiler, not checkpoint rows";
      else if (v.lm_head && !o.head && !all_stored)  // a head the checkpoint ships quantized stays so
        why = as_shipped ? "the LM head (not pre-quantized; --quantize " + kind + " --quantize-head quantizes it)"
                         : "the LM head (--quantize-head quantizes it)";
      else if (v.gate && !all_stored)  // (one that ships quantized stays so)
        why = "a gate (Qwen2-MoE's shared_expert_gate: kept in the plan dtype, as the routers)";
      else if (as_shipped && !all_stored)
        why = std::any_of(st.begin(), st.end(), [](const StTensor* t) { return t; })
                  ? "partly pre-quantized in the checkpoint or partly changed by an adapter (--quantize " + kind +
                        " quantizes the rest)"
                  : "not pre-quantized in the checkpoint, or changed by an adapter (--quantize " + kind +
                        " quantizes it)";
      else if (other_uses[id] > 0 && !v.lm_head) why = "read by other ops too";
      else if (fp8 && group_for(v) == 0)
        why =
            "FP8 blocks whose columns are not a multiple of " + std::to_string(kF8GroupMultiple) + " or the whole row";
      else if (int4 && group_for(v) == 0)
        why = o.group_size > 0 ? "weights whose rows are not a whole number of int4 groups (--group-size " +
                                     std::to_string(o.group_size) + ")"
              : o.stored_group > 0 ? "weights whose rows are not a whole number of the checkpoint's int4 groups of " +
                                         std::to_string(o.stored_group)
                                   : std::string("weights whose rows are not a multiple of 32 values (int4 groups)");
    }
    return why;
  };
  // Every decision before any weight changes (quantize() rewrites values and may grow g.values).
  const size_t n_values = g.values.size();
  std::vector<std::string> whys(n_values);
  for (uint32_t id = 0; id < n_values; ++id)
    if (matmul_uses[id] > 0) whys[id] = why_kept(id);
  for (uint32_t id = 0; id < n_values; ++id) {
    if (matmul_uses[id] == 0) continue;
    std::string why = whys[id];
    if (why.empty() && moe_partner[id] != kNoTensor && !whys[moe_partner[id]].empty())
      why = "MoE expert weights whose partner (w_gu or w_down) is not quantized (" + whys[moe_partner[id]] + ")";
    if (!why.empty()) {
      ++kept[why];
      for (const std::string& part : g.values[id].weight.parts) other_parts.emplace(part, "dequantized (" + why + ")");
      continue;
    }
    // A tied LM head with --quantize-head: an i8 copy for the head, the embedding keeps its rows.
    quantize(id, other_uses[id] > 0);
    if (other_uses[id] > 0) rep.tied_head_copy = true;
  }
  for (const std::string& p : kept_parts) rep.stored_parts += other_parts.count(p) == 0;
  for (GraphProgram& p : g.programs)
    for (Node& n : p.nodes)
      if (n.kernel == &kMatmulOp && n.inputs.size() != 4)
        throw CompileError("internal: a matmul node without its 4 operands");
      else if (n.kernel == &kMatmulOp && scale_of[n.inputs[1]] != kNoTensor) {
        n.kernel = fp8 ? &kMatmulOpV3 : asym ? &kMatmulOpV4 : &kMatmulOpV2;
        if (fp8) n.int_attrs.push_back(group_of[n.inputs[1]]);
        n.inputs.push_back(scale_of[n.inputs[1]]);
        if (asym) n.inputs.push_back(zero_of[n.inputs[1]]);
        n.inputs[1] = i8_of[n.inputs[1]];
      } else if (n.kernel == &kHeadMatmulOpV2 && scale_of[n.inputs[1]] != kNoTensor) {
        if (n.inputs.size() != 5 || n.int_attrs.size() != 3)
          throw CompileError("internal: a head_matmul node without its 5 operands and 3 attributes");
        n.int_attrs[2] = group_of[n.inputs[1]];  // (i8: 0, one scale a row)
        n.inputs[3] = scale_of[n.inputs[1]];
        n.inputs[4] = asym ? zero_of[n.inputs[1]] : kNoTensor;
        n.inputs[1] = i8_of[n.inputs[1]];
      } else if ((n.kernel == &kMoeExpertsOp || n.kernel == &kMoeExpertsOpV4 || n.kernel == &kMoeExpertsOpV5) &&
                 scale_of[n.inputs[3]] != kNoTensor) {
        if (scale_of[n.inputs[4]] == kNoTensor)
          throw CompileError("internal: one MoE expert weight quantized: " + g.values[n.inputs[3]].name + ", not " +
                             g.values[n.inputs[4]].name);
        if (n.kernel != &kMoeExpertsOp) {  // (versions 4-5: the scales and zero points in their places, the rest kept)
          n.int_attrs[0] = group_of[n.inputs[3]];
          n.int_attrs[1] = group_of[n.inputs[4]];
          n.inputs[6] = scale_of[n.inputs[3]];
          n.inputs[7] = scale_of[n.inputs[4]];
          if (asym) {
            n.inputs[8] = zero_of[n.inputs[3]];
            n.inputs[9] = zero_of[n.inputs[4]];
          }
          n.inputs[3] = i8_of[n.inputs[3]];
          n.inputs[4] = i8_of[n.inputs[4]];
          continue;
        }
        n.kernel = asym ? &kMoeExpertsOpV3 : &kMoeExpertsOpV2;
        n.int_attrs = {group_of[n.inputs[3]], group_of[n.inputs[4]]};  // (i8: 0, one scale a row)
        n.inputs.push_back(scale_of[n.inputs[3]]);
        n.inputs.push_back(scale_of[n.inputs[4]]);
        if (asym) {
          n.inputs.push_back(zero_of[n.inputs[3]]);
          n.inputs.push_back(zero_of[n.inputs[4]]);
        }
        n.inputs[3] = i8_of[n.inputs[3]];
        n.inputs[4] = i8_of[n.inputs[4]];
      }
  for (const auto& [why, count] : kept)
    rep.kept += (rep.kept.empty() ? "" : ", ") + (count == 1 ? std::string() : std::to_string(count) + " ") + why;
  return rep;
}

}  // namespace kiln
