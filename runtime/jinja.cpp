// See jinja.h. Sections: values; Python's str/repr and JSON; the lexer; the parser; the
// interpreter (statements, expressions); filters, tests, methods and globals; the public
// entry points. Errors inside are thrown as Error and become a Status at the entry points;
// no exception leaves this file.
#include "runtime/jinja.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unordered_set>

#include "runtime/text.h"

namespace kiln::jinja {

namespace {

struct Error {
  std::string message;
};

[[noreturn]] void fail(int line, const std::string& m) {
  throw Error{line > 0 ? "line " + std::to_string(line) + ": " + m : m};
}

constexpr int kMaxNesting = 200;           // parse depth of statements and expressions, JSON depth
constexpr uint32_t kMaxValueDepth = 200;   // how deep values a template builds may nest
constexpr uint64_t kMaxWeight = 1u << 24;  // Value::weight() of any one value a template builds
// Pieces one split, splitlines or list of a string makes (each ~100-250 bytes: a bound on memory
// a 64 MiB string could otherwise turn into gigabytes of before any weight is checked).
constexpr size_t kMaxPieces = kMaxWeight / 16;
constexpr int kMaxEvalDepth = 400;         // eval/exec frames at once, macros included (~300 KB of stack)

void check_pieces(size_t n, int line) {
  if (n > kMaxPieces) fail(line, "a value the template builds is too large");
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Values

Value Value::none() {
  Value v;
  v.type_ = Type::kNone;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::kBool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.type_ = Type::kInt;
  v.i_ = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.type_ = Type::kFloat;
  v.f_ = f;
  return v;
}
const std::string& Value::empty_string() {
  static const std::string empty;
  return empty;
}

Value Value::string(std::string s) {
  Value v;
  v.type_ = Type::kString;
  v.weight_ = 1 + s.size() / 16;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

void Value::account(const Value& c) {
  depth_ = std::max<uint32_t>(depth_, c.depth_ + 1);
  const uint64_t add = c.weight_ + 7;  // an item costs ~8 units (a Value is ~100 bytes)
  weight_ = add > UINT64_MAX / 2 - weight_ ? UINT64_MAX / 2 : weight_ + add;
  has_ns_ = has_ns_ || c.ns_ || c.has_ns_ || c.type_ == Type::kFunction;  // (a bound method holds its object)
}
Value Value::markup(std::string s) {
  Value v = string(std::move(s));
  v.markup_ = true;
  return v;
}
Value Value::list(List items, bool tuple) { return list(std::move(items), tuple ? ListKind::kTuple : ListKind::kList); }
Value Value::list(List items, ListKind kind, std::string range_repr) {
  Value v;
  v.type_ = Type::kList;
  v.kind_ = kind;
  if (!range_repr.empty()) v.s_ = std::make_shared<const std::string>(std::move(range_repr));
  v.list_ = std::make_shared<List>(std::move(items));
  v.depth_ = 1;
  for (const Value& x : *v.list_) v.account(x);
  return v;
}
Value Value::dict() {
  Value v;
  v.type_ = Type::kDict;
  v.dict_ = std::make_shared<Dict>();
  v.depth_ = 1;
  return v;
}
Value Value::namespace_() {
  Value v = dict();
  v.ns_ = true;
  return v;
}
Value Value::function(std::shared_ptr<const Function> f) {
  Value v;
  v.type_ = Type::kFunction;
  v.fn_ = std::move(f);
  return v;
}
Value Value::undefined(std::string name) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(name));
  return v;
}

void Value::set(const std::string& key, Value v) { set(Value::string(key), std::move(v)); }

void Value::set(const Value& key, Value v) {
  std::string h = hash_key(key);
  account(key);
  account(v);
  auto it = dict_->index.find(h);
  if (it != dict_->index.end()) {
    dict_->items[it->second].second = std::move(v);
    return;
  }
  dict_->index.emplace(std::move(h), dict_->items.size());
  dict_->items.emplace_back(key, std::move(v));
}

const Value* Value::find(const std::string& key) const {
  if (!dict_) return nullptr;
  auto it = dict_->index.find("s" + key);
  return it == dict_->index.end() ? nullptr : &dict_->items[it->second].second;
}

const Value* Value::find(const Value& key) const {
  if (!dict_) return nullptr;
  auto it = dict_->index.find(hash_key(key));
  return it == dict_->index.end() ? nullptr : &dict_->items[it->second].second;
}

namespace {

// A tuple's key is its items' keys, length-prefixed; bounded in depth and bytes (a template can
// build tuples that share parts, whose keys would grow exponentially).
std::string hash_key_at(const Value& k, int depth, size_t budget) {
  switch (k.type()) {
    case Value::Type::kString:
      return "s" + k.as_string();
    case Value::Type::kBool:
      return k.as_bool() ? "i1" : "i0";
    case Value::Type::kInt:
      return "i" + std::to_string(k.as_int());
    case Value::Type::kFloat: {
      const double f = k.as_float();
      if (f == std::floor(f) && std::fabs(f) < 9.2e18) return "i" + std::to_string(int64_t(f));
      char b[40];
      std::snprintf(b, sizeof b, "f%.17g", f);
      return b;
    }
    case Value::Type::kNone:
      return "n";
    case Value::Type::kList: {
      if (!k.is_tuple() || depth > kMaxNesting) return "";
      std::string h = "t(";
      for (const Value& x : k.items()) {
        const std::string e = hash_key_at(x, depth + 1, budget);
        if (e.empty() || h.size() + e.size() > budget) return "";
        h += std::to_string(e.size()) + ":" + e;
      }
      return h + ")";
    }
    default:
      return "";
  }
}

}  // namespace

std::string hash_key(const Value& k) { return hash_key_at(k, 0, size_t(1) << 20); }

namespace {

using Type = Value::Type;

const char* type_name(const Value& v) {
  switch (v.type()) {
    case Type::kUndefined:
      return "Undefined";
    case Type::kNone:
      return "NoneType";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kFloat:
      return "float";
    case Type::kString:
      return "str";
    case Type::kList:
      return v.is_tuple() ? "tuple" : v.list_kind() == Value::ListKind::kIterator ? "generator" : "list";
    case Type::kDict:
      return v.is_namespace() ? "Namespace" : "dict";
    case Type::kFunction:
      return "function";
  }
  return "?";
}

// Substring search in time linear in both strings (Knuth–Morris–Pratt): std::string::find is
// O(n·m) on inputs like "aaa…ab", and both strings may come from a hostile template.
class Finder {
 public:
  explicit Finder(std::string_view needle) : n_(needle), fail_(needle.size() + 1, 0) {
    if (needle.size() > UINT32_MAX) fail(0, "a search string is too long");
    for (size_t i = 1, k = 0; i < n_.size(); ++i) {
      while (k > 0 && n_[i] != n_[k]) k = fail_[k];
      if (n_[i] == n_[k]) ++k;
      fail_[i + 1] = uint32_t(k);
    }
  }
  // The first match starting at or after `from`, or npos.
  size_t find(std::string_view hay, size_t from = 0) const {
    if (n_.empty()) return from <= hay.size() ? from : std::string::npos;
    if (from > hay.size() || hay.size() - from < n_.size()) return std::string::npos;
    for (size_t i = from, k = 0; i < hay.size(); ++i) {
      while (k > 0 && hay[i] != n_[k]) k = fail_[k];
      if (hay[i] == n_[k]) ++k;
      if (k == n_.size()) return i + 1 - k;
    }
    return std::string::npos;
  }

 private:
  std::string_view n_;
  std::vector<uint32_t> fail_;
};

std::string reversed(std::string_view s) { return std::string(s.rbegin(), s.rend()); }

// The first match of needle in hay; no search table for a needle that cannot fit.
size_t find_in(std::string_view hay, std::string_view needle) {
  return needle.size() > hay.size() ? std::string::npos : Finder(needle).find(hay);
}

// Python's str.isspace.
bool py_space(uint32_t c) { return text::is_space(c) || (c >= 0x1c && c <= 0x1f); }

std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const uint32_t c = text::next_cp(s, i, &len);
    out.push_back(c == text::kInvalid ? 0xFFFD : c);
    i += len;
  }
  return out;
}

std::string from_code_points(const uint32_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) text::append_utf8(p[i], &out);
  return out;
}

size_t cp_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    text::next_cp(s, i, &len);
    i += len, ++n;
  }
  return n;
}

// Python's repr(float), which json.dumps also writes: the shortest digits that round-trip,
// fixed notation for decimal exponents in [-4, 16), else d.ddde±XX.
std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  char buf[40];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  // buf is [-]d[.ddd]e±XX
  std::string s(buf);
  const bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  const size_t epos = s.find('e');
  const int exp = std::atoi(s.c_str() + epos + 1);
  std::string digits;
  for (size_t i = 0; i < epos; ++i)
    if (s[i] != '.') digits += s[i];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(size_t(-exp - 1), '0') + digits;
    } else if (size_t(exp) + 1 >= digits.size()) {
      out = digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += e;
  }
  return neg ? "-" + out : out;
}

// Code points Python's repr escapes (not printable): controls, separators other than the
// space, and the common format characters and private use areas.
bool py_unprintable(uint32_t c) {
  if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) return true;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f))
    return true;
  if (c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) || (c >= 0x600 && c <= 0x605) || c == 0x61c ||
      c == 0x6dd || c == 0x70f || c == 0x180e)
    return true;
  if ((c >= 0xe000 && c <= 0xf8ff) || c >= 0xf0000 || (c >= 0xe0000 && c <= 0xe007f)) return true;
  return false;
}

std::string str_repr(const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (uint32_t c : code_points(s)) {
    char b[16];
    if (c == uint32_t(q) || c == '\\') out += '\\', out += char(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (py_unprintable(c)) {
      if (c < 0x100) std::snprintf(b, sizeof b, "\\x%02x", c);
      else if (c < 0x10000) std::snprintf(b, sizeof b, "\\u%04x", c);
      else std::snprintf(b, sizeof b, "\\U%08x", c);
      out += b;
    } else {
      text::append_utf8(c, &out);
    }
  }
  return out + q;
}

std::string repr(const Value& v, int depth = 0);

// Jinja's str(): what {{ v }} prints.
std::string to_str(const Value& v) {
  switch (v.type()) {
    case Type::kUndefined:
      return "";
    case Type::kString:
      return v.as_string();
    default:
      return repr(v);
  }
}

constexpr size_t kMaxReprBytes = size_t(64) << 20;

std::string repr(const Value& v, int depth) {
  if (depth > kMaxNesting) fail(0, "a value is nested too deeply to print");
  switch (v.type()) {
    case Type::kUndefined:
      return "";
    case Type::kNone:
      return "None";
    case Type::kBool:
      return v.as_bool() ? "True" : "False";
    case Type::kInt:
      return std::to_string(v.as_int());
    case Type::kFloat:
      return float_repr(v.as_float());
    case Type::kString:
      return str_repr(v.as_string());
    case Type::kList: {
      using K = Value::ListKind;
      if (v.list_kind() == K::kRange) return v.as_string();
      if (v.list_kind() == K::kIterator) fail(0, "cannot print a generator (add |list)");
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < v.items().size(); ++i) {
        out += (i ? ", " : "") + repr(v.items()[i], depth + 1);
        if (out.size() > kMaxReprBytes) fail(0, "a value is too large to print");
      }
      if (v.is_tuple() && v.items().size() == 1) out += ",";
      out += v.is_tuple() ? ")" : "]";
      switch (v.list_kind()) {
        case K::kKeys:
          return "dict_keys(" + out + ")";
        case K::kValues:
          return "dict_values(" + out + ")";
        case K::kItems:
          return "dict_items(" + out + ")";
        default:
          return out;
      }
    }
    case Type::kDict: {
      std::string out = v.is_namespace() ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, x] : v.entries().items) {
        out += (first ? "" : ", ") + repr(k, depth + 1) + ": " + repr(x, depth + 1);
        if (out.size() > kMaxReprBytes) fail(0, "a value is too large to print");
        first = false;
      }
      return out + (v.is_namespace() ? "}>" : "}");
    }
    case Type::kFunction:
      fail(0, "cannot print the function " + v.function().name);
  }
  return "";
}

struct JsonStyle {
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool indent = false;
  std::string indent_str;
  std::string item_sep = ", ", key_sep = ": ";
};

void json_string(const std::string& s, bool ensure_ascii, std::string* out) {
  *out += '"';
  for (uint32_t c : code_points(s)) {
    char b[16];
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7e)) {
          if (c >= 0x10000) {
            const uint32_t v = c - 0x10000;
            std::snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
          } else {
            std::snprintf(b, sizeof b, "\\u%04x", c);
          }
          *out += b;
        } else {
          text::append_utf8(c, out);
        }
    }
  }
  *out += '"';
}

void json_write(const Value& v, const JsonStyle& st, int level, std::string* out) {
  if (level > kMaxNesting) fail(0, "a value is nested too deeply for tojson");
  if (out->size() > kMaxReprBytes) fail(0, "a value is too large for tojson");
  auto newline = [&](int l) {
    if (!st.indent) return;
    *out += '\n';
    for (int i = 0; i < l; ++i) *out += st.indent_str;
  };
  switch (v.type()) {
    case Type::kNone:
      *out += "null";
      return;
    case Type::kBool:
      *out += v.as_bool() ? "true" : "false";
      return;
    case Type::kInt:
      *out += std::to_string(v.as_int());
      return;
    case Type::kFloat: {
      const double f = v.as_float();
      *out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f < 0 ? "-Infinity" : "Infinity") : float_repr(f);
      return;
    }
    case Type::kString:
      json_string(v.as_string(), st.ensure_ascii, out);
      return;
    case Type::kList: {
      if (v.list_kind() == Value::ListKind::kIterator) fail(0, "Object of type generator is not JSON serializable");
      if (v.items().empty()) {
        *out += "[]";
        return;
      }
      *out += '[';
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i) *out += st.item_sep;
        newline(level + 1);
        json_write(v.items()[i], st, level + 1, out);
      }
      newline(level);
      *out += ']';
      return;
    }
    case Type::kDict: {
      if (v.is_namespace()) fail(0, "Object of type Namespace is not JSON serializable");
      // json.dumps writes str keys as they are, numbers, bools and None as JSON spells them.
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& [k, x] : v.entries().items) {
        std::string key;
        if (k.is_string()) key = k.as_string();
        else if (k.type() == Type::kInt) key = std::to_string(k.as_int());
        else if (k.type() == Type::kFloat) key = float_repr(k.as_float());
        else if (k.type() == Type::kBool) key = k.as_bool() ? "true" : "false";
        else if (k.is_none()) key = "null";
        else fail(0, std::string("keys must be str, int, float, bool or None, not ") + type_name(k));
        items.emplace_back(std::move(key), &x);
      }
      if (st.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      if (items.empty()) {
        *out += "{}";
        return;
      }
      *out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) *out += st.item_sep;
        newline(level + 1);
        json_string(items[i].first, st.ensure_ascii, out);
        *out += st.key_sep;
        json_write(*items[i].second, st, level + 1, out);
      }
      newline(level);
      *out += '}';
      return;
    }
    case Type::kUndefined:
      fail(0, "Object of type Undefined is not JSON serializable");
    case Type::kFunction:
      fail(0, "Object of type function is not JSON serializable");
  }
}

// --- JSON text → Value
class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}
  Value document() {
    Value v = value(0);
    ws();
    if (i_ != s_.size()) bad("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void bad(const std::string& m) { fail(0, "JSON at byte " + std::to_string(i_) + ": " + m); }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool lit(const char* w) {
    const size_t n = std::strlen(w);
    if (s_.substr(i_, n) != w) return false;
    i_ += n;
    return true;
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) bad("short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else bad("bad \\u escape");
    }
    return v;
  }
  std::string str() {
    ++i_;  // "
    std::string out;
    while (true) {
      if (i_ >= s_.size()) bad("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') break;
      if (c < 0x20) bad("control character in a string");
      if (c != '\\') {
        size_t len;
        if (text::next_cp(s_, i_, &len) == text::kInvalid) bad("invalid UTF-8");
        out.append(s_.substr(i_, len));
        i_ += len;
        continue;
      }
      if (++i_ >= s_.size()) bad("unterminated string");
      const char e = s_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {
            if (!lit("\\u")) bad("unpaired surrogate");
            const uint32_t lo = hex4();
            if (lo < 0xdc00 || lo >= 0xe000) bad("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            bad("unpaired surrogate");
          }
          text::append_utf8(cp, &out);
          break;
        }
        default:
          bad("bad escape");
      }
    }
    ++i_;
    return out;
  }
  Value value(int depth) {
    if (depth > kMaxNesting) bad("nested too deeply");
    ws();
    if (i_ >= s_.size()) bad("unexpected end");
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      Value d = Value::dict();
      ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, d;
      while (true) {
        ws();
        if (i_ >= s_.size() || s_[i_] != '"') bad("expected a key");
        std::string k = str();
        ws();
        if (i_ >= s_.size() || s_[i_] != ':') bad("expected ':'");
        ++i_;
        d.set(k, value(depth + 1));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, d;
        bad("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i_;
      List items;
      ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, Value::list({});
      while (true) {
        items.push_back(value(depth + 1));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, Value::list(std::move(items));
        bad("expected ',' or ']'");
      }
    }
    if (c == '"') return Value::string(str());
    if (lit("true")) return Value::boolean(true);
    if (lit("false")) return Value::boolean(false);
    if (lit("null")) return Value::none();
    // Python's json reads these too (and writes them for inf and nan)
    if (lit("NaN")) return Value::number(std::nan(""));
    if (lit("Infinity")) return Value::number(HUGE_VAL);
    if (lit("-Infinity")) return Value::number(-HUGE_VAL);
    const size_t start = i_;
    if (s_[i_] == '-') ++i_;
    bool is_float = false;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == 'e' ||
                              s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) {
      if (!std::isdigit(static_cast<unsigned char>(s_[i_]))) is_float = true;
      ++i_;
    }
    const std::string num(s_.substr(start, i_ - start));
    if (num.empty() || num == "-") bad("unexpected character");
    char* end = nullptr;
    errno = 0;
    if (!is_float) {
      const long long v = std::strtoll(num.c_str(), &end, 10);
      if (errno == ERANGE) bad("integer out of range");
      if (end != num.c_str() + num.size()) bad("bad number");
      return Value::integer(v);
    }
    const double f = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size()) bad("bad number");
    return Value::number(f);
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// The lexer: template text and tags, with Jinja's whitespace control as transformers sets
// it up (trim_blocks, lstrip_blocks; `-` strips, `+` keeps).

namespace {

enum class Tok : uint8_t { kText, kVarBegin, kBlockBegin, kEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok t;
  std::string s;  // text, name, string value or operator
  int64_t i = 0;
  double f = 0;
  int line = 0;
};

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python's str.rstrip() (whitespace), and the length of s's leading run of whitespace.
size_t rstrip_len(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t len;
    const uint32_t c = text::next_cp(s, start, &len);
    if (start + len != end || !py_space(c)) break;
    end = start;
  }
  return end;
}
size_t lstrip_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len;
    if (!py_space(text::next_cp(s, i, &len))) break;
    i += len;
  }
  return i;
}

const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                            ">",  "=",  ".",  ",",  ":",  "|",  "(", ")", "[", "]", "{", "}"};

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Jinja turns \r\n and \r into \n and drops one trailing newline.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    std::vector<Token> out;
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t k = pos;
      while ((k = src_.find('{', k)) != std::string::npos && k + 1 < src_.size() && src_[k + 1] != '{' &&
             src_[k + 1] != '%' && src_[k + 1] != '#')
        ++k;
      if (k == std::string::npos || k + 1 >= src_.size()) {
        emit_text(&out, src_.substr(pos));
        break;
      }
      const char kind = src_[k + 1];
      const char sign = k + 2 < src_.size() && (src_[k + 2] == '-' || src_[k + 2] == '+') ? src_[k + 2] : 0;
      std::string_view text(src_.data() + pos, k - pos);
      if (sign == '-') {
        text = text.substr(0, rstrip_len(text));
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            lstrip_len(text.substr(l_pos)) == text.size() - l_pos)
          text = text.substr(0, l_pos);
      }
      emit_text(&out, text);
      line_ += count_newlines(src_.data() + pos, k - pos);
      pos = k + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        const size_t e = src_.find("#}", pos);
        if (e == std::string::npos) fail(line_, "missing end of comment tag");
        line_ += count_newlines(src_.data() + pos, e - pos);
        const char esign = e > pos && (src_[e - 1] == '-' || src_[e - 1] == '+') ? src_[e - 1] : 0;
        pos = after_end(e + 2, esign, true);
        line_starting = src_[pos - 1] == '\n';
        continue;
      }
      out.push_back(Token{kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, "", 0, 0, line_});
      pos = code(&out, pos, kind == '%');
      line_starting = src_[pos - 1] == '\n';
    }
    out.push_back(Token{Tok::kEof, "", 0, 0, line_});
    return out;
  }

 private:
  static int count_newlines(const char* p, size_t n) { return int(std::count(p, p + n, '\n')); }

  void emit_text(std::vector<Token>* out, std::string_view t) {
    if (!t.empty()) out->push_back(Token{Tok::kText, std::string(t), 0, 0, line_});
  }

  // After an end tag: `-` eats all following whitespace, `+` nothing, a block or comment
  // (trim_blocks) one newline.
  size_t after_end(size_t pos, char sign, bool block) {
    if (sign == '-') {
      const size_t n = lstrip_len(std::string_view(src_).substr(pos));
      line_ += count_newlines(src_.data() + pos, n);
      return pos + n;
    }
    if (sign != '+' && block && pos < src_.size() && src_[pos] == '\n') return ++line_, pos + 1;
    return pos;
  }

  // The tokens of one {{ }} or {% %} tag, up to its end (outside brackets); returns the
  // position after the end and the whitespace it consumes.
  size_t code(std::vector<Token>* out, size_t pos, bool block) {
    std::vector<char> balance;
    while (true) {
      while (pos < src_.size() && ascii_space(src_[pos])) line_ += src_[pos++] == '\n';
      if (pos >= src_.size())
        fail(line_, std::string("unexpected end of template, expected '") + (block ? "%}" : "}}") + "'");
      const std::string_view rest = std::string_view(src_).substr(pos);
      if (balance.empty()) {
        const char* end = block ? "%}" : "}}";
        for (char sign : {'-', '+', '\0'}) {
          if (sign == '+' && !block) continue;
          const std::string tag = sign ? std::string(1, sign) + end : std::string(end);
          if (rest.substr(0, tag.size()) == tag) {
            out->push_back(Token{Tok::kEnd, "", 0, 0, line_});
            return after_end(pos + tag.size(), sign, block);
          }
        }
      }
      const char c = src_[pos];
      Token t{Tok::kOp, "", 0, 0, line_};
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        t.t = Tok::kName;
        t.s = src_.substr(pos, e - pos);
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = number(pos, &t);
      } else if (c == '\'' || c == '"') {
        pos = string_literal(pos, &t);
      } else {
        bool found = false;
        for (const char* op : kOps)
          if (rest.substr(0, std::strlen(op)) == op) {
            t.s = op;
            pos += std::strlen(op);
            found = true;
            break;
          }
        if (!found) fail(line_, std::string("unexpected character '") + c + "'");
        if (t.s == "(" || t.s == "[" || t.s == "{") {
          if (balance.size() > size_t(kMaxNesting)) fail(line_, "brackets nested too deeply");
          balance.push_back(t.s == "(" ? ')' : t.s == "[" ? ']' : '}');
        } else if (t.s == ")" || t.s == "]" || t.s == "}") {
          if (balance.empty()) fail(line_, "unexpected '" + t.s + "'");
          if (balance.back() != t.s[0])
            fail(line_, "unexpected '" + t.s + "', expected '" + std::string(1, balance.back()) + "'");
          balance.pop_back();
        }
      }
      out->push_back(std::move(t));
    }
  }

  size_t number(size_t pos, Token* t) {
    size_t e = pos;
    auto digits = [&] {
      while (e < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[e])) ||
              (src_[e] == '_' && e + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e + 1])))))
        ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      ++e, digits();
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && std::isdigit(static_cast<unsigned char>(src_[x]))) {
        e = x;
        digits();
        is_float = true;
      }
    }
    std::string n;
    for (size_t i = pos; i < e; ++i)
      if (src_[i] != '_') n += src_[i];
    errno = 0;
    if (is_float) {
      t->t = Tok::kFloat;
      t->f = std::strtod(n.c_str(), nullptr);
    } else {
      t->t = Tok::kInt;
      t->i = std::strtoll(n.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(line_, "integer literal out of range");
    }
    return e;
  }

  // A string literal with Python's escapes (Jinja decodes them with unicode-escape).
  size_t string_literal(size_t pos, Token* t) {
    const char q = src_[pos++];
    t->t = Tok::kString;
    while (true) {
      if (pos >= src_.size()) fail(t->line, "unterminated string literal");
      const char c = src_[pos];
      if (c == q) return pos + 1;
      if (c == '\n') ++line_;
      if (c != '\\') {
        t->s += c;
        ++pos;
        continue;
      }
      if (pos + 1 >= src_.size()) fail(t->line, "unterminated string literal");
      const char e = src_[pos + 1];
      pos += 2;
      auto hex = [&](int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k, ++pos) {
          if (pos >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[pos])))
            fail(t->line, "truncated \\x, \\u or \\U escape in a string literal");
          const char h = src_[pos];
          v = v * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v < 0xE000))
          fail(t->line, "a string literal escapes an invalid code point");
        text::append_utf8(v, &t->s);
      };
      static const char kFrom[] = "\\'\"abfnrtv", kTo[] = "\\'\"\a\b\f\n\r\t\v";  // Python's one-char escapes
      if (const char* at = e ? std::strchr(kFrom, e) : nullptr) {
        t->s += kTo[at - kFrom];
        continue;
      }
      switch (e) {
        case '\n':
          ++line_;  // a line continuation
          break;
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = uint32_t(e - '0');
            for (int k = 0; k < 2 && pos < src_.size() && src_[pos] >= '0' && src_[pos] <= '7'; ++k)
              v = v * 8 + uint32_t(src_[pos++] - '0');
            text::append_utf8(v, &t->s);
          } else if (e == 'N') {
            fail(t->line, "\\N{...} escapes in string literals are not supported");
          } else {  // unknown escapes stay as written
            t->s += '\\';
            --pos;
          }
      }
    }
  }

  std::string src_;
  int line_ = 1;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// The syntax tree and the parser (Jinja2's grammar and precedence: conditional, or, and,
// not, comparisons, + -, ~, * / // %, **, unary -, postfix, filters and tests).

struct Expr {
  enum Kind : uint8_t {
    kLiteral,
    kName,
    kList,
    kTuple,
    kDict,
    kAttr,
    kItem,
    kSlice,
    kCall,
    kFilter,
    kTest,
    kNot,
    kNeg,
    kPos,
    kBinary,
    kCompare,
    kAnd,
    kOr,
    kCond,
    kConcat
  };
  Kind kind;
  int line = 0;
  std::string name;  // name, attribute, operator, filter or test
  Value literal;
  std::vector<std::unique_ptr<Expr>> a;  // operands; a null slot is an omitted part
  std::vector<std::string> ops;          // kCompare: the operators between a[i] and a[i + 1]
  std::vector<std::string> kw;           // kCall/kFilter/kTest: names of the trailing keyword args
  bool negate = false;                   // kTest: `is not`
  int depth = 1;                         // of the tree below (bounded: eval and ~Expr stay shallow)
};
using ExprP = std::unique_ptr<Expr>;

struct Node {
  enum Kind : uint8_t {
    kBody,
    kText,
    kOutput,
    kIf,
    kFor,
    kSet,
    kSetAttr,
    kSetBlock,
    kMacro,
    kBreak,
    kContinue,
    kFilterBlock
  };
  Kind kind;
  int line = 0;
  std::string text;                         // kText; kSet*/kMacro: the name; kSetAttr: the attribute
  std::vector<ExprP> exprs;                 // kOutput [e]; kIf conditions; kFor [iter, filter|null]; kSet [value];
                                            // kMacro defaults; kFilterBlock the filters (a[0] null: the body)
  std::vector<std::unique_ptr<Node>> kids;  // kBody statements; kIf bodies (+ else); kFor [body, else|null]
  std::vector<std::string> names;           // kFor/kSet targets; kMacro parameters
  bool uses_loop = true;                    // kFor: its bodies name `loop` (else no loop object is built)
};
using NodeP = std::unique_ptr<Node>;

namespace {

bool known_filter(const std::string& f);
bool known_test(const std::string& t);
bool jinja_only_filter(const std::string& f);

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  NodeP document() {
    std::string ended;
    NodeP body = statements({}, &ended);
    if (cur().t != Tok::kEof) fail(cur().line, "unexpected '" + ended + "'");
    return body;
  }

 private:
  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  Token next() { return t_[p_ < t_.size() - 1 ? p_++ : p_]; }
  bool is_op(const char* op) const { return cur().t == Tok::kOp && cur().s == op; }
  bool is_name(const char* n) const { return cur().t == Tok::kName && cur().s == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++p_;
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  std::string describe(const Token& t) const {
    switch (t.t) {
      case Tok::kEnd:
        return "end of tag";
      case Tok::kEof:
        return "end of template";
      case Tok::kText:
        return "template text";
      case Tok::kVarBegin:
        return "'{{'";
      case Tok::kBlockBegin:
        return "'{%'";
      case Tok::kString:
        return "a string";
      case Tok::kInt:
      case Tok::kFloat:
        return "a number";
      default:
        return "'" + t.s + "'";
    }
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail(cur().line, std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().t != Tok::kName) fail(cur().line, "expected a name, got " + describe(cur()));
    return next().s;
  }
  void expect_end() {
    if (cur().t != Tok::kEnd) fail(cur().line, "expected the end of the tag, got " + describe(cur()));
    ++p_;
  }
  struct Depth {
    explicit Depth(Parser* p) : p(p) {
      if (++p->depth_ > kMaxNesting) fail(p->cur().line, "the template is nested too deeply");
    }
    ~Depth() { --p->depth_; }
    Parser* p;
  };

  // Statements until one of `ends` ({% name %}); *ended gets the name (the tag's `{%` and
  // name are consumed, the rest of that tag is not).
  NodeP statements(const std::vector<std::string>& ends, std::string* ended) {
    Depth d(this);
    auto body = std::make_unique<Node>();
    body->kind = Node::kBody;
    while (true) {
      const Token& t = cur();
      if (t.t == Tok::kEof) {
        if (!ends.empty()) fail(t.line, "unexpected end of template, expected '" + ends.back() + "'");
        *ended = "";
        return body;
      }
      if (t.t == Tok::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::kText;
        n->line = t.line;
        n->text = t.s;
        body->kids.push_back(std::move(n));
        ++p_;
        continue;
      }
      if (t.t == Tok::kVarBegin) {
        ++p_;
        auto n = std::make_unique<Node>();
        n->kind = Node::kOutput;
        n->line = t.line;
        n->exprs.push_back(tuple_or_expr());
        expect_end();
        body->kids.push_back(std::move(n));
        continue;
      }
      if (t.t != Tok::kBlockBegin) fail(t.line, "unexpected " + describe(t));
      ++p_;
      if (cur().t != Tok::kName) fail(cur().line, "expected a statement name, got " + describe(cur()));
      const std::string name = cur().s;
      if (std::find(ends.begin(), ends.end(), name) != ends.end()) {
        ++p_;
        *ended = name;
        return body;
      }
      body->kids.push_back(statement());
    }
  }

  NodeP statement() {
    const Token nt = next();
    const std::string& name = nt.s;
    auto n = std::make_unique<Node>();
    n->line = nt.line;
    std::string ended;
    if (name == "if") {
      n->kind = Node::kIf;
      n->exprs.push_back(expression());
      expect_end();
      while (true) {
        n->kids.push_back(statements({"elif", "else", "endif"}, &ended));
        if (ended == "elif") {
          n->exprs.push_back(expression());
          expect_end();
          continue;
        }
        if (ended == "else") {
          expect_end();
          n->kids.push_back(statements({"endif"}, &ended));
        }
        expect_end();
        return n;
      }
    }
    if (name == "for") {
      n->kind = Node::kFor;
      n->names = targets();
      if (!accept_name("in")) fail(cur().line, "expected 'in' in a for loop");
      n->exprs.push_back(tuple_or_expr(/*no_cond=*/true));
      if (accept_name("if")) n->exprs.push_back(expression());
      else n->exprs.push_back(nullptr);
      if (is_name("recursive")) fail(cur().line, "recursive for loops are not supported");
      expect_end();
      const size_t body_from = p_;
      ++loop_depth_;
      n->kids.push_back(statements({"else", "endfor"}, &ended));
      --loop_depth_;
      if (ended == "else") {
        expect_end();
        n->kids.push_back(statements({"endfor"}, &ended));
      } else {
        n->kids.push_back(nullptr);
      }
      n->uses_loop = false;  // (only the name `loop` reaches the loop object: macros see globals only)
      for (size_t k = body_from; k < p_ && k < t_.size(); ++k)
        n->uses_loop = n->uses_loop || (t_[k].t == Tok::kName && t_[k].s == "loop");
      expect_end();
      return n;
    }
    if (name == "set") {
      const std::string first = expect_name();
      if (accept_op(".")) {
        n->kind = Node::kSetAttr;
        n->names = {first};
        n->text = expect_name();
        expect_op("=");
        n->exprs.push_back(tuple_or_expr());
        expect_end();
        return n;
      }
      n->names = {first};
      while (accept_op(",")) n->names.push_back(expect_name());
      if (cur().t == Tok::kEnd && n->names.size() == 1) {  // {% set x %}...{% endset %}
        expect_end();
        n->kind = Node::kSetBlock;
        n->kids.push_back(statements({"endset"}, &ended));
        expect_end();
        return n;
      }
      n->kind = Node::kSet;
      expect_op("=");
      n->exprs.push_back(tuple_or_expr());
      expect_end();
      return n;
    }
    if (name == "macro") {
      n->kind = Node::kMacro;
      n->text = expect_name();
      expect_op("(");
      while (!accept_op(")")) {
        if (!n->names.empty()) expect_op(",");
        if (accept_op(")")) break;
        n->names.push_back(expect_name());
        n->exprs.push_back(accept_op("=") ? expression() : nullptr);
      }
      expect_end();
      const int outer_loops = loop_depth_;
      loop_depth_ = 0;
      n->kids.push_back(statements({"endmacro"}, &ended));
      loop_depth_ = outer_loops;
      expect_end();
      return n;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(nt.line, "'" + name + "' outside a loop");
      n->kind = name == "break" ? Node::kBreak : Node::kContinue;
      expect_end();
      return n;
    }
    if (name == "filter") {  // {% filter f(args)|g %}body{% endfilter %}
      n->kind = Node::kFilterBlock;
      do {
        ExprP f = make(Expr::kFilter, cur().line);
        f->name = expect_name();
        if (!known_filter(f->name)) note_unknown(unknown_filter(f->name));
        f->a.push_back(nullptr);
        if (accept_op("(")) call_args(f.get());
        n->exprs.push_back(std::move(f));
      } while (accept_op("|"));
      expect_end();
      n->kids.push_back(statements({"endfilter"}, &ended));
      expect_end();
      return n;
    }
    if (name == "generation") {  // transformers' AssistantTracker: renders its body
      expect_end();
      n = statements({"endgeneration"}, &ended);
      expect_end();
      return n;
    }
    fail(nt.line, "the statement '" + name + "' is not supported in chat templates");
  }

  std::vector<std::string> targets() {
    std::vector<std::string> names;
    const bool paren = accept_op("(");
    names.push_back(expect_name());
    while (accept_op(",")) {
      if (paren && is_op(")")) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

  ExprP make(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  // A node whose operands are all attached: its depth, bounded like the parser's recursion
  // (chains such as a+b+c… or x|f|g… build deep trees without recursing).
  ExprP finish(ExprP e) {
    for (const auto& c : e->a)
      if (c) e->depth = std::max(e->depth, c->depth + 1);
    if (e->depth > kMaxNesting) fail(e->line, "an expression is nested too deeply");
    return e;
  }

  // `a, b` without brackets is a tuple where Jinja allows it ({{ }}, set, for ... in).
  ExprP tuple_or_expr(bool no_cond = false) {
    const int line = cur().line;
    ExprP first = no_cond ? or_expr() : expression();
    if (!is_op(",")) return first;
    ExprP t = make(Expr::kTuple, line);
    t->a.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().t == Tok::kEnd || is_name("if")) break;
      t->a.push_back(no_cond ? or_expr() : expression());
    }
    return finish(std::move(t));
  }

  ExprP expression() {
    Depth d(this);
    ExprP e = or_expr();
    while (is_name("if")) {
      const int line = next().line;
      ExprP c = make(Expr::kCond, line);
      c->a.push_back(std::move(e));
      c->a.push_back(or_expr());
      c->a.push_back(accept_name("else") ? expression() : nullptr);
      e = finish(std::move(c));
    }
    return e;
  }
  ExprP or_expr() {
    ExprP e = and_expr();
    while (is_name("or")) {
      ExprP o = make(Expr::kOr, next().line);
      o->a.push_back(std::move(e));
      o->a.push_back(and_expr());
      e = finish(std::move(o));
    }
    return e;
  }
  ExprP and_expr() {
    ExprP e = not_expr();
    while (is_name("and")) {
      ExprP o = make(Expr::kAnd, next().line);
      o->a.push_back(std::move(e));
      o->a.push_back(not_expr());
      e = finish(std::move(o));
    }
    return e;
  }
  ExprP not_expr() {
    Depth d(this);
    if (is_name("not")) {
      ExprP n = make(Expr::kNot, next().line);
      n->a.push_back(not_expr());
      return finish(std::move(n));
    }
    return compare();
  }
  ExprP compare() {
    const int line = cur().line;
    ExprP e = math1();
    ExprP c;
    while (true) {
      std::string op;
      if (cur().t == Tok::kOp && (cur().s == "==" || cur().s == "!=" || cur().s == "<" || cur().s == ">" ||
                                  cur().s == "<=" || cur().s == ">="))
        op = next().s;
      else if (accept_name("in")) op = "in";
      else if (is_name("not") && peek().t == Tok::kName && peek().s == "in") p_ += 2, op = "not in";
      else break;
      if (!c) {
        c = make(Expr::kCompare, line);
        c->a.push_back(std::move(e));
      }
      c->ops.push_back(op);
      c->a.push_back(math1());
    }
    return c ? finish(std::move(c)) : std::move(e);
  }
  ExprP binary(ExprP l, const std::string& op, ExprP r, int line) {
    ExprP b = make(Expr::kBinary, line);
    b->name = op;
    b->a.push_back(std::move(l));
    b->a.push_back(std::move(r));
    return finish(std::move(b));
  }
  ExprP math1() {
    ExprP e = concat();
    while (is_op("+") || is_op("-")) {
      const Token op = next();
      e = binary(std::move(e), op.s, concat(), op.line);
    }
    return e;
  }
  ExprP concat() {
    ExprP e = math2();
    if (!is_op("~")) return e;
    ExprP c = make(Expr::kConcat, cur().line);
    c->a.push_back(std::move(e));
    while (accept_op("~")) c->a.push_back(math2());
    return finish(std::move(c));
  }
  ExprP math2() {
    ExprP e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token op = next();
      e = binary(std::move(e), op.s, power(), op.line);
    }
    return e;
  }
  ExprP power() {
    ExprP e = unary(true);
    while (is_op("**")) {
      const Token op = next();
      e = binary(std::move(e), op.s, unary(true), op.line);
    }
    return e;
  }
  ExprP unary(bool with_filter) {
    Depth d(this);
    ExprP e;
    if (is_op("-") || is_op("+")) {
      const Token op = next();
      e = make(op.s == "-" ? Expr::kNeg : Expr::kPos, op.line);
      e->a.push_back(unary(false));
      e = finish(std::move(e));
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filters(std::move(e));
    return e;
  }
  ExprP primary() {
    const Token& t = cur();
    ExprP e;
    switch (t.t) {
      case Tok::kName: {
        const std::string n = next().s;
        if (n == "true" || n == "True") (e = make(Expr::kLiteral, t.line))->literal = Value::boolean(true);
        else if (n == "false" || n == "False") (e = make(Expr::kLiteral, t.line))->literal = Value::boolean(false);
        else if (n == "none" || n == "None") (e = make(Expr::kLiteral, t.line))->literal = Value::none();
        else (e = make(Expr::kName, t.line))->name = n;
        return e;
      }
      case Tok::kString: {
        std::string s;
        const int line = t.line;
        while (cur().t == Tok::kString) s += next().s;  // adjacent literals concatenate
        (e = make(Expr::kLiteral, line))->literal = Value::string(std::move(s));
        return e;
      }
      case Tok::kInt:
        (e = make(Expr::kLiteral, t.line))->literal = Value::integer(next().i);
        return e;
      case Tok::kFloat:
        (e = make(Expr::kLiteral, t.line))->literal = Value::number(next().f);
        return e;
      case Tok::kOp:
        if (accept_op("(")) {
          if (accept_op(")")) return make(Expr::kTuple, t.line);
          ExprP first = expression();
          if (accept_op(")")) return first;
          ExprP tup = make(Expr::kTuple, t.line);
          tup->a.push_back(std::move(first));
          while (accept_op(",")) {
            if (is_op(")")) break;
            tup->a.push_back(expression());
          }
          expect_op(")");
          return finish(std::move(tup));
        }
        if (accept_op("[")) {
          e = make(Expr::kList, t.line);
          while (!accept_op("]")) {
            if (!e->a.empty()) expect_op(",");
            if (accept_op("]")) break;
            e->a.push_back(expression());
          }
          return finish(std::move(e));
        }
        if (accept_op("{")) {
          e = make(Expr::kDict, t.line);
          while (!accept_op("}")) {
            if (!e->a.empty()) expect_op(",");
            if (accept_op("}")) break;
            e->a.push_back(expression());
            expect_op(":");
            e->a.push_back(expression());
          }
          return finish(std::move(e));
        }
        break;
      default:
        break;
    }
    fail(t.line, "unexpected " + describe(t));
  }
  // Arguments of a call, filter or test after its '(' has been consumed.
  void call_args(Expr* e) {
    while (!accept_op(")")) {
      if (e->a.size() > 1 || !e->kw.empty()) expect_op(",");
      if (accept_op(")")) break;
      if (is_op("*") || is_op("**")) fail(cur().line, "*args and **kwargs in calls are not supported");
      if (cur().t == Tok::kName && peek().t == Tok::kOp && peek().s == "=") {
        e->kw.push_back(next().s);
        ++p_;
        e->a.push_back(expression());
      } else {
        if (!e->kw.empty()) fail(cur().line, "a positional argument follows a keyword argument");
        e->a.push_back(expression());
      }
    }
  }
  ExprP postfix(ExprP e) {
    while (true) {
      if (is_op(".")) {
        const int line = next().line;
        ExprP a = make(Expr::kAttr, line);
        if (cur().t == Tok::kInt) {  // x.0 is x[0]
          a->kind = Expr::kItem;
          a->a.push_back(std::move(e));
          ExprP idx = make(Expr::kLiteral, line);
          idx->literal = Value::integer(next().i);
          a->a.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->a.push_back(std::move(e));
        }
        e = finish(std::move(a));
      } else if (is_op("[")) {
        const int line = next().line;
        ExprP parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = expression();
          if (k < 2 && accept_op(":")) {
            slice = true;
            continue;
          }
          break;
        }
        if (!slice && is_op(",")) fail(cur().line, "tuple subscripts are not supported");
        expect_op("]");
        ExprP s = make(slice ? Expr::kSlice : Expr::kItem, line);
        s->a.push_back(std::move(e));
        if (slice)
          for (auto& x : parts) s->a.push_back(std::move(x));
        else if (!parts[0]) fail(line, "an empty subscript");
        else s->a.push_back(std::move(parts[0]));
        e = finish(std::move(s));
      } else if (is_op("(")) {
        const int line = next().line;
        ExprP c = make(Expr::kCall, line);
        c->a.push_back(std::move(e));
        call_args(c.get());
        e = finish(std::move(c));
      } else {
        return e;
      }
    }
  }
  ExprP filters(ExprP e) {
    while (true) {
      if (is_op("|")) {
        const int line = next().line;
        ExprP f = make(Expr::kFilter, line);
        f->name = expect_name();
        while (accept_op(".")) f->name += "." + expect_name();
        if (!known_filter(f->name)) note_unknown(unknown_filter(f->name));  // Jinja 3: fails when reached
        f->a.push_back(std::move(e));
        if (accept_op("(")) call_args(f.get());
        e = finish(std::move(f));
      } else if (is_name("is")) {
        const int line = next().line;
        ExprP t = make(Expr::kTest, line);
        t->negate = accept_name("not");
        t->name = expect_name();
        if (!known_test(t->name)) note_unknown("test '" + t->name + "'");
        t->a.push_back(std::move(e));
        if (accept_op("(")) {
          call_args(t.get());
        } else if ((cur().t == Tok::kName && cur().s != "else" && cur().s != "or" && cur().s != "and" &&
                    cur().s != "if" && cur().s != "in" && cur().s != "not" && cur().s != "is") ||
                   cur().t == Tok::kString || cur().t == Tok::kInt || cur().t == Tok::kFloat || is_op("[") ||
                   is_op("{") || is_op("-")) {
          t->a.push_back(postfix(primary()));
        }
        e = finish(std::move(t));
      } else if (is_op("(")) {
        const int line = next().line;
        ExprP c = make(Expr::kCall, line);
        c->a.push_back(std::move(e));
        call_args(c.get());
        e = finish(std::move(c));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t p_ = 0;

 public:
  std::vector<std::string> unknown_;  // filters and tests outside the subset, in order of use (<= 32)
  std::unordered_set<std::string> unknown_seen_;
  static std::string unknown_filter(const std::string& f) {  // (Template::unknown_names' wording)
    return jinja_only_filter(f) ? "Jinja filter '" + f + "'" : "filter '" + f + "'";
  }
  void note_unknown(const std::string& u) {
    if (unknown_.size() < 32 && unknown_seen_.insert(u).second) unknown_.push_back(u);
  }

 private:
  int depth_ = 0;
  int loop_depth_ = 0;  // for-loop bodies around the current statement (reset in macros)
};

}  // namespace

// ---------------------------------------------------------------------------------------
// The interpreter

enum class Flow : uint8_t { kNormal, kBreak, kContinue };

class Interpreter {
 public:
  Interpreter(const Limits& limits, const std::tm* now) : lim_(limits), now_(now) {}

  std::string run(const Node& root, const Value& context);
  void step(int line) { charge(1, line); }
  // Work proportional to n units (items walked, bytes / 16 searched or copied).
  void charge(uint64_t n, int line) {
    steps_ = n > lim_.max_steps ? lim_.max_steps + 1 : steps_ + n;
    if (steps_ > lim_.max_steps)
      fail(line, "the template ran for more than " + std::to_string(lim_.max_steps) + " steps");
  }
  // A value the template built: bounded in nesting and in size (a walk of it then ends).
  const Value& checked(const Value& v, int line) const {
    if (v.depth() > kMaxValueDepth) fail(line, "a value the template builds is nested too deeply");
    if (v.weight() > kMaxWeight) fail(line, "a value the template builds is too large");
    return v;
  }
  // Guards the C++ stack across eval, exec and macro calls.
  struct Frame_ {
    explicit Frame_(Interpreter* in, int line) : in(in) {
      if (++in->eval_depth_ > kMaxEvalDepth) fail(line, "the template nests evaluation too deeply");
    }
    ~Frame_() { --in->eval_depth_; }
    Interpreter* in;
  };
  void check_size(size_t n, int line) const {
    if (n > lim_.max_output)
      fail(line, "the template's output or a string it builds exceeds " + std::to_string(lim_.max_output) + " bytes");
  }
  const std::tm* now() const { return now_; }
  Value call_macro(const Node& m, Args& args, int line);

  Flow exec(const Node& n, std::string& out);
  Value eval(const Expr& e);
  // The arguments after e.a[0] (positional, then the keyword ones named in e.kw).
  Args call_args(const Expr& e) {
    Args args;
    const size_t npos = e.a.size() - 1 - e.kw.size();
    for (size_t i = 0; i < npos; ++i) args.pos.push_back(eval(*e.a[1 + i]));
    for (size_t i = 0; i < e.kw.size(); ++i) args.kw.emplace_back(e.kw[i], eval(*e.a[1 + npos + i]));
    return args;
  }
  Value filter_call(const Expr& e, const Value& v);

 private:
  using Frame = std::unordered_map<std::string, Value>;
  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }
  void assign(const std::vector<std::string>& names, const Value& v, int line);
  Flow exec_for(const Node& n, std::string& out);

  const Limits& lim_;
  const std::tm* now_;  // not owned; null = the clock
  uint64_t steps_ = 0;
  int eval_depth_ = 0;
  int call_depth_ = 0;
  std::vector<Frame> frames_;
};

namespace {

[[noreturn]] void undefined_error(const Value& v, int line) { fail(line, v.as_string()); }

bool truthy(const Value& v) {
  switch (v.type()) {
    case Type::kUndefined:
    case Type::kNone:
      return false;
    case Type::kBool:
      return v.as_bool();
    case Type::kInt:
      return v.as_int() != 0;
    case Type::kFloat:
      return v.as_float() != 0;
    case Type::kString:
      return !v.as_string().empty();
    case Type::kList:
      return v.list_kind() == Value::ListKind::kIterator || !v.items().empty();
    case Type::kDict:
      return v.is_namespace() || !v.entries().items.empty();
    case Type::kFunction:
      return true;
  }
  return false;
}

// bool takes part in arithmetic and comparisons as the int it is in Python.
bool numeric(const Value& v) { return v.is_number() || v.type() == Type::kBool; }
bool integral(const Value& v) { return v.type() == Type::kInt || v.type() == Type::kBool; }
int64_t int_of(const Value& v) { return v.type() == Type::kBool ? int64_t(v.as_bool()) : v.as_int(); }
double float_of(const Value& v) { return v.type() == Type::kBool ? double(v.as_bool()) : v.as_float(); }

bool equals(const Value& a, const Value& b, int depth = 0) {
  if (depth > kMaxNesting) fail(0, "values nested too deeply to compare");
  if (numeric(a) && numeric(b)) {
    if (integral(a) && integral(b)) return int_of(a) == int_of(b);
    return float_of(a) == float_of(b);
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Type::kUndefined:
    case Type::kNone:
      return true;
    case Type::kString:
      return a.as_string() == b.as_string();
    case Type::kList:
      if (a.list_kind() != b.list_kind() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!equals(a.items()[i], b.items()[i], depth + 1)) return false;
      return true;
    case Type::kDict:
      if (a.is_namespace() || b.is_namespace()) return &a.entries() == &b.entries();
      if (a.entries().items.size() != b.entries().items.size()) return false;
      for (const auto& [k, v] : a.entries().items) {
        const Value* o = b.find(k);
        if (!o || !equals(v, *o, depth + 1)) return false;
      }
      return true;
    case Type::kFunction:
      return &a.function() == &b.function();
    default:
      return false;
  }
}

// Python's a < b (-1), == (0) or > (1) for the types that order; TypeError otherwise.
int order(const Value& a, const Value& b, const char* op, int line, int depth = 0) {
  if (depth > kMaxNesting) fail(line, "values nested too deeply to compare");
  if (numeric(a) && numeric(b)) {
    if (integral(a) && integral(b)) return int_of(a) < int_of(b) ? -1 : int_of(a) > int_of(b);
    const double x = float_of(a), y = float_of(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0;
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const size_t n = std::min(a.items().size(), b.items().size());
    for (size_t i = 0; i < n; ++i)
      if (!equals(a.items()[i], b.items()[i])) return order(a.items()[i], b.items()[i], op, line, depth + 1);
    return a.items().size() < b.items().size() ? -1 : a.items().size() > b.items().size();
  }
  if (a.is_undefined()) undefined_error(a, line);
  if (b.is_undefined()) undefined_error(b, line);
  fail(line, std::string("'") + op + "' not supported between instances of '" + type_name(a) + "' and '" +
                 type_name(b) + "'");
}

bool contains(const Value& container, const Value& item, int line) {
  switch (container.type()) {
    case Type::kString:
      if (!item.is_string())
        fail(line, std::string("'in <string>' requires string as left operand, not ") + type_name(item));
      return find_in(container.as_string(), item.as_string()) != std::string::npos;
    case Type::kList:
      for (const Value& x : container.items())
        if (equals(x, item)) return true;
      return false;
    case Type::kDict:
      if (container.is_namespace()) fail(line, "argument of type 'Namespace' is not iterable");
      if (item.is_undefined()) return false;  // (Jinja's Undefined hashes, and is no key)
      if (hash_key(item).empty()) fail(line, std::string("unhashable type: '") + type_name(item) + "'");
      return container.find(item) != nullptr;
    case Type::kUndefined:
      return false;
    default:
      fail(line, std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

// The items a for loop (or list()) walks: a dict's keys, a string's characters.
List iterate(const Value& v, int line) {
  switch (v.type()) {
    case Type::kUndefined:
      return {};
    case Type::kList:
      return v.items();
    case Type::kString: {
      List out;
      const std::vector<uint32_t> cps = code_points(v.as_string());
      check_pieces(cps.size(), line);
      for (uint32_t c : cps) {
        std::string s;
        text::append_utf8(c, &s);
        out.push_back(Value::string(std::move(s)));
      }
      return out;
    }
    case Type::kDict: {
      if (v.is_namespace()) fail(line, "'Namespace' object is not iterable");
      List out;
      for (const auto& e : v.entries().items) out.push_back(e.first);
      return out;
    }
    default:
      fail(line, std::string("'") + type_name(v) + "' object is not iterable");
  }
}

// Python's index normalisation for obj[i]; false when out of range.
bool norm_index(int64_t* i, size_t n) {
  if (*i < 0) *i += int64_t(n);
  return *i >= 0 && *i < int64_t(n);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Value make_str(std::string s, const Interpreter& in, int line) {
  in.check_size(s.size(), line);
  return Value::string(std::move(s));
}

}  // namespace

// Builtins (defined below): attribute lookup with methods, filters and tests, globals.
namespace {
Value get_attr(const Value& obj, const std::string& name, int line);
Value apply_filter(Interpreter& in, const std::string& name, const Value& v, Args& args, int line);
bool apply_test(Interpreter& in, const std::string& name, const Value& v, Args& args, int line);
void add_globals(std::unordered_map<std::string, Value>* frame);
}  // namespace

std::string Interpreter::run(const Node& root, const Value& context) {
  frames_.emplace_back();
  add_globals(&frames_.back());
  if (context.is_dict())
    for (const auto& [k, v] : context.entries().items)
      if (k.is_string()) frames_.back()[k.as_string()] = v;
  frames_.emplace_back();  // the template's own top-level variables
  std::string out;
  exec(root, out);
  return out;
}

void Interpreter::assign(const std::vector<std::string>& names, const Value& v, int line) {
  if (names.size() == 1) {
    frames_.back()[names[0]] = v;
    return;
  }
  if (!v.is_list() && !v.is_string() && !v.is_dict()) fail(line, std::string("cannot unpack a ") + type_name(v));
  const List items = iterate(v, line);
  if (items.size() != names.size())
    fail(line,
         "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(names.size()) + " names");
  for (size_t i = 0; i < names.size(); ++i) frames_.back()[names[i]] = items[i];
}

Flow Interpreter::exec(const Node& n, std::string& out) {
  step(n.line);
  const Frame_ guard(this, n.line);
  switch (n.kind) {
    case Node::kBody:
      for (const auto& k : n.kids) {
        const Flow f = exec(*k, out);
        if (f != Flow::kNormal) return f;
      }
      return Flow::kNormal;
    case Node::kText:
      out += n.text;
      check_size(out.size(), n.line);
      return Flow::kNormal;
    case Node::kOutput: {
      const Value v = eval(*n.exprs[0]);
      if (!v.is_string()) charge(v.weight(), n.line);  // repr walks it
      out += to_str(v);
      check_size(out.size(), n.line);
      return Flow::kNormal;
    }
    case Node::kIf:
      for (size_t i = 0; i < n.exprs.size(); ++i)
        if (truthy(eval(*n.exprs[i]))) return exec(*n.kids[i], out);
      if (n.kids.size() > n.exprs.size()) return exec(*n.kids.back(), out);
      return Flow::kNormal;
    case Node::kFor:
      return exec_for(n, out);
    case Node::kSet:
      assign(n.names, eval(*n.exprs[0]), n.line);
      return Flow::kNormal;
    case Node::kSetAttr: {
      const Value ns = lookup(n.names[0]);
      if (!ns.is_namespace()) fail(n.line, "cannot assign attribute on non-namespace object '" + n.names[0] + "'");
      if (!n.text.empty() && n.text[0] == '_') fail(n.line, "namespace attributes may not start with '_'");
      const Value v = eval(*n.exprs[0]);
      checked(v, n.line);
      if (v.is_namespace() || v.holds_namespace() || v.type() == Type::kFunction)
        fail(n.line, "a namespace cannot hold a namespace or a function (kiln refuses what could make a cycle)");
      Value shared = ns;  // namespaces are the one mutable value: this writes through
      shared.set(n.text, v);
      return Flow::kNormal;
    }
    case Node::kSetBlock: {
      std::string s;
      frames_.emplace_back();
      exec(*n.kids[0], s);
      frames_.pop_back();
      frames_.back()[n.names[0]] = Value::string(std::move(s));
      return Flow::kNormal;
    }
    case Node::kMacro: {
      auto fn = std::make_shared<Function>();
      fn->name = n.text;
      const Node* node = &n;
      fn->call = [node](Interpreter& in, Args& a) { return in.call_macro(*node, a, node->line); };
      frames_.back()[n.text] = Value::function(std::move(fn));
      return Flow::kNormal;
    }
    case Node::kFilterBlock: {
      std::string s;
      frames_.emplace_back();  // the body's sets stay inside, as in Jinja
      const Flow f = exec(*n.kids[0], s);
      frames_.pop_back();
      Value v = Value::string(std::move(s));
      for (const auto& fe : n.exprs) v = filter_call(*fe, v);
      out += to_str(v);
      check_size(out.size(), n.line);
      return f;
    }
    case Node::kBreak:
      return Flow::kBreak;
    case Node::kContinue:
      return Flow::kContinue;
  }
  return Flow::kNormal;
}

// Jinja's loop object for item i of a for loop over `items`.
static Value loop_object(const List& items, size_t i) {
  const size_t len = items.size();
  Value loop = Value::dict();
  loop.set("index", Value::integer(int64_t(i) + 1));
  loop.set("index0", Value::integer(int64_t(i)));
  loop.set("revindex", Value::integer(int64_t(len - i)));
  loop.set("revindex0", Value::integer(int64_t(len - i - 1)));
  loop.set("first", Value::boolean(i == 0));
  loop.set("last", Value::boolean(i + 1 == len));
  loop.set("length", Value::integer(int64_t(len)));
  loop.set("depth", Value::integer(1));
  loop.set("depth0", Value::integer(0));
  loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
  loop.set("nextitem", i + 1 < len ? items[i + 1] : Value::undefined("there is no next item"));
  auto cycle = std::make_shared<Function>();
  cycle->name = "loop.cycle";
  cycle->call = [i](Interpreter&, Args& a) {
    if (a.pos.empty()) fail(0, "no items for cycling given");
    return a.pos[i % a.pos.size()];
  };
  loop.set("cycle", Value::function(std::move(cycle)));
  return loop;
}

Flow Interpreter::exec_for(const Node& n, std::string& out) {
  const List all = iterate(eval(*n.exprs[0]), n.line);
  List items;
  if (n.exprs[1]) {
    for (const Value& v : all) {
      frames_.emplace_back();
      assign(n.names, v, n.line);
      const bool keep = truthy(eval(*n.exprs[1]));
      frames_.pop_back();
      if (keep) items.push_back(v);
    }
  } else {
    items = all;
  }
  const size_t len = items.size();
  for (size_t i = 0; i < len; ++i) {
    step(n.line);
    frames_.emplace_back();
    assign(n.names, items[i], n.line);
    if (n.uses_loop) frames_.back()["loop"] = loop_object(items, i);
    const Flow f = exec(*n.kids[0], out);
    frames_.pop_back();
    if (f == Flow::kBreak) break;
  }
  if (len == 0 && n.kids[1]) {
    frames_.emplace_back();
    const Flow f = exec(*n.kids[1], out);
    frames_.pop_back();
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Value Interpreter::call_macro(const Node& m, Args& a, int line) {
  if (call_depth_ >= lim_.max_call_depth)
    fail(line, "macro calls nested deeper than " + std::to_string(lim_.max_call_depth));
  const Frame_ guard(this, line);
  if (a.pos.size() > m.names.size())
    fail(line, "macro '" + m.text + "' takes not more than " + std::to_string(m.names.size()) + " arguments");
  // A macro sees the template's globals and its own arguments, not the caller's locals.
  std::vector<Frame> saved;
  saved.swap(frames_);
  frames_.push_back(saved[0]);
  frames_.push_back(saved[1]);
  frames_.emplace_back();
  struct Restore {
    Interpreter* in;
    std::vector<Frame>* saved;
    ~Restore() {
      in->frames_.swap(*saved);
      --in->call_depth_;
    }
  } restore{this, &saved};
  ++call_depth_;
  for (size_t i = 0; i < m.names.size(); ++i) {
    const Value* kw = nullptr;
    for (const auto& [k, v] : a.kw)
      if (k == m.names[i]) kw = &v;
    if (i < a.pos.size()) {
      if (kw) fail(line, "macro '" + m.text + "' got multiple values for argument '" + m.names[i] + "'");
      frames_.back()[m.names[i]] = a.pos[i];
    } else if (kw) {
      frames_.back()[m.names[i]] = *kw;
    } else if (m.exprs[i]) {
      frames_.back()[m.names[i]] = eval(*m.exprs[i]);
    } else {
      frames_.back()[m.names[i]] = Value::undefined("parameter '" + m.names[i] + "' was not provided");
    }
  }
  for (const auto& [k, v] : a.kw)
    if (std::find(m.names.begin(), m.names.end(), k) == m.names.end())
      fail(line, "macro '" + m.text + "' takes no keyword argument '" + k + "'");
  std::string out;
  exec(*m.kids[0], out);
  return Value::string(std::move(out));
}

Value Interpreter::filter_call(const Expr& e, const Value& v) {
  Args args = call_args(e);
  return apply_filter(*this, e.name, v, args, e.line);
}

Value Interpreter::eval(const Expr& e) {
  step(e.line);
  const Frame_ guard(this, e.line);
  switch (e.kind) {
    case Expr::kLiteral:
      return e.literal;
    case Expr::kName:
      return lookup(e.name);
    case Expr::kList:
    case Expr::kTuple: {
      List items;
      for (const auto& x : e.a) items.push_back(eval(*x));
      Value v = Value::list(std::move(items), e.kind == Expr::kTuple);
      checked(v, e.line);
      return v;
    }
    case Expr::kDict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.a.size(); i += 2) {
        const Value k = eval(*e.a[i]);
        if (hash_key(k).empty()) fail(e.line, std::string("unhashable type: '") + type_name(k) + "'");
        d.set(k, eval(*e.a[i + 1]));
      }
      checked(d, e.line);
      return d;
    }
    case Expr::kAttr: {
      const Value obj = eval(*e.a[0]);
      return get_attr(obj, e.name, e.line);
    }
    case Expr::kItem: {
      const Value obj = eval(*e.a[0]);
      const Value key = eval(*e.a[1]);
      if (obj.is_undefined()) undefined_error(obj, e.line);
      if (obj.is_dict() && !obj.is_namespace()) {
        // Jinja's getitem turns the TypeError of an unhashable key (an undefined one hashes in
        // Python but is never a key) into an undefined value, as for a missing key.
        if (hash_key(key).empty()) return Value::undefined("'dict object' has no element " + repr(key));
        if (const Value* v = obj.find(key)) return *v;
        if (key.is_string()) return get_attr(obj, key.as_string(), e.line);
        return Value::undefined("'dict object' has no element " + repr(key));
      }
      if (obj.is_list() && obj.list_kind() == Value::ListKind::kIterator)
        return Value::undefined("'generator' object is not subscriptable");
      if ((obj.is_list() || obj.is_string()) && integral(key)) {
        int64_t i = int_of(key);
        if (obj.is_list()) {
          if (!norm_index(&i, obj.items().size()))
            return Value::undefined(std::string("'") + type_name(obj) + " object' has no element " +
                                    std::to_string(int_of(key)));
          return obj.items()[size_t(i)];
        }
        charge(obj.as_string().size() / 16, e.line);
        const std::vector<uint32_t> cps = code_points(obj.as_string());
        if (!norm_index(&i, cps.size()))
          return Value::undefined("'str object' has no element " + std::to_string(int_of(key)));
        return Value::string(from_code_points(&cps[size_t(i)], 1));
      }
      if (key.is_string()) return get_attr(obj, key.as_string(), e.line);
      return Value::undefined(std::string("'") + type_name(obj) + " object' has no element " + repr(key));
    }
    case Expr::kSlice: {
      const Value obj = eval(*e.a[0]);
      int64_t part[3] = {0, 0, 1};
      bool given[3] = {false, false, false};
      for (int k = 0; k < 3; ++k) {
        if (!e.a[size_t(k) + 1]) continue;
        const Value v = eval(*e.a[size_t(k) + 1]);
        if (v.is_none()) continue;
        if (!integral(v)) fail(e.line, "slice indices must be integers or None");
        part[k] = int_of(v);
        given[k] = true;
      }
      if (part[2] == 0) fail(e.line, "slice step cannot be zero");
      if (part[2] == INT64_MIN) fail(e.line, "slice step out of range");
      if (obj.is_undefined()) undefined_error(obj, e.line);
      if (obj.is_list() && obj.list_kind() == Value::ListKind::kIterator)
        return Value::undefined("'generator' object is not subscriptable");
      std::vector<uint32_t> cps;
      if (obj.is_string()) {
        charge(obj.as_string().size() / 16, e.line);
        cps = code_points(obj.as_string());
      } else if (!obj.is_list()) fail(e.line, std::string("'") + type_name(obj) + "' object is not subscriptable");
      const int64_t n = obj.is_string() ? int64_t(cps.size()) : int64_t(obj.items().size());
      const int64_t step = part[2];
      auto clamp = [&](int64_t v, bool g, int64_t def) {
        if (!g) return def;
        if (v < 0) v += n;
        if (step > 0) return std::clamp<int64_t>(v, 0, n);
        return std::clamp<int64_t>(v, -1, n - 1);
      };
      const int64_t start = clamp(part[0], given[0], step > 0 ? 0 : n - 1);
      const int64_t stop = clamp(part[1], given[1], step > 0 ? n : -1);
      // Python's slice length, so a huge step never steps outside (or overflows)
      const int64_t count = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0)
                                     : (start > stop ? (start - stop - 1) / (-step) + 1 : 0);
      List items;
      std::vector<uint32_t> picked;
      charge(uint64_t(count), e.line);
      for (int64_t k = 0, i = start; k < count; ++k, i += (k < count ? step : 0)) {
        if (obj.is_string()) picked.push_back(cps[size_t(i)]);
        else items.push_back(obj.items()[size_t(i)]);
      }
      if (obj.is_string()) return Value::string(from_code_points(picked.data(), picked.size()));
      return Value::list(std::move(items), obj.is_tuple());
    }
    case Expr::kCall: {
      const Value fn = eval(*e.a[0]);
      if (fn.is_undefined()) undefined_error(fn, e.line);
      if (fn.type() != Type::kFunction) fail(e.line, std::string("'") + type_name(fn) + "' object is not callable");
      Args args = call_args(e);
      try {
        return fn.function().call(*this, args);
      } catch (Error& err) {
        if (err.message.rfind("line ", 0) != 0) err.message = "line " + std::to_string(e.line) + ": " + err.message;
        throw;
      }
    }
    case Expr::kFilter:
      return filter_call(e, eval(*e.a[0]));
    case Expr::kTest: {
      const Value v = eval(*e.a[0]);
      Args args = call_args(e);
      return Value::boolean(apply_test(*this, e.name, v, args, e.line) != e.negate);
    }
    case Expr::kNot:
      return Value::boolean(!truthy(eval(*e.a[0])));
    case Expr::kNeg:
    case Expr::kPos: {
      const Value v = eval(*e.a[0]);
      if (v.is_undefined()) undefined_error(v, e.line);
      if (!numeric(v))
        fail(e.line, std::string("bad operand type for unary ") + (e.kind == Expr::kNeg ? "-" : "+") + ": '" +
                         type_name(v) + "'");
      if (e.kind == Expr::kPos) return integral(v) ? Value::integer(int_of(v)) : v;
      if (integral(v)) {
        if (int_of(v) == INT64_MIN) fail(e.line, "integer overflow");
        return Value::integer(-int_of(v));
      }
      return Value::number(-v.as_float());
    }
    case Expr::kAnd: {
      Value l = eval(*e.a[0]);
      return truthy(l) ? eval(*e.a[1]) : l;
    }
    case Expr::kOr: {
      Value l = eval(*e.a[0]);
      return truthy(l) ? l : eval(*e.a[1]);
    }
    case Expr::kCond:
      if (truthy(eval(*e.a[1]))) return eval(*e.a[0]);
      return e.a[2] ? eval(*e.a[2]) : Value::undefined("the condition was false and there is no else");
    case Expr::kConcat: {
      std::string s;
      for (const auto& x : e.a) {
        const Value v = eval(*x);
        charge(v.is_string() ? v.as_string().size() / 16 : v.weight(), e.line);
        s += to_str(v);
        check_size(s.size(), e.line);
      }
      return Value::string(std::move(s));
    }
    case Expr::kCompare: {
      Value l = eval(*e.a[0]);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value r = eval(*e.a[i + 1]);
        const std::string& op = e.ops[i];
        bool ok;
        charge((l.is_string() ? l.as_string().size() / 16 : l.weight()) +
                   (r.is_string() ? r.as_string().size() / 16 : r.weight()),
               e.line);
        if (op == "==") ok = equals(l, r);
        else if (op == "!=") ok = !equals(l, r);
        else if (op == "in") ok = contains(r, l, e.line);
        else if (op == "not in") ok = !contains(r, l, e.line);
        else {
          const int c = order(l, r, op.c_str(), e.line);
          ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
        }
        if (!ok) return Value::boolean(false);
        l = std::move(r);
      }
      return Value::boolean(true);
    }
    case Expr::kBinary: {
      const Value l = eval(*e.a[0]);
      const Value r = eval(*e.a[1]);
      const std::string& op = e.name;
      if (l.is_undefined()) undefined_error(l, e.line);
      if (r.is_undefined()) undefined_error(r, e.line);
      auto bad = [&]() {
        fail(e.line, "unsupported operand type(s) for " + op + ": '" + type_name(l) + "' and '" + type_name(r) + "'");
      };
      if (numeric(l) && numeric(r)) {
        const bool ints = integral(l) && integral(r);
        const int64_t a = ints ? int_of(l) : 0, b = ints ? int_of(r) : 0;
        const double x = float_of(l), y = float_of(r);
        int64_t res = 0;
        if (op == "+") {
          if (!ints) return Value::number(x + y);
          if (__builtin_add_overflow(a, b, &res)) fail(e.line, "integer overflow");
          return Value::integer(res);
        }
        if (op == "-") {
          if (!ints) return Value::number(x - y);
          if (__builtin_sub_overflow(a, b, &res)) fail(e.line, "integer overflow");
          return Value::integer(res);
        }
        if (op == "*") {
          if (!ints) return Value::number(x * y);
          if (__builtin_mul_overflow(a, b, &res)) fail(e.line, "integer overflow");
          return Value::integer(res);
        }
        if (op == "/") {
          if (y == 0) fail(e.line, "division by zero");
          return Value::number(x / y);
        }
        if (op == "//" || op == "%") {
          if (ints ? b == 0 : y == 0)
            fail(e.line, op == "//" ? "integer division or modulo by zero" : "modulo by zero");
          if (ints) {
            if (a == INT64_MIN && b == -1) fail(e.line, "integer overflow");
            int64_t q = a / b, m = a % b;
            if (m != 0 && ((m < 0) != (b < 0))) --q, m += b;
            return Value::integer(op == "//" ? q : m);
          }
          double m = std::fmod(x, y);
          if (m != 0 && ((m < 0) != (y < 0))) m += y;
          return op == "//" ? Value::number(std::floor(x / y)) : Value::number(m);
        }
        if (op == "**") {
          if (ints && b >= 0) {
            int64_t acc = 1;
            for (int64_t k = 0; k < b; ++k) {
              if (__builtin_mul_overflow(acc, a, &acc)) fail(e.line, "integer overflow");
              if (acc == 0 || acc == 1) break;
              if (acc == -1) {
                acc = (b - k - 1) % 2 ? -acc : acc;
                break;
              }
            }
            return Value::integer(acc);
          }
          if (x == 0 && y < 0) fail(e.line, "0.0 cannot be raised to a negative power");
          return Value::number(std::pow(x, y));
        }
        bad();
      }
      if (op == "+" && l.is_string() && r.is_string()) {
        if (!l.is_markup() && !r.is_markup()) return make_str(l.as_string() + r.as_string(), *this, e.line);
        // Markup + str escapes the str (markupsafe), and the sum is Markup
        auto esc = [](const Value& v) { return v.is_markup() ? v.as_string() : html_escape(v.as_string()); };
        std::string sum = esc(l) + esc(r);
        check_size(sum.size(), e.line);
        return Value::markup(std::move(sum));
      }
      if (op == "+" && l.is_list() && r.is_list() && l.is_tuple() == r.is_tuple()) {
        if (l.weight() + r.weight() > kMaxWeight) fail(e.line, "a value the template builds is too large");
        charge(l.items().size() + r.items().size(), e.line);
        List items = l.items();
        items.insert(items.end(), r.items().begin(), r.items().end());
        Value v = Value::list(std::move(items), l.is_tuple());
        checked(v, e.line);
        return v;
      }
      if (op == "*" && (l.is_string() || l.is_list() || r.is_string() || r.is_list())) {
        const Value& seq = l.is_string() || l.is_list() ? l : r;
        const Value& cnt = &seq == &l ? r : l;
        if (!integral(cnt)) bad();
        const int64_t k = std::max<int64_t>(0, int_of(cnt));
        const size_t unit = seq.is_string() ? seq.as_string().size() : seq.items().size();
        if (unit > 0 && uint64_t(k) > lim_.max_output / unit) check_size(lim_.max_output + 1, e.line);
        if (seq.is_list() && uint64_t(k) > kMaxWeight / seq.weight())
          fail(e.line, "a value the template builds is too large");
        charge(uint64_t(k) * unit / 16, e.line);
        if (seq.is_string()) {
          std::string s;
          for (int64_t i = 0; i < k; ++i) s += seq.as_string();
          return Value::string(std::move(s));
        }
        List items;
        for (int64_t i = 0; i < k; ++i) items.insert(items.end(), seq.items().begin(), seq.items().end());
        return Value::list(std::move(items), seq.is_tuple());
      }
      if (op == "%" && l.is_string()) fail(e.line, "string formatting with '%' is not supported");
      bad();
    }
  }
  return Value();
}

// ---------------------------------------------------------------------------------------
// Filters, tests, methods and globals

namespace {

// Binds a builtin's arguments the way Python does: positional i or keyword `name`.
class Binder {
 public:
  Binder(const Args& a, std::string fn, int line) : a_(a), fn_(std::move(fn)), line_(line), used_(a.kw.size()) {}
  bool has(size_t i, const char* name) { return find(i, name) != nullptr; }
  Value get(size_t i, const char* name, Value def = Value()) {
    const Value* v = find(i, name);
    return v ? *v : def;
  }
  Value required(size_t i, const char* name) {
    const Value* v = find(i, name);
    if (!v) fail(line_, fn_ + "() missing required argument '" + name + "'");
    return *v;
  }
  void done(size_t max_pos) {
    if (a_.pos.size() > max_pos)
      fail(line_, fn_ + "() takes at most " + std::to_string(max_pos) + " positional argument(s)");
    for (size_t k = 0; k < used_.size(); ++k)
      if (!used_[k]) fail(line_, fn_ + "() got an unexpected keyword argument '" + a_.kw[k].first + "'");
  }
  int line() const { return line_; }

 private:
  const Value* find(size_t i, const char* name) {
    const Value* v = nullptr;
    for (size_t k = 0; k < a_.kw.size(); ++k)
      if (a_.kw[k].first == name) v = &a_.kw[k].second, used_[k] = true;
    if (i < a_.pos.size()) {
      if (v) fail(line_, fn_ + "() got multiple values for argument '" + name + "'");
      return &a_.pos[i];
    }
    return v;
  }
  const Args& a_;
  std::string fn_;
  int line_;
  std::vector<bool> used_;
};

const std::string& need_str(const Value& v, const char* what, int line) {
  if (!v.is_string()) fail(line, std::string(what) + " must be a string, not " + type_name(v));
  return v.as_string();
}

// What a builtin's arguments may cost it to read (string bytes / 16, container sizes).
uint64_t args_weight(const Args& a) {
  uint64_t w = 0;
  for (const Value& v : a.pos) w += v.is_string() ? v.as_string().size() / 16 : v.weight();
  for (const auto& kv : a.kw) w += kv.second.is_string() ? kv.second.as_string().size() / 16 : kv.second.weight();
  return w;
}
int64_t need_int(const Value& v, const char* what, int line) {
  if (!integral(v)) fail(line, std::string(what) + " must be an integer, not " + type_name(v));
  return int_of(v);
}

// Whether Python's str.upper leaves code point c as it is, as far as kiln knows without an
// uppercase table: not a letter, nor one of the few others with case (combining ypogegrammeni,
// Roman numerals, circled letters).
bool caseless(uint32_t c) {
  return !text::is_letter(c) && c != 0x0345 && !(c >= 0x2160 && c <= 0x2188) && !(c >= 0x24B6 && c <= 0x24E9);
}

// Python's case mapping: lower of any text (Unicode's tables), upper of text whose non-ASCII
// characters are caseless; the rest of non-ASCII text is refused, not guessed.
std::string case_map(const std::string& s, int mode, const char* fn,
                     int line) {  // 0 lower, 1 upper, 2 capitalize, 3 title
  bool ascii = true;
  for (unsigned char c : s) ascii = ascii && c < 0x80;
  if (!ascii && mode == 0) {
    std::string out;
    if (text::lowercase_utf8(s, &out)) return out;
  }
  if (!ascii && mode == 1) {  // ASCII letters up, caseless others kept
    for (size_t i = 0; i < s.size();) {
      size_t len;
      const uint32_t c = text::next_cp(s, i, &len);
      if (c >= 0x80 && !caseless(c)) fail(line, std::string(fn) + " of non-ASCII letters is not supported");
      i += len;
    }
    std::string out = s;
    for (char& c : out)
      if (static_cast<unsigned char>(c) < 0x80) c = char(std::toupper(static_cast<unsigned char>(c)));
    return out;
  }
  if (!ascii) fail(line, std::string(fn) + " of non-ASCII text is not supported");
  std::string out = s;
  bool prev_cased = false;
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    bool up = mode == 1 || (mode == 2 && i == 0) || (mode == 3 && !prev_cased);
    out[i] = char(up ? std::toupper(c) : std::tolower(c));
    prev_cased = std::isalpha(c) != 0;
  }
  return out;
}

// Python's str.strip family: chars = none → whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right, int line) {
  std::vector<uint32_t> cps = code_points(s), set;
  const bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = code_points(need_str(chars, "strip's chars", line));
  auto strip_it = [&](uint32_t c) { return ws ? py_space(c) : std::find(set.begin(), set.end(), c) != set.end(); };
  size_t a = 0, b = cps.size();
  if (left)
    while (a < b && strip_it(cps[a])) ++a;
  if (right)
    while (b > a && strip_it(cps[b - 1])) --b;
  return from_code_points(cps.data() + a, b - a);
}

// The text Python's int() and float() parse after strip(): its decimal digits ('٣', '３', ...) as
// ASCII; false for any other character beyond ASCII.
bool py_number_ascii(const std::string& s, std::string* out) {
  out->clear();
  for (size_t i = 0, len; i < s.size(); i += len) {
    const uint32_t c = text::next_cp(s, i, &len);
    const int d = text::decimal_digit(c);
    if (d >= 0) out->push_back(char('0' + d));
    else if (c < 0x80) out->push_back(char(c));
    else return false;
  }
  return true;
}

// Python's float(str) on stripped text: [sign] (digits [. [digits]] | . digits) [e [sign] digits]
// with single underscores between digits, or inf, infinity, nan (any case).
bool py_parse_float(const std::string& s, double* out) {
  std::string t, clean;
  if (!py_number_ascii(s, &t) || t.empty()) return false;
  size_t i = 0;
  if (t[i] == '+' || t[i] == '-') clean.push_back(t[i++]);
  std::string word = t.substr(i);
  for (char& c : word) c = char(std::tolower(uint8_t(c)));
  if (word == "inf" || word == "infinity" || word == "nan") {
    const double x = word == "nan" ? std::nan("") : HUGE_VAL;
    *out = clean == "-" ? -x : x;
    return true;
  }
  auto digits = [&]() {  // digit (['_'] digit)*; false if none
    if (i >= t.size() || !std::isdigit(uint8_t(t[i]))) return false;
    for (clean.push_back(t[i++]); i < t.size(); clean.push_back(t[i++])) {
      if (t[i] == '_' && i + 1 < t.size() && std::isdigit(uint8_t(t[i + 1]))) ++i;
      else if (!std::isdigit(uint8_t(t[i]))) break;
    }
    return true;
  };
  const bool whole = digits();
  bool frac = false;
  if (i < t.size() && t[i] == '.') {
    clean.push_back(t[i++]);
    frac = digits();
  }
  if (!whole && !frac) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    clean.push_back(t[i++]);
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) clean.push_back(t[i++]);
    if (!digits()) return false;
  }
  if (i != t.size()) return false;
  *out = std::strtod(clean.c_str(), nullptr);
  return true;
}

// Python's int(str, base) on stripped text: 1 parsed, 0 not a number in that base (or a base
// Python refuses), -1 beyond int64 (Python's ints have no bound; kiln's do).
int py_parse_int(const std::string& s, int64_t base, int64_t* out) {
  std::string t;
  if ((base != 0 && (base < 2 || base > 36)) || !py_number_ascii(s, &t)) return 0;
  size_t i = 0;
  const bool neg = i < t.size() && t[i] == '-';
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  bool prefixed = false;
  if (i + 1 < t.size() && t[i] == '0') {
    const char p = char(std::tolower(uint8_t(t[i + 1])));
    const int64_t pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb != 0 && (base == 0 || base == pb)) base = pb, i += 2, prefixed = true;
  }
  const bool literal = base == 0;  // no prefix: decimal, and no leading zeros but in 0 itself
  if (literal) base = 10;
  uint64_t mag = 0;
  bool any = false, overflow = false, nonzero = false, leading_zero = false;
  for (bool after_digit = prefixed; i < t.size(); ++i) {
    if (t[i] == '_') {
      if (!after_digit || i + 1 >= t.size() || t[i + 1] == '_') return 0;
      after_digit = false;
      continue;
    }
    const char c = char(std::tolower(uint8_t(t[i])));
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
    if (d >= base) return 0;
    if (!any && d == 0) leading_zero = true;
    any = after_digit = true;
    nonzero |= d != 0;
    if (mag > (uint64_t(1) << 63) / uint64_t(base)) overflow = true;
    mag = mag * uint64_t(base) + uint64_t(d);
    if (mag > (uint64_t(1) << 63)) overflow = true;
  }
  if (!any || (literal && !prefixed && leading_zero && nonzero)) return 0;
  if (overflow || (!neg && mag == (uint64_t(1) << 63))) return -1;
  *out = neg ? int64_t(0 - mag) : int64_t(mag);
  return 1;
}

List py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right, int line) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    std::vector<uint32_t> cps = code_points(s);
    std::vector<std::pair<size_t, size_t>> words;
    if (!from_right) {
      size_t i = 0;
      while (i < cps.size()) {
        while (i < cps.size() && py_space(cps[i])) ++i;
        if (i == cps.size()) break;
        if (maxsplit >= 0 && int64_t(words.size()) == maxsplit) {  // the rest, trailing space kept
          words.emplace_back(i, cps.size());
          break;
        }
        size_t j = i;
        while (j < cps.size() && !py_space(cps[j])) ++j;
        words.emplace_back(i, j);
        check_pieces(words.size(), line);
        i = j;
      }
    } else {
      size_t i = cps.size();
      while (i > 0) {
        while (i > 0 && py_space(cps[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && int64_t(words.size()) == maxsplit) {  // the rest, leading space kept
          words.emplace_back(0, i);
          break;
        }
        size_t j = i;
        while (j > 0 && !py_space(cps[j - 1])) --j;
        words.emplace_back(j, i);
        check_pieces(words.size(), line);
        i = j;
      }
      std::reverse(words.begin(), words.end());
    }
    for (auto [a, b] : words) out.push_back(Value::string(from_code_points(cps.data() + a, b - a)));
    return out;
  }
  const std::string d = need_str(sep, "the separator", line);
  if (d.empty()) fail(line, "empty separator");
  // rsplit is split of the reversed string by the reversed separator, each piece reversed back.
  if (d.size() > s.size()) return List{Value::string(s)};
  const std::string hay = from_right ? reversed(s) : s, needle = from_right ? reversed(d) : d;
  const Finder finder(needle);
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    const size_t k = (maxsplit < 0 || int64_t(parts.size()) < maxsplit) ? finder.find(hay, pos) : std::string::npos;
    if (k == std::string::npos) {
      parts.push_back(hay.substr(pos));
      break;
    }
    parts.push_back(hay.substr(pos, k - pos));
    check_pieces(parts.size(), line);
    pos = k + needle.size();
  }
  if (from_right) {
    for (auto& p : parts) p = reversed(p);
    std::reverse(parts.begin(), parts.end());
  }
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count,
                       const Interpreter& in, int line) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` around every character
    const std::vector<uint32_t> cps = code_points(s);
    int64_t n = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || n < count) out += to, ++n;
      if (i < cps.size()) text::append_utf8(cps[i], &out);
      in.check_size(out.size(), line);
    }
    return out;
  }
  if (from.size() > s.size()) return s;
  size_t pos = 0;
  int64_t n = 0;
  const Finder finder(from);
  while (count < 0 || n < count) {
    const size_t k = finder.find(s, pos);
    if (k == std::string::npos) break;
    out.append(s, pos, k - pos);
    out += to;
    in.check_size(out.size(), line);
    pos = k + from.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  in.check_size(out.size(), line);
  return out;
}

// Python's str.splitlines() (without keepends).
std::vector<std::string> splitlines(const std::string& s) {
  std::vector<std::string> out;
  const auto add = [&](std::string piece) {
    out.push_back(std::move(piece));
    check_pieces(out.size(), 0);
  };
  const std::vector<uint32_t> cps = code_points(s);
  size_t start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t c = cps[i];
    if (c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 ||
        c == 0x2028 || c == 0x2029) {
      add(from_code_points(cps.data() + start, i - start));
      if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < cps.size()) add(from_code_points(cps.data() + start, cps.size() - start));
  return out;
}

Value bound(const std::string& name, std::function<Value(Interpreter&, Args&)> f) {
  auto fn = std::make_shared<Function>();
  fn->name = name;
  fn->call = std::move(f);
  return Value::function(std::move(fn));
}

// Code-point offset of a byte offset (for str.find's result).
int64_t cp_offset(const std::string& s, size_t byte) { return int64_t(cp_length(std::string_view(s).substr(0, byte))); }

// Python's str.format with {}, {0} and {name} fields, {{ and }}, and !s/!r (no format specs).
std::string py_format(const std::string& fmt, const Args& a, const Interpreter& in) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}', ++i;
        continue;
      }
      fail(0, "Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{', ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail(0, "Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conv = 's';
    if (field.size() >= 2 && field[field.size() - 2] == '!') conv = field.back(), field.resize(field.size() - 2);
    if (field.find_first_of(":.[!{") != std::string::npos || (conv != 's' && conv != 'r'))
      fail(0, "str.format() fields with format specs, attributes or indexes are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_index >= a.pos.size()) fail(0, "Replacement index " + std::to_string(auto_index) + " out of range");
      v = &a.pos[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
      const size_t k = size_t(std::strtoull(field.c_str(), nullptr, 10));
      if (k >= a.pos.size()) fail(0, "Replacement index " + field + " out of range");
      v = &a.pos[k];
    } else {
      for (const auto& [name, x] : a.kw)
        if (name == field) v = &x;
      if (!v) fail(0, "KeyError: '" + field + "'");
    }
    out += conv == 'r' ? repr(*v) : to_str(*v);
    in.check_size(out.size(), 0);
  }
  return out;
}

Value string_method(const Value& self, const std::string& name) {
  const Value sv = self;  // the string is shared, not copied, into each bound method
  auto m = [&](auto f) { return bound("str." + name, f); };
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, name, 0);
      const Value chars = b.get(0, "chars", Value::none());
      b.done(1);
      return Value::string(py_strip(s, chars, name != "rstrip", name != "lstrip", 0));
    });
  if (name == "split" || name == "rsplit")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, name, 0);
      const Value sep = b.get(0, "sep", Value::none());
      const int64_t maxsplit = need_int(b.get(1, "maxsplit", Value::integer(-1)), "maxsplit", 0);
      b.done(2);
      List parts = py_split(s, sep, maxsplit, name == "rsplit", 0);
      in.charge(parts.size(), 0);  // (one step a piece)
      return Value::list(std::move(parts));
    });
  if (name == "startswith" || name == "endswith")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, name, 0);
      const Value x = b.required(0, name == "startswith" ? "prefix" : "suffix");
      b.done(1);
      List options = x.is_list() && x.is_tuple() ? x.items() : List{x};
      for (const Value& o : options) {
        const std::string p = need_str(o, "the prefix or suffix", 0);
        if (name == "startswith" ? s.compare(0, p.size(), p) == 0 && s.size() >= p.size()
                                 : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0)
          return Value::boolean(true);
      }
      return Value::boolean(false);
    });
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder(a, name, 0).done(0);
      const int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "capitalize" ? 2 : 3;
      return Value::string(case_map(s, mode, ("str." + name + "()").c_str(), 0));
    });
  if (name == "replace")
    return m([sv](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, "replace", 0);
      const std::string from = need_str(b.required(0, "old"), "replace's old", 0);
      const std::string to = need_str(b.required(1, "new"), "replace's new", 0);
      const int64_t count = need_int(b.get(2, "count", Value::integer(-1)), "count", 0);
      b.done(3);
      return Value::string(py_replace(s, from, to, count, in, 0));
    });
  if (name == "find" || name == "rfind" || name == "count")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, name, 0);
      const std::string sub = need_str(b.required(0, "sub"), "the substring", 0);
      b.done(1);
      if (name == "count") {
        if (sub.empty()) return Value::integer(int64_t(cp_length(s)) + 1);
        int64_t n = 0;
        if (sub.size() > s.size()) return Value::integer(0);
        const Finder finder(sub);
        for (size_t k = finder.find(s); k != std::string::npos; k = finder.find(s, k + sub.size())) ++n;
        return Value::integer(n);
      }
      if (name == "find") {
        const size_t k = find_in(s, sub);
        return Value::integer(k == std::string::npos ? -1 : cp_offset(s, k));
      }
      if (sub.size() > s.size()) return Value::integer(-1);
      const size_t r = find_in(reversed(s), reversed(sub));  // the last match, from the end
      return Value::integer(r == std::string::npos ? -1 : cp_offset(s, s.size() - r - sub.size()));
    });
  if (name == "splitlines")
    return m([sv](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder(a, "splitlines", 0).done(0);
      List out;
      for (auto& l : splitlines(s)) out.push_back(Value::string(std::move(l)));
      in.charge(out.size(), 0);  // (one step a piece)
      return Value::list(std::move(out));
    });
  if (name == "join")
    return m([sv](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, "join", 0);
      const Value it = b.required(0, "iterable");
      b.done(1);
      std::string out;
      bool first = true;
      for (const Value& v : iterate(it, 0)) {
        if (!first) out += s;
        out += need_str(v, "each joined item", 0);
        in.check_size(out.size(), 0);
        first = false;
      }
      return Value::string(std::move(out));
    });
  if (name == "removeprefix" || name == "removesuffix")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder b(a, name, 0);
      const std::string x = need_str(b.required(0, "affix"), "the affix", 0);
      b.done(1);
      if (name == "removeprefix" && s.compare(0, x.size(), x) == 0 && s.size() >= x.size())
        return Value::string(s.substr(x.size()));
      if (name == "removesuffix" && !x.empty() && s.size() >= x.size() &&
          s.compare(s.size() - x.size(), x.size(), x) == 0)
        return Value::string(s.substr(0, s.size() - x.size()));
      return Value::string(s);
    });
  if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum" || name == "isupper" ||
      name == "islower")
    return m([sv, name](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      Binder(a, name, 0).done(0);
      const std::vector<uint32_t> cps = code_points(s);
      if (name == "isspace") return Value::boolean(!cps.empty() && std::all_of(cps.begin(), cps.end(), py_space));
      for (uint32_t c : cps)
        if (c >= 0x80) fail(0, "str." + name + "() of non-ASCII text is not supported");
      if (name == "isupper" || name == "islower") {
        bool cased = false;
        for (uint32_t c : cps) {
          if (std::isalpha(int(c))) cased = true;
          if (name == "isupper" ? std::islower(int(c)) : std::isupper(int(c))) return Value::boolean(false);
        }
        return Value::boolean(cased);
      }
      auto ok = [&](uint32_t c) {
        return name == "isdigit"   ? std::isdigit(int(c)) != 0
               : name == "isalpha" ? std::isalpha(int(c)) != 0
                                   : std::isalnum(int(c)) != 0;
      };
      return Value::boolean(!cps.empty() && std::all_of(cps.begin(), cps.end(), ok));
    });
  if (name == "format")
    return m([sv](Interpreter& in, Args& a) {
      const std::string& s = sv.as_string();
      in.charge(s.size() / 16 + args_weight(a), 0);
      return Value::string(py_format(s, a, in));
    });
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value items_of(const Value& d, Value::ListKind kind = Value::ListKind::kList) {
  List out;
  for (const auto& [k, v] : d.entries().items) out.push_back(Value::list({k, v}, true));
  return Value::list(std::move(out), kind);
}

Value dict_method(const Value& self, const std::string& name) {
  auto m = [&](auto f) { return bound("dict." + name, f); };
  if (name == "items")
    return m([self](Interpreter&, Args& a) {
      Binder(a, "items", 0).done(0);
      return items_of(self, Value::ListKind::kItems);
    });
  if (name == "keys" || name == "values")
    return m([self, name](Interpreter&, Args& a) {
      Binder(a, name, 0).done(0);
      List out;
      for (const auto& [k, v] : self.entries().items) out.push_back(name == "keys" ? k : v);
      return Value::list(std::move(out), name == "keys" ? Value::ListKind::kKeys : Value::ListKind::kValues);
    });
  if (name == "get")
    return m([self](Interpreter&, Args& a) {
      Binder b(a, "get", 0);
      const Value k = b.required(0, "key");
      const Value def = b.get(1, "default", Value::none());
      b.done(2);
      if (hash_key(k).empty()) fail(0, std::string("unhashable type: '") + type_name(k) + "'");
      const Value* v = self.find(k);
      return v ? *v : def;
    });
  if (name == "pop" || name == "popitem" || name == "update" || name == "clear" || name == "setdefault" ||
      name == "copy" || name == "fromkeys")
    return m([name](Interpreter&, Args&) -> Value {
      fail(0, "dict." + name + "() is not allowed: chat templates are rendered with immutable values");
    });
  return Value();
}

Value get_attr(const Value& obj, const std::string& name, int line) {
  switch (obj.type()) {
    case Type::kUndefined:
      undefined_error(obj, line);
    case Type::kDict:
      if (!obj.is_namespace())
        if (Value m = dict_method(obj, name); !m.is_undefined()) return m;
      if (const Value* v = obj.find(name)) return *v;
      return Value::undefined(std::string("'") + (obj.is_namespace() ? "Namespace" : "dict object") +
                              "' has no attribute '" + name + "'");
    case Type::kString:
      return string_method(obj, name);
    default:
      return Value::undefined(std::string("'") + type_name(obj) + " object' has no attribute '" + name + "'");
  }
}

Value attribute_path(const Value& v, const std::string& path, int line) {
  Value cur = v;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (cur.is_undefined()) return cur;
    if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      int64_t i = std::strtoll(part.c_str(), nullptr, 10);
      cur = norm_index(&i, cur.items().size()) ? cur.items()[size_t(i)] : Value::undefined("no element " + part);
    } else if (cur.is_dict() && !cur.is_namespace()) {
      const Value* x = cur.find(part);
      cur = x ? *x : Value::undefined("'dict object' has no attribute '" + part + "'");
    } else {
      cur = get_attr(cur, part, line);
    }
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

const char* const kFilters[] = {"abs",    "attr",   "capitalize", "count",      "d",           "default", "dictsort",
                                "e",      "escape", "first",      "float",      "forceescape", "indent",  "int",
                                "items",  "join",   "last",       "length",     "list",        "lower",   "map",
                                "max",    "min",    "reject",     "rejectattr", "replace",     "reverse", "round",
                                "safe",   "select", "selectattr", "sort",       "string",      "sum",     "title",
                                "tojson", "trim",   "unique",     "upper"};
const char* const kTests[] = {
    "boolean",  "callable", "defined",  "divisibleby", "eq",          "equalto", "escaped", "even",
    "false",    "filter",   "float",    "ge",          "greaterthan", "gt",      "in",      "integer",
    "iterable", "le",       "lessthan", "lower",       "lt",          "mapping", "ne",      "none",
    "number",   "odd",      "sameas",   "sequence",    "string",      "test",    "true",    "undefined",
    "upper",    "==",       "!=",       "<",           "<=",          ">",       ">="};

// Jinja's own filters that kiln's subset lacks: transformers renders them, kiln fails when it reaches
// one (its tests are all in kTests).
const char* const kJinjaOnlyFilters[] = {"batch",     "center", "filesizeformat", "format",    "groupby",
                                         "pprint",    "random", "slice",          "striptags", "truncate",
                                         "urlencode", "urlize", "wordcount",      "wordwrap",  "xmlattr"};

bool jinja_only_filter(const std::string& f) {
  return std::find_if(std::begin(kJinjaOnlyFilters), std::end(kJinjaOnlyFilters),
                      [&](const char* k) { return f == k; }) != std::end(kJinjaOnlyFilters);
}

bool known_filter(const std::string& f) {
  return std::find_if(std::begin(kFilters), std::end(kFilters), [&](const char* k) { return f == k; }) !=
         std::end(kFilters);
}
bool known_test(const std::string& t) {
  return std::find_if(std::begin(kTests), std::end(kTests), [&](const char* k) { return t == k; }) != std::end(kTests);
}

// The key a sort/unique/min/max compares: the attribute, lower-cased strings unless
// case_sensitive.
Value sort_key(const Value& v, const Value& attribute, bool case_sensitive, int line) {
  Value k = attribute.is_none() || attribute.is_undefined() ? v : attribute_path(v, to_str(attribute), line);
  if (!case_sensitive && k.is_string())
    return Value::string(case_map(k.as_string(), 0, "case-insensitive sorting", line));
  return k;
}

// select/reject/selectattr/rejectattr: the test named by args[first] (or truthiness).
List select_items(Interpreter& in, const Value& seq, Args& a, bool by_attr, bool keep, int line) {
  const size_t first = by_attr ? 1 : 0;
  std::string attr;
  if (by_attr) {
    if (a.pos.empty()) fail(line, "selectattr/rejectattr need an attribute name");
    attr = need_str(a.pos[0], "the attribute", line);
  }
  std::string test;
  if (a.pos.size() > first) test = need_str(a.pos[first], "the test name", line);
  if (!test.empty() && !known_test(test)) fail(line, "the test '" + test + "' is not supported");
  Args targs;
  for (size_t i = first + 1; i < a.pos.size(); ++i) targs.pos.push_back(a.pos[i]);
  if (!a.kw.empty()) fail(line, "keyword arguments to select filters are not supported");
  List out;
  if (!truthy(seq)) return out;  // Jinja: `if value:` before iterating
  for (const Value& v : iterate(seq, line)) {
    const Value x = by_attr ? attribute_path(v, attr, line) : v;
    const bool ok = test.empty() ? truthy(x) : apply_test(in, test, x, targs, line);
    if (ok == keep) out.push_back(v);
  }
  return out;
}

Value apply_filter(Interpreter& in, const std::string& f, const Value& v, Args& a, int line) {
  // A filter may walk its value and arguments: charged by their size, but for those that never
  // do (a template's `messages|length` in a loop over the messages stays linear).
  const bool constant_time = f == "default" || f == "d" ||
                             ((f == "length" || f == "count") && !v.is_string());  // (a string's counts code points)
  in.charge((constant_time ? 1 : v.is_string() ? v.as_string().size() / 16 : v.weight()) + args_weight(a), line);
  Binder b(a, f, line);
  auto str_arg = [&](size_t i, const char* n, const char* def) {
    const Value x = b.get(i, n, Value::string(def));
    return need_str(x, n, line);
  };
  if (f == "default" || f == "d") {
    const Value def = b.get(0, "default_value", Value::string(""));
    const bool boolean = truthy(b.get(1, "boolean", Value::boolean(false)));
    b.done(2);
    return v.is_undefined() || (boolean && !truthy(v)) ? def : v;
  }
  if (f == "length" || f == "count") {
    b.done(0);
    switch (v.type()) {
      case Type::kUndefined:
        return Value::integer(0);
      case Type::kString:
        return Value::integer(int64_t(cp_length(v.as_string())));
      case Type::kList:
        if (v.list_kind() == Value::ListKind::kIterator) fail(line, "object of type 'generator' has no len()");
        return Value::integer(int64_t(v.items().size()));
      case Type::kDict:
        if (!v.is_namespace()) return Value::integer(int64_t(v.entries().items.size()));
        [[fallthrough]];
      default:
        fail(line, std::string("object of type '") + type_name(v) + "' has no len()");
    }
  }
  if (f == "trim") {
    const Value chars = b.get(0, "chars", Value::none());
    b.done(1);
    return Value::string(py_strip(to_str(v), chars, true, true, line));
  }
  if (f == "upper" || f == "lower" || f == "capitalize") {
    b.done(0);
    return Value::string(case_map(to_str(v),
                                  f == "lower"   ? 0
                                  : f == "upper" ? 1
                                                 : 2,
                                  ("the " + f + " filter").c_str(), line));
  }
  if (f == "title") {  // Jinja: words begin after '-', whitespace or an opening bracket
    b.done(0);
    std::string s = to_str(v), out;
    for (unsigned char c : s)
      if (c >= 0x80) fail(line, "the title filter of non-ASCII text is not supported");
    bool start = true;
    for (char c : s) {
      const bool sep = c == '-' || ascii_space(c) || c == '(' || c == '{' || c == '[' || c == '<' || c == 0x1c ||
                       c == 0x1d || c == 0x1e || c == 0x1f;
      out += char(sep     ? c
                  : start ? std::toupper(static_cast<unsigned char>(c))
                          : std::tolower(static_cast<unsigned char>(c)));
      start = sep;
    }
    return Value::string(out);
  }
  if (f == "string") return b.done(0), make_str(to_str(v), in, line);
  if (f == "safe") return b.done(0), v.is_markup() ? v : Value::markup(to_str(v));
  if (f == "e" || f == "escape" || f == "forceescape") {
    b.done(0);
    if (v.is_markup() && f != "forceescape") return v;
    std::string s = html_escape(to_str(v));
    in.check_size(s.size(), line);
    return Value::markup(std::move(s));
  }
  if (f == "join") {
    const std::string sep = str_arg(0, "d", "");
    const Value attr = b.get(1, "attribute", Value::none());
    b.done(2);
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v, line)) {
      if (!first) out += sep;
      out += to_str(attr.is_none() ? x : attribute_path(x, to_str(attr), line));
      in.check_size(out.size(), line);
      first = false;
    }
    return Value::string(std::move(out));
  }
  if (f == "first" || f == "last") {
    b.done(0);
    if (f == "last" && v.is_list() && v.list_kind() == Value::ListKind::kIterator)
      fail(line, "'generator' object is not reversible");
    const List items = iterate(v, line);
    if (items.empty()) return Value::undefined("No " + f + " item, sequence was empty.");
    return f == "first" ? items.front() : items.back();
  }
  if (f == "list") {
    b.done(0);
    List items = iterate(v, line);
    if (v.is_string()) in.charge(items.size(), line);  // (one step a character)
    return Value::list(std::move(items));
  }
  if (f == "reverse") {
    b.done(0);
    if (v.is_string()) {
      std::vector<uint32_t> cps = code_points(v.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value::string(from_code_points(cps.data(), cps.size()));
    }
    List items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    // reversed() of a list or dict is an iterator; of an iterator, Jinja makes a list
    const bool iter = v.is_list() && v.list_kind() == Value::ListKind::kIterator;
    return Value::list(std::move(items), iter ? Value::ListKind::kList : Value::ListKind::kIterator);
  }
  if (f == "items") {
    b.done(0);
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict() || v.is_namespace()) fail(line, "can only get item pairs from a mapping");
    return items_of(v);
  }
  if (f == "dictsort") {
    const bool cs = truthy(b.get(0, "case_sensitive", Value::boolean(false)));
    const std::string by = str_arg(1, "by", "key");
    const bool rev = truthy(b.get(2, "reverse", Value::boolean(false)));
    b.done(3);
    if (!v.is_dict() || v.is_namespace()) fail(line, "dictsort needs a mapping");
    if (by != "key" && by != "value") fail(line, "You can only sort by either 'key' or 'value'");
    List items = items_of(v).items();
    const size_t pos = by == "key" ? 0 : 1;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const int c = order(sort_key(x.items()[pos], Value::none(), cs, line),
                          sort_key(y.items()[pos], Value::none(), cs, line), "<", line);
      return rev ? c > 0 : c < 0;
    });
    return Value::list(std::move(items));
  }
  if (f == "sort" || f == "unique" || f == "min" || f == "max") {
    const bool rev = f == "sort" && truthy(b.get(0, "reverse", Value::boolean(false)));
    const bool cs = truthy(b.get(f == "sort" ? 1 : 0, "case_sensitive", Value::boolean(false)));
    const Value attr = b.get(f == "sort" ? 2 : 1, "attribute", Value::none());
    b.done(f == "sort" ? 3 : 2);
    List items = iterate(v, line);
    if (f == "unique") {  // by hash where the key is hashable (Jinja's is a set), else by ==
      List out, keys;
      std::unordered_set<std::string> seen;
      for (const Value& x : items) {
        const Value k = sort_key(x, attr, cs, line);
        const std::string h = hash_key(k);
        if (!h.empty() ? seen.insert(h).second
                       : std::none_of(keys.begin(), keys.end(), [&](const Value& y) { return equals(k, y); })) {
          if (h.empty()) {
            in.charge(keys.size(), line);
            keys.push_back(k);
          }
          out.push_back(x);
        }
      }
      return Value::list(std::move(out));
    }
    if (f == "sort") {
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        const int c = order(sort_key(x, attr, cs, line), sort_key(y, attr, cs, line), "<", line);
        return rev ? c > 0 : c < 0;
      });
      return Value::list(std::move(items));
    }
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    size_t best = 0;
    for (size_t i = 1; i < items.size(); ++i) {
      const int c = order(sort_key(items[i], attr, cs, line), sort_key(items[best], attr, cs, line), "<", line);
      if (f == "min" ? c < 0 : c > 0) best = i;
    }
    return items[best];
  }
  if (f == "sum") {
    const Value attr = b.get(0, "attribute", Value::none());
    Value acc = b.get(1, "start", Value::integer(0));
    b.done(2);
    for (const Value& x : iterate(v, line)) {
      const Value y = attr.is_none() ? x : attribute_path(x, to_str(attr), line);
      if (!numeric(acc) || !numeric(y)) fail(line, "sum of non-numbers is not supported");
      if (integral(acc) && integral(y)) {
        int64_t r;
        if (__builtin_add_overflow(int_of(acc), int_of(y), &r)) fail(line, "integer overflow");
        acc = Value::integer(r);
      } else {
        acc = Value::number(float_of(acc) + float_of(y));
      }
    }
    return acc;
  }
  if (f == "abs") {
    b.done(0);
    if (!numeric(v)) fail(line, std::string("bad operand type for abs(): '") + type_name(v) + "'");
    if (integral(v)) {
      if (int_of(v) == INT64_MIN) fail(line, "integer overflow");
      return Value::integer(std::llabs(int_of(v)));
    }
    return Value::number(std::fabs(v.as_float()));
  }
  if ((f == "int" || f == "float" || f == "indent") && v.is_undefined()) undefined_error(v, line);
  if (f == "int" || f == "float") {
    const Value def = b.get(0, "default", f == "int" ? Value::integer(0) : Value::number(0.0));
    const int64_t base = f == "int" ? need_int(b.get(1, "base", Value::integer(10)), "base", line) : 10;
    b.done(f == "int" ? 2 : 1);
    double x;
    if (f == "float") {
      if (numeric(v)) return Value::number(float_of(v));
      if (v.is_string() && py_parse_float(py_strip(v.as_string(), Value::none(), true, true, line), &x))
        return Value::number(x);
      return def;
    }
    // Jinja: int(value[, base]), else int(float(value)), else the default. A float infinity is
    // Python's OverflowError (a string's is the default); kiln's ints stop at int64 where
    // Python's go on.
    auto out_of_range = [&]() { fail(line, "int: " + to_str(v) + " is beyond a 64-bit integer"); };
    if (integral(v)) return Value::integer(int_of(v));
    if (v.type() == Type::kFloat) {
      x = v.as_float();
      if (std::isinf(x)) fail(line, "cannot convert float infinity to integer");
    } else if (!v.is_string()) {
      return def;
    } else {
      const std::string s = py_strip(v.as_string(), Value::none(), true, true, line);
      int64_t n;
      const int r = py_parse_int(s, base, &n);
      if (r == 1) return Value::integer(n);
      if (r < 0) out_of_range();
      if (!py_parse_float(s, &x) || std::isinf(x)) return def;
    }
    if (std::isnan(x)) return def;
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) out_of_range();
    return Value::integer(int64_t(x));
  }
  if (f == "round") {
    const int64_t prec = need_int(b.get(0, "precision", Value::integer(0)), "precision", line);
    const std::string method = str_arg(1, "method", "common");
    b.done(2);
    if (!numeric(v)) fail(line, "round needs a number");
    if (integral(v) && method == "common" && prec >= 0) return Value::integer(int_of(v));  // round(int) is int
    if (integral(v) && method == "common" && prec > -19) {  // Python's round(int, -k): an int, half to even
      int64_t m = 1;
      for (int64_t k = 0; k < -prec; ++k) m *= 10;
      const int64_t x = int_of(v);
      int64_t q = x / m, r = x % m;
      if (r < 0) r += m, q -= 1;  // (floor division)
      if (r > m - r || (r == m - r && q % 2 != 0)) ++q;
      if (q > INT64_MAX / m || q < INT64_MIN / m) fail(line, "round: the result is out of range");
      return Value::integer(q * m);
    }
    const double x = float_of(v), p = std::pow(10.0, double(prec));
    if (method == "common" && prec >= 0) {
      // Python's round is correctly rounded on the double's exact value (2.675 is 2.67499...), half
      // to even: as printf rounds it.
      if (prec > 400 || !std::isfinite(x)) return Value::number(x);
      std::vector<char> buf(size_t(prec) + 330);  // (up to 309 digits before the point)
      std::snprintf(buf.data(), buf.size(), "%.*f", int(prec), x);
      return Value::number(std::strtod(buf.data(), nullptr));
    }
    if (method == "common") return Value::number(std::nearbyint(x * p) / p);  // Python's round: half to even
    if (method == "ceil") return Value::number(std::ceil(x * p) / p);
    if (method == "floor") return Value::number(std::floor(x * p) / p);
    fail(line, "method must be common, ceil or floor");
  }
  if (f == "replace") {
    const std::string from = need_str(b.required(0, "old"), "replace's old", line);
    const std::string to = need_str(b.required(1, "new"), "replace's new", line);
    const Value count = b.get(2, "count", Value::none());
    b.done(3);
    return Value::string(
        py_replace(to_str(v), from, to, count.is_none() ? -1 : need_int(count, "count", line), in, line));
  }
  if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr")
    return Value::list(select_items(in, v, a, f.size() > 6, f == "select" || f == "selectattr", line),
                       Value::ListKind::kIterator);
  if (f == "map") {
    List out;
    if (const Value attr = b.get(99, "attribute"); !attr.is_undefined()) {
      const Value def = b.get(99, "default");
      b.done(0);
      if (truthy(v))
        for (const Value& x : iterate(v, line)) {
          Value y = attribute_path(x, to_str(attr), line);
          out.push_back(y.is_undefined() && !def.is_undefined() ? def : y);
        }
      return Value::list(std::move(out), Value::ListKind::kIterator);
    }
    if (a.pos.empty()) fail(line, "map needs a filter name or attribute=");
    const std::string name = need_str(a.pos[0], "the filter name", line);
    if (!known_filter(name)) fail(line, "the filter '" + name + "' is not supported");
    Args fargs;
    fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
    fargs.kw = a.kw;
    if (truthy(v))
      for (const Value& x : iterate(v, line)) {
        Args copy = fargs;
        out.push_back(apply_filter(in, name, x, copy, line));
      }
    return Value::list(std::move(out), Value::ListKind::kIterator);
  }
  if (f == "attr") {
    const std::string name = need_str(b.required(0, "name"), "the attribute", line);
    b.done(1);
    if (v.is_undefined()) undefined_error(v, line);
    if (v.is_dict() && !v.is_namespace()) {  // Python's getattr: a dict's methods, never its keys
      Value m = dict_method(v, name);
      return m.is_undefined() ? Value::undefined("'dict object' has no attribute '" + name + "'") : m;
    }
    return get_attr(v, name, line);
  }
  if (f ==
      "tojson") {  // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    JsonStyle st;
    st.ensure_ascii = truthy(b.get(0, "ensure_ascii", Value::boolean(false)));
    const Value indent = b.get(1, "indent", Value::none());
    const Value seps = b.get(2, "separators", Value::none());
    st.sort_keys = truthy(b.get(3, "sort_keys", Value::boolean(false)));
    b.done(4);
    if (!indent.is_none()) {
      st.indent = true;
      if (indent.is_string()) st.indent_str = indent.as_string();
      else {
        const int64_t n = need_int(indent, "indent", line);
        if (n > 256) fail(line, "tojson's indent is over 256");
        st.indent_str = std::string(size_t(std::max<int64_t>(n, 0)), ' ');
      }
      if (st.indent_str.size() > 256) fail(line, "tojson's indent is over 256 characters");
      st.item_sep = ",";
    }
    if (!seps.is_none()) {
      if (!seps.is_list() || seps.items().size() != 2) fail(line, "separators must be a pair of strings");
      st.item_sep = need_str(seps.items()[0], "the item separator", line);
      st.key_sep = need_str(seps.items()[1], "the key separator", line);
      if (st.item_sep.size() + st.key_sep.size() > 256) fail(line, "tojson's separators are over 256 characters");
    }
    std::string out;
    try {
      json_write(v, st, 0, &out);
    } catch (Error& e) {
      fail(line, e.message);
    }
    return make_str(std::move(out), in, line);
  }
  if (f == "indent") {
    const Value width = b.get(0, "width", Value::integer(4));
    const bool first = truthy(b.get(1, "first", Value::boolean(false)));
    const bool blank = truthy(b.get(2, "blank", Value::boolean(false)));
    b.done(3);
    const int64_t n = width.is_string() ? 0 : std::max<int64_t>(need_int(width, "width", line), 0);
    in.check_size(uint64_t(n), line);  // (Python's ' ' * width, as long as it asks)
    const std::string ind = width.is_string() ? width.as_string() : std::string(size_t(n), ' ');
    const std::vector<std::string> lines = splitlines(to_str(v) + "\n");
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n";
      if (i && (blank || !lines[i].empty())) out += ind;
      out += lines[i];
      in.check_size(out.size(), line);
    }
    return Value::string(first ? ind + out : out);
  }
  if (jinja_only_filter(f))
    fail(line, "the filter '" + f + "' is Jinja's, but kiln's Jinja does not implement it (transformers renders it)");
  fail(line, "no filter named '" + f + "' (neither transformers' Jinja environment nor kiln has it)");
}

bool apply_test(Interpreter& in, const std::string& t, const Value& v, Args& a, int line) {
  Binder b(a, t, line);
  auto other = [&]() {
    const Value o = b.required(0, "other");
    b.done(1);
    return o;
  };
  if (t == "defined") return b.done(0), !v.is_undefined();
  if (t == "undefined") return b.done(0), v.is_undefined();
  if (t == "none") return b.done(0), v.is_none();
  if (t == "boolean") return b.done(0), v.type() == Type::kBool;
  if (t == "true") return b.done(0), v.type() == Type::kBool && v.as_bool();
  if (t == "false") return b.done(0), v.type() == Type::kBool && !v.as_bool();
  if (t == "integer") return b.done(0), v.type() == Type::kInt;
  if (t == "float") return b.done(0), v.type() == Type::kFloat;
  if (t == "number") return b.done(0), numeric(v);
  if (t == "string") return b.done(0), v.is_string();
  if (t == "mapping") return b.done(0), v.is_dict() && !v.is_namespace();
  if (t == "iterable")
    return b.done(0), v.is_list() || v.is_string() || (v.is_dict() && !v.is_namespace()) || v.is_undefined();
  if (t == "sequence")  // (Undefined has __len__ and __getitem__)
    return b.done(0), (v.is_list() && v.list_kind() != Value::ListKind::kIterator) || v.is_string() ||
                          (v.is_dict() && !v.is_namespace()) || v.is_undefined();
  if (t == "callable") return b.done(0), v.type() == Type::kFunction || v.is_undefined();  // Undefined has __call__
  if (t == "escaped") return b.done(0), v.is_markup();
  if (t == "lower" || t == "upper") {
    b.done(0);
    if (!v.is_string()) return false;
    bool cased = false;
    for (unsigned char c : v.as_string()) {
      if (c >= 0x80) fail(line, "the " + t + " test of non-ASCII text is not supported");
      if (std::isalpha(c)) cased = true;
      if (t == "lower" ? std::isupper(c) : std::islower(c)) return false;
    }
    return cased;
  }
  if (t == "odd" || t == "even") {
    b.done(0);
    const int64_t i = need_int(v, "the value", line);
    return (((i % 2) + 2) % 2 == 1) == (t == "odd");
  }
  if (t == "divisibleby") {
    const Value n = other();
    if (!integral(v) || !integral(n)) fail(line, "divisibleby needs integers");
    if (int_of(n) == 0) fail(line, "integer division or modulo by zero");
    if (int_of(n) == -1) return true;  // (INT64_MIN % -1 would trap)
    return int_of(v) % int_of(n) == 0;
  }
  if (t == "eq" || t == "equalto" || t == "==") return equals(v, other());
  if (t == "ne" || t == "!=") return !equals(v, other());
  if (t == "lt" || t == "lessthan" || t == "<") return order(v, other(), "<", line) < 0;
  if (t == "le" || t == "<=") return order(v, other(), "<=", line) <= 0;
  if (t == "gt" || t == "greaterthan" || t == ">") return order(v, other(), ">", line) > 0;
  if (t == "ge" || t == ">=") return order(v, other(), ">=", line) >= 0;
  if (t == "in") return contains(b.required(0, "seq"), v, line) && (b.done(1), true);
  if (t == "sameas") {
    const Value o = other();
    if (v.type() != o.type()) return false;
    switch (v.type()) {
      case Type::kNone:
      case Type::kUndefined:
        return true;
      case Type::kBool:
        return v.as_bool() == o.as_bool();
      case Type::kList:
        return &v.items() == &o.items();
      case Type::kDict:
        return &v.entries() == &o.entries();
      case Type::kFunction:
        return &v.function() == &o.function();
      default:
        return equals(v, o);
    }
  }
  if (t == "filter" || t == "test") {
    b.done(0);
    return v.is_string() && (t == "filter" ? known_filter(v.as_string()) : known_test(v.as_string()));
  }
  (void)in;
  fail(line, "no test named '" + t + "' (neither transformers' Jinja environment nor kiln has it)");
}

void add_globals(std::unordered_map<std::string, Value>* g) {
  (*g)["range"] = bound("range", [](Interpreter&, Args& a) {
    if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) fail(0, "range() takes 1 to 3 integer arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) stop = need_int(a.pos[0], "range's stop", 0);
    else start = need_int(a.pos[0], "range's start", 0), stop = need_int(a.pos[1], "range's stop", 0);
    if (a.pos.size() == 3) step = need_int(a.pos[2], "range's step", 0);
    if (step == 0) fail(0, "range() arg 3 must not be zero");
    if (step == INT64_MIN) fail(0, "range() step out of range");
    const long double n = step > 0 ? std::ceil((long double)(stop - (long double)start) / step)
                                   : std::ceil(((long double)start - stop) / (long double)(-step));
    if (n > 100000) fail(0, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    List out;
    for (int64_t i = 0, v = start; i < int64_t(n); ++i) {  // every value lies in [start, stop): no overflow
      out.push_back(Value::integer(v));
      if (i + 1 < int64_t(n)) v += step;
    }
    std::string r = "range(" + std::to_string(start) + ", " + std::to_string(stop);
    if (step != 1) r += ", " + std::to_string(step);
    return Value::list(std::move(out), Value::ListKind::kRange, r + ")");
  });
  auto dict_from = [](Args& a, bool ns) {
    Value d = ns ? Value::namespace_() : Value::dict();
    if (a.pos.size() > 1) fail(0, std::string(ns ? "namespace" : "dict") + "() takes at most one positional argument");
    if (!a.pos.empty()) {
      const Value& src = a.pos[0];
      if (src.is_dict() && !src.is_namespace()) {
        for (const auto& [k, v] : src.entries().items) d.set(k, v);
      } else if (src.is_list()) {
        for (const Value& p : src.items()) {
          if (!p.is_list() || p.items().size() != 2 || hash_key(p.items()[0]).empty())
            fail(0, "dict() needs pairs of a hashable key and a value");
          d.set(p.items()[0], p.items()[1]);
        }
      } else {
        fail(0, std::string("cannot make a dict from a ") + type_name(src));
      }
    }
    for (const auto& [k, v] : a.kw) d.set(k, v);
    if (ns)
      for (const auto& [k, v] : d.entries().items)
        if (k.is_string() && !k.as_string().empty() && k.as_string()[0] == '_')
          fail(0, "namespace attributes may not start with '_'");
    return d;
  };
  (*g)["namespace"] = bound("namespace", [dict_from](Interpreter&, Args& a) { return dict_from(a, true); });
  (*g)["dict"] = bound("dict", [dict_from](Interpreter&, Args& a) { return dict_from(a, false); });
  (*g)["raise_exception"] = bound("raise_exception", [](Interpreter&, Args& a) -> Value {
    fail(0, "the template raised an error: " + (a.pos.empty() ? std::string() : to_str(a.pos[0])));
  });
  (*g)["strftime_now"] = bound("strftime_now", [](Interpreter& in, Args& a) {
    Binder b(a, "strftime_now", 0);
    const std::string fmt = need_str(b.required(0, "format"), "the format", 0);
    b.done(1);
    if (fmt.size() > 256) fail(0, "strftime_now's format is too long");
    std::tm tm{};
    if (in.now()) {
      tm = *in.now();
    } else {
      const std::time_t t = std::time(nullptr);
      localtime_r(&t, &tm);
    }
    char buf[1024];
    const size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    if (n == 0 && !fmt.empty()) fail(0, "strftime_now's output is empty or too long");
    return Value::string(std::string(buf, n));
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Entry points

Result<Template> Template::parse(std::string_view source) {
  try {
    Template t;
    Parser p(Lexer(source).run());
    t.root_ = p.document();
    t.unknown_ = p.unknown_;
    return t;
  } catch (const Error& e) {
    return Status(StatusCode::kUnsupported, "chat template: " + e.message);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "chat template: out of memory");
  }
}

Result<std::string> Template::render(const Value& context, const Limits& limits, const std::tm* now) const {
  if (!root_) return invalid_argument("chat template: not parsed");
  try {
    Interpreter in(limits, now);
    return in.run(*root_, context);
  } catch (const Error& e) {
    return invalid_argument("chat template: " + e.message);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "chat template: out of memory");
  }
}

Value chat_context(const Value& messages, bool add_generation_prompt, const Value& extra) {
  Value msgs = messages;
  if (messages.is_list()) {
    List out;
    for (const Value& raw : messages.items()) {
      Value m = raw;  // apply_chat_template drops the keys whose value is None
      if (raw.is_dict() && std::any_of(raw.entries().items.begin(), raw.entries().items.end(),
                                       [](const auto& e) { return e.second.is_none(); })) {
        m = Value::dict();
        for (const auto& [k, v] : raw.entries().items)
          if (!v.is_none()) m.set(k, v);
      }
      const Value* reasoning = nullptr;
      for (const char* k : {"reasoning_content", "thinking", "reasoning"})
        if (m.is_dict() && !reasoning && m.find(k) && !m.find(k)->is_none()) reasoning = m.find(k);
      if (!reasoning) {
        out.push_back(m);
        continue;
      }
      Value a = Value::dict();  // {"thinking": r, **m, "reasoning_content": r}
      a.set("thinking", *reasoning);
      for (const auto& [k, v] : m.entries().items) a.set(k, v);
      a.set("reasoning_content", *reasoning);
      out.push_back(a);
    }
    msgs = Value::list(std::move(out));
  }
  Value ctx = Value::dict();
  ctx.set("messages", msgs);
  ctx.set("tools", Value::none());
  ctx.set("documents", Value::none());
  ctx.set("add_generation_prompt", Value::boolean(add_generation_prompt));
  if (extra.is_dict())
    for (const auto& [k, v] : extra.entries().items) ctx.set(k, v);
  return ctx;
}

Result<Value> parse_json(std::string_view text) {
  try {
    return JsonReader(text).document();
  } catch (const Error& e) {
    return invalid_argument(e.message);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory");
  }
}

Result<std::string> to_json(const Value& v) {
  try {
    std::string out;
    json_write(v, JsonStyle(), 0, &out);
    return out;
  } catch (const Error& e) {
    return invalid_argument(e.message);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory");
  }
}

}  // namespace kiln::jinja
