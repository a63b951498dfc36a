#include "kernels/cpu/simd.h"

#include <algorithm>
#include <cmath>

namespace kiln {

namespace {

// One body for every dot product: 16 lane sums (the tail folded into the lanes), then a
// pairwise reduction. Sharing it keeps the f32 and widening variants bit-identical.
template <typename LoadB>
inline float dot_lanes(const float* a, LoadB b, int64_t n) {
  constexpr int L = 16;
  float acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += a[i + l] * b(i + l);
  for (int l = 0; i + l < n; ++l) acc[l] += a[i + l] * b(i + l);
  for (int w = L / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

}  // namespace

KILN_TARGET_CLONES
float dot_f32(const float* a, const float* b, int64_t n) {
  return dot_lanes(
      a, [b](int64_t i) { return b[i]; }, n);
}

KILN_TARGET_CLONES
float dot_f32_bf16(const float* a, const uint16_t* b, int64_t n) {
  return dot_lanes(
      a, [b](int64_t i) { return bf16_to_f32(b[i]); }, n);
}

float dot_f32_any(const float* a, const void* w, DType t, int64_t n, float* scratch) {
  if (t == DType::F32) return dot_f32(a, static_cast<const float*>(w), n);
  if (t == DType::BF16) return dot_f32_bf16(a, static_cast<const uint16_t*>(w), n);
  convert_to_f32(w, t, scratch, uint64_t(n));
  return dot_f32(a, scratch, n);
}

void softmax_inplace(float* s, int64_t n) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

KILN_TARGET_CLONES
void axpy_f32(float s, const float* x, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += s * x[j];
}

}  // namespace kiln
