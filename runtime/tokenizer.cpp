// See tokenizer.h. Sections: UTF-8 and Unicode classes; the pre-tokenizer scanners (each a
// transcription of one regex's leftmost-first backtracking semantics); BPE; encode; decode.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <queue>

namespace kiln {

namespace {

struct CodeRange {
  uint32_t lo, hi;
};
struct CombiningClass {
  uint32_t cp, ccc;
};
struct Decomposition {
  uint32_t cp, a, b;  // b = 0: a singleton
};
struct Composition {
  uint32_t a, b, cp;
};
struct LowerMapping {
  uint32_t cp, l[3];  // unused slots are 0
};
#include "runtime/unicode_tables.inc"

template <size_t N>
bool in(const CodeRange (&t)[N], uint32_t cp) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (cp > t[mid].hi) lo = mid + 1;
    else if (cp < t[mid].lo) hi = mid;
    else return true;
  }
  return false;
}

// A SentencePiece byte-fallback piece is exactly "<0xNN>" with two hex digits; anything else
// spelled like it (from a hostile or odd vocab) is an ordinary piece.
bool parse_byte_piece(std::string_view s, char* out) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return false;
  const int hi = hex(s[3]), lo = hex(s[4]);
  if (hi < 0 || lo < 0) return false;
  if (out) *out = char(hi * 16 + lo);
  return true;
}

constexpr uint32_t kInvalid = 0xFFFFFFFFu;  // a byte that starts no valid UTF-8 sequence

// Decodes one code point at s[i]; *len gets its byte length (1 for an invalid byte).
uint32_t next_cp(std::string_view s, size_t i, size_t* len) {
  const uint8_t c = uint8_t(s[i]);
  *len = 1;
  if (c < 0x80) return c;
  int n = 0;
  uint32_t cp = 0, min = 0;
  if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
  else return kInvalid;
  for (int k = 1; k <= n; ++k) {
    if (i + size_t(k) >= s.size()) return kInvalid;
    const uint8_t d = uint8_t(s[i + size_t(k)]);
    if ((d & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  *len = size_t(n) + 1;
  return cp;
}

bool is_letter(uint32_t c) { return c != kInvalid && in(kLetter, c); }
bool is_mark(uint32_t c) { return c != kInvalid && in(kMark, c); }
bool is_punct_or_symbol(uint32_t c) { return c != kInvalid && (in(kPunct, c) || in(kSymbol, c)); }
bool is_number(uint32_t c) { return c != kInvalid && in(kNumber, c); }
bool is_space(uint32_t c) { return c != kInvalid && in(kWhiteSpace, c); }
bool is_newline(uint32_t c) { return c == '\r' || c == '\n'; }

// A decoded view of the text: code points and their byte offsets.
struct Cps {
  std::vector<uint32_t> cp;
  std::vector<size_t> off;  // off[i] = byte offset of cp[i]; off[n] = size
  explicit Cps(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
      size_t len;
      cp.push_back(next_cp(s, i, &len));
      off.push_back(i);
      i += len;
    }
    off.push_back(s.size());
  }
  size_t n() const { return cp.size(); }
};

// Length (in code points) of a match of `(?i:'s|'t|'re|'ve|'m|'ll|'d)` (or the case-sensitive
// GPT-2 form) at i, or 0.
size_t contraction(const Cps& t, size_t i, bool icase) {
  if (t.cp[i] != '\'' || i + 1 >= t.n()) return 0;
  auto is = [&](size_t k, char ch) {
    if (k >= t.n()) return false;
    uint32_t c = t.cp[k];
    if (icase) {
      if (c >= 'A' && c <= 'Z') c += 32;
      if (c == 0x17F) c = 's';  // LATIN SMALL LETTER LONG S folds to s
    }
    return c == uint32_t(ch);
  };
  if (is(i + 1, 's') || is(i + 1, 't')) return 2;
  if ((is(i + 1, 'r') || is(i + 1, 'v')) && is(i + 2, 'e')) return 3;
  if (is(i + 1, 'm')) return 2;
  if (is(i + 1, 'l') && is(i + 2, 'l')) return 3;
  if (is(i + 1, 'd')) return 2;
  return 0;
}

// Whitespace alternatives shared by both patterns, at i (t.cp[i] is whitespace):
// `\s*[\r\n]+` (LLaMA-3 only), then `\s+(?!\S)`, then `\s+`.
size_t whitespace(const Cps& t, size_t i, bool newline_rule) {
  size_t end = i;
  while (end < t.n() && is_space(t.cp[end])) ++end;
  if (newline_rule) {
    for (size_t j = end; j > i; --j)
      if (is_newline(t.cp[j - 1])) return j - i;
  }
  if (end == t.n() || end - i == 1) return end - i;  // \s+(?!\S) at the end, or \s+ for a single char
  return end - i - 1;                                  // leave the last space to prefix the next word
}

// LLaMA-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t llama3_match(const Cps& t, size_t i) {
  if (size_t c = contraction(t, i, true)) return c;
  const uint32_t c0 = t.cp[i];
  const bool other0 = !is_newline(c0) && !is_letter(c0) && !is_number(c0);
  if (is_letter(c0) || (other0 && i + 1 < t.n() && is_letter(t.cp[i + 1]))) {
    size_t j = is_letter(c0) ? i : i + 1;
    while (j < t.n() && is_letter(t.cp[j])) ++j;
    return j - i;
  }
  if (is_number(c0)) {
    size_t j = i;
    while (j < t.n() && j - i < 3 && is_number(t.cp[j])) ++j;
    return j - i;
  }
  auto symbol = [&](size_t k) { return k < t.n() && !is_space(t.cp[k]) && !is_letter(t.cp[k]) && !is_number(t.cp[k]); };
  if (symbol(i) || (c0 == ' ' && symbol(i + 1))) {
    size_t j = c0 == ' ' ? i + 1 : i;
    while (symbol(j)) ++j;
    while (j < t.n() && is_newline(t.cp[j])) ++j;
    return j - i;
  }
  return whitespace(t, i, true);
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t gpt2_match(const Cps& t, size_t i) {
  if (size_t c = contraction(t, i, false)) return c;
  const size_t s = t.cp[i] == ' ' && i + 1 < t.n() ? i + 1 : i;
  auto run = [&](auto pred) {
    size_t j = s;
    while (j < t.n() && pred(t.cp[j])) ++j;
    return j - i;
  };
  if (is_letter(t.cp[s])) return run(is_letter);
  if (is_number(t.cp[s])) return run(is_number);
  auto symbol = [](uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); };
  if (symbol(t.cp[s])) return run(symbol);
  return whitespace(t, i, false);
}

// --- DeepSeek-V3: three Splits applied in turn, each to the pieces of the previous one.
// These matchers return 0 where their regex does not match (the text there stays a gap).

size_t ds_digits(const Cps& t, size_t i) {  // \p{N}{1,3}
  size_t j = i;
  while (j < t.n() && j - i < 3 && is_number(t.cp[j])) ++j;
  return j - i;
}

bool ds_cjk(uint32_t c) { return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x309F) || (c >= 0x30A0 && c <= 0x30FF); }

size_t ds_cjk_run(const Cps& t, size_t i) {  // [一-龥\u3040-ゟ゠-ヿ]+
  size_t j = i;
  while (j < t.n() && ds_cjk(t.cp[j])) ++j;
  return j - i;
}

// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t ds_main(const Cps& t, size_t i) {
  auto ascii_letter = [](uint32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  auto ascii_punct = [](uint32_t c) { return c < 0x80 && c > 0x20 && c != 0x7F && !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')); };
  auto lm = [](uint32_t c) { return is_letter(c) || is_mark(c); };
  const uint32_t c0 = t.cp[i];
  if (ascii_punct(c0) && i + 1 < t.n() && ascii_letter(t.cp[i + 1])) {
    size_t j = i + 1;
    while (j < t.n() && ascii_letter(t.cp[j])) ++j;
    return j - i;
  }
  const bool opt = !is_newline(c0) && !is_letter(c0) && !is_punct_or_symbol(c0);
  if (opt && i + 1 < t.n() && lm(t.cp[i + 1])) {
    size_t j = i + 1;
    while (j < t.n() && lm(t.cp[j])) ++j;
    return j - i;
  }
  if (lm(c0)) {
    size_t j = i;
    while (j < t.n() && lm(t.cp[j])) ++j;
    return j - i;
  }
  if (is_punct_or_symbol(c0) || (c0 == ' ' && i + 1 < t.n() && is_punct_or_symbol(t.cp[i + 1]))) {
    size_t j = c0 == ' ' ? i + 1 : i;
    while (j < t.n() && is_punct_or_symbol(t.cp[j])) ++j;
    while (j < t.n() && is_newline(t.cp[j])) ++j;
    return j - i;
  }
  if (is_space(c0)) return whitespace(t, i, true);
  return 0;
}

// Splits `text` with an isolating matcher: matches and the gaps between them, in order.
template <typename Match>
void split_isolated(std::string_view text, Match match, std::vector<std::string_view>* out) {
  const Cps t(text);
  size_t gap = 0;
  for (size_t i = 0; i < t.n();) {
    const size_t len = match(t, i);
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > gap) out->push_back(text.substr(t.off[gap], t.off[i] - t.off[gap]));
    out->push_back(text.substr(t.off[i], t.off[i + len] - t.off[i]));
    i += len;
    gap = i;
  }
  if (gap < t.n()) out->push_back(text.substr(t.off[gap]));
}

// --- CLIP's normalizer (NFC, \s+ → " ", per-character lowercase) and split pattern.

template <typename T, size_t N, typename Key>
const T* find_sorted(const T (&t)[N], Key key, Key (*key_of)(const T&)) {
  const T* it = std::lower_bound(t, t + N, key, [&](const T& e, Key k) { return key_of(e) < k; });
  return it != t + N && key_of(*it) == key ? it : nullptr;
}

uint32_t ccc_of(uint32_t c) {
  const CombiningClass* e = find_sorted(kCombiningClass, c, +[](const CombiningClass& x) { return x.cp; });
  return e ? e->ccc : 0;
}

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(uint32_t c, std::vector<uint32_t>* out) {
  if (c >= kSBase && c < kSBase + kSCount) {  // Hangul syllable
    const uint32_t s = c - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out->push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* d = find_sorted(kDecomposition, c, +[](const Decomposition& x) { return x.cp; });
  if (!d) {
    out->push_back(c);
    return;
  }
  decompose(d->a, out);
  if (d->b) decompose(d->b, out);
}

uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Composition* e = std::lower_bound(std::begin(kComposition), std::end(kComposition), std::make_pair(a, b),
                                          [](const Composition& x, const std::pair<uint32_t, uint32_t>& k) {
                                            return std::make_pair(x.a, x.b) < k;
                                          });
  return e != std::end(kComposition) && e->a == a && e->b == b ? e->cp : 0;
}

// Unicode NFC (UAX #15): full canonical decomposition, canonical ordering, canonical composition.
std::vector<uint32_t> nfc(const std::vector<uint32_t>& in) {
  std::vector<uint32_t> d;
  for (uint32_t c : in) decompose(c, &d);
  for (size_t i = 0; i < d.size();) {  // stable-sort each run of non-starters by combining class
    size_t j = i;
    while (j < d.size() && ccc_of(d[j]) != 0) ++j;
    if (j > i + 1) std::stable_sort(d.begin() + long(i), d.begin() + long(j), [](uint32_t x, uint32_t y) { return ccc_of(x) < ccc_of(y); });
    i = j == i ? i + 1 : j;
  }
  std::vector<uint32_t> out;
  int64_t starter = -1;
  uint32_t last_cc = 0;
  for (uint32_t c : d) {
    const uint32_t cc = ccc_of(c);
    if (starter >= 0) {
      const bool adjacent = int64_t(out.size()) - 1 == starter;
      if (adjacent || (last_cc != 0 && last_cc < cc)) {
        if (const uint32_t k = compose(out[size_t(starter)], c)) {
          out[size_t(starter)] = k;
          continue;
        }
      }
    }
    if (cc == 0) starter = int64_t(out.size());
    last_cc = cc;
    out.push_back(c);
  }
  return out;
}

void append_utf8(uint32_t c, std::string* s) {
  if (c < 0x80) {
    *s += char(c);
  } else if (c < 0x800) {
    *s += char(0xC0 | (c >> 6));
    *s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    *s += char(0xE0 | (c >> 12));
    *s += char(0x80 | ((c >> 6) & 0x3F));
    *s += char(0x80 | (c & 0x3F));
  } else {
    *s += char(0xF0 | (c >> 18));
    *s += char(0x80 | ((c >> 12) & 0x3F));
    *s += char(0x80 | ((c >> 6) & 0x3F));
    *s += char(0x80 | (c & 0x3F));
  }
}

// CLIP's normalizer, as HF tokenizers runs it: NFC, then every run of White_Space becomes one
// space, then each character is lowercased on its own (no final-sigma rule). Invalid UTF-8
// (which a Python caller cannot pass) becomes U+FFFD first.
std::string clip_normalize(std::string_view text) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const uint32_t c = next_cp(text, i, &len);
    cps.push_back(c == kInvalid ? 0xFFFD : c);
    i += len;
  }
  std::string out;
  bool in_space = false;
  for (uint32_t c : nfc(cps)) {
    if (in(kWhiteSpace, c)) {
      if (!in_space) out += ' ';
      in_space = true;
      continue;
    }
    in_space = false;
    const LowerMapping* m = find_sorted(kLowercase, c, +[](const LowerMapping& x) { return x.cp; });
    if (!m) {
      append_utf8(c, &out);
      continue;
    }
    for (uint32_t l : m->l)
      if (l) append_utf8(l, &out);
  }
  return out;
}

// CLIP: <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// Returns the match length at i; 0 at whitespace (which the Split removes).
size_t clip_match(const Cps& t, size_t i) {
  for (const char* sp : {"<|startoftext|>", "<|endoftext|>"}) {
    const size_t n = std::char_traits<char>::length(sp);
    bool ok = i + n <= t.n();
    for (size_t k = 0; ok && k < n; ++k) ok = t.cp[i + k] == uint32_t(uint8_t(sp[k]));
    if (ok) return n;
  }
  if (size_t c = contraction(t, i, false)) return c;
  const uint32_t c0 = t.cp[i];
  if (is_letter(c0)) {
    size_t j = i;
    while (j < t.n() && is_letter(t.cp[j])) ++j;
    return j - i;
  }
  if (is_number(c0)) return 1;
  auto other = [](uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); };
  size_t j = i;
  while (j < t.n() && other(t.cp[j])) ++j;
  return j - i;
}

// GPT-2's byte ↔ unicode alphabet for byte-level BPE.
struct ByteAlphabet {
  std::string enc[256];                     // byte → UTF-8 of its stand-in code point
  std::unordered_map<uint32_t, uint8_t> dec;  // stand-in code point → byte
  ByteAlphabet() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + n++);
      enc[b] = cp < 0x80 ? std::string(1, char(cp))
                         : std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
      dec[cp] = uint8_t(b);
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;  // immutable after construction (thread-safe static init)
  return a;
}

const std::string kSpace = "\xE2\x96\x81";  // U+2581 "▁"

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, from.size(), from) == 0) {
      out += to;
      i += from.size();
    } else {
      out += s[i++];
    }
  }
  return out;
}

// Rust's String::from_utf8_lossy: each maximal subpart of an ill-formed sequence (the longest
// prefix of some well-formed sequence, or one byte) becomes one U+FFFD (Unicode §3.9).
std::string lossy_utf8(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len;
    if (next_cp(s, i, &len) != kInvalid) {
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    const uint8_t c = uint8_t(s[i]);
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    size_t j = i + 1;
    for (size_t k = 0; k < need && j < s.size(); ++k, ++j) {
      const uint8_t d = uint8_t(s[j]);
      if (k == 0 ? (d < lo || d > hi) : (d & 0xC0) != 0x80) break;
    }
    out += "\xEF\xBF\xBD";
    i = j;
  }
  return out;
}

}  // namespace

size_t utf8_complete_prefix(std::string_view s) {
  // Walk back over at most 3 continuation bytes to the last lead byte; if its sequence is
  // longer than what remains, it is incomplete.
  size_t i = s.size();
  size_t k = 0;
  while (i > 0 && k < 3 && (uint8_t(s[i - 1]) & 0xC0) == 0x80) --i, ++k;
  if (i == 0) return s.size();
  const uint8_t c = uint8_t(s[i - 1]);
  const size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
  return (need > k + 1) ? i - 1 : s.size();
}

// ---------------------------------------------------------------------------------------

Result<std::unique_ptr<Tokenizer>> Tokenizer::create(TokenizerData d) {
  const int64_t n = int64_t(d.vocab.size());
  auto bad = [](const std::string& m) { return Status(StatusCode::kCorruptPlan, "tokenizer: " + m); };
  if (n <= 0 || n > (int64_t(1) << 24)) return bad("vocabulary size out of range");
  auto ok_id = [&](int32_t id) { return id >= 0 && id < n; };
  for (const auto& m : d.merges)
    if (!ok_id(m.first) || !ok_id(m.second)) return bad("a merge names a token out of range");
  for (const auto& a : d.added)
    if (!ok_id(a.id) || a.content.empty()) return bad("an added token is out of range or empty");
  for (int32_t id : {d.bos_id, d.eos_id, d.unk_id, d.pad_id})
    if (id != -1 && !ok_id(id)) return bad("bos/eos/unk/pad id out of range");
  if (d.kind == TokenizerData::Kind::kClipBpe && (d.bos_id < 0 || d.eos_id < 0 || d.pad_id < 0))
    return bad("a CLIP tokenizer needs bos, eos and pad ids");
  for (int32_t id : d.stop_ids)
    if (!ok_id(id)) return bad("a stop id is out of range");
  std::unique_ptr<Tokenizer> t(new Tokenizer(std::move(d)));
  const TokenizerData& td = t->d_;
  const ByteAlphabet& ab = byte_alphabet();
  t->ids_.reserve(td.vocab.size());
  t->bytes_.resize(td.vocab.size());
  t->special_.assign(td.vocab.size(), 0);
  for (size_t i = 0; i < td.vocab.size(); ++i) {
    const std::string& s = td.vocab[i];
    t->ids_.emplace(s, int32_t(i));
    std::string b;
    if (td.kind != TokenizerData::Kind::kSentencePieceBpe) {
      for (size_t k = 0; k < s.size();) {
        size_t len;
        const uint32_t cp = next_cp(s, k, &len);
        auto it = cp == kInvalid ? ab.dec.end() : ab.dec.find(cp);
        if (it != ab.dec.end()) b += char(it->second);
        else b.append(s, k, len);
        k += len;
      }
    } else if (char byte; parse_byte_piece(s, &byte)) {
      b = std::string(1, byte);
    } else {
      b = replace_all(s, kSpace, " ");
    }
    t->bytes_[i] = std::move(b);
  }
  for (size_t k = 0; k < td.added.size(); ++k) t->added_by_byte_[uint8_t(td.added[k].content[0])].push_back(uint32_t(k));
  for (const auto& a : td.added) {
    t->bytes_[size_t(a.id)] = a.content;
    t->special_[size_t(a.id)] = a.special;
    t->ids_[a.content] = a.id;
  }
  for (size_t r = 0; r < td.merges.size(); ++r) {
    const auto [a, b] = td.merges[r];
    auto it = t->ids_.find(td.vocab[size_t(a)] + td.vocab[size_t(b)]);
    if (it == t->ids_.end()) return bad("merge " + std::to_string(r) + " makes a token missing from the vocabulary");
    t->merge_.emplace((uint64_t(uint32_t(a)) << 32) | uint32_t(b), std::make_pair(int32_t(r), it->second));
  }
  for (int b = 0; b < 256; ++b) {
    std::string key;
    t->byte_eow_ids_[b] = -1;
    if (td.kind == TokenizerData::Kind::kClipBpe) {
      auto it = t->ids_.find(ab.enc[b] + "</w>");
      t->byte_eow_ids_[b] = it == t->ids_.end() ? td.unk_id : it->second;
    }
    if (td.kind != TokenizerData::Kind::kSentencePieceBpe) {
      key = ab.enc[b];
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      key = buf;
    }
    auto it = t->ids_.find(key);
    t->byte_ids_[b] = it == t->ids_.end() ? -1 : it->second;
    if (td.kind != TokenizerData::Kind::kSentencePieceBpe && t->byte_ids_[b] < 0)
      return bad("byte-level vocabulary lacks the token for byte " + std::to_string(b));
    if (td.kind == TokenizerData::Kind::kClipBpe && t->byte_eow_ids_[b] < 0)
      return bad("CLIP vocabulary lacks the word-final token for byte " + std::to_string(b) + " and has no unk token");
  }
  return t;
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && special_[size_t(id)]; }

bool Tokenizer::is_stop(int32_t id) const {
  return std::find(d_.stop_ids.begin(), d_.stop_ids.end(), id) != d_.stop_ids.end();
}

std::string Tokenizer::token_bytes(int32_t id) const { return id >= 0 && id < vocab_size() ? bytes_[size_t(id)] : ""; }

// ---------------------------------------------------------------------------------------
// BPE: a linked list of symbols and a min-heap of candidate merges (rank, position); stale
// candidates are skipped when popped. Equal ranks merge leftmost first, as HF does.

void Tokenizer::bpe(const std::vector<int32_t>& symbols, std::vector<int32_t>* out) const {
  const size_t n = symbols.size();
  if (n == 0) return;
  std::vector<int32_t> id(symbols);
  std::vector<int64_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = int64_t(i) - 1;
    next[i] = i + 1 < n ? int64_t(i) + 1 : -1;
  }
  using Cand = std::pair<std::pair<int32_t, int64_t>, std::pair<int32_t, int32_t>>;  // (rank, pos), (left id, right id)
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int64_t i) {
    if (i < 0 || next[size_t(i)] < 0) return;
    const int32_t a = id[size_t(i)], b = id[size_t(next[size_t(i)])];
    auto it = merge_.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
    if (it != merge_.end()) heap.push({{it->second.first, i}, {a, b}});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(int64_t(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int64_t i = c.first.second;
    const int64_t j = next[size_t(i)];
    if (id[size_t(i)] != c.second.first || j < 0 || id[size_t(j)] != c.second.second) continue;  // stale
    id[size_t(i)] = merge_.at((uint64_t(uint32_t(c.second.first)) << 32) | uint32_t(c.second.second)).second;
    id[size_t(j)] = -1;
    next[size_t(i)] = next[size_t(j)];
    if (next[size_t(j)] >= 0) prev[size_t(next[size_t(j)])] = i;
    consider(prev[size_t(i)]);
    consider(i);
  }
  for (int64_t i = 0; i >= 0; i = next[size_t(i)]) out->push_back(id[size_t(i)]);
}

void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  const ByteAlphabet& ab = byte_alphabet();
  std::vector<int32_t> symbols;
  if (d_.kind == TokenizerData::Kind::kByteLevelBpe) {
    if (d_.ignore_merges) {
      std::string mapped;
      for (unsigned char b : word) mapped += ab.enc[b];
      auto it = ids_.find(mapped);
      if (it != ids_.end()) {
        out->push_back(it->second);
        return;
      }
    }
    for (unsigned char b : word) symbols.push_back(byte_ids_[b]);
  } else {
    if (d_.ignore_merges) {
      auto it = ids_.find(std::string(word));
      if (it != ids_.end()) {
        out->push_back(it->second);
        return;
      }
    }
    bool last_unk = false;
    for (size_t i = 0; i < word.size();) {
      size_t len;
      const uint32_t cp = next_cp(word, i, &len);
      auto it = cp == kInvalid ? ids_.end() : ids_.find(std::string(word.substr(i, len)));
      if (it != ids_.end()) {
        symbols.push_back(it->second);
        last_unk = false;
      } else if (d_.byte_fallback && std::all_of(word.begin() + long(i), word.begin() + long(i + len),
                                                   [&](char b) { return byte_ids_[uint8_t(b)] >= 0; })) {
        for (size_t k = 0; k < len; ++k) symbols.push_back(byte_ids_[uint8_t(word[i + k])]);
        last_unk = false;
      } else if (d_.unk_id >= 0 && !last_unk) {  // fuse_unk
        symbols.push_back(d_.unk_id);
        last_unk = true;
      }
      i += len;
    }
  }
  bpe(symbols, out);
}

void Tokenizer::encode_segment(std::string_view text, bool first_segment, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  if (d_.kind == TokenizerData::Kind::kSentencePieceBpe) {
    std::string s = replace_all(text, " ", kSpace);
    if (d_.sp_prepend && (!d_.sp_prepend_first || first_segment)) s = kSpace + s;
    bpe_word(s, out);
    return;
  }
  if (d_.split == TokenizerData::Split::kNone) {
    bpe_word(text, out);
    return;
  }
  if (d_.split == TokenizerData::Split::kDeepseek) {
    std::vector<std::string_view> a, b, c;
    split_isolated(text, ds_digits, &a);
    for (std::string_view p : a) split_isolated(p, ds_cjk_run, &b);
    for (std::string_view p : b) split_isolated(p, ds_main, &c);
    for (std::string_view p : c) bpe_word(p, out);
    return;
  }
  const Cps t(text);
  for (size_t i = 0; i < t.n();) {
    size_t len = d_.split == TokenizerData::Split::kLlama3 ? llama3_match(t, i) : gpt2_match(t, i);
    if (len == 0) len = 1;  // unreachable for these patterns; never loop forever
    bpe_word(text.substr(t.off[i], t.off[i + len] - t.off[i]), out);
    i += len;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> out;
  if (d_.kind == TokenizerData::Kind::kClipBpe) {  // RobertaProcessing: bos … eos
    if (add_special) out.push_back(d_.bos_id);
    encode_clip(text, &out);
    if (add_special) out.push_back(d_.eos_id);
    return out;
  }
  if (add_special && d_.add_bos && d_.bos_id >= 0) out.push_back(d_.bos_id);
  // Split out added tokens (longest match at the earliest position), honouring lstrip/rstrip.
  size_t seg = 0, i = 0;
  bool first = true;
  while (i < text.size()) {
    const TokenizerData::Added* best = nullptr;
    for (uint32_t k : added_by_byte_[uint8_t(text[i])]) {
      const auto& a = d_.added[k];
      if (text.compare(i, a.content.size(), a.content) == 0 && (!best || a.content.size() > best->content.size()))
        best = &a;
    }
    if (!best) {
      ++i;
      continue;
    }
    // lstrip/rstrip take Unicode whitespace (as HF's Rust `char::is_whitespace`), never past
    // the previous added token.
    size_t start = i, end = i + best->content.size();
    if (best->lstrip)
      while (start > seg) {
        size_t back = 1;
        while (back < 4 && start - back > seg && (uint8_t(text[start - back]) & 0xC0) == 0x80) ++back;
        size_t len;
        const uint32_t cp = next_cp(text, start - back, &len);
        if (len != back || !is_space(cp)) break;
        start -= back;
      }
    if (best->rstrip)
      while (end < text.size()) {
        size_t len;
        if (!is_space(next_cp(text, end, &len))) break;
        end += len;
      }
    encode_segment(text.substr(seg, start - seg), first, &out);
    if (start > seg) first = false;
    out.push_back(best->id);
    first = false;
    seg = i = end;
  }
  encode_segment(text.substr(seg), first, &out);
  return out;
}

// ---------------------------------------------------------------------------------------
// CLIP

void Tokenizer::clip_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  std::vector<int32_t> symbols;
  for (size_t i = 0; i < word.size(); ++i)
    symbols.push_back(i + 1 < word.size() ? byte_ids_[uint8_t(word[i])] : byte_eow_ids_[uint8_t(word[i])]);
  bpe(symbols, out);
}

// HF's order: added tokens with normalized = false are split out of the raw text; each piece
// between them is normalized, and the normalized added tokens are split out of that; the rest
// goes through the CLIP split, then GPT-2's split (HF's ByteLevel pre-tokenizer with
// use_regex, which only ever cuts the special-token strings apart), then BPE per word.
void Tokenizer::encode_clip(std::string_view text, std::vector<int32_t>* out) const {
  auto split_added = [&](std::string_view s, bool normalized, const auto& rest) {
    size_t seg = 0, i = 0;
    while (i < s.size()) {
      const TokenizerData::Added* best = nullptr;
      for (const auto& a : d_.added) {
        if (a.normalized == normalized && s.compare(i, a.content.size(), a.content) == 0 &&
            (!best || a.content.size() > best->content.size()))
          best = &a;
      }
      if (!best) {
        ++i;
        continue;
      }
      rest(s.substr(seg, i - seg));
      out->push_back(best->id);
      seg = i = i + best->content.size();
    }
    rest(s.substr(seg));
  };
  auto words = [&](std::string_view norm) {
    const Cps t(norm);
    for (size_t i = 0; i < t.n();) {
      const size_t len = clip_match(t, i);
      if (len == 0) {
        ++i;
        continue;
      }
      const std::string_view piece = norm.substr(t.off[i], t.off[i + len] - t.off[i]);
      const Cps p(piece);
      for (size_t k = 0; k < p.n();) {
        size_t l = gpt2_match(p, k);
        if (l == 0) l = 1;
        clip_word(piece.substr(p.off[k], p.off[k + l] - p.off[k]), out);
        k += l;
      }
      i += len;
    }
  };
  split_added(text, false, [&](std::string_view raw) {
    if (raw.empty()) return;
    const std::string norm = clip_normalize(raw);
    split_added(norm, true, words);
  });
}

std::vector<int32_t> Tokenizer::encode_fixed(std::string_view text, int64_t length) const {
  std::vector<int32_t> body;
  encode_clip(text, &body);
  std::vector<int32_t> out;
  out.push_back(d_.bos_id);
  const int64_t keep = std::max<int64_t>(0, std::min<int64_t>(int64_t(body.size()), length - 2));
  out.insert(out.end(), body.begin(), body.begin() + keep);
  out.push_back(d_.eos_id);
  while (int64_t(out.size()) < length) out.push_back(d_.pad_id);
  out.resize(size_t(std::max<int64_t>(length, 0)));
  return out;
}

// ---------------------------------------------------------------------------------------

std::string Tokenizer::decode(const int32_t* ids, size_t n, bool skip_special) const {
  std::string raw;
  if (d_.kind == TokenizerData::Kind::kClipBpe) {  // ByteLevel, then "</w>" → " " and strip (transformers' CLIP)
    for (size_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < vocab_size() && !(skip_special && special_[size_t(ids[i])])) raw += bytes_[size_t(ids[i])];
    std::string text = lossy_utf8(replace_all(raw, "</w>", " "));
    const size_t a = text.find_first_not_of(' '), b = text.find_last_not_of(' ');
    return a == std::string::npos ? std::string() : text.substr(a, b - a + 1);
  }
  if (d_.kind == TokenizerData::Kind::kByteLevelBpe) {
    for (size_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < vocab_size() && !(skip_special && special_[size_t(ids[i])])) raw += bytes_[size_t(ids[i])];
    return lossy_utf8(raw);  // HF's ByteLevel decoder: one U+FFFD per maximal invalid run
  }
  // SentencePiece: HF's ByteFallback decoder gathers runs of <0xNN> tokens; a run that is not
  // valid UTF-8 becomes one U+FFFD per byte token.
  std::string group;
  auto flush = [&] {
    raw += utf8_complete_prefix(group) == group.size() && lossy_utf8(group) == group
               ? group
               : [&] {
                   std::string r;
                   for (size_t k = 0; k < group.size(); ++k) r += "\xEF\xBF\xBD";
                   return r;
                 }();
    group.clear();
  };
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size() || (skip_special && special_[size_t(id)])) continue;
    if (is_byte_token(id)) {
      group += bytes_[size_t(id)];
      continue;
    }
    flush();
    raw += bytes_[size_t(id)];
  }
  flush();
  if (d_.decode_strip_space && !raw.empty() && raw[0] == ' ') raw.erase(0, 1);
  return raw;
}

bool Tokenizer::is_byte_token(int32_t id) const {
  const std::string& s = d_.vocab[size_t(id)];
  return d_.kind == TokenizerData::Kind::kSentencePieceBpe && !special_[size_t(id)] && parse_byte_piece(s, nullptr);
}

std::string Tokenizer::Stream::push(int32_t id) {
  if (id < 0 || id >= t_.vocab_size() || (skip_special_ && t_.special_[size_t(id)])) return "";
  pending_ += t_.bytes_[size_t(id)];
  if (first_ && !pending_.empty()) {  // the decoder strips at most one space, at the very start
    if (t_.d_.decode_strip_space && pending_[0] == ' ') pending_.erase(0, 1);
    first_ = false;
  }
  const size_t k = utf8_complete_prefix(pending_);
  std::string out = lossy_utf8(std::string_view(pending_).substr(0, k));
  pending_.erase(0, k);
  return out;
}

std::string Tokenizer::Stream::finish() {
  std::string out = lossy_utf8(pending_);
  pending_.clear();
  return out;
}

Result<std::string> Tokenizer::chat_prompt(const std::vector<std::pair<std::string, std::string>>& messages) const {
  auto trim = [](const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  std::string p;
  switch (d_.chat) {
    case TokenizerData::Chat::kLlama3:
      p = d_.bos_id >= 0 ? bytes_[size_t(d_.bos_id)] : "";
      for (const auto& [role, content] : messages)
        p += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + trim(content) + "<|eot_id|>";
      return p + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case TokenizerData::Chat::kDeepseek:
      p = d_.bos_id >= 0 ? bytes_[size_t(d_.bos_id)] : "";
      for (const auto& [role, content] : messages) {
        if (role == "system") p += content;
        else if (role == "user") p += "<\xEF\xBD\x9CUser\xEF\xBD\x9C>" + content;
        else p += "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>" + content + "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
      }
      return p + "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";
    case TokenizerData::Chat::kNone: break;
  }
  return Status(StatusCode::kUnsupported,
                "this plan's tokenizer has no chat template kiln recognizes (known: LLaMA-3, DeepSeek); use --raw");
}

}  // namespace kiln
