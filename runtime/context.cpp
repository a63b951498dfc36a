#include "runtime/context.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

namespace kiln {

Context::~Context() = default;

Result<std::unique_ptr<Executor>> make_executor(std::shared_ptr<const Plan> plan, const ContextOptions& opts) {
  std::string device = opts.device;
  if (device == "auto") device = (cuda_device_count() > 0 && plan->has_target("cuda")) ? "cuda" : "cpu";
  if (device == "cpu") return make_cpu_executor(plan, opts.n_threads, opts.cpu_huge_pages);
  if (device == "cuda") {
    CudaExecutorOptions co;
    co.use_graphs = opts.use_graphs;
    co.use_cublaslt = opts.use_cublaslt;
    co.use_pdl = opts.use_pdl;
    co.upload_progress = opts.upload_progress;
    co.stream = opts.cuda_stream;
    co.device_memory = opts.cuda_device_memory;
    co.device_memory_bytes = opts.cuda_device_memory_bytes;
    return make_cuda_executor(plan, co);
  }
  return invalid_argument("unknown device '" + opts.device + "' (cpu, cuda or auto)");
}

Result<std::unique_ptr<Context>> Context::create(std::shared_ptr<const Plan> plan, const ContextOptions& opts) {
  if (!plan) return invalid_argument("plan is null");
  std::unique_ptr<Context> c(new (std::nothrow) Context());
  if (!c) return Status(StatusCode::kOutOfMemory, "out of memory creating a context");
  c->plan_ = plan;
  Result<std::unique_ptr<Executor>> e = make_executor(plan, opts);
  if (!e.is_ok()) return e.status();
  c->exec_ = e.take();
  KILN_RETURN_IF_ERROR(c->init(opts));
  return c;
}

Status Context::init(const ContextOptions& opts) {
  if (plan_->kind() != PlanKind::kLlm)
    return unsupported(
        std::string("a ") + plan_kind_name(plan_->kind()) +
        " plan is not a language model (use a text-to-image session: kiln_diffusion_create, kiln txt2img)");
  // Binding first: it checks batch and vocab against real tensors of the plan, so the
  // host buffers below are never sized from the model metadata alone.
  KILN_RETURN_IF_ERROR(bind_llm_program("prefill", &prefill_, true));
  KILN_RETURN_IF_ERROR(bind_llm_program("decode", &decode_, false));
  if (plan_->find_program("score") >= 0) KILN_RETURN_IF_ERROR(bind_llm_program("score", &score_, false));
  if (plan_->find_program("ingest") >= 0) {
    KILN_RETURN_IF_ERROR(bind_llm_inputs("ingest", &ingest_));
    if (ingest_.chunk != prefill_.chunk)
      return corrupt_plan("program 'ingest' takes " + std::to_string(ingest_.chunk) + " tokens per row, prefill " +
                          std::to_string(prefill_.chunk) + "; they must be equal");
  }
  if (decode_.chunk != 1) return corrupt_plan("the decode program must take one token per row");
  if (prefill_.chunk != plan_->model().chunk)  // kiln_plan_get_info reports the model's
    return corrupt_plan("program 'prefill' takes " + std::to_string(prefill_.chunk) +
                        " tokens per row, but the plan's model says its chunk is " +
                        std::to_string(plan_->model().chunk));
  KILN_RETURN_IF_ERROR(set_generate_depth(opts.generate_depth));
  if (decode_.next_tensor != kNoTensor && decode_.sampling) {
    // The backend's own token feedback when it has one, and host steps through run(), which
    // honour set_profile (and serve backends without their own).
    const FeedbackTensors t = FeedbackTensors::of(plan_->programs()[size_t(decode_.index)]);
    auto native = exec_->enable_token_feedback(decode_.index, t);
    if (!native.is_ok()) return native.status();
    native_feedback_ = native.take();
    auto host = make_token_feedback(*exec_, *plan_, decode_.index, t, [this] { return run(decode_); });
    if (!host.is_ok()) return host.status();
    host_feedback_ = host.take();
  }
  try {
    pos_.assign(size_t(batch()), 0);
    last_logits_.assign(size_t(batch() * vocab()), 0.0f);
    has_logits_.assign(size_t(batch()), 0);
    step_tokens_.assign(size_t(batch()), -1);
    sampler_ = SamplerScratch(vocab());
  } catch (const std::exception&) {
    return Status(StatusCode::kOutOfMemory, "out of memory creating the context");
  }
  return Status::ok();
}

Status Context::set_generate_depth(int depth) {
  if (depth < 0 || depth > int(kFeedbackRing))
    return invalid_argument("generate_depth must be in [0, " + std::to_string(kFeedbackRing) + "], not " +
                            std::to_string(depth));
  depth_ = depth > 0 ? depth : std::string(exec_->backend()) == "cpu" ? 1 : 3;
  return Status::ok();
}

Status Context::bind_llm_inputs(const char* name, ProgramState* ps) {
  const Plan& p = *plan_;
  ps->index = p.find_program(name);
  if (ps->index < 0) return unsupported(std::string("plan has no '") + name + "' program");
  const ProgramInfo& pr = p.programs()[size_t(ps->index)];
  const auto& T = p.tensors();
  const uint32_t tok = pr.input("tokens"), start = pr.input("start_pos"), valid = pr.input("n_valid");
  const std::string what = std::string("program '") + name + "'";
  if (tok == kNoTensor || start == kNoTensor || valid == kNoTensor)
    return corrupt_plan(what + " lacks the tokens/start_pos/n_valid inputs");
  const int64_t b = batch();
  if (T[tok].shape.size() != 2 || T[tok].shape[0] != b) return corrupt_plan(what + ": tokens must be (batch, chunk)");
  ps->chunk = T[tok].shape[1];
  if (T[start].shape != std::vector<int64_t>{b} || T[valid].shape != std::vector<int64_t>{b})
    return corrupt_plan(what + ": start_pos and n_valid must be (batch,)");
  uint8_t* state = exec_->host_state();
  ps->tokens = reinterpret_cast<int32_t*>(state + T[tok].offset);
  ps->start_pos = reinterpret_cast<int32_t*>(state + T[start].offset);
  ps->n_valid = reinterpret_cast<int32_t*>(state + T[valid].offset);
  return Status::ok();
}

Status Context::bind_llm_program(const char* name, ProgramState* ps, bool last_rows) {
  KILN_RETURN_IF_ERROR(bind_llm_inputs(name, ps));
  const Plan& p = *plan_;
  const ProgramInfo& pr = p.programs()[size_t(ps->index)];
  const auto& T = p.tensors();
  const uint32_t lg = pr.output("logits");
  const std::string what = std::string("program '") + name + "'";
  if (lg == kNoTensor) return corrupt_plan(what + " lacks the logits output");
  const int64_t b = batch();
  ps->logit_rows = ps->chunk;
  if (last_rows && T[lg].shape == std::vector<int64_t>{b, vocab()}) ps->logit_rows = 1;
  if (T[lg].dtype != DType::F32 || T[lg].shape != std::vector<int64_t>{b * ps->logit_rows, vocab()})
    return corrupt_plan(what + (last_rows ? ": logits must be f32 (batch*chunk, vocab) or (batch, vocab)"
                                          : ": logits must be f32 (batch*chunk, vocab)"));
  uint8_t* state = exec_->host_state();
  ps->logits_tensor = lg;
  ps->next_tensor = pr.output("next_token");  // absent in plans made before kiln had it
  if (ps->next_tensor != kNoTensor &&
      (T[ps->next_tensor].dtype != DType::I32 || T[ps->next_tensor].shape != std::vector<int64_t>{b}))
    return corrupt_plan(what + ": next_token must be i32 (batch,)");
  const uint32_t sampling = pr.input("sampling");
  if (sampling != kNoTensor) {
    if (T[sampling].dtype != DType::I32 || T[sampling].shape != std::vector<int64_t>{b, kSampleParamWords})
      return corrupt_plan(what + ": sampling must be i32 (batch, 8)");
    if (T[sampling].offset % alignof(SampleParams) != 0)  // read as SampleParams (8-byte fields)
      return corrupt_plan(what + ": sampling must be 8-byte aligned");
    ps->sampling = reinterpret_cast<SampleParams*>(state + T[sampling].offset);
  }
  return Status::ok();
}

Status Context::run(ProgramState& ps) {
  KILN_RETURN_IF_ERROR(profile_ms_ ? exec_->profile(ps.index, profile_ms_) : exec_->run(ps.index));
  if (ps.logits_tensor == kNoTensor) return Status::ok();  // ingest: no outputs
  ps.logits = static_cast<const float*>(exec_->host_output(ps.logits_tensor));
  ps.next = ps.next_tensor == kNoTensor ? nullptr : static_cast<const int32_t*>(exec_->host_output(ps.next_tensor));
  return Status::ok();
}

void Context::reset() {
  if (in_callback_) return;
  std::fill(pos_.begin(), pos_.end(), 0);
  std::fill(has_logits_.begin(), has_logits_.end(), 0);
}

Status Context::check_not_in_callback() const {
  if (in_callback_)
    return invalid_argument(
        "generate's on_token callback called into the context it is generating on (decode steps may still be running)");
  return Status::ok();
}

Status Context::check_ids(const int32_t* ids, int64_t n, int64_t first) const {
  if (n < 0) return invalid_argument("the number of token ids is negative (" + std::to_string(n) + ")");
  if (n == 0) return invalid_argument("empty prompt: at least one token id is required");
  if (!ids) return invalid_argument("token ids are null");
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab())
      return invalid_argument("token id " + std::to_string(ids[i]) + " at index " + std::to_string(first + i) +
                              " is out of range [0, " + std::to_string(vocab()) + ")");
  return Status::ok();
}

Status Context::prefill(int64_t row, const int32_t* ids, int64_t n) {
  KILN_RETURN_IF_ERROR(check_not_in_callback());
  if (row < 0 || row >= batch())
    return invalid_argument("row " + std::to_string(row) + " is out of range: the plan has batch " +
                            std::to_string(batch()));
  if (n > max_seq() - pos_[size_t(row)])
    return limit_exceeded(std::to_string(n) + " tokens at position " + std::to_string(pos_[size_t(row)]) +
                          " exceed the plan's max_seq of " + std::to_string(max_seq()));
  KILN_RETURN_IF_ERROR(check_ids(ids, n));
  has_logits_[size_t(row)] = 0;  // (until its last chunk has run)
  const int64_t C = prefill_.chunk;
  for (int64_t done = 0; done < n; done += C) {
    const int64_t len = std::min(C, n - done);
    // A chunk before the prompt's last only fills the KV cache: no LM head (`ingest`) where the plan can.
    ProgramState& ps = done + len < n && ingest_.index >= 0 ? ingest_ : prefill_;
    std::fill(ps.tokens, ps.tokens + batch() * C, 0);
    std::fill(ps.n_valid, ps.n_valid + batch(), 0);
    for (int64_t b = 0; b < batch(); ++b) ps.start_pos[b] = int32_t(pos_[size_t(b)]);
    std::copy(ids + done, ids + done + len, ps.tokens + row * C);
    ps.n_valid[row] = int32_t(len);
    KILN_RETURN_IF_ERROR(run(ps));
    pos_[size_t(row)] += len;
    if (&ps == &ingest_) continue;
    const int64_t last = row * prefill_.logit_rows + std::min(len, prefill_.logit_rows) - 1;
    std::copy(prefill_.logits + last * vocab(), prefill_.logits + (last + 1) * vocab(),
              last_logits_.begin() + row * vocab());
    has_logits_[size_t(row)] = 1;
  }
  return Status::ok();
}

Status Context::decode(const int32_t* tokens) {
  KILN_RETURN_IF_ERROR(check_not_in_callback());
  if (!tokens) return invalid_argument("tokens are null");
  bool any = false;
  for (int64_t b = 0; b < batch(); ++b) {
    if (tokens[b] < 0) continue;
    any = true;
    KILN_RETURN_IF_ERROR(check_ids(tokens + b, 1, b));
    if (pos_[size_t(b)] + 1 > max_seq())
      return limit_exceeded("row " + std::to_string(b) + " is full: the plan's max_seq is " +
                            std::to_string(max_seq()));
  }
  if (!any) return invalid_argument("decode needs at least one active row");
  for (int64_t b = 0; b < batch(); ++b) {
    const bool active = tokens[b] >= 0;
    if (active) has_logits_[size_t(b)] = 0;  // (until the step has run)
    decode_.tokens[b] = active ? tokens[b] : 0;
    decode_.start_pos[b] = int32_t(pos_[size_t(b)]);
    decode_.n_valid[b] = active ? 1 : 0;
  }
  KILN_RETURN_IF_ERROR(run(decode_));
  for (int64_t b = 0; b < batch(); ++b) {
    if (tokens[b] < 0) continue;
    pos_[size_t(b)] += 1;
    std::copy(decode_.logits + b * vocab(), decode_.logits + (b + 1) * vocab(), last_logits_.begin() + b * vocab());
    has_logits_[size_t(b)] = 1;
  }
  return Status::ok();
}

Status Context::score(const int32_t* ids, int64_t rows, int64_t n_tokens, float* out) {
  KILN_RETURN_IF_ERROR(check_not_in_callback());
  if (rows <= 0 || n_tokens <= 0) return invalid_argument("score needs at least one row and one token");
  if (!out) return invalid_argument("output buffer is null");
  if (n_tokens > max_seq())
    return limit_exceeded(std::to_string(n_tokens) + " tokens exceed the plan's max_seq of " +
                          std::to_string(max_seq()));
  if (rows > (int64_t(1) << 40) / (n_tokens * vocab())) return limit_exceeded("score: too many rows for one call");
  KILN_RETURN_IF_ERROR(check_ids(ids, rows * n_tokens));
  ProgramState& s = score_.index >= 0 ? score_ : prefill_;
  if (s.logit_rows != s.chunk)
    return unsupported("this plan's prefill keeps only each row's last logits and it has no 'score' program");
  const int64_t B = batch(), C = s.chunk, V = vocab();
  for (int64_t r0 = 0; r0 < rows; r0 += B) {
    const int64_t nb = std::min(B, rows - r0);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += C) {
      const int64_t len = std::min(C, n_tokens - t0);
      std::fill(s.tokens, s.tokens + B * C, 0);
      for (int64_t b = 0; b < B; ++b) {
        s.start_pos[b] = int32_t(t0);
        s.n_valid[b] = b < nb ? int32_t(len) : 0;
        if (b < nb)
          std::copy(ids + (r0 + b) * n_tokens + t0, ids + (r0 + b) * n_tokens + t0 + len, s.tokens + b * C);
      }
      KILN_RETURN_IF_ERROR(run(s));
      for (int64_t b = 0; b < nb; ++b)
        std::copy(s.logits + b * C * V, s.logits + (b * C + len) * V,
                  out + ((r0 + b) * n_tokens + t0) * V);
    }
  }
  reset();
  return Status::ok();
}

int32_t Context::sample(int64_t row, const SamplingParams& sp, uint64_t step) {
  return sample_token(logits(row), vocab(), sp, step, sampler_);
}

namespace {
std::string shortest(double v) {  // (for messages: -1, nan, 0.5)
  char b[32];
  std::snprintf(b, sizeof(b), "%g", v);
  return b;
}
}  // namespace

Status Context::generate(const int32_t* prompt, int64_t n_prompt, int64_t max_new, const SamplingParams& sp,
                         int32_t eos, int32_t* out, int64_t* n_out, const std::function<bool(int32_t)>& on_token) {
  KILN_RETURN_IF_ERROR(check_not_in_callback());
  if (n_out) *n_out = 0;
  if (max_new < 0) return invalid_argument("max_new_tokens is negative");
  if (max_new > 0 && !out) return invalid_argument("output buffer is null");
  if (!(sp.temperature >= 0.0f))
    return invalid_argument("temperature " + shortest(sp.temperature) + " is not a number >= 0");
  if (!(sp.top_p > 0.0f)) return invalid_argument("top_p " + shortest(sp.top_p) + " is not a number > 0");
  if (eos >= vocab())  // (one that could never be generated would never stop it)
    return invalid_argument("eos_id " + std::to_string(eos) + " is not a token id of this plan (its vocabulary has " +
                            std::to_string(vocab()) + ")");
  if (n_prompt > max_seq() || max_new > max_seq() - std::max<int64_t>(n_prompt, 0))
    return limit_exceeded("prompt of " + std::to_string(n_prompt) + " tokens plus " + std::to_string(max_new) +
                          " new tokens exceeds the plan's max_seq of " + std::to_string(max_seq()));
  KILN_RETURN_IF_ERROR(check_ids(prompt, n_prompt));
  pos_[0] = 0;
  has_logits_[0] = 0;
  // With the plan's `sample` launch the tokens are chosen on the backend and fed back there
  // (GenerateSteps): nothing copies, sorts or scans the logits per step, and the last step's
  // logits are fetched at the end, so logits(0) afterwards is what it would have been.
  const bool on_device = samples_on_backend(sp);
  SampleParams kp{sp.temperature, sp.top_k, sp.top_p, 0, sp.seed, 0};
  if (on_device) set_sampling(kp);
  struct Greedy {  // back to greedy on every exit, so plain prefill/decode calls never sample
    Context* c;
    bool on;
    ~Greedy() {
      if (on) c->set_sampling(SampleParams{});
    }
  } greedy_after{this, on_device};
  KILN_RETURN_IF_ERROR(prefill(0, prompt, n_prompt));
  int64_t n = 0;
  auto emit = [&](int32_t tok) {  // false: stop
    out[n++] = tok;
    if (n_out) *n_out = n;
    if (on_token) {
      struct InCallback {  // steps may be in flight: the callback must not touch the context
        bool& flag;
        ~InCallback() { flag = false; }
      } guard{in_callback_};
      in_callback_ = true;
      if (!on_token(tok)) return false;
    }
    return !(tok == eos || n == max_new);
  };
  if (max_new == 0) return Status::ok();
  // One loop: the prefill chose the first token; each later one comes from one decode step, its
  // token chosen by the plan's sample launch and fed back on the backend (steps queued ahead), or
  // on the host. emit() alone decides when to stop.
  TokenFeedback* feedback = !on_device                         ? nullptr
                            : native_feedback_ && !profile_ms_ ? native_feedback_.get()
                                                               : host_feedback_.get();
  GenerateSteps steps(*this, feedback, profile_ms_ ? 1 : depth_, sp, out, max_new);  // profiles time one step
  int32_t tok = on_device ? prefill_.next[0] : sample(0, sp, 0);
  for (;;) {
    if (tok < 0 || tok >= vocab()) return Status(StatusCode::kInternal, "the plan's sample launch gave no token");
    if (!emit(tok)) break;
    Result<int32_t> next = steps.next(tok, n);
    if (!next.is_ok()) return next.status();
    tok = next.value();
  }
  KILN_RETURN_IF_ERROR(steps.finish(n));
  return check_last_logits_finite(n);
}

// A NaN or infinite logit means the plan's arithmetic broke down (an f16 plan's activations past
// ±65504, say): argmax skips NaN, so the tokens would be garbage without a word. The last step's
// logits are on the host after generate; a NaN in the cache reaches every later step through
// attention, so checking them catches a breakdown at most steps (not one that a sliding window
// has left behind by the end).
Status Context::check_last_logits_finite(int64_t emitted) {
  if (!has_logits_[0]) return Status::ok();
  const float* row = last_logits_.data();
  const float* bad = std::find_if(row, row + vocab(), [](float v) { return !std::isfinite(v); });
  if (bad == row + vocab()) return Status::ok();
  has_logits_[0] = 0;  // (a failed generate leaves none)
  return limit_exceeded("generate's last logits (token " + std::to_string(emitted) + ") hold " +
                        (std::isnan(*bad) ? "NaN" : "an infinity") +
                        ": the tokens are not the model's; its arithmetic left the range of the plan's dtype (f16's "
                        "is ±65504: compile with --dtype bf16 or f32) or its weights are not finite");
}

// generate's decode steps after the prompt. Fed (a TokenFeedback): step s reads out[s] at position
// pos_[0] + s and chooses out[s + 1]; step 0's state is the host's, each later one is fed back
// from the step before, and up to `depth` steps run ahead of the tokens read. Otherwise one
// decode per token, the host sampling from its logits.
Context::GenerateSteps::GenerateSteps(Context& c, TokenFeedback* feedback, int depth, const SamplingParams& sp,
                                      const int32_t* out, int64_t max_new)
    : c_(c), feedback_(feedback), depth_(depth), sp_(sp), out_(out), steps_(max_new - 1) {}

Context::GenerateSteps::~GenerateSteps() {
  if (feedback_ && started_) (void)feedback_->finish_steps();  // nothing may still read the host state
}

Result<int32_t> Context::GenerateSteps::next(int32_t last, int64_t emitted) {
  if (!feedback_) {
    std::fill(c_.step_tokens_.begin(), c_.step_tokens_.end(), -1);
    c_.step_tokens_[0] = last;
    KILN_RETURN_IF_ERROR(c_.decode(c_.step_tokens_.data()));
    return c_.sample(0, sp_, uint64_t(emitted));
  }
  if (queued_ == 0) {
    ProgramState& d = c_.decode_;
    for (int64_t b = 0; b < c_.batch(); ++b) {
      d.tokens[b] = b == 0 ? last : 0;
      d.start_pos[b] = int32_t(c_.pos_[size_t(b)]);
      d.n_valid[b] = b == 0 ? 1 : 0;
    }
    SampleParams kp = d.sampling[0];
    kp.step = 1;
    c_.set_sampling(kp);
  }
  started_ = true;  // from here on work may be queued (a failed first enqueue may have queued its state copy)
  c_.has_logits_[0] = 0;  // (the steps' logits stay on the backend until finish fetches the last)
  for (; queued_ < steps_ && queued_ - done_ < depth_; ++queued_)
    KILN_RETURN_IF_ERROR(feedback_->enqueue_step(queued_ == 0));
  Result<const int32_t*> r = feedback_->step_tokens(uint64_t(done_));
  if (!r.is_ok()) return r.status();
  ++done_;
  c_.pos_[0] += 1;
  return r.value()[0];
}

Status Context::GenerateSteps::finish(int64_t emitted) {
  if (!feedback_ || !started_) return Status::ok();  // logits(0) are the last decode's (or the prefill's)
  started_ = false;
  KILN_RETURN_IF_ERROR(feedback_->finish_steps());
  const bool ran_ahead = queued_ > done_;
  if (ran_ahead) {
    // Steps ran ahead of the last token kept: replay the step that chose it, for its logits. It
    // reads the same cache at the same position, so it writes the same keys and values again
    // (the steps after it wrote only later positions, which it does not read).
    std::fill(c_.step_tokens_.begin(), c_.step_tokens_.end(), -1);
    c_.step_tokens_[0] = out_[emitted - 2];
    c_.pos_[0] -= 1;
    return c_.decode(c_.step_tokens_.data());
  }
  KILN_RETURN_IF_ERROR(c_.exec_->fetch_outputs(c_.decode_.index));
  const float* logits = static_cast<const float*>(c_.exec_->host_output(c_.decode_.logits_tensor));
  std::copy(logits, logits + c_.vocab(), c_.last_logits_.begin());
  c_.has_logits_[0] = 1;
  return Status::ok();
}

bool Context::samples_on_backend(const SamplingParams& sp) const {
  if (decode_.next_tensor == kNoTensor || prefill_.next_tensor == kNoTensor || !decode_.sampling || !prefill_.sampling)
    return false;
  if (!(sp.temperature > 0.0f) || std::string(exec_->backend()) == "cpu") return true;
  const int64_t k = sp.top_k > 0 && sp.top_k < vocab() ? sp.top_k : vocab();
  return k <= kSampleMaxTopK;
}

void Context::set_sampling(const SampleParams& p) {
  for (ProgramState* ps : {&prefill_, &decode_}) {
    std::fill(ps->sampling, ps->sampling + batch(), SampleParams{});
    ps->sampling[0] = p;
  }
}

}  // namespace kiln
