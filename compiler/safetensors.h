// safetensors reading (mmap, fully validated) and writing.
//
// A checkpoint is a single `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (its weight_map). Each file is checked as the reference
// implementation does: the 8-byte header length is within bounds (≤ 100 MB), the header is
// UTF-8 JSON, every dtype is known, shape × dtype size equals the byte range, offsets are
// in bounds, contiguous and do not overlap, and no name appears twice (within a file or
// across shards). Failures throw CompileError naming the file and the tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "runtime/mapped_file.h"

namespace kiln {

struct StTensor {
  std::string name;
  std::string file;          // path of the file holding it
  std::string st_dtype;      // as written in the file, e.g. "BF16"
  bool has_dtype = false;    // false: a valid safetensors dtype that kiln cannot hold (F64, U8, ...)
  DType dtype = DType::F32;  // valid when has_dtype
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the file's mapping
  uint64_t size = 0;
  // A pre-quantized int8 weight (Checkpoint::unpack_compressed): dtype I8, row_scale its f32
  // scale per row (owned by the checkpoint), data its rows as packed in the file, row_bytes apart:
  // byte c of a row is q + 128 (quantized_q reads it); its values are q · scale. A pre-quantized
  // int4 one: dtype I4, group > 0, row_scale its (rows, cols / group) scales, and nibble c of a row
  // (byte c / 2, the low one first) q + 8; its values are q · scale[r][c / group].
  const float* row_scale = nullptr;
  uint64_t row_bytes = 0;
  int64_t group = 0;
  // An asymmetric int4 one also has row_zero, its (rows, cols / group) zero points as the nibble that
  // stands for 0 (zp + 8; owned by the checkpoint); its values are (nibble − zero) · scale.
  const int8_t* row_zero = nullptr;
  // A GPTQ one (Checkpoint::unpack_gptq) is read in place: gptq_bits 4 or 8, data its qweight words
  // (cols · bits / 32, rows), each 32 / bits values of consecutive columns (the low bits first), the
  // nibble or byte of row r, column c standing for q + 8 or q + 128 as above (row_bytes unused).
  int gptq_bits = 0;
  DType scale_dtype = DType::F32;  // the stored scales' dtype: read_f32 rounds q · scale to it, as
                                   // compressed-tensors' decompression computes in it
  // A block-scaled FP8 weight (Checkpoint::attach_fp8_block_scales): data its float8_e4m3fn bytes,
  // block_scale its f32 scale_inv grid (ceil(rows / block_rows) × ceil(cols / block_cols), owned by
  // the checkpoint); its values are fp8 · block_scale[i / block_rows, j / block_cols] (rounded to
  // scale_dtype when that is 16-bit).
  const float* block_scale = nullptr;
  int64_t block_rows = 0, block_cols = 0;
  // An MXFP4 one (Checkpoint::unpack_mxfp4, GPT-OSS's experts as OpenAI ships them): data its packed
  // FP4 (e2m1) values, two a byte (the low nibble first), mx_scale its E8M0 exponents (in the file's
  // mapping), one per 32 consecutive values of the last dimension; value = fp4 · 2^(mx_scale − 127).
  const uint8_t* mx_scale = nullptr;
  // Whether reading it computes its values (pre-quantized: row_scale, block_scale or mx_scale).
  bool dequantized_on_read() const { return row_scale || block_scale || mx_scale; }
  int64_t numel() const;
};

// A copy of 2-D tensor t transposed, its bytes in *bytes (which must outlive it), in t's dtype. Throws CompileError
// naming the tensor when it is not a 2-D tensor of a dtype kiln holds (pre-quantized ones included).
std::unique_ptr<StTensor> transposed_copy(const StTensor& t, std::vector<uint8_t>* bytes);
// Row r's q of a pre-quantized int8 or int4 weight (StTensor::row_scale set), as floats: shape[1] values.
void quantized_q(const StTensor& t, int64_t r, float* out);

// A block-scaled FP8 weight's codes held nan_codes NaN codes (S.1111.111, float8_e4m3fn's only
// non-number), counted by the caller's own pass over them: when any, CompileError naming the tensor and
// how many.
void refuse_fp8_nan_codes(const StTensor& t, uint64_t nan_codes);
inline bool is_fp8_nan_code(uint8_t code) { return (code & 0x7f) == 0x7f; }

// The tensor's values in f32: converted from its dtype, or for a pre-quantized int8 or int4 weight q · scale
// rounded to the scales' dtype (compressed-tensors decompresses in it: a bf16 model's weights are
// bf16(q · scale)), or for an FP8 one its block dequantization (CompileError on a NaN code).
void read_f32(const StTensor& t, float* out);

class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);  // throws CompileError
  // Parses bytes held by the caller (not owned; must outlive the object), e.g. for fuzzing.
  static std::unique_ptr<SafetensorsFile> from_memory(const void* data, size_t size, const std::string& name);
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  // The whole file as read (header and data).
  const uint8_t* bytes() const { return file_->data(); }
  size_t size() const { return file_->size(); }

 private:
  static std::unique_ptr<SafetensorsFile> parse(std::unique_ptr<MappedFile> file, const std::string& path);
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, StTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint folder (single file or index + shards).
class Checkpoint {
 public:
  // Reads <stem>.safetensors or <stem>.safetensors.index.json and its shards (diffusers names
  // its files diffusion_pytorch_model.*). Throws CompileError.
  static Checkpoint open_dir(const std::string& dir, const std::string& stem = "model");
  // One parsed file's tensors as a checkpoint (fuzzing the readers of pre-quantized layouts).
  static Checkpoint from_file(std::unique_ptr<SafetensorsFile> file);
  // Takes other's tensors under names prefix + name (a pipeline's components in one map).
  // rename, when given, maps each of other's names first (e.g. old attention names to new); a name it maps
  // to "" is left out (a vision tower kiln does not compile).
  void absorb(Checkpoint&& other, const std::string& prefix,
              const std::function<std::string(const std::string&)>& rename = nullptr);
  const StTensor* find(const std::string& name) const;
  // Reads tensor `existing` under `name` too (a tied model's embedding from its head); false where `name` is taken
  // or `existing` absent.
  bool alias(const std::string& name, const std::string& existing);
  const std::map<std::string, const StTensor*>& all() const { return all_; }
  // Replaces every compressed-tensors pack-quantized weight by X.weight, a pre-quantized tensor
  // (StTensor::row_scale) whose values are q · scale, as compressed-tensors decompresses it; q is
  // read in place. bits 8: X.weight_packed int32 words of four q bytes, each q + 128, row-major,
  // X.weight_scale one scale per row; bits 4: words of eight nibbles, each q + 8, the low one first,
  // X.weight_scale (rows, columns / group); X.weight_shape: its [rows, columns]. Returns how many;
  // throws CompileError naming the weight on a missing part, a wrong shape or dtype, or a scale that
  // is not finite and positive.
  // With `asymmetric` (4 bits only), each also has X.weight_zero_point: I32 [ceil(rows / 8), groups],
  // the zero points zp + 8 packed eight nibbles a word along the rows, the low one first (StTensor::
  // row_zero); without it a zero point is refused.
  int unpack_compressed(int bits, int64_t group, bool asymmetric = false);
  // Replaces every GPTQ weight (AutoGPTQ's and GPTQModel's format "gptq": X.qweight, X.qzeros,
  // X.scales, X.g_idx) by X.weight, a pre-quantized tensor as unpack_compressed makes, its q read in
  // place (StTensor::gptq_bits). X.qweight: I32 [in · bits / 32, out], each word 32 / bits values of consecutive
  // inputs (the low bits first); X.qzeros: I32 [groups, out · bits / 32], the zero points minus one,
  // packed likewise along the outputs; X.scales: float [groups, out]; X.g_idx (optional): I32 [in],
  // each input's group, which must be in order (i / group: no act-order permutation). A weight's
  // values are (q − zero) · scale. bits 4: groups of `group` inputs (0: the whole row), a multiple of
  // 32; symmetric (asymmetric false): every zero point must be 8 (stored 7); asymmetric:
  // StTensor::row_zero. bits 8: one group a row (kiln's int8 has a scale a row) and every zero point
  // 128. Returns how many; throws CompileError naming the weight on a missing part, a wrong shape or
  // dtype, a scale that is zero or not finite (symmetric GPTQ scales may be negative), a permuted g_idx
  // or a zero point kiln cannot hold.
  int unpack_gptq(int bits, int64_t group, bool asymmetric);
  // Attaches X<scales> (f32 or another float dtype, [ceil(rows / block_rows), ceil(cols / block_cols)];
  // a block size of 0 is the whole dimension, and one scale for the tensor may be [1] or []) to every
  // F8_E4M3 weight X.weight, as DeepSeek-V3/R1 ship them (".weight_scale_inv") or compressed-tensors
  // writes them (".weight_scale"), so it reads as its block dequantization (rounded to a 16-bit scale
  // dtype, as compressed-tensors computes in it). Returns their names; throws CompileError naming the
  // tensor on a missing or orphan scale, a wrong grid, a scale that is not finite and positive, or an
  // FP8 tensor of another kind (E5M2, not 2-D). (A NaN code is refused when the weight is read.)
  std::vector<std::string> attach_fp8_block_scales(int64_t block_rows, int64_t block_cols,
                                                   const std::string& scales = ".weight_scale_inv");
  // Replaces every MXFP4 pair X_blocks (U8 [E, R, groups, 16]: 32 FP4 values a group, two a byte, the low
  // nibble first) and X_scales (U8 [E, R, groups]: E8M0 exponents) with X, [E, R, groups · 32], read in
  // place (StTensor::mx_scale), as transformers' Mxfp4 integration dequantizes them. Refuses a pair of
  // other dtypes or shapes (blocks [experts, rows, groups, 16]), one that is not a GPT-OSS expert tensor
  // (mlp.experts.gate_up_proj, down_proj: transformers converts no other), an X stored beside it, an
  // exponent 255 (E8M0's NaN), and one so large that its group's largest value overflows f32. Returns
  // how many.
  int unpack_mxfp4();
  // Replaces 2-D tensor `name` by its transpose, a copy the checkpoint owns in the same dtype (GPT-2's Conv1D
  // weights, stored [in, out], as the [out, in] rows kiln's matmuls read). Throws CompileError naming the tensor
  // when it is not a 2-D tensor of a dtype kiln holds (pre-quantized ones included).
  void transpose(const std::string& name);

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const StTensor*> all_;
  // The unpacked weights and their scales (q stays in the file's mapping).
  std::vector<std::unique_ptr<StTensor>> made_;
  std::vector<std::unique_ptr<std::vector<float>>> made_scale_;
  std::vector<std::unique_ptr<std::vector<int8_t>>> made_zero_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> made_bytes_;  // transpose()'s copies
};

const char* dtype_to_safetensors(DType t);

// stat() checks: something is at the path (after symlinks; a FIFO or a folder counts, and
// opening it as a file then refuses it by name), a directory.
bool path_exists(const std::string& path);
bool path_is_dir(const std::string& path);

// Writes tensors (name → dtype, shape, bytes) to a safetensors file, atomically (temp + rename).
struct StWriteTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  uint64_t size;
};
void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors);

}  // namespace kiln
