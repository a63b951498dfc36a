#include "compiler/passes/quantize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "kernels/matmul.h"
#include "kernels/op.h"

namespace kiln {

void quantize_rows_int8(const float* w, int64_t m, int64_t k, int8_t* q, float* scale, const std::string& what) {
  for (int64_t j = 0; j < m; ++j) {
    const float* row = w + j * k;
    float amax = 0.0f;
    for (int64_t i = 0; i < k; ++i) {
      if (!std::isfinite(row[i]))
        throw CompileError("cannot quantize '" + what + "': row " + std::to_string(j) + " has a non-finite value (" +
                           std::to_string(row[i]) + ")");
      amax = std::max(amax, std::fabs(row[i]));
    }
    const float s = amax / 127.0f;
    scale[j] = s;
    for (int64_t i = 0; i < k; ++i)
      q[j * k + i] = s == 0.0f ? int8_t(0) : int8_t(std::min(127.0f, std::max(-127.0f, std::nearbyint(row[i] / s))));
  }
}

std::string parse_quantize(const std::string& s) {
  if (s.empty() || s == "none" || s == "int8") return s;
  if (s == "int4" || s == "fp8")
    throw CompileError("--quantize " + s + " is not supported yet; int8 is (per-row weight-only)");
  throw CompileError("--quantize '" + s + "' is not one of int8, none");
}

namespace {

// One quantized weight: its checkpoint parts, concatenated along dim 0 (LoRA merged by fetch),
// quantized when its i8 bytes are written; the scales are kept for its scale tensor.
struct Quantized {
  std::vector<std::string> parts;
  std::vector<const StTensor*> stored;  // per part: its pre-quantized rows, or null
  std::string name;
  int64_t m = 0, k = 0;
  std::vector<float> scales;  // filled by the first build that needs them

  void run(const WeightFetch& fetch, std::vector<float>* q_out) {
    scales.assign(size_t(m), 0.0f);
    if (q_out) q_out->assign(size_t(m * k), 0.0f);
    int64_t row = 0;
    for (size_t i = 0; i < parts.size(); ++i) {  // part by part, so an error names the checkpoint tensor and its row
      const std::string& p = parts[i];
      if (const StTensor* t = stored[i]) {  // the checkpoint's own q and scales
        if (t->shape.size() != 2 || t->shape[1] != k || row + t->shape[0] > m)
          throw CompileError("internal: pre-quantized '" + p + "' does not fit '" + name + "'");
        const int64_t rows = t->shape[0];
        std::copy(t->row_scale, t->row_scale + rows, scales.begin() + row);
        if (q_out)
          for (int64_t r = 0; r < rows; ++r) quantized_q(*t, r, q_out->data() + (row + r) * k);
        row += rows;
        continue;
      }
      const std::vector<float> w = fetch(p);
      const int64_t rows = int64_t(w.size()) / k;
      if (rows * k != int64_t(w.size()) || row + rows > m)
        throw CompileError("internal: parts of '" + name + "' do not fit it");
      std::vector<int8_t> q(w.size());
      quantize_rows_int8(w.data(), rows, k, q.data(), scales.data() + row, p);
      if (q_out) std::copy(q.begin(), q.end(), q_out->begin() + row * k);
      row += rows;
    }
    if (row != m) throw CompileError("internal: parts of '" + name + "' do not fill it");
  }
};

}  // namespace

QuantizeReport quantize_weights(Graph& g, const QuantizeOptions& o) {
  QuantizeReport rep;
  const bool as_shipped = o.scheme.empty() && o.stored_int8;
  if ((o.scheme.empty() && !as_shipped) || o.scheme == "none") return rep;
  if (!o.scheme.empty() && o.scheme != "int8") throw CompileError("internal: quantize scheme '" + o.scheme + "'");
  auto stored_parts = [&](const Value& v) {
    std::vector<const StTensor*> s(v.weight.parts.size(), nullptr);
    if (o.stored_int8)
      for (size_t i = 0; i < s.size(); ++i) s[i] = o.stored_int8(v.weight.parts[i]);
    return s;
  };
  // Every use of each value: quantizable only if each is a version 1 matmul's w.
  std::vector<int> matmul_uses(g.values.size(), 0), other_uses(g.values.size(), 0);
  for (const GraphProgram& p : g.programs)
    for (const Node& n : p.nodes) {
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] != kNoTensor) ++(n.kernel == &kMatmulOp && i == 1 ? matmul_uses : other_uses)[n.inputs[i]];
      for (uint32_t v : n.outputs)
        if (v != kNoTensor) ++other_uses[v];
    }
  std::map<std::string, int> kept;  // reason → count
  // The i8 value whose rows a matmul reads in place of each value, and its scales.
  std::vector<uint32_t> i8_of(g.values.size(), kNoTensor), scale_of(g.values.size(), kNoTensor);
  // Makes value id i8 (in place, or as a copy when other ops read the original), with its scales.
  auto quantize = [&](uint32_t id, bool copy) {
    uint32_t q_id = id;
    if (copy) {
      Value c = g.values[id];
      c.name += ".i8";
      c.lm_head = false;
      q_id = g.add(std::move(c));
    }
    auto qz = std::make_shared<Quantized>();
    Value& v = g.values[q_id];
    qz->parts = v.weight.parts;
    qz->stored = stored_parts(v);
    if (!qz->stored.empty() && std::all_of(qz->stored.begin(), qz->stored.end(), [](const StTensor* t) { return t; }))
      ++rep.as_shipped;
    if (!copy)  // (a copy's parts are counted with the value it copies)
      for (const StTensor* t : qz->stored) rep.stored_parts += t != nullptr;
    qz->name = v.name;
    qz->m = v.shape[0];
    qz->k = v.shape[1];
    rep.bytes_before += copy ? 0 : v.bytes();
    v.dtype = DType::I8;
    v.weight = WeightSource{{}, {}, [qz](const WeightFetch& fetch) {
                              std::vector<float> q;
                              qz->run(fetch, &q);
                              return q;
                            }};
    rep.bytes_after += v.bytes();
    const std::string scale_name = v.name + ".scale";
    const int64_t m = v.shape[0];
    const uint32_t s_id = g.weight(scale_name, DType::F32, {m}, WeightSource{{}, {}, [qz](const WeightFetch& fetch) {
                                                                               if (qz->scales.empty())
                                                                                 qz->run(fetch, nullptr);
                                                                               std::vector<float> s =
                                                                                   std::move(qz->scales);
                                                                               qz->scales.clear();
                                                                               return s;
                                                                             }});
    rep.bytes_after += g.values[s_id].bytes();
    i8_of[id] = q_id;
    scale_of[id] = s_id;
    ++rep.quantized;
  };
  const size_t n_values = g.values.size();
  for (uint32_t id = 0; id < n_values; ++id) {
    if (matmul_uses[id] == 0) continue;
    const char* why = nullptr;
    {  // (quantize() below may grow g.values: no reference into it outlives this block)
      const Value& v = g.values[id];
      const std::vector<const StTensor*> st = stored_parts(v);
      const bool all_stored = !st.empty() && std::all_of(st.begin(), st.end(), [](const StTensor* t) { return t; });
      if (v.region != Region::kWeights || !dtype_is_float(v.dtype) || v.shape.size() != 2) why = "not a float weight";
      else if (v.weight.parts.empty() || v.weight.build) why = "computed by the compiler, not checkpoint rows";
      else if (v.lm_head && !o.head && !all_stored)  // a head the checkpoint ships int8 stays int8
        why = as_shipped ? "the LM head (not pre-quantized; --quantize int8 --quantize-head quantizes it)"
                         : "the LM head (--quantize-head quantizes it)";
      else if (as_shipped && !all_stored)
        why = std::any_of(st.begin(), st.end(), [](const StTensor* t) { return t; })
                  ? "partly pre-quantized in the checkpoint or partly changed by an adapter (--quantize int8 "
                    "quantizes the rest)"
                  : "not pre-quantized in the checkpoint, or changed by an adapter (--quantize int8 quantizes it)";
      else if (other_uses[id] > 0 && !v.lm_head) why = "read by other ops too";
    }
    if (why) {
      ++kept[why];
      continue;
    }
    // A tied LM head with --quantize-head: an i8 copy for the head, the embedding keeps its rows.
    quantize(id, other_uses[id] > 0);
    if (other_uses[id] > 0) rep.tied_head_copy = true;
  }
  for (GraphProgram& p : g.programs)
    for (Node& n : p.nodes)
      if (n.kernel == &kMatmulOp && n.inputs.size() != 4)
        throw CompileError("internal: a matmul node without its 4 operands");
      else if (n.kernel == &kMatmulOp && scale_of[n.inputs[1]] != kNoTensor) {
        n.kernel = &kMatmulOpV2;
        n.inputs.push_back(scale_of[n.inputs[1]]);
        n.inputs[1] = i8_of[n.inputs[1]];
      }
  for (const auto& [why, count] : kept)
    rep.kept += (rep.kept.empty() ? "" : ", ") + (count == 1 ? std::string() : std::to_string(count) + " ") + why;
  return rep;
}

}  // namespace kiln
