#include "runtime/diffusion.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "kernels/philox.h"
#include "kernels/sampler.h"

namespace kiln {

DiffusionSession::~DiffusionSession() = default;

Result<std::unique_ptr<DiffusionSession>> DiffusionSession::create(std::shared_ptr<const Plan> plan,
                                                                   const ContextOptions& opts) {
  if (!plan) return invalid_argument("plan is null");
  std::unique_ptr<DiffusionSession> s(new (std::nothrow) DiffusionSession());
  if (!s) return Status(StatusCode::kOutOfMemory, "out of memory creating a diffusion session");
  s->plan_ = plan;
  Result<std::unique_ptr<Executor>> e = make_executor(plan, opts);
  if (!e.is_ok()) return e.status();
  s->exec_ = e.take();
  KILN_RETURN_IF_ERROR(s->init());
  return s;
}

Status DiffusionSession::bind(const char* name, int* index) {
  *index = plan_->find_program(name);
  if (*index < 0) return unsupported(std::string("not a text-to-image plan: it has no '") + name + "' program");
  return Status::ok();
}

float* DiffusionSession::state_f32(int program, const char* input, std::vector<int64_t> shape, bool required,
                                   Status* st) {
  const ProgramInfo& pr = plan_->programs()[size_t(program)];
  const uint32_t t = pr.input(input);
  if (t == kNoTensor) {
    if (required) *st = corrupt_plan("program '" + pr.name + "' lacks its '" + input + "' input");
    return nullptr;
  }
  const TensorInfo& ti = plan_->tensors()[t];
  if (ti.dtype != DType::F32 || ti.shape != shape) {
    *st = corrupt_plan("program '" + pr.name + "': input '" + input + "' has shape " + shape_str(ti.shape) +
                       ", expected " + shape_str(shape));
    return nullptr;
  }
  return reinterpret_cast<float*>(exec_->host_state() + ti.offset);
}

Status DiffusionSession::init() {
  if (plan_->kind() != PlanKind::kTextToImage)
    return unsupported(std::string("not a text-to-image plan (it is of kind '") + plan_kind_name(plan_->kind()) + "')");
  const DiffusionInfo& info = plan_->diffusion();
  KILN_RETURN_IF_ERROR(bind("encode_text", &p_text_));
  KILN_RETURN_IF_ERROR(bind("prepare", &p_prepare_));
  KILN_RETURN_IF_ERROR(bind("unet", &p_unet_));
  KILN_RETURN_IF_ERROR(bind("denoise", &p_denoise_));
  KILN_RETURN_IF_ERROR(bind("vae_decode", &p_decode_));
  const auto& T = plan_->tensors();
  const auto& P = plan_->programs();
  // Sizes come from the programs' own tensors, which the loader has checked against every launch.
  const uint32_t tok = P[size_t(p_text_)].input("tokens");
  t_text_ = P[size_t(p_text_)].output("text_states");
  if (tok == kNoTensor || t_text_ == kNoTensor || T[tok].dtype != DType::I32 || T[tok].shape.size() != 2 ||
      T[t_text_].shape.size() != 2 || T[t_text_].dtype != DType::F32)
    return corrupt_plan("program 'encode_text' lacks tokens (G, L) i32 or text_states");
  G_ = T[tok].shape[0];
  L_ = T[tok].shape[1];
  D_ = T[t_text_].shape[1];
  vocab_ = plan_->model().vocab_size;
  if (G_ != 1 && G_ != 2) return corrupt_plan("the text batch must be 1 or 2 prompts");
  if (T[t_text_].shape[0] != G_ * L_) return corrupt_plan("text_states do not match the tokens");
  tokens_ = reinterpret_cast<int32_t*>(exec_->host_state() + T[tok].offset);

  const uint32_t nz = P[size_t(p_prepare_)].input("noise");
  if (nz == kNoTensor || T[nz].shape.size() != 4 || T[nz].shape[0] != 1)
    return corrupt_plan("program 'prepare' lacks its noise (1, h, w, c) input");
  h_ = T[nz].shape[1];
  w_ = T[nz].shape[2];
  c_ = T[nz].shape[3];
  Status st;
  noise_ = state_f32(p_prepare_, "noise", {1, h_, w_, c_}, true, &st);
  t_latents_prep_ = P[size_t(p_prepare_)].output("latents");
  t_latents_step_ = P[size_t(p_denoise_)].output("latents");
  t_image_ = P[size_t(p_decode_)].output("image");
  t_pred_ = P[size_t(p_unet_)].output("noise_pred");
  for (uint32_t t : {t_latents_prep_, t_latents_step_})
    if (t == kNoTensor || T[t].dtype != DType::F32 || T[t].shape != std::vector<int64_t>{1, h_, w_, c_})
      return corrupt_plan("the latents outputs do not match the noise input");
  if (t_pred_ == kNoTensor || T[t_pred_].dtype != DType::F32 ||
      T[t_pred_].shape != std::vector<int64_t>{G_, h_, w_, c_})
    return corrupt_plan("program 'unet' lacks its noise_pred output");
  if (t_image_ == kNoTensor || T[t_image_].dtype != DType::F32 || T[t_image_].shape.size() != 4 ||
      T[t_image_].shape[0] != 1 || T[t_image_].shape[3] != 3)
    return corrupt_plan("program 'vae_decode' lacks its image (1, H, W, 3) output");
  H_ = T[t_image_].shape[1];
  W_ = T[t_image_].shape[2];
  const uint32_t ctl = P[size_t(p_prepare_)].input("control");
  if (ctl != kNoTensor) control_ = state_f32(p_prepare_, "control", {1, H_, W_, 3}, true, &st);
  sample_ = state_f32(p_unet_, "sample", {G_, h_, w_, c_}, true, &st);
  timestep_ = state_f32(p_unet_, "timestep", {1}, true, &st);
  KILN_RETURN_IF_ERROR(st);
  const uint32_t step = P[size_t(p_denoise_)].input("step");
  if (step == kNoTensor || T[step].dtype != DType::I32 || T[step].shape != std::vector<int64_t>{1})
    return corrupt_plan("program 'denoise' lacks its step input");
  step_ = reinterpret_cast<int32_t*>(exec_->host_state() + T[step].offset);
  const uint32_t seed = P[size_t(p_denoise_)].input("seed");
  if (seed != kNoTensor) {
    if (T[seed].dtype != DType::I32 || T[seed].shape != std::vector<int64_t>{2})
      return corrupt_plan("the seed input must be (2,) i32");
    seed_ = reinterpret_cast<int32_t*>(exec_->host_state() + T[seed].offset);
  }
  steps_ = info.steps;
  if (P[size_t(p_denoise_)].counter != step || P[size_t(p_denoise_)].repeat != uint32_t(steps_))
    return corrupt_plan("program 'denoise' must loop over its " + std::to_string(steps_) +
                        " steps with 'step' as the counter");
  // The sampler's tables hold one row per step (their kernels clamp the step to the table, so a
  // shorter table would silently repeat its last row).
  bool sampler_step = false;
  for (const LaunchInfo& l : P[size_t(p_denoise_)].launches) {
    const OpDef* op = plan_->kernels()[l.kernel];
    if (op != &kSamplerStepOp && op != &kSamplerInputOp) continue;
    sampler_step = sampler_step || op == &kSamplerStepOp;
    if (T[l.inputs[1]].shape[0] != steps_)
      return corrupt_plan("program 'denoise' has a sampler table of " + std::to_string(T[l.inputs[1]].shape[0]) +
                          " steps, but the plan compiles " + std::to_string(steps_));
  }
  if (!sampler_step) return corrupt_plan("program 'denoise' has no sampler step");
  if (H_ != info.height || W_ != info.width || L_ != info.text_len || G_ != (info.guided() ? 2 : 1))
    return corrupt_plan("the diffusion table's size, text length or guidance contradicts the programs");
  return Status::ok();
}

Status DiffusionSession::encode_text(const int32_t* prompt, const int32_t* negative) {
  if (!prompt) return invalid_argument("prompt ids are null");
  if (G_ == 2 && !negative)
    return invalid_argument("this plan uses classifier-free guidance: give the negative prompt's ids");
  if (G_ == 1 && negative) return invalid_argument("this plan has no guidance: it takes no negative prompt");
  for (int64_t r = 0; r < G_; ++r) {
    const int32_t* src = G_ == 2 ? (r == 0 ? negative : prompt) : prompt;  // diffusers: [uncond, cond]
    for (int64_t i = 0; i < L_; ++i)
      if (src[i] < 0 || src[i] >= vocab_)
        return invalid_argument("token id " + std::to_string(src[i]) + " is out of range [0, " +
                                std::to_string(vocab_) + ")");
    std::memcpy(tokens_ + r * L_, src, size_t(L_) * sizeof(int32_t));
  }
  return exec_->run(p_text_);
}

void DiffusionSession::seed_noise(uint64_t seed, float* out) const {
  for (int64_t i = 0; i < latent_size(); ++i) out[i] = philox_normal(seed, 0, uint64_t(i));
}

Status DiffusionSession::prepare(const float* noise, const float* control) {
  if (!noise) return invalid_argument("initial noise is null");
  if (control_ && !control) return invalid_argument("this plan has a ControlNet: give a control image");
  if (!control_ && control) return invalid_argument("this plan has no ControlNet: it takes no control image");
  for (int64_t i = 0; i < latent_size(); ++i)
    if (!std::isfinite(noise[i])) return invalid_argument("the initial noise holds a non-finite value");
  std::memcpy(noise_, noise, size_t(latent_size()) * sizeof(float));
  if (control_) std::memcpy(control_, control, size_t(H_ * W_ * 3) * sizeof(float));
  KILN_RETURN_IF_ERROR(exec_->run(p_prepare_));
  latents_view_ = exec_->host_output(t_latents_prep_);
  return Status::ok();
}

void DiffusionSession::set_seed(uint64_t seed) {
  if (!seed_) return;
  seed_[0] = int32_t(uint32_t(seed));
  seed_[1] = int32_t(uint32_t(seed >> 32));
}

Status DiffusionSession::denoise(int64_t step, uint64_t seed) {
  if (step < 0 || step >= steps_)
    return invalid_argument("step " + std::to_string(step) + " is out of range [0, " + std::to_string(steps_) + ")");
  *step_ = int32_t(step);
  set_seed(seed);
  KILN_RETURN_IF_ERROR(exec_->run(p_denoise_));
  latents_view_ = exec_->host_output(t_latents_step_);
  return Status::ok();
}

Status DiffusionSession::denoise_all(uint64_t seed) {
  set_seed(seed);
  KILN_RETURN_IF_ERROR(exec_->run_loop(p_denoise_));
  latents_view_ = exec_->host_output(t_latents_step_);
  return Status::ok();
}

Status DiffusionSession::decode(float* image) {
  if (!image) return invalid_argument("image buffer is null");
  KILN_RETURN_IF_ERROR(exec_->run(p_decode_));
  std::memcpy(image, exec_->host_output(t_image_), size_t(H_ * W_ * 3) * sizeof(float));
  return Status::ok();
}

Status DiffusionSession::unet(const float* sample, float timestep, float* out) {
  if (!sample || !out) return invalid_argument("unet buffers are null");
  if (!std::isfinite(timestep)) return invalid_argument("timestep is not finite");
  std::memcpy(sample_, sample, size_t(G_ * latent_size()) * sizeof(float));
  *timestep_ = timestep;
  KILN_RETURN_IF_ERROR(exec_->run(p_unet_));
  std::memcpy(out, exec_->host_output(t_pred_), size_t(G_ * latent_size()) * sizeof(float));
  return Status::ok();
}

const float* DiffusionSession::latents() const { return static_cast<const float*>(latents_view_); }

const float* DiffusionSession::text_states() const { return static_cast<const float*>(exec_->host_output(t_text_)); }

void DiffusionSession::to_rgb8(const float* image, int64_t pixels, uint8_t* rgb) {
  for (int64_t i = 0; i < pixels * 3; ++i) {
    float v = image[i] / 2.0f + 0.5f;
    v = std::isnan(v) ? 0.0f : std::min(1.0f, std::max(0.0f, v));
    rgb[i] = uint8_t(std::nearbyint(v * 255.0f));  // numpy's round(): half to even
  }
}

}  // namespace kiln
