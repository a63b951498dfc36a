// Row gathers of the LLM programs.
//
// embedding: rows of a table by token id, times a scale (Gemma's √hidden; 1 elsewhere).
// tokens: (rows,) i32; table: (vocab, dim) f32|bf16|f16 → y: (rows, dim) f32
// Plan operands: inputs {tokens, table}; outputs {y}; float attrs {scale} (version 1, without
// it: 1). Ids outside [0, vocab) read row 0 (the runtime rejects such ids before they reach the
// state buffer; this is a second fence).
//
// last_rows: each batch row's last valid position of a (batch·chunk, dim) stream, so a prefill
// computes its final norm and LM head over one row per sequence instead of all of them.
// x: (batch·chunk, dim) f32; n_valid: (batch,) i32 → y: (batch, dim) f32, y[b] = x[b·chunk +
// min(n_valid[b], chunk) − 1], and zeros where n_valid[b] <= 0 (an idle row).
// Plan operands: inputs {x, n_valid}; outputs {y}.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kEmbeddingOp;
extern const OpDef kEmbeddingOpV1;
extern const OpDef kLastRowsOp;

struct EmbeddingArgs {
  const int32_t* tokens;
  const void* table;
  DType table_dtype;
  float* y;
  int64_t rows, vocab, dim;
  float scale = 1.0f;
};

void embedding_cpu(const EmbeddingArgs& a, ThreadPool& pool);

struct LastRowsArgs {
  const float* x;
  const int32_t* n_valid;
  float* y;
  int64_t batch, chunk, dim;
};

// The source row of batch row b, or -1 for an idle row (shared by both backends).
KILN_HOST_DEVICE inline int64_t last_row_of(const LastRowsArgs& a, int64_t b) {
  const int64_t n = a.n_valid[b] < a.chunk ? int64_t(a.n_valid[b]) : a.chunk;
  return n > 0 ? b * a.chunk + n - 1 : -1;
}

void last_rows_cpu(const LastRowsArgs& a, ThreadPool& pool);

}  // namespace kiln
