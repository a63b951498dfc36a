// The tokenizer embedded in a plan: HF `tokenizers` BPE models of the two families that
// matter, re-implemented.
//   - byte-level BPE (LLaMA-3, DeepSeek, GPT-2): pre-tokenizer scanners hand-written for the
//     known split patterns (any other Split regex runs on PCRE2: runtime/regex_split.h), bytes
//     mapped to the GPT-2 byte alphabet, BPE merges by rank;
//   - SentencePiece-style BPE (LLaMA-1/2, Mistral): "▁" for spaces (a Prepend+Replace
//     normalizer or a Metaspace pre-tokenizer), byte fallback to <0xXX> tokens;
//   - CLIP BPE (Stable Diffusion's text encoders): NFC, whitespace runs to one space and
//     per-character lowercase, CLIP's split pattern (then GPT-2's, as HF's ByteLevel step
//     does), byte-level symbols with "</w>" marking each word's last one.
// Added tokens (special or not) are split out of the text first, as HF does. Decoding
// withholds incomplete UTF-8 while streaming. Input text need not be valid UTF-8: stray
// bytes are kept (byte-level) or byte-fallback encoded, so decode(encode(x)) == x wherever
// the vocabulary has every byte. A character or byte it lacks becomes the unk token, or
// nothing without one, as in HF (SmolLM2's GPT-2-style vocabulary lacks 21 bytes).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/jinja.h"
#include "runtime/regex_split.h"
#include "runtime/status.h"
#include "runtime/token_tables.h"
#include "schema/tokenizer_data.h"

namespace kiln {

// The added tokens as a byte trie: the longest one starting at a position is found in time
// bounded by the longest token (kMaxAddedTokenBytes), not by how many there are.
class AddedTrie {
 public:
  void insert(std::string_view s, uint32_t k);  // the first k inserted for a string is kept
  // The k of the longest inserted string that starts at text[i], or -1.
  int64_t longest_at(std::string_view text, size_t i) const;

 private:
  std::unordered_map<uint64_t, uint32_t> next_;  // (node << 8) | byte → child node
  std::vector<int64_t> k_ = {-1};                // node → k of the string ending there, or -1
};

class Tokenizer {
 public:
  static constexpr size_t kMaxAddedTokenBytes = 1024;

  static Result<std::unique_ptr<Tokenizer>> create(TokenizerData data);  // checks ids, builds lookups
  // Not copyable or movable: its lookup tables point into its own data.
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  const TokenizerData& data() const { return d_; }
  int32_t vocab_size() const { return int32_t(d_.vocab.size()); }

  // Token ids of `text`; add_special prepends bos when the tokenizer's post-processor does.
  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  // CLIP prompts as diffusers tokenizes them (padding="max_length", truncation=True):
  // bos, at most length − 2 content ids, eos, then pad_id up to `length` ids.
  std::vector<int32_t> encode_fixed(std::string_view text, int64_t length) const;
  // Text of `ids` (ids outside the vocabulary decode to nothing). Invalid UTF-8 becomes U+FFFD.
  std::string decode(const int32_t* ids, size_t n, bool skip_special) const;
  // The raw bytes one token stands for (special tokens: their content).
  std::string token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;
  bool is_stop(int32_t id) const;

  // Incremental decoding: push() returns the new complete text; bytes of an incomplete UTF-8
  // character wait for the next token. finish() flushes what is left (as U+FFFD).
  class Stream {
   public:
    explicit Stream(const Tokenizer& t, bool skip_special = false) : t_(t), skip_special_(skip_special) {}
    std::string push(int32_t id);
    std::string finish();
    // What push and finish change, to undo one whose text the caller could not take.
    struct State {
      bool first;
      std::string pending, run;
    };
    State state() const { return {first_, pending_, run_}; }
    void restore(State s) {
      first_ = s.first;
      pending_ = std::move(s.pending);
      run_ = std::move(s.run);
    }

   private:
    void take(const std::string& bytes);  // appends decoded bytes (the first space stripped)
    const Tokenizer& t_;
    bool skip_special_;
    bool first_ = true;
    std::string pending_;  // bytes of an incomplete character
    std::string run_;      // a SentencePiece run of byte tokens, held until it ends
  };

  // The prompt for a conversation of (role, content) messages, rendered by the plan's chat
  // template as apply_chat_template(messages, add_generation_prompt=True) renders it.
  Result<std::string> chat_prompt(const std::vector<std::pair<std::string, std::string>>& messages) const;
  // The chat template rendered for `messages` (a list of message dicts) with `kwargs` (a dict:
  // tools, documents, the template's own variables; may be Undefined), as transformers'
  // apply_chat_template(messages, tokenize=False, add_generation_prompt=..., **kwargs) does.
  // strftime_now formats `now` (not owned) or the local time when null.
  Result<std::string> render_chat(const jinja::Value& messages, bool add_generation_prompt, const jinja::Value& kwargs,
                                  const std::tm* now = nullptr) const;
  bool has_chat_template() const { return chat_ != nullptr; }

 private:
  explicit Tokenizer(TokenizerData d) : d_(std::move(d)) {}
  void encode_segment(std::string_view text, bool first_segment, std::vector<int32_t>* out) const;
  void bpe(const std::vector<int32_t>& symbols, std::vector<int32_t>* out) const;
  void bpe_word(std::string_view word_bytes, std::vector<int32_t>* out) const;
  bool is_byte_token(int32_t id) const;  // SentencePiece <0xNN>
  void encode_clip(std::string_view text, std::vector<int32_t>* out) const;
  void clip_word(std::string_view word_bytes, std::vector<int32_t>* out) const;

  TokenizerData d_;
  int32_t find_id(std::string_view s) const { return ids_.find(s, hash_.of(s)); }  // -1: not a token

  StringHash hash_;
  TokenIdTable ids_;  // token string (views into d_) → id
  MergeTable merge_;  // (left, right) → (rank, merged id)
  std::vector<std::string> bytes_;                                   // id → raw bytes
  std::vector<uint8_t> special_;                                     // id → is special
  int32_t byte_ids_[256];                                            // byte → id (byte-level char or <0xXX>)
  int32_t byte_eow_ids_[256];                                        // CLIP: byte → id of its char + "</w>"
  AddedTrie added_;                                                  // every added token → its index in d_.added
  AddedTrie added_norm_[2];                            // CLIP: the added tokens with normalized false [0] and true [1]
  std::shared_ptr<const jinja::Template> chat_;        // the parsed chat template, or null
  std::shared_ptr<const jinja::Template> chat_tools_;  // the "tool_use" one, or null
  jinja::Value chat_vars_;                             // a dict: the special tokens the template sees
  std::shared_ptr<const RegexSplitter> regex_;         // Split::kRegex's patterns, compiled
};

// UTF-8 helpers shared with the CLI: the length of the longest prefix of s made of complete
// UTF-8 sequences (a truncated trailing sequence is excluded).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace kiln
