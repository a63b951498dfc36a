#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/rows.h"

namespace kiln {

namespace {

inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

inline float apply(Activation k, float x) {
  switch (k) {
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
    case Activation::kGelu:
      return gelu_erf(x);
    case Activation::kGeluTanh: {
      const float c = 0.79788456080286536f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
    }
    case Activation::kQuickGelu:
      return x / (1.0f + std::exp(-1.702f * x));
    case Activation::kRelu2:  // (a NaN stays NaN, as torch's relu keeps it)
      return x > 0.0f ? x * x : x == x ? 0.0f : x;
    case Activation::kRelu:
      return x > 0.0f ? x : x == x ? 0.0f : x;
    case Activation::kXielu:  // (activation_cpu applies it with its parameters)
      break;
  }
  return x;
}

}  // namespace

void activation_cpu(const ActivationArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.n, 4096, [&](int64_t i0, int64_t i1, int) {
    if (a.kind == Activation::kXielu)
      for (int64_t i = i0; i < i1; ++i) a.y[i] = xielu_value(a.x[i], a.xielu);
    else
      for (int64_t i = i0; i < i1; ++i) a.y[i] = apply(a.kind, a.x[i]);
  });
}

void geglu_cpu(const GegluArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* h = a.x + r * 2 * a.f;
      const float* g = h + a.f;
      float* y = a.y + r * a.f;
      for (int64_t i = 0; i < a.f; ++i) y[i] = h[i] * apply(a.kind, g[i]);
    }
  });
}

void softcap_cpu(const SoftcapArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.n, 4096, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) a.y[i] = std::tanh(a.x[i] / a.cap) * a.cap;
  });
}

void clamp_cpu(const ClampArgs& a, ThreadPool& pool) {
  parallel_valid_rows(pool, a.n_valid, a.batch, a.rows / a.batch, 1, [&](int64_t r, int) {
    for (int64_t i = r * a.cols; i < (r + 1) * a.cols; ++i) a.y[i] = clamp_value(a.x[i], a.lo, a.hi);
  });
}

void add_cpu(const AddArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      float* y = a.y + r * a.cols;
      const uint64_t base = uint64_t((r % a.b_rows) * a.cols);
      const float f = add_row_factor(a, r);
      if (!a.a) {
        for (int64_t c = 0; c < a.cols; ++c) y[c] = f * load_as_f32(a.b, a.b_dtype, base + uint64_t(c));
        continue;
      }
      const float* x = a.a + r * a.cols;
      for (int64_t c = 0; c < a.cols; ++c) y[c] = x[c] + f * load_as_f32(a.b, a.b_dtype, base + uint64_t(c));
    }
  });
}

void image_mean_cpu(const ImageMeanArgs& a, ThreadPool& pool) {
  const int64_t blocks = (a.cols + kImageMeanCols - 1) / kImageMeanCols;
  pool.parallel_for(a.images * blocks, 1, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / blocks, c0 = (t % blocks) * kImageMeanCols, nc = std::min(kImageMeanCols, a.cols - c0);
      const float* x = a.x + i * a.n * a.cols + c0;
      float* y = a.y + i * a.n * a.cols + c0;
      double sum[kImageMeanCols] = {};
      if (i >= a.skip)
        for (int64_t r = 0; r < a.n; ++r)
          for (int64_t c = 0; c < nc; ++c) sum[c] += double(x[r * a.cols + c]);
      float mean[kImageMeanCols];
      for (int64_t c = 0; c < nc; ++c) mean[c] = float(sum[c] / double(a.n));
      for (int64_t r = 0; r < a.n; ++r) std::memcpy(y + r * a.cols, mean, size_t(nc) * sizeof(float));
    }
  });
}

void concat_cpu(const ConcatArgs& a, ThreadPool& pool) {
  pool.parallel_for(a.rows, 16, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      float* y = a.y + r * (a.ca + a.cb);
      std::memcpy(y, a.a + r * a.ca, size_t(a.ca) * sizeof(float));
      std::memcpy(y + a.ca, a.b + r * a.cb, size_t(a.cb) * sizeof(float));
    }
  });
}

}  // namespace kiln
