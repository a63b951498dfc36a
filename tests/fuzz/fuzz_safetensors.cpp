// libFuzzer target: any bytes as a safetensors file. Must never crash; errors are CompileErrors.
// Then the same bytes as a checkpoint of pre-quantized weights in each layout kiln reads (GPTQ,
// compressed-tensors pack-quantized, FP8 with block scales), every weight so made read back.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "compiler/error.h"
#include "compiler/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = kiln::SafetensorsFile::from_memory(data, size, "fuzz.safetensors");
    volatile uint64_t sum = 0;  // touch every tensor's bytes: the ranges must be in bounds
    for (const auto& [name, t] : f->tensors())
      for (uint64_t i = 0; i < t.size; i += 64) sum = sum + t.data[i];
  } catch (const kiln::CompileError&) {
    return 0;
  }
  const std::vector<std::function<void(kiln::Checkpoint&)>> layouts = {
      [](kiln::Checkpoint& c) { c.unpack_gptq(4, 32, false); }, [](kiln::Checkpoint& c) { c.unpack_gptq(4, 32, true); },
      [](kiln::Checkpoint& c) { c.unpack_gptq(8, 0, false); }, [](kiln::Checkpoint& c) { c.unpack_compressed(8, 0); },
      [](kiln::Checkpoint& c) { c.unpack_compressed(4, 32); },
      [](kiln::Checkpoint& c) { c.unpack_compressed(4, 32, true); },
      // (the block sizes of the seeds: DeepSeek's layout in 32 x 32, 48 x 48 and 48 x 16 blocks, partial at
      // the edges; compressed-tensors' per row, per tensor and 32 x 32 blocks)
      [](kiln::Checkpoint& c) { c.attach_fp8_block_scales(32, 32); },
      [](kiln::Checkpoint& c) { c.attach_fp8_block_scales(48, 48); },
      [](kiln::Checkpoint& c) { c.attach_fp8_block_scales(48, 16); },
      [](kiln::Checkpoint& c) { c.attach_fp8_block_scales(1, 0, ".weight_scale"); },
      [](kiln::Checkpoint& c) { c.attach_fp8_block_scales(0, 0, ".weight_scale"); },
      [](kiln::Checkpoint& c) { c.attach_fp8_block_scales(32, 32, ".weight_scale"); }};
  for (const auto& unpack : layouts) {
    try {
      kiln::Checkpoint ck = kiln::Checkpoint::from_file(kiln::SafetensorsFile::from_memory(data, size, "fuzz"));
      unpack(ck);
      for (const auto& [name, t] : ck.all())
        if (t->dequantized_on_read() && t->numel() <= (int64_t(1) << 24)) {
          std::vector<float> v(size_t(t->numel()));
          kiln::read_f32(*t, v.data());
        }
    } catch (const kiln::CompileError&) {}
  }
  return 0;
}
