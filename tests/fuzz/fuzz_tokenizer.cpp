// libFuzzer target for the tokenizer, two ways:
// - the first byte picks a mode: 0-2 encode the rest with one of the fixture tokenizers and
//   check the invariants (byte-level: the tokens' bytes give back the input exactly; all:
//   every id is in range, decode and streaming agree);
// - mode 3 parses the rest as a tokenizer.json and builds a Tokenizer from it;
// - mode 4 encodes the rest with the CLIP fixture tokenizer (NFC, lowercase, CLIP and GPT-2
//   splits, </w> BPE): every id in range, fixed-length prompts framed by bos and eos.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "compiler/error.h"
#include "compiler/tokenizer_reader.h"
#include "runtime/tokenizer.h"

namespace {

std::unique_ptr<kiln::Tokenizer> load(const char* family) {
  const char* env = std::getenv("KILN_FIXTURES_DIR");
  const std::string root = env ? env : KILN_FIXTURES_DIR;
  kiln::TokenizerData d;
  std::string tmpl;
  const bool clip = std::string(family) == "clip";
  if (clip ? !kiln::read_clip_tokenizer(root + "/diffusion/tokenizer", &d)
           : !kiln::read_hf_tokenizer(root + "/tokenizers/" + family, &d, &tmpl))
    std::abort();
  auto t = kiln::Tokenizer::create(std::move(d));
  if (!t.is_ok()) std::abort();
  return t.take();
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    size_t n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
    if (n == 9 || i + n >= s.size() + (n ? 0 : 1)) return false;
    uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1F : n == 2 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k <= n; ++k) {
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
    }
    const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<kiln::Tokenizer> toks[3] = {load("bytelevel"), load("sentencepiece"), load("deepseek")};
  static const std::unique_ptr<kiln::Tokenizer> clip = load("clip");
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 5;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 4) {
    const std::vector<int32_t> ids = clip->encode(text, true);
    for (int32_t id : ids)
      if (id < 0 || id >= clip->vocab_size()) std::abort();
    const std::vector<int32_t> fixed = clip->encode_fixed(text, 77);
    const auto& d = clip->data();
    if (fixed.size() != 77 || fixed[0] != d.bos_id || ids.front() != d.bos_id || ids.back() != d.eos_id) std::abort();
    const size_t body = std::min<size_t>(ids.size() - 2, 75);  // encode_fixed keeps a prefix of the same ids
    for (size_t i = 0; i < body; ++i)
      if (fixed[1 + i] != ids[1 + i]) std::abort();
    if (fixed[1 + body] != d.eos_id) std::abort();
    (void)clip->decode(ids.data(), ids.size(), true);
    return 0;
  }
  if (mode == 3) {
    try {
      kiln::TokenizerData d;
      std::string tmpl;
      kiln::parse_hf_tokenizer(text, "{}", "tokenizer.json", &d, &tmpl);
      auto t = kiln::Tokenizer::create(std::move(d));
      if (t.is_ok()) (void)t.value()->encode("Hello, kiln! 123 \xe4\xb8\xad", true);
    } catch (const kiln::CompileError&) {}
    return 0;
  }
  const kiln::Tokenizer& t = *toks[mode];
  const std::vector<int32_t> ids = t.encode(text, true);
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= t.vocab_size()) std::abort();
    if (!(i == 0 && t.data().add_bos)) bytes += t.token_bytes(ids[i]);
  }
  if (t.data().kind == kiln::TokenizerData::Kind::kByteLevelBpe && bytes != text) std::abort();
  if (!valid_utf8(text)) return 0;  // streaming and batch decoding replace invalid bytes differently
  const std::string decoded = t.decode(ids.data(), ids.size(), false);
  kiln::Tokenizer::Stream s(t);
  std::string streamed;
  for (int32_t id : ids) streamed += s.push(id);
  streamed += s.finish();
  if (streamed != decoded) std::abort();
  return 0;
}
