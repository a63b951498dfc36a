// Weight-only quantization at compile time (kiln compile --quantize int8|int4|fp8), a pass before
// CUDA fusion and memory planning. It rewrites matmul weights that are checkpoint rows verbatim
// (parts concatenated along dim 0, or rows of them, LoRA already merged) into i8 weights with one f32 scale per row, i4
// weights (two values a byte, kernels/dtype.h) with one f32 scale per group of values along each row,
// or f8e4m3 weights with one f32 scale per row or per group along it, and their matmul launches into
// version 2 (i8, i4) or 3 (f8e4m3; kernels/matmul.h), which take the scales as w_scale. MoE experts'
// w_gu and w_down (both or neither) likewise, their moe_experts launches into version 2 (kernels/moe.h),
// and the rows version 2 head_matmuls read (DeepSeek's kv_b, kernels/head_matmul.h), whose launches take
// the scales, zero points and group. Left in the plan dtype: weights another op also reads
// (embeddings), weights the compiler computes (rope tables; kv_b's per-head copies in plans that
// quantize nothing), the LM head unless QuantizeOptions::head,
// and everything that is not a matmul or expert weight (norms, biases, routers). A head tied to
// the embedding is quantized, with QuantizeOptions::head, as a copy ("<name>.i8", ".i4", ".f8")
// that only the head reads; the embedding keeps its rows in the plan dtype. With int4, a weight whose
// rows are not a whole number of groups stays in the plan dtype too.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln {

struct StTensor;

// Per-row symmetric int8, for each of m rows of k values: scale = max|w| / 127 and
// q = round-half-even(w / scale), in f32 (q · scale is the dequantized weight); a row of zeros has
// scale 0 and q 0, as does a row whose scale underflows to 0. Throws CompileError naming `what`
// (a checkpoint tensor) and the row when a value is not finite.
void quantize_rows_int8(const float* w, int64_t m, int64_t k, int8_t* q, float* scale, const std::string& what);

// Group-wise symmetric int4, for each of m rows of k values in groups of `group` (k a multiple of it):
// the group's value of the larger magnitude (the positive one on a tie) is q = −8, so scale = that
// value / −8 (negative when it is positive), and q = clamp(round-half-even(w / scale), −8, 7), in f32,
// as AutoRound's plain round-to-nearest int4 with f32 scales (the scale choice is llama.cpp's Q4_0's;
// q · scale is the dequantized weight; a
// group of zeros, or whose scale underflows to 0, has scale +0 and q 0). Unlike compressed-tensors'
// and GPTQ's max|w| / 7.5, every level is used and the extreme is exact. k is a multiple of 32;
// packed: m·k/2 bytes in the I4 layout (kernels/dtype.h: blocks of 32 values, q + 8); scale:
// m·(k/group). Throws CompileError naming `what` and the row when a value is not finite.
// With `zeros` (m·(k/group)), asymmetric instead, as compressed-tensors' asymmetric int4: over the
// group's range [lo, hi] = [min(w, 0), max(w, 0)], scale = (hi − lo) / 15, zp = round(clamp(−8 − lo /
// scale, −8, 7)) and q = round(clamp(w / scale + zp, −8, 7)) (each step in f32, rounding half to even);
// the value is (q − zp) · scale; packed holds q + 8 and zeros zp + 8 (the nibble of 0: i4_zero). A
// group of zeros has scale 0, q −8 and zp −8.
void quantize_rows_int4(const float* w, int64_t m, int64_t k, int64_t group, uint8_t* packed, float* scale,
                        const std::string& what, int8_t* zeros = nullptr);

// Per-group symmetric FP8 (e4m3), for each of m rows of k values in groups of `group` (a multiple of 16,
// or k; the last group of a row may be short): scale = max|w| / 448 over the group and code =
// float8_e4m3fn(clamp(w / scale, −448, 448)) rounded to nearest even, in f32, as compressed-tensors'
// float-quantized FP8 (its value times the scale is the dequantized weight; a group of zeros, or whose
// scale underflows to 0, has scale 0 and codes 0). codes: m·k bytes; scale: m·ceil(k/group). Throws
// CompileError naming `what` and the row when a value is not finite.
void quantize_rows_fp8(const float* w, int64_t m, int64_t k, int64_t group, uint8_t* codes, float* scale,
                       const std::string& what);

// --quantize int4's group size when --group-size is not given: 128 values where a weight's rows are
// whole groups of 128, else the largest of 96, 64 and 32 that divides them (SmolLM2's 576: 96).
constexpr int64_t kDefaultInt4Group = 128;

struct QuantizeOptions {
  std::string scheme;              // "" (not asked for), "none", "int8", "int4" or "fp8"
  bool head = false;               // also quantize the LM head (when only matmuls read it)
  int64_t group_size = 0;          // int4: values per scale (parse_group_size); 0: kDefaultInt4Group's rule
  bool asymmetric = false;         // int4: a zero point per group too (quantize_rows_int4's zeros; matmul v4)
  bool stored_asymmetric = false;  // the checkpoint's int4 weights have zero points (kept as shipped with them)
  int64_t stored_group = 0;        // the checkpoint's pre-quantized weights: 0 int8 rows, else int4 groups of it
  bool stored_fp8 = false;         // the checkpoint's pre-quantized weights are FP8 (block-scaled)
  int64_t stored_fp8_cols = 0;     // their blocks' columns where narrower than a row (0: whole rows, or none)
  // Pre-quantized checkpoint rows (Checkpoint::unpack_compressed, int8 or int4, or
  // Checkpoint::attach_fp8_block_scales, FP8 with block scales): the tensor whose stored q
  // and scales a checkpoint part keeps, or null (also for a part a LoRA adapter changes). With
  // scheme "" the weights made only of such parts are kept as shipped (int8, int4 in groups of
  // stored_group, or f8e4m3 in groups of stored_fp8_cols with each block's scales repeated down its
  // rows) and nothing else is quantized; with "int8", "int4" or "fp8" the parts already in that scheme
  // (int4: the same group size) keep their q and scales, the others are re-quantized from their
  // dequantized values, and the other weights are quantized (fp8: in the checkpoint's FP8 groups where
  // it has them, else one scale a row); with "none" everything is left in the plan dtype (dequantized).
  std::function<const StTensor*(const std::string& part)> stored;
};

struct QuantizeReport {
  std::string scheme;             // "int8", "int4" or "fp8" ("" when nothing was asked for)
  bool asymmetric = false;        // int4 with zero points
  int quantized = 0;              // weights made i8, i4 or f8e4m3 (or copied as such: a tied head)
  int as_shipped = 0;             // of those, made only of pre-quantized checkpoint rows
  int stored_parts = 0;           // pre-quantized checkpoint tensors whose q and scales were kept
  // Checkpoint tensors (parts) some value does not keep as shipped, and why (the first reason found):
  // "merged with an adapter and re-quantized", "re-quantized as int4 … from their dequantized values
  // (not the checkpoint's scheme)", or "dequantized (<why it stays in the plan dtype>)".
  std::map<std::string, std::string> not_kept;
  uint64_t bytes_before = 0;      // their bytes in the plan dtype (0 for a copy)
  uint64_t bytes_after = 0;       // their i8 or i4 bytes plus their scales
  bool tied_head_copy = false;    // the tied LM head was copied as i8 or i4
  std::map<int64_t, int> groups;  // int4, fp8: weights per group size (fp8: 0 for one scale a row)
  std::string kept;               // the matmul weights left in the plan dtype, and why ("" if none)
};

// --quantize's value: "" (not given), "none", "int8", "int4" or "fp8"; throws CompileError naming the
// choices otherwise (quantize_scheme_error's message).
std::string parse_quantize(const std::string& s);
std::string quantize_scheme_error(const std::string& s);

// --group-size's value for a parsed --quantize scheme: 0 (not given) stays 0 (int4: kDefaultInt4Group's
// rule); given, it must be a positive multiple of kI4GroupMultiple and the scheme int4, else
// CompileError (for a bad number, group_size_error's message). The CLI refuses a 0 given (0 and ''
// mean "not given" here, so the kiln tool checks what was typed: tools/kiln/main.cpp).
int64_t parse_group_size(const std::string& scheme, int64_t group_size);
std::string group_size_error(const std::string& group_size);  // (as typed)

// Rewrites g as the header says; returns what it did. The new scale values are named
// "<weight>.scale".
QuantizeReport quantize_weights(Graph& g, const QuantizeOptions& o);

}  // namespace kiln
