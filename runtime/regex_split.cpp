#include "runtime/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

namespace kiln {

namespace {

// Unicode White_Space, which Oniguruma's \s (HF tokenizers' engine) and kiln's own scanners
// match; PCRE2's \s would also match U+180E.
constexpr const char* kWhiteSpace =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// A pattern as HF writes it (Oniguruma syntax, Ruby options) in PCRE2's, compiled with
// PCRE2_MULTILINE and LF newlines so that ^ and $ are line anchors as in Oniguruma: \s and \S
// spelled as White_Space classes, \v as U+000B alone; what the two engines read differently
// refused: Oniguruma's \h is a hex digit, its \w and \b take marks and all connector
// punctuation, [a[b]] and && are set operations, (?m) is its dot-all (PCRE2's multiline), and
// under (?i) it also matches multi-character case foldings (ß for "ss"), which PCRE2 does not.
Result<std::string> to_pcre2(const std::string& p) {
  auto refuse = [&](const std::string& what) -> Result<std::string> {
    return invalid_argument(what + ", which Oniguruma (HF tokenizers) and PCRE2 read differently");
  };
  std::string out, letters;  // letters: the pattern's literal characters, lowercased (for (?i))
  bool in_class = false, caseless = false;
  size_t class_body = 0, class_out = 0;  // where the current class's members start, in p and in out
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size()) return invalid_argument("the pattern ends in a backslash");
      const char e = p[++i];
      letters += ' ';
      if (e == 's') {
        if (in_class) {  // spelled out, it must not become one end of a range
          if (out.back() == '-' && out.size() > class_out + 1) return refuse("a range ending in \\s");
          if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') return refuse("a range starting at \\s");
          out += kWhiteSpace;
        } else {
          out += "[" + std::string(kWhiteSpace) + "]";
        }
      } else if (e == 'S') {
        if (in_class) return refuse("\\S inside a character class");
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else if (e == 'v') {
        out += "\\x0B";
      } else if (e == 'h' || e == 'H' || e == 'w' || e == 'W' || e == 'b' || e == 'B' || e == 'Q' || e == 'V') {
        return refuse(std::string("the escape \\") + e);
      } else if ((e == 'p' || e == 'P' || e == 'x') && i + 1 < p.size() && p[i + 1] == '{') {
        const size_t end = p.find('}', i + 1);  // \p{Name}, \x{HHHH}: copied whole
        if (end == std::string::npos) return invalid_argument("an unterminated \\" + std::string(1, e) + "{");
        out += c;
        out.append(p, i, end + 1 - i);
        i = end;
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '(' && i + 2 < p.size() && p[i + 1] == '?' &&
        (std::isalpha(uint8_t(p[i + 2])) || p[i + 2] == '-')) {
      size_t k = i + 2;  // an option group: (?flags) or (?flags:...)
      while (k < p.size() && (std::isalpha(uint8_t(p[k])) || p[k] == '-')) ++k;
      if (k < p.size() && (p[k] == ':' || p[k] == ')')) {
        for (size_t f = i + 2; f < k; ++f) {
          if (p[f] == 'i') caseless = true;
          else if (p[f] != '-') return refuse(std::string("the inline option (?") + p[f] + ")");
        }
      }
    }
    letters += char(std::tolower(uint8_t(c)));
    if (in_class) {
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // a POSIX class, [:alpha:]
        const size_t end = p.find(":]", i + 2);
        if (end == std::string::npos) return invalid_argument("an unterminated [: in a character class");
        out.append(p, i, end + 2 - i);
        i = end + 1;
        continue;
      }
      if (c == '[') return refuse("a character class inside a character class");
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') return refuse("&& in a character class");
      if (c == ']' && i > class_body) in_class = false;
      out += c;
      continue;
    }
    out += c;
    if (c == '[') {
      in_class = true;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      class_body = i + 1;  // a ']' right here is a member
      class_out = out.size();
    }
  }
  if (caseless) {
    for (const char* fold : {"ss", "st", "ff", "fi", "fl"})
      if (letters.find(fold) != std::string::npos)
        return refuse(std::string("(?i) with \"") + fold + "\", which some characters fold to");
    for (char ch : letters)
      if (uint8_t(ch) >= 0x80) return refuse("(?i) with non-ASCII characters");
  }
  return out;
}

// Per thread: the match data (the whole match only), the limits and the JIT stack.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  MatchState() {
    if (ctx) {
      pcre2_set_match_limit(ctx, 50'000'000);
      pcre2_set_depth_limit(ctx, 1'000'000);
      pcre2_set_heap_limit(ctx, 256 * 1024);  // KiB
      if (jit_stack) pcre2_jit_stack_assign(ctx, nullptr, jit_stack);
    }
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(jit_stack);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

}  // namespace

struct RegexSplitter::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

RegexSplitter::~RegexSplitter() = default;

Result<std::unique_ptr<RegexSplitter>> RegexSplitter::create(const std::vector<std::string>& patterns) {
  if (patterns.empty() || patterns.size() > kMaxPatterns)
    return invalid_argument("a regex split needs 1 to " + std::to_string(kMaxPatterns) + " patterns, not " +
                            std::to_string(patterns.size()));
  std::unique_ptr<RegexSplitter> s(new RegexSplitter());
  pcre2_compile_context* cctx = pcre2_compile_context_create(nullptr);
  if (!cctx) return limit_exceeded("PCRE2 could not allocate a compile context");
  pcre2_set_max_pattern_length(cctx, 4 * kMaxPatternBytes);  // after \s is spelled out
  pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);                 // Oniguruma's: ^ $ and . know \n alone
  for (size_t k = 0; k < patterns.size(); ++k) {
    const std::string where = "split pattern " + std::to_string(k);
    if (patterns[k].empty() || patterns[k].size() > kMaxPatternBytes) {
      pcre2_compile_context_free(cctx);
      return invalid_argument(where + " is empty or longer than " + std::to_string(kMaxPatternBytes) + " bytes");
    }
    auto translated = to_pcre2(patterns[k]);
    if (!translated.is_ok()) {
      pcre2_compile_context_free(cctx);
      return invalid_argument(where + ": " + translated.status().message());
    }
    const std::string& re = translated.value();
    int err = 0;
    PCRE2_SIZE off = 0;
    auto code = std::make_unique<Code>();
    code->code = pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C | PCRE2_MULTILINE, &err, &off, cctx);
    if (!code->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      pcre2_compile_context_free(cctx);
      return invalid_argument(where + " does not compile (PCRE2: " + reinterpret_cast<const char*>(msg) +
                              " at offset " + std::to_string(off) + ")");
    }
    code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
    s->codes_.push_back(std::move(code));
  }
  pcre2_compile_context_free(cctx);
  return s;
}

void RegexSplitter::split_one(const Code& code, std::string_view piece, std::vector<std::string_view>* out) const {
  thread_local MatchState st;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  // HF's Split: the matches of find_iter (Oniguruma's, which skips an empty match right where the
  // previous match ended) and the gaps between them; an empty match yields no piece but still
  // ends the gap before it.
  size_t gap = 0, from = 0;  // the unmatched text starts at gap; the next search at from
  size_t last_end = 0;
  bool any = false;  // whether a match has been taken (last_end is its end)
  while (from <= piece.size() && st.data && st.ctx) {
    int rc = pcre2_match(code.code, subject, piece.size(), from, 0, st.data, st.ctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // too deep for the JIT stack: the interpreter, under its limits
      rc = pcre2_match(code.code, subject, piece.size(), from, PCRE2_NO_JIT, st.data, st.ctx);
    if (rc < 0) break;  // no further match, or a limit hit: the rest stays one piece
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    const size_t b = ov[0], e = ov[1];
    if (b > e || e > piece.size() || b < from) break;  // (\K tricks: never trust them)
    if (e == b) {
      if (!(any && e == last_end)) {
        if (b > gap) out->push_back(piece.substr(gap, b - gap));
        gap = b;
        any = true;
        last_end = e;
      }
      if (b >= piece.size()) break;
      from = b + 1;  // search again one character on
      while (from < piece.size() && (uint8_t(piece[from]) & 0xC0) == 0x80) ++from;
      continue;
    }
    if (b > gap) out->push_back(piece.substr(gap, b - gap));
    out->push_back(piece.substr(b, e - b));
    gap = from = last_end = e;
    any = true;
  }
  if (gap < piece.size()) out->push_back(piece.substr(gap));
}

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>* out) const {
  std::vector<std::string_view> cur = {text}, next;
  for (const auto& code : codes_) {
    next.clear();
    for (std::string_view p : cur) split_one(*code, p, &next);
    cur.swap(next);
  }
  out->insert(out->end(), cur.begin(), cur.end());
}

}  // namespace kiln
