// A small interpreter for the subset of Jinja2 that Hugging Face chat templates use, with
// the environment transformers renders them in: trim_blocks and lstrip_blocks on, the
// loopcontrols extension (break/continue), `{% generation %}` blocks, an immutable sandbox,
// and the globals raise_exception, strftime_now, namespace and dict, plus transformers' own
// `tojson` (json.dumps with ensure_ascii=False).
//
// Templates are untrusted input (they ship with the checkpoint, and a plan may be re-sealed
// after editing): parsing is linear in the template, nesting is bounded, and rendering is
// bounded in steps, output bytes and call depth. Every failure is a Status naming the line
// and the construct; nothing here aborts. Values follow Python's semantics where a template
// can observe them (str() of floats, lists and dicts, integer division, truthiness).
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/status.h"

namespace kiln::jinja {

class Value;
struct Dict;
struct Function;
using List = std::vector<Value>;

// A template value: Undefined, None, bool, int, float, str (UTF-8), list or tuple, dict
// (insertion-ordered, string keys; also Jinja's namespace), or a callable.
class Value {
 public:
  enum class Type : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };
  // How a list prints and compares: Python's list, tuple, the dict views, range, and the
  // iterators that Jinja's map/select/reject/reverse filters return (kIterator: no len(), no
  // JSON, not printable, always true).
  enum class ListKind : uint8_t { kList, kTuple, kKeys, kValues, kItems, kRange, kIterator };

  Value() = default;  // Undefined
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value markup(std::string s);  // markupsafe.Markup: what |safe and |escape return
  static Value list(List items, bool tuple = false);
  static Value list(List items, ListKind kind, std::string range_repr = "");
  static Value dict();  // empty; fill with set()
  static Value namespace_();
  static Value function(std::shared_ptr<const Function> f);
  static Value undefined(std::string name);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kFloat; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_tuple() const { return kind_ == ListKind::kTuple; }
  ListKind list_kind() const { return kind_; }
  bool is_namespace() const { return ns_; }
  bool is_markup() const { return type_ == Type::kString && markup_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_float() const { return type_ == Type::kInt ? double(i_) : f_; }
  const std::string& as_string() const { return s_ ? *s_ : empty_string(); }  // also an Undefined's name
  const List& items() const { return *list_; }
  const Dict& entries() const { return *dict_; }
  const Function& function() const { return *fn_; }
  // Containers: the deepest nesting below (1 for a flat list), the size counted with shared
  // parts once per use (items plus string bytes / 16, saturating), and whether a namespace is
  // inside. Namespaces are mutable, so theirs reflect their entries as of the last set().
  uint32_t depth() const { return depth_; }
  uint64_t weight() const { return weight_; }
  bool holds_namespace() const { return has_ns_; }  // or a function (a bound method holds its object)

  // Dicts: insert or replace a key (keeps the first insertion's position, as Python does).
  // Keys are str, int, float, bool, None or tuples of those (equal numbers are one key, as in
  // Python); set() fails on another key only through the interpreter's checks.
  void set(const std::string& key, Value v);
  void set(const Value& key, Value v);
  const Value* find(const std::string& key) const;
  const Value* find(const Value& key) const;

 private:
  Type type_ = Type::kUndefined;
  bool b_ = false, ns_ = false, markup_ = false;
  ListKind kind_ = ListKind::kList;
  bool has_ns_ = false;
  uint32_t depth_ = 0;
  uint64_t weight_ = 1;
  void account(const Value& child);
  static const std::string& empty_string();
  int64_t i_ = 0;
  double f_ = 0;
  // Strings are shared, never copied with the value (a template may pass a long one around).
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;
  std::unordered_map<std::string, size_t> index;  // hash_key(key) → position in items
};

// The identity of a dict key (Python's hash equality); "" for an unhashable value.
std::string hash_key(const Value& key);

// Positional and keyword arguments of a call.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

class Interpreter;
struct Function {
  std::string name;
  std::function<Value(Interpreter&, Args&)> call;
};

// Bounds on one render. The defaults are far above what any real chat needs.
struct Limits {
  uint64_t max_steps = 20'000'000;       // expression evaluations and loop iterations
  size_t max_output = size_t(64) << 20;  // bytes of output and of any one string built
  int max_call_depth = 64;               // macro calls
};

struct Node;

// A parsed template. Parse once (it is immutable), render many times, from any thread.
class Template {
 public:
  static Result<Template> parse(std::string_view source);
  // `context` is a dict of the template's variables. strftime_now formats `now` (not owned),
  // or the local time when null.
  Result<std::string> render(const Value& context, const Limits& limits = Limits(), const std::tm* now = nullptr) const;
  // Filters and tests the template names that kiln's subset lacks: "filter 'from_json'" for one that
  // neither Jinja's builtins nor transformers' environment define, "Jinja filter 'format'" for one of
  // Jinja's own that kiln does not implement. As in Jinja 3, a render fails only if it reaches one,
  // so such a template still works for the conversations that avoid it.
  const std::vector<std::string>& unknown_names() const { return unknown_; }

 private:
  std::shared_ptr<const Node> root_;
  std::vector<std::string> unknown_;
};

// The variables transformers' apply_chat_template gives a template: `messages` (keys whose
// value is None dropped; a message's reasoning also under "thinking" and "reasoning_content",
// as transformers aliases it), `tools`
// and `documents` (None unless `extra` sets them), `add_generation_prompt`, then every key of
// `extra` (a dict: the special tokens, the caller's own keyword arguments).
Value chat_context(const Value& messages, bool add_generation_prompt, const Value& extra);

// JSON text → Value (objects become dicts in key order); depth and size bounded.
Result<Value> parse_json(std::string_view text);
// Value → JSON as Python's json.dumps(v, ensure_ascii=False) writes it (", " and ": ").
Result<std::string> to_json(const Value& v);

}  // namespace kiln::jinja
