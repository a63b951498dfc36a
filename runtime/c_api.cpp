// The C API (runtime/include/kiln/kiln.h) over Plan and Context. Nothing throws across it:
// every entry point catches and converts to a kiln_status.
#include "kiln/kiln.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/context.h"
#include "runtime/diffusion.h"
#include "runtime/image.h"
#include "runtime/plan.h"

struct kiln_plan {
  std::shared_ptr<const kiln::Plan> plan;
};

struct kiln_context {
  std::unique_ptr<kiln::Context> ctx;
  std::string description;  // kiln_context_describe's text, made once
  // kiln_context_destroy / kiln_context_reset from inside kiln_generate's callback: generation
  // stops after that callback, and kiln_generate does them as it returns.
  bool destroy_pending = false, reset_pending = false;
};

struct kiln_diffusion {
  std::shared_ptr<const kiln::Plan> plan;
  std::unique_ptr<kiln::DiffusionSession> s;
  std::string description;  // kiln_diffusion_describe's text, made once
  uint64_t seed = 0;
  std::vector<float> noise, image;
  // The call order kiln.h asks for: a prompt, then start, then the steps in order (each once),
  // decode after start. next_step: -1 before start, then the step the session runs next.
  bool has_prompt = false;
  int64_t next_step = -1;
  bool failed = false;           // the image's start or a step failed: it is gone until the next start
  bool in_callback = false;      // on_step is running: calls on this session are refused
  bool destroy_pending = false;  // kiln_diffusion_destroy from on_step: done as the call returns
};

struct kiln_decoder {
  std::shared_ptr<const kiln::Plan> plan;  // keeps the tokenizer alive
  kiln::Tokenizer::Stream stream;
};

namespace {

kiln_status to_c(kiln::StatusCode c) {
  switch (c) {
    case kiln::StatusCode::kOk:
      return KILN_OK;
    case kiln::StatusCode::kInvalidArgument:
      return KILN_ERR_INVALID_ARGUMENT;
    case kiln::StatusCode::kIoError:
      return KILN_ERR_IO;
    case kiln::StatusCode::kCorruptPlan:
      return KILN_ERR_CORRUPT_PLAN;
    case kiln::StatusCode::kUnsupported:
      return KILN_ERR_UNSUPPORTED;
    case kiln::StatusCode::kLimitExceeded:
      return KILN_ERR_LIMIT;
    case kiln::StatusCode::kOutOfMemory:
      return KILN_ERR_OUT_OF_MEMORY;
    case kiln::StatusCode::kInternal:
      return KILN_ERR_INTERNAL;
  }
  return KILN_ERR_INTERNAL;
}

kiln_status fail(kiln_error* err, kiln_status code, const std::string& msg) {
  if (err) {
    err->code = code;
    std::snprintf(err->message, sizeof(err->message), "%s", msg.c_str());
  }
  return code;
}

kiln_status report(kiln_error* err, const kiln::Status& st) {
  if (st.is_ok()) {
    if (err) {
      err->code = KILN_OK;
      err->message[0] = '\0';
    }
    return KILN_OK;
  }
  return fail(err, to_c(st.code()), st.message());
}

// The status of the exception being handled (call it in a catch block): out of memory for
// bad_alloc, else an internal error with its message; none leaves the C API.
kiln_status caught(kiln_error* err) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(err, KILN_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(err, KILN_ERR_INTERNAL, "an exception that is not a std::exception (from a callback?)");
  }
}

// Runs f, turning any escaping exception (bad_alloc, mostly) into a status.
template <typename F>
kiln_status guarded(kiln_error* err, F&& f) {
  try {
    return report(err, f());
  } catch (...) {
    return caught(err);
  }
}

// A zero-initialized kiln_sampling means greedy with no filters: top_p 0 reads as "off".
kiln::SamplingParams to_params(const kiln_sampling& s) {
  return kiln::SamplingParams{s.temperature, s.top_k, s.top_p == 0.0f ? 1.0f : s.top_p, s.seed};
}

kiln_status open_common(kiln::Result<std::shared_ptr<const kiln::Plan>> r, kiln_plan** out, kiln_error* err) {
  if (!r.is_ok()) return report(err, r.status());
  *out = new kiln_plan{r.take()};
  return report(err, kiln::Status::ok());
}

}  // namespace

extern "C" {

int kiln_api_version(void) { return KILN_API_VERSION; }

const char* kiln_status_string(kiln_status s) {
  static_assert(sizeof(kiln_status) == sizeof(int), "kiln_status is an int");
  int v;  // (read as an int: a value outside the enum is no kiln_status to load)
  std::memcpy(&v, &s, sizeof(v));
  switch (v) {
    case KILN_OK:
      return "ok";
    case KILN_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case KILN_ERR_IO:
      return "I/O error";
    case KILN_ERR_CORRUPT_PLAN:
      return "corrupt plan";
    case KILN_ERR_UNSUPPORTED:
      return "unsupported";
    case KILN_ERR_LIMIT:
      return "limit exceeded";
    case KILN_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case KILN_ERR_INTERNAL:
      return "internal error";
  }
  return "unknown status";
}

kiln_status kiln_plan_open(const char* path, kiln_plan** out, kiln_error* err) {
  if (!path || !out) return fail(err, KILN_ERR_INVALID_ARGUMENT, "path and out must not be null");
  *out = nullptr;
  try {
    return open_common(kiln::Plan::load_file(path), out, err);
  } catch (...) {
    return caught(err);
  }
}

kiln_status kiln_plan_open_memory(const void* data, size_t size, kiln_plan** out, kiln_error* err) {
  if (!out) return fail(err, KILN_ERR_INVALID_ARGUMENT, "out must not be null");
  *out = nullptr;
  try {
    return open_common(kiln::Plan::load_memory(data, size), out, err);
  } catch (...) {
    return caught(err);
  }
}

void kiln_plan_close(kiln_plan* plan) { delete plan; }

kiln_status kiln_plan_get_info(const kiln_plan* plan, kiln_plan_info* info, kiln_error* err) {
  if (!plan || !info) return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan and info must not be null");
  const kiln::ModelInfo& m = plan->plan->model();
  info->vocab_size = m.vocab_size;
  info->max_seq = m.max_seq;
  info->batch = m.batch;
  info->chunk = m.chunk;
  return report(err, kiln::Status::ok());
}

kiln_status kiln_context_create(kiln_plan* plan, int n_threads, kiln_context** out, kiln_error* err) {
  kiln_context_options o = kiln_context_options_default();
  o.n_threads = n_threads;
  o.device = "cpu";
  return kiln_context_create_with(plan, &o, out, err);
}

kiln_context_options kiln_context_options_default(void) {
  return kiln_context_options{0, "auto", 1, nullptr, nullptr, 0, 1, nullptr, nullptr, 0, 0};
}

uint64_t kiln_plan_device_bytes(const kiln_plan* plan) {
  // (a plan without a CUDA target never runs there: it needs none)
  return plan && plan->plan->has_target("cuda") ? kiln::cuda_device_bytes(*plan->plan) : 0;
}

const char* kiln_context_backend(const kiln_context* ctx) { return ctx ? ctx->ctx->backend() : ""; }

const char* kiln_context_describe(const kiln_context* ctx) { return ctx ? ctx->description.c_str() : ""; }

extern "C++" {  // a C++ helper inside the extern "C" block: C++ linkage (it returns a C++ type)
namespace {

kiln::ContextOptions to_options(const kiln_context_options* o) {
  kiln::ContextOptions opts;
  opts.n_threads = o->n_threads;
  opts.device = o->device ? o->device : "auto";
  opts.use_graphs = o->use_graphs != 0;
  opts.cuda_stream = o->cuda_stream;
  opts.cuda_device_memory = o->cuda_device_memory;
  opts.cuda_device_memory_bytes = o->cuda_device_memory_bytes;
  opts.use_cublaslt = o->use_cublaslt != 0;
  opts.generate_depth = o->generate_depth;
  opts.cpu_huge_pages = o->cpu_huge_pages != 0;
  if (o->upload_progress)
    opts.upload_progress = [f = o->upload_progress, user = o->upload_progress_user](uint64_t done, uint64_t total) {
      f(done, total, user);
    };
  return opts;
}

}  // namespace
}  // extern "C++"

kiln_status kiln_context_create_with(kiln_plan* plan, const kiln_context_options* o, kiln_context** out,
                                     kiln_error* err) {
  if (!plan || !out || !o) return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan, options and out must not be null");
  *out = nullptr;
  return guarded(err, [&]() -> kiln::Status {
    auto r = kiln::Context::create(plan->plan, to_options(o));
    if (!r.is_ok()) return r.status();
    auto ctx = r.take();
    std::string description = ctx->describe();
    *out = new kiln_context{std::move(ctx), std::move(description)};
    return kiln::Status::ok();
  });
}

void kiln_context_destroy(kiln_context* ctx) {
  if (ctx && ctx->ctx->in_callback()) {
    ctx->destroy_pending = true;  // (steps may be in flight: kiln_generate destroys it as it returns)
    return;
  }
  delete ctx;
}

void kiln_context_reset(kiln_context* ctx) {
  if (!ctx) return;
  if (ctx->ctx->in_callback()) {
    ctx->reset_pending = true;
    return;
  }
  ctx->ctx->reset();
}

kiln_status kiln_score(kiln_context* ctx, const int32_t* ids, int64_t rows, int64_t n_tokens, float* logits_out,
                       kiln_error* err) {
  if (!ctx) return fail(err, KILN_ERR_INVALID_ARGUMENT, "context is null");
  return guarded(err, [&] { return ctx->ctx->score(ids, rows, n_tokens, logits_out); });
}

kiln_status kiln_prefill(kiln_context* ctx, int64_t row, const int32_t* ids, int64_t n, kiln_error* err) {
  if (!ctx) return fail(err, KILN_ERR_INVALID_ARGUMENT, "context is null");
  return guarded(err, [&] { return ctx->ctx->prefill(row, ids, n); });
}

kiln_status kiln_decode(kiln_context* ctx, const int32_t* tokens, kiln_error* err) {
  if (!ctx) return fail(err, KILN_ERR_INVALID_ARGUMENT, "context is null");
  return guarded(err, [&] { return ctx->ctx->decode(tokens); });
}

const float* kiln_logits(const kiln_context* ctx, int64_t row) {
  // (a row without a sequence, never filled or reset since, or whose last call failed, holds none;
  // inside kiln_generate's callback, steps may be in flight)
  if (!ctx || row < 0 || row >= ctx->ctx->batch() || !ctx->ctx->has_logits(row) || ctx->ctx->in_callback())
    return nullptr;
  return ctx->ctx->logits(row);
}

int32_t kiln_sample(kiln_context* ctx, int64_t row, const kiln_sampling* sampling, uint64_t step) {
  const float* logits = kiln_logits(ctx, row);
  if (!logits) return -1;
  kiln::SamplingParams sp;
  if (sampling) sp = to_params(*sampling);
  // (kiln_generate's rule, but a negative temperature stays greedy here, as it always has)
  if (std::isnan(sp.temperature) || !(sp.top_p > 0.0f)) return -1;
  // NaN logits (an f16 plan past its range): no token is the model's (greedy would say id 0)
  if (std::any_of(logits, logits + ctx->ctx->vocab(), [](float v) { return std::isnan(v); })) return -1;
  return ctx->ctx->sample(row, sp, step);
}

kiln_status kiln_generate(kiln_context* ctx, const int32_t* prompt, int64_t n_prompt, int64_t max_new,
                          const kiln_sampling* sampling, int32_t eos_id, int32_t* out_tokens, int64_t* n_out,
                          kiln_token_callback callback, void* user, kiln_error* err) {
  if (!ctx) return fail(err, KILN_ERR_INVALID_ARGUMENT, "context is null");
  kiln::SamplingParams sp;
  if (sampling) sp = to_params(*sampling);
  // (a call from the callback into its own context is refused by generate; only the call that runs
  // the callback does the destroy or reset the callback asked for)
  const bool outer = !ctx->ctx->in_callback();
  const kiln_status st = guarded(err, [&] {
    std::function<bool(int32_t)> cb;
    if (callback)
      cb = [&](int32_t t) { return callback(user, t) != 0 && !ctx->destroy_pending && !ctx->reset_pending; };
    return ctx->ctx->generate(prompt, n_prompt, max_new, sp, eos_id, out_tokens, n_out, cb);
  });
  if (!outer) return st;
  if (ctx->destroy_pending) {
    delete ctx;
  } else if (ctx->reset_pending) {
    ctx->reset_pending = false;
    ctx->ctx->reset();
  }
  return st;
}

kiln_status kiln_tokenize(const kiln_plan* plan, const char* text, size_t len, int add_special, int32_t* ids,
                          int64_t cap, int64_t* n_out, kiln_error* err) {
  if (!plan || (!text && len) || !n_out || (cap > 0 && !ids))
    return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan, text, ids and n_out must not be null");
  if (cap < 0) return fail(err, KILN_ERR_INVALID_ARGUMENT, "cap must not be negative");
  const kiln::Tokenizer* t = plan->plan->tokenizer();
  if (!t) return fail(err, KILN_ERR_UNSUPPORTED, "this plan has no tokenizer (compiled with --no-tokenizer?)");
  return guarded(err, [&] {
    const std::vector<int32_t> v = t->encode(std::string_view(text ? text : "", len), add_special != 0);
    *n_out = int64_t(v.size());
    std::copy(v.begin(), v.begin() + std::min<int64_t>(cap, int64_t(v.size())), ids);
    return kiln::Status::ok();
  });
}

namespace {

// Ids the text API takes: the model's (kiln_plan_info.vocab_size) and the tokenizer's; an id with no
// text of its own (a model's padding rows) gives none, as transformers' decode gives.
bool is_token_id(const kiln::Plan& p, int32_t id) {
  return id >= 0 && (id < p.model().vocab_size || (p.tokenizer() && id < p.tokenizer()->vocab_size()));
}
std::string bad_token_id(const kiln::Plan& p, int32_t id) {
  const int64_t n = std::max<int64_t>(p.model().vocab_size, p.tokenizer() ? p.tokenizer()->vocab_size() : 0);
  return std::to_string(id) + " is not a token id of this plan (0 to " + std::to_string(n - 1) + ")";
}

kiln_status copy_text(const std::string& s, char* buf, size_t cap, size_t* len_out, kiln_error* err) {
  if (len_out) *len_out = s.size();
  if (buf && cap > 0) {
    const size_t n = std::min(cap - 1, s.size());
    std::memcpy(buf, s.data(), n);
    buf[n] = '\0';
  }
  return report(err, kiln::Status::ok());
}

}  // namespace

kiln_status kiln_detokenize(const kiln_plan* plan, const int32_t* ids, int64_t n, int skip_special, char* buf,
                            size_t cap, size_t* len_out, kiln_error* err) {
  if (!plan || (!ids && n > 0)) return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan and ids must not be null");
  if (n < 0) return fail(err, KILN_ERR_INVALID_ARGUMENT, "n must not be negative");
  const kiln::Tokenizer* t = plan->plan->tokenizer();
  if (!t) return fail(err, KILN_ERR_UNSUPPORTED, "this plan has no tokenizer (compiled with --no-tokenizer?)");
  for (int64_t i = 0; i < n; ++i)
    if (!is_token_id(*plan->plan, ids[i]))
      return fail(err, KILN_ERR_INVALID_ARGUMENT,
                  "ids[" + std::to_string(i) + "] " + bad_token_id(*plan->plan, ids[i]));
  try {
    return copy_text(t->decode(ids, size_t(n), skip_special != 0), buf, cap, len_out, err);
  } catch (...) {
    return caught(err);
  }
}

int kiln_token_is_stop(const kiln_plan* plan, int32_t id) {
  return plan && plan->plan->tokenizer() && plan->plan->tokenizer()->is_stop(id) ? 1 : 0;
}

kiln_status kiln_chat_prompt(const kiln_plan* plan, const char* const* roles, const char* const* contents, int64_t n,
                             char* buf, size_t cap, size_t* len_out, kiln_error* err) {
  if (n < 0) return fail(err, KILN_ERR_INVALID_ARGUMENT, "n must not be negative");
  if (!plan || (n > 0 && (!roles || !contents)))
    return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan, roles and contents must not be null");
  for (int64_t i = 0; i < n; ++i)
    if (!roles[i] || !contents[i]) return fail(err, KILN_ERR_INVALID_ARGUMENT, "a role or content is null");
  const kiln::Tokenizer* t = plan->plan->tokenizer();
  if (!t) return fail(err, KILN_ERR_UNSUPPORTED, "this plan has no tokenizer (compiled with --no-tokenizer?)");
  try {
    std::vector<std::pair<std::string, std::string>> msgs;
    for (int64_t i = 0; i < n; ++i) msgs.push_back({roles[i], contents[i]});
    auto p = t->chat_prompt(msgs);
    if (!p.is_ok()) return report(err, p.status());
    return copy_text(p.value(), buf, cap, len_out, err);
  } catch (...) {
    return caught(err);
  }
}

kiln_status kiln_chat_render(const kiln_plan* plan, const char* json, int add_generation_prompt, char* buf, size_t cap,
                             size_t* len_out, kiln_error* err) {
  if (!plan || !json) return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan and json must not be null");
  const kiln::Tokenizer* t = plan->plan->tokenizer();
  if (!t) return fail(err, KILN_ERR_UNSUPPORTED, "this plan has no tokenizer (compiled with --no-tokenizer?)");
  try {
    auto doc = kiln::jinja::parse_json(json);
    if (!doc.is_ok()) return fail(err, KILN_ERR_INVALID_ARGUMENT, "the conversation: " + doc.status().message());
    kiln::jinja::Value messages = doc.value(), vars;
    if (doc.value().is_dict()) {
      vars = kiln::jinja::Value::dict();
      messages = kiln::jinja::Value();
      for (const auto& [k, v] : doc.value().entries().items) {
        const std::string& name = k.as_string();  // JSON keys are strings
        if (name == "messages") {
          messages = v;
          continue;
        }
        // apply_chat_template's own parameters are not template variables there: refused, not passed on
        for (const char* opt : {"add_generation_prompt", "continue_final_message", "chat_template", "tokenize",
                                "return_assistant_tokens_mask", "return_dict", "return_tensors", "padding",
                                "truncation", "max_length", "tokenizer_kwargs", "sanitize_control_tokens"})
          if (name == opt)
            return fail(
                err, KILN_ERR_INVALID_ARGUMENT,
                "the conversation sets \"" + name + "\", an apply_chat_template option and no template variable" +
                    (name == "add_generation_prompt" ? " (pass it as the argument)" : " (kiln has no such option)"));
        vars.set(k, v);
      }
      if (messages.is_undefined())
        return fail(err, KILN_ERR_INVALID_ARGUMENT, "the conversation object has no \"messages\"");
    }
    auto p = t->render_chat(messages, add_generation_prompt != 0, vars);
    if (!p.is_ok()) return report(err, p.status());
    return copy_text(p.value(), buf, cap, len_out, err);
  } catch (const std::bad_alloc&) {
    return fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(err, KILN_ERR_INTERNAL, std::string("internal error: ") + e.what());
  }
}

kiln_status kiln_decoder_create(const kiln_plan* plan, int skip_special, kiln_decoder** out, kiln_error* err) {
  if (!plan || !out) return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan and out must not be null");
  *out = nullptr;
  const kiln::Tokenizer* t = plan->plan->tokenizer();
  if (!t) return fail(err, KILN_ERR_UNSUPPORTED, "this plan has no tokenizer (compiled with --no-tokenizer?)");
  *out = new (std::nothrow) kiln_decoder{plan->plan, kiln::Tokenizer::Stream(*t, skip_special != 0)};
  if (!*out) return fail(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
  return report(err, kiln::Status::ok());
}

namespace {

// push or finish through `step`; text that does not fit in cap bytes with its NUL is not lost: the
// decoder is put back as it was and KILN_ERR_LIMIT says how many bytes the call needs.
kiln_status decoder_step(kiln_decoder* dec, const std::function<std::string()>& step, const char* what, char* buf,
                         size_t cap, size_t* len_out, kiln_error* err) {
  if (cap > 0 && !buf) return fail(err, KILN_ERR_INVALID_ARGUMENT, "buf is null but cap is not 0");
  try {
    kiln::Tokenizer::Stream::State before = dec->stream.state();
    const std::string text = step();
    if (len_out) *len_out = text.size();
    if (!text.empty() && text.size() >= cap) {
      dec->stream.restore(std::move(before));
      return fail(err, KILN_ERR_LIMIT,
                  "the text (" + std::to_string(text.size()) + " bytes and a NUL) does not fit in cap " +
                      std::to_string(cap) + ": nothing was consumed; call " + what +
                      " again with a buffer of *len_out + 1 bytes");
    }
    return copy_text(text, buf, cap, len_out, err);
  } catch (...) {
    return caught(err);
  }
}

}  // namespace

kiln_status kiln_decoder_push(kiln_decoder* dec, int32_t id, char* buf, size_t cap, size_t* len_out, kiln_error* err) {
  if (!dec) return fail(err, KILN_ERR_INVALID_ARGUMENT, "decoder is null");
  if (!is_token_id(*dec->plan, id)) return fail(err, KILN_ERR_INVALID_ARGUMENT, "id " + bad_token_id(*dec->plan, id));
  return decoder_step(
      dec, [&] { return dec->stream.push(id); }, "kiln_decoder_push with the same id", buf, cap, len_out, err);
}

kiln_status kiln_decoder_finish(kiln_decoder* dec, char* buf, size_t cap, size_t* len_out, kiln_error* err) {
  if (!dec) return fail(err, KILN_ERR_INVALID_ARGUMENT, "decoder is null");
  return decoder_step(
      dec, [&] { return dec->stream.finish(); }, "kiln_decoder_finish", buf, cap, len_out, err);
}

void kiln_decoder_destroy(kiln_decoder* dec) { delete dec; }

// --- text-to-image

kiln_status kiln_diffusion_create(kiln_plan* plan, const kiln_context_options* o, kiln_diffusion** out,
                                  kiln_error* err) {
  if (!plan || !out) return fail(err, KILN_ERR_INVALID_ARGUMENT, "plan and out must not be null");
  *out = nullptr;
  return guarded(err, [&]() -> kiln::Status {
    const kiln_context_options def = kiln_context_options_default();
    auto r = kiln::DiffusionSession::create(plan->plan, to_options(o ? o : &def));
    if (!r.is_ok()) return r.status();
    auto d = std::make_unique<kiln_diffusion>();
    d->plan = plan->plan;
    d->s = r.take();
    d->description = d->s->describe();
    d->noise.resize(size_t(d->s->latent_size()));
    d->image.resize(size_t(d->s->height() * d->s->width() * 3));
    *out = d.release();
    return kiln::Status::ok();
  });
}

void kiln_diffusion_destroy(kiln_diffusion* d) {
  if (d && d->in_callback) {
    d->destroy_pending = true;  // (the call running on_step stops and destroys it as it returns)
    return;
  }
  delete d;
}

const char* kiln_diffusion_backend(const kiln_diffusion* d) { return d ? d->s->backend() : ""; }

const char* kiln_diffusion_describe(const kiln_diffusion* d) { return d ? d->description.c_str() : ""; }

kiln_status kiln_diffusion_get_info(const kiln_diffusion* d, kiln_diffusion_info* info, kiln_error* err) {
  if (!d || !info) return fail(err, KILN_ERR_INVALID_ARGUMENT, "session and info must not be null");
  const kiln::DiffusionSession& s = *d->s;
  *info = kiln_diffusion_info{
      s.height(), s.width(),    s.latent_height(),  s.latent_width(),       s.latent_channels(),
      s.steps(),  s.text_len(), s.guided() ? 1 : 0, s.stochastic() ? 1 : 0, s.has_control() ? 1 : 0};
  return report(err, kiln::Status::ok());
}

namespace {

// Why session d may not take a call now (a null session, or one inside its own step callback),
// or "".
std::string session_busy(const kiln_diffusion* d) {
  if (!d) return "session is null";
  if (d->in_callback) return "the step callback called into the session it is running on";
  return "";
}

// A call that needs start (and, for a step, the step the session runs next).
kiln::Status check_started(const kiln_diffusion& d, const char* what) {
  if (d.next_step < 0 && d.failed)
    return kiln::invalid_argument(std::string(what) +
                                  ": this image's start or a step of it failed; kiln_diffusion_start begins another");
  if (d.next_step < 0)
    return kiln::invalid_argument(std::string(what) + " before kiln_diffusion_start: no image is started");
  return kiln::Status::ok();
}

kiln::Status check_next(const kiln_diffusion& d, int64_t step, const char* what) {
  KILN_RETURN_IF_ERROR(check_started(d, what));
  const int64_t steps = d.s->steps();
  if (step < 0 || step >= steps)
    return kiln::invalid_argument("step " + std::to_string(step) + " is out of range [0, " + std::to_string(steps) +
                                  ")");
  if (d.next_step >= steps)
    return kiln::invalid_argument("every step of this image has run: kiln_diffusion_start begins another");
  if (step != d.next_step)
    return kiln::invalid_argument("step " + std::to_string(step) + " is out of order: the image's next step is " +
                                  std::to_string(d.next_step) + " (steps run once each, in order)");
  return kiln::Status::ok();
}

// Runs one or more of the image's steps, after which `next` is the image's next step; until they
// have run the image counts as failed, so that a failure leaves none.
kiln::Status advance(kiln_diffusion* d, int64_t next, const std::function<kiln::Status()>& run) {
  d->next_step = -1;
  d->failed = true;
  KILN_RETURN_IF_ERROR(run());
  d->failed = false;
  d->next_step = next;
  return kiln::Status::ok();
}

// After set_prompt: refused ids change nothing (they are checked before the text encoder runs);
// an encoder that failed leaves no prompt, and the image it conditioned is gone.
void prompt_set(kiln_diffusion* d, kiln_status st) {
  if (st == KILN_OK) {
    d->has_prompt = true;
  } else if (st != KILN_ERR_INVALID_ARGUMENT) {
    d->has_prompt = false;
    d->failed = d->next_step >= 0;
    d->next_step = -1;
  }
}

}  // namespace

kiln_status kiln_diffusion_set_prompt_ids(kiln_diffusion* d, const int32_t* ids, const int32_t* negative_ids,
                                          kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  const kiln_status st = guarded(err, [&] { return d->s->encode_text(ids, d->s->guided() ? negative_ids : nullptr); });
  prompt_set(d, st);
  return st;
}

kiln_status kiln_diffusion_set_prompt(kiln_diffusion* d, const char* prompt, const char* negative, kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  if (!prompt) return fail(err, KILN_ERR_INVALID_ARGUMENT, "session and prompt must not be null");
  const kiln::Tokenizer* t = d->plan->tokenizer();
  if (!t || t->data().kind != kiln::TokenizerData::Kind::kClipBpe)
    return fail(err, KILN_ERR_UNSUPPORTED,
                "this plan has no CLIP tokenizer (compiled with --no-tokenizer?): give token ids");
  const kiln_status st = guarded(err, [&] {
    const int64_t L = d->s->text_len();
    const std::vector<int32_t> ids = t->encode_fixed(prompt, L);
    const std::vector<int32_t> neg = t->encode_fixed(negative ? negative : "", L);
    return d->s->encode_text(ids.data(), d->s->guided() ? neg.data() : nullptr);
  });
  prompt_set(d, st);
  return st;
}

kiln_status kiln_diffusion_start(kiln_diffusion* d, uint64_t seed, const float* noise, const float* control,
                                 kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  if (!d->has_prompt)
    return fail(err, KILN_ERR_INVALID_ARGUMENT,
                "no prompt: kiln_diffusion_set_prompt (or _ids) comes before kiln_diffusion_start");
  const kiln_status st = guarded(err, [&] {
    d->seed = seed;
    if (!noise) {
      d->s->seed_noise(seed, d->noise.data());
      noise = d->noise.data();
    }
    return d->s->prepare(noise, control);
  });
  d->next_step = st == KILN_OK ? 0 : -1;  // (a failed start leaves no image)
  d->failed = st != KILN_OK;
  return st;
}

kiln_status kiln_diffusion_step(kiln_diffusion* d, int64_t step, kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  return guarded(err, [&] {
    KILN_RETURN_IF_ERROR(check_next(*d, step, "kiln_diffusion_step"));
    return advance(d, step + 1, [&] { return d->s->denoise(step, d->seed); });
  });
}

kiln_status kiln_diffusion_denoise(kiln_diffusion* d, kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  return guarded(err, [&] {
    KILN_RETURN_IF_ERROR(check_started(*d, "kiln_diffusion_denoise"));
    if (d->next_step != 0)
      return kiln::invalid_argument(
          "kiln_diffusion_denoise runs every step from the first, but " + std::to_string(d->next_step) +
          " of this image's steps have run: kiln_diffusion_denoise_steps runs the rest, kiln_diffusion_start "
          "begins another image");
    return advance(d, d->s->steps(), [&] { return d->s->denoise_all(d->seed); });
  });
}

kiln_status kiln_diffusion_denoise_steps(kiln_diffusion* d, kiln_step_callback on_step, void* user, kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  const kiln_status st = guarded(err, [&] {
    const int64_t steps = d->s->steps();
    KILN_RETURN_IF_ERROR(check_started(*d, "kiln_diffusion_denoise_steps"));
    if (d->next_step >= steps)
      return kiln::invalid_argument("every step of this image has run: kiln_diffusion_start begins another");
    // From the image's next step: after a callback stopped it, the call goes on from there.
    while (d->next_step < steps) {
      const int64_t step = d->next_step;
      KILN_RETURN_IF_ERROR(advance(d, step + 1, [&] { return d->s->denoise(step, d->seed); }));
      if (!on_step) continue;
      struct InCallback {
        bool& flag;
        ~InCallback() { flag = false; }
      } guard{d->in_callback};
      d->in_callback = true;
      if (on_step(user, step, steps) == 0 || d->destroy_pending)
        return kiln::invalid_argument("stopped by the step callback after step " + std::to_string(step));
    }
    return kiln::Status::ok();
  });
  if (d->destroy_pending) delete d;
  return st;
}

const float* kiln_diffusion_latents(const kiln_diffusion* d) { return d ? d->s->latents() : nullptr; }

kiln_status kiln_diffusion_decode(kiln_diffusion* d, float* image_out, uint8_t* rgb_out, kiln_error* err) {
  if (const std::string busy = session_busy(d); !busy.empty()) return fail(err, KILN_ERR_INVALID_ARGUMENT, busy);
  return guarded(err, [&] {
    KILN_RETURN_IF_ERROR(check_started(*d, "kiln_diffusion_decode"));
    KILN_RETURN_IF_ERROR(d->s->decode(d->image.data()));
    if (image_out) std::memcpy(image_out, d->image.data(), d->image.size() * sizeof(float));
    if (rgb_out) kiln::DiffusionSession::to_rgb8(d->image.data(), d->s->height() * d->s->width(), rgb_out);
    return kiln::Status::ok();
  });
}

kiln_status kiln_txt2img(kiln_diffusion* d, const char* prompt, const char* negative, uint64_t seed,
                         const float* control, uint8_t* rgb_out, kiln_step_callback on_step, void* user,
                         kiln_error* err) {
  if (!d || !rgb_out) return fail(err, KILN_ERR_INVALID_ARGUMENT, "session and rgb_out must not be null");
  if (kiln_status st = kiln_diffusion_set_prompt(d, prompt, negative, err)) return st;
  if (kiln_status st = kiln_diffusion_start(d, seed, nullptr, control, err)) return st;
  const kiln_status st = on_step ? kiln_diffusion_denoise_steps(d, on_step, user, err) : kiln_diffusion_denoise(d, err);
  if (st != KILN_OK) return st;
  return kiln_diffusion_decode(d, nullptr, rgb_out, err);
}

kiln_status kiln_control_image_from_rgb8(const uint8_t* rgb, int64_t w, int64_t h, int64_t out_w, int64_t out_h,
                                         float* out, kiln_error* err) {
  return guarded(err, [&] { return kiln::control_image_from_rgb8(rgb, w, h, out_w, out_h, out); });
}

}  // extern "C"
