#include "compiler/ir/graph.h"

#include "compiler/error.h"
#include "kernels/op.h"

namespace kiln {

uint64_t Value::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

uint32_t Graph::add(Value v) {
  uint64_t bytes = dtype_size(v.dtype);
  for (int64_t d : v.shape) {
    if (d <= 0) throw CompileError("internal: value '" + v.name + "' has a non-positive dimension");
    if (bytes > (uint64_t(1) << 46) / uint64_t(d))
      throw CompileError("tensor '" + v.name + "' of shape " + shape_str(v.shape) +
                         " is too large (over 64 TiB); lower --max-seq, --batch or --chunk");
    bytes *= uint64_t(d);
  }
  values.push_back(std::move(v));
  return uint32_t(values.size() - 1);
}

namespace {

Value make_value(const std::string& name, DType dtype, std::vector<int64_t> shape, Region region) {
  Value v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.region = region;
  return v;
}

}  // namespace

uint32_t Graph::weight(const std::string& name, DType dtype, std::vector<int64_t> shape, WeightSource src) {
  Value v = make_value(name, dtype, std::move(shape), Region::kWeights);
  v.weight = std::move(src);
  return add(std::move(v));
}

uint32_t Graph::activation(const std::string& name, std::vector<int64_t> shape, DType dtype) {
  return add(make_value(name, dtype, std::move(shape), Region::kArena));
}

uint32_t Graph::state(const std::string& name, std::vector<int64_t> shape, DType dtype) {
  return add(make_value(name, dtype, std::move(shape), Region::kState));
}

uint32_t Graph::view(uint32_t base, const std::string& name, std::vector<int64_t> shape) {
  base = storage(base);
  const Value& b = values.at(base);
  if (b.region == Region::kWeights) throw CompileError("internal: view of weight '" + b.name + "'");
  Value v = make_value(name, b.dtype, std::move(shape), b.region);
  v.view_of = base;
  if (v.bytes() != b.bytes())
    throw CompileError("internal: view '" + name + "' " + shape_str(v.shape) + " does not match '" + b.name + "' " +
                       shape_str(b.shape));
  return add(std::move(v));
}

uint32_t Graph::storage(uint32_t v) const {
  while (values.at(v).view_of != kNoTensor) v = values[v].view_of;
  return v;
}

uint32_t Graph::kv(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  return add(make_value(name, dtype, std::move(shape), Region::kKvCache));
}

uint32_t Graph::request(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  return add(make_value(name, dtype, std::move(shape), Region::kRequest));
}

void add_node(GraphProgram& p, const OpDef& k, std::vector<uint32_t> in, std::vector<uint32_t> out,
              std::vector<int64_t> iattrs, std::vector<double> fattrs) {
  if (int(in.size()) != k.n_inputs || int(out.size()) != k.n_outputs || int(iattrs.size()) != k.n_int_attrs ||
      int(fattrs.size()) != k.n_float_attrs)
    throw CompileError(std::string("internal: wrong operand count for kernel ") + k.name);
  Node n;
  n.kernel = &k;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.int_attrs = std::move(iattrs);
  n.float_attrs = std::move(fattrs);
  p.nodes.push_back(std::move(n));
}

}  // namespace kiln
