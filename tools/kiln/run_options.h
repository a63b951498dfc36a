// The CLI's backend options (--threads, --device, --no-graphs, --no-cublaslt, --huge-pages), shared by every
// subcommand that runs a plan, and their C API form.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "kiln/kiln.h"

// An "uploading weights" line on a terminal while a plan's weights go to the GPU, shown once
// the upload has taken half a second (small plans stay quiet), redrawn at most 5 times a second.
struct UploadProgress {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double last = 0.0;
  static void report(uint64_t done, uint64_t total, void* user) {
    auto* p = static_cast<UploadProgress*>(user);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - p->t0).count();
    if (t < 0.5 || (t - p->last < 0.2 && done < total)) return;
    p->last = t;
    std::fprintf(stderr, "\r  uploading weights to the GPU %.0f / %.0f MiB   ", double(done) / 1048576.0,
                 double(total) / 1048576.0);
    if (done >= total) std::fprintf(stderr, "\n");
  }
};

struct RunOptions {
  int threads = 0;
  std::string device = "auto";
  bool no_graphs = false;
  bool no_cublaslt = false;
  bool huge_pages = false;  // CPU: weights from a copy in transparent huge pages
  int in_flight = 0;        // generate/chat: decode steps in flight (0: the backend's default)
  mutable UploadProgress upload;
};

// Valid while `ro` lives (device points into it).
inline kiln_context_options to_context_options(const RunOptions& ro) {
  kiln_context_options o = kiln_context_options_default();
  o.n_threads = ro.threads;
  o.device = ro.device.c_str();
  o.use_graphs = ro.no_graphs ? 0 : 1;
  o.use_cublaslt = ro.no_cublaslt ? 0 : 1;
  o.generate_depth = ro.in_flight;
  o.cpu_huge_pages = ro.huge_pages ? 1 : 0;
  if (isatty(2)) {  // logs and pipes stay clean
    ro.upload = UploadProgress{};
    o.upload_progress = &UploadProgress::report;
    o.upload_progress_user = &ro.upload;
  }
  return o;
}
