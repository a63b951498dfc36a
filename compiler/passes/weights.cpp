#include "compiler/passes/weights.h"

#include <cmath>
#include <cstring>

#include "compiler/error.h"

namespace kiln {

namespace {

// n f32 values stored as `to` (f16: a finite value that would round to infinity, |x| >= 65520, is a
// CompileError naming the weight and the way out).
void store_f32_as(const float* f, DType to, uint8_t* dst, uint64_t n, const std::string& what) {
  if (to == DType::F16)
    for (uint64_t i = 0; i < n; ++i)
      if (std::isfinite(f[i]) && std::fabs(f[i]) >= 65520.0f)
        throw CompileError("cannot store '" + what + "' in f16: it holds " + short_float(f[i]) +
                           ", beyond f16's range (±65504); --dtype bf16 or f32 keeps it");
  convert_f32_to(f, to, dst, n);
}

// Converts n elements between float dtypes; a straight copy when they match.
void cast_into(const void* src, DType from, uint8_t* dst, DType to, uint64_t n, const std::string& what) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  constexpr uint64_t kBlock = 4096;
  float buf[kBlock];
  for (uint64_t i = 0; i < n; i += kBlock) {
    const uint64_t m = std::min(kBlock, n - i);
    convert_to_f32(static_cast<const uint8_t*>(src) + i * dtype_size(from), from, buf, m);
    store_f32_as(buf, to, dst + i * dtype_size(to), m, what);
  }
}

}  // namespace

std::vector<float> gather_rows(const std::vector<float>& all, int64_t cols, const std::vector<int64_t>& rows,
                               const std::string& what) {
  if (cols <= 0 || all.size() % uint64_t(cols) != 0)
    throw CompileError("internal: the parts of '" + what + "' are not rows of " + std::to_string(cols));
  const int64_t n = int64_t(all.size()) / cols;
  std::vector<float> out;
  out.reserve(rows.size() * size_t(cols));
  for (int64_t r : rows) {
    if (r < 0 || r >= n)
      throw CompileError("internal: '" + what + "' takes row " + std::to_string(r) + " of " + std::to_string(n));
    out.insert(out.end(), all.begin() + r * cols, all.begin() + (r + 1) * cols);
  }
  return out;
}

void materialize_weight(const Value& v, const Checkpoint& ck, const LoraSet& lora, ThreadPool& pool,
                        std::vector<uint8_t>& out) {
  out.resize(v.bytes());
  const WeightFetch fetch = [&](const std::string& name) {
    const StTensor* t = lora.replacement(name);
    if (!t) t = ck.find(name);
    if (!t) throw CompileError("missing tensor '" + name + "'");
    std::vector<float> w(size_t(t->numel()));
    read_f32(*t, w.data());
    if (lora.touches(name)) lora.apply(name, w, pool);
    return w;
  };
  if (v.weight.build || !v.weight.rows.empty()) {
    std::vector<float> f;
    if (v.weight.build) {
      f = v.weight.build(fetch);
    } else {  // rows of the parts concatenated
      for (const std::string& p : v.weight.parts) {
        const std::vector<float> part = fetch(p);
        f.insert(f.end(), part.begin(), part.end());
      }
      int64_t cols = 1;  // (the values of one row)
      for (size_t d = 1; d < v.shape.size(); ++d) cols *= v.shape[d];
      f = gather_rows(f, cols, v.weight.rows, v.name);
    }
    if (f.size() * dtype_size(v.dtype) != out.size())
      throw CompileError("internal: '" + v.name + "' built the wrong size");
    store_f32_as(f.data(), v.dtype, out.data(), f.size(), v.name);
    return;
  }
  if (v.weight.parts.empty()) {
    if (v.weight.constant.size() * sizeof(float) != out.size() || v.dtype != DType::F32)
      throw CompileError("internal: constant '" + v.name + "' has the wrong size");
    std::memcpy(out.data(), v.weight.constant.data(), out.size());
    return;
  }
  uint64_t at = 0;
  for (const std::string& name : v.weight.parts) {
    const StTensor* t = lora.replacement(name);  // a modules_to_save copy replaces the tensor
    if (!t) t = ck.find(name);
    if (!t) throw CompileError("missing tensor '" + name + "'");
    const uint64_t n = uint64_t(t->numel());
    const uint64_t bytes = n * dtype_size(v.dtype);
    if (at + bytes > out.size()) throw CompileError("internal: parts of '" + v.name + "' overflow it");
    if (lora.touches(name) || t->dequantized_on_read()) {  // through f32: a merge, or a dequantization
      std::vector<float> w(n);
      read_f32(*t, w.data());
      if (lora.touches(name)) lora.apply(name, w, pool);
      store_f32_as(w.data(), v.dtype, out.data() + at, n, name);
    } else {
      cast_into(t->data, t->dtype, out.data() + at, v.dtype, n, name);
    }
    at += bytes;
  }
  if (at != out.size()) throw CompileError("internal: parts of '" + v.name + "' do not fill it");
}

}  // namespace kiln
