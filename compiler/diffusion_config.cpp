#include "compiler/diffusion_config.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "compiler/config_reader.h"
#include "compiler/error.h"
#include "compiler/json_util.h"

namespace kiln {

using json = nlohmann::json;

namespace {

json load_object(const std::string& path, std::string* text) {
  json j = read_json_file(path, text);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  return j;
}

// A list of positive integers, or one integer repeated n times (diffusers accepts both).
std::vector<int64_t> int_list(const ConfigReader& r, const json& j, const char* key, size_t n, int64_t def) {
  if (!r.has(key)) return std::vector<int64_t>(n, def);
  const json& v = j[key];
  if (v.is_number_integer()) return std::vector<int64_t>(n, r.pos_int(j, key, true));
  if (!v.is_array() || v.size() != n) r.fail(key, "must be an integer or a list of " + std::to_string(n));
  std::vector<int64_t> out;
  for (const json& e : v) {
    if (!e.is_number_integer() || e.get<int64_t>() <= 0 || e.get<int64_t>() > (int64_t(1) << 20))
      r.fail(key, "must hold positive integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::vector<std::string> str_list(const ConfigReader& r, const json& j, const char* key) {
  if (!r.has(key) || !j[key].is_array() || j[key].empty()) r.fail(key, "must be a non-empty list of block types");
  std::vector<std::string> out;
  for (const json& e : j[key]) {
    if (!e.is_string()) r.fail(key, "must hold strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

const char* scheduler_class_refused(const std::string& cls) {
  // kiln reads only the training noise schedule from a scheduler's file (its --sampler is its own), and
  // diffusers' discrete-time schedulers share those keys; these classes give them other meanings.
  for (const char* prefix : {"FlowMatch", "EDM", "CMStochastic", "ScoreSdeVe", "CogVideoX", "Amused", "VQDiffusion"})
    if (cls.rfind(prefix, 0) == 0)
      return "is a scheduler whose config is not a discrete-time noise schedule (flow matching, EDM/Karras sigmas, "
             "consistency or VE-SDE models, or another family): kiln runs the DDPM-style schedules of SD 1.x/2.x";
  if (!cls.empty() && (cls.size() < 9 || cls.compare(cls.size() - 9, 9, "Scheduler") != 0))
    return "is not a diffusers scheduler class";
  return nullptr;
}

PipelineIndex read_pipeline_index(const std::string& path) {
  std::string text;
  const json j = load_object(path, &text);
  ConfigReader r(j, path);
  PipelineIndex p;
  p.class_name = r.str("_class_name", "StableDiffusionPipeline");
  // (a ControlNet pipeline's folder: its controlnet component is given with --controlnet)
  if (p.class_name != "StableDiffusionPipeline" && p.class_name != "StableDiffusionControlNetPipeline")
    r.fail("_class_name", "'" + p.class_name +
                              "' is not a pipeline kiln builds (StableDiffusionPipeline, or "
                              "StableDiffusionControlNetPipeline with --controlnet)");
  auto component = [&](const char* k) {
    return r.has(k) && j[k].is_array() && j[k].size() == 2 && !j[k][0].is_null() && !j[k][1].is_null();
  };
  // Each component kiln runs is the class it builds (a null entry: absent); the ones it does not run
  // (the safety checker and its feature extractor, IP-Adapter's image encoder) may be anything.
  const std::pair<const char*, std::vector<std::string>> classes[] = {
      {"text_encoder", {"CLIPTextModel"}},
      {"tokenizer", {"CLIPTokenizer", "CLIPTokenizerFast"}},
      {"unet", {"UNet2DConditionModel"}},
      {"vae", {"AutoencoderKL"}},
      {"controlnet", {"ControlNetModel"}}};
  for (const auto& [k, allowed] : classes) {
    if (!component(k)) continue;
    const json& cls = j[k][1];
    if (cls.is_string() && std::find(allowed.begin(), allowed.end(), cls.get<std::string>()) != allowed.end()) continue;
    std::string list;
    for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
    r.fail(k, "names " + cls.dump() + ", not a class kiln builds there (" + list + ")");
  }
  if (component("scheduler")) {
    const json& cls = j["scheduler"][1];
    if (!cls.is_string()) r.fail("scheduler", "names " + cls.dump() + ", not a scheduler class");
    if (const char* why = scheduler_class_refused(cls.get<std::string>()))
      r.fail("scheduler", "names '" + cls.get<std::string>() + "', which " + why);
    p.scheduler_class = cls.get<std::string>();
  }
  p.has_text_encoder = component("text_encoder");
  p.has_unet = component("unet");
  p.has_vae = component("vae");
  p.has_controlnet = component("controlnet");
  p.unmodeled = r.unmodeled({"_diffusers_version", "_name_or_path", "tokenizer", "scheduler", "safety_checker",
                             "feature_extractor", "image_encoder", "requires_safety_checker", "controlnet"});
  return p;
}

ClipTextConfig read_clip_text_config(const std::string& path) {
  ClipTextConfig c;
  const json j = load_object(path, &c.raw_json);
  ConfigReader r(j, path);
  c.vocab_size = r.pos_int("vocab_size", true);
  c.hidden_size = r.pos_int("hidden_size", true);
  c.intermediate_size = r.pos_int("intermediate_size", true);
  c.num_hidden_layers = r.pos_int("num_hidden_layers", true);
  c.num_attention_heads = r.pos_int("num_attention_heads", true);
  c.max_position_embeddings = r.pos_int("max_position_embeddings", false, 77);
  c.layer_norm_eps = r.num("layer_norm_eps", 1e-5);
  if (c.hidden_size % c.num_attention_heads != 0) r.fail("hidden_size", "is not a multiple of num_attention_heads");
  if (c.num_hidden_layers > 1024) r.fail("num_hidden_layers", "is too large");
  const std::string act = r.str("hidden_act", "quick_gelu");
  if (act == "quick_gelu") c.act = Activation::kQuickGelu;
  else if (act == "gelu") c.act = Activation::kGelu;
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = Activation::kGeluTanh;
  else r.fail("hidden_act", "'" + act + "' is not supported (quick_gelu, gelu, gelu_new)");
  const std::string arch = r.architecture();
  if (!arch.empty() && arch != "CLIPTextModel" && arch != "clip_text_model" && arch != "CLIPTextModelWithProjection")
    r.fail("architectures", "'" + arch + "' is not a CLIP text encoder");
  auto id = [&](const char* k) { return r.has(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : -1; };
  c.bos_token_id = id("bos_token_id");
  c.eos_token_id = id("eos_token_id");
  c.pad_token_id = id("pad_token_id");
  // projection_dim: only CLIPTextModelWithProjection's projection, which the pipeline does not use;
  // the dtype keys: the weights' own dtype is what the plan reads.
  c.unmodeled = r.unmodeled({KILN_TRANSFORMERS_IRRELEVANT_KEYS, "projection_dim", "dtype", "torch_dtype"});
  return c;
}

UNetConfig read_unet_config(const std::string& path, bool controlnet) {
  UNetConfig c;
  const json j = load_object(path, &c.raw_json);
  ConfigReader r(j, path);
  const std::string cls = r.str("_class_name", controlnet ? "ControlNetModel" : "UNet2DConditionModel");
  if (cls != (controlnet ? "ControlNetModel" : "UNet2DConditionModel"))
    r.fail("_class_name", "'" + cls + "' is not supported here");
  c.in_channels = r.pos_int("in_channels", false, 4);
  c.out_channels = r.pos_int("out_channels", false, 4);
  c.sample_size = r.pos_int("sample_size", false, 64);
  if (!r.has("block_out_channels") || !j["block_out_channels"].is_array())
    r.fail("block_out_channels", "must be a list");
  c.block_out_channels.clear();
  for (const json& e : j["block_out_channels"]) {
    if (!e.is_number_integer() || e.get<int64_t>() <= 0 || e.get<int64_t>() > 65536)
      r.fail("block_out_channels", "must hold positive integers");
    c.block_out_channels.push_back(e.get<int64_t>());
  }
  const size_t nb = c.block_out_channels.size();
  if (nb == 0 || nb > 8) r.fail("block_out_channels", "must have 1 to 8 entries");
  for (const std::string& t : str_list(r, j, "down_block_types")) {
    if (t == "CrossAttnDownBlock2D") c.down_cross.push_back(true);
    else if (t == "DownBlock2D") c.down_cross.push_back(false);
    else r.fail("down_block_types", "holds '" + t + "' (kiln builds CrossAttnDownBlock2D and DownBlock2D)");
  }
  if (c.down_cross.size() != nb) r.fail("down_block_types", "must have one entry per block_out_channels");
  if (!controlnet) {
    for (const std::string& t : str_list(r, j, "up_block_types")) {
      if (t == "CrossAttnUpBlock2D") c.up_cross.push_back(true);
      else if (t == "UpBlock2D") c.up_cross.push_back(false);
      else r.fail("up_block_types", "holds '" + t + "' (kiln builds CrossAttnUpBlock2D and UpBlock2D)");
    }
    if (c.up_cross.size() != nb) r.fail("up_block_types", "must have one entry per block_out_channels");
  }
  if (j.contains("mid_block_type") && j["mid_block_type"].is_null())  // (diffusers: no mid block at all)
    r.fail("mid_block_type", "null (a UNet without a mid block) is not supported");
  const std::string mid = r.str("mid_block_type", "UNetMidBlock2DCrossAttn");
  if (mid != "UNetMidBlock2DCrossAttn") r.fail("mid_block_type", "'" + mid + "' is not supported");
  if (r.has("layers_per_block") && !j["layers_per_block"].is_number_integer())
    r.fail("layers_per_block", "must be one integer (per-block lists are not supported)");
  c.layers_per_block = r.pos_int("layers_per_block", false, 2);
  if (c.layers_per_block > 16) r.fail("layers_per_block", "is too large");
  // diffusers' naming quirk: attention_head_dim is the number of heads when num_attention_heads is unset.
  const char* heads_key = r.has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
  // With num_attention_heads set, attention_head_dim reaches only block types kiln refuses
  // (ControlNetModel saves both; CrossAttn{Down,Up}Block2D take the head count).
  r.has("attention_head_dim");
  c.heads = int_list(r, j, heads_key, nb, 8);
  c.transformer_layers = int_list(r, j, "transformer_layers_per_block", nb, 1);
  if (r.has("cross_attention_dim") && !j["cross_attention_dim"].is_number_integer())
    r.fail("cross_attention_dim", "must be one integer");
  c.cross_attention_dim = r.pos_int("cross_attention_dim", false, 1280);
  c.norm_num_groups = r.pos_int("norm_num_groups", false, 32);
  c.norm_eps = r.num("norm_eps", 1e-5);
  c.use_linear_projection = r.boolean("use_linear_projection", false);
  c.flip_sin_to_cos = r.boolean("flip_sin_to_cos", true);
  c.freq_shift = r.num("freq_shift", 0);
  c.mid_block_scale = r.num("mid_block_scale_factor", 1.0);
  // resnet_out_scale_factor only reaches the Simple*/ResnetDownsample blocks kiln refuses: the
  // {CrossAttn,}{Down,Up}Block2D resnets always divide by 1 (as diffusers' get_down_block does).
  if (c.mid_block_scale == 0) r.fail("mid_block_scale_factor", "must not be zero");
  for (size_t i = 0; i < nb; ++i) {
    const int64_t ch = c.block_out_channels[i];
    if (ch % c.norm_num_groups != 0) r.fail("norm_num_groups", "does not divide block_out_channels");
    if (ch % c.heads[i] != 0) r.fail(heads_key, "does not divide the block's channels");
  }
  r.only("act_fn", "silu");
  r.only("time_embedding_type", "positional");
  r.only("resnet_time_scale_shift", "default");
  r.only("center_input_sample", false);
  r.only("only_cross_attention", false);
  r.only("dual_cross_attention", false);
  r.only("class_embed_type", nullptr);
  r.only("addition_embed_type", nullptr);
  r.only("encoder_hid_dim", nullptr);
  r.only("time_cond_proj_dim", nullptr);
  r.only("time_embedding_dim", nullptr);
  r.only("timestep_post_act", nullptr);
  r.only("num_class_embeds", nullptr);
  r.only("conv_in_kernel", 3);
  r.only("conv_out_kernel", 3);
  r.only("downsample_padding", 1);
  r.only("attention_type", "default");
  r.only("reverse_transformer_layers_per_block", nullptr);
  if (controlnet) c.global_pool = r.boolean("global_pool_conditions", false);
  else r.only("global_pool_conditions", false);
  r.only("time_embedding_act_fn", nullptr);
  r.only("resnet_skip_time_act", false);
  r.only("encoder_hid_dim_type", nullptr);
  r.only("addition_time_embed_dim", nullptr);
  r.only("projection_class_embeddings_input_dim", nullptr);
  r.only("class_embeddings_concat", false);
  r.only("mid_block_only_cross_attention", json::array({nullptr, false}));
  r.only("cross_attention_norm", nullptr);
  if (controlnet) {
    if (r.has("conditioning_embedding_out_channels") && j["conditioning_embedding_out_channels"].is_array()) {
      c.cond_embedding_channels.clear();
      for (const json& e : j["conditioning_embedding_out_channels"]) {
        if (!e.is_number_integer() || e.get<int64_t>() <= 0)
          r.fail("conditioning_embedding_out_channels", "must hold positive integers");
        c.cond_embedding_channels.push_back(e.get<int64_t>());
      }
    } else {
      c.cond_embedding_channels = {16, 32, 96, 256};
    }
    if (c.cond_embedding_channels.empty() || c.cond_embedding_channels.size() > 8)
      r.fail("conditioning_embedding_out_channels", "must have 1 to 8 entries");
    c.conditioning_channels = r.pos_int("conditioning_channels", false, 3);
    const std::string order = r.str("controlnet_conditioning_channel_order", "rgb");
    if (order != "rgb") r.fail("controlnet_conditioning_channel_order", "'" + order + "' is not supported (rgb)");
    if (c.conditioning_channels != 3) r.fail("conditioning_channels", "must be 3 (an RGB control image)");
  }
  // dropout: training only; upcast_attention: kiln's attention is f32 already;
  // resnet_out_scale_factor: see above; addition_embed_type_num_heads: only with an
  // addition_embed_type, which is refused.
  c.unmodeled = r.unmodeled({KILN_DIFFUSERS_IRRELEVANT_KEYS, "dropout", "upcast_attention", "resnet_out_scale_factor",
                             "addition_embed_type_num_heads"});
  return c;
}

VaeConfig read_vae_config(const std::string& path) {
  VaeConfig c;
  const json j = load_object(path, &c.raw_json);
  ConfigReader r(j, path);
  const std::string cls = r.str("_class_name", "AutoencoderKL");
  if (cls != "AutoencoderKL") r.fail("_class_name", "'" + cls + "' is not supported (AutoencoderKL)");
  c.latent_channels = r.pos_int("latent_channels", false, 4);
  c.out_channels = r.pos_int("out_channels", false, 3);
  if (!r.has("block_out_channels") || !j["block_out_channels"].is_array() || j["block_out_channels"].empty() ||
      j["block_out_channels"].size() > 8)
    r.fail("block_out_channels", "must be a list of 1 to 8 entries");
  for (const json& e : j["block_out_channels"]) {
    if (!e.is_number_integer() || e.get<int64_t>() <= 0 || e.get<int64_t>() > 65536)
      r.fail("block_out_channels", "must hold positive integers");
    c.block_out_channels.push_back(e.get<int64_t>());
  }
  c.layers_per_block = r.pos_int("layers_per_block", false, 1);
  if (c.layers_per_block > 16) r.fail("layers_per_block", "is too large");
  c.norm_num_groups = r.pos_int("norm_num_groups", false, 32);
  for (int64_t ch : c.block_out_channels)
    if (ch % c.norm_num_groups != 0) r.fail("norm_num_groups", "does not divide block_out_channels");
  c.scaling_factor = r.num("scaling_factor", 0.18215);
  if (c.scaling_factor == 0) r.fail("scaling_factor", "must not be zero");
  c.shift_factor = r.num("shift_factor", 0.0);
  c.use_post_quant_conv = r.boolean("use_post_quant_conv", true);
  c.mid_attention = r.boolean("mid_block_add_attention", true);
  if (r.has("up_block_types") && j["up_block_types"].is_array())
    for (const json& e : j["up_block_types"])
      if (!e.is_string() || e.get<std::string>() != "UpDecoderBlock2D")
        r.fail("up_block_types", "must all be UpDecoderBlock2D");
  r.only("act_fn", "silu");
  r.only("use_quant_conv", true);
  r.only("latents_mean", nullptr);
  r.only("latents_std", nullptr);
  // The encoder's keys (kiln decodes only), the tiling size, and a precision hint (kiln decodes
  // in f32).
  c.unmodeled =
      r.unmodeled({KILN_DIFFUSERS_IRRELEVANT_KEYS, "in_channels", "down_block_types", "sample_size", "force_upcast"});
  return c;
}

SchedulerConfig parse_scheduler_config(const std::string& text, const std::string& path) {
  SchedulerConfig c;
  c.raw_json = text;
  // Python's json writes float("-inf") (DPM-Solver's lambda_min_clipped default) as -Infinity,
  // which is not JSON: read it as an absent value, which is what it means here.
  std::string clean = text;
  for (size_t at = clean.find("-Infinity"); at != std::string::npos; at = clean.find("-Infinity", at))
    clean.replace(at, 9, "null");
  const json j = parse_json_limited(clean.data(), clean.data() + clean.size(), path);
  if (!j.is_object()) throw CompileError(path + ": not a JSON object");
  ConfigReader r(j, path);
  c.class_name = r.str("_class_name", "");
  if (const char* why = scheduler_class_refused(c.class_name)) r.fail("_class_name", "'" + c.class_name + "' " + why);
  c.num_train_timesteps = r.pos_int("num_train_timesteps", false, c.class_name == "ScoreSdeVpScheduler" ? 2000 : 1000);
  if (c.num_train_timesteps > 1000000) r.fail("num_train_timesteps", "is too large");
  c.beta_start = r.num("beta_start", 0.0001);
  c.beta_end = r.num("beta_end", 0.02);
  c.beta_schedule = r.str("beta_schedule", "linear");
  if (c.beta_schedule != "linear" && c.beta_schedule != "scaled_linear" && c.beta_schedule != "squaredcos_cap_v2")
    r.fail("beta_schedule", "'" + c.beta_schedule + "' is not supported (linear, scaled_linear, squaredcos_cap_v2)");
  if (r.has("trained_betas")) {
    if (!j["trained_betas"].is_array() || j["trained_betas"].size() != size_t(c.num_train_timesteps))
      r.fail("trained_betas", "must list num_train_timesteps numbers");
    for (const json& e : j["trained_betas"]) {
      if (!e.is_number() || !(e.get<double>() > 0 && e.get<double>() < 1))
        r.fail("trained_betas", "must hold numbers in (0, 1)");
      c.trained_betas.push_back(e.get<double>());
    }
  }
  if (!(c.beta_start > 0 && c.beta_end > 0 && c.beta_start < 1 && c.beta_end < 1))
    r.fail("beta_start", "and beta_end must lie in (0, 1)");
  c.prediction_type = r.str("prediction_type", "epsilon");
  if (c.prediction_type != "epsilon" && c.prediction_type != "v_prediction")
    r.fail("prediction_type", "'" + c.prediction_type + "' is not supported (epsilon, v_prediction)");
  c.timestep_spacing = r.str("timestep_spacing", "");
  if (!c.timestep_spacing.empty() && c.timestep_spacing != "leading" && c.timestep_spacing != "trailing" &&
      c.timestep_spacing != "linspace")
    r.fail("timestep_spacing", "'" + c.timestep_spacing + "' is not supported (leading, trailing, linspace)");
  if (r.has("steps_offset") && (!j["steps_offset"].is_number_integer() || j["steps_offset"].get<int64_t>() < 0 ||
                                j["steps_offset"].get<int64_t>() >= c.num_train_timesteps))
    r.fail("steps_offset", "must be an integer in [0, num_train_timesteps)");
  c.steps_offset_given = r.has("steps_offset");
  c.steps_offset = c.steps_offset_given ? j["steps_offset"].get<int64_t>() : 0;
  c.set_alpha_to_one = r.boolean("set_alpha_to_one", true);
  c.clip_sample_given = r.has("clip_sample");
  c.clip_sample = r.boolean("clip_sample", true);  // DDIMScheduler's default
  const std::string solver = r.str("solver_type", "midpoint");
  if (solver != "midpoint" && solver != "heun")
    r.fail("solver_type", "'" + solver + "' is not supported (midpoint, heun)");
  c.dpm_heun = solver == "heun";
  r.only("rescale_betas_zero_snr", false);
  r.only("thresholding", false);
  r.only("use_karras_sigmas", false);
  r.only("use_exponential_sigmas", false);
  r.only("use_beta_sigmas", false);
  r.only("timestep_type", "discrete");
  r.only("final_sigmas_type", "zero");
  r.only("interpolation_type", "linear");
  r.only("use_lu_lambdas", false);
  r.only("use_flow_sigmas", false);
  if (r.has("lambda_min_clipped") &&
      (!j["lambda_min_clipped"].is_number() || std::isfinite(j["lambda_min_clipped"].get<double>())))
    r.fail("lambda_min_clipped", "must be -inf or absent (kiln does not clip DPM-Solver's lambdas)");
  c.sde_beta_min = r.num("beta_min", 0.1);
  c.sde_beta_max = r.num("beta_max", 20.0);
  c.sde_sampling_eps = r.num("sampling_eps", 1e-3);
  if (!(c.sde_beta_min > 0 && c.sde_beta_max > c.sde_beta_min && c.sde_sampling_eps > 0 && c.sde_sampling_eps < 1))
    r.fail("beta_min", "beta_max and sampling_eps must satisfy 0 < beta_min < beta_max and 0 < sampling_eps < 1");
  r.only("clip_sample_range", 1.0);
  // Keys of the diffusers scheduler this file is for: kiln runs --sampler, which follows its
  // reference scheduler's defaults, so a file of that class must not change them.
  c.path = path;
  const std::pair<const char*, json> dpm_defaults[] = {{"solver_order", 2},
                                                       {"algorithm_type", "dpmsolver++"},
                                                       {"lower_order_final", true},
                                                       {"euler_at_final", false},
                                                       {"variance_type", nullptr},
                                                       {"use_dynamic_shifting", false},
                                                       {"time_shift_type", "exponential"}};
  for (const auto& [k, def] : dpm_defaults) {
    if (c.class_name == "DPMSolverMultistepScheduler") r.only(k, def);
    else if (j.contains(k) && !j[k].is_null() && j[k] != def &&
             // (DPM-Solver reads variance_type only as "learned" or "learned_range": DDPM's fixed_small is inert)
             (std::string(k) != "variance_type" || j[k] == "learned" || j[k] == "learned_range"))
      c.dpm_changed.push_back(std::string(k) + " " + j[k].dump());
  }
  if (c.class_name == "DDPMScheduler") r.only("variance_type", "fixed_small");
  // skip_prk_steps: PNDM's, which kiln never runs; sigma_min/max: only with the Karras-style sigmas
  // refused above; sample_max_value, dynamic_thresholding_ratio: only with thresholding;
  // flow_shift: only with flow sigmas. Other classes' algorithm keys (solver_order of a
  // DPM file compiled with --sampler euler) describe a scheduler kiln does not run.
  c.unmodeled =
      r.unmodeled({KILN_DIFFUSERS_IRRELEVANT_KEYS, "skip_prk_steps", "sigma_min", "sigma_max", "sample_max_value",
                   "dynamic_thresholding_ratio", "flow_shift", "solver_order", "algorithm_type", "lower_order_final",
                   "euler_at_final", "variance_type", "use_dynamic_shifting", "time_shift_type"});
  return c;
}

SchedulerConfig read_scheduler_config(const std::string& path) {
  return parse_scheduler_config(read_text_file(path), path);
}

}  // namespace kiln
