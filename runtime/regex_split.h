// Pre-tokenizer splits by any regex HF tokenizers accepts in a `Split` (behavior Isolated):
// GPT-4o's o200k, Mistral's tekken and the other patterns kiln has no hand-written scanner for
// (runtime/pretokenize.cpp has those). PCRE2 (Debian's libpcre2-8) runs them, with Unicode
// properties (UCP), JIT where it compiles, and invalid UTF-8 in the text treated as characters
// no pattern item matches (they stay in the gaps between matches), never as an error.
//
// A plan's patterns are untrusted: each must compile (at most kMaxPatternBytes long, at most
// kMaxPatterns of them), Oniguruma syntax that PCRE2 reads differently is refused (to_pcre2 in
// regex_split.cpp), and every match runs under PCRE2's match, depth and heap limits; a match that
// hits one leaves the rest of that piece unsplit. The limits bound each match, not a whole text:
// a pattern built to backtrack just under them at every position can still make encoding slow.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace kiln {

class RegexSplitter {
 public:
  static constexpr size_t kMaxPatterns = 16;
  static constexpr size_t kMaxPatternBytes = 4096;

  // Compiles the patterns; an error names the pattern (by index) and PCRE2's message and offset.
  static Result<std::unique_ptr<RegexSplitter>> create(const std::vector<std::string>& patterns);
  ~RegexSplitter();

  // Each pattern in turn splits every piece the one before left (HF's Sequence of Splits): a
  // piece becomes its matches and the non-empty gaps between them, in order; an empty match ends
  // the gap before it, as in HF. The views point into `text`.
  void split(std::string_view text, std::vector<std::string_view>* out) const;

 private:
  struct Code;
  RegexSplitter() = default;
  void split_one(const Code& code, std::string_view piece, std::vector<std::string_view>* out) const;
  std::vector<std::unique_ptr<Code>> codes_;
};

}  // namespace kiln
