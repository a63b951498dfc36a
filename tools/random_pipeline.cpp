// Random-weight diffusers pipelines for kiln-random-checkpoint (--shape sd15 | sd-tiny): the
// folder layout and configs of Stable Diffusion 1.5 (or a tiny one for smoke runs), with
// bf16 weights for exactly the tensors kiln's diffusion frontend reads (taken from the
// frontend itself, so the shapes cannot drift), and no tokenizer (benchmarks feed ids).
#include "tools/random_pipeline.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "compiler/diffusion_config.h"
#include "compiler/error.h"
#include "compiler/frontends/diffusion.h"
#include "compiler/safetensors.h"

namespace kiln {

namespace {

using json = nlohmann::json;

void write_json(const std::string& path, const json& j) {
  std::ofstream f(path);
  f << j.dump(2);
  if (!f) throw CompileError("cannot write " + path);
}

}  // namespace

uint64_t write_random_pipeline(const std::string& out, bool tiny,
                               const std::function<void(std::vector<uint16_t>&, uint64_t)>& fill) {
  for (const char* sub : {"", "/text_encoder", "/unet", "/vae", "/scheduler"})
    if (std::system(("mkdir -p '" + out + sub + "'").c_str()) != 0) throw CompileError("cannot create " + out + sub);
  const std::vector<int> unet_ch = tiny ? std::vector<int>{32, 64} : std::vector<int>{320, 640, 1280, 1280};
  const std::vector<int> vae_ch = tiny ? std::vector<int>{32, 64} : std::vector<int>{128, 256, 512, 512};
  json down = json::array(), up = json::array();
  for (size_t i = 0; i < unet_ch.size(); ++i) {
    down.push_back(i + 1 < unet_ch.size() ? "CrossAttnDownBlock2D" : "DownBlock2D");
    up.push_back(i == 0 ? "UpBlock2D" : "CrossAttnUpBlock2D");
  }
  write_json(out + "/model_index.json", {{"_class_name", "StableDiffusionPipeline"},
                                         {"text_encoder", {"transformers", "CLIPTextModel"}},
                                         {"tokenizer", {"transformers", "CLIPTokenizer"}},
                                         {"unet", {"diffusers", "UNet2DConditionModel"}},
                                         {"vae", {"diffusers", "AutoencoderKL"}},
                                         {"scheduler", {"diffusers", "PNDMScheduler"}},
                                         {"safety_checker", {nullptr, nullptr}},
                                         {"feature_extractor", {nullptr, nullptr}}});
  write_json(out + "/text_encoder/config.json", {{"architectures", {"CLIPTextModel"}},
                                                 {"vocab_size", tiny ? 1000 : 49408},
                                                 {"hidden_size", tiny ? 32 : 768},
                                                 {"intermediate_size", tiny ? 37 : 3072},
                                                 {"num_hidden_layers", tiny ? 2 : 12},
                                                 {"num_attention_heads", tiny ? 4 : 12},
                                                 {"max_position_embeddings", 77},
                                                 {"hidden_act", "quick_gelu"},
                                                 {"layer_norm_eps", 1e-5},
                                                 {"bos_token_id", tiny ? 998 : 49406},
                                                 {"eos_token_id", tiny ? 999 : 49407}});
  write_json(out + "/unet/config.json", {{"_class_name", "UNet2DConditionModel"},
                                         {"sample_size", tiny ? 32 : 64},
                                         {"in_channels", 4},
                                         {"out_channels", 4},
                                         {"block_out_channels", unet_ch},
                                         {"down_block_types", down},
                                         {"up_block_types", up},
                                         {"layers_per_block", tiny ? 1 : 2},
                                         {"attention_head_dim", tiny ? 2 : 8},
                                         {"cross_attention_dim", tiny ? 32 : 768},
                                         {"norm_num_groups", tiny ? 8 : 32},
                                         {"norm_eps", 1e-5},
                                         {"flip_sin_to_cos", true},
                                         {"freq_shift", 0}});
  write_json(out + "/vae/config.json", {{"_class_name", "AutoencoderKL"},
                                        {"in_channels", 3},
                                        {"out_channels", 3},
                                        {"latent_channels", 4},
                                        {"block_out_channels", vae_ch},
                                        {"layers_per_block", tiny ? 1 : 2},
                                        {"norm_num_groups", tiny ? 8 : 32},
                                        {"scaling_factor", 0.18215},
                                        {"sample_size", tiny ? 64 : 512}});
  write_json(out + "/scheduler/scheduler_config.json", {{"_class_name", "PNDMScheduler"},
                                                        {"beta_start", 0.00085},
                                                        {"beta_end", 0.012},
                                                        {"beta_schedule", "scaled_linear"},
                                                        {"num_train_timesteps", 1000},
                                                        {"set_alpha_to_one", false},
                                                        {"skip_prk_steps", true},
                                                        {"steps_offset", 1},
                                                        {"clip_sample", false},
                                                        {"prediction_type", "epsilon"}});

  // The tensors the frontend reads, per component.
  DiffusionModel m;
  m.index = read_pipeline_index(out + "/model_index.json");
  m.clip = read_clip_text_config(out + "/text_encoder/config.json");
  m.unet = read_unet_config(out + "/unet/config.json");
  m.vae = read_vae_config(out + "/vae/config.json");
  m.scheduler = read_scheduler_config(out + "/scheduler/scheduler_config.json");
  std::map<std::string, std::vector<int64_t>> expected;
  build_diffusion_graph(m, build_schedule(m.scheduler, Sampler::kEuler, 1), DiffusionBuildOptions{}, &expected);
  const std::map<std::string, std::string> files = {{"text_encoder/", "/text_encoder/model.safetensors"},
                                                    {"unet/", "/unet/diffusion_pytorch_model.safetensors"},
                                                    {"vae/", "/vae/diffusion_pytorch_model.safetensors"}};
  uint64_t seed = 1, total = 0;
  for (const auto& [prefix, file] : files) {
    std::vector<std::vector<uint16_t>> data;
    std::vector<std::pair<std::string, std::vector<int64_t>>> names;
    for (const auto& [name, shape] : expected) {
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      size_t n = 1;
      for (int64_t d : shape) n *= size_t(d);
      data.emplace_back(n);
      const bool norm_weight = shape.size() == 1 && name.find("norm") != std::string::npos &&
                               name.compare(name.size() - 7, 7, ".weight") == 0;
      if (norm_weight) std::fill(data.back().begin(), data.back().end(), f32_to_bf16(1.0f));
      else fill(data.back(), seed++);
      names.push_back({name.substr(prefix.size()), shape});
    }
    std::vector<StWriteTensor> tensors;
    for (size_t i = 0; i < names.size(); ++i) {
      tensors.push_back({names[i].first, DType::BF16, names[i].second, data[i].data(), data[i].size() * 2});
      total += data[i].size() * 2;
    }
    write_safetensors(out + file, tensors);
    std::fprintf(stderr, "wrote %s (%zu tensors)\n", file.c_str() + 1, names.size());
  }
  return total;
}

}  // namespace kiln
