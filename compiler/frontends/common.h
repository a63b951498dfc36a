// Pieces every frontend shares.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/config_reader.h"
#include "compiler/ir/graph.h"
#include "compiler/safetensors.h"

namespace kiln {

// Compares a checkpoint with the tensors its config implies (name → shape): throws one
// CompileError listing every missing, mis-shaped, non-float or unexpected tensor. Tensors for
// which ignorable(name) is true may be present or not.
// file_names: the checkpoint was renamed on reading (GPT-NeoX's): its tensors are named as the file has them
// (StTensor::name), a missing one as file_names gives it.
void check_checkpoint_tensors(const std::map<std::string, std::vector<int64_t>>& expected, const Checkpoint& ck,
                              const std::function<bool(const std::string&)>& ignorable,
                              const std::function<std::string(const std::string&)>& file_names = nullptr);

// Refuses a layer count the checkpoint cannot back (each layer has at least
// min_tensors_per_layer tensors) before anything is sized from it.
void check_layer_count(int64_t layers, const Checkpoint& ck, int64_t min_tensors_per_layer);

// The LLM program contract (runtime/context.h): inputs tokens/start_pos/n_valid.
struct LmProgramIo {
  uint32_t tokens, start_pos, n_valid;
};

// The programs of an LLM plan, each the whole model over `chunk` tokens per batch row:
//   prefill (chunk: --chunk) — logits of each row's last valid position only, (batch, vocab): what
//     generation reads, without an LM head over every prompt position;
//   score (chunk: --chunk) — logits of every position, (batch·chunk, vocab), for eval/score;
//   decode (chunk 1) — one token per row;
//   ingest (chunk: --chunk) — no LM head and no outputs: the layers, for their KV-cache writes;
//     the runtime runs it for every prefill chunk but a prompt's last (drop_dead_nodes then
//     removes the last layer's attention and MLP, which nothing reads).
struct LmProgramSpec {
  const char* name;
  int64_t chunk;
  bool last_rows;  // the LM head over each row's last valid position only
  bool head = true;
};
std::vector<LmProgramSpec> lm_programs(int64_t chunk);

// Starts one of those programs: its tokens state input (batch, chunk) and the embedding lookup
// into the residual stream x (batch·chunk, dim), times embed_scale (Gemma's √dim).
struct LmProgramStart {
  GraphProgram program;
  std::string prefix;  // "<name>." for the program's value names
  uint32_t tokens, x;
  int64_t rows;
  bool last_rows, head;
};
// (pos_table: GPT-2's and OPT's learned positions, added to the embedding at start_pos, which it needs; kNoTensor:
// none. norm_w, norm_b: BLOOM's LayerNorm of the embedding (eps norm_eps) before x, or with rms_norm nanochat's
// RMSNorm (norm_b unused); kNoTensor: none)
LmProgramStart begin_lm_program(Graph& g, const LmProgramSpec& spec, int64_t batch, int64_t dim, uint32_t embed,
                                double embed_scale = 1.0, uint32_t start_pos = kNoTensor,
                                uint32_t pos_table = kNoTensor, uint32_t norm_w = kNoTensor,
                                uint32_t norm_b = kNoTensor, double norm_eps = 0, bool rms_norm = false);

// y = LayerNorm(x)·w (+ b): layernorm version 1 with a bias, version 2 without one (Cohere's), so that a plan
// whose LayerNorms all have biases stays readable by a runtime from before version 2.
void add_layernorm(GraphProgram& P, uint32_t x, uint32_t w, uint32_t b, uint32_t y, double eps);

// Ends it: final RMSNorm (a LayerNorm with norm_bias or layer_norm) and LM head (plus lm_head_bias
// when given) over residual stream x (every row of x, or with last_rows each batch row's last
// valid one, the `last_rows` gather), soft-capped when logit_softcap > 0
// (Gemma: cap · tanh(logits / cap)), then the next token of each batch row (the `sample` kernel,
// with the "sampling" state input); names the contract's inputs and its "logits" and
// "next_token" outputs, and adds the program to g. A program without a head (`ingest`) names the
// inputs only.
void finish_lm_program(Graph& g, LmProgramStart st, uint32_t x, uint32_t norm, uint32_t lm_head, double eps,
                       const LmProgramIo& io, double logit_softcap = 0, uint32_t norm_bias = kNoTensor,
                       uint32_t lm_head_bias = kNoTensor, bool layer_norm = false);

// --- What every LLM frontend does around its graph (llama.cpp, deepseek.cpp).

// Refuses the options only a diffusers pipeline takes (--height, --steps, …).
void refuse_pipeline_options(const CompileOptions& o);

// The order that turns pairwise rotation (x0,x1),(x2,x3)... into rotate-half: evens, then odds
// (the identity unless pairwise). Rows of q and k reordered so inside each head turn a pairwise
// RoPE into kiln's, the attention scores unchanged (DeepSeek's rope_interleave, ERNIE 4.5).
std::vector<int64_t> deinterleave(int64_t d, bool pairwise);

// "model.layers.<i>.": where transformers' decoder layer i keeps its tensors.
inline std::string hf_layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }

// Sequence limits from the options, defaulting from the model's max_position_embeddings.
struct LlmLimits {
  int64_t max_seq, batch, chunk;
};
// prequantized: the checkpoint ships pre-quantized int8, int4 or FP8 weights that stay so (as shipped unless
// --quantize is given, which makes the plan CPU-only: compile.cpp), so the CPU's default chunk applies.
LlmLimits llm_limits(const CompileOptions& o, int64_t max_position_embeddings, bool prequantized = false);

// A GPTQ or compressed-tensors pre-quantized checkpoint's weights (q.prequantized not "") unpacked
// (Checkpoint::unpack_gptq, unpack_compressed, as its config says); refuses a checkpoint without such
// tensors, and (refuse_contradicted_exclusions, first, for FP8 checkpoints too) a module stored
// quantized that the config says is not.
// layers: the model's decoder layers (num_hidden_layers); tensors of layers past them (DeepSeek's
// multi-token-prediction layers, which kiln does not compile) are not checked.
// spellings: the names a module goes by in the config's lists besides kiln's (an image-text model's text
// modules: the file's and transformers 5's, image_text_spellings); null: kiln's only.
using ModuleSpellings = std::function<std::vector<std::string>(const std::string& module)>;
void unpack_prequantized(const CompileOptions& o, const ConfigReader::Quantization& q, Checkpoint& ck, int64_t layers,
                         const ModuleSpellings& spellings = nullptr);
// A module the checkpoint stores quantized (X.weight_packed, X.qweight, an F8_E4M3 X.weight) that the
// config says is not: listed in compressed-tensors' ignore or named by no config group's targets,
// GPTQ's lm_head with lm_head false or a dynamic "-:" pattern (q.gptq_skipped), one of FP8's
// modules_to_not_convert. A CompileError naming both (transformers would load such a module as the
// config says; kiln reads the tensors, so it refuses the contradiction rather than pick one). Names and
// patterns are matched as those libraries do where kiln can tell: compressed-tensors' exact names,
// classes of an nn.Linear (Linear, Module) and "re:" patterns of literal text, "\." and ".*" (re.match);
// transformers' modules_to_not_convert of literal text (a prefix ending at a "." or a suffix). A
// pattern of other regex syntax is not checked, nor are layers past `layers`. Called by
// unpack_prequantized.
// A list entry that names a module under any of its spellings names it (an exclusion that names it
// contradicts the tensors; a target or block that names it covers it).
void refuse_contradicted_exclusions(const ConfigReader::Quantization& q, const Checkpoint& ck, int64_t layers,
                                    const ModuleSpellings& spellings = nullptr);
// An image-text model's text module (kiln's name: model.X or lm_head) as the file names it
// (language_model.model.X, language_model.lm_head) and as transformers 5 holds it (model.language_model.X,
// lm_head), kiln's name first.
std::vector<std::string> image_text_spellings(const std::string& module);
// Whether checkpoint tensor `name` is a bias of zeros saved beside a GPTQ weight (as some writers, e.g.
// GPTQ-for-LLaMa's layers, save one with every projection): ignorable where the model has no bias.
bool gptq_zero_bias(const std::string& name, const Checkpoint& ck);
// A tied model whose checkpoint holds its head (lm_head.weight) and no embedding: transformers 5 ties the embedding
// to the head it loads, and so does kiln (the embedding reads the head's tensor). Returns a note, or "".
std::string embedding_from_tied_head(Checkpoint& ck, bool tie_word_embeddings);
// Refuses a pre-quantized embedding, and a pre-quantized lm_head.weight that config.json ties to it.
void refuse_prequantized_embedding(const Checkpoint& ck, bool tie_word_embeddings);
// transformers (5.x) ties the LM head to the embedding only when the checkpoint has no lm_head.weight
// or one equal to the embedding: a float lm_head.weight that differs is read as the head, untied
// (*tie set false), with a note; "" when nothing changes.
std::string untie_distinct_head(const Checkpoint& ck, bool* tie_word_embeddings);
// A LoRA adapter's modules_to_save copy of a tied model's embedding or head replaces that module
// only, as in peft's model: the head is then read apart from the embedding (LoraSet::replacement
// gives "lm_head.weight"). Returns a note, or "".
std::string untie_saved_copies(const LoraSet& lora, bool* tie_word_embeddings);
// The note for a plan dtype taken from the weights (no --dtype) where config.json's dtype names
// another, which transformers 5 loads in by default; "" otherwise.
std::string config_dtype_note(const CompileOptions& o, bool has_dtype, DType config_dtype, DType stored);

// The folder's tokenizer.json and tokenizer_config.json into g (unless --no-tokenizer), checked
// as the runtime will check them.
void read_llm_tokenizer(const CompileOptions& o, Graph& g);
// An FP8 checkpoint with block scales (quant_method "fp8", or compressed-tensors' e4m3 weights, whose
// scales are X.weight_scale and whose blocks may be whole rows or the tensor): attaches the scales
// (Checkpoint::attach_fp8_block_scales), so its weights read upcast where they are not kept as f8e4m3
// (keeps_fp8, compiler/compile.h); refuses it without FP8 tensors. Returns the plan note, which
// counts the weights of the model's `layers` and says what becomes of them; *skipped_scales, if given,
// gets the number of FP8 weights past them (their scales were attached, so a count of skipped tensors
// must add them).
std::string attach_fp8_weights(const CompileOptions& o, Checkpoint& ck, int64_t block_rows, int64_t block_cols,
                               int64_t layers, size_t* skipped_scales = nullptr,
                               const std::string& scales = "weight_scale_inv", int* model_weights = nullptr);
// Strict configs: the keys a config reader did not model (ConfigReader::unmodeled) are refused,
// naming them, unless --allow-unknown-config; then the returned note lists them for the plan.
std::string check_config_keys(const std::vector<std::string>& unmodeled, const std::string& path,
                              const CompileOptions& o);
// check_config_keys on every adapter config of `lora`, then the adapters' own notes (names that
// match no module, which peft skips).
std::string check_lora_config_keys(const LoraSet& lora, const CompileOptions& o);
// Appends a note to a plan's notes ("; " between notes).
void add_note(std::string* notes, const std::string& note);
// Puts td into g after the runtime's checks, and no more tokens than g.info.vocab_size (the
// vocab_size of `model`, for the error); `where` names the tokenizer's file.
void attach_tokenizer(Graph& g, TokenizerData td, const std::string& where, const std::string& model);

// The frontend's part of an LLM's compile summary.
CompileSummary llm_summary(DType plan_dtype, const LlmLimits& lim, const std::string& notes);

// Fills the plan's model info for an LLM.
void set_lm_info(Graph& g, const std::string& architecture, int64_t vocab, int64_t max_seq, int64_t batch,
                 int64_t chunk, DType source_dtype, DType plan_dtype, const std::string& config_json);

}  // namespace kiln
