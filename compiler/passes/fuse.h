// Fusion, a compiler pass before memory planning: rewrites runs of nodes into the fused ops of
// kernels/fused.h where the CUDA kernels have them, so the plan lists exactly the launches that
// run (backends never merge or drop launches) and the memory planner sees the fused lifetimes:
//   - rope of every q and k head, then kv_write of the same qkv value → rope_kv_write;
//   - rmsnorm whose output only the next node reads, a matmul taking it as x, when the CUDA GEMV
//     has the prologue for it (gemv_norm_fusable) → fused_matmul with the norm;
//   - a matmul (or the fused_matmul above) whose output only the next node reads, a swiglu, when
//     the GEMV has the epilogue for it (gemv_swiglu_fusable) → fused_matmul with SwiGLU.
// Values that no program uses afterwards (the intermediates) are dropped. Only plans with a
// CUDA target are fused: on the CPU a fused op runs its parts one after another, the same bits.
#pragma once
#include "compiler/ir/graph.h"

namespace kiln {

void fuse_for_cuda(Graph& g);

// Drops every value no program reads or writes (nor a used view's base), renumbering the rest.
void drop_unused_values(Graph& g);

// Drops the nodes of each program whose work nothing observes: a node is kept when it writes a
// value outside the arena (KV cache, request or step state), a program output, or an arena value
// a later kept node reads or writes (a kept node is taken to read its outputs too: accumulating
// and in-place ops do). Views count as their base. Looped programs (repeat > 1) are left whole.
// Then drops the values left unused. (An LLM's `ingest` program has no outputs: the last layer's
// attention and MLP go, its KV-cache write stays.)
void drop_dead_nodes(Graph& g);

}  // namespace kiln
