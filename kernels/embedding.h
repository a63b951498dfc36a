// Embedding gather, times a scale (Gemma's √hidden; 1 elsewhere).
// tokens: (rows,) i32; table: (vocab, dim) f32|bf16|f16 → y: (rows, dim) f32
// Plan operands: inputs {tokens, table}; outputs {y}; float attrs {scale} (version 1, without
// it: 1). Ids outside [0, vocab) read row 0 (the runtime rejects such ids before they reach the
// state buffer; this is a second fence).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kEmbeddingOp;
extern const OpDef kEmbeddingOpV1;

struct EmbeddingArgs {
  const int32_t* tokens;
  const void* table;
  DType table_dtype;
  float* y;
  int64_t rows, vocab, dim;
  float scale = 1.0f;
};

void embedding_cpu(const EmbeddingArgs& a, ThreadPool& pool);

}  // namespace kiln
