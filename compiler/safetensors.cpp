#include "compiler/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "compiler/error.h"
#include "compiler/json_util.h"
#include "runtime/mapped_file.h"
#include "schema/plan_types.h"

namespace kiln {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100ull * 1000 * 1000;  // as the reference implementation
constexpr size_t kMaxNameBytes = 4096;                 // far above any real tensor name

struct StDtype {
  const char* name;
  int size;
  bool kiln;
  DType dtype;
};
constexpr StDtype kStDtypes[] = {
    {"F32", 4, true, DType::F32},   {"BF16", 2, true, DType::BF16},    {"F16", 2, true, DType::F16},
    {"I32", 4, true, DType::I32},   {"I64", 8, true, DType::I64},      {"F64", 8, false, DType::F32},
    {"I8", 1, false, DType::F32},   {"U8", 1, false, DType::F32},      {"I16", 2, false, DType::F32},
    {"U16", 2, false, DType::F32},  {"U32", 4, false, DType::F32},     {"U64", 8, false, DType::F32},
    {"BOOL", 1, false, DType::F32}, {"F8_E4M3", 1, false, DType::F32}, {"F8_E5M2", 1, false, DType::F32},
};

const StDtype* find_dtype(const std::string& s) {
  for (const StDtype& d : kStDtypes)
    if (s == d.name) return &d;
  return nullptr;
}

[[noreturn]] void fail(const std::string& file, const std::string& msg) { throw CompileError(file + ": " + msg); }

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
// Symlinked shards are normal in a hub cache (snapshots/<rev>/x -> ../../blobs/<hash>), so a
// link may leave the folder itself but must stay inside the folder's grandparent tree (the
// cache entry); anything resolving elsewhere is refused.
bool index_links_ok(const std::string& resolved, const std::string& root) {
  if (resolved.empty()) return false;
  if (resolved.compare(0, root.size(), root) == 0) return true;
  const size_t a = root.find_last_of('/', root.size() - 2);
  const size_t b = a == std::string::npos ? std::string::npos : root.find_last_of('/', a - 1);
  const size_t c = b == std::string::npos ? std::string::npos : root.find_last_of('/', b - 1);
  if (c == std::string::npos || c == 0) return false;
  const std::string cache = root.substr(0, c + 1);  // .../models--org--name/
  return root.find("/snapshots/") != std::string::npos && resolved.compare(0, cache.size(), cache) == 0;
}

}  // namespace

// Something is at p: a file, or something else (a FIFO, a folder) that opening refuses by name
// rather than as if it were absent.
bool path_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
bool path_is_dir(const std::string& p) { return is_dir(p); }

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const char* dtype_to_safetensors(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::BF16:
      return "BF16";
    case DType::F16:
      return "F16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::I8:
      return "I8";
    case DType::I4:  // packed bytes, two values each
      return "U8";
    case DType::F8E4M3:
      return "F8_E4M3";
  }
  return "?";
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped.is_ok()) throw CompileError(mapped.status().message());
  return parse(mapped.take(), path);
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::from_memory(const void* data, size_t size, const std::string& name) {
  return parse(MappedFile::borrow(data, size, name), name);
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(std::unique_ptr<MappedFile> file, const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->file_ = std::move(file);
  const uint8_t* d = f->file_->data();
  const uint64_t size = f->file_->size();
  if (size < 8)
    fail(path, "file is " + std::to_string(size) + " bytes, too short for a safetensors header (truncated?)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | d[i];
  if (hlen > kMaxHeader) fail(path, "header length " + std::to_string(hlen) + " exceeds the 100 MB limit");
  if (hlen > size - 8)
    fail(path, "header length " + std::to_string(hlen) + " runs past the end of the " + std::to_string(size) +
                   "-byte file (truncated?)");
  std::set<std::string> top_keys;
  std::string duplicate;
  // nlohmann validates UTF-8 while parsing and throws on invalid sequences. It keeps the last
  // of duplicate keys silently, so the key callback records top-level keys to catch them.
  const char* hb = reinterpret_cast<const char*>(d + 8);
  json h = parse_json_limited(hb, hb + hlen, path + " (header)", [&](int depth, const std::string& key) {
    if (depth == 1 && !top_keys.insert(key).second) duplicate = key;
  });
  if (!duplicate.empty()) fail(path, "tensor '" + duplicate + "' appears twice in the header");
  if (!h.is_object()) fail(path, "header is not a JSON object");
  const uint64_t data_size = size - 8 - hlen;
  const uint8_t* base = d + 8 + hlen;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(path, "__metadata__ value '" + m.key() + "' is not a string");
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const json& t = *it;
    if (name.size() > kMaxNameBytes)
      fail(path, "a tensor name is " + std::to_string(name.size()) + " bytes long (the limit is " +
                     std::to_string(kMaxNameBytes) + ")");
    const std::string where = "tensor '" + name + "'";
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
      fail(path, where + " needs dtype, shape and data_offsets");
    if (!t["dtype"].is_string()) fail(path, where + ": dtype is not a string");
    StTensor st;
    st.name = name;
    st.file = path;
    st.st_dtype = t["dtype"].get<std::string>();
    const StDtype* dt = find_dtype(st.st_dtype);
    if (!dt) fail(path, where + " has unknown dtype '" + st.st_dtype + "'");
    st.has_dtype = dt->kiln;
    st.dtype = dt->dtype;
    if (!t["shape"].is_array()) fail(path, where + ": shape is not an array");
    uint64_t bytes = uint64_t(dt->size);
    for (const json& v : t["shape"]) {
      if (!v.is_number_unsigned()) fail(path, where + ": shape has a non-integer or negative dimension");
      uint64_t dim = v.get<uint64_t>();
      if (dim > (uint64_t(1) << 48) || (dim != 0 && bytes > UINT64_MAX / dim))
        fail(path, where + ": shape is too large");
      bytes *= dim;
      st.shape.push_back(int64_t(dim));
    }
    const json& off = t["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + ": data_offsets must be two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      fail(path, where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + ") lie outside the " +
                     std::to_string(data_size) + "-byte data section (truncated?)");
    if (e - b != bytes)
      fail(path, where + ": byte range of " + std::to_string(e - b) +
                     " does not match shape × dtype size = " + std::to_string(bytes));
    st.data = base + b;
    st.size = bytes;
    ranges.emplace_back(b, e);
    if (!f->tensors_.emplace(name, std::move(st)).second) fail(path, where + " appears twice");
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (const auto& r : ranges) {
    if (r.first < cursor) fail(path, "tensor byte ranges overlap");
    if (r.first > cursor) fail(path, "tensor byte ranges leave a gap (data_offsets are not contiguous)");
    cursor = r.second;
  }
  if (cursor != data_size)
    fail(path,
         "data section is " + std::to_string(data_size) + " bytes but the tensors cover " + std::to_string(cursor));
  return f;
}

Checkpoint Checkpoint::from_file(std::unique_ptr<SafetensorsFile> file) {
  Checkpoint ck;
  ck.files_.push_back(std::move(file));
  for (const auto& kv : ck.files_.back()->tensors()) ck.all_.emplace(kv.first, &kv.second);
  return ck;
}

Checkpoint Checkpoint::open_dir(const std::string& dir, const std::string& stem) {
  if (!is_dir(dir)) throw CompileError(dir + ": not a directory");
  Checkpoint ck;
  const std::string index = dir + "/" + stem + ".safetensors.index.json";
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  // A folder with both: transformers reads the single file (stem "model"), diffusers the index
  // (is_sharded whenever diffusion_pytorch_model.safetensors.index.json exists).
  if (path_exists(dir + "/" + stem + ".safetensors") && (stem == "model" || !path_exists(index))) {
    files.push_back(stem + ".safetensors");
  } else if (path_exists(index)) {
    const json j = read_json_file(index);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw CompileError(index + ": has no weight_map object");
    std::set<std::string> seen;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw CompileError(index + ": weight_map entry '" + it.key() + "' is not a file name");
      const std::string shard = it->get<std::string>();
      if (shard.find('\0') != std::string::npos)
        throw CompileError(index + ": shard path for '" + it.key() +
                           "' holds a NUL byte: it must be a plain file name");
      if (shard.empty() || shard == "." || shard == ".." ||
          shard.find('/') != std::string::npos)  // (model..00003.safetensors is a plain name)
        throw CompileError(index + ": shard path '" + shard + "' must be a plain file name inside the model folder");
      weight_map[it.key()] = shard;
      if (seen.insert(shard).second) files.push_back(shard);
    }
  } else {
    const std::string bin = stem == "model" ? "pytorch_model" : stem;
    bool has_bin = path_exists(dir + "/" + bin + ".bin") || path_exists(dir + "/" + bin + ".bin.index.json");
    bool has_variant = path_exists(dir + "/" + stem + ".fp16.safetensors");
    throw CompileError(dir + ": no " + stem + ".safetensors or " + stem + ".safetensors.index.json" +
                       std::string(has_bin ? " (pickle checkpoints are not read: convert them to safetensors)" : "") +
                       std::string(has_variant ? " (only the fp16 variant is present: rename " + stem +
                                                     ".fp16.safetensors to " + stem + ".safetensors to use it)"
                                               : ""));
  }
  char* real_dir = ::realpath(dir.c_str(), nullptr);
  const std::string root = real_dir ? std::string(real_dir) + "/" : dir + "/";
  std::free(real_dir);
  for (const std::string& name : files) {
    const std::string path = dir + "/" + name;
    if (!path_exists(path)) throw CompileError(path + ": shard listed in the index is missing");
    // A shard may be a symlink (the hub cache uses them), but it must not lead outside the folder's tree.
    char* real = ::realpath(path.c_str(), nullptr);
    const std::string resolved = real ? real : "";
    std::free(real);
    if (!index_links_ok(resolved, root))
      throw CompileError(path + ": resolves to '" + resolved + "', outside the model folder");
    ck.files_.push_back(SafetensorsFile::open(path));
    for (const auto& kv : ck.files_.back()->tensors()) {
      if (!ck.all_.emplace(kv.first, &kv.second).second)
        throw CompileError(path + ": tensor '" + kv.first + "' also appears in " + ck.all_[kv.first]->file);
    }
  }
  for (const auto& kv : weight_map) {
    auto it = ck.all_.find(kv.first);
    if (it == ck.all_.end())
      throw CompileError(dir + "/" + kv.second + ": tensor '" + kv.first +
                         "' listed in the index is missing from the shard");
    if (it->second->file != dir + "/" + kv.second)
      throw CompileError(index + ": tensor '" + kv.first + "' is mapped to " + kv.second + " but found in " +
                         it->second->file);
  }
  if (!weight_map.empty())
    for (const auto& kv : ck.all_)
      if (!weight_map.count(kv.first))
        throw CompileError(kv.second->file + ": tensor '" + kv.first + "' is not listed in the index");
  return ck;
}

void Checkpoint::absorb(Checkpoint&& other, const std::string& prefix,
                        const std::function<std::string(const std::string&)>& rename) {
  for (auto& f : other.files_) files_.push_back(std::move(f));
  for (const auto& kv : other.all_) {
    const std::string name = rename ? rename(kv.first) : kv.first;
    if (name.empty()) continue;
    if (!all_.emplace(prefix + name, kv.second).second)
      throw CompileError(kv.second->file + ": tensor '" + prefix + kv.first + "' appears twice");
  }
  other.all_.clear();
}

void quantized_q(const StTensor& t, int64_t r, float* out) {
  if (t.gptq_bits) {  // column-major words; consecutive rows read adjacent words (cache lines reused)
    const int bits = t.gptq_bits, per_word = 32 / bits, offset = 1 << (bits - 1);
    const uint32_t mask = (1u << bits) - 1u;
    const uint64_t rows = uint64_t(t.shape[0]);
    for (int64_t c = 0; c < t.shape[1]; ++c) {
      uint32_t word;
      std::memcpy(&word, t.data + (uint64_t(c / per_word) * rows + uint64_t(r)) * 4, 4);
      out[c] = float(int((word >> (bits * (c % per_word))) & mask) - offset);
    }
    return;
  }
  const uint8_t* row = t.data + uint64_t(r) * t.row_bytes;
  if (t.group > 0)
    for (int64_t c = 0; c < t.shape[1]; ++c) out[c] = float(int((row[c / 2] >> (4 * (c % 2))) & 15u) - 8);
  else
    for (int64_t c = 0; c < t.shape[1]; ++c) out[c] = float(int8_t(uint8_t(row[c] ^ 0x80u)));
}

namespace {

// Each of n values rounded to a 16-bit scale dtype (compressed-tensors dequantizes in the scale's dtype);
// f32 scales leave them as they are.
void round_to_scale_dtype(DType t, float* o, int64_t n) {
  if (t == DType::BF16)
    for (int64_t c = 0; c < n; ++c) o[c] = bf16_to_f32(f32_to_bf16(o[c]));
  else if (t == DType::F16)
    for (int64_t c = 0; c < n; ++c) o[c] = f16_to_f32(f32_to_f16(o[c]));
}

// The n scales of s in f32, each finite and positive, else a CompileError through bad:
// "has <label> <value> for <where(i)> (scales must be finite and positive)". With `signed_ok`, finite and
// nonzero (GPTQ's symmetric scales take the sign of a group's largest value, to use all of [-8, 7]; its
// writers give an all-zero group a nonzero scale (AutoGPTQ 2/15, AutoRound a floor), so a zero one is
// not theirs). max_code: the largest magnitude its codes can take (q, or q − zero point; an FP8 code's
// value): a scale that times it overflows the scale's dtype would dequantize weights to infinity (and
// the logits to NaN), so it is refused too.
template <typename Bad, typename Where>
std::unique_ptr<std::vector<float>> positive_scales(const StTensor& s, size_t n, const char* label, const Bad& bad,
                                                    const Where& where, float max_code, bool signed_ok = false) {
  auto v = std::make_unique<std::vector<float>>(n);
  convert_to_f32(s.data, s.dtype, v->data(), uint64_t(n));
  for (size_t i = 0; i < n; ++i) {
    const float x = (*v)[i];
    if (!std::isfinite(x) || (signed_ok ? x == 0.0f : x <= 0.0f))
      bad(std::string("has ") + label + " " + std::to_string(x) + " for " + where(i) +
          (signed_ok ? " (scales must be finite and nonzero)" : " (scales must be finite and positive)"));
    // (in the scale's dtype, where compressed-tensors dequantizes and kiln's --quantize none does)
    float product = x * max_code;
    round_to_scale_dtype(s.dtype, &product, 1);
    if (!std::isfinite(product))
      bad(std::string("has ") + label + " " + short_float(x) + " for " + where(i) +
          ": times its codes' largest magnitude (" + std::to_string(int(max_code)) + ") it overflows " +
          dtype_name(s.dtype) + ", so its weights would dequantize to infinity");
  }
  return v;
}

}  // namespace

void refuse_fp8_nan_codes(const StTensor& t, uint64_t nan_codes) {
  if (nan_codes > 0)
    throw CompileError(t.file + ": FP8 weight '" + t.name + "' holds " + std::to_string(nan_codes) + " NaN codes");
}

namespace {

// The 16 FP4 (e2m1) values, by code (sign in bit 3).
constexpr float kFp4Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                  -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

}  // namespace

void read_f32(const StTensor& t, float* out) {
  if (t.mx_scale) {  // 32 values a group, two a byte: fp4 · 2^(e − 127), exact in f32
    const int64_t groups = t.numel() / 32;
    for (int64_t g = 0; g < groups; ++g) {
      const float s = std::ldexp(1.0f, int(t.mx_scale[g]) - 127);
      const uint8_t* in = t.data + g * 16;
      float* o = out + g * 32;
      for (int i = 0; i < 16; ++i) {
        o[2 * i] = kFp4Values[in[i] & 15u] * s;
        o[2 * i + 1] = kFp4Values[in[i] >> 4] * s;
      }
    }
    return;
  }
  if (t.block_scale) {
    const int64_t rows = t.shape[0], cols = t.shape[1], grid_cols = (cols + t.block_cols - 1) / t.block_cols;
    uint64_t nan_codes = 0;  // (counted in the same pass)
    for (int64_t r = 0; r < rows; ++r) {
      const float* srow = t.block_scale + (r / t.block_rows) * grid_cols;
      const uint8_t* in = t.data + r * cols;
      float* o = out + r * cols;
      for (int64_t b = 0; b < grid_cols; ++b) {  // one scale per block of columns
        const float s = srow[b];
        const int64_t end = std::min(cols, (b + 1) * t.block_cols);
        for (int64_t c = b * t.block_cols; c < end; ++c) {
          o[c] = f8e4m3_value(in[c]) * s;
          nan_codes += is_fp8_nan_code(in[c]);
        }
      }
      round_to_scale_dtype(t.scale_dtype, o, cols);
    }
    refuse_fp8_nan_codes(t, nan_codes);
    return;
  }
  if (!t.row_scale) {
    convert_to_f32(t.data, t.dtype, out, uint64_t(t.numel()));
    return;
  }
  const int64_t rows = t.shape[0], cols = t.shape[1];
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * cols;
    quantized_q(t, r, o);
    if (t.group > 0 && t.row_zero)  // (nibble − zero) · scale: q + 8 − zero
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t g = r * (cols / t.group) + c / t.group;
        o[c] = (o[c] + 8.0f - float(t.row_zero[g])) * t.row_scale[g];
      }
    else if (t.group > 0)
      for (int64_t c = 0; c < cols; ++c) o[c] *= t.row_scale[r * (cols / t.group) + c / t.group];
    else
      for (int64_t c = 0; c < cols; ++c) o[c] *= t.row_scale[r];
    round_to_scale_dtype(t.scale_dtype, o, cols);
  }
}

int Checkpoint::unpack_compressed(int bits, int64_t group, bool asymmetric) {
  if ((bits != 8 && bits != 4) || (bits == 4) != (group > 0) || (asymmetric && bits != 4))
    throw CompileError("internal: compressed-tensors " + std::to_string(bits) + " bits, group " +
                       std::to_string(group));
  static const std::string kPacked = ".weight_packed";
  std::vector<std::string> bases;
  for (const auto& kv : all_)
    if (kv.first.size() > kPacked.size() &&
        kv.first.compare(kv.first.size() - kPacked.size(), kPacked.size(), kPacked) == 0)
      bases.push_back(kv.first.substr(0, kv.first.size() - kPacked.size()));
  for (const std::string& base : bases) {
    const StTensor* packed = find(base + ".weight_packed");
    const StTensor* scale = find(base + ".weight_scale");
    const StTensor* shape = find(base + ".weight_shape");
    auto bad = [&](const std::string& msg) {
      throw CompileError(packed->file + ": compressed-tensors weight '" + base + "' " + msg);
    };
    if (!scale) bad("has no weight_scale");
    if (!shape) bad("has no weight_shape");
    if (find(base + ".weight")) bad("also has an unquantized weight");
    if ((!asymmetric && find(base + ".weight_zero_point")) || find(base + ".weight_g_idx"))
      bad("has a zero point or group index: only symmetric weights are read (int8 per channel, int4 in groups), "
          "and asymmetric int4 ones whose config says so");
    const StTensor* zero = asymmetric ? find(base + ".weight_zero_point") : nullptr;
    if (asymmetric && !zero) bad("has no weight_zero_point (the config's weights are asymmetric)");
    if (shape->st_dtype != "I64" || shape->shape != std::vector<int64_t>{2} || shape->size != 16)
      bad("has weight_shape of dtype " + shape->st_dtype + " and shape " + shape_str(shape->shape) +
          " (expected I64 [2])");
    int64_t dims[2];
    std::memcpy(dims, shape->data, sizeof(dims));
    const int64_t rows = dims[0], cols = dims[1];
    if (rows <= 0 || cols <= 0 || rows > (int64_t(1) << 31) || cols > (int64_t(1) << 31))
      bad("has weight_shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    const int64_t per_word = 32 / bits, words = (cols + per_word - 1) / per_word;
    if (packed->st_dtype != "I32" || packed->shape != std::vector<int64_t>{rows, words})
      bad("has weight_packed of dtype " + packed->st_dtype + " and shape " + shape_str(packed->shape) +
          " (expected I32 " + shape_str({rows, words}) + " for " + std::to_string(bits) +
          "-bit values of weight_shape " + shape_str({rows, cols}) + ")");
    if (group > 0 && cols % group != 0)
      bad("has rows of " + std::to_string(cols) + " values, not a whole number of groups of " + std::to_string(group) +
          " (the config's group_size)");
    const int64_t groups = group > 0 ? cols / group : 1;
    if (!scale->has_dtype || !dtype_is_float(scale->dtype) ||
        (scale->shape != std::vector<int64_t>{rows, groups} &&
         (group > 0 || scale->shape != std::vector<int64_t>{rows})))
      bad("has weight_scale of dtype " + scale->st_dtype + " and shape " + shape_str(scale->shape) +
          " (expected a float " + shape_str({rows, groups}) +
          (group > 0 ? ": one scale per group of " + std::to_string(group) + " values of a row)"
                     : std::string(": one scale per output row)")));
    // (|q|: at most 128 in int8, 8 in int4; |q − zero point| at most 15 in asymmetric int4)
    auto s = positive_scales(
        *scale, size_t(rows * groups), "scale", bad,
        [groups, group](size_t i) {
          return group > 0
                     ? "row " + std::to_string(int64_t(i) / groups) + ", group " + std::to_string(int64_t(i) % groups)
                     : "row " + std::to_string(i);
        },
        bits == 8    ? 128.0f
        : asymmetric ? 15.0f
                     : 8.0f);
    std::unique_ptr<std::vector<int8_t>> zeros;
    if (zero) {  // [ceil(rows / 8), groups] words, eight rows' nibbles each (zp + 8, the low one first)
      const std::vector<int64_t> want = {(rows + 7) / 8, groups};
      if (zero->st_dtype != "I32" || zero->shape != want)
        bad("has weight_zero_point of dtype " + zero->st_dtype + " and shape " + shape_str(zero->shape) +
            " (expected I32 " + shape_str(want) + ": the zero points of " + shape_str({rows, groups}) +
            " packed eight a word along the rows)");
      zeros = std::make_unique<std::vector<int8_t>>(size_t(rows * groups));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < groups; ++g) {
          uint32_t word;
          std::memcpy(&word, zero->data + uint64_t((r / 8) * groups + g) * 4, 4);
          (*zeros)[size_t(r * groups + g)] = int8_t((word >> (4 * (r % 8))) & 15u);
        }
    }
    auto t = std::make_unique<StTensor>();
    t->name = base + ".weight";
    t->file = packed->file;
    t->st_dtype = bits == 8 ? "I8 (compressed-tensors pack-quantized)" : "I4 (compressed-tensors pack-quantized)";
    t->has_dtype = true;
    t->dtype = bits == 8 ? DType::I8 : DType::I4;
    t->group = group;
    t->shape = {rows, cols};
    t->data = packed->data;  // little-endian words: int8's byte c, int4's nibble c (byte c / 2), is column c
    t->size = packed->size;
    t->row_bytes = uint64_t(words) * 4;
    t->row_scale = s->data();
    t->scale_dtype = scale->dtype;
    if (zeros) {
      t->row_zero = zeros->data();
      t->st_dtype = "I4 (compressed-tensors pack-quantized, asymmetric)";
      made_zero_.push_back(std::move(zeros));
      all_.erase(base + ".weight_zero_point");
    }
    all_.erase(base + ".weight_packed");
    all_.erase(base + ".weight_scale");
    all_.erase(base + ".weight_shape");
    all_[t->name] = t.get();
    made_.push_back(std::move(t));
    made_scale_.push_back(std::move(s));
  }
  return int(bases.size());
}

int Checkpoint::unpack_gptq(int bits, int64_t group, bool asymmetric) {
  if ((bits != 8 && bits != 4) || group < 0 || (asymmetric && bits != 4))
    throw CompileError("internal: GPTQ " + std::to_string(bits) + " bits, group " + std::to_string(group));
  static const std::string kQweight = ".qweight";
  std::vector<std::string> bases;
  for (const auto& kv : all_)
    if (kv.first.size() > kQweight.size() &&
        kv.first.compare(kv.first.size() - kQweight.size(), kQweight.size(), kQweight) == 0)
      bases.push_back(kv.first.substr(0, kv.first.size() - kQweight.size()));
  const int per_word = 32 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  for (const std::string& base : bases) {
    const StTensor* qweight = find(base + ".qweight");
    const StTensor* qzeros = find(base + ".qzeros");
    const StTensor* scales = find(base + ".scales");
    const StTensor* g_idx = find(base + ".g_idx");
    auto bad = [&](const std::string& msg) {
      throw CompileError(qweight->file + ": GPTQ weight '" + base + "' " + msg);
    };
    if (!qzeros) bad("has no qzeros");
    if (!scales) bad("has no scales");
    if (find(base + ".weight")) bad("also has an unquantized weight");
    if (qweight->st_dtype != "I32" || qweight->shape.size() != 2 || qweight->shape[0] <= 0 || qweight->shape[1] <= 0)
      bad("has qweight of dtype " + qweight->st_dtype + " and shape " + shape_str(qweight->shape) +
          " (expected I32 [inputs * " + std::to_string(bits) + " / 32, outputs])");
    const int64_t in = qweight->shape[0] * per_word, out = qweight->shape[1];
    if (in > (int64_t(1) << 31) || out > (int64_t(1) << 31))
      bad("has qweight of shape " + shape_str(qweight->shape) + ", too large");
    const int64_t gs = group > 0 ? group : in;
    if (scales->shape.size() == 2 && scales->shape[1] == out && scales->shape[0] > 0 &&
        scales->shape[0] <= (int64_t(1) << 31) && scales->shape[0] * gs != in &&
        scales->shape[0] != (in + gs - 1) / gs)  // (that many: the group size does not divide, below)
      bad("has qweight of shape " + shape_str(qweight->shape) + " (" + std::to_string(in) +
          " inputs), but its scales " + shape_str(scales->shape) + " hold " + std::to_string(scales->shape[0]) +
          " groups of " + std::to_string(gs) + " inputs (" + std::to_string(scales->shape[0] * gs) +
          "; the group size is the config's): a tensor is cut short, or the group size is not the checkpoint's");
    if (in % gs != 0)
      bad("has rows of " + std::to_string(in) + " inputs, not a whole number of groups of " + std::to_string(gs) +
          " (the config's group_size)");
    const int64_t groups = in / gs;
    if (bits == 4 && gs % 32 != 0)
      bad("has groups of " + std::to_string(gs) + " inputs (kiln's int4 groups are multiples of 32)");
    if (bits == 8 && groups != 1)
      bad("has 8-bit values in " + std::to_string(groups) + " groups of " + std::to_string(gs) +
          " inputs (kiln's int8 weights have one scale a row: group_size -1)");
    if (out % per_word != 0)
      bad("has " + std::to_string(out) + " outputs, not a multiple of " + std::to_string(per_word) + " (qzeros packs " +
          std::to_string(per_word) + " a word)");
    if (qzeros->st_dtype != "I32" || qzeros->shape != std::vector<int64_t>{groups, out / per_word})
      bad("has qzeros of dtype " + qzeros->st_dtype + " and shape " + shape_str(qzeros->shape) + " (expected I32 " +
          shape_str({groups, out / per_word}) + ": the zero points of " + shape_str({groups, out}) + " packed " +
          std::to_string(per_word) + " a word)");
    if (!scales->has_dtype || !dtype_is_float(scales->dtype) || scales->shape != std::vector<int64_t>{groups, out})
      bad("has scales of dtype " + scales->st_dtype + " and shape " + shape_str(scales->shape) + " (expected a float " +
          shape_str({groups, out}) + ": one scale per group of " + std::to_string(gs) + " inputs of each output)");
    if (g_idx) {  // each input's group: kiln's groups are runs of gs inputs in order
      if (g_idx->st_dtype != "I32" || g_idx->shape != std::vector<int64_t>{in})
        bad("has g_idx of dtype " + g_idx->st_dtype + " and shape " + shape_str(g_idx->shape) + " (expected I32 " +
            shape_str({in}) + ")");
      for (int64_t i = 0; i < in; ++i) {
        int32_t gi;
        std::memcpy(&gi, g_idx->data + uint64_t(i) * 4, 4);
        if (gi < 0 || gi >= groups)
          bad("has g_idx[" + std::to_string(i) + "] = " + std::to_string(gi) + ", not a group (the weight has " +
              std::to_string(groups) + " groups of " + std::to_string(gs) + " inputs)");
        if (gi != i / gs)
          bad("has g_idx[" + std::to_string(i) + "] = " + std::to_string(gi) + ", not " + std::to_string(i / gs) +
              ": its inputs are not grouped in order, " + std::to_string(gs) +
              " at a time (act-order, desc_act true, permutes them), which kiln does not read; quantize the model "
              "with desc_act false and groups of consecutive inputs");
      }
    }
    auto stored = positive_scales(
        *scales, size_t(groups * out), "scale", bad,
        [out](size_t i) {
          return "output " + std::to_string(int64_t(i) % out) + ", group " + std::to_string(int64_t(i) / out);
        },
        // (|q − zero point|: at most 128 in int8, 8 in symmetric int4, 16 with its zero points of 1 to 16)
        bits == 8    ? 128.0f
        : asymmetric ? 16.0f
                     : 8.0f,
        true);
    // GPTQ's layers (QuantLinear) keep their scales in f16 buffers: bf16 scales are rounded to f16
    // as they load, and the weights dequantized in f16. kiln reads them the same way.
    const bool to_f16 = scales->dtype == DType::BF16;
    if (to_f16)
      for (size_t i = 0; i < stored->size(); ++i) {
        const float h = f16_to_f32(f32_to_f16((*stored)[i]));
        if (!std::isfinite(h) || h == 0.0f)
          bad("has scale " + short_float((*stored)[i]) + " for output " + std::to_string(int64_t(i) % out) +
              ", group " + std::to_string(int64_t(i) / out) +
              ", which is not a finite nonzero f16 (GPTQ's layers keep their scales in f16)");
        (*stored)[i] = h;
      }
    auto s = std::make_unique<std::vector<float>>(size_t(out * groups));  // kiln's (outputs, groups)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t r = 0; r < out; ++r) (*s)[size_t(r * groups + g)] = (*stored)[size_t(g * out + r)];
    auto word = [](const StTensor* t, int64_t i) {
      uint32_t w;
      std::memcpy(&w, t->data + uint64_t(i) * 4, 4);
      return w;
    };
    // The zero points: GPTQ stores each minus one (AutoGPTQ's convention, kept by the format "gptq"), so
    // they run from 1 to 2^bits. Symmetric weights must all have the middle one (the q + 8 or q + 128
    // that quantized_q reads); asymmetric ones keep theirs (1 to 16: an i8 each).
    std::unique_ptr<std::vector<int8_t>> zeros;
    if (asymmetric) zeros = std::make_unique<std::vector<int8_t>>(size_t(out * groups));
    const int symmetric_zero = 1 << (bits - 1);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t r = 0; r < out; ++r) {
        const int z = int((word(qzeros, g * (out / per_word) + r / per_word) >> (bits * (r % per_word))) & mask) + 1;
        if (zeros) (*zeros)[size_t(r * groups + g)] = int8_t(z);
        else if (z != symmetric_zero)
          bad("has zero point " + std::to_string(z) + " for output " + std::to_string(r) + ", group " +
              std::to_string(g) +
              (bits == 8 ? " (kiln reads symmetric 8-bit GPTQ weights only: every zero point 128)"
                         : " though the config says sym true or leaves it out (every zero point 8)"));
      }
    auto t = std::make_unique<StTensor>();
    t->name = base + ".weight";
    t->file = qweight->file;
    t->st_dtype = bits == 8 ? "I8 (GPTQ)" : asymmetric ? "I4 (GPTQ, asymmetric)" : "I4 (GPTQ)";
    t->has_dtype = true;
    t->dtype = bits == 8 ? DType::I8 : DType::I4;
    t->group = bits == 4 ? gs : 0;
    t->shape = {out, in};
    t->data = qweight->data;  // read in place (quantized_q)
    t->size = qweight->size;
    t->gptq_bits = bits;
    t->row_scale = s->data();
    t->scale_dtype = to_f16 ? DType::F16 : scales->dtype;
    if (zeros) {
      t->row_zero = zeros->data();
      made_zero_.push_back(std::move(zeros));
    }
    for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"}) all_.erase(base + part);
    all_[t->name] = t.get();
    made_.push_back(std::move(t));
    made_scale_.push_back(std::move(s));
  }
  return int(bases.size());
}

std::vector<std::string> Checkpoint::attach_fp8_block_scales(int64_t block_rows_cfg, int64_t block_cols_cfg,
                                                             const std::string& kScale) {
  if (block_rows_cfg < 0 || block_cols_cfg < 0) throw CompileError("internal: FP8 block size must not be negative");
  std::vector<std::string> names;
  for (const auto& kv : all_) {
    const StTensor& t = *kv.second;
    if (t.st_dtype == "F8_E5M2")
      throw CompileError(t.file + ": tensor '" + kv.first + "' is F8_E5M2; kiln reads F8_E4M3 weights only");
    if (t.st_dtype == "F8_E4M3") names.push_back(kv.first);
    const size_t n = kv.first.size();
    if (n > kScale.size() && kv.first.compare(n - kScale.size(), kScale.size(), kScale) == 0) {
      const StTensor* w = find(kv.first.substr(0, n - kScale.size()) + ".weight");
      if (!w || w->st_dtype != "F8_E4M3") throw CompileError(t.file + ": '" + kv.first + "' scales no F8_E4M3 weight");
    }
  }
  for (const std::string& name : names) {
    const StTensor* w = find(name);
    auto bad = [&](const std::string& msg) { throw CompileError(w->file + ": FP8 weight '" + name + "' " + msg); };
    const std::string base = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0
                                 ? name.substr(0, name.size() - 7)
                                 : std::string();
    if (base.empty()) bad("is not a weight (X.weight)");
    if (w->shape.size() != 2) bad("has shape " + shape_str(w->shape) + " (expected a 2-D weight)");
    const std::string scale_name = kScale.substr(1);
    const StTensor* s = find(base + kScale);
    if (!s) bad("has no " + scale_name);
    const int64_t rows = w->shape[0], cols = w->shape[1];
    // (a block size of 0: the whole dimension, as compressed-tensors' per-row and per-tensor scales are)
    const int64_t block_rows = block_rows_cfg > 0 ? block_rows_cfg : std::max<int64_t>(rows, 1);
    const int64_t block_cols = block_cols_cfg > 0 ? block_cols_cfg : std::max<int64_t>(cols, 1);
    const std::vector<int64_t> grid = {(rows + block_rows - 1) / block_rows, (cols + block_cols - 1) / block_cols};
    // One scale for the tensor may also be stored as [1] (compressed-tensors' per-tensor scale) or [].
    const bool one = grid == std::vector<int64_t>{1, 1} &&
                     (s->shape == std::vector<int64_t>{1} || s->shape == std::vector<int64_t>{});
    if (!s->has_dtype || !dtype_is_float(s->dtype) || (s->shape != grid && !one))
      bad("has " + scale_name + " of dtype " + s->st_dtype + " and shape " + shape_str(s->shape) +
          " (expected a float " + shape_str(grid) + ": one scale per " + std::to_string(block_rows) + "x" +
          std::to_string(block_cols) + " block, rounded up at the edges)");
    auto scales = positive_scales(
        *s, size_t(grid[0] * grid[1]), scale_name.c_str(), bad,
        [&](size_t i) {
          return "block [" + std::to_string(int64_t(i) / grid[1]) + ", " + std::to_string(int64_t(i) % grid[1]) + "]";
        },
        448.0f);  // (e4m3's largest value)
    auto t = std::make_unique<StTensor>(*w);
    t->st_dtype = "F8_E4M3 (block scales)";
    t->has_dtype = false;  // no DType holds its bytes: read_f32 (dequantized_on_read) is the only way in
    t->block_scale = scales->data();
    t->block_rows = block_rows;
    t->block_cols = block_cols;
    t->scale_dtype = s->dtype;
    all_.erase(base + kScale);
    all_[name] = t.get();
    made_.push_back(std::move(t));
    made_scale_.push_back(std::move(scales));
  }
  return names;
}

int Checkpoint::unpack_mxfp4() {
  static const std::string kBlocks = "_blocks", kScales = "_scales";
  std::vector<std::string> bases;
  for (const auto& kv : all_) {
    const std::string& n = kv.first;
    if (n.size() > kBlocks.size() && n.compare(n.size() - kBlocks.size(), kBlocks.size(), kBlocks) == 0)
      bases.push_back(n.substr(0, n.size() - kBlocks.size()));
    else if (n.size() > kScales.size() && n.compare(n.size() - kScales.size(), kScales.size(), kScales) == 0 &&
             !find(n.substr(0, n.size() - kScales.size()) + kBlocks))
      throw CompileError(kv.second->file + ": MXFP4 scales '" + n + "' have no " +
                         n.substr(0, n.size() - kScales.size()) + kBlocks);
  }
  for (const std::string& base : bases) {
    const StTensor* b = find(base + kBlocks);
    const StTensor* s = find(base + kScales);
    auto bad = [&](const std::string& msg) { throw CompileError(b->file + ": MXFP4 weight '" + base + "' " + msg); };
    // (transformers' Mxfp4 integration converts GPT-OSS's expert tensors only: others would stay missing)
    static const std::string kExperts[] = {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"};
    if (std::none_of(std::begin(kExperts), std::end(kExperts), [&](const std::string& e) {
          return base.size() >= e.size() && base.compare(base.size() - e.size(), e.size(), e) == 0;
        }))
      bad("is not an expert tensor (mlp.experts.gate_up_proj or down_proj), the only ones MXFP4 checkpoints hold");
    if (!s) bad("has no " + base + kScales);
    if (find(base)) bad("is stored both unquantized and as MXFP4 blocks");
    std::vector<int64_t> groups_shape(b->shape.begin(), b->shape.empty() ? b->shape.end() : b->shape.end() - 1);
    if (b->st_dtype != "U8" || b->shape.size() != 4 || b->shape.back() != 16)
      bad("has blocks of dtype " + b->st_dtype + " and shape " + shape_str(b->shape) +
          " (expected U8 [experts, rows, groups, 16]: 32 FP4 values a group, two a byte)");
    if (s->st_dtype != "U8" || s->shape != groups_shape)
      bad("has scales of dtype " + s->st_dtype + " and shape " + shape_str(s->shape) + " (expected U8 " +
          shape_str(groups_shape) + ": one E8M0 exponent a group of its blocks)");
    const int64_t n_groups = s->numel();
    for (int64_t g = 0; g < n_groups; ++g) {
      if (s->data[g] == 255) bad("has scale exponent 255 for group " + std::to_string(g) + " (E8M0's NaN)");
      if (s->data[g] < 253) continue;  // (6 · 2^125 fits f32)
      // 253, 254: the group's largest value must fit f32 (else its weights would be infinite)
      float big = 0.0f;
      for (int i = 0; i < 16; ++i)
        big = std::max(
            {big, std::fabs(kFp4Values[b->data[g * 16 + i] & 15u]), std::fabs(kFp4Values[b->data[g * 16 + i] >> 4])});
      if (std::isinf(std::ldexp(big, int(s->data[g]) - 127)))
        bad("has scale exponent " + std::to_string(int(s->data[g])) + " for group " + std::to_string(g) +
            ": its largest value " + short_float(big) + " · 2^" + std::to_string(int(s->data[g]) - 127) +
            " overflows f32");
    }
    auto t = std::make_unique<StTensor>(*b);
    t->name = base;
    t->st_dtype = "MXFP4";
    t->has_dtype = false;  // no DType holds its bytes: read_f32 (dequantized_on_read) is the only way in
    t->shape = groups_shape;
    t->shape.back() *= 32;
    t->mx_scale = s->data;  // (in the file's mapping)
    all_.erase(base + kBlocks);
    all_.erase(base + kScales);
    all_[base] = t.get();
    made_.push_back(std::move(t));
  }
  return int(bases.size());
}

std::unique_ptr<StTensor> transposed_copy(const StTensor& src, std::vector<uint8_t>* bytes) {
  if (src.shape.size() != 2 || !src.has_dtype || src.dequantized_on_read())
    throw CompileError(src.file + ": tensor '" + src.name + "' (" + src.st_dtype + ", " +
                       std::to_string(src.shape.size()) +
                       " dimensions) cannot be transposed: kiln reads it as a 2-D float tensor");
  const int64_t rows = src.shape[0], cols = src.shape[1];
  const size_t es = dtype_size(src.dtype);
  bytes->resize(size_t(src.size));
  // In 64 x 64 blocks: both sides' cache lines reused (a row-by-row copy writes a column, one line per value).
  constexpr int64_t kBlock = 64;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock)
      for (int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c)
        for (int64_t r = r0; r < std::min(rows, r0 + kBlock); ++r)
          std::memcpy(bytes->data() + size_t(c * rows + r) * es, src.data + size_t(r * cols + c) * es, es);
  auto t = std::make_unique<StTensor>(src);
  t->shape = {cols, rows};
  t->data = bytes->data();
  return t;
}

void Checkpoint::transpose(const std::string& name) {
  const StTensor* src = find(name);
  if (!src) throw CompileError("tensor '" + name + "' is missing");
  auto bytes = std::make_unique<std::vector<uint8_t>>();
  auto t = transposed_copy(*src, bytes.get());
  all_[name] = t.get();
  made_.push_back(std::move(t));
  made_bytes_.push_back(std::move(bytes));
}

const StTensor* Checkpoint::find(const std::string& name) const {
  auto it = all_.find(name);
  return it == all_.end() ? nullptr : it->second;
}

bool Checkpoint::alias(const std::string& name, const std::string& existing) {
  const StTensor* t = find(existing);
  return t && all_.emplace(name, t).second;
}

void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors) {
  json h = json::object();
  uint64_t off = 0;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", dtype_to_safetensors(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.size}}};
    off += t.size;
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8 != 0) hs += ' ';
  std::string target;  // (path, or the file its symbolic link names)
  if (Status st = output_file_path(path, &target); !st.is_ok()) throw CompileError(st.message());
  std::string tmp;
  if (Status st = create_temp_beside(target, &tmp); !st.is_ok()) throw CompileError(st.message());
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) {
      const int e = errno;
      std::remove(tmp.c_str());
      throw CompileError(path + ": cannot open for writing: " + std::strerror(e));
    }
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t((uint64_t(hs.size()) >> (8 * i)) & 0xff);
    o.write(reinterpret_cast<const char*>(len), 8);
    o.write(hs.data(), std::streamsize(hs.size()));
    for (const auto& t : tensors) o.write(static_cast<const char*>(t.data), std::streamsize(t.size));
    o.flush();
    if (!o) {
      const int e = errno;
      std::remove(tmp.c_str());
      throw CompileError(path + ": write failed: " + std::strerror(e));
    }
    o.close();
    if (!o) {
      const int e = errno;
      std::remove(tmp.c_str());
      throw CompileError(path + ": write failed: " + std::strerror(e));
    }
  }
  if (rename_into_place(tmp, target) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw CompileError(path + ": cannot rename the finished file into place: " + std::strerror(e));
  }
}

}  // namespace kiln
