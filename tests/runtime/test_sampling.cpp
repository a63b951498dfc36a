// Sampling: greedy ties, seeded determinism, top-k/top-p limits and the sampled distribution.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "runtime/sampling.h"

using namespace kiln;

TEST_CASE("sampling: greedy picks the first maximum") {
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f};
  SamplerScratch s(4);
  CHECK(sample_token(l.data(), 4, SamplingParams{}, 0, s) == 1);
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
  for (int i = 0; i < n; ++i) counts[size_t(sample_token(l.data(), 4, SamplingParams{1.0f, 0, 1.0f, 7}, uint64_t(i), s))]++;
  CHECK(double(counts[0]) / n == doctest::Approx(0.5).epsilon(0.05));
  CHECK(double(counts[1]) / n == doctest::Approx(0.3).epsilon(0.05));
  CHECK(double(counts[3]) / n == doctest::Approx(0.05).epsilon(0.15));
  std::vector<int> k2(4, 0);
  for (int i = 0; i < 2000; ++i) k2[size_t(sample_token(l.data(), 4, SamplingParams{1.0f, 2, 1.0f, 9}, uint64_t(i), s))]++;
  CHECK(k2[2] == 0);
  CHECK(k2[3] == 0);
  CHECK(k2[0] > k2[1]);
  // top-p 0.7: {0.5, 0.3} reach 0.8 >= 0.7, so only the first two tokens remain.
  std::vector<int> p7(4, 0);
  for (int i = 0; i < 2000; ++i) p7[size_t(sample_token(l.data(), 4, SamplingParams{1.0f, 0, 0.7f, 3}, uint64_t(i), s))]++;
  CHECK(p7[2] + p7[3] == 0);
  CHECK(p7[1] > 0);
}
