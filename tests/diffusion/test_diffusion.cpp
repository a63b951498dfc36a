// Diffusion parity against diffusers 0.42 (tests/fixtures/diffusion, made by
// tools/make_fixtures.py --only diffusion): the text encoder, one UNet call (with and without a
// ControlNet), the VAE decoder and whole denoising loops followed by the decode, all on f32
// plans. The references are NCHW with the cond row first; kiln is channels-last with the
// negative (uncond) row first, which tests/diffusion/diffusion_test.h reorders.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>

#include "compiler/compile.h"
#include "compiler/diffusion_config.h"
#include "compiler/safetensors.h"
#include "compiler/schedule.h"
#include "diffusion/diffusion_test.h"
#include "kernels/philox.h"
#include "kernels/sampler.h"
#include "runtime/diffusion.h"
#include "test_util.h"

using namespace kiln;

using namespace kiln::diffusion_test;

TEST_CASE("diffusion sd15_tiny: text encoder, UNet, VAE and the Euler loop match diffusers") {
  const RefFile ref(dfix("sd15_tiny") + "/reference.safetensors");
  auto c = compile_and_open(dfix("sd15_tiny") + "/pipeline", "euler", 4);
  DiffusionSession& s = *c->s;
  CHECK(s.height() == 64);
  CHECK(s.latent_channels() == 4);
  encode(s, ref);
  check_text(s, ref);
  check_unet(s, ref, "unet_out");
  check_vae(s, ref);
  check_loop(s, ref, "euler", nullptr);
  // The loop replayed whole (one program replay; one graph on CUDA) equals step-by-step replays.
  const std::vector<float> whole(s.latents(), s.latents() + s.latent_size());
  const std::vector<float> noise = nchw_to_nhwc(ref.floats("init_latents"), 1, 4, 32, 32);
  REQUIRE(s.prepare(noise.data(), nullptr).is_ok());
  REQUIRE(s.steps() == 4);
  for (int64_t i = 0; i < s.steps(); ++i) REQUIRE(s.denoise(i, 0).is_ok());
  CHECK(std::memcmp(whole.data(), s.latents(), whole.size() * sizeof(float)) == 0);
  REQUIRE(s.prepare(noise.data(), nullptr).is_ok());
  for (int64_t i = 0; i < 2; ++i) REQUIRE(s.denoise(i, 0).is_ok());  // two of the four steps
  CHECK(std::memcmp(whole.data(), s.latents(), whole.size() * sizeof(float)) != 0);
}

TEST_CASE("diffusion sd15_tiny: DDIM and DPM-Solver++ 2M loops match diffusers") {
  const RefFile ref(dfix("sd15_tiny") + "/reference.safetensors");
  for (const std::string sampler : {"ddim", "dpmpp_2m"}) {
    CAPTURE(sampler);
    auto c = compile_and_open(dfix("sd15_tiny") + "/pipeline", sampler, 4);
    encode(*c->s, ref);
    check_loop(*c->s, ref, sampler, nullptr);
  }
}

TEST_CASE("diffusion sd2_tiny (linear projections, GELU CLIP, v-prediction): every component and three loops") {
  const RefFile ref(dfix("sd2_tiny") + "/reference.safetensors");
  for (const std::string sampler : {"euler", "ddim", "dpmpp_2m"}) {
    CAPTURE(sampler);
    auto c = compile_and_open(dfix("sd2_tiny") + "/pipeline", sampler, 4);
    DiffusionSession& s = *c->s;
    encode(s, ref);
    if (sampler == "euler") {
      check_text(s, ref);
      check_unet(s, ref, "unet_out");
    }
    check_loop(s, ref, sampler, nullptr);
  }
}

// Encodes controlnet_tiny's prompt and prepares its control image, as the pipeline prepared it
// (values in [0, 1]; both CFG rows are equal), with zero noise; returns the control image.
namespace {
std::vector<float> encode_with_control(DiffusionSession& s, const RefFile& ref) {
  encode(s, ref);
  const std::vector<float> cond = nchw_to_nhwc(ref.floats("cn_cond"), 2, 3, 64, 64);
  const std::vector<float> control(cond.begin(), cond.begin() + 64 * 64 * 3);
  const std::vector<float> noise(size_t(s.latent_size()), 0.0f);
  REQUIRE(s.prepare(noise.data(), control.data()).is_ok());
  return control;
}
}  // namespace

TEST_CASE("diffusion ControlNet: residuals change the UNet call and the loop exactly as diffusers") {
  const RefFile ref(dfix("controlnet_tiny") + "/reference.safetensors");
  auto c = compile_and_open(dfix("sd15_tiny") + "/pipeline", "euler", 4, dfix("controlnet_tiny") + "/controlnet",
                            double(ref.floats("cn_scale")[0]));
  DiffusionSession& s = *c->s;
  REQUIRE(s.has_control());
  const std::vector<float> control = encode_with_control(s, ref);
  check_unet(s, ref, "cn_unet_out");
  check_loop(s, ref, "euler_cn", control.data());
  // Bad calls: a ControlNet plan needs its image.
  const std::vector<float> noise(size_t(s.latent_size()), 0.0f);
  CHECK(s.prepare(noise.data(), nullptr).code() == StatusCode::kInvalidArgument);
}

// A ControlNet with global_pool_conditions (control_v11e_sd15_shuffle's config): each residual is
// its image's mean over height and width, and with guidance diffusers runs the ControlNet on the
// positive prompt only (guess mode), adding zeros to the negative. The fixture's own ControlNet with
// the key set, against diffusers (controlnet_tiny/pool_reference.safetensors).
TEST_CASE("diffusion ControlNet with global_pool_conditions: pooled residuals on the positive half, as diffusers") {
  const RefFile ref(dfix("controlnet_tiny") + "/reference.safetensors");
  const RefFile pool(dfix("controlnet_tiny") + "/pool_reference.safetensors");
  test::TempDir dir;
  const std::string cn = dir / "controlnet";
  test::copy_dir(dfix("controlnet_tiny") + "/controlnet", cn);
  const auto bytes = test::read_bytes(cn + "/config.json");
  std::string cfg(bytes.begin(), bytes.end());
  const std::string off = "\"global_pool_conditions\": false";
  REQUIRE(cfg.find(off) != std::string::npos);
  cfg.replace(cfg.find(off), off.size(), "\"global_pool_conditions\": true");
  std::ofstream(cn + "/config.json") << cfg;
  auto c = compile_and_open(dfix("sd15_tiny") + "/pipeline", "euler", 4, cn, double(ref.floats("cn_scale")[0]));
  DiffusionSession& s = *c->s;
  const std::vector<float> control = encode_with_control(s, ref);
  check_unet(s, pool, "cn_pool_unet_out");
  check_loop(s, pool, "euler_cn_pool", control.data());
}

TEST_CASE("diffusion Philox4x32-10 matches the Random123 known-answer vectors, and its normals are standard") {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  // Random123's kat_vectors (Salmon et al., SC'11).
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    const Philox4 r = philox4x32_10(Philox4{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.out[i]);
  }
  double s1 = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = philox_normal(42, 7, uint64_t(i));
    s1 += z;
    s2 += z * z;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  CHECK(std::fabs(mean) < 0.01);
  CHECK(std::fabs(var - 1.0) < 0.01);
  CHECK(philox_normal(1, 0, 5) != philox_normal(2, 0, 5));  // seeds differ
  CHECK(philox_normal(1, 0, 5) != philox_normal(1, 1, 5));  // streams differ
}

// One step of each sampler along a diffusers trajectory: the compiled schedule (timesteps,
// sigmas, input scale, initial sigma) and the sampler_step kernel, fed the recorded samples,
// model outputs and noise, against step()'s prev_sample.
TEST_CASE("diffusion samplers: every step of DDIM, Euler, Euler-a, DPM++ 2M and VP-SDE matches diffusers") {
  const std::string dir = dfix("samplers");
  struct Case {
    std::string config, file, sampler;
  };
  std::vector<Case> cases;
  for (const char* cfg : {"sd15", "vpred"})
    for (const char* s : {"ddim", "euler", "euler_a", "dpmpp_2m"})
      cases.push_back({cfg, std::string(cfg) + "_" + s, s});
  for (const char* s : {"ddim", "euler", "dpmpp_2m"}) cases.push_back({"lin", std::string("lin_") + s, s});  // 30 steps
  cases.push_back({"heun", "heun_dpmpp_2m", "dpmpp_2m"});  // DPM-Solver++ 2M with solver_type "heun"
  cases.push_back({"vp_sde", "vp_sde", "vp_sde"});
  ThreadPool pool(1);
  for (const Case& cs : cases) {
    CAPTURE(cs.file);
    const SchedulerConfig cfg = read_scheduler_config(dir + "/" + cs.config + ".json");
    const RefFile ref(dir + "/" + cs.file + ".safetensors");
    const std::vector<float> ts = ref.floats("timesteps");
    const int64_t N = int64_t(ts.size());
    const Schedule sch = build_schedule(cfg, parse_sampler(cs.sampler), N);
    const bool sde = cs.sampler == "vp_sde";
    for (int64_t i = 0; i < N; ++i) {
      const double want = ts[size_t(i)], got = sde ? sch.timesteps[size_t(i)] / double(cfg.num_train_timesteps - 1)
                                                   : sch.timesteps[size_t(i)];
      CHECK(std::fabs(got - want) <= 1e-6 * std::max(1.0, std::fabs(want)));
      CHECK(std::fabs(sch.coefs[size_t(i * kSamplerCoefs + kSin)] - ref.floats("scale_in")[size_t(i)]) <= 1e-6);
    }
    CHECK(std::fabs(sch.init_noise_sigma - ref.floats("init_noise_sigma")[0]) <= 1e-5 * sch.init_noise_sigma);
    if (ref.f->tensors().count("sigmas")) {
      const std::vector<float> sg = ref.floats("sigmas");
      REQUIRE(sg.size() == sch.sigmas.size());
      for (size_t i = 0; i < sg.size(); ++i) CHECK(std::fabs(sch.sigmas[i] - sg[i]) <= 1e-5 * std::max(1.0f, sg[i]));
    }
    const std::vector<float> xs = ref.floats("samples"), ms = ref.floats("model_outputs"), zs = ref.floats("noise"),
                             prev = ref.floats(sde ? "prev_means" : "prev_samples"),
                             prev_full = ref.floats("prev_samples");
    const int64_t n = int64_t(xs.size()) / N;
    std::vector<float> h(size_t(n), 0.0f);
    int32_t step = 0;
    double worst = 0;
    for (int64_t i = 0; i < N; ++i) {
      std::vector<float> x(xs.begin() + i * n, xs.begin() + (i + 1) * n);
      step = int32_t(i);
      SamplerStepArgs a{ms.data() + i * n, sch.coefs.data(), N, &step, zs.data() + i * n,
                        x.data(),          h.data(),         n, 1,     1.0f};
      sampler_step_cpu(a, pool);
      // vp_sde: kiln returns the noise-free mean at the last step (Song et al.); before it, the sample.
      const float* want = (sde && i + 1 < N ? prev_full.data() : prev.data()) + i * n;
      worst = std::max(worst, test::rel_l2(x.data(), want, size_t(n)));
    }
    MESSAGE(cs.file << ": worst step rel L2 " << worst);
    CHECK(worst <= 1e-5);
  }
}

// --- through the C API, the CLI, and on bad input
