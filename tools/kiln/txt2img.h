// `kiln txt2img`: a text-to-image plan, a prompt and a seed to a PNG, through the C API.
#pragma once
#include <cstdint>
#include <string>

#include "tools/kiln/run_options.h"

struct Txt2ImgArgs {
  std::string plan, prompt, negative, output, control;
  uint64_t seed = 0;
  RunOptions run;
  bool progress = false;  // one replay per step with a progress line, instead of the loop in one replay
};

int run_txt2img(const Txt2ImgArgs& a);
