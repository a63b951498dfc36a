// PEFT LoRA adapters, merged into the weights at compile time.
//
// An adapter folder is what peft's save_pretrained writes: adapter_config.json and
// adapter_model.safetensors. Keys are module paths ("base_model.model." + the module's name
// in the base checkpoint), so one merge path serves every model family: a checkpoint tensor
// "<module>.weight" receives, in f32 and before the cast to the plan dtype,
//   W' = W + Σ_adapters s · scale · (B @ A)          (embeddings: (B @ A)ᵀ)
// (a 1×1 convolution's weight, A and B read as matrices, as peft merges them),
// with scale = alpha / r, or alpha / √r with rsLoRA, r and alpha per module from rank_pattern
// and alpha_pattern (peft's get_pattern_key rule), and s the user's weight. DoRA is merged as
// peft does (rows rescaled to the learned magnitude), for a single adapter of weight 1.
// lora_bias adds s · scale · lora_B.bias to the base bias. modules_to_save copies, and the
// base-layer weights peft saves for targeted embeddings, replace the base tensors (before any
// LoRA delta is added). Features kiln does not merge (bias other than "none", trainable tokens,
// target_parameters, layer replication, aLoRA, QALoRA) are refused with a clear error.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/safetensors.h"

namespace kiln {

class ThreadPool;

struct LoraAdapterSpec {
  std::string dir;
  double weight = 1.0;  // s
  // Where the adapter's modules live in the base checkpoint: "" for a model's own adapter;
  // for a pipeline component, its prefix there (e.g. "unet/", "text_encoder/text_model.").
  std::string prefix;
  // A PEFT folder leaves these empty. An adapter inside another file (one component of a
  // diffusers LoRA file) names the file, gives its config as JSON text, the prefix its keys
  // carry instead of "base_model.model.", and a display name; keys without that prefix (other
  // components') are skipped.
  std::string file, config_text, key_prefix, name;
};

// The prefix (of `candidates`) under which `base` holds the modules of the adapter: the first
// candidate that holds its first LoRA module. Throws CompileError when none does.
std::string find_lora_prefix(const LoraAdapterSpec& spec, const Checkpoint& base,
                             const std::vector<std::string>& candidates);

// A diffusers LoRA file (pytorch_lora_weights.safetensors, as save_lora_weights writes it, or a
// folder holding one): one spec per component it adapts ("unet", "text_encoder", ...), with
// r, lora_alpha and patterns from its lora_adapter_metadata (or, without metadata, r from the
// matrices and lora_alpha = r, as diffusers loads such files). A PEFT folder comes back as is.
// Throws CompileError on the older diffusers and kohya key formats, naming them.
std::vector<LoraAdapterSpec> expand_lora_spec(const LoraAdapterSpec& spec);

// Checks an adapter_config.json's text as load() would (throws CompileError); for fuzzing.
void check_lora_config_text(const std::string& text, const std::string& name);
// Whether target_modules given as a regular expression matches `module` in full, as Python's re
// does (RE2: linear in the name); throws CompileError for a pattern RE2 cannot match
// (backreferences, lookaround) or Python's re refuses.
bool lora_module_pattern_matches(const std::string& pattern, const std::string& module);
// The keys of an adapter config kiln does not model (tests).
std::vector<std::string> lora_config_unmodeled(const std::string& text, const std::string& name);

// Parses "DIR" or "DIR:WEIGHT" (the CLI's --lora syntax). Throws CompileError.
LoraAdapterSpec parse_lora_spec(const std::string& arg);

struct LoraRecord {   // what the plan records of each merged adapter
  std::string name;   // the folder's base name
  uint64_t xxh3 = 0;  // of adapter_config.json then adapter_model.safetensors
  double weight = 1.0;
};

class LoraSet {
 public:
  LoraSet();
  ~LoraSet();
  LoraSet(LoraSet&&) noexcept;
  LoraSet& operator=(LoraSet&&) noexcept;

  // Reads and validates every adapter against the base checkpoint: shapes, ranks, target
  // modules, unsupported features. Throws CompileError naming the adapter, module and shapes.
  // `tied_head`: the model ties its LM head to the embedding (as transformers reads it: the config
  // says so and the checkpoint has no lm_head.weight of other values).
  // `names`: how peft names the model's modules where the frontend renamed the checkpoint's (GPT-NeoX's
  // gpt_neox.layers.<i>.attention.query_key_value is kiln's model.layers.<i>.self_attn.qkv_proj): to_peft maps a
  // checkpoint module (or tensor) name to peft's, from_peft peft's back; null: the same names. Adapters, their
  // target_modules and patterns are read in peft's names; touches(), apply() and replacement() take the
  // checkpoint's.
  // `transposed`: the checkpoint tensors (kiln's names) the frontend transposed (GPT-2's Conv1D weights, stored
  // [in, out]); an adapter's saved copy of one is stored as the checkpoint stored it, and is transposed likewise.
  struct ModuleNames {
    std::function<std::string(const std::string&)> to_peft, from_peft;
    std::function<bool(const std::string&)> transposed;
    // A LoRA tensor's module path as peft renames it when it loads the adapter onto a transformers 5 model whose
    // checkpoint names it renames (EXAONE's hub names: peft applies the model's rules to the LoRA keys, leaving saved
    // copies as they are); null: as saved.
    std::function<std::string(const std::string&)> lora_path;
    // The MLP projections peft moves from target_modules to the fused experts' parameters on this model (the
    // transformers 5 MoE models it converts: gate_proj, up_proj and down_proj, the first two fused into one; empty:
    // none). A LoRA on such a projection outside the experts (a dense layer's, a shared expert's) it then leaves
    // unloaded, and a list naming one of the fused pair without the other it refuses: kiln refuses both.
    std::vector<std::string> moe_fused_targets;
  };
  static LoraSet load(const std::vector<LoraAdapterSpec>& specs, const Checkpoint& base, bool tied_head,
                      const ModuleNames& names = {});

  bool empty() const;
  // True if merging changes checkpoint tensor `name` (a ".weight" or ".bias").
  bool touches(const std::string& name) const;
  // The modules_to_save copy that replaces tensor `name`, or null. For a tied model whose
  // embedding an adapter saves, "lm_head.weight" is the model's embedding (or, under
  // ensure_weight_tying, the saved copy).
  const StTensor* replacement(const std::string& name) const;
  // True if a modules_to_save copy replaces tensor `name` (not a targeted layer's base_layer copy).
  bool saved_copy(const std::string& name) const;
  // True if a LoRA adapts a tied model's embedding without ensure_weight_tying: peft's model adds it
  // to the embedding only, so the head ("lm_head.weight", see replacement) keeps the model's weights.
  bool embedding_lora_unties() const;
  // Adds every adapter's contribution to `w`, the f32 values of checkpoint tensor `name`.
  void apply(const std::string& name, std::vector<float>& w, ThreadPool& pool) const;
  const std::vector<LoraRecord>& records() const;
  // Each adapter config with keys kiln does not model (the frontends refuse them by name unless
  // --allow-unknown-config: check_config_keys).
  const std::vector<std::pair<std::string, std::vector<std::string>>>& unmodeled_config_keys() const;
  // What the plan's notes should say of the adapters: names in target_modules or modules_to_save
  // that match no module of the model (peft skips them).
  const std::vector<std::string>& notes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
