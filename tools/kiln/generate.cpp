// kiln eval, generate and chat, through the public C API as a host would.
#include <sys/stat.h>
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "compiler/error.h"
#include "compiler/safetensors.h"
#include "tools/kiln/commands.h"

using kiln::CompileError;

int run_eval(const std::string& plan_path, const std::string& in_path, const std::string& out_path,
             const RunOptions& ro) {
  refuse_overwriting_inputs("--output", out_path, {in_path, plan_path}, {});  // (written by rename)
  auto in = kiln::SafetensorsFile::open(in_path);
  auto it = in->tensors().find("input_ids");
  if (it == in->tensors().end()) throw CompileError(in_path + ": has no 'input_ids' tensor");
  const kiln::StTensor& t = it->second;
  if (!t.has_dtype || (t.dtype != kiln::DType::I64 && t.dtype != kiln::DType::I32))
    throw CompileError(in_path + ": input_ids must be I64 or I32, not " + t.st_dtype);
  if (t.shape.size() != 2 || t.shape[0] <= 0 || t.shape[1] <= 0)
    throw CompileError(in_path + ": input_ids must have shape [batch, tokens] with both > 0");
  const int64_t rows = t.shape[0], n = t.shape[1];
  std::vector<int32_t> ids(size_t(rows * n));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t v = 0;
    if (t.dtype == kiln::DType::I64) std::memcpy(&v, t.data + i * 8, 8);
    else {
      int32_t v32;
      std::memcpy(&v32, t.data + i * 4, 4);
      v = v32;
    }
    if (v < 0 || v > INT32_MAX)
      throw CompileError(in_path + ": input_ids[" + std::to_string(i / size_t(n)) + ", " +
                         std::to_string(i % size_t(n)) + "] = " + std::to_string(v) + " is not a token id");
    ids[i] = int32_t(v);
  }
  PlanHandle plan;
  ContextHandle ctx;
  open_context(plan_path, ro, plan, ctx);
  kiln_plan_info info;
  kiln_error err{};
  check(kiln_plan_get_info(plan.p, &info, &err), err);
  if (n > info.max_seq)
    throw CompileError(in_path + ": " + std::to_string(n) + " tokens per row exceed the plan's max_seq of " +
                       std::to_string(info.max_seq));
  if (double(rows) * double(n) * double(info.vocab_size) * 4.0 > 64.0 * double(1ull << 30))
    throw CompileError(in_path + ": the logits would take over 64 GiB; score fewer rows at a time");
  std::vector<float> logits(size_t(rows * n * info.vocab_size));
  check(kiln_score(ctx.c, ids.data(), rows, n, logits.data(), &err), err);
  kiln::write_safetensors(out_path, {{"logits",
                                      kiln::DType::F32,
                                      {rows, n, info.vocab_size},
                                      logits.data(),
                                      uint64_t(logits.size() * sizeof(float))}});
  std::fprintf(stderr, "wrote logits [%" PRId64 ", %" PRId64 ", %" PRId64 "] to %s\n", rows, n, info.vocab_size,
               out_path.c_str());
  const size_t nonfinite =
      size_t(std::count_if(logits.begin(), logits.end(), [](float v) { return !std::isfinite(v); }));
  if (nonfinite)  // (written as computed; but not without a word)
    std::fprintf(stderr,
                 "kiln: warning: %zu of the logits are NaN or infinite: the plan's arithmetic left the range of its "
                 "dtype (f16's is ±65504: compile with --dtype bf16 or f32) or its weights are not finite\n",
                 nonfinite);
  return 0;
}

namespace {

// Text out of generated ids: streams through the plan's decoder, holding back text that might
// be the start of a stop string, and stops at stop tokens and stop strings. Stop strings are
// found as transformers' stop_strings find them, in the whole sequence's text: a second decoder,
// primed with the prompt, gives the reply as it reads after the prompt (a SentencePiece decoder
// strips the first token's leading space from a reply decoded alone, not from one that follows),
// and a stop string may begin in the prompt but must end in the reply.
class TextSink {
 public:
  TextSink(kiln_plan* plan, std::vector<std::string> stops, bool ignore_stop, bool echo)
      : plan_(plan), stops_(std::move(stops)), ignore_stop_(ignore_stop), echo_(echo) {
    kiln_error err{};
    check(kiln_decoder_create(plan, /*skip_special=*/1, &dec_, &err), err);
    for (const auto& s : stops_) hold_ = std::max(hold_, s.size());
    if (!stops_.empty()) check(kiln_decoder_create(plan, /*skip_special=*/1, &match_dec_, &err), err);
  }
  ~TextSink() {
    kiln_decoder_destroy(dec_);
    kiln_decoder_destroy(match_dec_);
  }
  // Feeds the prompt to the stop-string decoder (its text is where a stop string may begin).
  void prime(const std::vector<int32_t>& prompt) {
    if (!match_dec_) return;
    std::string text;
    for (int32_t id : prompt)
      if (!pushed(match_dec_, id, text)) throw CompileError(error_);
    window_ = text.substr(text.size() > hold_ ? text.size() - hold_ : 0);
    window_start_ = -int64_t(window_.size());
  }
  // False once generation should stop.
  bool push(int32_t id) {
    if (!ignore_stop_ && kiln_token_is_stop(plan_, id)) return false;
    if (!pushed(dec_, id, pending_)) return false;
    if (match_dec_) {
      std::string reply;
      if (!pushed(match_dec_, id, reply)) return false;
      window_ += reply;
      match_total_ += int64_t(reply.size());
      for (const auto& s : stops_)
        for (size_t at = s.empty() ? std::string::npos : window_.find(s); at != std::string::npos;
             at = window_.find(s, at + 1)) {
          const int64_t start = window_start_ + int64_t(at);  // (in the reply's bytes; < 0: in the prompt)
          if (start + int64_t(s.size()) <= 0) continue;       // (wholly in the prompt)
          // The shown text is the reply decoded alone: as many bytes shorter as its start lost.
          const int64_t shown = int64_t(text_.size() + pending_.size());
          const int64_t cut = std::max<int64_t>(0, start - std::max<int64_t>(0, match_total_ - shown));
          emit(pending_.substr(0,
                               size_t(std::clamp<int64_t>(cut - int64_t(text_.size()), 0, int64_t(pending_.size())))));
          pending_.clear();
          cut_ = true;
          return false;
        }
      if (window_.size() > hold_) {
        window_start_ += int64_t(window_.size() - hold_);
        window_.erase(0, window_.size() - hold_);
      }
    }
    if (pending_.size() > hold_) {
      // Keep the last hold_ bytes (a stop string may be starting), but never split a UTF-8 sequence.
      size_t cut = pending_.size() - hold_;
      while (cut > 0 && (uint8_t(pending_[cut]) & 0xC0) == 0x80) --cut;
      emit(pending_.substr(0, cut));
      pending_.erase(0, cut);
    }
    return !std::ferror(stdout);  // (a reader that has gone: stop; main reports the write error)
  }
  void finish() {  // the decoder's own waiting bytes too (an incomplete character: U+FFFD, as decode gives)
    if (dec_ && !cut_)
      decoded(
          [&](char* b, size_t cap, size_t* len, kiln_error* e) { return kiln_decoder_finish(dec_, b, cap, len, e); },
          pending_);
    emit(pending_);
    pending_.clear();
    if (!error_.empty()) throw CompileError(error_);
  }
  const std::string& text() const { return text_; }

 private:
  // Appends the text of id through decoder `dec` to `into`; false as decoded().
  bool pushed(kiln_decoder* dec, int32_t id, std::string& into) {
    return decoded(
        [&](char* b, size_t cap, size_t* len, kiln_error* e) { return kiln_decoder_push(dec, id, b, cap, len, e); },
        into);
  }
  // Appends a decoder call's text to `into` (again with room when it did not fit); false, with
  // the message kept for finish(), when it fails.
  template <typename F>
  bool decoded(F call, std::string& into) {
    char small[256];
    size_t len = 0;
    kiln_error err{};
    kiln_status st = call(small, sizeof(small), &len, &err);
    if (st == KILN_OK) {
      into.append(small, len);
      return true;
    }
    if (st == KILN_ERR_LIMIT) {
      std::string big(len + 1, '\0');
      st = call(&big[0], big.size(), &len, &err);
      if (st == KILN_OK) {
        into.append(big.data(), len);
        return true;
      }
    }
    if (error_.empty()) error_ = err.message;
    return false;
  }
  void emit(const std::string& s) {
    text_ += s;
    if (echo_ && !s.empty()) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    }
  }
  std::string error_;
  kiln_plan* plan_;
  kiln_decoder* dec_ = nullptr;
  kiln_decoder* match_dec_ = nullptr;  // (with stop strings only)
  bool cut_ = false;                   // a stop string ended the text: what followed it is dropped
  std::vector<std::string> stops_;
  bool ignore_stop_, echo_;
  size_t hold_ = 0;
  std::string pending_, text_;
  std::string window_;        // the last stop-string-length bytes of the whole text (prompt, then reply)
  int64_t window_start_ = 0;  // where window_ begins, in the reply's bytes (negative: in the prompt)
  int64_t match_total_ = 0;   // the reply's bytes as the primed decoder gives them
};

// One encode: a token covers at least one byte of the text, so bytes plus a few specials (BOS,
// EOS, a prepended "▁") always fit; a second call only if a tokenizer ever needed more.
std::vector<int32_t> tokenize(kiln_plan* plan, const std::string& text, bool add_special) {
  kiln_error err{};
  int64_t n = 0;
  std::vector<int32_t> ids(text.size() + 16);
  check(kiln_tokenize(plan, text.data(), text.size(), add_special ? 1 : 0, ids.data(), int64_t(ids.size()), &n, &err),
        err);
  if (n > int64_t(ids.size())) {
    ids.resize(size_t(n));
    check(kiln_tokenize(plan, text.data(), text.size(), add_special ? 1 : 0, ids.data(), n, &n, &err), err);
  }
  ids.resize(size_t(n));
  return ids;
}

}  // namespace

int run_generate(const GenerateArgs& a) {
  if (a.has_ids == a.has_prompt) throw CompileError("give exactly one of --ids and -p/--prompt");
  if (a.max_new < 0) throw CompileError("--max-new-tokens must not be negative");
  for (const std::string& stop : a.stops)
    if (stop.empty()) throw CompileError("--stop '' is empty (it would stop before the first token)");
  PlanHandle plan;
  ContextHandle ctx;
  open_context(a.plan, a.run, plan, ctx);
  const bool text_mode = a.has_prompt;
  const std::vector<int32_t> prompt = text_mode ? tokenize(plan.p, a.prompt, true) : parse_ids(a.ids);
  if (prompt.empty())  // (parse_ids refuses empty --ids itself)
    throw CompileError("the prompt is empty after tokenization (this tokenizer adds no BOS token)");
  kiln_sampling s{a.temperature, a.top_k, a.top_p, a.seed};
  kiln_plan_info info{};
  kiln_error err{};
  check(kiln_plan_get_info(plan.p, &info, &err), err);
  // (kiln_generate refuses more than max_seq allows before it writes: no room for more is needed)
  std::vector<int32_t> out(size_t(std::min<int64_t>(a.max_new, info.max_seq)));
  int64_t n_out = 0;
  struct Stream {
    bool ids_on;
    bool first = true;
    TextSink* text;
    const kiln_plan* plan;
    bool ignore_stop;
  };
  // Stop tokens and --stop strings end generation from --ids as from text (a stop string then
  // needs the plan's tokenizer, to see the text).
  std::unique_ptr<TextSink> sink;
  if (text_mode || !a.stops.empty()) {
    sink = std::make_unique<TextSink>(plan.p, a.stops, a.ignore_stop, text_mode && !a.output_ids);
    sink->prime(prompt);
  }
  Stream stream{!a.output_ids && !text_mode, true, sink.get(), plan.p, a.ignore_stop};
  auto cb = [](void* user, int32_t tok) -> int {
    auto* st = static_cast<Stream*>(user);
    if (st->ids_on) {
      std::printf(st->first ? "%d" : " %d", tok);
      std::fflush(stdout);
      st->first = false;
    }
    if (st->text) return st->text->push(tok) ? 1 : 0;
    if (!st->ignore_stop && kiln_token_is_stop(st->plan, tok)) return 0;
    return std::ferror(stdout) ? 0 : 1;  // (a reader that has gone: stop; main reports the write error)
  };
  const auto t0 = std::chrono::steady_clock::now();
  const kiln_status st = kiln_generate(ctx.c, prompt.data(), int64_t(prompt.size()), a.max_new, &s, int32_t(a.eos),
                                       out.data(), &n_out, cb, &stream, &err);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // What streamed is ended first, also on a failure (NaN logits come after the tokens).
  if (sink) sink->finish();
  if (!a.output_ids && (st == KILN_OK || n_out > 0)) std::printf("\n");
  std::fflush(stdout);  // keep the text and the stderr summary in order when both go to one pipe
  check(st, err);
  std::fprintf(stderr, "generated %" PRId64 " tokens in %.3f s on %s\n", n_out, secs, kiln_context_backend(ctx.c));
  if (a.output_ids) {
    std::string line;
    for (int32_t t : prompt) line += (line.empty() ? "" : " ") + std::to_string(t);
    for (int64_t i = 0; i < n_out; ++i) line += " " + std::to_string(out[size_t(i)]);
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

// Interactive chat: each line on stdin is a user turn; the reply streams to stdout. The
// whole conversation is re-encoded each turn in the model's chat format (or as plain text
// with --raw).
int run_chat(const ChatArgs& a) {
  if (a.max_new < 0) throw CompileError("--max-new-tokens must not be negative");
  PlanHandle plan;
  ContextHandle ctx;
  open_context(a.plan, a.run, plan, ctx);
  std::vector<std::string> roles, contents;
  if (!a.system.empty()) roles.push_back("system"), contents.push_back(a.system);
  std::string raw_text;
  const bool tty = isatty(0);
  kiln_error err{};
  if (!a.raw) {  // fail early, with the template message, if the format is unknown
    const char* r = "user";
    const char* c = "";
    check(kiln_chat_prompt(plan.p, &r, &c, 1, nullptr, 0, nullptr, &err), err);
  }
  std::string line;
  bool unanswered = false;  // a turn too long to answer: the exit status says so
  for (uint64_t turn = 0;; ++turn) {
    if (tty) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // (a CRLF line, as tokenize --file reads it)
    if (line.empty()) continue;
    if (!a.raw && line.find('\0') != std::string::npos) {  // (the chat template takes C strings: it would be cut)
      std::fprintf(stderr,
                   "kiln: error: this turn holds a NUL byte, which a chat message cannot (not answered; the "
                   "conversation so far is kept)\n");
      unanswered = true;
      continue;
    }
    // The conversation so far and this turn; when they leave no room for a reply, this turn alone
    // (the earlier ones are dropped, as said); a turn that alone leaves none is refused, not dropped.
    const size_t kept = a.system.empty() ? 0 : 1;
    auto prompt_for = [&]() {
      if (a.raw) return raw_text + line + "\n";
      std::vector<const char*> rp, cp;
      for (size_t i = 0; i < roles.size(); ++i) rp.push_back(roles[i].c_str()), cp.push_back(contents[i].c_str());
      rp.push_back("user"), cp.push_back(line.c_str());
      return call_for_text([&](char* buf, size_t cap, size_t* len, kiln_error* e) {
        return kiln_chat_prompt(plan.p, rp.data(), cp.data(), int64_t(rp.size()), buf, cap, len, e);
      });
    };
    kiln_plan_info info;
    check(kiln_plan_get_info(plan.p, &info, &err), err);
    std::vector<int32_t> ids = tokenize(plan.p, prompt_for(), a.raw);
    if (int64_t(ids.size()) >= info.max_seq && (roles.size() > kept || !raw_text.empty())) {
      // The turn alone first (the system message kept): if even that leaves no room, the conversation
      // is kept and the turn refused below; else the earlier turns go.
      std::vector<std::string> saved_roles(roles), saved_contents(contents);
      const std::string saved_raw = raw_text;
      roles.resize(kept), contents.resize(kept), raw_text.clear();
      std::vector<int32_t> alone = tokenize(plan.p, prompt_for(), a.raw);
      if (int64_t(alone.size()) >= info.max_seq) {
        roles = std::move(saved_roles), contents = std::move(saved_contents), raw_text = saved_raw;
        ids = std::move(alone);
      } else {
        std::fprintf(stderr, "kiln: the conversation has reached the plan's max_seq of %" PRId64 "; starting over\n",
                     info.max_seq);
        ids = std::move(alone);
      }
    }
    if (int64_t(ids.size()) >= info.max_seq) {
      std::fprintf(stderr,
                   "kiln: error: this turn is %zu tokens with the chat format, which leaves no room for a reply in "
                   "the plan's max_seq of %" PRId64
                   " (not answered; the conversation so far is kept; compile with "
                   "a larger --max-seq)\n",
                   ids.size(), info.max_seq);
      unanswered = true;
      continue;
    }
    if (a.raw) raw_text += line + "\n";
    else roles.push_back("user"), contents.push_back(line);
    TextSink sink(plan.p, a.raw ? std::vector<std::string>{"\n"} : std::vector<std::string>{}, false, true);
    sink.prime(ids);
    kiln_sampling s{a.temperature, a.top_k, a.top_p, a.seed + turn};
    int64_t n = 0;
    auto cb = [](void* user, int32_t tok) -> int { return static_cast<TextSink*>(user)->push(tok) ? 1 : 0; };
    const int64_t budget = std::min<int64_t>(a.max_new, info.max_seq - int64_t(ids.size()));
    std::vector<int32_t> out(size_t(std::max<int64_t>(budget, 0)));
    const kiln_status st =
        kiln_generate(ctx.c, ids.data(), int64_t(ids.size()), budget, &s, -1, out.data(), &n, cb, &sink, &err);
    sink.finish();
    if (st == KILN_OK || n > 0) std::printf("\n");
    std::fflush(stdout);
    check(st, err);
    if (a.raw) raw_text += sink.text() + "\n";
    else roles.push_back("assistant"), contents.push_back(sink.text());
  }
  return unanswered ? 1 : 0;
}
