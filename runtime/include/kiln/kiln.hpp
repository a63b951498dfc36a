// kiln C++ wrapper: thin, header-only RAII over the C API in kiln.h. Errors become
// kiln::api::Error exceptions on the host side (none cross into the library). The classes
// live in kiln::api so that they never collide with the runtime's own C++ names.
//   kiln::api::Plan plan("model.kplan");
//   kiln::api::Context ctx(plan);
//   auto ids = plan.tokenize("In the beginning", true);
//   ctx.generate(ids, 32, {}, [&](int32_t t) { std::cout << dec.push(t); return true; });
#ifndef KILN_KILN_HPP_
#define KILN_KILN_HPP_

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {
namespace api {

class Error : public std::runtime_error {
 public:
  Error(kiln_status s, const std::string& m) : std::runtime_error(m), status_(s) {}
  kiln_status status() const { return status_; }

 private:
  kiln_status status_;
};

namespace detail {
inline void check(kiln_status s, const kiln_error& e) {
  if (s != KILN_OK) throw Error(s, e.message[0] ? e.message : kiln_status_string(s));
}
}  // namespace detail

// A loaded, verified plan. Immutable; share it freely across threads.
class Plan {
 public:
  explicit Plan(const std::string& path) {
    kiln_error e{};
    detail::check(kiln_plan_open(path.c_str(), &p_, &e), e);
  }
  // data is not copied and must outlive the Plan; 8-byte aligned (kiln_plan_open_memory).
  Plan(const void* data, size_t size) {
    kiln_error e{};
    detail::check(kiln_plan_open_memory(data, size, &p_, &e), e);
  }
  ~Plan() { kiln_plan_close(p_); }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  Plan(Plan&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }

  kiln_plan* get() const { return p_; }
  kiln_plan_info info() const {
    kiln_plan_info i{};
    kiln_error e{};
    detail::check(kiln_plan_get_info(p_, &i, &e), e);
    return i;
  }
  std::vector<int32_t> tokenize(const std::string& text, bool add_special) const {
    kiln_error e{};
    int64_t n = 0;
    detail::check(kiln_tokenize(p_, text.data(), text.size(), add_special, nullptr, 0, &n, &e), e);
    std::vector<int32_t> ids(static_cast<size_t>(n));
    detail::check(kiln_tokenize(p_, text.data(), text.size(), add_special, ids.data(), n, &n, &e), e);
    return ids;
  }
  std::string detokenize(const std::vector<int32_t>& ids, bool skip_special = true) const {
    kiln_error e{};
    size_t len = 0;
    detail::check(kiln_detokenize(p_, ids.data(), int64_t(ids.size()), skip_special, nullptr, 0, &len, &e), e);
    std::string s(len + 1, '\0');
    detail::check(kiln_detokenize(p_, ids.data(), int64_t(ids.size()), skip_special, &s[0], s.size(), &len, &e), e);
    s.resize(len);
    return s;
  }
  bool is_stop(int32_t id) const { return kiln_token_is_stop(p_, id) != 0; }

 private:
  kiln_plan* p_ = nullptr;
};

// Incremental text for generated ids (incomplete UTF-8 waits for the next token).
class Decoder {
 public:
  explicit Decoder(const Plan& plan, bool skip_special = true) {
    kiln_error e{};
    detail::check(kiln_decoder_create(plan.get(), skip_special, &d_, &e), e);
  }
  ~Decoder() { kiln_decoder_destroy(d_); }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  std::string push(int32_t id) {
    return text(
        [&](char* b, size_t cap, size_t* len, kiln_error* e) { return kiln_decoder_push(d_, id, b, cap, len, e); });
  }
  // The end of the stream: an incomplete last character as a whole decode gives it.
  std::string finish() {
    return text(
        [&](char* b, size_t cap, size_t* len, kiln_error* e) { return kiln_decoder_finish(d_, b, cap, len, e); });
  }

 private:
  // A call that consumes nothing when its text does not fit (KILN_ERR_LIMIT): again with room.
  template <typename F>
  static std::string text(F call) {
    kiln_error e{};
    std::string s(256, '\0');
    size_t len = 0;
    kiln_status st = call(&s[0], s.size(), &len, &e);
    if (st == KILN_ERR_LIMIT && len >= s.size()) {
      s.assign(len + 1, '\0');
      st = call(&s[0], s.size(), &len, &e);
    }
    detail::check(st, e);
    s.resize(len);
    return s;
  }
  kiln_decoder* d_ = nullptr;
};

// One backend's memory for a plan; use it from one thread at a time.
class Context {
 public:
  explicit Context(const Plan& plan, const kiln_context_options& opts = kiln_context_options_default())
      : vocab_(plan.info().vocab_size), max_seq_(plan.info().max_seq) {
    kiln_error e{};
    detail::check(kiln_context_create_with(plan.get(), &opts, &c_, &e), e);
  }
  ~Context() { kiln_context_destroy(c_); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  kiln_context* get() const { return c_; }
  const char* backend() const { return kiln_context_backend(c_); }
  const char* describe() const { return kiln_context_describe(c_); }
  void reset() { kiln_context_reset(c_); }

  // Logits (rows, ids.size() / rows, vocab) of `rows` prompts of equal length laid end to end.
  std::vector<float> score(const std::vector<int32_t>& ids, int64_t rows) {
    if (rows <= 0 || int64_t(ids.size()) % rows != 0)
      throw Error(KILN_ERR_INVALID_ARGUMENT, "score: rows must be positive and divide the " +
                                                 std::to_string(ids.size()) + " ids into prompts of equal length");
    kiln_error e{};
    const int64_t n = int64_t(ids.size()) / rows;
    std::vector<float> out(size_t(rows * n * vocab_));
    detail::check(kiln_score(c_, ids.data(), rows, n, out.data(), &e), e);
    return out;
  }
  // (vocab must be the plan's vocab_size: it is checked)
  std::vector<float> score(const std::vector<int32_t>& ids, int64_t rows, int64_t vocab) {
    if (vocab != vocab_)
      throw Error(KILN_ERR_INVALID_ARGUMENT,
                  "score: vocab " + std::to_string(vocab) + " is not the plan's vocab_size " + std::to_string(vocab_));
    return score(ids, rows);
  }

  // Calls on_token for each new token (return false to stop); returns the new tokens.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, int64_t max_new, const kiln_sampling& sampling = {},
                                const std::function<bool(int32_t)>& on_token = nullptr, int32_t eos = -1) {
    kiln_error e{};
    // (kiln_generate refuses a negative max_new, and one past max_seq, before it writes)
    std::vector<int32_t> out(static_cast<size_t>(max_new < 0 ? 0 : max_new < max_seq_ ? max_new : max_seq_));
    int64_t n = 0;
    // The callback's exception stops the generation and is rethrown here: it never unwinds
    // through the C library.
    struct Callback {
      const std::function<bool(int32_t)>* f;
      std::exception_ptr thrown;
    } cb{&on_token, nullptr};
    auto trampoline = [](void* user, int32_t t) -> int {
      auto* c = static_cast<Callback*>(user);
      try {
        return (*c->f)(t) ? 1 : 0;
      } catch (...) {
        c->thrown = std::current_exception();
        return 0;
      }
    };
    const kiln_status st = kiln_generate(c_, prompt.data(), int64_t(prompt.size()), max_new, &sampling, eos, out.data(),
                                         &n, on_token ? +trampoline : nullptr, &cb, &e);
    if (cb.thrown) std::rethrow_exception(cb.thrown);
    detail::check(st, e);
    out.resize(static_cast<size_t>(n));
    return out;
  }

 private:
  int64_t vocab_ = 0, max_seq_ = 0;
  kiln_context* c_ = nullptr;
};

}  // namespace api
}  // namespace kiln

#endif  // KILN_KILN_HPP_
