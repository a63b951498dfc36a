// A bounded soak test: for KILN_SOAK_SECONDS (default 20, as in CI's sanitizer job) mix
// valid and invalid requests through the C API on one context — prompts of every length,
// out-of-range ids, overlong prompts, decode past the end, resets — and check that every
// call answers with the expected status and that the process does not grow (resident pages; under
// ASan, whose quarantine holds freed memory, the bytes the allocator has live).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "compiler/compile.h"
#include "kiln/kiln.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define KILN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_ASAN 1
#endif
#endif

#ifdef KILN_ASAN
// (sanitizer/allocator_interface.h's, declared here: GCC ships the runtime but not that header)
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace {

#ifdef KILN_ASAN
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

long resident_pages() {
  long size = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident;
}

// What "the process grows" is measured in: live heap bytes under ASan, else resident bytes.
long footprint_bytes() {
#ifdef KILN_ASAN
  return long(__sanitizer_get_current_allocated_bytes());
#else
  return resident_pages() * 4096;
#endif
}

}  // namespace

TEST_CASE("soak: mixed valid and invalid requests keep answering correctly without growing") {
  kiln::test::TempDir d;
  kiln::CompileOptions o;
  o.model_dir = kiln::test::fixture("gqa_f32");
  o.output = d / "p.kplan";
  o.max_seq = 32;
  o.chunk = 8;
  o.batch = 2;
  kiln::compile_model(o);
  kiln_plan* plan = nullptr;
  kiln_context* ctx = nullptr;
  kiln_error err{};
  REQUIRE(kiln_plan_open(o.output.c_str(), &plan, &err) == KILN_OK);
  REQUIRE(kiln_context_create(plan, 2, &ctx, &err) == KILN_OK);
  const char* env = std::getenv("KILN_SOAK_SECONDS");
  const double seconds = env ? std::atof(env) : 20.0;
  std::mt19937 rng(7);
  std::vector<int32_t> ids(64);
  std::vector<float> logits(size_t(2 * 40 * 256));
  std::vector<int32_t> out(64);
  const std::string not_a_plan = d / "not_a_plan.kplan";
  kiln::test::write_bytes(not_a_plan, std::vector<uint8_t>(4096, 0x5a));
  long after_warmup = 0;
  uint64_t calls = 0, wrong = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0;; ++i) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (elapsed > seconds) break;
    if (i == 200) after_warmup = footprint_bytes();
    const int kind = int(rng() % 6);
    const int64_t n = 1 + int64_t(rng() % 40);  // up to 40 tokens: some exceed max_seq 32
    for (auto& x : ids) x = int32_t(rng() % 256);
    kiln_status st, want;
    switch (kind) {
      case 0:  // score, valid or too long
        st = kiln_score(ctx, ids.data(), 1 + int64_t(rng() % 2), n, logits.data(), &err);
        want = n <= 32 ? KILN_OK : KILN_ERR_LIMIT;
        break;
      case 1:  // an id out of range
        ids[size_t(rng() % 8)] = 256 + int32_t(rng() % 1000);
        st = kiln_score(ctx, ids.data(), 1, 8, logits.data(), &err);
        want = KILN_ERR_INVALID_ARGUMENT;
        break;
      case 2: {  // generate, fitting or not
        int64_t got = 0;
        const int64_t new_tokens = int64_t(rng() % 30);
        st = kiln_generate(ctx, ids.data(), n, new_tokens, nullptr, -1, out.data(), &got, nullptr, nullptr, &err);
        want = n + new_tokens <= 32 ? KILN_OK : KILN_ERR_LIMIT;
        break;
      }
      case 3: {  // step by step until the row is full
        kiln_context_reset(ctx);
        st = kiln_prefill(ctx, 1, ids.data(), std::min<int64_t>(n, 32), &err);
        int32_t step[2] = {-1, 3};
        for (int k = 0; st == KILN_OK && k < 40; ++k) st = kiln_decode(ctx, step, &err);
        want = KILN_ERR_LIMIT;  // 40 decodes always run past max_seq
        break;
      }
      case 4:  // empty prompt
        st = kiln_prefill(ctx, 0, ids.data(), 0, &err);
        want = KILN_ERR_INVALID_ARGUMENT;
        break;
      default: {  // a plan that is missing, or a file that is not a plan
        const bool missing = rng() % 2 == 0;
        kiln_plan* bad = nullptr;
        st = kiln_plan_open(missing ? (d / "missing.kplan").c_str() : not_a_plan.c_str(), &bad, &err);
        want = missing ? KILN_ERR_IO : KILN_ERR_CORRUPT_PLAN;
        if (bad) kiln_plan_close(bad);
        break;
      }
    }
    ++calls;
    wrong += st != want;
  }
  const long end = footprint_bytes();
  kiln_context_destroy(ctx);
  kiln_plan_close(plan);
  CHECK(wrong == 0);
  CHECK(calls > 100);
  // Resident pages may move a little (allocator caches); live heap bytes hardly at all. A leak per
  // call would be far more.
  CHECK(end - after_warmup < (kAsan ? long(1) << 20 : long(8) << 20));
  MESSAGE("soak: " << calls << " calls in " << seconds << " s, " << (kAsan ? "live heap" : "RSS") << " change "
                   << (end - after_warmup) / 1024 << " KiB");
}
