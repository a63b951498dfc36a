// Helpers of the diffusion tests (test_diffusion.cpp, test_diffusion_api.cpp): the diffusers
// reference files (NCHW, the cond row first) and their reordering to kiln's layout (channels-last,
// the negative row first), fixture pipelines compiled and opened, and the component checks.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/safetensors.h"
#include "runtime/diffusion.h"
#include "test_util.h"

namespace kiln::diffusion_test {

inline std::string dfix(const std::string& name) { return test::fixture(name, "diffusion"); }

struct RefFile {
  std::unique_ptr<SafetensorsFile> f;
  explicit RefFile(const std::string& path) : f(SafetensorsFile::open(path)) {}
  const StTensor& t(const std::string& n) const {
    auto it = f->tensors().find(n);
    REQUIRE_MESSAGE(it != f->tensors().end(), "reference tensor " << n << " is missing");
    return it->second;
  }
  std::vector<float> floats(const std::string& n) const {
    const StTensor& s = t(n);
    std::vector<float> v(size_t(s.numel()));
    convert_to_f32(s.data, s.dtype, v.data(), v.size());
    return v;
  }
  std::vector<int32_t> ints(const std::string& n) const {
    const StTensor& s = t(n);
    REQUIRE(s.st_dtype == "I32");
    std::vector<int32_t> v(size_t(s.numel()));
    std::memcpy(v.data(), s.data, v.size() * 4);
    return v;
  }
  std::vector<int64_t> shape(const std::string& n) const { return t(n).shape; }
};

// (b, c, h, w) → (b, h, w, c)
inline std::vector<float> nchw_to_nhwc(const std::vector<float>& x, int64_t b, int64_t c, int64_t h, int64_t w) {
  std::vector<float> y(x.size());
  for (int64_t n = 0; n < b; ++n)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t i = 0; i < h * w; ++i) y[size_t((n * h * w + i) * c + k)] = x[size_t((n * c + k) * h * w + i)];
  return y;
}

// Swaps the two halves of a two-image batch ([cond, uncond] ↔ [uncond, cond]).
inline std::vector<float> swap_halves(const std::vector<float>& x) {
  const size_t n = x.size() / 2;
  std::vector<float> y(x.begin() + long(n), x.end());
  y.insert(y.end(), x.begin(), x.begin() + long(n));
  return y;
}

// A fixture pipeline that keeps only its own UNet and scheduler (var_tiny, odd_tiny), with
// sd15_tiny's VAE, text encoder and tokenizer copied back in, as a folder under dir.
inline std::string with_sd15_components(const test::TempDir& dir, const std::string& fixture) {
  const std::string p = dir / "pipe";
  test::copy_dir(dfix(fixture) + "/pipeline", p);
  for (const char* comp : {"vae", "text_encoder", "tokenizer"})
    test::copy_dir(dfix("sd15_tiny") + "/pipeline/" + comp, p + "/" + comp);
  return p;
}

struct Compiled {
  test::TempDir dir;
  std::shared_ptr<const Plan> plan;
  std::unique_ptr<DiffusionSession> s;
};

inline std::unique_ptr<Compiled> compile_and_open(const std::string& pipeline, const std::string& sampler,
                                                  int64_t steps, const std::string& controlnet = "",
                                                  double control_scale = 1.0,
                                                  const std::vector<LoraAdapterSpec>& lora = {},
                                                  CompileSummary* summary = nullptr, int64_t height = 0,
                                                  int64_t width = 0) {
  auto c = std::make_unique<Compiled>();
  CompileOptions o;
  o.model_dir = pipeline;
  o.height = height;  // (0: the pipeline's default)
  o.width = width;
  o.output = c->dir / "sd.kplan";
  o.dtype = "f32";
  o.steps = steps;
  o.sampler = sampler;
  o.guidance = 7.5;
  o.controlnet = controlnet;
  o.control_scale = control_scale;
  o.target = "cpu";
  o.lora = lora;
  const CompileSummary sum = compile_model(o);
  if (summary) *summary = sum;
  auto p = Plan::load_file(o.output);
  REQUIRE_MESSAGE(p.is_ok(), p.status().message());
  c->plan = p.take();
  ContextOptions co;
  co.n_threads = 2;
  auto s = DiffusionSession::create(c->plan, co);
  REQUIRE_MESSAGE(s.is_ok(), s.status().message());
  c->s = s.take();
  return c;
}

// The VAE decoder alone: prepare() scales the noise by init_noise_sigma, so hand it latents / sigma.
inline void check_vae(DiffusionSession& s, const RefFile& ref) {
  const auto sh = ref.shape("vae_latents"), osh = ref.shape("vae_out");
  const std::vector<float> lat = nchw_to_nhwc(ref.floats("vae_latents"), 1, sh[1], sh[2], sh[3]);
  REQUIRE(s.prepare(lat.data(), nullptr).is_ok());
  const double sigma = double(s.latents()[0]) / double(lat[0]);  // init_noise_sigma
  std::vector<float> scaled(lat.size());
  for (size_t i = 0; i < lat.size(); ++i) scaled[i] = float(double(lat[i]) / sigma);
  REQUIRE(s.prepare(scaled.data(), nullptr).is_ok());
  CHECK(test::rel_l2(s.latents(), lat.data(), lat.size()) <= 1e-6);
  std::vector<float> img(size_t(osh[1] * osh[2] * osh[3]), NAN);
  REQUIRE(s.decode(img.data()).is_ok());
  const std::vector<float> want = nchw_to_nhwc(ref.floats("vae_out"), 1, osh[1], osh[2], osh[3]);
  const double e = test::rel_l2(img.data(), want.data(), want.size());
  MESSAGE("vae rel L2 " << e);
  CHECK(e <= 1e-4);
}

inline void encode(DiffusionSession& s, const RefFile& ref) {
  const std::vector<int32_t> ids = ref.ints("ids");  // rows [cond, uncond]
  const int64_t L = s.text_len();
  REQUIRE(int64_t(ids.size()) == 2 * L);
  REQUIRE(s.encode_text(ids.data(), ids.data() + L).is_ok());
}

inline void check_text(DiffusionSession& s, const RefFile& ref) {
  const std::vector<float> want = swap_halves(ref.floats("text_hidden"));
  const double e = test::rel_l2(s.text_states(), want.data(), want.size());
  MESSAGE("text encoder rel L2 " << e);
  CHECK(e <= 1e-4);
}

inline void check_unet(DiffusionSession& s, const RefFile& ref, const std::string& out_name) {
  const auto sh = ref.shape("unet_sample");
  const std::vector<float> sample = swap_halves(nchw_to_nhwc(ref.floats("unet_sample"), sh[0], sh[1], sh[2], sh[3]));
  std::vector<float> out(sample.size(), NAN);
  REQUIRE(s.unet(sample.data(), ref.floats("unet_timestep")[0], out.data()).is_ok());
  const std::vector<float> want = swap_halves(nchw_to_nhwc(ref.floats(out_name), sh[0], sh[1], sh[2], sh[3]));
  const double e = test::rel_l2(out.data(), want.data(), want.size());
  MESSAGE(out_name << " rel L2 " << e);
  CHECK(e <= 1e-4);
}

// The whole loop from the reference's initial latents, then the decode, against the pipeline.
inline void check_loop(DiffusionSession& s, const RefFile& ref, const std::string& key, const float* control) {
  const auto sh = ref.shape("init_latents");
  const std::vector<float> noise = nchw_to_nhwc(ref.floats("init_latents"), 1, sh[1], sh[2], sh[3]);
  REQUIRE(s.prepare(noise.data(), control).is_ok());
  REQUIRE(s.denoise_all(0).is_ok());
  const std::vector<float> want = nchw_to_nhwc(ref.floats("loop_" + key + "_latents"), 1, sh[1], sh[2], sh[3]);
  const double e = test::rel_l2(s.latents(), want.data(), want.size());
  MESSAGE("loop " << key << " latents rel L2 " << e);
  CHECK(e <= 1e-3);
  std::vector<float> image(size_t(s.height() * s.width() * 3), NAN);
  REQUIRE(s.decode(image.data()).is_ok());
  for (float& v : image) v = std::min(1.0f, std::max(0.0f, v / 2 + 0.5f));  // diffusers' postprocess
  const std::vector<float> img_ref = ref.floats("loop_" + key + "_image");
  const double ei = test::rel_l2(image.data(), img_ref.data(), img_ref.size());
  MESSAGE("loop " << key << " image rel L2 " << ei);
  CHECK(ei <= 1e-3);
}

}  // namespace kiln::diffusion_test
