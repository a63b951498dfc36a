// The diffusers pipeline frontend (a folder with model_index.json): reads the component configs
// and checkpoints, folds the sampler into tables and builds the programs of
// compiler/frontends/diffusion.h; compile_model writes the plan.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <sstream>

#include "compiler/compile.h"
#include "compiler/error.h"
#include "compiler/frontends/common.h"
#include "compiler/frontends/diffusion.h"
#include "compiler/frontends/frontend.h"
#include "compiler/json_util.h"
#include "compiler/safetensors.h"
#include "compiler/tokenizer_reader.h"

namespace kiln {

namespace {

void need_file(const std::string& path, const std::string& what) {
  if (!path_exists(path)) throw CompileError(path + ": missing (" + what + ")");
}

std::string num(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

FrontendBuild build_pipeline(const CompileOptions& o) {
  const std::string& d = o.model_dir;
  if (o.max_seq != 0 || o.batch != 1 || o.chunk != 0)
    throw CompileError("--max-seq, --batch and --chunk are for language models; " + d + " is a diffusers pipeline");
  DiffusionModel m;
  m.index = read_pipeline_index(d + "/model_index.json");
  if (!m.index.has_text_encoder || !m.index.has_unet || !m.index.has_vae)
    throw CompileError(
        d + "/model_index.json: kiln needs the text_encoder, unet and vae components (" + m.index.class_name +
        " lists " + std::string(m.index.has_text_encoder ? "" : "no text_encoder ") +
        std::string(m.index.has_unet ? "" : "no unet ") + std::string(m.index.has_vae ? "" : "no vae") + ")");
  need_file(d + "/text_encoder/config.json", "the text encoder's config");
  need_file(d + "/unet/config.json", "the UNet's config");
  need_file(d + "/vae/config.json", "the VAE's config");
  need_file(d + "/scheduler/scheduler_config.json", "the scheduler's config");
  m.clip = read_clip_text_config(d + "/text_encoder/config.json");
  m.unet = read_unet_config(d + "/unet/config.json");
  m.vae = read_vae_config(d + "/vae/config.json");
  m.scheduler = read_scheduler_config(d + "/scheduler/scheduler_config.json");
  if (m.vae.shift_factor != 0) throw CompileError(d + "/vae/config.json: shift_factor is not supported");
  if (!o.controlnet.empty()) {
    need_file(o.controlnet + "/config.json", "the ControlNet's config");
    m.controlnet = read_unet_config(o.controlnet + "/config.json", true);
  }
  if (o.controlnet.empty() && o.control_scale != CompileOptions{}.control_scale)
    throw CompileError("--control-scale is for a ControlNet: give one with --controlnet DIR");
  if (o.controlnet.empty() && m.index.has_controlnet)
    throw CompileError(d + "/model_index.json: the pipeline has a ControlNet (" + m.index.class_name +
                       "): give it with --controlnet " + d + "/controlnet");
  std::string key_notes;
  add_note(&key_notes, check_config_keys(m.index.unmodeled, d + "/model_index.json", o));
  add_note(&key_notes, check_config_keys(m.clip.unmodeled, d + "/text_encoder/config.json", o));
  add_note(&key_notes, check_config_keys(m.unet.unmodeled, d + "/unet/config.json", o));
  add_note(&key_notes, check_config_keys(m.vae.unmodeled, d + "/vae/config.json", o));
  add_note(&key_notes, check_config_keys(m.scheduler.unmodeled, d + "/scheduler/scheduler_config.json", o));
  if (m.controlnet) add_note(&key_notes, check_config_keys(m.controlnet->unmodeled, o.controlnet + "/config.json", o));

  FrontendBuild b;
  Checkpoint& ck = b.checkpoint;
  {
    // Hub checkpoints name CLIP's tensors text_model.*; transformers 5 saves them without the prefix.
    Checkpoint te = Checkpoint::open_dir(d + "/text_encoder", "model");
    const bool prefixed = te.find("text_model.embeddings.token_embedding.weight") != nullptr;
    ck.absorb(std::move(te), prefixed ? "text_encoder/" : "text_encoder/text_model.");
  }
  ck.absorb(Checkpoint::open_dir(d + "/unet", "diffusion_pytorch_model"), "unet/");
  // Older VAE checkpoints (SD 1.x/2.x on the hub) name the mid-block attention query/key/value/
  // proj_attn; diffusers renames them to to_q/to_k/to_v/to_out.0 when loading, and so does kiln.
  ck.absorb(Checkpoint::open_dir(d + "/vae", "diffusion_pytorch_model"), "vae/", [](const std::string& n) {
    static const std::pair<const char*, const char*> kOld[] = {{".attentions.0.query.", ".attentions.0.to_q."},
                                                               {".attentions.0.key.", ".attentions.0.to_k."},
                                                               {".attentions.0.value.", ".attentions.0.to_v."},
                                                               {".attentions.0.proj_attn.", ".attentions.0.to_out.0."}};
    for (const auto& [from, to] : kOld)
      if (const size_t at = n.find(from); at != std::string::npos)
        return n.substr(0, at) + to + n.substr(at + std::strlen(from));
    return n;
  });
  if (m.controlnet) ck.absorb(Checkpoint::open_dir(o.controlnet, "diffusion_pytorch_model"), "controlnet/");

  // LoRA adapters for the UNet or the text encoder (PEFT folders); each is matched to its component.
  // A diffusers LoRA file becomes one adapter per component it holds.
  std::vector<LoraAdapterSpec> lora_specs;
  for (const LoraAdapterSpec& l : o.lora)
    for (LoraAdapterSpec& s : expand_lora_spec(l)) lora_specs.push_back(std::move(s));
  for (LoraAdapterSpec& l : lora_specs)
    l.prefix = find_lora_prefix(l, ck, {"unet/", "text_encoder/", "text_encoder/text_model."});
  b.lora = LoraSet::load(lora_specs, ck, false);
  add_note(&key_notes, check_lora_config_keys(b.lora, o));

  const Sampler sampler = parse_sampler(o.sampler);
  const Schedule sched =
      build_schedule(pipeline_scheduler(m.scheduler, m.index.class_name == "StableDiffusionPipeline" && !m.controlnet,
                                        m.index.scheduler_class, sampler),
                     sampler, o.steps);
  // (the plan holds them as f32: finite there too)
  if (!(o.guidance >= 0 && o.guidance <= FLT_MAX))
    throw CompileError("--guidance must be a number from 0 to " + short_float(FLT_MAX) + ", not " +
                       short_float(float(o.guidance)));
  if (!(std::fabs(o.control_scale) <= FLT_MAX))
    throw CompileError("--control-scale must be a number of magnitude at most " + short_float(FLT_MAX) + ", not " +
                       short_float(float(o.control_scale)));
  if (o.height < 0 || o.width < 0) throw CompileError("--height and --width must be positive");

  const StTensor* probe = ck.find("unet/conv_in.weight");
  if (!probe) throw CompileError(d + "/unet: missing tensor 'conv_in.weight'");
  DiffusionBuildOptions bo;
  bo.plan_dtype = parse_plan_dtype(o.dtype, probe->dtype);
  const int64_t f = vae_scale_factor(m.vae);
  bo.height = o.height ? o.height : m.unet.sample_size * f;
  bo.width = o.width ? o.width : m.unet.sample_size * f;
  bo.steps = o.steps;
  bo.sampler = sampler;
  bo.guidance = o.guidance;
  bo.control_scale = o.control_scale;
  bo.text_len = std::min<int64_t>(77, m.clip.max_position_embeddings);

  std::map<std::string, std::vector<int64_t>> expected;
  Graph& g = b.graph = build_diffusion_graph(m, sched, bo, &expected);
  check_checkpoint_tensors(expected, ck, diffusion_tensor_ignorable);

  const int64_t G = bo.guidance > 1.0 ? 2 : 1;
  g.kind = PlanKind::kTextToImage;
  g.info.architecture = m.index.class_name.empty() ? "StableDiffusionPipeline" : m.index.class_name;
  g.info.vocab_size = m.clip.vocab_size;
  g.info.source_dtype = probe->dtype;
  g.info.plan_dtype = bo.plan_dtype;
  g.info.config_json = read_text_file(d + "/model_index.json");  // the pipeline's own config, verbatim
  DiffusionInfo& di = g.diffusion;
  di.height = bo.height;
  di.width = bo.width;
  di.steps = bo.steps;
  di.sampler = sampler_name(sampler);
  di.timestep_spacing = sched.spacing;
  di.prediction_type = m.scheduler.prediction_type;
  di.guidance = bo.guidance;
  di.init_noise_sigma = sched.init_noise_sigma;
  di.text_len = bo.text_len;
  di.control_scale = m.controlnet ? bo.control_scale : 1.0;
  di.vae_scaling_factor = m.vae.scaling_factor;
  di.components = {"text_encoder", "unet", "vae"};
  if (m.controlnet) di.components.push_back("controlnet");
  g.info.notes = std::string("sampler ") + sampler_name(sampler) + " (" + sampler_reference(sampler) + "), " +
                 std::to_string(bo.steps) + " steps, " + sched.spacing + " timesteps" +
                 (G == 2 ? ", guidance " + num(bo.guidance) : ", no classifier-free guidance") +
                 (m.controlnet ? ", ControlNet scale " + num(bo.control_scale) : "");

  if (!o.no_tokenizer) {
    TokenizerData td;
    if (read_clip_tokenizer(d + "/tokenizer", &td)) {
      attach_tokenizer(g, std::move(td), d + "/tokenizer", "text encoder");
    }
  }

  b.summary.text_to_image = true;
  b.summary.plan_dtype = bo.plan_dtype;
  add_note(&g.info.notes, key_notes);
  b.summary.notes = g.info.notes;
  return b;
}

bool is_pipeline_folder(const std::string& dir) { return path_exists(dir + "/model_index.json"); }

}  // namespace

extern const Frontend kDiffusionFrontend{"diffusers pipeline", {}, is_pipeline_folder, build_pipeline};

}  // namespace kiln
