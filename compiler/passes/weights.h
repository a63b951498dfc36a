// Weight folding: a plan weight is its checkpoint parts concatenated along dim 0 (QKV,
// gate|up) and cast to the plan dtype, or a constant the compiler computed. Materialized one
// weight at a time while the plan is written, so peak memory is one weight, not the model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/lora.h"
#include "compiler/safetensors.h"
#include "kernels/thread_pool.h"

namespace kiln {

// Rows `rows` (in that order) of `all`, rows of `cols` values; CompileError ("internal") for a row out of
// range: a weight's WeightSource::rows. (The quantizer gathers its q, scales and zero points itself.)
std::vector<float> gather_rows(const std::vector<float>& all, int64_t cols, const std::vector<int64_t>& rows,
                               const std::string& what);

// LoRA deltas (lora may be empty) are added in f32 before the cast; pool runs the merge.
void materialize_weight(const Value& v, const Checkpoint& ck, const LoraSet& lora, ThreadPool& pool,
                        std::vector<uint8_t>& out);

}  // namespace kiln
