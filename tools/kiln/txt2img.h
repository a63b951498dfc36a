// `kiln txt2img`: a text-to-image plan, a prompt and a seed to a PNG, through the C API.
#pragma once
#include <cstdint>
#include <string>

struct Txt2ImgArgs {
  std::string plan, prompt, negative, output, control;
  uint64_t seed = 0;
  int threads = 0;
  std::string device = "auto";
  bool no_graphs = false;
  bool progress = false;  // one replay per step with a progress line, instead of the loop in one replay
};

int run_txt2img(const Txt2ImgArgs& a);
