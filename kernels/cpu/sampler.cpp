#include "kernels/sampler.h"

#include "kernels/philox.h"

namespace kiln {

void sampler_input_cpu(const SamplerInputArgs& a, ThreadPool& pool) {
  const float s = a.coefs[sampler_row(a.step, a.steps) * kSamplerCoefs + kSin];
  pool.parallel_for(a.n, 4096, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t k = 0; k < a.g; ++k) a.x_in[k * a.n + i] = s * a.x[i];
  });
}

void sampler_step_cpu(const SamplerStepArgs& a, ThreadPool& pool) {
  const float* c = a.coefs + sampler_row(a.step, a.steps) * kSamplerCoefs;
  pool.parallel_for(a.n, 4096, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const float m = a.g == 2 ? a.out[i] + a.guidance * (a.out[a.n + i] - a.out[i]) : a.out[i];
      const float x = a.x[i];
      float v = c[kAx] * x + c[kAm] * m;
      if (a.h && c[kAh] != 0.0f) v += c[kAh] * a.h[i];  // h is undefined before its first write
      if (a.noise) v += c[kAz] * a.noise[i];
      if (a.h) a.h[i] = c[kHx] * x + c[kHm] * m;
      a.x[i] = v;
    }
  });
}

void normal_noise_cpu(const NormalNoiseArgs& a, ThreadPool& pool) {
  const uint64_t seed = uint64_t(uint32_t(a.seed[0])) | (uint64_t(uint32_t(a.seed[1])) << 32);
  const uint64_t stream = uint64_t(a.stream) + uint64_t(a.step ? int64_t(a.step[0]) : 0);
  pool.parallel_for(a.n, 4096, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) a.z[i] = philox_normal(seed, stream, uint64_t(i));
  });
}

}  // namespace kiln
