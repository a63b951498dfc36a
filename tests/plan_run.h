// Runs a plan that verified as a host would, for the tests and fuzzers that feed kiln edited plans
// (tests/runtime/test_plan_mutants.cpp, tests/fuzz/fuzz_plan.cpp): an LLM generates a few tokens
// (and its tokenizer round-trips text); a text-to-image plan encodes a prompt, denoises every step
// and decodes. Errors are answers too; only a crash, a sanitizer report or a hang is a failure.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/context.h"
#include "runtime/diffusion.h"
#include "runtime/plan.h"

namespace kiln::test {

inline void run_plan(const std::shared_ptr<const Plan>& p) {
  ContextOptions opts;
  opts.device = "cpu";
  opts.n_threads = 1;
  if (p->kind() == PlanKind::kLlm) {
    auto ctx = Context::create(p, opts);
    if (!ctx.is_ok()) return;
    const int32_t prompt[3] = {1, 2, 3};
    int32_t out[4];
    int64_t n = 0;
    (void)ctx.value()->generate(prompt, 3, 4, SamplingParams{}, -1, out, &n, nullptr);
    if (const Tokenizer* t = p->tokenizer()) {
      const auto ids = t->encode("Hello, kiln! <|eot_id|> 123", true);
      (void)t->decode(ids.data(), ids.size(), false);
    }
    return;
  }
  auto s = DiffusionSession::create(p, opts);
  if (!s.is_ok()) return;
  DiffusionSession& d = *s.value();
  std::vector<int32_t> ids(size_t(d.text_len()), 1);
  if (!d.encode_text(ids.data(), d.guided() ? ids.data() : nullptr).is_ok()) return;
  std::vector<float> noise(size_t(d.latent_size()), 0.5f), image(size_t(d.height() * d.width() * 3));
  if (!d.prepare(noise.data(), nullptr).is_ok()) return;
  if (!d.denoise_all(7).is_ok()) return;
  (void)d.decode(image.data());
}

}  // namespace kiln::test
