// Sampling: greedy ties, seeded determinism, top-k/top-p limits and the sampled distribution.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernels/sample.h"
#include "runtime/sampling.h"

using namespace kiln;

TEST_CASE("sampling: greedy picks the first maximum") {
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  SamplerScratch s(4);
  CHECK(sample_token(l.data(), 4, SamplingParams{}, 0, s) == 1);
}

TEST_CASE("sampling: the plan's sample kernel follows the greedy rule (ties, NaN, -0, idle rows, the last valid row)") {
  const float nan = std::nanf("");
  // NaN is never chosen, wherever it sits (first included); -0 and +0 tie (the lower id wins).
  CHECK(argmax_row(std::vector<float>{nan, -3.0f, -2.0f, nan}.data(), 4) == 2);
  CHECK(argmax_row(std::vector<float>{-0.0f, 0.0f, -1.0f}.data(), 3) == 0);
  CHECK(argmax_row(std::vector<float>{nan, nan}.data(), 2) == 0);
  CHECK(argmax_row(std::vector<float>{-INFINITY, -INFINITY, -5.0f}.data(), 3) == 2);
  SamplerScratch s(4);
  CHECK(sample_token(std::vector<float>{nan, 1.0f, 3.0f, 3.0f}.data(), 4, SamplingParams{}, 0, s) == 2);
  // batch 3, chunk 2, vocab 3: row 0 uses its 2nd position, row 1 its 1st, row 2 is idle; an
  // n_valid above the chunk is clamped to it.
  const std::vector<float> logits = {9, 0, 0, /**/ 0, 0, 7, /**/ 0, 8, 0, /**/ 1, 1, 1, /**/ 5, 5, 5, /**/ 0, 0, 6};
  for (const auto& [valid, want] : std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>{
           {{2, 1, 0}, {2, 1, -1}}, {{1, 2, 2}, {0, 0, 2}}, {{0, 0, 9}, {-1, -1, 2}}}) {
    std::vector<int32_t> next(3, 123);
    ThreadPool pool(2, 6);
    sample_cpu({logits.data(), valid.data(), nullptr, next.data(), 3, 2, 3}, pool);
    CHECK(next == want);
  }
}

TEST_CASE("sampling: the same seed gives the same tokens, and top-k 1 and a tiny top-p are greedy") {
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(double(i) * 1.7));
  SamplerScratch s(50);
  SamplingParams p{1.0f, 0, 1.0f, 42};
  std::vector<int32_t> a, b, c;
  for (uint64_t step = 0; step < 64; ++step) {
    a.push_back(sample_token(l.data(), 50, p, step, s));
    b.push_back(sample_token(l.data(), 50, p, step, s));
  }
  CHECK(a == b);
  p.seed = 43;
  for (uint64_t step = 0; step < 64; ++step) c.push_back(sample_token(l.data(), 50, p, step, s));
  CHECK(a != c);
  const int32_t best = sample_token(l.data(), 50, SamplingParams{}, 0, s);
  for (uint64_t step = 0; step < 32; ++step) {
    CHECK(sample_token(l.data(), 50, SamplingParams{1.0f, 1, 1.0f, step}, step, s) == best);
    CHECK(sample_token(l.data(), 50, SamplingParams{1.0f, 0, 1e-6f, step}, step, s) == best);
  }
}

TEST_CASE("sampling: top-k keeps only the k best, and frequencies follow the softmax") {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplerScratch s(4);
  std::vector<int> counts(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i)
    counts[size_t(sample_token(l.data(), 4, SamplingParams{1.0f, 0, 1.0f, 7}, uint64_t(i), s))]++;
  CHECK(double(counts[0]) / n == doctest::Approx(0.5).epsilon(0.05));
  CHECK(double(counts[1]) / n == doctest::Approx(0.3).epsilon(0.05));
  CHECK(double(counts[3]) / n == doctest::Approx(0.05).epsilon(0.15));
  std::vector<int> k2(4, 0);
  for (int i = 0; i < 2000; ++i)
    k2[size_t(sample_token(l.data(), 4, SamplingParams{1.0f, 2, 1.0f, 9}, uint64_t(i), s))]++;
  CHECK(k2[2] == 0);
  CHECK(k2[3] == 0);
  CHECK(k2[0] > k2[1]);
  // top-p 0.7: {0.5, 0.3} reach 0.8 >= 0.7, so only the first two tokens remain.
  std::vector<int> p7(4, 0);
  for (int i = 0; i < 2000; ++i)
    p7[size_t(sample_token(l.data(), 4, SamplingParams{1.0f, 0, 0.7f, 3}, uint64_t(i), s))]++;
  CHECK(p7[2] + p7[3] == 0);
  CHECK(p7[1] > 0);
}

TEST_CASE("sampling: the plan's sample kernel draws what sample_token draws, row by row, with each row's parameters") {
  const int64_t batch = 6, chunk = 2, vocab = 500;
  std::vector<float> logits(size_t(batch * chunk * vocab));
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float((i * 2654435761u) % 1000) / 97.0f;
  const std::vector<int32_t> valid = {2, 1, 2, 1, 0, 2};
  const std::vector<SampleParams> params = {{0.8f, 40, 0.9f, 0, 7, 3}, {1.5f, 0, 1.0f, 0, 7, 4},
                                            {0.0f, 5, 0.5f, 0, 1, 1},  {1.0f, 1, 1.0f, 0, 9, 9},
                                            {1.0f, 5, 1.0f, 0, 1, 1},  {0.5f, 600, 0.3f, 0, 3, 0}};
  std::vector<int32_t> next(size_t(batch), 123);
  ThreadPool pool(2, uint64_t(2 * vocab));
  sample_cpu({logits.data(), valid.data(), params.data(), next.data(), batch, chunk, vocab}, pool);
  SamplerScratch s(vocab);
  for (int64_t b = 0; b < batch; ++b) {
    CAPTURE(b);
    if (valid[size_t(b)] == 0) {
      CHECK(next[size_t(b)] == -1);
      continue;
    }
    const SampleParams& p = params[size_t(b)];
    const float* row = logits.data() + (b * chunk + valid[size_t(b)] - 1) * vocab;
    CHECK(next[size_t(b)] ==
          sample_token(row, vocab, SamplingParams{p.temperature, p.top_k, p.top_p, p.seed}, p.step, s));
  }
}

TEST_CASE("sampling: NaN logits sort after every number, so top-k and the draw ignore them") {
  const float nan = std::nanf("");
  const std::vector<float> l = {nan, 1.0f, nan, 3.0f, -0.0f, 0.0f, 2.0f};
  SamplerScratch s(7);
  for (uint64_t step = 0; step < 32; ++step) {
    const int32_t t = sample_token(l.data(), 7, SamplingParams{1.0f, 2, 1.0f, 5}, step, s);
    CHECK((t == 3 || t == 6));  // the two largest numbers, never a NaN id
  }
  CHECK(sample_order_key(-0.0f) == sample_order_key(0.0f));
  CHECK(sample_order_key(nan) < sample_order_key(-INFINITY));
  CHECK(sample_order_key(-1.0f) < sample_order_key(-0.5f));
  CHECK(sample_order_key(0.5f) < sample_order_key(INFINITY));
}
