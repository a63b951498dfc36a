// PIL's resampling (libImaging/Resample.c), rewritten: precompute_coeffs, the 8-bit
// fixed-point normalization and the two passes, for 3-channel 8-bit images.
#include "runtime/image.h"

#include <cmath>

namespace kiln {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

// Weights (fixed point) and [first, count) source ranges of each output pixel along one axis.
struct Coeffs {
  int64_t ksize = 0;
  std::vector<int64_t> bounds;  // 2 per output pixel: xmin, count
  std::vector<int32_t> k;       // ksize per output pixel
};

Coeffs precompute(int64_t in_size, int64_t out_size) {
  Coeffs c;
  const double scale = double(in_size) / double(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 3.0 * filterscale;
  c.ksize = int64_t(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(out_size * 2));
  c.k.assign(size_t(out_size * c.ksize), 0);
  std::vector<double> w(size_t(c.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (double(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int64_t xmin = int64_t(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = int64_t(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      w[size_t(x)] = lanczos((double(x + xmin) - center + 0.5) * ss);
      ww += w[size_t(x)];
    }
    for (int64_t x = 0; x < c.ksize; ++x) {
      double v = x < xmax ? (ww != 0.0 ? w[size_t(x)] / ww : w[size_t(x)]) : 0.0;
      c.k[size_t(xx * c.ksize + x)] =
          int32_t(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[size_t(2 * xx)] = xmin;
    c.bounds[size_t(2 * xx + 1)] = xmax;
  }
  return c;
}

uint8_t clip8(int64_t v) {
  v >>= kPrecisionBits;
  return uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

Status resize_lanczos_rgb8(const uint8_t* rgb, int64_t w, int64_t h, int64_t ow, int64_t oh,
                           std::vector<uint8_t>* out) {
  constexpr int64_t kMax = int64_t(1) << 15;
  if (!rgb || !out) return invalid_argument("image buffers are null");
  if (w <= 0 || h <= 0 || ow <= 0 || oh <= 0 || w > kMax || h > kMax || ow > kMax || oh > kMax)
    return invalid_argument("image sizes must be between 1 and 32768 pixels");
  try {
    if (w == ow && h == oh) {
      out->assign(rgb, rgb + w * h * 3);
      return Status::ok();
    }
    const Coeffs cv = precompute(h, oh);
    // The horizontal pass only covers the rows the vertical pass reads.
    const int64_t first = cv.bounds[0], last = cv.bounds[size_t(2 * oh - 2)] + cv.bounds[size_t(2 * oh - 1)];
    std::vector<uint8_t> tmp;
    const uint8_t* src = rgb;
    int64_t src_w = w, row0 = 0;
    if (w != ow) {
      const Coeffs ch = precompute(w, ow);
      tmp.assign(size_t((last - first) * ow * 3), 0);
      for (int64_t y = first; y < last; ++y)
        for (int64_t xx = 0; xx < ow; ++xx) {
          const int64_t xmin = ch.bounds[size_t(2 * xx)], n = ch.bounds[size_t(2 * xx + 1)];
          const int32_t* k = &ch.k[size_t(xx * ch.ksize)];
          for (int c = 0; c < 3; ++c) {
            int64_t ss = int64_t(1) << (kPrecisionBits - 1);
            for (int64_t x = 0; x < n; ++x) ss += int64_t(rgb[(y * w + x + xmin) * 3 + c]) * k[x];
            tmp[size_t(((y - first) * ow + xx) * 3 + c)] = clip8(ss);
          }
        }
      src = tmp.data();
      src_w = ow;
      row0 = first;
    }
    out->assign(size_t(ow * oh * 3), 0);
    if (h == oh) {  // no vertical pass
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t i = 0; i < ow * 3; ++i) (*out)[size_t(y * ow * 3 + i)] = src[(y - row0) * src_w * 3 + i];
      return Status::ok();
    }
    for (int64_t yy = 0; yy < oh; ++yy) {
      const int64_t ymin = cv.bounds[size_t(2 * yy)] - row0, n = cv.bounds[size_t(2 * yy + 1)];
      const int32_t* k = &cv.k[size_t(yy * cv.ksize)];
      for (int64_t xx = 0; xx < ow; ++xx)
        for (int c = 0; c < 3; ++c) {
          int64_t ss = int64_t(1) << (kPrecisionBits - 1);
          for (int64_t y = 0; y < n; ++y) ss += int64_t(src[((y + ymin) * src_w + xx) * 3 + c]) * k[y];
          (*out)[size_t((yy * ow + xx) * 3 + c)] = clip8(ss);
        }
    }
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "out of memory resizing an image");
  }
  return Status::ok();
}

Status control_image_from_rgb8(const uint8_t* rgb, int64_t w, int64_t h, int64_t ow, int64_t oh, float* out) {
  if (!out) return invalid_argument("output buffer is null");
  std::vector<uint8_t> r;
  KILN_RETURN_IF_ERROR(resize_lanczos_rgb8(rgb, w, h, ow, oh, &r));
  for (size_t i = 0; i < r.size(); ++i) out[i] = float(r[i]) / 255.0f;
  return Status::ok();
}

}  // namespace kiln
