// Row gathers of the LLM programs.
//
// embedding: rows of a table by token id, times a scale (Gemma's √hidden; 1 elsewhere), plus (version 3,
// GPT-2's and OPT's learned absolute positions) the row of a position table at each token's position.
// tokens: (rows,) i32; table: (vocab, dim) f32|bf16|f16; start_pos: (batch,) i32; pos_table: (positions, dim)
// f32|bf16|f16 → y: (rows, dim) f32, y[r] = scale · table[tokens[r]] + pos_table[start_pos[b] + t] for row
// r = b·chunk + t (chunk = rows / batch).
// Plan operands: inputs {tokens, table, start_pos, pos_table} (the last two: version 3, both or neither);
// outputs {y}; float attrs {scale} (version 1, without it: 1). Ids outside [0, vocab) read row 0 (the runtime
// rejects such ids before they reach the state buffer; this is a second fence); a position outside the
// table (a padding row past max_seq) adds nothing.
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
extern const OpDef kEmbeddingOpV2;
extern const OpDef kLastRowsOp;

struct EmbeddingArgs {
  const int32_t* tokens;
  const void* table;
  DType table_dtype;
  float* y;
  int64_t rows, vocab, dim;
  float scale = 1.0f;
  // Learned positions (version 3), or pos_table null: none.
  const int32_t* start_pos = nullptr;
  const void* pos_table = nullptr;
  DType pos_dtype = DType::F32;
  int64_t batch = 1, positions = 0;
};

// The position-table row of output row r, or -1 for none (no table, or a position outside it; shared by both
// backends).
KILN_HOST_DEVICE inline int64_t embedding_position_row(const EmbeddingArgs& a, int64_t r) {
  if (!a.pos_table) return -1;
  const int64_t chunk = a.rows / a.batch;
  const int64_t pos = int64_t(a.start_pos[r / chunk]) + r % chunk;
  return pos >= 0 && pos < a.positions ? pos : -1;
}

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
