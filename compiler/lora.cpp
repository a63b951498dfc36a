#include "compiler/lora.h"

#include <re2/re2.h>
#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "compiler/config_reader.h"
#include "compiler/error.h"
#include "compiler/json_util.h"
#include "kernels/thread_pool.h"
#include "runtime/plan.h"  // shape_str

namespace kiln {

// Named, not anonymous: LoraSet::Impl (declared in the header) holds these types, which GCC
// warns about (-Wsubobject-linkage) when a unity build includes this file. (The using-directive
// below makes them as visible to a unity batch's later files as an anonymous namespace would.)
namespace lora_detail {

using json = nlohmann::json;
const std::string kPrefix = "base_model.model.";

enum class Kind { kLinear, kEmbedding };

// One adapted module of one adapter.
struct Module {
  std::string path;  // e.g. model.layers.0.self_attn.q_proj
  Kind kind = Kind::kLinear;
  const StTensor* a = nullptr;          // linear: (r, in);   embedding: (r, vocab)
  const StTensor* b = nullptr;          // linear: (out, r);  embedding: (dim, r)
  const StTensor* b_bias = nullptr;     // lora_bias: (out,)
  const StTensor* magnitude = nullptr;  // DoRA: (out,)
  double scale = 1.0;                   // s · alpha / r (or / √r)
};

std::vector<int64_t> transposed_shape(std::vector<int64_t> s) {
  std::reverse(s.begin(), s.end());
  return s;
}

struct Adapter {
  LoraRecord record;
  std::unique_ptr<SafetensorsFile> file;
  std::vector<Module> modules;
  std::map<std::string, const StTensor*> replacements;  // modules_to_save: tensor name → copy
  std::set<std::string> saved;                          // the names modules_to_save replaces
  // Saved copies of the tensors the frontend transposed (ModuleNames::transposed), transposed, and their bytes
  std::vector<std::unique_ptr<StTensor>> transposed;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> transposed_bytes;
  bool ensure_weight_tying = false;
};

std::string base_name(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t s = dir.rfind('/');
  return s == std::string::npos ? dir : dir.substr(s + 1);
}

// The pattern as RE2 must read it to match what Python's re matches, where the two read the same
// text differently: '[' inside a set is a plain character to Python (to RE2 "[[:digit:]]" is a
// POSIX class), and "{,n}" is Python's {0,n} (to RE2 plain text). What Python refuses and RE2
// would take (\z, \p{..}, \Q..\E, \C, the U flag) is refused; Python's \Z is RE2's \z.
std::string python_regex_for_re2(const std::string& re, const std::string& what) {
  auto refuse = [&](const std::string& why) {
    throw CompileError(what + " '" + re + "' is not a regular expression kiln can match: " + why);
  };
  std::string out;
  bool in_set = false;
  for (size_t i = 0; i < re.size(); ++i) {
    const char ch = re[i];
    if (ch == '\\') {
      if (i + 1 >= re.size()) refuse("it ends with a backslash");
      const char e = re[++i];
      if (e != 0 && std::strchr("zpPQEC", e)) refuse(std::string("\\") + e + " is not an escape of Python's re");
      out += e == 'Z' ? std::string("\\z") : std::string("\\") + e;  // (Python's \Z: the very end)
      continue;
    }
    if (in_set) {
      if (ch == ']') in_set = false;  // (a leading ']' was taken with the '[')
      else if (ch == '[') {
        out += "\\[";
        continue;
      }
      out += ch;
      continue;
    }
    if (ch == '[') {
      in_set = true;
      out += ch;
      if (i + 1 < re.size() && re[i + 1] == '^') out += re[++i];
      if (i + 1 < re.size() && re[i + 1] == ']') out += re[++i];  // (a leading ']' is a plain character)
      continue;
    }
    if (ch == '(' && re.compare(i, 2, "(?") == 0) {
      size_t j = i + 2;
      while (j < re.size() && std::isalpha(static_cast<unsigned char>(re[j]))) {
        if (re[j] == 'U') refuse("Python's re has no U flag");
        ++j;
      }
    }
    if (ch == '{' && i + 1 < re.size() && re[i + 1] == ',') {  // {,n} or {,}: Python's {0,n}, {0,}
      size_t j = i + 2;
      while (j < re.size() && std::isdigit(static_cast<unsigned char>(re[j]))) ++j;
      if (j < re.size() && re[j] == '}' && !out.empty()) {
        out += "{0";
        continue;  // (the ',' and what follows are copied as they are)
      }
    }
    out += ch;
  }
  return out;
}

// A module-name pattern compiled by RE2, which matches in time linear in the name whatever the
// pattern (std::regex and Python's re backtrack: "(a|a)*b" takes exponential time). RE2 has the
// syntax peft's adapters use; what only a backtracking engine offers (backreferences,
// lookaround) is refused by name.
// any_prefix: as peft's rank/alpha patterns, which may match after any dotted prefix.
std::unique_ptr<RE2> module_pattern(const std::string& re, const std::string& what, bool any_prefix = false) {
  if (re.size() > 1024) throw CompileError(what + " is longer than 1024 characters");
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(int64_t(1) << 20);  // per pattern (RE2's default is 8 MiB): at most 2048 live at once
  const std::string py = python_regex_for_re2(re, what);
  auto rx = std::make_unique<RE2>(any_prefix ? "(.*\\.)?(" + py + ")" : py, o);
  if (!rx->ok()) throw CompileError(what + " '" + re + "' is not a regular expression kiln can match: " + rx->error());
  return rx;
}

// rank_pattern or alpha_pattern, each pattern compiled once, in file order (peft tries them in
// its dict's order, which is the file's: nlohmann::json would sort them) with its value.
using Patterns = std::vector<std::pair<std::shared_ptr<RE2>, json>>;
constexpr size_t kMaxPatterns = 1024;  // per map: real adapters have a handful

Patterns compile_patterns(const nlohmann::ordered_json& patterns, const std::string& where) {
  Patterns out;
  if (!patterns.is_object()) return out;
  if (patterns.size() > kMaxPatterns)
    throw CompileError(where + " has " + std::to_string(patterns.size()) + " patterns, more than " +
                       std::to_string(kMaxPatterns));
  for (auto it = patterns.begin(); it != patterns.end(); ++it)
    out.emplace_back(module_pattern(it.key(), where, true), json::parse(it.value().dump()));
  return out;
}

// peft's get_pattern_key: the first pattern p (in file order) with re.match(rf"(.*\.)?({p})$", module).
const json* pattern_value(const Patterns& patterns, const std::string& module) {
  for (const auto& [rx, value] : patterns)
    if (RE2::FullMatch(module, *rx)) return &value;
  return nullptr;
}

// The base checkpoint's module names: tensor names without their last component.
std::set<std::string> module_names(const Checkpoint& base) {
  std::set<std::string> m;
  for (const auto& kv : base.all()) {
    const size_t dot = kv.first.rfind('.');
    if (dot != std::string::npos) m.insert(kv.first.substr(0, dot));
  }
  return m;
}

bool ends_with_component(const std::string& s, const std::string& tail) {
  return s == tail || (s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0 &&
                       s[s.size() - tail.size() - 1] == '.');
}

// peft's _set_trainable: modules_to_save wraps every module whose name ends with `saved` as a
// string ("norm" wraps each *_layernorm too), and saves the tensors of what it wraps: true when
// `module` or one of the modules it is in is wrapped.
bool saved_under(const std::string& module, const std::string& saved) {
  for (size_t i = saved.size(); i <= module.size(); ++i)
    if ((i == module.size() || module[i] == '.') && module.compare(i - saved.size(), saved.size(), saved) == 0)
      return true;
  return false;
}

// The same values (a targeted embedding's "base_layer" copy that peft saves beside its LoRA).
// `a` is an adapter's float tensor; read value by value, not copied (an 8B model's embedding is
// 2 GB as f32).
bool same_values(const StTensor& a, const StTensor& b) {
  if (a.shape != b.shape) return false;
  if (a.st_dtype == b.st_dtype && a.size == b.size && !b.dequantized_on_read())
    return std::memcmp(a.data, b.data, size_t(a.size)) == 0;
  std::vector<float> y;  // (a pre-quantized base: dequantized once)
  if (b.dequantized_on_read() || !b.has_dtype || !dtype_is_float(b.dtype)) {
    y.resize(size_t(b.numel()));
    read_f32(b, y.data());
  }
  for (uint64_t i = 0; i < uint64_t(a.numel()); ++i)
    if (load_as_f32(a.data, a.dtype, i) != (y.empty() ? load_as_f32(b.data, b.dtype, i) : y[size_t(i)])) return false;
  return true;
}

// Whether matrix a holds matrix b transposed, value for value (both float tensors).
bool transposed_values(const StTensor& a, const StTensor& b) {
  if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[0] != b.shape[1] || a.shape[1] != b.shape[0]) return false;
  const int64_t rows = a.shape[0], cols = a.shape[1];
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      if (load_as_f32(a.data, a.dtype, uint64_t(i * cols + j)) != load_as_f32(b.data, b.dtype, uint64_t(j * rows + i)))
        return false;
  return true;
}

// Whether an adapter's float tensor holds only finite values (read value by value).
bool all_finite(const StTensor& t) {
  for (uint64_t i = 0; i < uint64_t(t.numel()); ++i)
    if (!std::isfinite(load_as_f32(t.data, t.dtype, i))) return false;
  return true;
}

struct Config {
  int64_t r = 8;
  double alpha = 8;
  bool rslora = false, dora = false, lora_bias = false, ensure_weight_tying = false;
  Patterns rank_pattern, alpha_pattern;
  json target_modules;
  // Which modules peft adapts (not_selected(), below): exclude_modules, layers_to_transform, layers_pattern.
  json exclude_modules, layers_to_transform, layers_pattern;
  std::vector<std::string> modules_to_save;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)
};

Config read_config_text(const std::string& text, const std::string& path) {
  const json j = parse_json_limited(text.data(), text.data() + text.size(), path);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  const ConfigReader reader(j, path);  // records the keys looked at (strict configs)
  auto has = [&](const char* k) { return reader.has(k); };
  auto refuse = [&](const std::string& what) { throw CompileError(path + ": " + what); };
  if (has("peft_type") && j["peft_type"] != "LORA")
    refuse("peft_type " + j["peft_type"].dump() + " is not supported (kiln merges LORA adapters)");
  Config c;  // (absent r and lora_alpha: LoraConfig's defaults, 8 and 8)
  for (const char* k : {"r", "lora_alpha"})  // (peft's scaling divides lora_alpha by r: it cannot load a null)
    if (j.contains(k) && j[k].is_null()) refuse(std::string(k) + " is null, which peft cannot load: give its value");
  if (has("r")) {
    if (!j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0) refuse("r must be a positive integer");
    c.r = j["r"].get<int64_t>();
  }
  if (has("lora_alpha")) {
    if (!j["lora_alpha"].is_number()) refuse("lora_alpha must be a number");
    c.alpha = j["lora_alpha"].get<double>();
    if (!std::isfinite(c.alpha)) refuse("lora_alpha must be a finite number");
  }
  auto flag = [&](const char* k) {
    if (!has(k)) return false;
    if (!j[k].is_boolean()) refuse(std::string(k) + " must be true or false");
    return j[k].get<bool>();
  };
  c.rslora = flag("use_rslora");
  c.dora = flag("use_dora");
  c.lora_bias = flag("lora_bias");
  c.ensure_weight_tying = flag("ensure_weight_tying");
  if (has("bias") && j["bias"] != "none")
    refuse("bias " + j["bias"].dump() + " is not supported: kiln merges adapters trained with bias \"none\"");
  // Anything set here changes what the adapter computes in ways a plain merge would get wrong.
  auto set = [&](const char* k) {
    if (!has(k)) return false;
    const json& v = j[k];
    return !((v.is_boolean() && !v.get<bool>()) || ((v.is_array() || v.is_object() || v.is_string()) && v.empty()) ||
             (v.is_number() && v.get<double>() == 0));
  };
  for (const char* k :
       {"use_qalora", "trainable_token_indices", "layer_replication", "alora_invocation_tokens", "target_parameters",
        "velora_config", "monteclora_config", "use_bdlora", "arrow_config", "kasa_config"})
    if (set(k)) refuse(std::string(k) + " is set: kiln merges plain LoRA and DoRA adapters only");
  // init_lora_weights, tested as LoraLayer.update_layer tests it: the ones that change the base
  // weights or the LoRA variant are refused, and so is what peft itself refuses.
  if (has("init_lora_weights") && !j["init_lora_weights"].is_null() && !j["init_lora_weights"].is_boolean()) {
    if (!j["init_lora_weights"].is_string()) refuse("init_lora_weights must be true, false or a method's name");
    const std::string init = j["init_lora_weights"].get<std::string>();
    std::string lower = init;
    for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (init.rfind("pissa", 0) == 0 || init.rfind("corda", 0) == 0 || lower == "olora" || lower == "mica" ||
        init == "loftq" || init == "lora_ga")
      refuse("init_lora_weights \"" + init +
             "\" changes the base weights or the LoRA variant; convert the adapter to "
             "plain LoRA first (peft: save_pretrained(..., path_initial_model_for_weight_conversion=...))");
    if (init != "eva" && init != "orthogonal" && lower != "gaussian")
      refuse("init_lora_weights \"" + init + "\" is not an initialization peft knows (it refuses to load it)");
  }
  if (has("rank_pattern") || has("alpha_pattern")) {
    const auto ordered = nlohmann::ordered_json::parse(text);  // already parsed within limits above
    if (has("rank_pattern")) c.rank_pattern = compile_patterns(ordered["rank_pattern"], path + ": rank_pattern");
    if (has("alpha_pattern")) c.alpha_pattern = compile_patterns(ordered["alpha_pattern"], path + ": alpha_pattern");
  }
  if (has("target_modules")) c.target_modules = j["target_modules"];
  // (null: none; a string: a regex; a list of names. layers_to_transform: an index or a list of them.)
  auto names_or_regex = [&](const char* k) {
    if (!has(k)) return json();
    const json& v = j[k];
    bool ok = v.is_null() || v.is_string() || v.is_array();
    for (const json& e : v.is_array() ? v : json::array()) ok = ok && e.is_string();
    if (!ok) refuse(std::string(k) + " must be a regex, a list of module names, or null");
    return v;
  };
  c.exclude_modules = names_or_regex("exclude_modules");
  c.layers_pattern = names_or_regex("layers_pattern");
  if (has("layers_to_transform")) {
    const json& v = j["layers_to_transform"];
    bool ok = v.is_null() || v.is_number_integer() || v.is_array();
    for (const json& e : v.is_array() ? v : json::array()) ok = ok && e.is_number_integer();
    if (!ok) refuse("layers_to_transform must be a layer index, a list of them, or null");
    c.layers_to_transform = v;
  }
  if (has("modules_to_save")) {
    if (!j["modules_to_save"].is_array()) refuse("modules_to_save must be a list");
    for (const json& m : j["modules_to_save"]) {
      if (!m.is_string() || m.get<std::string>().empty()) refuse("modules_to_save must list module names");
      c.modules_to_save.push_back(m.get<std::string>());
    }
  }
  // Metadata; training-only settings (dropout, Megatron layers); which modules were adapted
  // (exclude_modules, layers_to_transform, layers_pattern: checked against the tensors, selects());
  // initialisation settings (those that change the base weights are refused through
  // init_lora_weights above); fan_in_fan_out (peft sets it per layer, whatever the config says: off for a Linear, on
  // for GPT-2's Conv1D, whose weights the frontend transposes); qalora_group_size (QALoRA is refused); runtime_config
  // (never saved).
  c.unmodeled =
      reader.unmodeled({"task_type",      "auto_mapping",      "peft_version",        "base_model_name_or_path",
                        "revision",       "inference_mode",    "lora_dropout",        "megatron_config",
                        "megatron_core",  "exclude_modules",   "layers_to_transform", "layers_pattern",
                        "loftq_config",   "eva_config",        "corda_config",        "lora_ga_config",
                        "fan_in_fan_out", "qalora_group_size", "runtime_config",      "merge_weights",
                        "enable_lora"});  // the last two: old peft's training switches
  return c;
}

// peft's shorthand target_modules "all-linear" (in any case): every Linear but the output layer.
bool all_linear(const std::string& target) {
  std::string lower = target;
  for (char& ch : lower) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return lower == "all-linear";
}

// Checks that target_modules names a module of the model: the regex (string) matches one, or a
// name of the list does (peft's rule: it adapts the names it finds and fails only when none is
// found). The names that match nothing, for the plan's notes.
std::vector<std::string> check_targets(const Config& c, const std::set<std::string>& modules,
                                       const std::string& where) {
  // The blocks that hold those modules (every dotted prefix of a module's name: "model.layers.0.mlp").
  // peft matches targets against them too, and refuses an adapter that targets one (not a layer).
  std::set<std::string> blocks;
  for (const std::string& m : modules)
    for (size_t dot = m.find('.'); dot != std::string::npos; dot = m.find('.', dot + 1))
      blocks.insert(m.substr(0, dot));
  for (const std::string& m : modules) blocks.erase(m);
  auto refuse_block = [&](const std::string& target, const std::string& block) {
    throw CompileError(where + ": target_modules " + target + " matches '" + block +
                       "', a block of the model, not a layer with weights (peft refuses such a target)");
  };
  if (c.target_modules.is_string()) {
    const std::string re = c.target_modules.get<std::string>();
    if (all_linear(re)) return {};
    const auto rx = module_pattern(re, where + ": target_modules");
    for (const auto& b : blocks)
      if (RE2::FullMatch(b, *rx)) refuse_block("regex '" + re + "'", b);
    for (const auto& m : modules)
      if (RE2::FullMatch(m, *rx)) return {};
    throw CompileError(where + ": target_modules regex '" + re + "' matches no module of the model");
  }
  if (!c.target_modules.is_array()) return {};
  std::vector<std::string> missing;
  for (const json& t : c.target_modules) {
    if (!t.is_string()) throw CompileError(where + ": target_modules must list module names");
    const std::string name = t.get<std::string>();
    bool found = false;
    for (const auto& m : modules) found = found || ends_with_component(m, name);
    for (const auto& b : blocks)
      if (!found && ends_with_component(b, name)) refuse_block("'" + name + "'", b);
    if (!found) missing.push_back(name);
  }
  if (!missing.empty() && missing.size() == c.target_modules.size())
    throw CompileError(where + ": target module '" + missing[0] + "' is not in the model" +
                       (missing.size() > 1 ? " (nor is any other that target_modules names)" : ""));
  return missing;
}

// "'a', 'b'"
std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

// Why peft would not adapt `module` (a name within the model or pipeline component) under this config,
// or "" when it would or kiln cannot tell (target_modules null: peft's default for the model type; a
// regex beyond RE2's syntax). peft's check_target_module_exists: exclude_modules (a regex, full match;
// or names, equal or a dotted suffix), then target_modules: a regex (full match; "all-linear" in any
// case: every Linear but the output layer), or names, where an exact name is taken as it is and a
// dotted suffix is then filtered by layers_to_transform (an empty list: no filter), the layer index
// being the first "<component>.<n>." of the name (layers_pattern names the component), as the pinned
// peft finds it for any adapter (before peft 0.20 it took the last: an MoE expert's index, #3318).
std::string not_selected(const Config& c, const std::string& module, const std::string& where) {
  auto names = [&](const json& list) {
    for (const json& n : list)
      if (ends_with_component(module, n.get<std::string>())) return true;
    return false;
  };
  auto full_match = [&](const std::string& re, const char* key) -> int {  // 1, 0, or -1: not evaluated
    try {
      return int(RE2::FullMatch(module, *module_pattern(re, where + ": " + key)));
    } catch (const CompileError&) {
      return -1;
    }
  };
  if (c.exclude_modules.is_string() && !c.exclude_modules.get<std::string>().empty() &&
      full_match(c.exclude_modules.get<std::string>(), "exclude_modules") == 1)
    return "exclude_modules matches it";
  if (c.exclude_modules.is_array() && names(c.exclude_modules)) return "exclude_modules lists it";
  if (c.target_modules.is_string()) {
    const std::string t = c.target_modules.get<std::string>();
    if (all_linear(t)) return module == "lm_head" ? "target_modules \"" + t + "\" leaves out the output layer" : "";
    return full_match(t, "target_modules") == 0 ? "target_modules \"" + t + "\" does not match it" : "";
  }
  if (!c.target_modules.is_array()) return "";
  for (const json& t : c.target_modules)
    if (t == module) return "";  // (named exactly: no layer filter)
  if (!names(c.target_modules)) return "target_modules does not list it";
  const json& l = c.layers_to_transform;
  if (l.is_null() || (l.is_array() && l.empty())) return "";
  std::vector<std::string> patterns;  // (regex text: peft puts layers_pattern into its regex as it is)
  if (c.layers_pattern.is_string() && !c.layers_pattern.get<std::string>().empty())
    patterns.push_back(c.layers_pattern.get<std::string>());
  for (const json& p : c.layers_pattern.is_array() ? c.layers_pattern : json::array())
    patterns.push_back(p.get<std::string>());
  std::string index;  // the layer index as peft finds it: the first "<component>.<n>." ("" when none)
  if (patterns.empty()) {
    RE2::FullMatch(module, *module_pattern(".*?\\.[^.]*\\.(\\d+)\\..*", where), &index);
  } else {
    for (const std::string& p : patterns)
      if (RE2::FullMatch(module, *module_pattern("(?:|.*?\\.)" + p + "\\.(\\d+)\\..*", where + ": layers_pattern"),
                         &index))
        break;
  }
  auto listed = [&](const std::string& i) {
    for (const json& v : l.is_array() ? l : json::array({l}))
      if (std::to_string(v.get<int64_t>()) == i) return true;
    return false;
  };
  if (index.empty()) return "layers_to_transform is set and no layer index is found in its name";
  if (!listed(index)) return "layers_to_transform does not list its layer " + index;
  return "";
}

// Splits an adapter key into (module path, role). Roles: lora_A, lora_B, lora_B.bias,
// lora_embedding_A, lora_embedding_B, magnitude, or "" for a plain tensor (modules_to_save),
// whose name goes to *tensor_name. An adapter name after the role (".default") is accepted.
// Plain string scanning: keys come from the file and may be arbitrarily long.
std::pair<std::string, std::string> split_key(const std::string& key, size_t prefix_len, std::string* tensor_name) {
  const std::string rest = key.substr(prefix_len);
  struct Marker {
    const char* text;
    const char* role;
  };
  static const Marker markers[] = {{".lora_embedding_A", "lora_embedding_A"},
                                   {".lora_embedding_B", "lora_embedding_B"},
                                   {".lora_magnitude_vector", "magnitude"},
                                   {".lora_A", "lora_A"},
                                   {".lora_B", "lora_B"}};
  for (const Marker& m : markers) {
    const size_t at = rest.rfind(m.text);
    if (at == std::string::npos || at == 0) continue;
    std::string tail = rest.substr(at + std::strlen(m.text));
    if (!tail.empty() && tail[0] != '.') continue;  // e.g. ".lora_Ab": not this marker
    // tail: "", ".weight", ".bias", ".<adapter>", ".<adapter>.weight", ...
    std::vector<std::string> parts;
    for (size_t p = 1; p <= tail.size();) {
      const size_t q = tail.find('.', p);
      parts.push_back(tail.substr(p, q == std::string::npos ? std::string::npos : q - p));
      if (q == std::string::npos) break;
      p = q + 1;
    }
    const std::string last = parts.empty() ? "" : parts.back();
    const std::string role = m.role;
    const bool matrix = role == "lora_A" || role == "lora_B";
    if (matrix && parts.size() >= 1 && parts.size() <= 2 && (last == "weight" || (role == "lora_B" && last == "bias")))
      return {rest.substr(0, at), last == "bias" ? "lora_B.bias" : role};
    if (!matrix && parts.size() <= 2 && (parts.size() < 2 || last == "weight")) return {rest.substr(0, at), role};
  }
  *tensor_name = rest;
  return {"", ""};
}

}  // namespace lora_detail

using namespace lora_detail;

// ---------------------------------------------------------------------------------------

struct LoraSet::Impl {
  std::vector<Adapter> adapters;
  std::vector<LoraRecord> records;
  std::map<std::string, std::vector<std::pair<const Adapter*, const Module*>>> by_tensor;  // "<path>.weight"/".bias"
  std::map<std::string, const StTensor*> replacements;
  std::set<std::string> saved;                                              // (modules_to_save copies)
  bool embedding_only = false;  // a LoRA adapts a tied embedding, not its head (embedding_lora_unties)
  std::vector<std::pair<std::string, std::vector<std::string>>> unmodeled;  // (config, keys)
  std::vector<std::string> notes;                                           // for the plan's notes
};

LoraSet::LoraSet() : impl_(std::make_unique<Impl>()) {}
LoraSet::~LoraSet() = default;
LoraSet::LoraSet(LoraSet&&) noexcept = default;
LoraSet& LoraSet::operator=(LoraSet&&) noexcept = default;

LoraAdapterSpec parse_lora_spec(const std::string& arg) {
  LoraAdapterSpec s;
  s.dir = arg;
  const size_t colon = arg.rfind(':');
  if (colon != std::string::npos && colon + 1 < arg.size()) {
    const std::string w = arg.substr(colon + 1);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(w, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == w.size()) {
      if (!std::isfinite(v)) throw CompileError("--lora " + arg + ": the weight must be a finite number");
      s.dir = arg.substr(0, colon);
      s.weight = v;
    } else if (!path_exists(arg) && path_exists(arg.substr(0, colon))) {
      throw CompileError("--lora " + arg + ": the weight '" + w + "' after the colon is not a number");
    }
  }
  if (s.dir.empty()) throw CompileError("--lora needs an adapter folder");
  return s;
}

std::string spec_file(const LoraAdapterSpec& s) {
  return s.file.empty() ? s.dir + "/adapter_model.safetensors" : s.file;
}
std::string spec_prefix(const LoraAdapterSpec& s) { return s.key_prefix.empty() ? kPrefix : s.key_prefix; }
std::string spec_name(const LoraAdapterSpec& s) { return s.name.empty() ? base_name(s.dir) : s.name; }

std::string find_lora_prefix(const LoraAdapterSpec& spec, const Checkpoint& base,
                             const std::vector<std::string>& candidates) {
  const std::string st_path = spec_file(spec), kp = spec_prefix(spec);
  const auto file = SafetensorsFile::open(st_path);
  for (const auto& [key, t] : file->tensors()) {
    if (key.compare(0, kp.size(), kp) != 0) continue;
    std::string plain;
    const auto [path, role] = split_key(key, kp.size(), &plain);
    if (role != "lora_A" && role != "lora_embedding_A") continue;
    for (const std::string& c : candidates)
      if (base.find(c + path + ".weight")) return c;
    throw CompileError("adapter '" + spec_name(spec) + "': module '" + path +
                       "' is in none of the pipeline's components");
  }
  throw CompileError(st_path + ": the adapter has no LoRA A matrices");
}

std::vector<LoraAdapterSpec> expand_lora_spec(const LoraAdapterSpec& spec) {
  std::string file = spec.dir;
  if (file.size() < 12 || file.compare(file.size() - 12, 12, ".safetensors") != 0) {
    if (path_exists(spec.dir + "/adapter_config.json") || !path_exists(spec.dir + "/pytorch_lora_weights.safetensors"))
      return {spec};  // a PEFT folder (its own errors say what is missing)
    file = spec.dir + "/pytorch_lora_weights.safetensors";
  }
  const auto st = SafetensorsFile::open(file);
  // Components by key prefix, and the ranks of their A matrices.
  std::map<std::string, std::set<int64_t>> ranks;
  for (const auto& [key, t] : st->tensors()) {
    if (key.find("lora_unet_") == 0 || key.find("lora_te") == 0 || key.find(".alpha") != std::string::npos)
      throw CompileError(file + ": key '" + key +
                         "' is in the kohya format, which kiln does not read (convert it with "
                         "diffusers' load_lora_weights and save_lora_weights)");
    if (key.find(".lora.down.") != std::string::npos || key.find("_lora.down.") != std::string::npos)
      throw CompileError(file + ": key '" + key +
                         "' is in diffusers' pre-PEFT LoRA format, which kiln does not read "
                         "(load and save it again with a current diffusers)");
    const size_t dot = key.find('.');
    if (dot == std::string::npos) throw CompileError(file + ": key '" + key + "' names no component");
    if (key.find(".lora_A.") != std::string::npos && t.shape.size() >= 1) ranks[key.substr(0, dot)].insert(t.shape[0]);
  }
  if (ranks.empty()) throw CompileError(file + ": no LoRA A matrices (expected keys like unet.<module>.lora_A.weight)");
  nlohmann::json meta;
  if (auto it = st->metadata().find("lora_adapter_metadata"); it != st->metadata().end()) {
    meta =
        parse_json_limited(it->second.data(), it->second.data() + it->second.size(), file + " (lora_adapter_metadata)");
    if (!meta.is_object()) throw CompileError(file + ": lora_adapter_metadata is not a JSON object");
  }
  std::vector<LoraAdapterSpec> out;
  for (const auto& [component, rs] : ranks) {
    nlohmann::json cfg = nlohmann::json::object();
    const std::string cp = component + ".";
    for (auto it = meta.begin(); it != meta.end(); ++it)
      if (it.key().compare(0, cp.size(), cp) == 0) cfg[it.key().substr(cp.size())] = it.value();
    if (cfg.empty()) {
      if (rs.size() != 1)
        throw CompileError(file + ": the " + component +
                           " matrices have different ranks and the file has no "
                           "lora_adapter_metadata to say their alphas");
      cfg = {{"r", *rs.begin()}, {"lora_alpha", *rs.begin()}};
    }
    cfg.erase("base_model_name_or_path");
    LoraAdapterSpec s = spec;
    s.file = file;
    s.config_text = cfg.dump();
    s.key_prefix = cp;
    s.name = base_name(spec.dir) + ":" + component;
    out.push_back(std::move(s));
  }
  return out;
}

LoraSet LoraSet::load(const std::vector<LoraAdapterSpec>& specs, const Checkpoint& base, bool tied_head,
                      const ModuleNames& names) {
  LoraSet set;
  Impl& im = *set.impl_;
  // (a name as peft has it, and as the checkpoint has it)
  auto peft = [&](const std::string& n) { return names.to_peft ? names.to_peft(n) : n; };
  auto ck = [&](const std::string& n) { return names.from_peft ? names.from_peft(n) : n; };
  std::set<std::string> modules;
  for (const std::string& m : module_names(base)) modules.insert(peft(m));
  const std::string embed_module = peft("model.embed_tokens");
  im.adapters.reserve(specs.size());
  for (const LoraAdapterSpec& spec : specs) {
    const std::string name = spec_name(spec);
    const std::string where = "adapter '" + name + "'";
    const std::string cfg_path =
        spec.config_text.empty() ? spec.dir + "/adapter_config.json" : spec_file(spec) + " (" + name + ")";
    const std::string st_path = spec_file(spec), kp = spec_prefix(spec);
    const std::string cfg_text = spec.config_text.empty() ? read_text_file(cfg_path) : spec.config_text;
    const Config c = read_config_text(cfg_text, cfg_path);
    if (!c.unmodeled.empty()) im.unmodeled.emplace_back(cfg_path, c.unmodeled);
    Adapter ad;
    ad.record.name = name;
    ad.ensure_weight_tying = c.ensure_weight_tying;
    ad.record.weight = spec.weight;
    ad.file = SafetensorsFile::open(st_path);
    {  // content hash: config bytes, then the tensor file
      XXH3_state_t* st = XXH3_createState();
      XXH3_64bits_reset(st);
      XXH3_64bits_update(st, cfg_text.data(), cfg_text.size());
      XXH3_64bits_update(st, ad.file->bytes(), ad.file->size());
      ad.record.xxh3 = XXH3_64bits_digest(st);
      XXH3_freeState(st);
    }
    if (c.dora && (specs.size() > 1 || spec.weight != 1.0))
      throw CompileError(where +
                         ": a DoRA adapter can only be merged alone and with weight 1 (its merge is not linear)");
    if (!c.modules_to_save.empty() && spec.weight != 1.0)
      throw CompileError(where + ": an adapter with modules_to_save can only be merged with weight 1 (its saved " +
                         "modules replace the model's; a weight cannot scale them)");
    // A pipeline component's adapter names its own modules (no component prefix).
    std::set<std::string> local;
    if (!spec.prefix.empty())
      for (const std::string& m : modules)
        if (m.compare(0, spec.prefix.size(), spec.prefix) == 0) local.insert(m.substr(spec.prefix.size()));
    const std::set<std::string>& own = spec.prefix.empty() ? modules : local;
    // A tied model's head is a module of its own to peft (lm_head, sharing the embedding's
    // weight), which modules_to_save may name.
    const StTensor* tied_embedding =
        spec.prefix.empty() && tied_head ? base.find("model.embed_tokens.weight") : nullptr;
    if (tied_embedding && c.target_modules.is_array())
      for (const json& t : c.target_modules)
        if (t.is_string() && ends_with_component("lm_head", t.get<std::string>()))
          throw CompileError(where +
                             ": target_modules names lm_head, which this model ties to its embedding: a LoRA on "
                             "a tied head has no single merged form (peft's merged model differs from its "
                             "unmerged one)");
    // (peft's conversion for transformers 5's fused experts: gate_proj and up_proj are one parameter)
    if (names.moe_fused_targets.size() == 3 && c.target_modules.is_array()) {
      auto named = [&](const std::string& leaf) {
        for (const json& t : c.target_modules)
          if (t.is_string() && ends_with_component(t.get<std::string>(), leaf)) return true;
        return false;
      };
      const std::string& g = names.moe_fused_targets[0];
      const std::string& u = names.moe_fused_targets[1];
      if (named(g) != named(u))
        throw CompileError(where + ": target_modules names " + (named(g) ? g : u) + " without " + (named(g) ? u : g) +
                           ", which peft refuses for this model (transformers 5 fuses the experts' two into "
                           "gate_up_proj)");
    }
    if (const std::vector<std::string> missing = check_targets(c, own, where); !missing.empty())
      im.notes.push_back(where + ": target_modules names " + quoted_list(missing) +
                         ", which match no module of the model: as peft, kiln adapts the others");
    // (peft skips names that match no module; a saved copy of one is refused below, as its module
    // is not in the model)
    std::vector<std::string> unsaved;
    for (const std::string& m : c.modules_to_save) {
      bool found = tied_embedding && saved_under("lm_head", m);
      for (const auto& mod : own) found = found || saved_under(mod, m);
      if (!found) unsaved.push_back(m);
    }
    if (!unsaved.empty())
      im.notes.push_back(where + ": modules_to_save names " + quoted_list(unsaved) +
                         ", which match no module of the model: as peft, kiln skips " +
                         (unsaved.size() > 1 ? "them" : "it"));

    // Group the tensors by module.
    std::map<std::string, Module> mods;
    for (const auto& [key, t] : ad.file->tensors()) {
      if (key.compare(0, kp.size(), kp) != 0) {
        if (!spec.key_prefix.empty()) continue;  // another component's tensors in a shared file
        throw CompileError(st_path + ": key '" + key + "' is not a PEFT key (expected the prefix base_model.model.)");
      }
      std::string plain;
      const auto [local_path, role] = split_key(key, kp.size(), &plain);
      // A pipeline component's adapter: its module paths live under spec.prefix in `base`.
      const std::string path =
          spec.prefix + (role.empty() || !names.lora_path ? std::string(local_path) : names.lora_path(local_path));
      plain = spec.prefix + plain;
      if (role.empty()) {
        // A full tensor that replaces the base one: a modules_to_save copy (its module must be
        // listed), or a targeted layer's own weights ("<module>.base_layer.weight"), which peft
        // saves for embeddings and loads over the base before the LoRA applies.
        const size_t bl = plain.find(".base_layer.");
        const bool base_layer = bl != std::string::npos;
        if (base_layer) plain.erase(bl, std::string(".base_layer").size());
        bool listed = base_layer;
        for (const std::string& m : c.modules_to_save) {
          const size_t dot = plain.rfind('.');
          listed =
              listed || (dot != std::string::npos && saved_under(plain.substr(0, dot), m)) ||
              // (ensure_weight_tying: peft saves the tied head with the embedding)
              (c.ensure_weight_tying && tied_embedding && plain == "lm_head.weight" && saved_under(embed_module, m));
        }
        if (!listed)
          throw CompileError(st_path + ": unrecognized key '" + key + "' (not a LoRA tensor or a module to save)");
        const std::string shown = plain;  // (peft's name, in messages)
        plain = ck(plain);                // (the checkpoint's name from here on)
        const StTensor* b = base.find(plain);
        if (!b && plain == "lm_head.weight") b = tied_embedding;
        if (!b) throw CompileError(where + ": saved module tensor '" + shown + "' is not in the model");
        if (!t.has_dtype || !dtype_is_float(t.dtype))
          throw CompileError(where + ": '" + key + "' is not a float tensor");
        const StTensor* copy = &t;
        if (names.transposed && names.transposed(plain) && t.shape.size() == 2) {  // (as the checkpoint's was)
          ad.transposed_bytes.push_back(std::make_unique<std::vector<uint8_t>>());
          ad.transposed.push_back(transposed_copy(t, ad.transposed_bytes.back().get()));
          copy = ad.transposed.back().get();
        }
        if (b->shape != copy->shape)
          throw CompileError(
              where + ": saved module tensor '" + shown + "' has shape " + shape_str(t.shape) + " but the model's is " +
              shape_str(copy == &t ? b->shape : transposed_shape(b->shape)) +
              (copy == &t ? " (a resized vocabulary is not supported)" : " (as the checkpoint holds it)"));
        if (base_layer && same_values(*copy, *b)) continue;  // (the model's own: nothing to replace)
        if (!all_finite(*copy))
          throw CompileError(where + ": saved module tensor '" + key + "' holds a NaN or an infinity");
        ad.replacements[plain] = copy;
        if (!base_layer) ad.saved.insert(plain);
        continue;
      }
      if (!t.has_dtype || !dtype_is_float(t.dtype))
        throw CompileError(where + ": '" + key + "' has dtype " + t.st_dtype + " (expected F32, BF16 or F16)");
      Module& m = mods[path];
      m.path = path;
      const StTensor** slot = role == "lora_A" || role == "lora_embedding_A"   ? &m.a
                              : role == "lora_B" || role == "lora_embedding_B" ? &m.b
                              : role == "lora_B.bias"                          ? &m.b_bias
                                                                               : &m.magnitude;
      if (*slot) throw CompileError(where + ": module '" + path + "' has two " + role + " tensors");
      *slot = &t;
      if (role == "lora_embedding_A" || role == "lora_embedding_B") m.kind = Kind::kEmbedding;
    }
    if (mods.empty() && ad.replacements.empty())
      throw CompileError(where + ": the adapter matches no module (no LoRA tensors)");

    std::set<std::string> tied_copies;  // modules that are another's adapter, tied
    for (auto& [path, m] : mods) {
      const std::string mw = where + ", module '" + path + "'";
      if (!m.a || !m.b) throw CompileError(mw + ": needs both A and B matrices");
      const StTensor* w = base.find(ck(path) + ".weight");
      if (tied_embedding && ck(path) == "lm_head" && c.ensure_weight_tying) {
        // ensure_weight_tying: peft gives the tied head the embedding's adapter, transposed (A = Bᵀ,
        // B = Aᵀ: the same ΔW), and saves it too. The embedding's merge is the head's.
        const auto e = mods.find(embed_module);
        if (e == mods.end() || e->second.kind != Kind::kEmbedding || !e->second.a || !e->second.b ||
            m.kind != Kind::kLinear || m.b_bias || m.magnitude || !transposed_values(*m.a, *e->second.b) ||
            !transposed_values(*m.b, *e->second.a))
          throw CompileError(mw +
                             ": ensure_weight_tying ties this head to the embedding, but its LoRA is not the "
                             "embedding's transposed, as peft ties them");
        tied_copies.insert(path);
        continue;
      }
      if (!w) throw CompileError(mw + ": the module is not in the model");
      if (m.magnitude && !c.dora) throw CompileError(mw + ": has a DoRA magnitude but use_dora is false");
      if (c.dora && !m.magnitude) throw CompileError(mw + ": use_dora is set but the magnitude vector is missing");
      if (m.b_bias && !c.lora_bias) throw CompileError(mw + ": has lora_B.bias but lora_bias is false");
      // A 1×1 convolution (SD 1.x's proj_in/proj_out): peft's A and B are 1×1 convolutions too, and
      // its merge is the matrices' B·A (as for a Linear, the weight's rows being its out channels).
      auto one_by_one = [](const StTensor* t) { return t->shape.size() == 4 && t->shape[2] == 1 && t->shape[3] == 1; };
      if (w->shape.size() == 4 || m.a->shape.size() == 4 || m.b->shape.size() == 4) {
        if (!one_by_one(w) || !one_by_one(m.a) || !one_by_one(m.b))
          throw CompileError(mw + ": a LoRA on a convolution (weight " + shape_str(w->shape) + ", A " +
                             shape_str(m.a->shape) + ", B " + shape_str(m.b->shape) +
                             "): kiln merges LoRA on Linear and Embedding layers and 1x1 convolutions only");
        if (m.magnitude) throw CompileError(mw + ": DoRA on a convolution is not supported");
      } else if (m.a->shape.size() != 2 || m.b->shape.size() != 2 || w->shape.size() != 2) {
        throw CompileError(mw + ": A, B and the base weight must be matrices");
      }
      const int64_t rank = m.a->shape[0];
      // Linear: W (out, in), A (r, in), B (out, r). Embedding: W (vocab, dim), A (r, vocab), B (dim, r).
      const int64_t a_cols = m.kind == Kind::kLinear ? w->shape[1] : w->shape[0];
      const int64_t b_rows = m.kind == Kind::kLinear ? w->shape[0] : w->shape[1];
      if (m.a->shape[1] != a_cols)
        throw CompileError(mw + ": A is " + shape_str(m.a->shape) + " but the model's weight " + shape_str(w->shape) +
                           " needs " + std::to_string(a_cols) + " columns (made for another model?)");
      if (m.b->shape[0] != b_rows || m.b->shape[1] != rank)
        throw CompileError(mw + ": B is " + shape_str(m.b->shape) + ", expected [" + std::to_string(b_rows) + ", " +
                           std::to_string(rank) + "] for A " + shape_str(m.a->shape) + " and the model's weight " +
                           shape_str(w->shape) + " (made for another model?)");
      const std::string local = path.substr(spec.prefix.size());  // patterns name the component's own modules
      const json* rp = pattern_value(c.rank_pattern, local);
      const json* ap = pattern_value(c.alpha_pattern, local);
      if (rp && !(rp->is_number_integer() && rp->get<int64_t>() > 0))
        throw CompileError(cfg_path + ": rank_pattern values must be positive integers (" + rp->dump() + " for '" +
                           local + "')");
      if (ap && !(ap->is_number() && std::isfinite(ap->get<double>())))
        throw CompileError(cfg_path + ": alpha_pattern values must be finite numbers (" + ap->dump() + " for '" +
                           local + "')");
      if (const std::string leaf = local.substr(local.rfind('.') + 1);
          std::find(names.moe_fused_targets.begin(), names.moe_fused_targets.end(), leaf) !=
              names.moe_fused_targets.end() &&
          local.find(".experts.") == std::string::npos)
        throw CompileError(mw + ": a LoRA on " + leaf +
                           " outside the experts, which peft on transformers 5 leaves unloaded for this model (it "
                           "moves gate_proj, up_proj and down_proj targets to the fused experts' parameters): kiln "
                           "refuses rather than merge what peft drops");
      if (const std::string why = not_selected(c, local, cfg_path); !why.empty())
        throw CompileError(mw + ": the adapter has LoRA tensors for it, but " + cfg_path + "'s " + why +
                           " (peft would not load them)");
      const int64_t r = rp ? rp->get<int64_t>() : c.r;
      const double alpha = ap ? ap->get<double>() : c.alpha;
      if (rank != r)
        throw CompileError(mw + ": A has rank " + std::to_string(rank) +
                           " but adapter_config.json gives r = " + std::to_string(r) + " for this module");
      if (m.magnitude && m.kind != Kind::kLinear) throw CompileError(mw + ": DoRA on embeddings is not supported");
      if (m.magnitude && m.magnitude->shape != std::vector<int64_t>{w->shape[0]})
        throw CompileError(mw + ": the DoRA magnitude is " + shape_str(m.magnitude->shape) + ", expected [" +
                           std::to_string(w->shape[0]) + "]");
      if (m.b_bias) {
        if (m.b_bias->shape != std::vector<int64_t>{b_rows})
          throw CompileError(mw + ": lora_B.bias has the wrong shape");
        if (!base.find(ck(path) + ".bias"))
          throw CompileError(mw + ": lora_bias needs a bias in the base layer, which has none");
      }
      m.scale = spec.weight * (c.rslora ? alpha / std::sqrt(double(r)) : alpha / double(r));
    }
    for (auto& [path, m] : mods)
      if (!tied_copies.count(path)) ad.modules.push_back(m);
    im.adapters.push_back(std::move(ad));
  }
  for (const Adapter& ad : im.adapters) {
    im.records.push_back(ad.record);
    for (const Module& m : ad.modules) {
      im.by_tensor[ck(m.path) + ".weight"].push_back({&ad, &m});
      if (m.b_bias) im.by_tensor[ck(m.path) + ".bias"].push_back({&ad, &m});
    }
    for (const auto& [name, t] : ad.replacements) {
      if (im.replacements.count(name))
        throw CompileError("adapter '" + ad.record.name + "': '" + peft(name) +
                           "' is also replaced by another adapter");
      im.replacements[name] = t;
    }
    im.saved.insert(ad.saved.begin(), ad.saved.end());
  }
  // A saved copy of a tied embedding replaces the embedding only: peft's head keeps the model's
  // weights (untie_saved_copies reads them apart), unless ensure_weight_tying ties the head to it.
  const std::string embed = "model.embed_tokens.weight", head = "lm_head.weight";
  if (im.saved.count(embed) && !im.replacements.count(head)) {
    bool tie = false;
    for (const Adapter& ad : im.adapters) tie = tie || (ad.saved.count(embed) && ad.ensure_weight_tying);
    if (tie) im.replacements[head] = im.replacements[embed];
    else if (!base.find(head)) im.replacements[head] = base.find(embed);
  }
  // A LoRA on a tied embedding: peft's model adds it to the embedding only, its head keeping the
  // model's weights (merge_and_unload would change the head too), unless ensure_weight_tying gives
  // the head the same adapter (then the embedding's merge is the head's).
  if (tied_head && im.by_tensor.count(embed)) {
    bool tied = false, untied = false;
    for (const auto& am : im.by_tensor.at(embed)) (am.first->ensure_weight_tying ? tied : untied) = true;
    if (tied && untied)
      throw CompileError(
          "adapters adapt the tied embedding with and without ensure_weight_tying: the LM head has no "
          "single form (merge them apart)");
    if (untied) {
      if (!im.replacements.count(head) && !base.find(head)) im.replacements[head] = base.find(embed);
      im.embedding_only = true;
    }
  }
  return set;
}

void check_lora_config_text(const std::string& text, const std::string& name) { read_config_text(text, name); }

bool lora_module_pattern_matches(const std::string& pattern, const std::string& module) {
  return RE2::FullMatch(module, *module_pattern(pattern, "target_modules"));
}

std::vector<std::string> lora_config_unmodeled(const std::string& text, const std::string& name) {
  return read_config_text(text, name).unmodeled;
}

bool LoraSet::empty() const { return impl_->adapters.empty(); }

bool LoraSet::touches(const std::string& name) const { return impl_->by_tensor.count(name) > 0; }

bool LoraSet::saved_copy(const std::string& name) const { return impl_->saved.count(name) > 0; }

bool LoraSet::embedding_lora_unties() const { return impl_->embedding_only; }

const StTensor* LoraSet::replacement(const std::string& name) const {
  auto it = impl_->replacements.find(name);
  return it == impl_->replacements.end() ? nullptr : it->second;
}

const std::vector<LoraRecord>& LoraSet::records() const { return impl_->records; }

const std::vector<std::pair<std::string, std::vector<std::string>>>& LoraSet::unmodeled_config_keys() const {
  return impl_->unmodeled;
}

const std::vector<std::string>& LoraSet::notes() const { return impl_->notes; }

void LoraSet::apply(const std::string& name, std::vector<float>& w, ThreadPool& pool) const {
  auto it = impl_->by_tensor.find(name);
  if (it == impl_->by_tensor.end()) return;
  const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  for (const auto& entry : it->second) {  // (named, not bound: check_merged below captures them)
    const Adapter* ad = entry.first;
    const Module* m = entry.second;
    const float scale = float(m->scale);
    if (is_bias) {  // lora_bias: b += scale · lora_B.bias
      for (size_t o = 0; o < w.size(); ++o) {
        w[o] += load_as_f32(m->b_bias->data, m->b_bias->dtype, o) * scale;
        if (!std::isfinite(w[o]))
          throw CompileError("adapter '" + ad->record.name + "', module '" + m->path + "': the merged bias '" + name +
                             "' has the non-finite value " + short_float(w[o]) +
                             " (a NaN or infinity in lora_B.bias, or past the f32 range)");
      }
      continue;
    }
    const int64_t r = m->a->shape[0];
    std::vector<float> A(size_t(m->a->numel())), B(size_t(m->b->numel()));
    convert_to_f32(m->a->data, m->a->dtype, A.data(), A.size());
    convert_to_f32(m->b->data, m->b->dtype, B.data(), B.size());
    // Rows of W: linear → out (B's rows), embedding → vocab (A's columns).
    const bool lin = m->kind == Kind::kLinear;
    const int64_t rows = lin ? m->b->shape[0] : m->a->shape[1];
    const int64_t cols = lin ? m->a->shape[1] : m->b->shape[0];
    // ΔW[i, j] = scale · Σ_k B[i, k] A[k, j] (linear); scale · Σ_k B[j, k] A[k, i] (embedding).
    std::vector<float> delta(size_t(rows * cols));
    pool.parallel_for(rows, 16, [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        float* d = delta.data() + i * cols;
        for (int64_t j = 0; j < cols; ++j) d[j] = 0.0f;
        for (int64_t k = 0; k < r; ++k) {
          if (lin) {
            const float bik = B[size_t(i * r + k)];
            const float* a = A.data() + k * cols;
            for (int64_t j = 0; j < cols; ++j) d[j] += bik * a[j];
          } else {
            const float aki = A[size_t(k * rows + i)];
            for (int64_t j = 0; j < cols; ++j) d[j] += B[size_t(j * r + k)] * aki;
          }
        }
        for (int64_t j = 0; j < cols; ++j) d[j] *= scale;
      }
    });
    // A NaN or infinity in A or B, or a product that overflows f32 (the weight · alpha / r), would make
    // a plan of NaN logits: refused, naming the adapter and module.
    const auto bad = std::find_if(delta.begin(), delta.end(), [](float v) { return !std::isfinite(v); });
    if (bad != delta.end())
      throw CompileError("adapter '" + ad->record.name + "', module '" + m->path + "': its update B·A·" +
                         short_float(m->scale) + " has the non-finite value " + short_float(*bad) +
                         " (a NaN or infinity in A or B, or a product past the f32 range)");
    auto check_merged = [&] {
      for (float v : w)
        if (!std::isfinite(v))
          throw CompileError("adapter '" + ad->record.name + "', module '" + m->path + "': the merged weight '" + name +
                             "' has the non-finite value " + short_float(v) + " (past the f32 range)");
    };
    if (!m->magnitude) {
      for (size_t i = 0; i < w.size(); ++i) w[i] += delta[i];
      check_merged();
      continue;
    }
    // DoRA (peft's merge): W' = (m / ‖W + ΔW‖_row) · (W + ΔW).
    for (int64_t i = 0; i < rows; ++i) {
      double ss = 0;
      float* row = w.data() + i * cols;
      const float* d = delta.data() + i * cols;
      for (int64_t j = 0; j < cols; ++j) {
        row[j] += d[j];
        ss += double(row[j]) * double(row[j]);
      }
      const float factor = load_as_f32(m->magnitude->data, m->magnitude->dtype, uint64_t(i)) / float(std::sqrt(ss));
      for (int64_t j = 0; j < cols; ++j) row[j] *= factor;
    }
    check_merged();
  }
}

}  // namespace kiln
