// The denoising loop's per-step kernels. Every sampler kiln compiles (DDIM, Euler,
// Euler-ancestral, DPM-Solver++ 2M, VP-SDE Euler–Maruyama, probability-flow ODE) is, for a
// fixed schedule, linear in the latents x, the model output m, the previous step's denoised
// estimate h (DPM++ 2M only) and fresh noise z. The compiler folds the whole schedule
// (alphas, sigmas, timesteps, prediction type) into one row of coefficients per step, and
// these kernels read the row of the current step from the step state.
//
// coefs: (steps, kSamplerCoefs) f32, row s = {a_x, a_m, a_h, a_z, h_x, h_m, s_in}:
//   x' = a_x·x + a_m·m + a_h·h + a_z·z;   h' = h_x·x + h_m·m;   model input = s_in·x.
// step: (1,) i32 state, clamped to [0, steps) (replay does no checks).
//
// sampler_input: x_in = s_in·x, repeated for each of the g images of the UNet batch
//   (g = 2 with classifier-free guidance).
//   x: (n,) f32 → x_in: (g·n,) f32. Plan: inputs {x, coefs, step}; outputs {x_in}.
// sampler_step: m = u + guidance·(c − u) from the UNet output [u | c] when g = 2 (diffusers
//   puts the unconditional image first), m = out when g = 1; then the update above. x and h
//   are read and written in place.
//   out: (g·n,) f32; noise: (n,) f32 or absent → x: (n,) f32, h: (n,) f32 or absent.
//   Plan: inputs {out, coefs, step, noise?}; outputs {x, h?}; float attrs {guidance}.
// normal_noise: z_i = philox_normal(seed, stream + step, i) (kernels/philox.h), with seed the
//   two i32 words {low, high}.
//   seed: (2,) i32 state; step: (1,) i32 state or absent (then 0) → z: (n,) f32.
//   Plan: inputs {seed, step?}; outputs {z}; int attrs {stream}.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/thread_pool.h"

namespace kiln {

// The ops (their definitions: kernels/ops/<name>.cpp; the registry: kernels/op.h).
struct OpDef;
extern const OpDef kSamplerInputOp;
extern const OpDef kSamplerStepOp;
extern const OpDef kNormalNoiseOp;

constexpr int64_t kSamplerCoefs = 7;
enum SamplerCoef : int { kAx = 0, kAm, kAh, kAz, kHx, kHm, kSin };

struct SamplerInputArgs {
  const float* x;
  const float* coefs;
  int64_t steps;
  const int32_t* step;
  float* x_in;
  int64_t n, g;
};

struct SamplerStepArgs {
  const float* out;
  const float* coefs;
  int64_t steps;
  const int32_t* step;
  const float* noise;  // may be null
  float* x;
  float* h;  // may be null
  int64_t n, g;
  float guidance;
};

struct NormalNoiseArgs {
  const int32_t* seed;
  const int32_t* step;  // may be null
  float* z;
  int64_t n;
  int64_t stream;
};

void sampler_input_cpu(const SamplerInputArgs& a, ThreadPool& pool);
void sampler_step_cpu(const SamplerStepArgs& a, ThreadPool& pool);
void normal_noise_cpu(const NormalNoiseArgs& a, ThreadPool& pool);

// The coefficient row of the current step (shared with CUDA, which calls it per thread).
KILN_HOST_DEVICE inline int64_t sampler_row(const int32_t* step, int64_t steps) {
  const int64_t s = step ? int64_t(step[0]) : 0;
  return s < 0 ? 0 : (s >= steps ? steps - 1 : s);
}

}  // namespace kiln
