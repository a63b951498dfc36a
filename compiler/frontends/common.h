// Pieces every frontend shares.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compiler/safetensors.h"

namespace kiln {

// Compares a checkpoint with the tensors its config implies (name → shape): throws one
// CompileError listing every missing, mis-shaped, non-float or unexpected tensor. Tensors for
// which ignorable(name) is true may be present or not.
void check_checkpoint_tensors(const std::map<std::string, std::vector<int64_t>>& expected, const Checkpoint& ck,
                              const std::function<bool(const std::string&)>& ignorable);

// Refuses a layer count the checkpoint cannot back (each layer has at least
// min_tensors_per_layer tensors) before anything is sized from it.
void check_layer_count(int64_t layers, const Checkpoint& ck, int64_t min_tensors_per_layer);

}  // namespace kiln
