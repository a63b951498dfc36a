#include "tools/kiln/txt2img.h"

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "kiln/kiln.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/png_io.h"

namespace {

struct Handles {
  PlanHandle plan;
  kiln_diffusion* d = nullptr;
  ~Handles() { kiln_diffusion_destroy(d); }
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int run_txt2img(const Txt2ImgArgs& a) {
  refuse_overwriting_inputs("-o", a.output, {a.plan, a.control}, {});
  const auto t0 = std::chrono::steady_clock::now();
  kiln_error err{};
  Handles h;
  check(kiln_plan_open(a.plan.c_str(), &h.plan.p, &err), err);
  const kiln_context_options o = to_context_options(a.run);
  check(kiln_diffusion_create(h.plan.p, &o, &h.d, &err), err);
  if (std::string(kiln_diffusion_backend(h.d)) == "cuda") std::fprintf(stderr, "%s\n", kiln_diffusion_describe(h.d));
  kiln_diffusion_info info{};
  check(kiln_diffusion_get_info(h.d, &info, &err), err);
  if (!a.negative.empty() && !info.guided)
    throw std::runtime_error("--negative needs a plan compiled with guidance > 1 (this one has none)");

  // The prompts' lengths: the text encoder reads text_len ids, BOS and EOS among them.
  for (const std::string* text : {&a.prompt, &a.negative}) {
    int64_t n = 0;
    kiln_error terr{};
    const kiln_status st = kiln_tokenize(h.plan.p, text->data(), text->size(), 0, nullptr, 0, &n, &terr);
    if (st == KILN_ERR_UNSUPPORTED)
      throw std::runtime_error(
          "this plan has no CLIP tokenizer (compiled with --no-tokenizer, or its pipeline has no tokenizer folder): "
          "kiln txt2img needs one (C hosts can give ids: kiln_diffusion_set_prompt_ids)");
    check(st, terr);
    if (n > info.text_len - 2)
      std::fprintf(stderr,
                   "note: the %s is %lld tokens; the text encoder reads the first %lld (cut as diffusers cuts it)\n",
                   text == &a.prompt ? "prompt" : "negative prompt", static_cast<long long>(n),
                   static_cast<long long>(info.text_len - 2));
  }

  std::vector<float> control;
  if (info.has_control && a.control.empty())
    throw std::runtime_error("this plan has a ControlNet: give its control image with --control IMAGE.png");
  if (!info.has_control && !a.control.empty())
    throw std::runtime_error("this plan has no ControlNet: --control is not accepted (compile with --controlnet DIR)");
  if (!a.control.empty()) {
    int64_t w = 0, hh = 0;
    std::vector<uint8_t> rgb;
    kiln::read_png_rgb8(a.control, &w, &hh, &rgb);
    control.resize(size_t(info.width * info.height * 3));
    check(kiln_control_image_from_rgb8(rgb.data(), w, hh, info.width, info.height, control.data(), &err), err);
  }
  const double load_s = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  check(kiln_diffusion_set_prompt(h.d, a.prompt.c_str(), a.negative.c_str(), &err), err);
  const double text_s = seconds_since(t1);
  check(kiln_diffusion_start(h.d, a.seed, nullptr, control.empty() ? nullptr : control.data(), &err), err);
  const auto t2 = std::chrono::steady_clock::now();
  if (a.progress) {  // one replay per step, to report each
    struct Progress {
      std::chrono::steady_clock::time_point t0;
    } progress{t2};
    auto report = [](void* user, int64_t step, int64_t steps) {
      std::fprintf(stderr, "\r  step %lld/%lld (%.2f s)   ", static_cast<long long>(step + 1),
                   static_cast<long long>(steps), seconds_since(static_cast<Progress*>(user)->t0));
      return 1;
    };
    check(kiln_diffusion_denoise_steps(h.d, report, &progress, &err), err);
    std::fprintf(stderr, "\n");
  } else {
    check(kiln_diffusion_denoise(h.d, &err), err);  // the whole loop in one replay
  }
  const double steps_s = seconds_since(t2);
  const auto t3 = std::chrono::steady_clock::now();
  std::vector<uint8_t> rgb(size_t(info.width * info.height * 3));
  check(kiln_diffusion_decode(h.d, nullptr, rgb.data(), &err), err);
  const double decode_s = seconds_since(t3);
  kiln::write_png_rgb8(a.output, info.width, info.height, rgb.data());
  std::printf(
      "wrote %s (%lldx%lld, seed %llu) on %s: load %.2f s, text %.1f ms, %lld steps %.1f ms each, decode %.1f ms\n",
      a.output.c_str(), static_cast<long long>(info.width), static_cast<long long>(info.height),
      static_cast<unsigned long long>(a.seed), kiln_diffusion_backend(h.d), load_s, text_s * 1e3,
      static_cast<long long>(info.steps), steps_s * 1e3 / double(info.steps), decode_s * 1e3);
  return 0;
}
