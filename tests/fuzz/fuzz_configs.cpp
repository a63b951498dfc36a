// libFuzzer target: any text as config.json (LLaMA and DeepSeek readers, GPTQ exclusion patterns) and as
// a LoRA adapter_config.json. Must never crash; refusals are CompileErrors.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/deepseek_config.h"
#include "compiler/error.h"
#include "compiler/llama_config.h"
#include "compiler/lora.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    kiln::LlamaConfig c = kiln::parse_llama_config(text, "config.json");
    (void)kiln::rope_inv_freq(c.rope, c.head_dim > 4096 ? 4096 : c.head_dim);
    for (const std::string& p : c.quant.gptq_skipped) {  // GPTQ exclusions, against the input as a name too
      (void)kiln::gptq_pattern_matches(p, "model.layers.0.self_attn.kv_a_proj_with_mqa");
      (void)kiln::gptq_pattern_matches(p, text.substr(0, 4096));
    }
  } catch (const kiln::CompileError&) {}
  try {
    kiln::DeepseekConfig c = kiln::parse_deepseek_config(text, "config.json");
    (void)c.softmax_scale();
    (void)kiln::rope_inv_freq(c.rope, c.qk_rope_head_dim > 4096 ? 4096 : c.qk_rope_head_dim);
  } catch (const kiln::CompileError&) {}
  try {
    kiln::check_lora_config_text(text, "adapter_config.json");
  } catch (const kiln::CompileError&) {}
  return 0;
}
