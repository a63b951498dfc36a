// libFuzzer target: any bytes as a safetensors file. Must never crash; errors are CompileErrors.
#include <cstddef>
#include <cstdint>

#include "compiler/error.h"
#include "compiler/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = kiln::SafetensorsFile::from_memory(data, size, "fuzz.safetensors");
    volatile uint64_t sum = 0;  // touch every tensor's bytes: the ranges must be in bounds
    for (const auto& [name, t] : f->tensors())
      for (uint64_t i = 0; i < t.size; i += 64) sum = sum + t.data[i];
  } catch (const kiln::CompileError&) {}
  return 0;
}
