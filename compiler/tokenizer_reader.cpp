#include "compiler/tokenizer_reader.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "compiler/error.h"
#include "compiler/json_util.h"
#include "compiler/safetensors.h"  // path_exists: a FIFO there is refused by name, not skipped
#include "runtime/regex_split.h"
#include "runtime/text.h"  // byte_alphabet: GPT-2's byte ↔ unicode mapping

namespace kiln {

namespace {

using json = nlohmann::json;

const char* kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen2's: LLaMA-3's with single digits.
const char* kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const std::string kSpace = "\xE2\x96\x81";
// DeepSeek-V3's three splits (CR and LF written as regex escapes; see normalize_regex).
const char* kDsDigits = "\\p{N}{1,3}";
const char* kDsCjk = "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+";
const char* kDsMain =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Regexes reach tokenizer.json with CR/LF either as regex escapes or as the characters
// themselves (DeepSeek's); compare them in the escaped form.
std::string normalize_regex(const std::string& re) {
  std::string out;
  for (char c : re) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

// One tokenizer.json merge: "a b" (tokenizers < 0.20) or ["a", "b"]; false when it is neither.
bool merge_of(const json& m, std::string* a, std::string* b) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ', 1);
    if (sp == std::string::npos) return false;
    *a = s.substr(0, sp);
    *b = s.substr(sp + 1);
    return true;
  }
  if (!(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())) return false;
  *a = m[0].get<std::string>();
  *b = m[1].get<std::string>();
  return true;
}

// The children of a Sequence node (or the node itself).
std::vector<json> flatten(const json& j, const char* list_key) {
  if (j.is_null()) return {};
  if (type_of(j) == "Sequence" && j.contains(list_key) && j[list_key].is_array()) {
    std::vector<json> out;
    for (const json& c : j[list_key]) out.push_back(c);
    return out;
  }
  return {j};
}

// A token field of tokenizer_config.json: "text" or {"content": "text", ...}.
std::string token_text(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// A string field, or def where the node is not an object or the field not a string (a wrong type
// then fails the caller's comparison with its own message instead of a JSON type error).
std::string text_of(const json& j, const char* k, const std::string& def) {
  return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : def;
}

bool flag(const json& j, const char* k, bool def = false) {
  return j.contains(k) && j[k].is_boolean() ? j[k].get<bool>() : def;
}

// Appends a remark to the compile notes (null: none wanted), "; " between remarks.
void append_note(std::string* notes, const std::string& n) {
  if (notes) *notes += std::string(notes->empty() ? "" : "; ") + n;
}

// Notes the generation settings of a generation config (generation_config.json, or config.json's
// legacy keys) that change transformers' generate, none of which a plan holds: the sampling ones
// kiln generate and chat take as options (and hosts as kiln_sampling), and those kiln does not
// apply at all. Values that are transformers' defaults change nothing and are not named.
void note_generation_settings(const json& g, const std::string& file, std::string* notes) {
  struct Key {
    const char* name;
    json neutral;  // transformers' default, or null
  };
  static const Key kOptions[] = {{"do_sample", false}, {"temperature", 1.0},        {"top_p", 1.0},
                                 {"top_k", 50},        {"max_new_tokens", nullptr}, {"max_length", 20}};
  static const Key kNotApplied[] = {{"repetition_penalty", 1.0},
                                    {"no_repeat_ngram_size", 0},
                                    {"num_beams", 1},
                                    {"num_beam_groups", 1},
                                    {"min_p", nullptr},
                                    {"typical_p", 1.0},
                                    {"epsilon_cutoff", 0.0},
                                    {"eta_cutoff", 0.0},
                                    {"top_h", nullptr},
                                    {"suppress_tokens", nullptr},
                                    {"begin_suppress_tokens", nullptr},
                                    {"bad_words_ids", nullptr},
                                    {"sequence_bias", nullptr},
                                    {"min_new_tokens", nullptr},
                                    {"min_length", 0},
                                    {"forced_bos_token_id", nullptr},
                                    {"forced_eos_token_id", nullptr},
                                    {"exponential_decay_length_penalty", nullptr},
                                    {"stop_strings", nullptr},
                                    {"penalty_alpha", nullptr},
                                    {"diversity_penalty", 0.0},
                                    {"encoder_repetition_penalty", 1.0},
                                    {"encoder_no_repeat_ngram_size", 0},
                                    {"guidance_scale", nullptr},
                                    {"renormalize_logits", false},
                                    {"watermarking_config", nullptr},
                                    {"num_return_sequences", 1},
                                    {"max_time", nullptr},
                                    {"dola_layers", nullptr}};
  auto list = [&](const auto& keys) {
    std::string out;
    for (const Key& k : keys)
      if (g.contains(k.name) && !g[k.name].is_null() && g[k.name] != k.neutral)  // (1 == 1.0 in json)
        out += (out.empty() ? "" : ", ") + std::string(k.name) + " " + g[k.name].dump().substr(0, 80);
    return out;
  };
  auto note = [&](const std::string& n) { append_note(notes, n); };
  const std::string options = list(kOptions), not_applied = list(kNotApplied);
  const bool sampled = g.contains("do_sample") && g["do_sample"] == true;
  if (!options.empty())
    note(file + "'s " + options +
         " are not in the plan: kiln generate and chat take --temperature, --top-p, --top-k and "
         "--max-new-tokens (greedy by default), hosts their own kiln_sampling" +
         (sampled && (!g.contains("top_k") || g["top_k"].is_null())
              ? " (transformers samples with its default top_k 50 where the config names none)"
              : ""));
  if (!not_applied.empty())
    note(file + "'s " + not_applied + " change transformers' generate, and kiln does not apply them");
}

// The generation config transformers' generate reads: generation_config.json, else (built from
// its legacy keys) config.json, where an image-text model's special token ids come from its
// text_config when the top level gives none (GenerationConfig.from_model_config reads the decoder's
// config too; transformers 5 saves them there); the file's name and its object, or an empty name.
std::pair<std::string, json> generation_config(const std::string& dir) {
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::string file = dir + "/" + name;
    if (!path_exists(file)) continue;
    const std::string text = read_text_file(file);
    json g = parse_json_limited(text.data(), text.data() + text.size(), file);
    if (!g.is_object()) {
      if (std::string(name) == "config.json") return {"", json()};  // (config.json's own reader refuses it)
      throw CompileError(file + ": not a JSON object (transformers' GenerationConfig cannot read it)");
    }
    if (std::string(name) == "config.json" && g.contains("text_config") && g["text_config"].is_object())
      for (const char* k : {"eos_token_id", "bos_token_id", "pad_token_id"})
        if ((!g.contains(k) || g[k].is_null()) && g["text_config"].contains(k)) g[k] = g["text_config"][k];
    return {name, std::move(g)};
  }
  return {"", json()};
}

// Adds the stop tokens transformers' generate would use (the generation config's eos_token_id, one
// id or a list) to d->stop_ids, and notes its settings, which a plan does not hold.
void add_generation_stop_ids(const std::string& dir, TokenizerData* d, std::string* notes) {
  auto note = [&](const std::string& n) { append_note(notes, n); };
  const auto [name, g] = generation_config(dir);
  if (name.empty()) return;
  note_generation_settings(g, name, notes);
  if (!g.contains("eos_token_id") || g["eos_token_id"].is_null()) return;  // (a generation config of none)
  const json& e = g["eos_token_id"];
  for (const json& id : e.is_array() ? e : json::array({e})) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= int64_t(d->vocab.size())) {
      note(dir + "/" + name + "'s eos_token_id " + id.dump() + " is not a token of the tokenizer: not a stop token");
      continue;
    }
    const int32_t t = int32_t(id.get<int64_t>());
    if (std::find(d->stop_ids.begin(), d->stop_ids.end(), t) == d->stop_ids.end()) d->stop_ids.push_back(t);
  }
}

// transformers 5's AutoTokenizer does not read a SentencePiece-style tokenizer.json as written when
// the class it picks builds its own pipeline from the vocabulary and merges. It picks
// tokenizer_config.json's tokenizer_class (else config.json's), unless config.json's model_type
// overrides it (the types it maps to TokenizersBackend or, without Mistral's own files, MistralCommonBackend: the
// file as written;
// qwen2: Qwen2Tokenizer whatever the class; qwen3, qwen3_moe, qwen2_moe, qwen2_vl, qwen2_5_vl and qwen3_vl without a
// class:
// Qwen2Tokenizer; gpt_neox, olmoe, olmo and mpt without a class: GPTNeoXTokenizer; gpt2, gptj, gpt_neo, opt, phi and
// starcoder2 without one: GPT2Tokenizer)
// or an auto_map names remote code. LlamaTokenizer and CodeLlamaTokenizer build no normalizer and
// a Metaspace without split, prepending "▁" per `legacy` and `add_prefix_space` (CodeLlama's per
// add_prefix_space alone), fuse_unk and byte_fallback on; Qwen2Tokenizer a byte-level one with an
// NFC normalizer and Qwen2's split pattern, over a byte-level file's vocabulary too; GPTNeoXTokenizer
// and GPT2Tokenizer a byte-level one with GPT-2's split and add_prefix_space (NFC: GPT-NeoX's only). kiln reads
// the file as written, as tokenizers does, notes where AutoTokenizer's pipeline differs, and refuses
// add_prefix_space true for the last two.
void note_llama_tokenizer_class(const std::string& dir, const std::string& cfg_text, const TokenizerData& d,
                                std::string* notes) {
  // (no early return without notes: the GPTNeoXTokenizer check below refuses as well as notes)
  if (d.kind == TokenizerData::Kind::kClipBpe) return;
  const json cfg = json::parse(cfg_text, nullptr, false);
  if (!cfg.is_object()) return;
  json model = json::object();
  if (path_exists(dir + "/config.json")) {
    const std::string text = read_text_file(dir + "/config.json");
    model = json::parse(text, nullptr, false);
    if (!model.is_object()) model = json::object();
  }
  const json& am = cfg.contains("auto_map") ? cfg["auto_map"] : json();
  if (am.is_array() || (am.is_object() && am.contains("AutoTokenizer"))) return;  // (remote code)
  auto text_of_key = [](const json& o, const char* k) {
    return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string();
  };
  std::string cls = text_of_key(cfg, "tokenizer_class");
  if (cls.empty()) cls = text_of_key(model, "tokenizer_class");
  if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  const std::string type = text_of_key(model, "model_type");
  // (model types AutoTokenizer maps to TokenizersBackend or MistralCommonBackend: tokenizer.json as written, whatever
  // class tokenizer_config.json names: StarCoder's GPT2Tokenizer, say)
  static const char* const kAsWritten[] = {
      "mistral",       "mixtral",    "ministral",   "ministral3",  "mistral3",     "phi3",      "granite",
      "granitemoe",    "ernie4_5",   "olmo2",       "olmo3",       "glm4",         "glm",       "granitemoeshared",
      "stablelm",      "nemotron",   "glm4_moe",    "gpt_bigcode", "ernie4_5_moe", "internlm3", "iquestcoder",
      "glm4_moe_lite", "minimax_m2", "hyperclovax", "flex_olmo"};
  for (const char* t : kAsWritten)
    if (type == t) return;
  if (type == "qwen2" || (cls.empty() && (type == "qwen3" || type == "qwen3_moe" || type == "qwen2_moe" ||
                                          type == "qwen2_vl" || type == "qwen2_5_vl" || type == "qwen3_vl")))
    cls = "Qwen2Tokenizer";
  auto note = [&](const std::string& n) {
    if (notes) append_note(notes, n);
  };
  // (GPT2Tokenizer: tokenizer_config.json's class, or without one that of the model_types of the families kiln
  // compiles that AutoTokenizer maps to it)
  const bool gpt2_type = type == "gpt2" || type == "gptj" || type == "opt" || type == "phi" || type == "starcoder2" ||
                         type == "gpt_neo" || type == "jais2" || type == "dbrx";
  const bool neox = cls == "GPTNeoXTokenizer" ||
                    (cls.empty() && (type == "gpt_neox" || type == "olmoe" || type == "olmo" || type == "mpt"));
  const bool gpt2 = cls == "GPT2Tokenizer" || (cls.empty() && gpt2_type);
  if (d.kind == TokenizerData::Kind::kByteLevelBpe && (neox || gpt2)) {
    // transformers 5's GPTNeoXTokenizer and GPT2Tokenizer rebuild the pipeline from the vocabulary and merges: NFC
    // (GPT-NeoX's; GPT-2's has no normalizer), then ByteLevel with GPT-2's split and tokenizer_config.json's
    // add_prefix_space, which kiln's byte-level reading lacks.
    const std::string name = neox ? "GPTNeoXTokenizer" : "GPT2Tokenizer";
    if (cfg.contains("add_prefix_space") && cfg["add_prefix_space"].is_boolean() && cfg["add_prefix_space"].get<bool>())
      throw CompileError(dir + "/tokenizer_config.json: add_prefix_space is true, with which transformers 5's " + name +
                         " puts a space before the text; kiln does not support it (set it false to "
                         "tokenize as tokenizer.json does)");
    if (!(d.nfc == neox && d.split == TokenizerData::Split::kGpt2))
      note("the tokenizer class " + name + ", which transformers 5's AutoTokenizer rebuilds with " +
           (neox ? "an NFC normalizer" : "no normalizer") +
           " and GPT-2's split instead of tokenizer.json's pipeline; kiln follows tokenizer.json, as tokenizers "
           "does, so ids can differ from AutoTokenizer's");
    return;
  }
  if (d.kind == TokenizerData::Kind::kByteLevelBpe) {
    if (cls == "Qwen2Tokenizer" && !(d.nfc && d.split == TokenizerData::Split::kQwen2))
      note(std::string("the tokenizer class Qwen2Tokenizer") + (type.empty() ? "" : " (model_type " + type + ")") +
           ", which transformers 5's AutoTokenizer rebuilds with an NFC normalizer and Qwen2's split pattern "
           "instead of tokenizer.json's " +
           (d.nfc                                     ? "split"
            : d.split == TokenizerData::Split::kQwen2 ? "missing normalizer"
                                                      : "pipeline") +
           "; kiln follows tokenizer.json, as tokenizers does, so ids can differ from AutoTokenizer's" +
           (d.nfc ? "" : " on text not in NFC (e decomposed, say)"));
    return;
  }
  if (cls == "Qwen2Tokenizer") {
    note("config.json's model_type " + type +
         " makes transformers 5's AutoTokenizer rebuild this SentencePiece tokenizer.json as Qwen2Tokenizer (a "
         "byte-level BPE) from its vocabulary and merges; kiln follows tokenizer.json, as tokenizers does, so its "
         "ids differ from AutoTokenizer's");
    return;
  }
  if (cls != "LlamaTokenizer" && cls != "CodeLlamaTokenizer") return;
  const bool prefix = !cfg.contains("add_prefix_space") || cfg["add_prefix_space"].is_null() ||
                      (cfg["add_prefix_space"].is_boolean() && cfg["add_prefix_space"].get<bool>());
  const bool legacy = cls == "LlamaTokenizer" && cfg.contains("legacy") && cfg["legacy"].is_boolean() &&
                      cfg["legacy"].get<bool>();  // (CodeLlamaTokenizer ignores legacy and always strips)
  const std::string scheme = !prefix ? "never" : legacy ? "always" : "first";
  const bool same = d.metaspace && !d.metaspace_split && !d.nfc && d.sp_prepend == prefix &&
                    d.sp_prepend_first == (scheme == "first") && d.fuse_unk && d.byte_fallback &&
                    d.decode_strip_space == (prefix || cls == "CodeLlamaTokenizer");
  if (!same)
    note("the tokenizer class " + cls +
         ", which transformers 5's AutoTokenizer rebuilds (Metaspace with prepend_scheme \"" + scheme +
         "\" from legacy and add_prefix_space, no normalizer) instead of tokenizer.json's pipeline; kiln "
         "follows tokenizer.json, as tokenizers does, so ids can differ from AutoTokenizer's at leading spaces and "
         "after special tokens");
}

}  // namespace

std::string generation_notes_without_tokenizer(const std::string& dir) {
  std::string notes;
  const auto [name, g] = generation_config(dir);
  if (name.empty()) return notes;
  note_generation_settings(g, name, &notes);
  if (g.contains("eos_token_id") && !g["eos_token_id"].is_null())
    append_note(&notes, name + "'s eos_token_id " + g["eos_token_id"].dump() +
                            " is not kept: a plan without a tokenizer has no stop tokens (give kiln generate --eos, "
                            "or stop in the host)");
  return notes;
}

bool read_hf_tokenizer(const std::string& dir, TokenizerData* d, std::string* notes, bool with_chat_template) {
  const std::string path = dir + "/tokenizer.json";
  if (!path_exists(path)) return false;
  const std::string cfg_path = dir + "/tokenizer_config.json";
  auto optional_file = [&](const char* name, std::string* text) -> const std::string* {
    if (!with_chat_template || !path_exists(dir + name)) return nullptr;
    *text = read_text_file(dir + name);
    return text;
  };
  std::string jinja, tool_use, special;
  ChatTemplateFiles files;
  files.jinja = optional_file("/chat_template.jinja", &jinja);
  files.tool_use_jinja = optional_file("/additional_chat_templates/tool_use.jinja", &tool_use);
  if (path_exists(dir + "/special_tokens_map.json")) {  // (its BOS and EOS count without a chat template too)
    special = read_text_file(dir + "/special_tokens_map.json");
    files.special_tokens_map = &special;
  }
  const std::string cfg_text = path_exists(cfg_path) ? read_text_file(cfg_path) : "{}";
  parse_hf_tokenizer(read_text_file(path), cfg_text, path, d, notes, files, with_chat_template);
  note_llama_tokenizer_class(dir, cfg_text, *d, notes);
  add_generation_stop_ids(dir, d, notes);
  return true;
}

void parse_hf_tokenizer(const std::string& tokenizer_json, const std::string& config_json, const std::string& path,
                        TokenizerData* d, std::string* notes, const ChatTemplateFiles& files, bool with_chat_template) {
  const json j = parse_json_limited(tokenizer_json.data(), tokenizer_json.data() + tokenizer_json.size(), path);
  auto fail = [&](const std::string& m) -> void { throw CompileError(path + ": " + m); };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("has no model object");
  const json& model = j["model"];
  if (type_of(model) != "BPE")
    fail("tokenizer model type '" + type_of(model) +
         "' is not supported (kiln reads BPE tokenizers; use --no-tokenizer)");
  for (const char* k : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(k) && !model[k].is_null() && !(model[k].is_string() && model[k].get<std::string>().empty()))
      fail(std::string("BPE option '") + k + "' is not supported");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("BPE model has no vocab");

  // --- vocabulary (ids may be given in any order, but must be dense)
  const json& vocab = model["vocab"];
  int64_t max_id = -1;
  std::unordered_map<std::string, int64_t> vocab_ids;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= (int64_t(1) << 24))
      fail("vocab id of '" + it.key() + "' is out of range");
    max_id = std::max(max_id, it->get<int64_t>());
    vocab_ids.emplace(it.key(), it->get<int64_t>());
  }
  // --- added tokens. HF ignores their "id" fields (tokenizers' AddedVocabulary, warning when one
  // differs): a content in the model's vocabulary keeps its vocabulary id, a content seen before
  // keeps its first id, and a new one takes the next id after the vocabulary and the
  // added ids so far. kiln assigns them the same way and notes where the file says otherwise.
  std::unordered_map<std::string, int64_t> added_ids;
  int64_t added_max = -1, renumbered = 0;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
        fail("an added token lacks its id or content");
      const int64_t file_id = a["id"].get<int64_t>();  // (tokenizers refuses a file whose id is not a u32)
      if (file_id < 0 || file_id > int64_t(UINT32_MAX))
        fail("added token id " + std::to_string(file_id) + " is out of range");
      TokenizerData::Added t;
      t.content = a["content"].get<std::string>();
      t.special = flag(a, "special");
      t.lstrip = flag(a, "lstrip");
      t.rstrip = flag(a, "rstrip");
      t.normalized = flag(a, "normalized");
      t.single_word = flag(a, "single_word");
      if (t.content.empty()) fail("an added token is empty");
      if (added_ids.count(t.content)) {  // HF takes the last flags for matching, any "special" for skipping
        const auto& first = *std::find_if(d->added.begin(), d->added.end(),
                                          [&](const TokenizerData::Added& x) { return x.content == t.content; });
        if (first.special != t.special || first.lstrip != t.lstrip || first.rstrip != t.rstrip ||
            first.normalized != t.normalized || first.single_word != t.single_word)
          fail("added token '" + t.content + "' is listed twice with different flags");
        continue;
      }
      if (t.single_word) fail("added token '" + t.content + "' uses single_word, which kiln does not support");
      const auto in_vocab = vocab_ids.find(t.content);
      const int64_t vocab_size = int64_t(vocab_ids.size());
      const int64_t id = in_vocab != vocab_ids.end() ? in_vocab->second
                         : added_max >= vocab_size   ? added_max + 1
                                                     : vocab_size;
      if (id >= (int64_t(1) << 24)) fail("added token id " + std::to_string(id) + " is out of range");
      if (file_id != id && ++renumbered <= 5)
        append_note(notes, "added token '" + t.content.substr(0, 40) + "' has id " + std::to_string(id) +
                               " as HF assigns it (the file says " + std::to_string(file_id) + ")");
      t.id = int32_t(id);
      added_ids.emplace(t.content, id);
      added_max = std::max(added_max, id);
      max_id = std::max(max_id, id);
      d->added.push_back(std::move(t));
    }
  }
  if (renumbered > 5)
    append_note(notes, "and " + std::to_string(renumbered - 5) +
                           " more added tokens whose ids HF assigns otherwise than the file");
  if (max_id < 0 || max_id >= (int64_t(1) << 24)) fail("vocabulary is empty or too large");
  d->vocab.assign(size_t(max_id + 1), std::string());
  std::vector<uint8_t> seen(size_t(max_id + 1), 0);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const size_t id = size_t(it->get<int64_t>());
    if (seen[id]) fail("vocab id " + std::to_string(id) + " is used twice");
    seen[id] = 1;
    d->vocab[id] = it.key();
  }
  for (const auto& t : d->added)
    if (!seen[size_t(t.id)]) {
      seen[size_t(t.id)] = 1;
      d->vocab[size_t(t.id)] = t.content;
    }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) fail("vocabulary has no token with id " + std::to_string(i));
  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < d->vocab.size(); ++i) ids.emplace(d->vocab[i], int32_t(i));

  // --- merges: ["a b", ...] or [["a", "b"], ...]
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      std::string a, b;
      if (!merge_of(m, &a, &b))
        fail(m.is_string() ? "merge '" + m.get<std::string>() + "' is not two tokens"
                           : std::string("a merge is neither \"a b\" nor [\"a\", \"b\"]"));
      auto ia = ids.find(a), ib = ids.find(b);
      if (ia == ids.end() || ib == ids.end() || !ids.count(a + b))
        fail("merge '" + a + " " + b + "' names unknown tokens");
      d->merges.push_back({ia->second, ib->second});
    }
  }
  d->ignore_merges = flag(model, "ignore_merges");
  d->byte_fallback = flag(model, "byte_fallback");
  d->fuse_unk = flag(model, "fuse_unk");
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    auto it = ids.find(model["unk_token"].get<std::string>());
    if (it != ids.end()) d->unk_id = it->second;
  }

  // --- normalizer, pre-tokenizer and decoder decide the family
  bool byte_level = false, sp_replace = false, replace_normalizer = false;
  for (const json& n : flatten(j.value("normalizer", json()), "normalizers")) {
    const std::string t = type_of(n);
    if (t == "Prepend" && text_of(n, "prepend", "") == kSpace) d->sp_prepend = true;
    else if (t == "NFC") d->nfc = true;
    else if (t == "Replace" && n.contains("pattern") && text_of(n["pattern"], "String", "") == " " &&
             text_of(n, "content", "") == kSpace)
      sp_replace = replace_normalizer = true;
    else fail("normalizer '" + t + "' is not supported");
  }
  std::vector<std::string> splits, raw_splits;  // (normalized to compare with the known ones; as written)
  for (const json& p : flatten(j.value("pre_tokenizer", json()), "pretokenizers")) {
    const std::string t = type_of(p);
    if (t == "ByteLevel") {
      if (byte_level) fail("two ByteLevel pre-tokenizers (the second maps the first's bytes again) are not supported");
      byte_level = true;
      if (flag(p, "add_prefix_space")) fail("ByteLevel add_prefix_space is not supported");
      if (flag(p, "use_regex", true)) d->split = TokenizerData::Split::kGpt2;
    } else if (t == "Split" && p.contains("pattern") && p["pattern"].is_object() && p["pattern"].contains("String")) {
      // Gemma: a split on the string " " after the normalizer has replaced every " " by "▁"
      // finds nothing to split at (whatever its behavior); any other literal split is refused.
      const std::string lit = text_of(p["pattern"], "String", "");
      if (lit != " " || !replace_normalizer || flag(p, "invert"))
        fail("Split pre-tokenizer on the string \"" + lit.substr(0, 40) +
             "\" is supported only as a no-op: \" \" after a Replace(\" \" → \"▁\") normalizer, not inverted");
    } else if (t == "Split") {
      // HF runs a Split after a ByteLevel on the byte-mapped text ("Ġ" for a space); kiln's splits
      // see the text itself, so that order is refused.
      if (byte_level) fail("a Split pre-tokenizer after ByteLevel is not supported");
      const std::string raw = p.contains("pattern") ? text_of(p["pattern"], "Regex", "") : "";
      const std::string re = normalize_regex(raw);
      if (text_of(p, "behavior", "") != "Isolated" || flag(p, "invert"))
        fail("Split pre-tokenizer must be Isolated, not inverted");
      splits.push_back(re);
      raw_splits.push_back(raw);
    } else if (t == "Digits") {
      // HF's Digits: each numeric character (Rust's is_numeric, \p{N}) apart, or each run of them
      // (individual_digits false): a Split on \p{N} or \p{N}+, Isolated (StarCoder2's, SmolLM2's,
      // DeepSeek-V2's files).
      if (byte_level) fail("a Digits pre-tokenizer after ByteLevel is not supported");
      const std::string re = flag(p, "individual_digits") ? "\\p{N}" : "\\p{N}+";
      splits.push_back(re);
      raw_splits.push_back(re);
    } else if (t == "Metaspace") {
      if (text_of(p, "replacement", "") != kSpace) fail("Metaspace must use \"▁\" as its replacement");
      if (d->sp_prepend) fail("a Prepend normalizer and a Metaspace pre-tokenizer together are not supported");
      // tokenizers < 0.14 wrote add_prefix_space instead of prepend_scheme
      const std::string scheme = p.contains("prepend_scheme")        ? text_of(p, "prepend_scheme", "")
                                 : flag(p, "add_prefix_space", true) ? "always"
                                                                     : "never";
      if (scheme != "always" && scheme != "first" && scheme != "never")
        fail("Metaspace prepend_scheme '" + scheme + "' is not one of always, first, never");
      sp_replace = true;
      d->metaspace = true;
      d->metaspace_split = flag(p, "split", true);
      d->sp_prepend = scheme != "never";
      d->sp_prepend_first = scheme == "first";
    } else {
      fail("pre-tokenizer '" + t + "' is not supported");
    }
  }
  // ByteLevel's use_regex after other splits: its GPT-2 regex splits each of their pieces again
  // (HF: an Isolated split with that regex), the last of the Split regexes PCRE2 runs.
  if (!splits.empty() && d->split == TokenizerData::Split::kGpt2) {
    splits.push_back(kGpt2Pattern);
    raw_splits.push_back(kGpt2Pattern);
  }
  if (splits.size() == 1 && splits[0] == kLlama3Pattern) d->split = TokenizerData::Split::kLlama3;
  else if (splits.size() == 1 && splits[0] == kQwen2Pattern) d->split = TokenizerData::Split::kQwen2;
  else if (splits.size() == 1 && splits[0] == kGpt2Pattern) d->split = TokenizerData::Split::kGpt2;
  else if (splits == std::vector<std::string>{kDsDigits, kDsCjk, kDsMain}) d->split = TokenizerData::Split::kDeepseek;
  else if (!splits.empty()) {  // any other: PCRE2 runs it (Tokenizer::create compiles and checks it)
    d->split = TokenizerData::Split::kRegex;
    d->split_regexes = raw_splits;
    auto check = RegexSplitter::create(raw_splits);  // as the runtime will compile them
    if (!check.is_ok()) fail("Split " + check.status().message());
  }
  // HF splits normalized added tokens out of the normalized text; kiln splits all of them out of
  // the raw text, which is the same unless a normalizer can change the text around them.
  // (A Prepend("▁") normalizer, Phi-3's and Llama-2's: its files mark their special tokens
  // normalized, which transformers' LlamaTokenizer splits out of the raw text as kiln does; a
  // normalized token that is not special, as add_tokens makes them, HF matches in the normalized
  // text.)
  // NFC leaves ASCII other than letters, < = > (which combining marks can join), ; and ` (which U+037E and U+1FEF
  // become) as it is and never joins it to a neighbour: a token of only such characters (Pythia's and
  // GPT-NeoX-20B's runs of spaces) is found alike in the raw and the normalized text. HF splits the tokens that are
  // not normalized out first, kiln all in one pass: the same where none of those shares a character with a
  // normalized one can overlap (one inside the other, or the end of one the start of the other) or strips the spaces
  // around it.
  auto nfc_inert = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char ch) {
      const unsigned char u = static_cast<unsigned char>(ch);
      return u < 0x80 && !std::isalpha(u) && std::string("<=>;`").find(char(u)) == std::string::npos;
    });
  };
  auto overlap = [](const std::string& x, const std::string& y) {  // (x's end is y's start)
    for (size_t n = 1; n < std::min(x.size(), y.size()); ++n)
      if (x.compare(x.size() - n, n, y, 0, n) == 0) return true;
    return false;
  };
  auto apart = [&](const TokenizerData::Added& a) {  // (a token not normalized that cannot meet a normalized one)
    if (a.normalized) return true;
    for (const auto& b : d->added)
      if (b.normalized &&
          (a.content.find(b.content) != std::string::npos || b.content.find(a.content) != std::string::npos ||
           overlap(a.content, b.content) || overlap(b.content, a.content) ||
           ((a.lstrip || a.rstrip) && b.content.find_first_of(" \t\n\r") != std::string::npos)))
        return false;
    return true;
  };
  const bool nfc_ok = !d->nfc || std::all_of(d->added.begin(), d->added.end(), apart);  // (NFC's rule only)
  for (const auto& a : d->added)
    if (a.normalized &&
        ((d->nfc && (!nfc_inert(a.content) || !nfc_ok)) || (d->sp_prepend && !d->metaspace && !a.special)))
      fail("added token '" + a.content + "' is normalized, which kiln does not support with " +
           (d->nfc ? "an NFC normalizer" : "a Prepend normalizer") +
           (d->nfc && nfc_inert(a.content) ? " beside an added token that is not normalized and shares its "
                                             "characters or strips spaces (HF splits that one out first)"
                                           : ""));
  if (byte_level) {
    d->kind = TokenizerData::Kind::kByteLevelBpe;
    if (sp_replace || d->sp_prepend) fail("mixes byte-level and SentencePiece-style settings");
    // byte_fallback never fires where every byte has its token (files that set it anyway exist);
    // with bytes missing HF would look up <0xXX> for the bytes of their stand-in characters.
    if (d->byte_fallback) {
      for (int b = 0; b < 256; ++b)
        if (!ids.count(text::byte_alphabet().enc[b]))
          fail("BPE byte_fallback with a ByteLevel pre-tokenizer and no token for byte " + std::to_string(b) +
               " is not supported");
      d->byte_fallback = false;
    }
  } else if (sp_replace) {
    d->kind = TokenizerData::Kind::kSentencePieceBpe;
    if (!splits.empty()) fail("a Split pre-tokenizer with SentencePiece-style (\"▁\") BPE is not supported");
  } else {
    fail("neither byte-level nor SentencePiece-style (\"▁\") BPE; kiln cannot tell how to split the text");
  }
  // --- decoder: kiln decodes by the tokenizer's kind (bytes for byte-level BPE; "▁" as a space
  // and <0xXX> pieces as bytes for SentencePiece-style BPE), so the decoder must say the same.
  bool dec_bytes = false, dec_space = false, dec_fallback = false;
  const std::vector<json> decs = flatten(j.value("decoder", json()), "decoders");
  if (decs.empty()) fail("there is no decoder (HF would join the raw pieces, \"\u0120\" and \"\u2581\" included)");
  for (const json& dec : decs) {
    const std::string t = type_of(dec);
    if (t == "ByteLevel") dec_bytes = true;
    else if (t == "ByteFallback") dec_fallback = true;
    else if (t == "Fuse") continue;
    else if (t == "Replace" && dec.contains("pattern") && dec["pattern"].is_object() &&
             text_of(dec["pattern"], "String", "") == kSpace && text_of(dec, "content", "") == " ")
      dec_space = true;
    else if (t == "Strip" && dec.is_object() && dec.contains("start") && dec["start"] == 1 &&
             dec.value("stop", json(0)) == 0 && text_of(dec, "content", "") == " " && !byte_level)
      d->decode_strip_space = true;
    else if (t == "Metaspace" && text_of(dec, "replacement", kSpace) == kSpace) {
      dec_space = true;
      if (text_of(dec, "prepend_scheme", "always") != "never") d->decode_strip_space = true;
    } else {
      fail("decoder '" + t + "' " + (t == "Strip" || t == "Replace" || t == "Metaspace" ? "with these settings " : "") +
           "is not supported with this tokenizer");
    }
  }
  if (byte_level && (!dec_bytes || dec_space || dec_fallback))
    fail("a byte-level BPE needs a ByteLevel decoder, alone");
  if (!byte_level && (dec_bytes || !dec_space || (d->byte_fallback && !dec_fallback)))
    fail(std::string("a SentencePiece-style BPE needs a decoder that turns \"\u2581\" into a space") +
         (d->byte_fallback ? " and a ByteFallback decoder" : "") + ", and no ByteLevel one");

  // --- post-processor: transformers encodes through it; kiln adds at most one special token before
  // the text (a BOS), and refuses what would add anything else.
  for (const json& p : flatten(j.value("post_processor", json()), "processors")) {
    const std::string t = type_of(p);
    if (t == "ByteLevel") continue;  // (its trim_offsets changes offsets only)
    if (t != "TemplateProcessing")
      fail("post-processor '" + t + "' is not supported (kiln adds at most one special token before the text)");
    const json single = p.value("single", json());
    if (!single.is_array()) fail("TemplateProcessing has no \"single\" template");
    size_t i = 0;
    if (!single.empty() && single[0].is_object() && single[0].contains("SpecialToken")) {
      const std::string name = text_of(single[0]["SpecialToken"], "id", "");
      const json& entry =
          p.contains("special_tokens") && p["special_tokens"].is_object() && p["special_tokens"].contains(name)
              ? p["special_tokens"][name]
              : json();
      if (!entry.is_object() || !entry.contains("ids") || !entry["ids"].is_array() || entry["ids"].size() != 1 ||
          !entry["ids"][0].is_number_integer())
        fail("TemplateProcessing's special token '" + name.substr(0, 40) +
             "' must have one id in its special_tokens (kiln adds one token)");
      const int64_t id = entry["ids"][0].get<int64_t>();
      if (id < 0 || id >= int64_t(d->vocab.size()))
        fail("TemplateProcessing's special token '" + name.substr(0, 40) + "' has id " + std::to_string(id) +
             ", outside the vocabulary");
      d->add_bos = true;
      d->bos_id = int32_t(id);
      i = 1;
    }
    if (i + 1 != single.size() || !single[i].is_object() || !single[i].contains("Sequence")) {
      std::string parts;  // e.g. "<s> $A </s>"
      for (const json& e : single) {
        const bool sp = e.is_object() && e.contains("SpecialToken");
        parts += (parts.empty() ? "" : " ") + (sp ? text_of(e["SpecialToken"], "id", "?").substr(0, 40)
                                               : e.is_object() && e.contains("Sequence")
                                                   ? "$" + text_of(e["Sequence"], "id", "?")
                                                   : std::string("?"));
      }
      fail("TemplateProcessing's single template \"" + parts +
           "\" is not supported (kiln adds at most one special token before the text, $A)");
    }
  }

  // --- tokenizer_config.json: bos/eos, chat template
  json cfg = parse_json_limited(config_json.data(), config_json.data() + config_json.size(),
                                path + " (tokenizer_config.json)");
  if (!cfg.is_object()) cfg = json::object();
  auto id_of = [&](const std::string& s) {
    auto it = ids.find(s);
    return it == ids.end() ? -1 : it->second;
  };
  // transformers' special tokens: special_tokens_map.json's, for a config without added_tokens_decoder
  // (the chat template sees the same, below), else tokenizer_config.json's.
  json smap = json::object();
  if (files.special_tokens_map && !cfg.contains("added_tokens_decoder")) {
    smap = parse_json_limited(files.special_tokens_map->data(),
                              files.special_tokens_map->data() + files.special_tokens_map->size(),
                              path + " (special_tokens_map.json)");
    if (!smap.is_object()) smap = json::object();
  }
  auto special_text = [&](const char* k) { return token_text(smap.contains(k) ? smap : cfg, k); };
  // (a post-processor that prepends a token keeps it: transformers encodes with the post-processor's)
  if (const std::string bos = special_text("bos_token"); !d->add_bos && !bos.empty() && id_of(bos) >= 0)
    d->bos_id = id_of(bos);
  // (add_bos_token and add_eos_token: transformers 5 drops them when there is a tokenizer.json, and
  // encodes through its post-processor alone)
  const std::string eos = special_text("eos_token");
  d->eos_id = id_of(eos);
  for (const char* s : {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"})
    if (id_of(s) >= 0) d->stop_ids.push_back(id_of(s));
  if (d->eos_id >= 0 && std::find(d->stop_ids.begin(), d->stop_ids.end(), d->eos_id) == d->stop_ids.end())
    d->stop_ids.push_back(d->eos_id);
  // --- the chat template and the special tokens it sees (transformers' special_tokens_map)
  if (!with_chat_template) return;
  // As transformers loads them: chat_template.jinja (and additional_chat_templates/) replace the
  // config's entries; a list of named templates holds "default" and maybe "tool_use" (picked
  // when tools are given).
  std::string tmpl, tools_tmpl;
  std::string where = "tokenizer_config.json";
  if (files.jinja) {
    tmpl = *files.jinja;
    where = "chat_template.jinja";
    if (files.tool_use_jinja) tools_tmpl = *files.tool_use_jinja;
  } else if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      tmpl = ct.get<std::string>();
    } else if (ct.is_array()) {
      bool has_default = false;
      for (const json& t : ct) {
        if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) continue;
        const std::string name = text_of(t, "name", "");
        if (name == "default") tmpl = t["template"].get<std::string>(), has_default = true;
        if (name == "tool_use") tools_tmpl = t["template"].get<std::string>();
      }
      if (!has_default && !ct.empty())
        throw CompileError(path.substr(0, path.rfind('/') + 1) +
                           "tokenizer_config.json: chat_template names several templates but no \"default\"; "
                           "compile with --no-chat-template to leave them out");
    } else if (!ct.is_null()) {
      throw CompileError(path.substr(0, path.rfind('/') + 1) +
                         "tokenizer_config.json: chat_template is neither a string nor a list of templates");
    }
  }
  if (tmpl.empty()) return;
  const std::string file = path.substr(0, path.rfind('/') + 1) + where;  // (the file the template is in)
  auto check = [&](const std::string& t, const std::string& what) {
    if (text::lossy_utf8(t) != t) throw CompileError(file + ": the " + what + " is not valid UTF-8");
    auto parsed = jinja::Template::parse(t);
    if (!parsed.is_ok())
      throw CompileError(file + ": " + (what == "chat template" ? "" : what + ": ") + parsed.status().message() +
                         "; compile with --no-chat-template to leave the template out");
    for (const std::string& u : parsed.value().unknown_names())
      append_note(notes, "the " + what + " names the " + u +
                             (u.rfind("Jinja ", 0) == 0
                                  ? ", which kiln's Jinja does not implement (transformers' does): a conversation "
                                    "that reaches it fails in kiln"
                                  : ", which neither transformers nor kiln defines: a conversation that reaches it "
                                    "fails in both"));
  };
  check(tmpl, "chat template");
  if (!tools_tmpl.empty()) check(tools_tmpl, "tool_use chat template");
  json vars = json::object();
  for (const char* k : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    const json& src = smap.contains(k) ? smap : cfg;
    if (src.contains(k) && !src[k].is_null()) {
      const std::string text = token_text(src, k);
      if (src[k].is_string() || !text.empty()) vars[k] = text;
    }
  }
  d->chat = TokenizerData::Chat::kJinja;
  d->chat_template = std::move(tmpl);
  d->chat_template_tools = std::move(tools_tmpl);
  d->chat_vars = vars.dump();
}

}  // namespace kiln

// ---------------------------------------------------------------------------------------
// CLIP (vocab.json + merges.txt)

namespace kiln {

bool read_clip_tokenizer(const std::string& dir, TokenizerData* d) {
  // The hub's layout (vocab.json + merges.txt), or tokenizer.json alone, as transformers 5 saves a
  // CLIPTokenizer: the same vocabulary and merges in its BPE model.
  const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
  const std::string json_path = dir + "/tokenizer.json";
  const bool hub = path_exists(vocab_path);
  if (!hub && !path_exists(json_path)) return false;
  const std::string vocab_src = hub ? vocab_path : json_path;
  json v;
  struct MergeText {
    std::string left, right, where;  // where: the file (and line) it came from
  };
  std::vector<MergeText> merge_texts;
  std::map<std::string, bool> file_added;  // tokenizer.json's added tokens: content → normalized
  if (hub) {
    if (!path_exists(merges_path))
      throw CompileError(merges_path + ": missing (CLIP tokenizers need vocab.json and merges.txt)");
    v = read_json_file(vocab_path);
    const std::string merges = read_text_file(merges_path);
    size_t line_no = 0;
    for (size_t pos = 0; pos < merges.size();) {
      size_t end = merges.find('\n', pos);
      if (end == std::string::npos) end = merges.size();
      std::string line = merges.substr(pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
        throw CompileError(merges_path + ":" + std::to_string(line_no) + ": not a merge 'left right'");
      merge_texts.push_back({line.substr(0, sp), line.substr(sp + 1), merges_path + ":" + std::to_string(line_no)});
    }
  } else {
    const json j = read_json_file(json_path);
    const json model = j.is_object() ? j.value("model", json()) : json();
    if (type_of(model) != "BPE" || !model.contains("vocab") || !model.contains("merges") || !model["merges"].is_array())
      throw CompileError(json_path + ": not a BPE tokenizer with a vocabulary and merges (CLIP's)");
    if (text_of(model, "end_of_word_suffix", "") != "</w>")
      throw CompileError(json_path + ": its BPE model's end_of_word_suffix is not \"</w>\" (CLIP's)");
    v = model["vocab"];
    for (const json& m : model["merges"]) {
      std::string a, b;
      if (!merge_of(m, &a, &b))
        throw CompileError(json_path + ": merge " + m.dump().substr(0, 60) + " is not 'left right'");
      merge_texts.push_back({a, b, json_path});
    }
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const json& a : j["added_tokens"])
        if (a.is_object() && a.contains("content") && a["content"].is_string())
          file_added[a["content"].get<std::string>()] = flag(a, "normalized", true);
  }
  if (!v.is_object() || v.empty()) throw CompileError(vocab_src + ": not a JSON object of token ids");
  if (v.size() > (size_t(1) << 24)) throw CompileError(vocab_src + ": too many tokens");
  TokenizerData t;
  t.kind = TokenizerData::Kind::kClipBpe;
  t.vocab.assign(v.size(), std::string());
  std::vector<bool> seen(v.size(), false);
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= int64_t(v.size()) ||
        seen[size_t(it->get<int64_t>())])
      throw CompileError(vocab_src + ": token '" + it.key() + "' has an id that is not unique within [0, " +
                         std::to_string(v.size()) + ")");
    seen[size_t(it->get<int64_t>())] = true;
    t.vocab[size_t(it->get<int64_t>())] = it.key();
  }
  auto id_of = [&](const std::string& tok) -> int32_t {
    auto it = v.find(tok);
    return it == v.end() ? -1 : it->get<int32_t>();
  };
  for (const MergeText& m : merge_texts) {
    const int32_t a = id_of(m.left), b = id_of(m.right);
    if (a < 0 || b < 0 || id_of(m.left + m.right) < 0)
      throw CompileError(m.where + ": merge '" + m.left + " " + m.right +
                         "' names a token missing from the vocabulary");
    t.merges.push_back({a, b});
  }
  // Special tokens: tokenizer_config.json, else special_tokens_map.json. transformers 5 registers
  // bos, eos, unk, pad in that order; a token given as a plain string is not normalized, and a
  // later registration of the same text decides.
  json cfg = json::object();
  for (const char* f : {"/special_tokens_map.json", "/tokenizer_config.json"}) {
    if (!path_exists(dir + f)) continue;
    const json j = read_json_file(dir + f);
    if (!j.is_object()) throw CompileError(dir + f + ": not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) cfg[it.key()] = *it;
  }
  if (cfg.contains("do_lower_case") && cfg["do_lower_case"].is_boolean() && !cfg["do_lower_case"].get<bool>())
    throw CompileError(dir + "/tokenizer_config.json: do_lower_case = false is not supported (CLIP lowercases)");
  std::vector<std::pair<std::string, bool>> order;  // content, normalized
  auto reg = [&](const char* key, const std::string& def) -> int32_t {
    std::string text = token_text(cfg, key);
    bool normalized = false;
    if (cfg.contains(key) && cfg[key].is_object()) normalized = flag(cfg[key], "normalized", true);
    if (text.empty()) text = def;
    // tokenizer.json alone: its added tokens carry the flags transformers registers them with
    if (auto f = file_added.find(text); !hub && f != file_added.end()) normalized = f->second;
    const int32_t id = id_of(text);
    if (id < 0) throw CompileError(dir + ": " + key + " '" + text + "' is not in the vocabulary");
    auto it = std::find_if(order.begin(), order.end(), [&](const auto& e) { return e.first == text; });
    if (it != order.end()) it->second = normalized;
    else order.push_back({text, normalized});
    return id;
  };
  t.bos_id = reg("bos_token", "<|startoftext|>");
  t.eos_id = reg("eos_token", "<|endoftext|>");
  t.unk_id = reg("unk_token", "<|endoftext|>");
  t.pad_id = reg("pad_token", "<|endoftext|>");
  // Added tokens beyond the special ones (textual-inversion embeddings) would change what the
  // text encoder sees; kiln does not read them, so refuse rather than tokenize them as text.
  auto refuse_extra = [&](const std::string& content, const std::string& where) {
    const bool known = std::any_of(order.begin(), order.end(), [&](const auto& e) { return e.first == content; });
    if (!known)
      throw CompileError(where + ": added token '" + content +
                         "' (e.g. a textual-inversion embedding) is not supported");
  };
  for (const auto& added : file_added) refuse_extra(added.first, json_path);
  if (path_exists(dir + "/added_tokens.json")) {
    const json j = read_json_file(dir + "/added_tokens.json");
    if (!j.is_object()) throw CompileError(dir + "/added_tokens.json: not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) refuse_extra(it.key(), dir + "/added_tokens.json");
  }
  if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object())
    for (auto it = cfg["added_tokens_decoder"].begin(); it != cfg["added_tokens_decoder"].end(); ++it)
      if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
        refuse_extra((*it)["content"].get<std::string>(), dir + "/tokenizer_config.json");
  for (const auto& [text, normalized] : order) {
    TokenizerData::Added a;
    a.id = id_of(text);
    a.content = text;
    a.special = true;
    a.normalized = normalized;
    t.added.push_back(a);
  }
  t.add_bos = true;
  *d = std::move(t);
  return true;
}

}  // namespace kiln
