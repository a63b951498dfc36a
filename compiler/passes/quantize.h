// Weight-only quantization at compile time (kiln compile --quantize int8), a pass after fusion and
// before memory planning. It rewrites matmul weights that are checkpoint rows verbatim (parts
// concatenated along dim 0, LoRA already merged) into i8 weights with one f32 scale per row, and
// their matmul launches into version 2 (kernels/matmul.h), which takes the scales as w_scale.
// Left in the plan dtype: weights another op also reads (embeddings), weights the compiler computes
// (MLA's absorbed and sliced projections, rope tables), the LM head unless QuantizeOptions::head,
// and everything that is not a matmul weight (norms, biases, routers, MoE experts). A head tied to
// the embedding is quantized, with QuantizeOptions::head, as an i8 copy ("<name>.i8") that only the
// head reads; the embedding keeps its rows in the plan dtype.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln {

struct StTensor;

// Per-row symmetric int8, for each of m rows of k values: scale = max|w| / 127 and
// q = round-half-even(w / scale), in f32 (q · scale is the dequantized weight); a row of zeros has
// scale 0 and q 0, as does a row whose scale underflows to 0. Throws CompileError naming `what`
// (a checkpoint tensor) and the row when a value is not finite.
void quantize_rows_int8(const float* w, int64_t m, int64_t k, int8_t* q, float* scale, const std::string& what);

struct QuantizeOptions {
  std::string scheme;  // "" (not asked for), "none" or "int8"
  bool head = false;   // also quantize the LM head (when only matmuls read it)
  // Pre-quantized checkpoint rows (Checkpoint::unpack_compressed_int8): the tensor whose stored q
  // and scales a checkpoint part keeps, or null (also for a part a LoRA adapter changes). With
  // scheme "" the weights made only of such parts are kept int8 as shipped and nothing else is
  // quantized; with "int8" they keep their rows and the other weights are quantized; with "none"
  // everything is left in the plan dtype (dequantized).
  std::function<const StTensor*(const std::string& part)> stored_int8;
};

struct QuantizeReport {
  int quantized = 0;            // weights made i8 (or copied as i8: a tied head)
  int as_shipped = 0;           // of those, made only of pre-quantized checkpoint rows
  int stored_parts = 0;         // pre-quantized checkpoint tensors whose q and scales were kept
  uint64_t bytes_before = 0;    // their bytes in the plan dtype (0 for a copy)
  uint64_t bytes_after = 0;     // their i8 bytes plus their scales
  bool tied_head_copy = false;  // the tied LM head was copied as i8
  std::string kept;             // the matmul weights left in the plan dtype, and why ("" if none)
};

// --quantize's value: "" (not given), "none" or "int8"; throws CompileError naming the choices
// otherwise (int4 and fp8 are named as not yet supported).
std::string parse_quantize(const std::string& s);

// Rewrites g as the header says; returns what it did. The new scale values are named
// "<weight>.scale".
QuantizeReport quantize_weights(Graph& g, const QuantizeOptions& o);

}  // namespace kiln
