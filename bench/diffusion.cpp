// kiln-bench-diffusion: text-to-image latency of a plan (kiln compile on a diffusers folder,
// e.g. one made by kiln-random-checkpoint --shape sd15). A benchmark, never a test: it prints
// numbers and asserts nothing about speed.
//   kiln-bench-diffusion PLAN [--device cpu|cuda] [--images 3] [--threads N] [--no-graphs]
// Reports medians: one text encode (both prompts), one sampler step (UNet with the CFG batch
// plus the update) replayed on its own, the whole loop replayed at once (one CUDA graph) per
// step, the VAE decode, and a whole image (encode + the loop + decode).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include "bench/bench_util.h"

#include "runtime/diffusion.h"

namespace {

using kiln::bench::median;
using kiln::bench::now_ms;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Text-to-image latency of a kiln plan"};
  std::string plan_path, device = "cpu";
  int images = 3, threads = 0;
  bool no_graphs = false;
  app.add_option("plan", plan_path, "Plan file")->required();
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--images", images, "Images to time (default 3)")->check(CLI::Range(1, 1000));
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_flag("--no-graphs", no_graphs, "CUDA: stream mode instead of graphs");
  CLI11_PARSE(app, argc, argv);

  auto plan = kiln::Plan::load_file(plan_path);
  if (!plan.is_ok()) {
    std::fprintf(stderr, "error: %s\n", plan.status().message().c_str());
    return 1;
  }
  kiln::ContextOptions o;
  o.device = device;
  o.n_threads = threads;
  o.use_graphs = !no_graphs;
  auto s = kiln::DiffusionSession::create(plan.take(), o);
  if (!s.is_ok()) {
    std::fprintf(stderr, "error: %s\n", s.status().message().c_str());
    return 1;
  }
  kiln::DiffusionSession& d = *s.value();
  std::printf("%s: %lldx%lld, %lld steps, %s, %s\n", plan_path.c_str(), (long long)d.height(), (long long)d.width(),
              (long long)d.steps(), d.guided() ? "CFG batch 2" : "no guidance", d.describe().c_str());
  // Ids: bos, a few ordinary tokens, eos, then eos as padding (any in-range ids time the same).
  std::vector<int32_t> ids(size_t(d.text_len()), 2), neg(size_t(d.text_len()), 2);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(3 + i % 50);
  std::vector<float> noise(size_t(d.latent_size())), image(size_t(d.height() * d.width() * 3));
  std::vector<double> text_ms, step_ms, loop_step_ms, decode_ms, image_s;
  auto check = [](const kiln::Status& st) {
    if (!st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      std::exit(1);
    }
  };
  for (int img = 0; img <= images; ++img) {  // image 0 warms up (and is not counted)
    const double t0 = now_ms();
    check(d.encode_text(ids.data(), d.guided() ? neg.data() : nullptr));
    const double t1 = now_ms();
    d.seed_noise(uint64_t(img), noise.data());
    check(d.prepare(noise.data(), nullptr));
    const double tl = now_ms();
    check(d.denoise_all(uint64_t(img)));
    const double t2 = now_ms();
    check(d.decode(image.data()));
    const double t3 = now_ms();
    if (img == 0) continue;
    // The same steps again, one replay each (the loop's latents are overwritten; timing only).
    std::vector<double> steps;
    check(d.prepare(noise.data(), nullptr));
    for (int64_t k = 0; k < d.steps(); ++k) {
      const double a = now_ms();
      check(d.denoise(k, uint64_t(img)));
      steps.push_back(now_ms() - a);
    }
    text_ms.push_back(t1 - t0);
    step_ms.insert(step_ms.end(), steps.begin(), steps.end());
    loop_step_ms.push_back((t2 - tl) / double(d.steps()));
    decode_ms.push_back(t3 - t2);
    image_s.push_back((t3 - t0) / 1e3);
    std::printf(
        "image %d: %.3f s (text %.2f ms, loop %.2f ms/step, single-step replays median %.2f ms, decode %.2f ms)\n", img,
        (t3 - t0) / 1e3, t1 - t0, (t2 - tl) / double(d.steps()), median(steps), t3 - t2);
  }
  std::printf("RESULT step_ms=%.3f loop_step_ms=%.3f image_s=%.4f text_ms=%.3f decode_ms=%.3f steps=%lld images=%d\n",
              median(step_ms), median(loop_step_ms), median(image_s), median(text_ms), median(decode_ms),
              (long long)d.steps(), images);
  return 0;
}
