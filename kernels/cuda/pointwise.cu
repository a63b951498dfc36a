// CUDA elementwise ops of the diffusion models (kernels/elementwise.h): activation, GEGLU, add
// (broadcast) and concat, one thread per output element, mirroring kernels/cpu/elementwise.cpp.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

namespace {

using cuda::blocks_for;

// ---------------------------------------------------------------------------------------
// Elementwise ops: one thread per output element. I is the index type (32-bit division when
// the tensor allows it).

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float apply(Activation kind, float x) {
  switch (kind) {
    case Activation::kSilu:
      return x / (1.0f + expf(-x));
    case Activation::kGelu:
      return gelu_erf(x);
    case Activation::kGeluTanh: {
      const float c = 0.79788456080286536f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    case Activation::kQuickGelu:
      return x / (1.0f + expf(-1.702f * x));
    case Activation::kRelu2:  // (a NaN stays NaN, as torch's relu keeps it)
      return x > 0.0f ? x * x : x == x ? 0.0f : x;
    case Activation::kRelu:
      return x > 0.0f ? x : x == x ? 0.0f : x;
    case Activation::kXielu:  // (activation_kernel applies it with its parameters)
      break;
  }
  return x;
}

template <typename I>
__global__ void activation_kernel(ActivationArgs a) {
  const I i = I(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= I(a.n)) return;
  a.y[i] = a.kind == Activation::kXielu ? xielu_value(a.x[i], a.xielu) : apply(a.kind, a.x[i]);
}

template <typename I>
__global__ void geglu_kernel(GegluArgs a) {
  const I idx = I(blockIdx.x) * blockDim.x + threadIdx.x;
  const I f = I(a.f);
  if (idx >= I(a.rows) * f) return;
  const I r = idx / f, i = idx - r * f;
  const float* h = a.x + r * 2 * f;
  a.y[idx] = h[i] * apply(a.kind, h[f + i]);
}

template <typename I>
__global__ void softcap_kernel(SoftcapArgs a) {
  const I i = I(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= I(a.n)) return;
  a.y[i] = tanhf(a.x[i] / a.cap) * a.cap;
}

template <typename I>
__global__ void clamp_kernel(ClampArgs a) {  // (every row, padding too)
  const I i = I(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= I(a.rows) * I(a.cols)) return;
  a.y[i] = clamp_value(a.x[i], a.lo, a.hi);
}

template <typename I>
__global__ void add_kernel(AddArgs a) {
  const I idx = I(blockIdx.x) * blockDim.x + threadIdx.x;
  const I cols = I(a.cols);
  if (idx >= I(a.rows) * cols) return;
  const I r = idx / cols, c = idx - r * cols;
  const I br = I(a.b_rows) == 1 ? I(0) : r % I(a.b_rows);
  const float base = a.a ? a.a[idx] : 0.0f;  // absent a: y = scale·b (a broadcast copy)
  a.y[idx] = base + add_row_factor(a, int64_t(r)) * cuda::ld(a.b, a.b_dtype, uint64_t(br * cols + c));
}

template <typename I>
__global__ void concat_kernel(ConcatArgs a) {
  const I idx = I(blockIdx.x) * blockDim.x + threadIdx.x;
  const I ca = I(a.ca), cb = I(a.cb), w = ca + cb;
  if (idx >= I(a.rows) * w) return;
  const I r = idx / w, c = idx - r * w;
  a.y[idx] = c < ca ? a.a[r * ca + c] : a.b[r * cb + (c - ca)];
}

constexpr int kEwThreads = 256;

// One thread per element of n; the 32-bit-index instantiation when every index the kernel
// forms (below `extent`, and the thread index one block past n) fits in 32 bits.
template <typename Args>
void launch_ew(void (*k32)(Args), void (*k64)(Args), uint64_t n, uint64_t extent, const Args& a, cudaStream_t s) {
  if (n == 0) return;
  const auto k = std::max(n, extent) + kEwThreads < (uint64_t(1) << 32) ? k32 : k64;
  k<<<blocks_for(n, kEwThreads), kEwThreads, 0, s>>>(a);
}

}  // namespace

void activation_cuda(const ActivationArgs& a, cudaStream_t s) {
  launch_ew(activation_kernel<uint32_t>, activation_kernel<uint64_t>, uint64_t(a.n), uint64_t(a.n), a, s);
}

void softcap_cuda(const SoftcapArgs& a, cudaStream_t s) {
  launch_ew(softcap_kernel<uint32_t>, softcap_kernel<uint64_t>, uint64_t(a.n), uint64_t(a.n), a, s);
}

void clamp_cuda(const ClampArgs& a, cudaStream_t s) {
  const uint64_t n = uint64_t(a.rows) * uint64_t(a.cols);
  launch_ew(clamp_kernel<uint32_t>, clamp_kernel<uint64_t>, n, n, a, s);
}

void geglu_cuda(const GegluArgs& a, cudaStream_t s) {
  // One thread per output; the input is indexed up to rows · 2f.
  launch_ew(geglu_kernel<uint32_t>, geglu_kernel<uint64_t>, uint64_t(a.rows * a.f), uint64_t(a.rows * 2 * a.f), a, s);
}

void add_cuda(const AddArgs& a, cudaStream_t s) {
  // Row r reads b's row r mod b_rows, which is r itself when b_rows >= rows; clamping keeps
  // every index of b below rows · cols, so the 32-bit path stays exact.
  AddArgs c = a;
  c.b_rows = std::min(a.b_rows, a.rows);
  if (c.b_rows <= 0) return;
  launch_ew(add_kernel<uint32_t>, add_kernel<uint64_t>, uint64_t(a.rows * a.cols), uint64_t(a.rows * a.cols), c, s);
}

namespace {
// One thread per (image, column): the column's sum over the image's rows in double (as the CPU
// kernel), then its mean written to every row. Each thread reads its column before writing it,
// so y may be x.
__global__ void image_mean_kernel(ImageMeanArgs a) {
  const int64_t i = blockIdx.y, c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= a.cols) return;
  const float* x = a.x + i * a.n * a.cols + c;
  float* y = a.y + i * a.n * a.cols + c;
  double sum = 0.0;
  if (i >= a.skip)
    for (int64_t r = 0; r < a.n; ++r) sum += double(x[r * a.cols]);
  const float mean = float(sum / double(a.n));
  for (int64_t r = 0; r < a.n; ++r) y[r * a.cols] = mean;
}
}  // namespace

void image_mean_cuda(const ImageMeanArgs& a, cudaStream_t s) {
  image_mean_kernel<<<dim3(unsigned((a.cols + 127) / 128), unsigned(a.images)), 128, 0, s>>>(a);
}

void concat_cuda(const ConcatArgs& a, cudaStream_t s) {
  launch_ew(concat_kernel<uint32_t>, concat_kernel<uint64_t>, uint64_t(a.rows * (a.ca + a.cb)),
            uint64_t(a.rows * (a.ca + a.cb)), a, s);
}

}  // namespace kiln
