// DiffusionSession: one text-to-image plan (compiler/frontends/diffusion.h) on one backend.
// It checks the plan's diffusion programs once at creation, then drives them: encode the
// prompt pair, draw or take the initial noise, replay the `denoise` program once per step
// (the step index and seed are the only state that changes), decode with the VAE and
// convert to 8-bit RGB. All memory is allocated at creation; not thread-safe (one session
// per thread; the Plan is shared).
//
// Layouts: latents and noise are channels-last (h, w, c) floats for one image; images are
// (H, W, 3) row-major RGB.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/context.h"  // ContextOptions
#include "runtime/executor.h"
#include "runtime/plan.h"

namespace kiln {

class DiffusionSession {
 public:
  static Result<std::unique_ptr<DiffusionSession>> create(std::shared_ptr<const Plan> plan, const ContextOptions& opts);
  ~DiffusionSession();

  int64_t height() const { return H_; }
  int64_t width() const { return W_; }
  int64_t latent_height() const { return h_; }
  int64_t latent_width() const { return w_; }
  int64_t latent_channels() const { return c_; }
  int64_t latent_size() const { return h_ * w_ * c_; }
  int64_t steps() const { return steps_; }
  int64_t text_len() const { return L_; }
  bool guided() const { return G_ == 2; }  // classifier-free guidance (a negative prompt row)
  bool stochastic() const { return seed_ != nullptr; }
  bool has_control() const { return control_ != nullptr; }
  const char* backend() const { return exec_->backend(); }
  std::string describe() const { return exec_->describe(); }

  // Runs the text encoder. tokens: text_len() ids for the prompt, and when guided() another
  // text_len() for the negative prompt. Ids are checked against the vocabulary.
  Status encode_text(const int32_t* prompt, const int32_t* negative);
  // The initial noise of `seed` (kernels/philox.h, stream 0), latent_size() floats.
  void seed_noise(uint64_t seed, float* out) const;
  // Sets the latents to init_noise_sigma · noise, and the control image when the plan has a
  // ControlNet (height() × width() × 3 floats in [0, 1]; required then, else must be null).
  Status prepare(const float* noise, const float* control);
  // One sampler step (0 ≤ step < steps()); `seed` feeds stochastic samplers' noise.
  Status denoise(int64_t step, uint64_t seed);
  // Every step in order, as one replay of the loop program (one CUDA graph). Step by step (one
  // replay each, as the C API's kiln_diffusion_denoise_steps runs them): denoise(step) in order.
  Status denoise_all(uint64_t seed);
  // The VAE decoder's raw output, height() × width() × 3 floats (about [−1, 1]).
  Status decode(float* image);
  // One model call on the current text states (and control): sample is guided() ? 2 : 1
  // images of latent_size() floats, the negative prompt's first; out receives as many.
  Status unet(const float* sample, float timestep, float* out);

  const float* latents() const;      // latent_size() floats, valid after prepare/denoise
  const float* text_states() const;  // (G · text_len, hidden), valid after encode_text
  int64_t text_hidden() const { return D_; }

  // diffusers' postprocess: (x / 2 + 0.5) clamped to [0, 1], then ×255 rounded half to even, to RGB bytes.
  static void to_rgb8(const float* image, int64_t pixels, uint8_t* rgb);

 private:
  DiffusionSession() = default;
  Status init();
  Status bind(const char* name, int* index);
  void set_seed(uint64_t seed);  // the seed state of stochastic samplers (no-op otherwise)
  float* state_f32(int program, const char* input, std::vector<int64_t> shape, bool required, Status* st);

  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<Executor> exec_;
  int p_text_ = -1, p_prepare_ = -1, p_unet_ = -1, p_denoise_ = -1, p_decode_ = -1;
  int32_t* tokens_ = nullptr;
  float* noise_ = nullptr;
  float* control_ = nullptr;
  float* sample_ = nullptr;
  float* timestep_ = nullptr;
  int32_t* step_ = nullptr;
  int32_t* seed_ = nullptr;
  uint32_t t_text_ = 0, t_latents_prep_ = 0, t_latents_step_ = 0, t_pred_ = 0, t_image_ = 0;
  const void* latents_view_ = nullptr;
  int64_t H_ = 0, W_ = 0, h_ = 0, w_ = 0, c_ = 0, steps_ = 0, L_ = 0, G_ = 1, D_ = 0, vocab_ = 0;
};

}  // namespace kiln
