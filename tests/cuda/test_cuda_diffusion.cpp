// Text-to-image plans on the CUDA backend: the tiny diffusers fixtures compiled once, run on the
// CPU and on the GPU. The GPU must match the CPU (and diffusers) within the f32 bounds, replay
// the whole loop graph exactly as step-by-step graphs and as stream mode (bit for bit), and keep
// bf16 plans within 2e-2. Without a usable GPU each test prints "SKIPPED: no CUDA device".
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "compiler/compile.h"
#include "cuda/cuda_test.h"
#include "diffusion/diffusion_test.h"
#include "runtime/diffusion.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace kiln;

namespace {

std::shared_ptr<const Plan> compile_plan(const test::TempDir& dir, const std::string& name, const std::string& dtype,
                                         const std::string& sampler, const std::string& controlnet = "") {
  CompileOptions o;
  o.model_dir = test::fixture("sd15_tiny", "diffusion") + "/pipeline";
  o.output = dir / name;
  o.dtype = dtype;
  o.steps = 4;
  o.sampler = sampler;
  o.controlnet = controlnet;
  o.control_scale = 0.8;
  compile_model(o);
  auto p = Plan::load_file(o.output);
  REQUIRE_MESSAGE(p.is_ok(), p.status().message());
  return p.take();
}

std::unique_ptr<DiffusionSession> open(std::shared_ptr<const Plan> plan, const std::string& device,
                                       bool graphs = true) {
  ContextOptions co;
  co.device = device;
  co.n_threads = 2;
  co.use_graphs = graphs;
  auto s = DiffusionSession::create(std::move(plan), co);
  REQUIRE_MESSAGE(s.is_ok(), s.status().message());
  return s.take();
}

struct Run {
  std::vector<float> text, pred, latents, image;
};

// Text states, one UNet call, the whole loop and the decode, from fixed ids, noise and sample.
Run run_all(DiffusionSession& s, const float* control, bool step_by_step = false) {
  Run r;
  std::vector<int32_t> ids(size_t(s.text_len())), neg(size_t(s.text_len()));
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = int32_t((i * 37 + 11) % 999);
    neg[i] = int32_t((i * 13 + 5) % 999);
  }
  REQUIRE(s.encode_text(ids.data(), neg.data()).is_ok());
  r.text.assign(s.text_states(), s.text_states() + 2 * s.text_len() * s.text_hidden());
  std::vector<float> noise(size_t(s.latent_size()));
  s.seed_noise(5, noise.data());
  REQUIRE(s.prepare(noise.data(), control).is_ok());
  const std::vector<float> sample = test::random_floats(size_t(2 * s.latent_size()), 77);
  r.pred.assign(sample.size(), NAN);
  REQUIRE(s.unet(sample.data(), 537.0f, r.pred.data()).is_ok());
  if (step_by_step)
    for (int64_t i = 0; i < s.steps(); ++i) REQUIRE(s.denoise(i, 9).is_ok());
  else REQUIRE(s.denoise_all(9).is_ok());
  r.latents.assign(s.latents(), s.latents() + s.latent_size());
  r.image.assign(size_t(s.height() * s.width() * 3), NAN);
  REQUIRE(s.decode(r.image.data()).is_ok());
  return r;
}

void near(const std::vector<float>& a, const std::vector<float>& b, double bound, const char* what) {
  REQUIRE(a.size() == b.size());
  const double e = test::rel_l2(a.data(), b.data(), a.size());
  MESSAGE(what << " rel L2 " << e);
  CHECK(e <= bound);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE(
    "cuda diffusion: f32 plans match the CPU backend, and the loop graph, step graphs and stream mode agree bit for bit") {
  if (cuda_test::skip_without_gpu()) return;
  test::TempDir dir;
  for (const char* sampler : {"euler", "euler_a", "dpmpp_2m"}) {
    CAPTURE(sampler);
    auto plan = compile_plan(dir, std::string(sampler) + ".kplan", "f32", sampler);
    const Run cpu = run_all(*open(plan, "cpu"), nullptr);
    auto gpu_s = open(plan, "cuda");
    const Run gpu = run_all(*gpu_s, nullptr);
    near(gpu.text, cpu.text, 1e-5, "text states");
    near(gpu.pred, cpu.pred, 1e-4, "unet call");
    near(gpu.latents, cpu.latents, 1e-3, "loop latents");
    near(gpu.image, cpu.image, 1e-3, "image");
    const Run steps = run_all(*gpu_s, nullptr, true);
    CHECK(same_bits(steps.latents, gpu.latents));
    const Run stream = run_all(*open(plan, "cuda", false), nullptr);
    CHECK(same_bits(stream.latents, gpu.latents));
    CHECK(same_bits(stream.image, gpu.image));
  }
}

TEST_CASE("cuda diffusion: ControlNet plans match the CPU, and bf16 plans stay within 2e-2 of f32") {
  if (cuda_test::skip_without_gpu()) return;
  test::TempDir dir;
  auto cn =
      compile_plan(dir, "cn.kplan", "f32", "euler", test::fixture("controlnet_tiny", "diffusion") + "/controlnet");
  const std::vector<float> control = test::random_floats(size_t(64 * 64 * 3), 3, 0.5f);
  std::vector<float> ctl(control.size());
  for (size_t i = 0; i < ctl.size(); ++i) ctl[i] = 0.5f + control[i];
  const Run cpu = run_all(*open(cn, "cpu"), ctl.data());
  const Run gpu = run_all(*open(cn, "cuda"), ctl.data());
  near(gpu.pred, cpu.pred, 1e-4, "controlnet unet call");
  near(gpu.latents, cpu.latents, 1e-3, "controlnet loop");
  auto f32 = compile_plan(dir, "f32.kplan", "f32", "euler");
  auto bf16 = compile_plan(dir, "bf16.kplan", "bf16", "euler");
  const Run a = run_all(*open(f32, "cpu"), nullptr);
  const Run b = run_all(*open(bf16, "cuda"), nullptr);
  near(b.pred, a.pred, 2e-2, "bf16 unet call");
  near(b.image, a.image, 2e-2, "bf16 image");
}

TEST_CASE("cuda diffusion: a 40x56 plan (odd maps resized on the UNet's up path) matches the CPU backend") {
  if (cuda_test::skip_without_gpu()) return;
  test::TempDir dir;
  CompileOptions o;
  o.model_dir = diffusion_test::with_sd15_components(dir, "odd_tiny");
  o.output = dir / "odd.kplan";
  o.dtype = "f32";
  o.steps = 4;
  o.sampler = "euler";
  o.height = 40;
  o.width = 56;
  compile_model(o);
  auto p = Plan::load_file(o.output);
  REQUIRE_MESSAGE(p.is_ok(), p.status().message());
  std::shared_ptr<const Plan> plan = p.take();
  const Run cpu = run_all(*open(plan, "cpu"), nullptr);
  const Run gpu = run_all(*open(plan, "cuda"), nullptr);
  near(gpu.pred, cpu.pred, 1e-4, "odd unet call");
  near(gpu.latents, cpu.latents, 1e-3, "odd loop latents");
  near(gpu.image, cpu.image, 1e-3, "odd image");
}

#include <cuda_runtime_api.h>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/sdpa.h"

TEST_CASE("cuda diffusion: sdpa with heads wider than the tiled kernel (the VAE's 512) matches the CPU") {
  if (cuda_test::skip_without_gpu()) return;
  struct Shape {
    int64_t batch, lq, lk, heads, hd;
    bool causal;
  };
  for (const Shape sh :
       {Shape{1, 77, 300, 1, 512, false}, Shape{2, 33, 33, 2, 320, true}, Shape{1, 5, 4096, 1, 512, false},
        Shape{1, 9, 8192, 1, 512, false}}) {  // last: fewer than 8 rows per block
    CAPTURE(sh.hd);
    CAPTURE(sh.lk);
    const int64_t w = sh.heads * sh.hd;
    const std::vector<float> q = test::random_floats(size_t(sh.batch * sh.lq * w), 1),
                             kv = test::random_floats(size_t(sh.batch * sh.lk * 2 * w), 2);
    std::vector<float> want(size_t(sh.batch * sh.lq * w), NAN), got(want.size(), NAN);
    SdpaArgs a{q.data(), kv.data(), want.data(), sh.batch,  sh.lq,
               sh.lk,    w,         2 * w,       sh.heads,  sh.hd,
               0,        0,         w,           sh.causal, float(1.0 / std::sqrt(double(sh.hd)))};
    REQUIRE(sdpa_cuda_supported(a));
    ThreadPool pool(2, uint64_t(sh.lk + sh.hd));
    sdpa_cpu(a, pool);
    float *dq = nullptr, *dkv = nullptr, *dout = nullptr;
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&dq), q.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&dkv), kv.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&dout), got.size() * 4) == cudaSuccess);
    cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dkv, kv.data(), kv.size() * 4, cudaMemcpyHostToDevice);
    cudaMemset(dout, 0xFF, got.size() * 4);  // poisoned (NaN)
    SdpaArgs d = a;
    d.q_src = dq;
    d.kv_src = dkv;
    d.out = dout;
    sdpa_cuda(d, nullptr);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost);
    cudaFree(dq);
    cudaFree(dkv);
    cudaFree(dout);
    CHECK(test::rel_l2(got.data(), want.data(), want.size()) <= 1e-5);
  }
  // Too many keys for a wide head is refused at bind time, not at replay.
  SdpaArgs big{};
  big.head_dim = 512;
  big.lk = 1 << 20;
  CHECK(!sdpa_cuda_supported(big));
}
