// The config files of a diffusers pipeline folder: model_index.json, the CLIP text encoder's
// config.json (transformers), the UNet's, VAE's and ControlNet's config.json and the
// scheduler's scheduler_config.json (diffusers). Each reader checks every key kiln's graph
// depends on and refuses a feature it does not build (naming the file, the key and the value)
// rather than compiling a different model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/elementwise.h"

namespace kiln {

struct ClipTextConfig {
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0;
  int64_t max_position_embeddings = 0;
  double layer_norm_eps = 1e-5;
  Activation act = Activation::kQuickGelu;
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;
  std::string raw_json;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)
};

// UNet2DConditionModel, and the part of it a ControlNetModel repeats (down blocks, mid block).
struct UNetConfig {
  int64_t in_channels = 4, out_channels = 4, sample_size = 64;
  std::vector<int64_t> block_out_channels;
  std::vector<bool> down_cross, up_cross;  // CrossAttn{Down,Up}Block2D (true) or {Down,Up}Block2D
  bool mid_cross = true;                   // UNetMidBlock2DCrossAttn (false: no mid block attention)
  int64_t layers_per_block = 2;
  std::vector<int64_t> heads;               // attention heads per down block (up blocks reversed)
  std::vector<int64_t> transformer_layers;  // transformer blocks per attention, per down block
  int64_t cross_attention_dim = 768;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool use_linear_projection = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  double mid_block_scale = 1.0;
  // ControlNetModel only
  std::vector<int64_t> cond_embedding_channels;
  int64_t conditioning_channels = 3;
  // global_pool_conditions: the residuals are averaged over height and width, and the pipeline
  // runs the ControlNet on the positive prompt only (guess mode), zeros for the negative.
  bool global_pool = false;
  std::string raw_json;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)
};

struct VaeConfig {
  int64_t latent_channels = 4, out_channels = 3;
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 2, norm_num_groups = 32;
  double scaling_factor = 0.18215, shift_factor = 0.0;
  bool use_post_quant_conv = true, mid_attention = true;
  std::string raw_json;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)
};

struct SchedulerConfig {
  std::string class_name;
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001, beta_end = 0.02;
  std::string beta_schedule = "linear";     // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;        // overrides the schedule when given
  std::string prediction_type = "epsilon";  // epsilon | v_prediction
  std::string timestep_spacing;             // "" = each sampler's own default
  int64_t steps_offset = 0;
  bool set_alpha_to_one = true;
  bool clip_sample = false;  // DDIM's x0 clamp (refused: kiln's samplers are linear)
  bool steps_offset_given = false, clip_sample_given = false;  // (in the file: see pipeline_scheduler)
  bool dpm_heun = false;     // DPM-Solver's solver_type "heun" (else "midpoint")
  // DPM-Solver's other keys ("solver_order 3", …) where a file of another class sets them away from
  // DPMSolverMultistepScheduler's defaults: diffusers' from_config would pass them on to the scheduler
  // --sampler dpmpp_2m stands for, which build_schedule refuses (a DPM file's own are refused on reading).
  std::vector<std::string> dpm_changed;
  std::string path;  // the file, for messages
  // score-SDE (ScoreSdeVpScheduler) parameters
  double sde_beta_min = 0.1, sde_beta_max = 20.0, sde_sampling_eps = 1e-3;
  std::string raw_json;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)
};

struct PipelineIndex {
  std::string class_name;  // StableDiffusionPipeline, ...
  std::string scheduler_class;  // the class its scheduler entry names ("" if none)
  bool has_text_encoder = false, has_unet = false, has_vae = false, has_controlnet = false;
  std::vector<std::string> unmodeled;  // keys kiln does not model (ConfigReader::unmodeled)
};

PipelineIndex read_pipeline_index(const std::string& path);
// Why kiln refuses a scheduler class (its config may mean something else), or null.
const char* scheduler_class_refused(const std::string& class_name);
ClipTextConfig read_clip_text_config(const std::string& path);
UNetConfig read_unet_config(const std::string& path, bool controlnet = false);
VaeConfig read_vae_config(const std::string& path);
SchedulerConfig read_scheduler_config(const std::string& path);
SchedulerConfig parse_scheduler_config(const std::string& text, const std::string& path);

}  // namespace kiln
