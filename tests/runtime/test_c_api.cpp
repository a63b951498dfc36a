// The C API: plans, contexts, score/prefill/decode/generate, and every limit and bad
// argument returning a clear status with nothing written to outputs.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "compiler/compile.h"
#include "kiln/kiln.h"
#include "test_util.h"

using kiln::test::TempDir;

namespace {

struct Fixture {
  TempDir dir;
  kiln_plan* plan = nullptr;
  kiln_context* ctx = nullptr;
  kiln::test::Reference ref;
  Fixture() {
    kiln::CompileOptions o;
    o.model_dir = kiln::test::fixture("tied_f32");
    o.output = dir / "p.kplan";
    o.max_seq = 32;
    o.chunk = 8;
    o.batch = 2;
    kiln::compile_model(o);
    ref = kiln::test::load_reference(o.model_dir);
    kiln_error err{};
    REQUIRE(kiln_plan_open(o.output.c_str(), &plan, &err) == KILN_OK);
    REQUIRE(kiln_context_create(plan, 2, &ctx, &err) == KILN_OK);
  }
  ~Fixture() {
    kiln_context_destroy(ctx);
    kiln_plan_close(plan);
  }
};

}  // namespace

TEST_CASE("C API: version, info and status strings") {
  Fixture f;
  CHECK(kiln_api_version() == KILN_API_VERSION);
  kiln_plan_info info;
  kiln_error err{};
  REQUIRE(kiln_plan_get_info(f.plan, &info, &err) == KILN_OK);
  CHECK(info.vocab_size == 256);
  CHECK(info.max_seq == 32);
  CHECK(info.batch == 2);
  CHECK(info.chunk == 8);
  CHECK(std::string(kiln_status_string(KILN_ERR_LIMIT)) == "limit exceeded");
  // What a host must hand a CUDA context: every weight byte plus arena, KV cache and state.
  const uint64_t dev = kiln_plan_device_bytes(f.plan);
  CHECK(dev >= 465 * 1024);  // the tied_f32 fixture's weights alone are ~465 KiB
  CHECK(dev % 256 == 0);
  {  // a plan that never runs on CUDA needs no device memory
    kiln::CompileOptions o;
    o.model_dir = kiln::test::fixture("tied_f32");
    o.output = f.dir / "cpu.kplan";
    o.max_seq = 32;
    o.target = "cpu";
    kiln::compile_model(o);
    kiln_plan* cpu = nullptr;
    REQUIRE(kiln_plan_open(o.output.c_str(), &cpu, &err) == KILN_OK);
    CHECK(kiln_plan_device_bytes(cpu) == 0);
    kiln_plan_close(cpu);
  }
  const kiln_context_options o = kiln_context_options_default();
  CHECK(o.cuda_stream == nullptr);
  CHECK(o.cuda_device_memory == nullptr);
  CHECK(std::string(o.device) == "auto");
  CHECK(o.use_graphs == 1);
  CHECK(o.use_cublaslt == 1);
  CHECK(!o.upload_progress);
  CHECK(std::string(kiln_context_describe(f.ctx)).rfind("cpu, ", 0) == 0);  // "cpu, N threads"
  CHECK(std::string(kiln_context_describe(nullptr)).empty());
  CHECK(o.upload_progress_user == nullptr);
  CHECK(o.generate_depth == 0);
  CHECK(o.cpu_huge_pages == 0);
}

TEST_CASE("C API: score and generate match the reference, and the plan may close before the context") {
  Fixture f;
  kiln_error err{};
  std::vector<float> logits(f.ref.logits.size());
  REQUIRE(kiln_score(f.ctx, f.ref.input_ids.data(), f.ref.rows, f.ref.tokens, logits.data(), &err) == KILN_OK);
  CHECK(kiln::test::rel_l2(logits.data(), f.ref.logits.data(), logits.size()) <= 1e-4);
  kiln_plan_close(f.plan);  // the context keeps its own reference
  f.plan = nullptr;
  const int64_t n_new = int64_t(f.ref.greedy_ids.size() - f.ref.prompt_ids.size());
  std::vector<int32_t> out(static_cast<size_t>(n_new));
  int64_t n = 0;
  std::vector<int32_t> streamed;
  auto cb = [](void* user, int32_t t) -> int {
    static_cast<std::vector<int32_t>*>(user)->push_back(t);
    return 1;
  };
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), int64_t(f.ref.prompt_ids.size()), n_new, nullptr, -1,
                        out.data(), &n, cb, &streamed, &err) == KILN_OK);
  CHECK(n == n_new);
  CHECK(streamed == out);
  CHECK(std::equal(out.begin(), out.end(), f.ref.greedy_ids.begin() + long(f.ref.prompt_ids.size())));
  // Stop early from the callback, and at an eos id.
  auto stop_after_2 = [](void* user, int32_t) -> int { return ++*static_cast<int*>(user) < 2; };
  int calls = 0;
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, n_new, nullptr, -1, out.data(), &n, stop_after_2, &calls,
                        &err) == KILN_OK);
  CHECK(n == 2);
  const int32_t eos = f.ref.greedy_ids[f.ref.prompt_ids.size() + 3];
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, n_new, nullptr, eos, out.data(), &n, nullptr, nullptr,
                        &err) == KILN_OK);
  CHECK(out[size_t(n - 1)] == eos);
  CHECK(n <= 4);
}

// kiln_context_destroy and kiln_context_reset return nothing, so from inside generate's callback
// they cannot be refused: they end the generation after that callback and take effect as
// kiln_generate returns (a destroy there was a use after free, a reset silently dropped).
TEST_CASE("C API: destroy or reset from generate's callback ends it and takes effect as it returns") {
  Fixture f;
  kiln_error err{};
  for (const int depth : {1, 4}) {
    CAPTURE(depth);
    kiln_context_options o = kiln_context_options_default();
    o.n_threads = 2;
    o.generate_depth = depth;
    for (const bool destroy : {false, true}) {
      CAPTURE(destroy);
      kiln_context* ctx = nullptr;
      REQUIRE(kiln_context_create_with(f.plan, &o, &ctx, &err) == KILN_OK);
      struct Cb {
        kiln_context* ctx;
        bool destroy;
        int calls = 0;
        int seen = 0;  // kiln_logits or kiln_sample calls that gave something (they must not)
      } cb{ctx, destroy};
      auto on_token = [](void* user, int32_t) -> int {
        auto* c = static_cast<Cb*>(user);
        c->seen += (kiln_logits(c->ctx, 0) != nullptr) + (kiln_sample(c->ctx, 0, nullptr, 0) != -1);
        if (++c->calls == 2) {
          if (c->destroy) kiln_context_destroy(c->ctx);
          else kiln_context_reset(c->ctx);
          // A refused call afterwards (into the context the callback runs on) must neither do the
          // destroy or reset itself nor drop it (an outside tester found both).
          const int32_t p[2] = {1, 2};
          int32_t o[2];
          int64_t m = 0;
          kiln_error e{};
          c->seen +=
              kiln_generate(c->ctx, p, 2, 2, nullptr, -1, o, &m, nullptr, nullptr, &e) != KILN_ERR_INVALID_ARGUMENT;
        }
        return 1;  // (goes on: the destroy or reset alone ends it)
      };
      std::vector<int32_t> out(8);
      int64_t n = 0;
      REQUIRE(kiln_generate(ctx, f.ref.prompt_ids.data(), 5, 8, nullptr, -1, out.data(), &n, on_token, &cb, &err) ==
              KILN_OK);
      CHECK(n == 2);
      CHECK(cb.calls == 2);
      CHECK(cb.seen == 0);  // (steps may be in flight: no logits from inside the callback)
      CHECK(std::equal(out.begin(), out.begin() + 2, f.ref.greedy_ids.begin() + 5));
      if (destroy) continue;                  // (gone; ASan sees a later touch, and a leak)
      CHECK(kiln_logits(ctx, 0) == nullptr);  // reset: no sequence, no logits
      REQUIRE(kiln_generate(ctx, f.ref.prompt_ids.data(), 5, 3, nullptr, -1, out.data(), &n, nullptr, nullptr, &err) ==
              KILN_OK);  // usable afterwards
      CHECK(std::equal(out.begin(), out.begin() + 3, f.ref.greedy_ids.begin() + 5));
      kiln_context_destroy(ctx);
    }
  }
}

// fork() copies the calling thread only: a child that used a context made before the fork with
// several threads waited forever on workers that stayed in the parent (an outside tester's
// prefork host). The child now runs the pool's blocks on its own thread, the same bits, and can
// destroy the context.
TEST_CASE("C API: a fork's child generates on a context made before the fork, and destroys it") {
  Fixture f;  // (2 threads)
  kiln_error err{};
  std::vector<int32_t> want(6), got(6);
  int64_t n = 0;
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, 6, nullptr, -1, want.data(), &n, nullptr, nullptr, &err) ==
          KILN_OK);
  std::vector<float> logits_want(f.ref.logits.size());
  REQUIRE(kiln_score(f.ctx, f.ref.input_ids.data(), f.ref.rows, f.ref.tokens, logits_want.data(), &err) == KILN_OK);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(60);  // a hang ends the child by SIGALRM
    kiln_error e{};
    int64_t m = 0;
    std::vector<float> logits(f.ref.logits.size());
    const bool ok = kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, 6, nullptr, -1, got.data(), &m, nullptr, nullptr,
                                  &e) == KILN_OK &&
                    got == want &&
                    kiln_score(f.ctx, f.ref.input_ids.data(), f.ref.rows, f.ref.tokens, logits.data(), &e) == KILN_OK &&
                    std::memcmp(logits.data(), logits_want.data(), logits.size() * sizeof(float)) == 0;
    kiln_context_destroy(f.ctx);
    std::exit(ok ? 0 : 1);  // (exit, not _exit: under ASan, LeakSanitizer checks the child too)
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // The parent's context and its workers are untouched.
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, 6, nullptr, -1, got.data(), &n, nullptr, nullptr, &err) ==
          KILN_OK);
  CHECK(got == want);
}

// generate_depth: the decode loop with steps in flight gives the same tokens and the same early stop;
// so do contexts reading the weights from the huge-page copy (cpu_huge_pages).
TEST_CASE(
    "C API: generate with steps in flight equals the reference and stops at the same eos, and bad depths are refused") {
  Fixture f;
  kiln_error err{};
  const int64_t n_new = int64_t(f.ref.greedy_ids.size() - f.ref.prompt_ids.size());
  const int32_t eos = f.ref.greedy_ids[f.ref.prompt_ids.size() + 3];
  std::vector<int32_t> out(static_cast<size_t>(n_new));
  int64_t n = 0;
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, n_new, nullptr, eos, out.data(), &n, nullptr, nullptr,
                        &err) == KILN_OK);
  // Depths 4 and 16, then twice with cpu_huge_pages (the second context reuses the first one's copy).
  for (int run = 0; run < 4; ++run) {
    const int depth = run == 0 ? 4 : run == 1 ? 16 : 0;
    const bool huge = run >= 2;
    CAPTURE(depth);
    CAPTURE(huge);
    kiln_context_options o = kiln_context_options_default();
    o.device = "cpu";
    o.generate_depth = depth;
    o.cpu_huge_pages = huge ? 1 : 0;
    kiln_context* c = nullptr;
    REQUIRE(kiln_context_create_with(f.plan, &o, &c, &err) == KILN_OK);
    CHECK((std::string(kiln_context_describe(c)).find("weights in a huge-page copy") != std::string::npos) == huge);
    std::vector<int32_t> got(size_t(n_new), -1);
    int64_t m = 0;
    REQUIRE(kiln_generate(c, f.ref.prompt_ids.data(), int64_t(f.ref.prompt_ids.size()), n_new, nullptr, -1, got.data(),
                          &m, nullptr, nullptr, &err) == KILN_OK);
    CHECK(m == n_new);
    CHECK(std::equal(got.begin(), got.end(), f.ref.greedy_ids.begin() + long(f.ref.prompt_ids.size())));
    REQUIRE(kiln_generate(c, f.ref.prompt_ids.data(), 5, n_new, nullptr, eos, got.data(), &m, nullptr, nullptr, &err) ==
            KILN_OK);
    CHECK(m == n);
    CHECK(std::equal(got.begin(), got.begin() + m, out.begin()));
    kiln_context_destroy(c);
  }
  CHECK(std::string(kiln_context_describe(f.ctx)).find("huge-page") == std::string::npos);  // the default
  for (int depth : {-1, 17}) {
    kiln_context_options o = kiln_context_options_default();
    o.device = "cpu";
    o.generate_depth = depth;
    kiln_context* c = nullptr;
    CHECK(kiln_context_create_with(f.plan, &o, &c, &err) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(err.message).find("generate_depth must be in [0, 16]") != std::string::npos);
    CHECK(c == nullptr);
  }
}

TEST_CASE("C API: prefill, decode and sample drive two rows step by step") {
  Fixture f;
  kiln_error err{};
  const int32_t* a = f.ref.input_ids.data();
  REQUIRE(kiln_prefill(f.ctx, 0, a, 10, &err) == KILN_OK);
  REQUIRE(kiln_prefill(f.ctx, 1, a + f.ref.tokens, 4, &err) == KILN_OK);
  int32_t step[2] = {a[10], -1};  // row 1 idle
  REQUIRE(kiln_decode(f.ctx, step, &err) == KILN_OK);
  CHECK(kiln::test::rel_l2(kiln_logits(f.ctx, 0), f.ref.logits.data() + 10 * f.ref.vocab, size_t(f.ref.vocab)) <= 1e-4);
  CHECK(kiln::test::rel_l2(kiln_logits(f.ctx, 1), f.ref.logits.data() + (f.ref.tokens + 3) * f.ref.vocab,
                           size_t(f.ref.vocab)) <= 1e-4);
  CHECK(kiln_logits(f.ctx, 2) == nullptr);
  CHECK(kiln_sample(f.ctx, 5, nullptr, 0) == -1);
  const int32_t g = kiln_sample(f.ctx, 0, nullptr, 0);
  const float* l = kiln_logits(f.ctx, 0);
  for (int64_t i = 0; i < f.ref.vocab; ++i) CHECK(l[i] <= l[g]);
}

TEST_CASE("C API: limits and bad arguments give typed errors and write nothing") {
  Fixture f;
  kiln_error err{};
  std::vector<float> out(size_t(2 * 40 * 256), 7.0f);
  std::vector<int32_t> ids(80, 1);
  auto untouched = [&] {
    for (float v : out)
      if (v != 7.0f) return false;
    return true;
  };
  // Too long for max_seq 32.
  CHECK(kiln_score(f.ctx, ids.data(), 2, 40, out.data(), &err) == KILN_ERR_LIMIT);
  CHECK(std::string(err.message).find("max_seq of 32") != std::string::npos);
  // Out-of-range id.
  ids[5] = 256;
  CHECK(kiln_score(f.ctx, ids.data(), 2, 8, out.data(), &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message).find("token id 256 at index 5 is out of range [0, 256)") != std::string::npos);
  ids[5] = -3;
  CHECK(kiln_score(f.ctx, ids.data(), 2, 8, out.data(), &err) == KILN_ERR_INVALID_ARGUMENT);
  ids[5] = 1;
  CHECK(kiln_score(f.ctx, ids.data(), 0, 8, out.data(), &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(kiln_score(f.ctx, ids.data(), 1, 8, nullptr, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(untouched());
  // Empty prompt, bad row, too many tokens for a row.
  CHECK(kiln_prefill(f.ctx, 0, ids.data(), 0, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message).find("empty prompt") != std::string::npos);
  CHECK(kiln_prefill(f.ctx, 2, ids.data(), 3, &err) == KILN_ERR_INVALID_ARGUMENT);
  REQUIRE(kiln_prefill(f.ctx, 0, ids.data(), 30, &err) == KILN_OK);
  CHECK(kiln_prefill(f.ctx, 0, ids.data(), 3, &err) == KILN_ERR_LIMIT);
  int32_t step[2] = {1, 1};
  REQUIRE(kiln_decode(f.ctx, step, &err) == KILN_OK);
  REQUIRE(kiln_decode(f.ctx, step, &err) == KILN_OK);
  CHECK(kiln_decode(f.ctx, step, &err) == KILN_ERR_LIMIT);
  CHECK(std::string(err.message).find("row 0 is full") != std::string::npos);
  int32_t idle[2] = {-1, -1};
  CHECK(kiln_decode(f.ctx, idle, &err) == KILN_ERR_INVALID_ARGUMENT);
  // Generate: prompt + new tokens over max_seq, null output, bad sampling.
  std::vector<int32_t> gen(64, -5);
  int64_t n = -1;
  CHECK(kiln_generate(f.ctx, ids.data(), 30, 3, nullptr, -1, gen.data(), &n, nullptr, nullptr, &err) == KILN_ERR_LIMIT);
  CHECK(std::string(err.message).find("30 tokens plus 3 new tokens exceeds the plan's max_seq of 32") !=
        std::string::npos);
  CHECK(n == 0);
  CHECK(gen[0] == -5);
  CHECK(kiln_generate(f.ctx, ids.data(), 3, 3, nullptr, -1, nullptr, &n, nullptr, nullptr, &err) ==
        KILN_ERR_INVALID_ARGUMENT);
  kiln_sampling bad{-1.0f, 0, 1.0f, 0};
  CHECK(kiln_generate(f.ctx, ids.data(), 3, 3, &bad, -1, gen.data(), &n, nullptr, nullptr, &err) ==
        KILN_ERR_INVALID_ARGUMENT);
  // Null handles and paths; a NULL err is allowed.
  kiln_plan* p = nullptr;
  CHECK(kiln_plan_open(nullptr, &p, nullptr) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(kiln_plan_open((f.dir / "absent.kplan").c_str(), &p, &err) == KILN_ERR_IO);
  CHECK(p == nullptr);
  CHECK(kiln_score(nullptr, ids.data(), 1, 1, out.data(), &err) == KILN_ERR_INVALID_ARGUMENT);
  const std::string garbage(300, 'x');
  CHECK(kiln_plan_open_memory(garbage.data(), garbage.size(), &p, &err) == KILN_ERR_CORRUPT_PLAN);
  CHECK(std::string(err.message).find("bad magic") != std::string::npos);
}

TEST_CASE("C API: one plan shared by contexts on four threads gives the sequential results bit for bit") {
  Fixture f;
  kiln_error err{};
  const int64_t T = f.ref.tokens, V = f.ref.vocab;
  std::vector<float> want(size_t(2 * T * V));
  REQUIRE(kiln_score(f.ctx, f.ref.input_ids.data(), 2, T, want.data(), &err) == KILN_OK);
  std::vector<int32_t> want_gen(12);
  int64_t n = 0;
  REQUIRE(kiln_generate(f.ctx, f.ref.prompt_ids.data(), 5, 12, nullptr, -1, want_gen.data(), &n, nullptr, nullptr,
                        &err) == KILN_OK);
  constexpr int kThreads = 4;
  std::vector<std::vector<float>> got(kThreads, std::vector<float>(want.size()));
  std::vector<std::vector<int32_t>> got_gen(kThreads, std::vector<int32_t>(12));
  std::vector<kiln_status> status(kThreads, KILN_ERR_INTERNAL);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      kiln_context* c = nullptr;
      kiln_error e{};
      kiln_status st = kiln_context_create(f.plan, 1 + t % 2, &c, &e);
      for (int rep = 0; rep < 3 && st == KILN_OK; ++rep) {
        st = kiln_score(c, f.ref.input_ids.data(), 2, T, got[size_t(t)].data(), &e);
        int64_t m = 0;
        if (st == KILN_OK)
          st = kiln_generate(c, f.ref.prompt_ids.data(), 5, 12, nullptr, -1, got_gen[size_t(t)].data(), &m, nullptr,
                             nullptr, &e);
      }
      kiln_context_destroy(c);
      status[size_t(t)] = st;
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    CAPTURE(t);
    CHECK(status[size_t(t)] == KILN_OK);
    CHECK(std::memcmp(got[size_t(t)].data(), want.data(), want.size() * sizeof(float)) == 0);
    CHECK(got_gen[size_t(t)] == want_gen);
  }
}

TEST_CASE("C API: tokenize and detokenize report full sizes and refuse a negative capacity") {
  TempDir d;
  kiln::test::write_tiny_llama_with_tokenizer(d.path());
  kiln::CompileOptions o;
  o.model_dir = d.path();
  o.output = d / "t.kplan";
  o.max_seq = 16;
  kiln::compile_model(o);
  kiln_plan* plan = nullptr;
  kiln_error err{};
  REQUIRE(kiln_plan_open(o.output.c_str(), &plan, &err) == KILN_OK);
  const std::string text = "Hello kiln";
  int64_t n = -1;
  CHECK(kiln_tokenize(plan, text.data(), text.size(), 1, nullptr, 0, &n, &err) == KILN_OK);
  REQUIRE(n > 1);
  std::vector<int32_t> ids(size_t(n) - 1, -7);  // one short: the count is still the whole
  int64_t m = -1;
  CHECK(kiln_tokenize(plan, text.data(), text.size(), 1, ids.data(), int64_t(ids.size()), &m, &err) == KILN_OK);
  CHECK(m == n);
  CHECK(ids[0] == 1204);  // <|begin_of_text|>
  int32_t one = -7;
  CHECK(kiln_tokenize(plan, text.data(), text.size(), 1, &one, -1, &m, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(one == -7);
  std::vector<int32_t> all(static_cast<size_t>(n));
  REQUIRE(kiln_tokenize(plan, text.data(), text.size(), 0, all.data(), n, &m, &err) == KILN_OK);
  char buf[4];
  size_t len = 0;
  CHECK(kiln_detokenize(plan, all.data(), m, 0, buf, sizeof(buf), &len, &err) == KILN_OK);
  CHECK(len == text.size());  // the whole length, the text cut to fit and NUL-terminated
  CHECK(std::string(buf) == text.substr(0, 3));
  // A stream that ends inside a UTF-8 character: push() holds the bytes, finish() gives what a whole
  // decode gives (U+FFFD), and the decoder starts afresh.
  const std::string cut = "caf\xc3";  // (é's first byte)
  std::vector<int32_t> cut_ids(16);
  REQUIRE(kiln_tokenize(plan, cut.data(), cut.size(), 0, cut_ids.data(), 16, &m, &err) == KILN_OK);
  REQUIRE(m <= 16);
  kiln_decoder* dec = nullptr;
  REQUIRE(kiln_decoder_create(plan, 0, &dec, &err) == KILN_OK);
  std::string streamed;
  char piece[64];
  for (int64_t i = 0; i < m; ++i) {
    REQUIRE(kiln_decoder_push(dec, cut_ids[size_t(i)], piece, sizeof(piece), &len, &err) == KILN_OK);
    streamed += std::string(piece, len);
  }
  CHECK(streamed == "caf");
  REQUIRE(kiln_decoder_finish(dec, piece, sizeof(piece), &len, &err) == KILN_OK);
  streamed += std::string(piece, len);
  char whole[64];
  REQUIRE(kiln_detokenize(plan, cut_ids.data(), m, 0, whole, sizeof(whole), &len, &err) == KILN_OK);
  CHECK(streamed == std::string(whole, len));
  CHECK(streamed == "caf\xef\xbf\xbd");
  REQUIRE(kiln_decoder_finish(dec, piece, sizeof(piece), &len, &err) == KILN_OK);
  CHECK(len == 0);
  CHECK(kiln_decoder_finish(nullptr, piece, sizeof(piece), &len, &err) == KILN_ERR_INVALID_ARGUMENT);
  // Text that does not fit (with its NUL) is KILN_ERR_LIMIT with its length, and nothing is
  // consumed: the same id again with room gives it all (an outside test found it cut and lost).
  std::string pieces;
  int limited = 0;
  char tiny[3] = {'x', 'x', 'x'};
  for (int64_t i = 0; i < n - 1; ++i) {
    const int32_t id = all[size_t(i)];
    kiln_status st = kiln_decoder_push(dec, id, tiny, sizeof(tiny), &len, &err);
    if (st == KILN_OK) {
      pieces += std::string(tiny, len);
      continue;
    }
    REQUIRE(st == KILN_ERR_LIMIT);
    ++limited;
    CHECK(std::string(err.message).find("nothing was consumed") != std::string::npos);
    CHECK(len >= sizeof(tiny));
    std::vector<char> room(len + 1);
    REQUIRE(kiln_decoder_push(dec, id, room.data(), room.size(), &len, &err) == KILN_OK);
    pieces += std::string(room.data(), len);
  }
  REQUIRE(kiln_decoder_finish(dec, piece, sizeof(piece), &len, &err) == KILN_OK);
  pieces += std::string(piece, len);
  CHECK(pieces == text);
  CHECK(limited > 0);  // ("Hello" is one token of 5 bytes)
  // Ids outside the plan's are refused by name, by the decoder and by detokenize.
  for (const int32_t bad : {-1, 1211, 99999}) {
    CAPTURE(bad);
    CHECK(kiln_decoder_push(dec, bad, piece, sizeof(piece), &len, &err) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(err.message) == "id " + std::to_string(bad) + " is not a token id of this plan (0 to 1210)");
    const int32_t ids3[3] = {all[0], bad, all[1]};
    CHECK(kiln_detokenize(plan, ids3, 3, 0, piece, sizeof(piece), &len, &err) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(err.message).find("ids[1] " + std::to_string(bad) + " is not a token id") == 0);
  }
  CHECK(kiln_detokenize(plan, all.data(), -1, 0, piece, sizeof(piece), &len, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message) == "n must not be negative");
  CHECK(kiln_decoder_push(dec, all[0], nullptr, 8, &len, &err) == KILN_ERR_INVALID_ARGUMENT);
  kiln_decoder_destroy(dec);
  kiln_plan_close(plan);
}

// Found by an outside test of the C API: a row's logits after a reset (or kiln_score, which resets)
// were the old sequence's; kiln_sample took settings kiln_generate refuses; a bad decode token was
// named at index 0 whatever its row; a plan in memory off 8-byte alignment read as a corrupt plan;
// (and a failed prefill, decode or generate leaves the row without logits: has_logits, not tested
// here: it needs a failing backend;)
// n_threads had no bound (100000 spent a minute and gigabytes before failing).
TEST_CASE("C API: no logits without a sequence, one sampling rule, row-named tokens, bounded threads") {
  Fixture f;
  kiln_error err{};
  const int32_t* a = f.ref.input_ids.data();
  CHECK(kiln_logits(f.ctx, 0) == nullptr);  // (nothing prefilled yet)
  CHECK(kiln_sample(f.ctx, 0, nullptr, 0) == -1);
  REQUIRE(kiln_prefill(f.ctx, 0, a, 3, &err) == KILN_OK);
  REQUIRE(kiln_logits(f.ctx, 0) != nullptr);
  CHECK(kiln_logits(f.ctx, 1) == nullptr);
  const int32_t greedy = kiln_sample(f.ctx, 0, nullptr, 0);
  CHECK(greedy >= 0);
  // NaN settings and a negative top_p: -1 from kiln_sample, refused by kiln_generate. A negative
  // temperature: greedy in kiln_sample (as kiln.h has always said), refused by kiln_generate.
  for (const kiln_sampling& s : {kiln_sampling{std::nanf(""), 0, 1.0f, 0}, kiln_sampling{-1.0f, 0, 1.0f, 0},
                                 kiln_sampling{1.0f, 0, -0.5f, 0}, kiln_sampling{1.0f, 0, std::nanf(""), 0}}) {
    CAPTURE(s.temperature);
    CAPTURE(s.top_p);
    CHECK(kiln_sample(f.ctx, 0, &s, 0) == (s.temperature < 0.0f ? greedy : -1));
    int64_t n = 0;
    int32_t out[2];
    CHECK(kiln_generate(f.ctx, a, 3, 2, &s, -1, out, &n, nullptr, nullptr, &err) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(std::string(err.message).find(std::isnan(s.temperature) || s.temperature < 0 ? "temperature " : "top_p ") ==
          0);
    REQUIRE(kiln_logits(f.ctx, 0) != nullptr);  // (a refused generate changes nothing)
  }
  const kiln_sampling zero{};  // (top_p 0: off, as generate reads it)
  CHECK(kiln_sample(f.ctx, 0, &zero, 0) == greedy);
  kiln_context_reset(f.ctx);
  CHECK(kiln_logits(f.ctx, 0) == nullptr);
  CHECK(kiln_sample(f.ctx, 0, nullptr, 0) == -1);
  REQUIRE(kiln_prefill(f.ctx, 0, a, 3, &err) == KILN_OK);
  std::vector<float> scored(size_t(3 * f.ref.vocab));
  REQUIRE(kiln_score(f.ctx, a, 1, 3, scored.data(), &err) == KILN_OK);
  CHECK(kiln_logits(f.ctx, 0) == nullptr);
  // Row 1's bad token is named at index 1.
  const int32_t step[2] = {a[0], 999};
  CHECK(kiln_decode(f.ctx, step, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message).find("token id 999 at index 1 is out of range [0, 256)") != std::string::npos);
  // Threads: more than 1024 refused at once, naming the bound.
  kiln_context* big = nullptr;
  CHECK(kiln_context_create(f.plan, 100000, &big, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message).find("n_threads 100000 exceeds 1024") != std::string::npos);
  CHECK(big == nullptr);
  // A plan in memory: 8-byte aligned opens, 4 off is an invalid argument (not a corrupt plan).
  const std::vector<uint8_t> bytes = kiln::test::read_bytes(f.dir / "p.kplan");
  std::vector<uint64_t> store(bytes.size() / 8 + 2);
  uint8_t* base = reinterpret_cast<uint8_t*>(store.data());
  for (const size_t off : {size_t(8), size_t(4)}) {
    CAPTURE(off);
    std::memcpy(base + off, bytes.data(), bytes.size());
    kiln_plan* p = nullptr;
    const kiln_status st = kiln_plan_open_memory(base + off, bytes.size(), &p, &err);
    CHECK(st == (off == 8 ? KILN_OK : KILN_ERR_INVALID_ARGUMENT));
    if (off == 4) CHECK(std::string(err.message).find("is not 8-byte aligned") != std::string::npos);
    kiln_plan_close(p);
  }
  // (kiln_status_string with an int outside the enum, which a C host may pass, is not tested here: in
  // C++ the enum value itself cannot be made without the undefined behaviour UBSan reports.)
}

TEST_CASE("C API: generate reports NaN logits (an f16 plan past its range) after its tokens, and keeps no logits") {
  TempDir d;
  kiln::test::write_tiny_llama(d.path(), kiln::test::f16_overflowing_llama());
  for (const char* dt : {"f32", "f16"}) {
    CAPTURE(dt);
    kiln::CompileOptions o;
    o.model_dir = d.path();
    o.output = d / (std::string(dt) + ".kplan");
    o.dtype = dt;
    o.max_seq = 16;
    kiln::compile_model(o);
    kiln_plan* plan = nullptr;
    kiln_context* ctx = nullptr;
    kiln_error err{};
    REQUIRE(kiln_plan_open(o.output.c_str(), &plan, &err) == KILN_OK);
    REQUIRE(kiln_context_create(plan, 1, &ctx, &err) == KILN_OK);
    const int32_t prompt[3] = {1, 2, 3};
    int32_t out[4] = {-1, -1, -1, -1};
    int64_t n = -1;
    const kiln_status st = kiln_generate(ctx, prompt, 3, 4, nullptr, -1, out, &n, nullptr, nullptr, &err);
    CHECK(n == 4);  // the tokens were emitted either way
    if (std::string(dt) == "f32") {
      CHECK(st == KILN_OK);
      const float* lg = kiln_logits(ctx, 0);
      REQUIRE(lg);
      CHECK(std::all_of(lg, lg + 64, [](float v) { return std::isfinite(v); }));
    } else {
      CHECK(st == KILN_ERR_LIMIT);
      CHECK(err.code == KILN_ERR_LIMIT);
      CHECK(std::string(err.message).find("generate's last logits (token 4) hold NaN") != std::string::npos);
      CHECK(kiln_logits(ctx, 0) == nullptr);
      // The same steps by hand: the logits are the plan's, NaN, and kiln_sample names no token.
      REQUIRE(kiln_prefill(ctx, 0, prompt, 3, &err) == KILN_OK);
      for (int i = 0; i < 3; ++i) REQUIRE(kiln_decode(ctx, &out[i], &err) == KILN_OK);
      const float* lg = kiln_logits(ctx, 0);
      REQUIRE(lg);
      REQUIRE(std::any_of(lg, lg + 64, [](float v) { return std::isnan(v); }));
      CHECK(kiln_sample(ctx, 0, nullptr, 0) == -1);
      const kiln_sampling hot{1.0f, 0, 1.0f, 3};
      CHECK(kiln_sample(ctx, 0, &hot, 0) == -1);
    }
    kiln_context_destroy(ctx);
    kiln_plan_close(plan);
  }
}

TEST_CASE("C API: a negative count is named as such, not as a null pointer or an empty prompt") {
  Fixture f;
  kiln_error err{};
  const int32_t ids[2] = {1, 2};
  CHECK(kiln_prefill(f.ctx, 0, ids, -3, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message) == "the number of token ids is negative (-3)");
  int32_t out[2];
  int64_t n = 0;
  CHECK(kiln_generate(f.ctx, ids, -100, 2, nullptr, -1, out, &n, nullptr, nullptr, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message) == "the number of token ids is negative (-100)");
  CHECK(kiln_prefill(f.ctx, 0, ids, 0, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message).find("empty prompt") == 0);
  const char* role = "user";
  CHECK(kiln_chat_prompt(f.plan, &role, &role, -1, nullptr, 0, nullptr, &err) == KILN_ERR_INVALID_ARGUMENT);
  CHECK(std::string(err.message) == "n must not be negative");
  alignas(8) static const unsigned char none[8] = {};
  kiln_plan* p = nullptr;
  CHECK(kiln_plan_open_memory(none, 0, &p, &err) == KILN_ERR_CORRUPT_PLAN);
  CHECK(std::string(err.message).find("the plan in memory is 0 bytes") != std::string::npos);
  CHECK(p == nullptr);
}
