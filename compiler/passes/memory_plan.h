// Memory planning: every activation of a program gets an offset in one arena, shared by all
// programs (they never run at the same time). Buffers whose lifetimes [first, last] (node
// indices) overlap never overlap in memory. Greedy by size, largest first, each placed in
// the best-fitting gap among the already placed buffers it is live with (the TFLite Micro
// greedy planner's idea). KV caches, request state and state tensors get their own regions,
// packed in order.
#pragma once
#include <cstdint>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln {

struct PlanBuffer {
  uint64_t size = 0;
  int first = 0, last = 0;  // inclusive lifetime
  uint64_t offset = 0;      // output
};

// Assigns offsets (multiples of `alignment`); returns the arena size needed.
uint64_t plan_buffers(std::vector<PlanBuffer>& bufs, uint64_t alignment);

// Fills Value::offset for arena, KV and state values and the graph's region sizes.
void plan_memory(Graph& g);

}  // namespace kiln
