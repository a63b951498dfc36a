// The pre-tokenizer scanners (runtime/text.h): each a transcription of one regex's leftmost-first
// backtracking semantics over Unicode classes, and the GPT-2 byte alphabet.
#include "runtime/text.h"

#include <algorithm>
#include <iterator>

namespace kiln::text {

namespace {

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
  return end - i - 1;                                // leave the last space to prefix the next word
}

}  // namespace

// LLaMA-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (Qwen2's is the same with \p{N} for \p{N}{1,3}: max_digits 1.)
size_t llama3_match(const Cps& t, size_t i, size_t max_digits) {
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
    while (j < t.n() && j - i < max_digits && is_number(t.cp[j])) ++j;
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

static bool ds_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x309F) || (c >= 0x30A0 && c <= 0x30FF);
}

size_t ds_cjk_run(const Cps& t, size_t i) {  // [一-龥\u3040-ゟ゠-ヿ]+
  size_t j = i;
  while (j < t.n() && ds_cjk(t.cp[j])) ++j;
  return j - i;
}

// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t ds_main(const Cps& t, size_t i) {
  auto ascii_letter = [](uint32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  auto ascii_punct = [](uint32_t c) {
    return c < 0x80 && c > 0x20 && c != 0x7F &&
           !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
  };
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

void split_isolated(std::string_view text, size_t (*match)(const Cps&, size_t), std::vector<std::string_view>* out) {
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

// CLIP: <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
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

ByteAlphabet::ByteAlphabet() {
  std::fill(std::begin(dec), std::end(dec), int16_t(-1));
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + n++);
    enc[b] = cp < 0x80 ? std::string(1, char(cp)) : std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
    dec[cp] = int16_t(b);
  }
}

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;  // immutable after construction (thread-safe static init)
  return a;
}

}  // namespace kiln::text
