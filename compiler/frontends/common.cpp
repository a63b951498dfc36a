#include "compiler/frontends/common.h"

#include "compiler/error.h"
#include "runtime/plan.h"  // shape_str

namespace kiln {

void check_layer_count(int64_t layers, const Checkpoint& ck, int64_t min_tensors_per_layer) {
  if (uint64_t(layers) > ck.all().size() / uint64_t(min_tensors_per_layer) + 1)
    throw CompileError("config.json says num_hidden_layers = " + std::to_string(layers) +
                       " but the checkpoint has only " + std::to_string(ck.all().size()) + " tensors");
}

void check_checkpoint_tensors(const std::map<std::string, std::vector<int64_t>>& expected, const Checkpoint& ck,
                              const std::function<bool(const std::string&)>& ignorable) {
  std::vector<std::string> problems;
  for (const auto& [name, shape] : expected) {
    const StTensor* t = ck.find(name);
    if (!t) {
      problems.push_back("missing tensor '" + name + "' (expected shape " + shape_str(shape) + ")");
      continue;
    }
    if (t->shape != shape)
      problems.push_back("tensor '" + name + "' in " + t->file + " has shape " + shape_str(t->shape) +
                         ", expected " + shape_str(shape) + " from config.json");
    else if (!t->has_dtype || !dtype_is_float(t->dtype))
      problems.push_back("tensor '" + name + "' in " + t->file + " has dtype " + t->st_dtype +
                         " (supported: F32, BF16, F16)");
  }
  for (const auto& [name, t] : ck.all())
    if (!expected.count(name) && !ignorable(name))
      problems.push_back("unexpected tensor '" + name + "' in " + t->file + " (shape " + shape_str(t->shape) + ")");
  if (problems.empty()) return;
  std::string msg = "checkpoint does not match config.json (" + std::to_string(problems.size()) + " problem" +
                    (problems.size() > 1 ? "s" : "") + "): ";
  const size_t shown = std::min<size_t>(problems.size(), 8);
  for (size_t i = 0; i < shown; ++i) msg += (i ? "; " : "") + problems[i];
  if (shown < problems.size()) msg += "; and " + std::to_string(problems.size() - shown) + " more";
  throw CompileError(msg);
}


}  // namespace kiln
