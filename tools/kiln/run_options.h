// The CLI's backend options (--threads, --device, --no-graphs), shared by every subcommand that
// runs a plan, and their C API form.
#pragma once
#include <string>

#include "kiln/kiln.h"

struct RunOptions {
  int threads = 0;
  std::string device = "auto";
  bool no_graphs = false;
};

// Valid while `ro` lives (device points into it).
inline kiln_context_options to_context_options(const RunOptions& ro) {
  kiln_context_options o = kiln_context_options_default();
  o.n_threads = ro.threads;
  o.device = ro.device.c_str();
  o.use_graphs = ro.no_graphs ? 0 : 1;
  return o;
}
