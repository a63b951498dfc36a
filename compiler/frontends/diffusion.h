// Stable-Diffusion-style pipelines (diffusers folders) as one plan: the CLIP text encoder, the
// UNet (optionally with a ControlNet), a compiled sampler loop and the VAE decoder.
//
// Layout: every image activation is channels-last, (batch, height, width, channels), so the
// transformer blocks see rows of channels without transposes and a 1×1 convolution is a
// matmul. Weights keep their checkpoint names under a component prefix ("unet/…").
//
// Programs (the diffusion contract; runtime/diffusion.h drives them):
//   encode_text  inputs tokens (G, L) i32, row 0 the negative prompt when G = 2
//                → text states (persistent, G·L × D)
//   prepare      inputs latents (1, h, w, c) f32: the initial noise, unscaled (and control
//                (1, H, W, 3) f32 in [0, 1] with a ControlNet) → latents = init_noise_sigma · noise
//   unet         inputs sample (G, h, w, c) f32, timestep (1,) f32 → noise_pred (G, h, w, c):
//                one model call on the current text states (and control), for tests and hosts
//   denoise      inputs step (1,) i32 (and seed (2,) i32 for stochastic samplers): one sampler
//                step; a loop program (repeat = steps, counter = step), so a whole replay runs
//                every step with step = 0 … steps−1 (on CUDA one graph)
//   vae_decode   → image (1, H, W, 3) f32, the decoder's raw output in about [−1, 1]
// G = 2 with classifier-free guidance (guidance > 1), else 1.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/diffusion_config.h"
#include "compiler/ir/graph.h"
#include "compiler/schedule.h"

namespace kiln {

struct DiffusionModel {
  PipelineIndex index;
  ClipTextConfig clip;
  UNetConfig unet;
  VaeConfig vae;
  std::optional<UNetConfig> controlnet;
  SchedulerConfig scheduler;
};

struct DiffusionBuildOptions {
  DType plan_dtype = DType::F32;
  int64_t height = 512, width = 512;  // pixels
  int64_t steps = 30;
  Sampler sampler = Sampler::kEuler;
  double guidance = 7.5;
  double control_scale = 1.0;
  int64_t text_len = 77;
};

// The VAE's downsampling factor, 2^(len(block_out_channels) − 1).
int64_t vae_scale_factor(const VaeConfig& v);

// Builds the graph; *expected receives every checkpoint tensor it reads (prefixed name → shape).
Graph build_diffusion_graph(const DiffusionModel& m, const Schedule& s, const DiffusionBuildOptions& o,
                            std::map<std::string, std::vector<int64_t>>* expected);

// Checkpoint tensors the graph may leave unread (the VAE encoder, CLIP's position_ids, …).
bool diffusion_tensor_ignorable(const std::string& name);

}  // namespace kiln
