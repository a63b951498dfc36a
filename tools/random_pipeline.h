// kiln-random-checkpoint's diffusers pipelines (tools/random_pipeline.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln {

// Writes an SD1.5-shaped (or, with tiny, a small) random pipeline folder to `out`; fill(v, seed)
// fills one tensor's bf16 values. Returns the weight bytes written. Throws CompileError.
uint64_t write_random_pipeline(const std::string& out, bool tiny,
                               const std::function<void(std::vector<uint16_t>&, uint64_t)>& fill);

}  // namespace kiln
