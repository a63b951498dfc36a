// The tokenizer a plan embeds, as data: the FlatBuffer's Tokenizer table (schema/plan.fbs) field
// for field. The compiler fills it from tokenizer.json; the runtime's Tokenizer
// (runtime/tokenizer.h) is built from it.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln {

struct TokenizerData {
  enum class Kind : uint8_t { kByteLevelBpe = 0, kSentencePieceBpe = 1, kClipBpe = 2 };
  // Pre-tokenizer: one split pattern, or DeepSeek-V3's sequence of three isolating splits
  // (digit runs of up to 3, CJK/kana runs, then its main pattern).
  // Qwen2: LLaMA-3's pattern with single digits (\p{N} for \p{N}{1,3}). kRegex: any other
  // sequence of isolating splits, split_regexes run by PCRE2 (runtime/regex_split.h).
  enum class Split : uint8_t { kNone = 0, kLlama3 = 1, kGpt2 = 2, kDeepseek = 3, kQwen2 = 4, kRegex = 5 };
  // kJinja: chat_template is rendered by the Jinja interpreter (runtime/jinja.h). 1 and 2 were
  // hard-coded LLaMA-3 and DeepSeek formats (schema 4 and older).
  enum class Chat : uint8_t { kNone = 0, kJinja = 3 };
  struct Added {
    int32_t id = 0;
    std::string content;
    bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
  };

  Kind kind = Kind::kByteLevelBpe;
  Split split = Split::kNone;
  std::vector<std::string> split_regexes;           // kRegex: the patterns, as tokenizer.json has them
  std::vector<std::string> vocab;                   // token strings by id, as in tokenizer.json
  std::vector<std::pair<int32_t, int32_t>> merges;  // by rank: ids of the left and right pieces
  bool ignore_merges = false;                       // a word in the vocab is one token
  bool byte_fallback = false;                       // SentencePiece: unknown chars become <0xXX>
  int32_t unk_id = -1;
  bool sp_prepend = false;          // SentencePiece: prepend "▁" to each text segment
  bool sp_prepend_first = false;    //   ... only to the first segment (Metaspace prepend_scheme "first")
  bool metaspace = false;           //   ... a Metaspace pre-tokenizer: prepend only where no "▁" leads
  bool metaspace_split = false;     //   ... and split the text before every "▁" (Metaspace split)
  bool fuse_unk = false;            // a run of unknown characters is one unk token
  bool nfc = false;                 // an NFC normalizer runs on each text segment first
  bool decode_strip_space = false;  // SentencePiece decoder: strip one leading space
  std::vector<Added> added;
  int32_t bos_id = -1, eos_id = -1;
  int32_t pad_id = -1;            // CLIP: fills encode_fixed's tail
  bool add_bos = false;           // the post-processor prepends bos
  std::vector<int32_t> stop_ids;  // generation stops on these (eos, <|eot_id|>, ...)
  Chat chat = Chat::kNone;
  std::string chat_template;        // the Jinja source (tokenizer_config.json's or chat_template.jinja)
  std::string chat_vars;            // a JSON object: the special tokens the template sees (bos_token, ...)
  std::string chat_template_tools;  // the checkpoint's "tool_use" template, or "" (then chat_template)
};

inline const char* tokenizer_kind_name(TokenizerData::Kind k) {
  switch (k) {
    case TokenizerData::Kind::kByteLevelBpe:
      return "byte-level BPE";
    case TokenizerData::Kind::kSentencePieceBpe:
      return "SentencePiece BPE";
    case TokenizerData::Kind::kClipBpe:
      return "CLIP BPE";
  }
  return "?";
}

}  // namespace kiln
