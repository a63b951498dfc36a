// Typed reads of a model's config.json with errors that name the file and key, shared by the
// LLaMA and DeepSeek config readers, plus the RoPE settings both families use.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kernels/dtype.h"

namespace kiln {

struct RopeConfig {
  std::string type = "default";  // default | linear | llama3 | yarn | longrope | ntk_alpha (the reader's)
  // ntk_alpha (HunYuan's "dynamic" with alpha): the base stretched to theta · alpha^(d / (d - 2)), which the
  // family's reader folds into theta (d: head_dim, as transformers takes it) before anything builds it.
  double alpha = 0;
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;                  // llama3
  int64_t original_max_position_embeddings = 8192;                       // llama3, yarn
  double beta_fast = 32, beta_slow = 1, mscale = 0, mscale_all_dim = 0;  // yarn
  double attention_factor = -1;                                          // yarn; < 0: derived from mscale
  bool truncate = true;                                                  // yarn
  // longrope (Phi-3): per-frequency divisors for sequences up to original_max_position_embeddings
  // (short) and beyond it (long; kiln refuses plans that long). factor: given, or
  // max_position_embeddings / original_max_position_embeddings.
  std::vector<double> short_factor, long_factor;
  // dynamic (transformers' dynamic NTK, its dynamic_rope_update): the default frequencies for sequences up to
  // max_position_embeddings, recomputed from the length beyond it. The family's reader folds its base, theta ·
  // ((factor · M / M) − (factor − 1))^(d / (d − 2)) (M: max_position_embeddings; theta up to rounding), into theta
  // and sets dynamic_positions to M: plans longer than that are refused (either RoPE of a model with two).
  int64_t dynamic_positions = 0;
  // Ministral 3's (read where set_llama4_scaling() asked for it): queries at position p scaled by
  // 1 + llama4_scaling_beta · ln(1 + floor(p / llama4_scaling_positions)), exactly 1 below llama4_scaling_positions
  // (original_max_position_embeddings as transformers' standardize_rope_params leaves it in the object).
  double llama4_scaling_beta = 0;
  int64_t llama4_scaling_positions = 0;
  std::string llama4_scaling_source;  // where the bound comes from, for errors
  // Phi-3.5-MoE's LongRoPE (read where set_phimoe_rope() asked for it): cos and sin times short_mscale (its
  // attention_factor here) up to original_max_position_embeddings, long_mscale past it, the short factors throughout
  // (transformers 5's PhimoeRotaryEmbedding).
  double long_mscale = 0;
};

// A GPTQ `dynamic` exclusion's pattern (after its "-:") in the form AutoRound and GPTQModel write:
// literal text, "\x" for a literal x, and ".*" for anything (at most kMaxGptqPattern characters each,
// kMaxGptqExclusions of them, kMaxGptqPatternBytes in all). parse() says whether p is of that form; matches() matches
// as Python's re.match does (from the name's start, to any end), in time linear in the name and the pattern. (Unlike
// Python's, ".*" here also matches a newline: a name holding one is refused more, never less.)
struct GptqPattern {
  bool anchored = true;                   // no leading ".*": the first segment starts the name
  std::vector<std::string> segments;      // the literal runs between ".*"s
  std::vector<std::vector<size_t>> fail;  // each segment's KMP failure table
  bool parse(const std::string& p);
  bool matches(const std::string& name) const;
};
constexpr size_t kMaxGptqPattern = 1024, kMaxGptqExclusions = 4096, kMaxGptqPatternBytes = 64 * 1024;
bool gptq_pattern_supported(const std::string& p);
// false for an unsupported pattern
bool gptq_pattern_matches(const std::string& p, const std::string& name);

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {}
  const nlohmann::json& doc() const { return j_; }
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const;
  // fail() names key `key` as `as_written` (a config read under its attributes' names, whose file spells some of
  // them otherwise: ExaoneConfig's attribute_map).
  void set_spelling(const std::string& key, const std::string& as_written) { spelled_.emplace_back(key, as_written); }
  // Whether key k of o is present and not null. A top-level key asked about counts as modeled
  // (unmodeled() leaves it out): the reader either builds its value or refuses it.
  bool has(const nlohmann::json& o, const char* k) const {
    if (&o == &j_) read_.insert(k);
    return o.contains(k) && !o[k].is_null();
  }
  bool has(const char* k) const { return has(j_, k); }
  // The key transformers 5 reads the model's RoPE from (convert_rope_params_to_dict: `rope_scaling
  // or rope_parameters`, the legacy key winning when it is not empty), or null when neither is set.
  const char* rope_key() const;
  // num_experts_per_tok (required, or `def` when absent), at most kMaxMoeTopK.
  int64_t experts_per_token(bool required, int64_t def = 0) const;
  // Refuses a quantized checkpoint (a non-null quantization_config), naming its quant_method:
  // its weights are not f32/bf16/f16, so --allow-unknown-config must not let it through either.
  void refuse_quantized() const;
  // The pre-quantized weights a LLaMA-family checkpoint holds: "" when none (no or a null
  // quantization_config), "compressed-tensors int8" for compressed-tensors pack-quantized 8-bit
  // symmetric per-channel weights with no activation quantization (llm-compressor's W8A16), or
  // "compressed-tensors int4 (groups of G)" for 4-bit symmetric groups of G values (W4A16; G a
  // multiple of 32), with the bits and G (0 for int8) in *bits and *group; anything else is refused
  // as refuse_quantized does, naming what kiln does not read. With `fp8` given, also
  // "compressed-tensors fp8 (...)": float-quantized (or naive-quantized) 8-bit float weights, stored as
  // F8_E4M3 X.weight with X.weight_scale, per channel, per tensor or in blocks; then fp8->on and its
  // block (0: the whole dimension: a channel is (1, 0), a tensor (0, 0)), bits 8 and group 0.
  struct Fp8Layout {
    bool on = false;
    int64_t block_rows = 0, block_cols = 0;
  };
  // With `asymmetric` given, 4-bit groups may also be asymmetric (a packed weight_zero_point each):
  // *asymmetric says so, and the name ends "asymmetric".
  std::string prequantized(int* bits = nullptr, int64_t* group = nullptr, Fp8Layout* fp8 = nullptr,
                           bool* asymmetric = nullptr) const;
  // A GPTQ checkpoint's weights (quant_method "gptq", as AutoGPTQ, GPTQModel and AutoRound write
  // it): "GPTQ int4 (groups of G)" (G a multiple of 32), with " asymmetric" when sym is false, or
  // "GPTQ int8 (per channel)" for symmetric 8-bit group_size -1 (*group 0);
  // *bits, *group and *asymmetric as prequantized() gives them. Refuses anything else (other bits,
  // act-order is checked on the tensors' g_idx, another checkpoint_format or pack_dtype, per-module
  // "dynamic" overrides, quantized activations), naming it.
  // `dynamic` may only list modules the writer left unquantized ("-:<pattern>": {}, as AutoRound writes
  // them; patterns of literal text, "\x" and ".*"): returned in *skipped, their checkpoint tensors plain
  // weights (unpack_prequantized checks them).
  std::string gptq(int* bits, int64_t* group, bool* asymmetric, std::vector<std::string>* skipped = nullptr) const;
  // DeepSeek-V3/R1's FP8 release: quant_method "fp8", fmt "e4m3", dynamic activations and a
  // weight_block_size [rows, columns]; returns false when there is no quantization_config, true with
  // the block size for that one, and refuses anything else as refuse_quantized does.
  bool fp8_blocks(int64_t* block_rows, int64_t* block_cols) const;
  // Whichever of the three a config's quantization_config is (none: all fields default): DeepSeek's FP8
  // blocks (fp8_blocks), GPTQ (gptq) or compressed-tensors (prequantized, its FP8 weights read as
  // DeepSeek's layout with their own scales' name).
  struct Quantization {
    std::string prequantized;                        // prequantized() or gptq(): "" or "… int8|int4 …"
    int bits = 0;                                    // 8 or 4 when prequantized
    int64_t group = 0;                               // int4: values per scale
    bool asymmetric = false;                         // int4 with zero points
    bool gptq = false;                               // GPTQ's tensors, not compressed-tensors'
    bool fp8 = false;                                // FP8 block-scaled weights, DeepSeek's or compressed-tensors'
    bool mxfp4 = false;                              // GPT-OSS's MXFP4 experts (quant_method "mxfp4")
    int64_t fp8_block_rows = 0, fp8_block_cols = 0;  // (compressed-tensors: 0 for the whole dimension)
    std::string fp8_scales = "weight_scale_inv";     // X.<this> scales X.weight (compressed-tensors: weight_scale)
    std::vector<std::string> gptq_skipped;           // GPTQ: patterns of modules left unquantized
    // What else the config says about which modules are quantized, checked against the tensors stored
    // (refuse_contradicted_exclusions, compiler/frontends/common.h): compressed-tensors' ignore and its
    // config groups' targets, GPTQ's lm_head, FP8's modules_to_not_convert.
    std::vector<std::string> ignore, targets, not_converted;
    bool targets_given = false;  // some config group has a targets list (targets may be empty)
    bool gptq_lm_head = false;
    // GPTQ (optimum's convert_model): only Linears under a block_name_to_quantize prefix whose names end
    // with an entry of modules_in_block_to_quantize (its lists joined) are quantized; absent: any.
    std::vector<std::string> gptq_blocks, gptq_block_modules;
    bool gptq_blocks_given = false, gptq_block_modules_given = false;
  };
  Quantization quantization() const;
  // A positive integer (at most 2^31), or `def` when absent and not required.
  int64_t pos_int(const nlohmann::json& o, const char* k, bool required, int64_t def = 0) const;
  int64_t pos_int(const char* k, bool required, int64_t def = 0) const { return pos_int(j_, k, required, def); }
  // A non-negative integer (at most 2^31).
  int64_t count(const char* k, int64_t def) const;
  // One count under either of two spellings (a config class's attribute_map), `def` when absent; two that
  // disagree refused.
  int64_t aliased_count(const char* key, const char* alias, int64_t def) const;
  // mlp_layer_types, where given: one "dense" or "sparse" per layer, written into sparse (sized `layers`); false
  // when absent. unchecked_by: the model class whose config does not validate the list (kiln still refuses other
  // lengths and types, saying what that class would do); null where the config class refuses them.
  bool mlp_layer_types(int64_t layers, std::vector<bool>* sparse, const char* unchecked_by = nullptr) const;
  // partial_rotary_factor for a model class whose attention rotates every dimension it builds its RoPE over a
  // fraction of (model: its name, in the refusal): only 1 runs. The RoPE object's value wins, else a top-level one
  // that is not null (transformers 5 moves it into the object where the object has none).
  void full_rotary_only(const std::string& model) const;

  double num(const nlohmann::json& o, const char* k, double def) const;
  double num(const char* k, double def) const { return num(j_, k, def); }
  // Absent: def; null: false (Python reads None as false; transformers keeps a null Optional[bool]).
  // With strict_booleans (transformers 5's config classes, which type their switches bool and refuse a null), a
  // null is refused by name unless `nullable` (a field the class types Optional[bool]).
  bool boolean(const char* k, bool def, bool nullable = false) const;
  // transformers 5's readers: a null boolean is refused unless boolean() is told the field is nullable.
  void set_strict_booleans() { strict_booleans_ = true; }
  // Refuses a null for switch k, which the config class types bool (a key read otherwise than by boolean()).
  void refuse_null_switch(const char* k) const {
    refuse_null(k,
                "which transformers 5 refuses (its config class types it bool, not Optional): give true or false, "
                "or leave it out for its default");
  }
  // Refuses key k when the file sets it null ("k is null, " + why), where transformers cannot build
  // the model from a null and kiln's reading of it would be a guess.
  void refuse_null(const char* k, const std::string& why) const {
    if (j_.contains(k) && j_[k].is_null()) fail(k, "is null, " + why);
  }
  // Refuses a null RoPE base k (rope_theta, Gemma 3's rope_local_base_freq) unless the RoPE object it
  // would fill in (null: none) gives its own rope_theta, as the config classes' setdefault reads it.
  void refuse_null_base(const char* k, const nlohmann::json* object) const {
    if (object && object->is_object() && object->contains("rope_theta") && !(*object)["rope_theta"].is_null()) return;
    refuse_null(k, "and the RoPE object gives no rope_theta of its own: transformers cannot compute its RoPE");
  }
  // Refuses a null for each key, which every config class kiln reads types as a value (transformers 5
  // refuses the file): read as the default, it would build a model transformers cannot.
  void refuse_null_values(std::initializer_list<const char*> keys, const std::string& architecture) const {
    for (const char* k : keys)
      refuse_null(k, "which transformers 5 refuses for " + architecture +
                         " (or cannot run): give its value, or leave it out for its default");
  }
  std::string str(const char* k, const std::string& def) const;
  // architecture(), refused by name when the config names none.
  std::string model_architecture() const;
  std::string architecture() const;  // architectures[0], or model_type, or ""
  // dtype / torch_dtype (float32, bfloat16, float16; where both are given they must agree); false when absent.
  bool dtype(DType* out) const;
  // rope_parameters (transformers 5) or rope_theta + rope_scaling (transformers 4).
  // default_theta: rope_theta when neither the config nor its RoPE object sets it (the config
  // class's default).
  // allowed_types: the rope types kiln builds here; an entry "old=new" reads type old as new.
  // partial_rotary: the caller reads partial_rotary_factor itself (Phi-3); otherwise a value other
  // than 1 in the RoPE object is left unmodeled.
  // top_level_theta false: the config class never reads a top-level rope_theta (GPTNeoXConfig: the caller
  // checks it), so default_theta is the base unless the RoPE object gives its own.
  RopeConfig rope(std::initializer_list<const char*> allowed_types, double default_theta = 10000.0,
                  bool partial_rotary = false, bool top_level_theta = true) const;
  // One RoPE object (`key` names it in errors and unmodeled keys) whose rope_theta defaults to
  // `theta`: Gemma 3's per-layer-type rope_parameters.
  RopeConfig rope_at(const nlohmann::json& params, const std::string& key, std::initializer_list<const char*> allowed,
                     double theta) const;
  // A key kiln builds only with one of these values (a list) or this value: any other is refused
  // by name. Absent and null are the default.
  void only(const char* k, const nlohmann::json& allowed) const;
  // A key the architecture's transformers class never reads, where `builds` is what that class
  // hard-wires (hub configs carry such keys: Phi-3.5's attention_bias false, Phi-4-mini's
  // remote-code keys at their identity values): that value is accepted, any other refused by name
  // (transformers would drop such biases from a checkpoint; remote code may act on the key).
  void hardwired(const char* k, const nlohmann::json& builds) const;
  // Strict configs: every top-level key that is neither modeled (asked about through this
  // reader) nor in `irrelevant` (keys known not to change the numbers: metadata, training-only
  // settings, generation defaults) and is not null, as "key = value". The frontends refuse them
  // (check_config_keys) unless --allow-unknown-config. Nested keys are the readers' own; rope()
  // adds the RoPE object's (as "rope_parameters.key = value").
  std::vector<std::string> unmodeled(std::initializer_list<const char*> irrelevant) const;

  // The model's max_position_embeddings (the config class's default when absent), which RoPE
  // objects fall back on as transformers' standardize_rope_params does: set it before rope().
  void set_max_positions(int64_t n) const { max_positions_ = n; }
  // rope() then reads the object's llama_4_scaling_beta and original_max_position_embeddings, both required
  // (Ministral3's attention reads them whatever the rope type); elsewhere llama_4_scaling_beta is an unknown key.
  void set_llama4_scaling() const { llama4_scaling_ = true; }
  // rope() then leaves M-RoPE's keys to the caller (check_mrope_section): mrope_section, and with `interleaved`
  // mrope_interleaved (Qwen3-VL's, never read: its sections always interleave); elsewhere they are unknown keys.
  void set_mrope(bool interleaved) const { mrope_ = interleaved ? 2 : 1; }
  // rope() reads PhimoeConfig's LongRoPE: short_mscale and long_mscale (numbers, required for any rope type but
  // default), original_max_position_embeddings from the object alone (else max_position_embeddings).
  void set_phimoe_rope() const { phimoe_rope_ = true; }
  // The model's llama3 or yarn RoPE's original_max_position_embeddings where a top-level one overrides the object's
  // (transformers' RoPE init standardizes the parameters again once every key is an attribute): the file's, a null
  // one refused; `object` where the file has none.
  int64_t top_level_original_positions(int64_t object, const std::string& type) const;

 private:
  // top_level_positions: the model's RoPE (not a layer type's), whose llama3 and yarn transformers computes with a
  // top-level original_max_position_embeddings over the object's (its RoPE init standardizes the parameters again
  // once every key of the file is an attribute).
  void rope_object(const nlohmann::json& params, const std::string& key, std::initializer_list<const char*> allowed,
                   RopeConfig* r, bool partial_rotary = false, bool top_level_positions = false) const;

  const nlohmann::json& j_;
  std::string path_;
  mutable std::set<std::string> read_;
  mutable int64_t max_positions_ = 0;
  mutable bool llama4_scaling_ = false;
  mutable int mrope_ = 0;  // (set_mrope: 1, or 2 with mrope_interleaved)
  mutable bool phimoe_rope_ = false;
  bool strict_booleans_ = false;
  std::vector<std::pair<std::string, std::string>> spelled_;  // (set_spelling's)
  mutable std::vector<std::string> nested_unmodeled_;
  mutable std::vector<std::string> quant_unmodeled_;  // prequantized()'s
};

// Keys every transformers config may carry that no forward pass reads: PretrainedConfig's own
// (transformers 4 and 5: metadata, generation defaults, training switches), for unmodeled().
#define KILN_TRANSFORMERS_IRRELEVANT_KEYS                                                                              \
  "transformers_version", "architectures", "model_type", "_name_or_path", "output_hidden_states", "return_dict",       \
      "use_return_dict", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss", "pruned_heads",         \
      "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder",     \
      "cross_attention_hidden_size", "id2label", "label2id", "problem_type", "finetuning_task",                        \
      "task_specific_params", "tokenizer_class", "prefix", "max_length", "min_length", "do_sample", "early_stopping",  \
      "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",               \
      "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", \
      "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",                       \
      "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",           \
      "begin_suppress_tokens", "sep_token_id", "decoder_start_token_id", "bos_token_id", "eos_token_id",               \
      "pad_token_id", "use_cache", "initializer_range", "initializer_factor", "attention_dropout", "dropout",          \
      "hidden_dropout", "embd_pdrop", "resid_pdrop", "output_router_logits", "router_aux_loss_coef", "auto_map",       \
      "_attn_implementation_autoset", "gradient_checkpointing", "pretraining_tp", "unsloth_version", "unsloth_fixed",  \
      /* transformers' GGUF loader writes these (metadata and a token id) */ "_model_name_or_path", "unk_token_id"
// Keys every diffusers config carries that change nothing.
#define KILN_DIFFUSERS_IRRELEVANT_KEYS "_diffusers_version", "_name_or_path", "_use_default_values"

// inv_freq (head_dim/2 floats) for any supported rope type, in f32 as transformers computes it.
std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim);
// The factor transformers multiplies cos and sin by (yarn's attention_factor; 1 otherwise).
double rope_attention_factor(const RopeConfig& rope);
// yarn's get_mscale: 1 for scale <= 1, else 0.1·mscale·ln(scale) + 1.
double yarn_get_mscale(double scale, double mscale);
// Whether Python reads the JSON value as false (`if value:`): null, false, 0, "", [] and {}.
bool python_falsy(const nlohmann::json& v);

}  // namespace kiln
