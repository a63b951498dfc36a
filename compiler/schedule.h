// Samplers folded into tables at compile time. For a given scheduler config, sampler and
// step count, every diffusers scheduler kiln supports is linear per step in the latents, the
// model output, the previous denoised estimate and fresh noise; build_schedule computes the
// UNet timestep of each step and the coefficient rows kernels/sampler.h applies, in double
// from the f32 alphas_cumprod diffusers computes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compiler/diffusion_config.h"

namespace kiln {

enum class Sampler { kDdim, kEuler, kEulerAncestral, kDpmpp2m, kVpSde, kPfOde };

// "ddim", "euler", "euler_a", "dpmpp_2m", "vp_sde", "pf_ode"; throws CompileError otherwise.
Sampler parse_sampler(const std::string& name);
const char* sampler_name(Sampler s);
// The diffusers scheduler class whose step() kiln's sampler reproduces.
const char* sampler_reference(Sampler s);

struct Schedule {
  std::vector<float> timesteps;   // the UNet's timestep per step
  std::vector<float> coefs;       // steps × kSamplerCoefs (kernels/sampler.h)
  std::vector<double> sigmas;     // Euler/DPM sigmas (steps + 1), for inspection and tests
  double init_noise_sigma = 1.0;  // initial latents = init_noise_sigma · N(0, I)
  bool stochastic = false;        // needs fresh noise every step
  bool uses_history = false;      // DPM++ 2M's previous denoised estimate
  std::string spacing;            // the timestep spacing used
};

Schedule build_schedule(const SchedulerConfig& c, Sampler s, int64_t steps);
// The scheduler config as diffusers hands it to --sampler's class. StableDiffusionPipeline (not
// the ControlNet one) rewrites an outdated config when it loads: steps_offset to 1 and clip_sample
// to false. A sampler of another class than the pipeline's scheduler (model_index.json) is then
// <class>.from_config(pipe.scheduler.config), which keeps the keys the file gave and takes its
// own defaults for the others (diffusers' _use_default_values): steps_offset 0, DDIM's clip_sample
// true.
SchedulerConfig pipeline_scheduler(SchedulerConfig c, bool sd_pipeline, const std::string& pipeline_class, Sampler s);

// alphas_cumprod as diffusers computes it (f32 betas, f32 cumulative product).
std::vector<float> alphas_cumprod(const SchedulerConfig& c);

}  // namespace kiln
