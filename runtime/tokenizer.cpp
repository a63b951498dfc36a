// See tokenizer.h. Sections: construction; BPE; encode; CLIP; decode and chat. The text
// helpers (UTF-8, Unicode classes, NFC, the pre-tokenizer scanners) are in runtime/text.h.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <queue>

#include "runtime/text.h"

namespace kiln {

using namespace text;

namespace {

// A SentencePiece byte-fallback piece is exactly "<0xNN>" with two hex digits; anything else
// spelled like it (from a hostile or odd vocab) is an ordinary piece.
bool parse_byte_piece(std::string_view s, char* out) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return false;
  const int hi = hex(s[3]), lo = hex(s[4]);
  if (hi < 0 || lo < 0) return false;
  if (out) *out = char(hi * 16 + lo);
  return true;
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

}  // namespace

void AddedTrie::insert(std::string_view s, uint32_t k) {
  uint32_t node = 0;
  for (unsigned char c : s) {
    auto [it, fresh] = next_.emplace((uint64_t(node) << 8) | c, uint32_t(k_.size()));
    if (fresh) k_.push_back(-1);
    node = it->second;
  }
  if (k_[node] < 0) k_[node] = k;
}

int64_t AddedTrie::longest_at(std::string_view text, size_t i) const {
  int64_t best = -1;
  uint32_t node = 0;
  for (; i < text.size(); ++i) {
    auto it = next_.find((uint64_t(node) << 8) | uint8_t(text[i]));
    if (it == next_.end()) break;
    node = it->second;
    if (k_[node] >= 0) best = k_[node];
  }
  return best;
}

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
  for (const auto& a : d.added) {
    if (!ok_id(a.id) || a.content.empty()) return bad("an added token is out of range or empty");
    if (a.content.size() > kMaxAddedTokenBytes)
      return bad("an added token is longer than " + std::to_string(kMaxAddedTokenBytes) + " bytes");
  }
  for (int32_t id : {d.bos_id, d.eos_id, d.unk_id, d.pad_id})
    if (id != -1 && !ok_id(id)) return bad("bos/eos/unk/pad id out of range");
  if (d.kind == TokenizerData::Kind::kClipBpe && (d.bos_id < 0 || d.eos_id < 0 || d.pad_id < 0))
    return bad("a CLIP tokenizer needs bos, eos and pad ids");
  for (int32_t id : d.stop_ids)
    if (!ok_id(id)) return bad("a stop id is out of range");
  std::shared_ptr<const jinja::Template> chat, chat_tools;
  jinja::Value chat_vars = jinja::Value::dict();
  if (d.chat == TokenizerData::Chat::kJinja) {
    auto tmpl = jinja::Template::parse(d.chat_template);
    if (!tmpl.is_ok()) return bad(tmpl.status().message());
    chat = std::make_shared<const jinja::Template>(tmpl.take());
    if (!d.chat_template_tools.empty()) {
      auto tools = jinja::Template::parse(d.chat_template_tools);
      if (!tools.is_ok()) return bad("the tool_use " + tools.status().message());
      chat_tools = std::make_shared<const jinja::Template>(tools.take());
    }
    if (!d.chat_vars.empty()) {
      auto vars = jinja::parse_json(d.chat_vars);
      if (!vars.is_ok() || !vars.value().is_dict()) return bad("the chat template's variables are not a JSON object");
      chat_vars = vars.take();
    }
  } else if (!d.chat_template.empty() || !d.chat_vars.empty() || !d.chat_template_tools.empty()) {
    return bad("a chat template without the Jinja chat format");
  }
  std::shared_ptr<const RegexSplitter> regex;
  if (d.split == TokenizerData::Split::kRegex) {
    if (d.kind != TokenizerData::Kind::kByteLevelBpe) return bad("split regexes need a byte-level BPE tokenizer");
    auto r = RegexSplitter::create(d.split_regexes);
    if (!r.is_ok()) return bad(r.status().message());
    regex = r.take();
  } else if (!d.split_regexes.empty()) {
    return bad("split regexes without the regex split");
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer(std::move(d)));
  t->regex_ = std::move(regex);
  t->chat_ = std::move(chat);
  t->chat_tools_ = std::move(chat_tools);
  t->chat_vars_ = std::move(chat_vars);
  const TokenizerData& td = t->d_;
  const ByteAlphabet& ab = byte_alphabet();
  // Token strings → ids: the vocabulary (the first of equal strings wins), then the added tokens
  // (each overriding). A merge's token is the id of vocab[a] + vocab[b], found from the parts'
  // hashes without concatenating them.
  std::vector<uint64_t> h(td.vocab.size());
  t->ids_.reserve(td.vocab.size() + td.added.size());
  for (size_t i = 0; i < td.vocab.size(); ++i) {
    h[i] = t->hash_.of(td.vocab[i]);
    t->ids_.put(td.vocab[i], h[i], int32_t(i), false);
  }
  for (const auto& a : td.added) t->ids_.put(a.content, t->hash_.of(a.content), a.id, true);
  t->bytes_.resize(td.vocab.size());
  t->special_.assign(td.vocab.size(), 0);
  // HF's ByteLevel decoder: a token all of whose characters are in the byte alphabet is their
  // bytes; any other token is its own UTF-8, whole ("ü x" stays "ü x").
  auto alphabet_bytes = [&](const std::string& s) {
    std::string b;
    b.reserve(s.size());
    for (size_t k = 0; k < s.size();) {
      size_t len;
      const uint32_t cp = next_cp(s, k, &len);
      const int byte = cp < ByteAlphabet::kDecSize ? ab.dec[cp] : -1;
      if (byte < 0) return s;
      b += char(byte);
      k += len;
    }
    return b;
  };
  for (size_t i = 0; i < td.vocab.size(); ++i) {
    const std::string& s = td.vocab[i];
    std::string b;
    if (td.kind != TokenizerData::Kind::kSentencePieceBpe) {
      b = alphabet_bytes(s);
    } else if (char byte; parse_byte_piece(s, &byte)) {
      b = std::string(1, byte);
    } else {
      b = s.find(kSpace) == std::string::npos ? s : replace_all(s, kSpace, " ");
    }
    t->bytes_[i] = std::move(b);
  }
  for (size_t k = 0; k < td.added.size(); ++k) {
    t->added_.insert(td.added[k].content, uint32_t(k));
    t->added_norm_[td.added[k].normalized ? 1 : 0].insert(td.added[k].content, uint32_t(k));
  }
  for (const auto& a : td.added) {  // (decoded through the ByteLevel decoder too, as HF decodes them)
    t->bytes_[size_t(a.id)] = td.kind == TokenizerData::Kind::kByteLevelBpe ? alphabet_bytes(a.content) : a.content;
    t->special_[size_t(a.id)] = a.special;
  }
  t->merge_.reserve(td.merges.size());
  for (size_t r = 0; r < td.merges.size(); ++r) {
    const auto [a, b] = td.merges[r];
    const std::string &sa = td.vocab[size_t(a)], &sb = td.vocab[size_t(b)];
    const int32_t merged = t->ids_.find_concat(sa, sb, t->hash_.concat(h[size_t(a)], h[size_t(b)], sb.size()));
    if (merged < 0) return bad("merge " + std::to_string(r) + " makes a token missing from the vocabulary");
    t->merge_.put(a, b, int32_t(r), merged);
  }
  for (int b = 0; b < 256; ++b) {
    std::string key;
    t->byte_eow_ids_[b] = -1;
    if (td.kind == TokenizerData::Kind::kClipBpe) {
      const int32_t eow = t->find_id(ab.enc[b] + "</w>");
      t->byte_eow_ids_[b] = eow < 0 ? td.unk_id : eow;
    }
    if (td.kind != TokenizerData::Kind::kSentencePieceBpe) {
      key = ab.enc[b];
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      key = buf;
    }
    t->byte_ids_[b] = t->find_id(key);
    // A byte-level vocabulary may lack bytes (GPT-2-style files drop control bytes): they
    // encode as unk, or to nothing, as in HF. CLIP's words need every byte.
    if (td.kind == TokenizerData::Kind::kClipBpe && t->byte_ids_[b] < 0)
      return bad("CLIP vocabulary lacks the token for byte " + std::to_string(b));
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
    const MergeTable::Merge m = merge_.find(a, b);
    if (m.rank >= 0) heap.push({{m.rank, i}, {a, b}});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(int64_t(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int64_t i = c.first.second;
    const int64_t j = next[size_t(i)];
    if (id[size_t(i)] != c.second.first || j < 0 || id[size_t(j)] != c.second.second) continue;  // stale
    id[size_t(i)] = merge_.find(c.second.first, c.second.second).id;
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
  // A character missing from the vocabulary becomes unk where the model has one (a run of them
  // one unk with fuse_unk), else it is dropped, as HF's BPE does. HF keeps a pending unk back
  // until the next character found in the vocabulary (byte-fallback tokens do not flush it).
  bool unk_pending = false;
  auto known = [&](int32_t id) {
    if (unk_pending) symbols.push_back(d_.unk_id);
    unk_pending = false;
    symbols.push_back(id);
  };
  auto unknown = [&]() {
    if (d_.unk_id < 0) return;
    if (unk_pending && !d_.fuse_unk) symbols.push_back(d_.unk_id);
    unk_pending = true;
  };
  if (d_.kind == TokenizerData::Kind::kByteLevelBpe) {
    if (d_.ignore_merges) {
      std::string mapped;
      for (unsigned char b : word) mapped += ab.enc[b];
      if (const int32_t whole = find_id(mapped); whole >= 0) {
        out->push_back(whole);
        return;
      }
    }
    for (unsigned char b : word) byte_ids_[b] >= 0 ? known(byte_ids_[b]) : unknown();
  } else {
    if (d_.ignore_merges) {
      if (const int32_t whole = find_id(word); whole >= 0) {
        out->push_back(whole);
        return;
      }
    }
    for (size_t i = 0; i < word.size();) {
      size_t len;
      const uint32_t cp = next_cp(word, i, &len);
      if (const int32_t piece = cp == kInvalid ? -1 : find_id(word.substr(i, len)); piece >= 0) {
        known(piece);
      } else if (d_.byte_fallback && std::all_of(word.begin() + long(i), word.begin() + long(i + len),
                                                 [&](char b) { return byte_ids_[uint8_t(b)] >= 0; })) {
        for (size_t k = 0; k < len; ++k) symbols.push_back(byte_ids_[uint8_t(word[i + k])]);
      } else {
        unknown();
      }
      i += len;
    }
  }
  if (unk_pending) symbols.push_back(d_.unk_id);
  bpe(symbols, out);
}

void Tokenizer::encode_segment(std::string_view text, bool first_segment, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  std::string normalized;
  if (d_.nfc) {  // HF normalizes each segment between added tokens
    normalized = nfc_utf8(text);
    text = normalized;
  }
  if (d_.kind == TokenizerData::Kind::kSentencePieceBpe) {
    std::string s = replace_all(text, " ", kSpace);
    // The Prepend normalizer always prepends; the Metaspace pre-tokenizer only where no "▁" leads.
    if (d_.sp_prepend && (!d_.sp_prepend_first || first_segment) &&
        !(d_.metaspace && s.compare(0, kSpace.size(), kSpace) == 0))
      s = kSpace + s;
    if (!d_.metaspace_split) {
      bpe_word(s, out);
      return;
    }
    // Metaspace split (HF's MergedWithNext on "▁"): a word starts at every "▁".
    for (size_t start = 0; start < s.size();) {
      size_t end = s.find(kSpace, start + 1);
      if (end == std::string::npos) end = s.size();
      bpe_word(std::string_view(s).substr(start, end - start), out);
      start = end;
    }
    return;
  }
  if (d_.split == TokenizerData::Split::kNone) {
    bpe_word(text, out);
    return;
  }
  if (d_.split == TokenizerData::Split::kRegex) {
    std::vector<std::string_view> pieces;
    regex_->split(text, &pieces);
    for (std::string_view p : pieces) bpe_word(p, out);
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
    size_t len = d_.split == TokenizerData::Split::kLlama3  ? llama3_match(t, i)
                 : d_.split == TokenizerData::Split::kQwen2 ? llama3_match(t, i, 1)
                                                            : gpt2_match(t, i);
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
    const int64_t k = added_.longest_at(text, i);
    const TokenizerData::Added* best = k < 0 ? nullptr : &d_.added[size_t(k)];
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
      const int64_t k = added_norm_[normalized ? 1 : 0].longest_at(s, i);
      const TokenizerData::Added* best = k < 0 ? nullptr : &d_.added[size_t(k)];
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

// HF's ByteFallback decoder: a run of <0xNN> tokens is its bytes if they are valid UTF-8, else one
// U+FFFD per byte token.
static std::string fallback_run_text(const std::string& run) {
  if (utf8_complete_prefix(run) == run.size() && lossy_utf8(run) == run) return run;
  std::string r;
  for (size_t k = 0; k < run.size(); ++k) r += "\xEF\xBF\xBD";
  return r;
}

std::string Tokenizer::decode(const int32_t* ids, size_t n, bool skip_special) const {
  std::string raw;
  if (d_.kind == TokenizerData::Kind::kClipBpe) {  // ByteLevel, then "</w>" → " " and strip (transformers' CLIP)
    for (size_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < vocab_size() && !(skip_special && special_[size_t(ids[i])]))
        raw += bytes_[size_t(ids[i])];
    std::string text = lossy_utf8(replace_all(raw, "</w>", " "));
    const size_t a = text.find_first_not_of(' '), b = text.find_last_not_of(' ');
    return a == std::string::npos ? std::string() : text.substr(a, b - a + 1);
  }
  if (d_.kind == TokenizerData::Kind::kByteLevelBpe) {
    for (size_t i = 0; i < n; ++i)
      if (ids[i] >= 0 && ids[i] < vocab_size() && !(skip_special && special_[size_t(ids[i])]))
        raw += bytes_[size_t(ids[i])];
    return lossy_utf8(raw);  // HF's ByteLevel decoder: one U+FFFD per maximal invalid run
  }
  // SentencePiece: HF's ByteFallback decoder gathers runs of <0xNN> tokens (fallback_run_text).
  std::string group;
  auto flush = [&] {
    raw += fallback_run_text(group);
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

void Tokenizer::Stream::take(const std::string& bytes) {
  pending_ += bytes;
  if (first_ && !pending_.empty()) {  // the decoder strips at most one space, at the very start
    if (t_.d_.decode_strip_space && pending_[0] == ' ') pending_.erase(0, 1);
    first_ = false;
  }
}

std::string Tokenizer::Stream::push(int32_t id) {
  if (id < 0 || id >= t_.vocab_size() || (skip_special_ && t_.special_[size_t(id)])) return "";
  // A SentencePiece run of byte tokens is held whole until it ends: one byte that is not UTF-8
  // turns every byte of the run into U+FFFD (decode), those already complete included.
  if (t_.is_byte_token(id)) {
    run_ += t_.bytes_[size_t(id)];
    return "";
  }
  if (!run_.empty()) take(fallback_run_text(run_));
  run_.clear();
  take(t_.bytes_[size_t(id)]);
  const size_t k = utf8_complete_prefix(pending_);
  std::string out = lossy_utf8(std::string_view(pending_).substr(0, k));
  pending_.erase(0, k);
  return out;
}

std::string Tokenizer::Stream::finish() {
  // What a whole decode gives for what is held: a run of byte tokens as decode reads it, and
  // byte-level BPE's incomplete character one U+FFFD per maximal part.
  if (!run_.empty()) take(fallback_run_text(run_));
  run_.clear();
  std::string out = lossy_utf8(pending_);
  pending_.clear();
  first_ = true;  // (a new stream)
  return out;
}

Result<std::string> Tokenizer::chat_prompt(const std::vector<std::pair<std::string, std::string>>& messages) const {
  jinja::List list;
  for (const auto& [role, content] : messages) {
    jinja::Value m = jinja::Value::dict();
    m.set("role", jinja::Value::string(role));
    m.set("content", jinja::Value::string(content));
    list.push_back(std::move(m));
  }
  return render_chat(jinja::Value::list(std::move(list)), true, jinja::Value());
}

Result<std::string> Tokenizer::render_chat(const jinja::Value& messages, bool add_generation_prompt,
                                           const jinja::Value& kwargs, const std::tm* now) const {
  if (!chat_)
    return Status(StatusCode::kUnsupported,
                  "this plan has no chat template (the checkpoint's tokenizer_config.json has none, or it was "
                  "compiled with --no-chat-template); use --raw");
  if (!messages.is_list()) return invalid_argument("the messages must be a list of message objects");
  if (messages.items().empty())  // as apply_chat_template refuses it
    return invalid_argument("cannot apply the chat template to an empty conversation: give at least one message");
  for (const jinja::Value& m : messages.items())
    if (!m.is_dict()) return invalid_argument("each message must be an object (role, content, ...)");
  if (!kwargs.is_undefined() && !kwargs.is_dict()) return invalid_argument("the template variables must be an object");
  jinja::Value extra = jinja::Value::dict();  // the special tokens, then the caller's variables over them
  for (const auto& [k, v] : chat_vars_.entries().items) extra.set(k, v);
  if (kwargs.is_dict())
    for (const auto& [k, v] : kwargs.entries().items) extra.set(k, v);
  // transformers' get_chat_template: the "tool_use" template when tools are given and there is one
  const jinja::Value* tools = extra.find("tools");
  const jinja::Template& tmpl = chat_tools_ && tools && !tools->is_none() ? *chat_tools_ : *chat_;
  return tmpl.render(jinja::chat_context(messages, add_generation_prompt, extra), jinja::Limits(), now);
}

}  // namespace kiln
