// Weight folding: a plan weight is its checkpoint parts concatenated along dim 0 (QKV,
// gate|up) and cast to the plan dtype, or a constant the compiler computed. Materialized one
// weight at a time while the plan is written, so peak memory is one weight, not the model.
#pragma once
#include <cstdint>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/lora.h"
#include "compiler/safetensors.h"
#include "kernels/thread_pool.h"

namespace kiln {

// LoRA deltas (lora may be empty) are added in f32 before the cast; pool runs the merge.
void materialize_weight(const Value& v, const Checkpoint& ck, const LoraSet& lora, ThreadPool& pool,
                        std::vector<uint8_t>& out);

}  // namespace kiln
