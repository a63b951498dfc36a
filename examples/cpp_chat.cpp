// A C++ host with a streaming callback: tokenizes a prompt, generates, and prints the text
// as it is made, through the header-only wrapper kiln/kiln.hpp.
//   cpp_chat PLAN "prompt text" [max_new_tokens]
#include <cstdio>
#include <iostream>
#include <string>

#include "kiln/kiln.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PLAN PROMPT [MAX_NEW]\n", argv[0]);
    return 2;
  }
  try {
    kiln::api::Plan plan(argv[1]);
    kiln::api::Context ctx(plan);
    kiln::api::Decoder decoder(plan);
    const auto prompt = plan.tokenize(argv[2], true);
    kiln_sampling greedy{};
    const auto out = ctx.generate(prompt, argc > 3 ? std::stoll(argv[3]) : 32, greedy, [&](int32_t t) {
      if (plan.is_stop(t)) return false;
      std::cout << decoder.push(t) << std::flush;
      return true;
    });
    std::cout << decoder.finish() << "\n";
    std::fprintf(stderr, "%zu tokens on %s\n", out.size(), ctx.backend());
  } catch (const kiln::api::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
