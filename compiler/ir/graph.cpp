#include "compiler/ir/graph.h"

#include "compiler/error.h"

namespace kiln {

uint64_t Value::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

uint32_t Graph::add(Value v) {
  for (int64_t d : v.shape)
    if (d <= 0) throw CompileError("internal: value '" + v.name + "' has a non-positive dimension");
  values.push_back(std::move(v));
  return uint32_t(values.size() - 1);
}

uint32_t Graph::weight(const std::string& name, DType dtype, std::vector<int64_t> shape, WeightSource src) {
  Value v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.region = Region::kWeights;
  v.weight = std::move(src);
  return add(std::move(v));
}

uint32_t Graph::activation(const std::string& name, std::vector<int64_t> shape, DType dtype) {
  Value v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.region = Region::kArena;
  return add(std::move(v));
}

uint32_t Graph::state(const std::string& name, std::vector<int64_t> shape) {
  Value v;
  v.name = name;
  v.dtype = DType::I32;
  v.shape = std::move(shape);
  v.region = Region::kState;
  return add(std::move(v));
}

uint32_t Graph::kv(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  Value v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.region = Region::kKvCache;
  return add(std::move(v));
}

void add_node(GraphProgram& p, const KernelSpec& k, std::vector<uint32_t> in, std::vector<uint32_t> out,
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
