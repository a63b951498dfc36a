// Text helpers of the tokenizer (runtime/tokenizer.cpp): UTF-8 decoding and the Unicode classes
// the pre-tokenizers use (runtime/unicode.cpp, from unicode_tables.inc), NFC and CLIP's
// normalizer, and the pre-tokenizer scanners, each a transcription of one regex's leftmost-first
// backtracking semantics (runtime/pretokenize.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kiln::text {

constexpr uint32_t kInvalid = 0xFFFFFFFFu;  // a byte that starts no valid UTF-8 sequence

// Decodes one code point at s[i]; *len gets its byte length (1 for an invalid byte).
uint32_t next_cp(std::string_view s, size_t i, size_t* len);
void append_utf8(uint32_t c, std::string* s);
// Rust's String::from_utf8_lossy: each maximal subpart of an ill-formed sequence becomes U+FFFD.
std::string lossy_utf8(std::string_view s);

// Unicode general categories and White_Space (false for kInvalid).
bool is_letter(uint32_t c);
bool is_mark(uint32_t c);
bool is_punct_or_symbol(uint32_t c);
bool is_number(uint32_t c);
bool is_space(uint32_t c);
// The value of a decimal digit (category Nd: '0'-'9', '٣', '３', ...), or -1.
int decimal_digit(uint32_t c);
inline bool is_newline(uint32_t c) { return c == '\r' || c == '\n'; }

// Unicode NFC (UAX #15).
std::vector<uint32_t> nfc(const std::vector<uint32_t>& in);
// CLIP's normalizer, as HF tokenizers runs it: NFC, every run of White_Space to one space, then
// per-character lowercase. Invalid UTF-8 becomes U+FFFD first.
std::string clip_normalize(std::string_view text);
// Python's str.lower of valid UTF-8 text (each code point's full lowercase mapping); false for text
// holding Σ (lowered by its context in Python) or invalid UTF-8.
bool lowercase_utf8(std::string_view text, std::string* out);
// NFC of the valid UTF-8 runs of s; bytes that are not UTF-8 are kept as they are.
std::string nfc_utf8(std::string_view s);

// A decoded view of the text: code points and their byte offsets.
struct Cps {
  std::vector<uint32_t> cp;
  std::vector<size_t> off;  // off[i] = byte offset of cp[i]; off[n] = size
  explicit Cps(std::string_view s);
  size_t n() const { return cp.size(); }
};

// Pre-tokenizer matchers: the length in code points of the pattern's match at i.
// LLaMA-3 and GPT-2 always match; CLIP's returns 0 at whitespace (which its Split removes), the
// DeepSeek-V3 ones 0 where their regex does not match (the text there stays a gap).
size_t llama3_match(const Cps& t, size_t i, size_t max_digits = 3);
size_t gpt2_match(const Cps& t, size_t i);
size_t clip_match(const Cps& t, size_t i);
size_t ds_digits(const Cps& t, size_t i);
size_t ds_cjk_run(const Cps& t, size_t i);
size_t ds_main(const Cps& t, size_t i);
// Splits `text` with an isolating matcher: matches and the gaps between them, in order.
void split_isolated(std::string_view text, size_t (*match)(const Cps&, size_t), std::vector<std::string_view>* out);

// GPT-2's byte ↔ unicode alphabet for byte-level BPE.
struct ByteAlphabet {
  std::string enc[256];                       // byte → UTF-8 of its stand-in code point
  static constexpr uint32_t kDecSize = 512;   // every stand-in code point is below 512
  int16_t dec[kDecSize];                      // stand-in code point → byte, or -1
  ByteAlphabet();
};
const ByteAlphabet& byte_alphabet();

}  // namespace kiln::text
