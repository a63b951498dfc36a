#include "compiler/frontends/common.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "compiler/tokenizer_reader.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/sample.h"
#include "runtime/plan.h"  // shape_str

namespace kiln {

void check_layer_count(int64_t layers, const Checkpoint& ck, int64_t min_tensors_per_layer) {
  if (uint64_t(layers) > ck.all().size() / uint64_t(min_tensors_per_layer) + 1)
    throw CompileError("config.json gives " + std::to_string(layers) +
                       " layers (num_hidden_layers, the name its config class reads as it, or the class's default "
                       "where the file gives neither) but the checkpoint has only " +
                       std::to_string(ck.all().size()) + " tensors");
}

void check_checkpoint_tensors(const std::map<std::string, std::vector<int64_t>>& expected, const Checkpoint& ck,
                              const std::function<bool(const std::string&)>& ignorable,
                              const std::function<std::string(const std::string&)>& file_names) {
  std::vector<std::string> problems;
  for (const auto& [key, shape] : expected) {
    const StTensor* t = ck.find(key);
    if (!t) {
      problems.push_back("missing tensor '" + (file_names ? file_names(key) : key) + "' (expected shape " +
                         shape_str(shape) + ")");
      continue;
    }
    std::string what = "'" + (file_names ? t->name : key) + "'";
    // (a tied model's embedding read from its head: embedding_from_tied_head)
    if (key != "lm_head.weight" && t == ck.find("lm_head.weight"))
      what =
          "'" + (file_names ? t->name : std::string("lm_head.weight")) + "' (read as the tied embedding '" + key + "')";
    if (t->shape != shape)
      problems.push_back("tensor " + what + " in " + t->file + " has shape " + shape_str(t->shape) + ", expected " +
                         shape_str(shape) + " from config.json");
    else if ((!t->has_dtype || !dtype_is_float(t->dtype)) && !t->dequantized_on_read())
      problems.push_back("tensor " + what + " in " + t->file + " has dtype " + t->st_dtype +
                         " (supported: F32, BF16, F16)");
  }
  for (const auto& [key, t] : ck.all())
    if (!expected.count(key) && !ignorable(key))
      problems.push_back("unexpected tensor '" + (file_names ? t->name : key) + "' in " + t->file + " (shape " +
                         shape_str(t->shape) + ")");
  if (problems.empty()) return;
  std::string msg = "checkpoint does not match config.json (" + std::to_string(problems.size()) + " problem" +
                    (problems.size() > 1 ? "s" : "") + "): ";
  const size_t shown = std::min<size_t>(problems.size(), 8);
  for (size_t i = 0; i < shown; ++i) msg += (i ? "; " : "") + problems[i];
  if (shown < problems.size()) msg += "; and " + std::to_string(problems.size() - shown) + " more";
  throw CompileError(msg);
}

std::vector<LmProgramSpec> lm_programs(int64_t chunk) {
  return {{"prefill", chunk, true}, {"score", chunk, false}, {"decode", 1, false}, {"ingest", chunk, false, false}};
}

LmProgramStart begin_lm_program(Graph& g, const LmProgramSpec& spec, int64_t batch, int64_t dim, uint32_t embed,
                                double embed_scale, uint32_t start_pos, uint32_t pos_table, uint32_t norm_w,
                                uint32_t norm_b, double norm_eps, bool rms_norm) {
  LmProgramStart s;
  s.program.name = spec.name;
  s.prefix = std::string(spec.name) + ".";
  s.rows = batch * spec.chunk;
  s.last_rows = spec.last_rows;
  s.head = spec.head;
  s.tokens = g.state(s.prefix + "tokens", {batch, spec.chunk});
  s.x = g.activation(s.prefix + "x", {s.rows, dim});
  if (pos_table != kNoTensor && start_pos == kNoTensor)
    throw std::logic_error("begin_lm_program: a position table needs start_pos");
  const uint32_t e = norm_w == kNoTensor ? s.x : g.activation(s.prefix + "embedding", {s.rows, dim});
  if (pos_table == kNoTensor) add_node(s.program, kEmbeddingOpV2, {s.tokens, embed}, {e}, {}, {embed_scale});
  else add_node(s.program, kEmbeddingOp, {s.tokens, embed, start_pos, pos_table}, {e}, {}, {embed_scale});
  if (norm_w != kNoTensor && rms_norm) add_node(s.program, kRmsNormOp, {e, norm_w, kNoTensor}, {s.x}, {}, {norm_eps});
  else if (norm_w != kNoTensor) add_layernorm(s.program, e, norm_w, norm_b, s.x, norm_eps);
  return s;
}

void add_layernorm(GraphProgram& P, uint32_t x, uint32_t w, uint32_t b, uint32_t y, double eps) {
  add_node(P, b != kNoTensor ? kLayerNormOpV1 : kLayerNormOp, {x, w, b}, {y}, {}, {eps});
}

void finish_lm_program(Graph& g, LmProgramStart st, uint32_t x, uint32_t norm, uint32_t lm_head, double eps,
                       const LmProgramIo& io, double logit_softcap, uint32_t norm_bias, uint32_t lm_head_bias,
                       bool layer_norm) {
  GraphProgram& P = st.program;
  const std::string& prefix = st.prefix;
  const int64_t dim = g.values[x].shape[1], vocab = g.values[lm_head].shape[0];
  g.values[lm_head].lm_head = true;
  const int64_t batch = g.values[io.n_valid].shape[0];
  if (!st.head) {
    P.inputs = {{"tokens", io.tokens}, {"start_pos", io.start_pos}, {"n_valid", io.n_valid}};
    g.programs.push_back(std::move(P));
    return;
  }
  if (st.last_rows) {  // only the row each sequence continues from
    const uint32_t last = g.activation(prefix + "last_x", {batch, dim});
    add_node(P, kLastRowsOp, {x, io.n_valid}, {last});
    x = last;
  }
  const int64_t rows = g.values[x].shape[0];
  const uint32_t xn = g.activation(prefix + "final_norm", {rows, dim});
  const uint32_t logits = g.activation(prefix + "logits", {rows, vocab});
  if (norm_bias != kNoTensor || layer_norm) add_layernorm(P, x, norm, norm_bias, xn, eps);
  else add_node(P, kRmsNormOp, {x, norm, io.n_valid}, {xn}, {}, {eps});
  add_node(P, kMatmulOp, {xn, lm_head, lm_head_bias, io.n_valid}, {logits}, {0});
  if (logit_softcap > 0) add_node(P, kSoftcapOp, {logits}, {logits}, {}, {logit_softcap});
  // The next token of each batch row, sampled on the backend itself with the parameters in the
  // step state: a generate loop reads these few bytes instead of copying every row of logits
  // back and scanning them on the host.
  const uint32_t params = g.state(prefix + "sampling", {batch, kSampleParamWords});
  const uint32_t next = g.activation(prefix + "next_token", {batch}, DType::I32);
  add_node(P, kSampleOp, {logits, io.n_valid, params}, {next});
  P.inputs = {{"tokens", io.tokens}, {"start_pos", io.start_pos}, {"n_valid", io.n_valid}, {"sampling", params}};
  P.outputs = {{"logits", logits}, {"next_token", next}};
  g.programs.push_back(std::move(P));
}

std::vector<int64_t> deinterleave(int64_t d, bool pairwise) {
  std::vector<int64_t> p(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) p[size_t(i)] = pairwise ? (i < d / 2 ? 2 * i : 2 * (i - d / 2) + 1) : i;
  return p;
}

void refuse_pipeline_options(const CompileOptions& o) {
  const CompileOptions defaults;
  if (o.height != 0 || o.width != 0 || o.steps != defaults.steps || o.sampler != defaults.sampler ||
      o.guidance != defaults.guidance || !o.controlnet.empty() || o.control_scale != defaults.control_scale)
    throw CompileError(
        "--height, --width, --steps, --sampler, --guidance, --controlnet and --control-scale are for "
        "diffusers pipelines (a folder with model_index.json); " +
        o.model_dir + " has none");
}

LlmLimits llm_limits(const CompileOptions& o, int64_t max_position_embeddings, bool prequantized) {
  LlmLimits l;
  if (o.max_seq < 0) throw CompileError("--max-seq must be positive");
  l.max_seq = o.max_seq > 0 ? o.max_seq : std::min<int64_t>(max_position_embeddings, 2048);
  if (l.max_seq > (int64_t(1) << 24)) throw CompileError("--max-seq " + std::to_string(l.max_seq) + " is too large");
  if (o.batch <= 0 || o.batch > 4096) throw CompileError("--batch must be between 1 and 4096");
  l.batch = o.batch;
  if (o.chunk < 0) throw CompileError("--chunk must be positive");
  // A CPU-only plan prefills 128 tokens a replay by default: its GEMM reads every weight once per chunk,
  // so longer chunks amortise that (SmolLM2 f32 on the dev VM: a 2,000-token prompt 3.60 -> 3.15 s,
  // 128 tokens 169 -> 146 ms; a 10-token prompt 39 -> 44 ms, the padding rows' elementwise ops).
  const int64_t default_chunk = cpu_only_plan(o, prequantized) ? 128 : 64;
  l.chunk = o.chunk > 0 ? o.chunk : std::min<int64_t>(default_chunk, l.max_seq);
  if (l.chunk > l.max_seq)
    throw CompileError("--chunk " + std::to_string(l.chunk) + " exceeds --max-seq " + std::to_string(l.max_seq));
  return l;
}

void read_llm_tokenizer(const CompileOptions& o, Graph& g) {
  TokenizerData td;
  std::string notes;
  if (o.no_tokenizer || !read_hf_tokenizer(o.model_dir, &td, &notes, !o.no_chat_template)) {
    add_note(&g.info.notes, generation_notes_without_tokenizer(o.model_dir));
    // A slow tokenizer's files (the hub's OPT and older GPT-2-era repos ship no tokenizer.json): not read, said so.
    std::string found;
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer.model"})
      if (path_exists(o.model_dir + "/" + f)) found += (found.empty() ? "" : ", ") + std::string(f);
    if (!o.no_tokenizer && !found.empty())
      add_note(&g.info.notes,
               "the folder's " + found +
                   " not read: kiln reads tokenizer.json (transformers' AutoTokenizer.from_pretrained(folder)"
                   ".save_pretrained(folder) writes one), so the plan has no tokenizer");
    return;
  }
  add_note(&g.info.notes, notes);
  attach_tokenizer(g, std::move(td), o.model_dir + "/tokenizer.json", "model");
}

namespace {

// A module name or pattern of a quantization config, classified once: matches() is 1 where it names
// the Linear `module`, 0 where it does not, -1 where kiln cannot tell (a regex beyond literal text, "\."
// and ".*").
struct ModuleEntry {
  std::string text;
  int kind = 0;         // 0: exact name (or a compressed-tensors class name), 1: a pattern, -1: not evaluated
  bool suffix = false;  // (transformers) a suffix matches too, and a prefix at a module boundary
  GptqPattern pattern;

  // compressed-tensors' match_name and _match_class: "re:" + re.match, an exact name, or a class of the
  // module's MRO (an nn.Linear: Linear, Module).
  static ModuleEntry compressed_tensors(const std::string& e) {
    ModuleEntry m;
    m.text = e;
    if (e.rfind("re:", 0) == 0) m.kind = m.pattern.parse(e.substr(3)) ? 1 : -1;
    return m;
  }
  // transformers' should_convert_module: the key as a regex, matched from the start up to a module
  // boundary, or as a suffix; evaluated as literal text only (which a regex of it also matches).
  static ModuleEntry transformers(const std::string& key) {
    ModuleEntry m;
    m.text = key;
    m.kind = key.find_first_of("\\*+?()[]{}|^$") != std::string::npos ? -1 : 0;
    m.suffix = true;
    return m;
  }
  int matches(const std::string& module) const {
    if (kind != 0) return kind < 0 ? -1 : int(pattern.matches(module));
    if (!suffix) return int(text == module || text == "Linear" || text == "Module");
    const size_t n = text.size();
    if (module.size() >= n && module.compare(module.size() - n, n, text) == 0) return 1;
    return module.compare(0, n, text) == 0 && (module.size() == n || module[n] == '.' || (n > 0 && text.back() == '.'));
  }
};

}  // namespace

std::vector<std::string> image_text_spellings(const std::string& module) {
  static const std::string kModel = "model.";
  if (module.compare(0, kModel.size(), kModel) == 0)
    return {module, "language_model." + module, "model.language_model." + module.substr(kModel.size())};
  return {module, "language_model." + module};
}

void refuse_contradicted_exclusions(const ConfigReader::Quantization& q, const Checkpoint& ck, int64_t layers,
                                    const ModuleSpellings& spellings) {
  auto ends = [](const std::string& n, const std::string& suffix) {
    return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::vector<GptqPattern> skipped(q.gptq_skipped.size());  // (ConfigReader::gptq checked that they parse)
  for (size_t i = 0; i < skipped.size(); ++i)
    if (!skipped[i].parse(q.gptq_skipped[i])) throw CompileError("internal: GPTQ pattern '" + q.gptq_skipped[i] + "'");
  std::vector<ModuleEntry> ignore, targets, not_converted;
  for (const std::string& e : q.ignore) ignore.push_back(ModuleEntry::compressed_tensors(e));
  for (const std::string& e : q.targets) targets.push_back(ModuleEntry::compressed_tensors(e));
  for (const std::string& e : q.not_converted) not_converted.push_back(ModuleEntry::transformers(e));
  static const std::string kLayers = "model.layers.";
  for (const auto& kv : ck.all()) {
    const std::string& n = kv.first;
    const StTensor& t = *kv.second;
    // (layers past the model's, DeepSeek's multi-token-prediction ones, are not compiled: not checked)
    if (n.compare(0, kLayers.size(), kLayers) == 0 && std::atoll(n.c_str() + kLayers.size()) >= layers) continue;
    std::string module;  // the module n stores quantized, if it does
    for (const char* suffix : {".weight_packed", ".qweight"})
      if (ends(n, suffix)) module = n.substr(0, n.size() - std::string(suffix).size());
    if (ends(n, ".weight") && t.st_dtype.rfind("F8_E4M3", 0) == 0) module = n.substr(0, n.size() - 7);
    if (module.empty()) continue;
    auto refuse = [&](const std::string& why) {  // (named as the file names them: t.name)
      const std::string file_module = t.name.substr(0, t.name.size() - (n.size() - module.size()));
      throw CompileError(t.file + ": '" + file_module + "' is stored quantized (" + t.name + "), but config.json's " +
                         why);
    };
    const std::vector<std::string> names = spellings ? spellings(module) : std::vector<std::string>{module};
    auto any_name = [&](const std::function<bool(const std::string&)>& f) {
      return std::any_of(names.begin(), names.end(), f);
    };
    for (const ModuleEntry& e : ignore)
      if (any_name([&](const std::string& m) { return e.matches(m) == 1; }))
        refuse("quantization_config.ignore lists it (\"" + e.text + "\")");
    if (q.targets_given && std::none_of(targets.begin(), targets.end(), [&](const ModuleEntry& e) {
          return any_name([&](const std::string& m) { return e.matches(m) != 0; });
        }))
      refuse("quantization_config.config_groups target no such module (targets: " + nlohmann::json(q.targets).dump() +
             ")");
    for (size_t i = 0; i < skipped.size(); ++i)
      if (any_name([&](const std::string& m) { return skipped[i].matches(m); }))
        refuse("quantization_config.dynamic \"-:" + q.gptq_skipped[i] + "\" says the module was left unquantized");
    if (q.gptq && !q.gptq_lm_head && module == "lm_head")
      refuse("quantization_config.lm_head is false (the LM head left unquantized)");
    auto listed = [](const std::vector<std::string>& v) {  // (its first 200 characters)
      const std::string s = nlohmann::json(v).dump(-1, ' ', true);
      return s.size() <= 200 ? s : s.substr(0, 200) + "...";
    };
    if (q.gptq && module != "lm_head" && q.gptq_blocks_given &&
        std::none_of(q.gptq_blocks.begin(), q.gptq_blocks.end(), [&](const std::string& b) {
          return any_name([&](const std::string& m) { return m.compare(0, b.size(), b) == 0; });
        }))  // (optimum: startswith)
      refuse("quantization_config.block_name_to_quantize " + listed(q.gptq_blocks) +
             " names no block it is in (the module was left unquantized)");
    if (q.gptq && module != "lm_head" && q.gptq_block_modules_given &&
        std::none_of(q.gptq_block_modules.begin(), q.gptq_block_modules.end(), [&](const std::string& e) {
          return any_name([&](const std::string& m) { return ends(m, e) || m == e; });
        }))
      refuse("quantization_config.modules_in_block_to_quantize " + listed(q.gptq_block_modules) +
             " has no name it ends with (the module was left unquantized)");
    for (const ModuleEntry& e : not_converted)
      if (any_name([&](const std::string& m) { return e.matches(m) == 1; }))
        refuse("quantization_config.modules_to_not_convert lists it (\"" + e.text + "\")");
  }
}

void unpack_prequantized(const CompileOptions& o, const ConfigReader::Quantization& q, Checkpoint& ck, int64_t layers,
                         const ModuleSpellings& spellings) {
  refuse_contradicted_exclusions(q, ck, layers, spellings);
  if (q.prequantized.empty()) return;
  if (q.gptq && ck.unpack_gptq(q.bits, q.group, q.asymmetric) == 0)
    throw CompileError(o.model_dir +
                       ": config.json's quantization_config is GPTQ, but the checkpoint has no *.qweight tensor");
  if (!q.gptq && ck.unpack_compressed(q.bits, q.group, q.asymmetric) == 0)
    throw CompileError(o.model_dir +
                       ": config.json's quantization_config is compressed-tensors, but the checkpoint has "
                       "no *.weight_packed tensor");
}

// Some GPTQ writers (GPTQ-for-LLaMa's layers) save a bias of zeros with every quantized projection,
// biased in the model or not: one the model does not have is ignored when it is all zeros (adding
// nothing), and refused as an unexpected tensor otherwise.
bool gptq_zero_bias(const std::string& name, const Checkpoint& ck) {
  static const std::string kBias = ".bias";
  if (name.size() <= kBias.size() || name.compare(name.size() - kBias.size(), kBias.size(), kBias) != 0) return false;
  const StTensor* w = ck.find(name.substr(0, name.size() - kBias.size()) + ".weight");
  const StTensor* b = ck.find(name);
  if (!w || !w->gptq_bits || !b || !b->has_dtype || !dtype_is_float(b->dtype) || b->dequantized_on_read()) return false;
  std::vector<float> v(size_t(b->numel()));
  read_f32(*b, v.data());
  return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
}

std::string embedding_from_tied_head(Checkpoint& ck, bool tie_word_embeddings) {
  if (!tie_word_embeddings || ck.find("model.embed_tokens.weight") ||
      !ck.alias("model.embed_tokens.weight", "lm_head.weight"))
    return "";
  return "the checkpoint holds the tied LM head and no embedding: the embedding is the head's weights, as "
         "transformers 5 ties them";
}

std::string untie_distinct_head(const Checkpoint& ck, bool* tie_word_embeddings) {
  const StTensor* h = ck.find("lm_head.weight");
  const StTensor* e = ck.find("model.embed_tokens.weight");
  if (!*tie_word_embeddings || !h || !e || h->row_scale || !h->has_dtype || !dtype_is_float(h->dtype)) return "";
  if (h->shape == e->shape && h->st_dtype == e->st_dtype && h->size == e->size && !h->dequantized_on_read() &&
      !e->dequantized_on_read() && std::memcmp(h->data, e->data, size_t(h->size)) == 0)
    return "";  // (the same values: tied)
  *tie_word_embeddings = false;
  return "config.json ties the LM head to the embedding, but the checkpoint's lm_head.weight differs from it: "
         "read as the head, untied, as transformers reads it";
}

std::string config_dtype_note(const CompileOptions& o, bool has_dtype, DType config_dtype, DType stored) {
  if (!o.dtype.empty() || !has_dtype || config_dtype == stored) return "";
  return std::string("config.json's dtype is ") + dtype_name(config_dtype) + " and the weights are " +
         dtype_name(stored) + ": the plan computes in " + dtype_name(stored) +
         " (transformers loads in the config's dtype by default; --dtype " + dtype_name(config_dtype) + " matches it)";
}

std::string untie_saved_copies(const LoraSet& lora, bool* tie_word_embeddings) {
  if (*tie_word_embeddings && lora.embedding_lora_unties()) {
    *tie_word_embeddings = false;
    return "a LoRA adapter adapts the tied embedding without ensure_weight_tying: as peft's model runs it, the LM "
           "head keeps the model's weights (read apart from the embedding; peft's merge_and_unload would change "
           "the head too)";
  }
  if (!*tie_word_embeddings || !(lora.saved_copy("model.embed_tokens.weight") || lora.saved_copy("lm_head.weight")))
    return "";
  *tie_word_embeddings = false;
  return "a LoRA adapter's modules_to_save replaces the tied embedding or LM head: the two are read apart, as "
         "peft's model has them";
}

void refuse_prequantized_embedding(const Checkpoint& ck, bool tie_word_embeddings) {
  const StTensor* h = ck.find("lm_head.weight");
  if (h && h == ck.find("model.embed_tokens.weight") && h->dequantized_on_read())  // (embedding_from_tied_head's)
    throw CompileError(h->file +
                       ": 'lm_head.weight' is pre-quantized, and config.json ties the embedding to it (the checkpoint "
                       "holds no embedding of its own); kiln reads pre-quantized Linear weights only");
  if (h && h->dequantized_on_read() && tie_word_embeddings)
    throw CompileError(h->file +
                       ": 'lm_head.weight' is pre-quantized, but config.json ties the LM head to the embedding "
                       "(tie_word_embeddings true, or its config class's default when the file gives none), which "
                       "kiln would read in its place");
  if (const StTensor* e = ck.find("model.embed_tokens.weight"); e && e->row_scale)
    throw CompileError(e->file +
                       ": the embedding 'model.embed_tokens.weight' is pre-quantized; "
                       "kiln reads pre-quantized Linear weights only");
}

std::string attach_fp8_weights(const CompileOptions& o, Checkpoint& ck, int64_t block_rows, int64_t block_cols,
                               int64_t layers, size_t* skipped_scales, const std::string& scales, int* model_weights) {
  const std::string blocks = block_rows == 1 && block_cols == 0 ? std::string("per-row")
                             : block_rows == 0 && block_cols == 0
                                 ? std::string("per-tensor")
                                 : std::to_string(block_rows) + "x" + std::to_string(block_cols) + " block";
  const std::vector<std::string> names = ck.attach_fp8_block_scales(block_rows, block_cols, "." + scales);
  if (names.empty())
    throw CompileError(o.model_dir +
                       ": config.json's quantization_config is fp8, but the checkpoint has no F8_E4M3 "
                       "tensor");
  // Weights of layers past the model's (DeepSeek's multi-token-prediction layers) are not compiled.
  size_t extra = 0;
  static const std::string kLayers = "model.layers.";
  for (const std::string& n : names)
    if (n.compare(0, kLayers.size(), kLayers) == 0 && std::atoll(n.c_str() + kLayers.size()) >= layers) ++extra;
  if (skipped_scales) *skipped_scales = extra;
  if (model_weights) *model_weights = int(names.size() - extra);
  const std::string fate = keeps_fp8(o, scales == "weight_scale_inv")
                               ? "kept as f8e4m3 where a matmul or the MoE experts read them"
                           : o.quantize.empty()   ? "upcast to " + o.dtype
                           : o.quantize == "none" ? std::string("dequantized (--quantize none)")
                                                  : "dequantized, then --quantize " + o.quantize + " applies";
  return std::to_string(names.size() - extra) + " FP8 e4m3 checkpoint weights (" + blocks + " scales) " + fate;
}

std::string check_config_keys(const std::vector<std::string>& unmodeled, const std::string& path,
                              const CompileOptions& o) {
  if (unmodeled.empty()) return "";
  std::string list;
  for (const std::string& k : unmodeled) list += (list.empty() ? "" : ", ") + k;
  if (!o.allow_unknown_config)
    throw CompileError(path + ": " + list + (unmodeled.size() > 1 ? ": keys" : ": a key") +
                       " kiln does not model, which may change the model; kiln refuses rather than ignore " +
                       (unmodeled.size() > 1 ? "them" : "it") +
                       " (--allow-unknown-config compiles anyway and notes it in the plan)");
  return "ignored config keys (--allow-unknown-config) in " + path + ": " + list;
}

std::string check_lora_config_keys(const LoraSet& lora, const CompileOptions& o) {
  std::string notes;
  for (const auto& [path, keys] : lora.unmodeled_config_keys()) add_note(&notes, check_config_keys(keys, path, o));
  for (const std::string& n : lora.notes()) add_note(&notes, n);
  return notes;
}

void add_note(std::string* notes, const std::string& note) {
  if (note.empty()) return;
  *notes += (notes->empty() ? "" : "; ") + note;
}

void attach_tokenizer(Graph& g, TokenizerData td, const std::string& where, const std::string& model) {
  if (int64_t(td.vocab.size()) > g.info.vocab_size)
    throw CompileError(where + ": " + std::to_string(td.vocab.size()) + " tokens, more than the " + model +
                       "'s vocab_size " + std::to_string(g.info.vocab_size));
  auto check = Tokenizer::create(td);  // the runtime's own checks, before anything is written
  if (!check.is_ok()) throw CompileError(where + ": " + check.status().message());
  g.tokenizer = std::move(td);
}

CompileSummary llm_summary(DType plan_dtype, const LlmLimits& lim, const std::string& notes) {
  CompileSummary s;
  s.plan_dtype = plan_dtype;
  s.max_seq = lim.max_seq;
  s.batch = lim.batch;
  s.chunk = lim.chunk;
  s.notes = notes;
  return s;
}

void set_lm_info(Graph& g, const std::string& architecture, int64_t vocab, int64_t max_seq, int64_t batch,
                 int64_t chunk, DType source_dtype, DType plan_dtype, const std::string& config_json) {
  g.info.architecture = architecture;
  g.info.vocab_size = vocab;
  g.info.max_seq = max_seq;
  g.info.batch = batch;
  g.info.chunk = chunk;
  g.info.source_dtype = source_dtype;
  g.info.plan_dtype = plan_dtype;
  g.info.config_json = config_json;
}

}  // namespace kiln
