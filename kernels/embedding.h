// Embedding gather.
// tokens: (rows,) i32; table: (vocab, dim) f32|bf16|f16 → y: (rows, dim) f32
// Plan operands: inputs {tokens, table}; outputs {y}. Ids outside [0, vocab) read row 0
// (the runtime rejects such ids before they reach the state buffer; this is a second fence).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The op (its definition: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kEmbeddingOp;

struct EmbeddingArgs {
  const int32_t* tokens;
  const void* table;
  DType table_dtype;
  float* y;
  int64_t rows, vocab, dim;
};

void embedding_cpu(const EmbeddingArgs& a, ThreadPool& pool);

}  // namespace kiln
