#include "compiler/passes/memory_plan.h"

#include <algorithm>
#include <numeric>

#include "compiler/error.h"
#include "runtime/plan_format.h"

namespace kiln {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

uint64_t plan_buffers(std::vector<PlanBuffer>& bufs, uint64_t alignment) {
  std::vector<size_t> order(bufs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (bufs[a].size != bufs[b].size) return bufs[a].size > bufs[b].size;
    return bufs[a].first < bufs[b].first;
  });
  std::vector<size_t> placed;
  uint64_t total = 0;
  std::vector<std::pair<uint64_t, uint64_t>> busy;  // [offset, end) of live-overlapping placed buffers
  for (size_t i : order) {
    PlanBuffer& b = bufs[i];
    const uint64_t need = align_up(std::max<uint64_t>(b.size, 1), alignment);
    busy.clear();
    for (size_t j : placed) {
      const PlanBuffer& o = bufs[j];
      if (o.first <= b.last && b.first <= o.last)
        busy.emplace_back(o.offset, o.offset + align_up(std::max<uint64_t>(o.size, 1), alignment));
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the buffer; else after the last busy range.
    uint64_t cursor = 0, best = UINT64_MAX, best_gap = UINT64_MAX;
    for (const auto& r : busy) {
      if (r.first > cursor) {
        const uint64_t gap = r.first - cursor;
        if (gap >= need && gap < best_gap) {
          best_gap = gap;
          best = cursor;
        }
      }
      cursor = std::max(cursor, r.second);
    }
    if (best == UINT64_MAX) best = cursor;
    b.offset = best;
    total = std::max(total, best + need);
    placed.push_back(i);
  }
  return total;
}

void plan_memory(Graph& g) {
  // Arena: lifetimes per program, over node indices; a value belongs to one program.
  std::vector<int> owner(g.values.size(), -1);
  uint64_t arena = 0;
  for (size_t pi = 0; pi < g.programs.size(); ++pi) {
    const GraphProgram& p = g.programs[pi];
    std::vector<int> first(g.values.size(), -1), last(g.values.size(), -1);
    auto touch = [&](uint32_t v, int n) {
      if (v == kNoTensor || g.values[v].region != Region::kArena) return;
      v = g.storage(v);  // a view keeps its base live
      if (owner[v] != -1 && owner[v] != int(pi))
        throw CompileError("internal: activation '" + g.values[v].name + "' is used by two programs");
      owner[v] = int(pi);
      if (first[v] < 0) first[v] = n;
      last[v] = n;
    };
    for (size_t n = 0; n < p.nodes.size(); ++n) {
      for (uint32_t v : p.nodes[n].inputs) touch(v, int(n));
      for (uint32_t v : p.nodes[n].outputs) touch(v, int(n));
    }
    // Program outputs stay live until the host has read them.
    for (const auto& o : p.outputs) touch(o.second, int(p.nodes.size()));
    std::vector<PlanBuffer> bufs;
    std::vector<uint32_t> ids;
    for (uint32_t v = 0; v < g.values.size(); ++v) {
      if (first[v] < 0 || g.values[v].view_of != kNoTensor) continue;
      bufs.push_back(PlanBuffer{g.values[v].bytes(), first[v], last[v], 0});
      ids.push_back(v);
    }
    arena = std::max(arena, plan_buffers(bufs, kArenaAlignment));
    for (size_t i = 0; i < ids.size(); ++i) g.values[ids[i]].offset = bufs[i].offset;
  }
  g.arena_bytes = arena;
  g.kv_bytes = g.request_bytes = g.state_bytes = g.weight_bytes = 0;
  for (Value& v : g.values) {
    if (v.view_of != kNoTensor) continue;
    if (v.region == Region::kKvCache) {
      v.offset = g.kv_bytes;
      g.kv_bytes += align_up(v.bytes(), kArenaAlignment);
    } else if (v.region == Region::kRequest) {
      v.offset = g.request_bytes;
      g.request_bytes += align_up(v.bytes(), kArenaAlignment);
    } else if (v.region == Region::kState) {
      v.offset = g.state_bytes;
      g.state_bytes += align_up(v.bytes(), 64);
    } else if (v.region == Region::kWeights) {
      g.weight_bytes += v.bytes();
    }
  }
  for (Value& v : g.values)
    if (v.view_of != kNoTensor) v.offset = g.values[g.storage(uint32_t(&v - g.values.data()))].offset;
}

}  // namespace kiln
