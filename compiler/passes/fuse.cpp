#include "compiler/passes/fuse.h"

#include <algorithm>

#include "kernels/fused.h"
#include "kernels/kv_write.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace kiln {

namespace {

// Per program: how many nodes read each value's storage, and which values must stay visible
// (program outputs, bases of views): an intermediate may be fused away only when one node reads it.
struct Readers {
  std::vector<int> count;
  std::vector<bool> pinned;
  Readers(const Graph& g, const GraphProgram& p) : count(g.values.size(), 0), pinned(g.values.size(), false) {
    for (const Node& n : p.nodes)
      for (uint32_t v : n.inputs)
        if (v != kNoTensor) ++count[g.storage(v)];
    for (const auto& o : p.outputs) pinned[g.storage(o.second)] = true;
    for (const Value& v : g.values)
      if (v.view_of != kNoTensor) pinned[g.storage(v.view_of)] = true;
  }
  // v is an arena value that exactly one node reads and that is neither an output nor viewed.
  bool single_use(const Graph& g, uint32_t v) const {
    return g.values[v].region == Region::kArena && g.values[v].view_of == kNoTensor && count[v] == 1 && !pinned[v];
  }
};

// rope (rotating every q and k head) then kv_write of the same qkv buffer, as one node, or false.
bool fuse_rope_kv_write(const Node& rope, const Node& kv, std::vector<Node>* out, const Graph& g) {
  if (rope.kernel != &kRopeOp || kv.kernel != &kKvWriteOp) return false;
  const uint32_t qkv = rope.outputs[0];
  const int64_t h = kv.int_attrs[0], kvh = kv.int_attrs[1], hd = kv.int_attrs[2];
  // (rope's n_valid, when it has one, must be kv_write's: the fused op reads kv_write's)
  if (rope.inputs.size() > 3 && rope.inputs[3] != kv.inputs[2]) return false;
  if (kv.inputs[0] != qkv || rope.inputs[1] != kv.inputs[1] || rope.int_attrs[0] != h + kvh ||
      rope.int_attrs[1] != hd || g.values[qkv].shape.size() != 2 || g.values[qkv].shape[1] != (h + 2 * kvh) * hd ||
      hd % 2 != 0 || g.values[rope.inputs[0]].shape != std::vector<int64_t>{hd / 2})  // (not a partial rotary)
    return false;
  Node n;
  n.kernel = &kRopeKvWriteOp;
  n.inputs = {rope.inputs[0], rope.inputs[1], qkv, kv.inputs[2]};
  n.outputs = {qkv, kv.outputs[0], kv.outputs[1]};
  n.int_attrs = {h, kvh, hd};
  n.float_attrs = {rope.float_attrs[0]};
  out->push_back(std::move(n));
  return true;
}

// [rmsnorm →] matmul [→ swiglu] starting at nodes[i] as one fused_matmul node; returns the number of
// nodes it replaces, 0 for none.
size_t fuse_matmul(const std::vector<Node>& nodes, size_t i, const Readers& r, const Graph& g, std::vector<Node>* out) {
  auto at = [&](size_t k) -> const Node* { return k < nodes.size() ? &nodes[k] : nullptr; };
  const Node* norm = at(i)->kernel == &kRmsNormOp ? at(i) : nullptr;
  const Node* mm = norm ? at(i + 1) : at(i);
  if (!mm || mm->kernel != &kMatmulOp) return 0;
  const int64_t rows = g.values[mm->inputs[0]].shape[0], m = g.values[mm->inputs[1]].shape[0];
  const DType wt = g.values[mm->inputs[1]].dtype;
  if (norm && !(mm->inputs[0] == norm->outputs[0] && r.single_use(g, norm->outputs[0]) && gemv_norm_fusable(rows, wt)))
    return 0;
  // The parts' n_valid (when they have one) must be the matmul's: the fused op reads the matmul's.
  if (norm && norm->inputs.size() > 2 && norm->inputs[2] != mm->inputs[3]) return 0;
  const Node* sw = at((norm ? i + 1 : i) + 1);
  const bool swiglu = sw && sw->kernel == &kSwigluOp && sw->inputs[0] == mm->outputs[0] &&
                      (sw->inputs.size() < 2 || sw->inputs[1] == mm->inputs[3]) &&
                      r.single_use(g, mm->outputs[0]) &&
                      gemv_swiglu_fusable(rows, wt, mm->inputs[2] != kNoTensor, mm->int_attrs[0] != 0, m);
  if (!norm && !swiglu) return 0;
  // The fused launch reads its x while it writes its output: never one buffer (e.g. a residual
  // update x += W·norm(x)), which the parts could do one after another but one launch cannot.
  const uint32_t x = norm ? norm->inputs[0] : mm->inputs[0], y = swiglu ? sw->outputs[0] : mm->outputs[0];
  if (g.storage(x) == g.storage(y)) return 0;
  Node n;
  n.kernel = &kFusedMatmulOp;
  n.inputs = {norm ? norm->inputs[0] : mm->inputs[0], norm ? norm->inputs[1] : kNoTensor, mm->inputs[1], mm->inputs[2],
              mm->inputs[3]};
  n.outputs = {swiglu ? sw->outputs[0] : mm->outputs[0]};
  n.int_attrs = {mm->int_attrs[0], swiglu ? 1 : 0};
  n.float_attrs = {norm ? norm->float_attrs[0] : 0.0};
  out->push_back(std::move(n));
  return (norm ? 2 : 1) + (swiglu ? 1 : 0);
}

}  // namespace

void fuse_for_cuda(Graph& g) {
  for (GraphProgram& p : g.programs) {
    const Readers r(g, p);
    std::vector<Node> fused;
    for (size_t i = 0; i < p.nodes.size();) {
      if (i + 1 < p.nodes.size() && fuse_rope_kv_write(p.nodes[i], p.nodes[i + 1], &fused, g)) {
        i += 2;
        continue;
      }
      if (const size_t n = fuse_matmul(p.nodes, i, r, g, &fused)) {
        i += n;
        continue;
      }
      fused.push_back(p.nodes[i++]);
    }
    p.nodes = std::move(fused);
  }
  drop_unused_values(g);
}

void drop_dead_nodes(Graph& g) {
  auto root = [&](uint32_t v) {
    while (g.values[v].view_of != kNoTensor) v = g.values[v].view_of;
    return v;
  };
  for (GraphProgram& p : g.programs) {
    if (p.repeat > 1) continue;
    std::vector<bool> needed(g.values.size(), false);
    for (const auto& io : p.outputs) needed[root(io.second)] = true;
    std::vector<bool> keep(p.nodes.size(), false);
    for (size_t i = p.nodes.size(); i-- > 0;) {
      const Node& n = p.nodes[i];
      bool live = n.outputs.empty();
      for (uint32_t v : n.outputs)
        if (v != kNoTensor && (needed[root(v)] || g.values[root(v)].region != Region::kArena)) live = true;
      if (!live) continue;
      keep[i] = true;
      for (const std::vector<uint32_t>* vs : {&n.inputs, &n.outputs})
        for (uint32_t v : *vs)
          if (v != kNoTensor) needed[root(v)] = true;
    }
    std::vector<Node> kept;
    for (size_t i = 0; i < p.nodes.size(); ++i)
      if (keep[i]) kept.push_back(std::move(p.nodes[i]));
    p.nodes = std::move(kept);
  }
  drop_unused_values(g);
}

void drop_unused_values(Graph& g) {
  std::vector<bool> used(g.values.size(), false);
  auto use = [&](uint32_t v) {
    for (; v != kNoTensor && !used[v]; v = g.values[v].view_of) used[v] = true;
  };
  for (const GraphProgram& p : g.programs) {
    for (const Node& n : p.nodes) {
      for (uint32_t v : n.inputs) use(v);
      for (uint32_t v : n.outputs) use(v);
    }
    for (const auto& io : p.inputs) use(io.second);
    for (const auto& io : p.outputs) use(io.second);
    use(p.counter);
  }
  std::vector<uint32_t> remap(g.values.size(), kNoTensor);
  std::vector<Value> kept;
  for (uint32_t v = 0; v < g.values.size(); ++v)
    if (used[v]) {
      remap[v] = uint32_t(kept.size());
      kept.push_back(std::move(g.values[v]));
    }
  auto map = [&](uint32_t& v) {
    if (v != kNoTensor) v = remap[v];
  };
  for (Value& v : kept) map(v.view_of);
  for (GraphProgram& p : g.programs) {
    for (Node& n : p.nodes) {
      for (uint32_t& v : n.inputs) map(v);
      for (uint32_t& v : n.outputs) map(v);
    }
    for (auto& io : p.inputs) map(io.second);
    for (auto& io : p.outputs) map(io.second);
    map(p.counter);
  }
  g.values = std::move(kept);
}

}  // namespace kiln
