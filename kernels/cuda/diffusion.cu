// CUDA kernels of the diffusion models (UNet, VAE, samplers). Each mirrors its CPU twin in
// kernels/cpu/ (the oracle of tests/cuda/): same formulas, f32 arithmetic with f32 accumulation.
// The norms are in norms.cu, the elementwise ops in pointwise.cu.
// - conv2d: an implicit GEMM (output pixels × output channels, K = kh·kw·cin) on CUDA cores,
//   f32 throughout; register-staged, double-buffered shared-memory tiles.
// - sdpa: flash-style attention, one block per (64 query rows, head, image), 64-key tiles
//   with an online softmax, so any key length works with fixed shared memory.
// - timestep embedding and sampler kernels: one thread per element.
// Every launcher only enqueues on its stream (no allocation, no synchronisation), so it can
// be captured into a graph; shapes come from the argument struct, checked at bind time.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/flash_tile.cuh"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/philox.h"

namespace kiln {

namespace {

using cuda::blocks_for;
using cuda::flash_tile_loop;
using cuda::kSdpaBKV;
using cuda::kSdpaBQ;
using cuda::kSdpaPStride;
using cuda::kSdpaThreads;
using cuda::raise_dynamic_smem;
using cuda::sdpa_load_tile;
using cuda::sdpa_qk_stride;
using cuda::sdpa_smem_bytes;

// ---------------------------------------------------------------------------------------
// conv2d as an implicit GEMM: y[m][n] = Σ_k patch[m][k] · w[n][k], m an output pixel (over the
// whole batch), n an output channel, k = (ky·kw + kx)·cin + ci, matching the weight layout
// (cout, kh, kw, cin). A block computes BM pixels × BN channels with 256 threads, each a
// TM × TN register tile; K advances in steps of kConvBK through two shared-memory buffers,
// the next step's global loads held in registers while the current step is computed.
// Each tile pixel's image and top-left input corner are precomputed in shared memory.
// VEC (cin % 16 == 0, aligned bases): a K step lies inside one (ky, kx), so patches load as
//   float4 and weights as 4-element vectors; otherwise every element is gathered on its own
//   (only the 3- or 4-channel stems take that path).
// Upsampling reads input row iy >> 1 of the virtual 2× image; zero padding is a bounds test.

constexpr int kConvBK = 16, kConvThreads = 256;

template <int N>
__device__ __forceinline__ void lds_vec(const float* p, float (&v)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      const float4 t = *reinterpret_cast<const float4*>(p + i);
      v[i] = t.x, v[i + 1] = t.y, v[i + 2] = t.z, v[i + 3] = t.w;
    }
  } else if constexpr (N == 2) {
    const float2 t = *reinterpret_cast<const float2*>(p);
    v[0] = t.x, v[1] = t.y;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] = p[i];
  }
}

// Four consecutive weights from element i (16-byte aligned for f32, 8-byte for 16-bit types).
template <DType W>
__device__ __forceinline__ float4 ldg4(const void* w, int64_t i) {
  if constexpr (W == DType::F32) {
    return *reinterpret_cast<const float4*>(static_cast<const float*>(w) + i);
  } else {
    const uint2 v = *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(w) + i);
    if constexpr (W == DType::BF16) {
      return make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u), __uint_as_float(v.y << 16),
                         __uint_as_float(v.y & 0xffff0000u));
    } else {
      return make_float4(
          __half2float(__ushort_as_half(uint16_t(v.x & 0xffffu))), __half2float(__ushort_as_half(uint16_t(v.x >> 16))),
          __half2float(__ushort_as_half(uint16_t(v.y & 0xffffu))), __half2float(__ushort_as_half(uint16_t(v.y >> 16))));
    }
  }
}

template <int BM, int BN, int TM, int TN, bool VEC, DType W>
__global__ void __launch_bounds__(kConvThreads) conv2d_kernel(Conv2dArgs a) {
  constexpr int BK = kConvBK, T = kConvThreads;
  static_assert((BM / TM) * (BN / TN) == T && BN / TN == 16, "thread tile layout");
  // Per-thread load counts for one K step.
  constexpr int kAv = BM * BK / 4 / T, kAg = BM * BK / T;              // A: float4s / scalars
  constexpr int kBvTotal = BN * BK / 4, kBv = (kBvTotal + T - 1) / T;  // B: 4-vectors
  constexpr int kBg = BN * BK / T;                                     // B: scalars
  static_assert(kAv >= 1 && BM * BK % (4 * T) == 0 && BN * BK % T == 0, "load split");
  constexpr int kA = VEC ? kAv * 4 : kAg, kB = VEC ? kBv * 4 : kBg;

  __shared__ __align__(16) float As[2][BK][BM + 4];  // As[.][k][pixel]
  __shared__ __align__(16) float Bs[2][BK][BN + 4];  // Bs[.][k][channel]
  __shared__ int pix_b[BM], pix_y[BM], pix_x[BM];    // image (−1 past the end), top-left input corner

  const int tid = threadIdx.x;
  const int64_t M = a.batch * a.ho * a.wo, hw = a.ho * a.wo;
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  const int n0 = int(blockIdx.y) * BN;
  const int cin = int(a.cin), kw = int(a.kw), cout = int(a.cout);
  const int K = int(a.kh) * kw * cin;
  const int h = int(a.h), w_in = int(a.w_in), hv = int(a.hv), wv = int(a.wv);  // stored, and as read

  for (int i = tid; i < BM; i += T) {
    const int64_t m = m0 + i;
    if (m < M) {
      const int64_t b = m / hw, r = m - b * hw, oy = r / a.wo, ox = r - oy * a.wo;
      pix_b[i] = int(b);
      pix_y[i] = int(oy * a.stride - a.pad);
      pix_x[i] = int(ox * a.stride - a.pad);
    } else {
      pix_b[i] = -1;
      pix_y[i] = pix_x[i] = 0;
    }
  }
  __syncthreads();

  // Input element (image b, virtual row iy, virtual column ix, channel ci), 0 outside.
  auto in_at = [&](int b, int iy, int ix) -> const float* {
    if (b < 0 || iy < 0 || iy >= hv || ix < 0 || ix >= wv) return nullptr;
    return a.x +
           ((int64_t(b) * a.h + nearest_source(iy, h, hv)) * a.w_in + nearest_source(ix, w_in, wv)) * int64_t(cin);
  };

  float ra[kA], rb[kB];
  auto load = [&](int k0) {
    if constexpr (VEC) {
      const int r = k0 / cin, ci0 = k0 - r * cin, ky = r / kw, kx = r - ky * kw;
#pragma unroll
      for (int i = 0; i < kAv; ++i) {
        const int idx = tid + i * T, ml = idx >> 2, kq = idx & 3;
        const float* p = in_at(pix_b[ml], pix_y[ml] + ky, pix_x[ml] + kx);
        const float4 v = p ? *reinterpret_cast<const float4*>(p + ci0 + kq * 4) : make_float4(0.f, 0.f, 0.f, 0.f);
        ra[4 * i] = v.x, ra[4 * i + 1] = v.y, ra[4 * i + 2] = v.z, ra[4 * i + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < kBv; ++i) {
        const int idx = tid + i * T, nl = idx >> 2, kq = idx & 3, n = n0 + nl;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (idx < kBvTotal && n < cout) v = ldg4<W>(a.w, int64_t(n) * K + k0 + kq * 4);
        rb[4 * i] = v.x, rb[4 * i + 1] = v.y, rb[4 * i + 2] = v.z, rb[4 * i + 3] = v.w;
      }
    } else {
      // kk = tid % BK is the same for every element this thread loads (T % BK == 0).
      const int k = k0 + (tid % BK);
      int ci = 0, ky = 0, kx = 0;
      if (k < K) {
        const int r = k / cin;
        ci = k - r * cin, ky = r / kw, kx = r - ky * kw;
      }
#pragma unroll
      for (int i = 0; i < kAg; ++i) {
        const int ml = (tid + i * T) / BK;
        const float* p = k < K ? in_at(pix_b[ml], pix_y[ml] + ky, pix_x[ml] + kx) : nullptr;
        ra[i] = p ? p[ci] : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kBg; ++i) {
        const int n = n0 + (tid + i * T) / BK;
        rb[i] = (k < K && n < cout) ? cuda::ld(a.w, W, uint64_t(int64_t(n) * K + k)) : 0.0f;
      }
    }
  };
  auto store = [&](int buf) {
    if constexpr (VEC) {
#pragma unroll
      for (int i = 0; i < kAv; ++i) {
        const int idx = tid + i * T, ml = idx >> 2, kq = idx & 3;
#pragma unroll
        for (int c = 0; c < 4; ++c) As[buf][kq * 4 + c][ml] = ra[4 * i + c];
      }
#pragma unroll
      for (int i = 0; i < kBv; ++i) {
        const int idx = tid + i * T, nl = idx >> 2, kq = idx & 3;
        if (idx < kBvTotal)
#pragma unroll
          for (int c = 0; c < 4; ++c) Bs[buf][kq * 4 + c][nl] = rb[4 * i + c];
      }
    } else {
      const int kk = tid % BK;
#pragma unroll
      for (int i = 0; i < kAg; ++i) As[buf][kk][(tid + i * T) / BK] = ra[i];
#pragma unroll
      for (int i = 0; i < kBg; ++i) Bs[buf][kk][(tid + i * T) / BK] = rb[i];
    }
  };

  const int tm = tid / (BN / TN), tn = tid % (BN / TN);
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int steps = (K + BK - 1) / BK;
  load(0);
  store(0);
  __syncthreads();
  for (int t = 0; t < steps; ++t) {
    const int buf = t & 1;
    if (t + 1 < steps) load((t + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float av[TM], bv[TN];
      lds_vec<TM>(&As[buf][kk][tm * TM], av);
      lds_vec<TN>(&Bs[buf][kk][tn * TN], bv);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    // The other buffer was last read in step t − 1, which ended with a barrier.
    if (t + 1 < steps) store(buf ^ 1);
    __syncthreads();
  }

  // Epilogue in the CPU's order: (dot + bias + chan_add + residual) · out_scale.
  float bias[TN];
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int n = n0 + tn * TN + j;
    bias[j] = (a.bias && n < cout) ? cuda::ld(a.bias, W, uint64_t(n)) : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int ml = tm * TM + i, b = pix_b[ml];
    if (b < 0) continue;
    const int64_t m = m0 + ml;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tn * TN + j;
      if (n >= cout) continue;
      float v = acc[i][j] + bias[j];
      if (a.chan_add) v += a.chan_add[int64_t(b) * cout + n];
      if (a.residual) v += a.residual[m * cout + n];
      a.y[m * cout + n] = v * a.out_scale;
    }
  }
}

template <int BM, int BN, int TM, int TN, DType W>
void conv2d_launch(const Conv2dArgs& a, bool vec, cudaStream_t s) {
  const int64_t M = a.batch * a.ho * a.wo;
  const dim3 grid(unsigned((M + BM - 1) / BM), unsigned((a.cout + BN - 1) / BN));
  if (vec) conv2d_kernel<BM, BN, TM, TN, true, W><<<grid, kConvThreads, 0, s>>>(a);
  else conv2d_kernel<BM, BN, TM, TN, false, W><<<grid, kConvThreads, 0, s>>>(a);
}

template <DType W>
void conv2d_dispatch(const Conv2dArgs& a, bool vec, cudaStream_t s) {
  // 128 × 64 tiles when they give at least two waves on a 132-SM H100/H200; otherwise 64 × 32
  // tiles (4× the blocks) for the small late-UNet maps (8×8, 16×16).
  const int64_t M = a.batch * a.ho * a.wo;
  const int64_t big = ((M + 127) / 128) * ((a.cout + 63) / 64);
  if (big >= 264) conv2d_launch<128, 64, 8, 4, W>(a, vec, s);
  else conv2d_launch<64, 32, 4, 2, W>(a, vec, s);
}

// Scaled dot-product attention: the flash tile machinery is in flash_tile.cuh.

template <int NC>  // head_dim <= 16 · NC
__global__ void __launch_bounds__(kSdpaThreads, NC <= 10 ? 2 : 1) sdpa_kernel(SdpaArgs a, int S, bool vec) {
  static_assert(kSdpaBQ == kSdpaBKV, "sdpa_load_tile fills 64-row tiles");
  extern __shared__ __align__(16) float sm[];
  constexpr int SV = 16 * NC;
  float* Qs = sm;                                 // [64][S]
  float* KV = Qs + kSdpaBQ * S;                   // K: [64][S], then V: [64][SV]
  float* Ps = KV + kSdpaBKV * (S > SV ? S : SV);  // [64 keys][kSdpaPStride]
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t q0 = int64_t(blockIdx.x) * kSdpaBQ, h = blockIdx.y, b = blockIdx.z;
  const int D = int(a.head_dim), D4 = (D + 3) & ~3;

  sdpa_load_tile(Qs, S, D4, a.q_src + b * a.lq * a.wq, a.wq, a.q_off + h * D, q0, a.lq, D, vec);

  float o[4][NC], m[4], l[4];
  cuda::flash_init<NC>(o, m, l);
  // Causal: no row of this block sees a key past its last row.
  const int64_t n_keys = a.causal ? min(a.lk, min(q0 + kSdpaBQ, a.lq)) : a.lk;
  const float* kv_base = a.kv_src + b * a.lk * a.wkv;

  flash_tile_loop<NC>(
      Qs, KV, Ps, S, D4, q0, 0, n_keys, a.scale, 0.0f,
      [&](int64_t kv0) { sdpa_load_tile(KV, S, D4, kv_base, a.wkv, a.k_off + h * D, kv0, a.lk, D, vec); },
      [&](int64_t kv0) { sdpa_load_tile(KV, SV, SV, kv_base, a.wkv, a.v_off + h * D, kv0, a.lk, D, vec); },
      [&](int64_t qi, int64_t key) { return key < a.lk && (!a.causal || key <= qi); },
      [](int64_t, int64_t) { return -0.0f; }, o, m, l);  // (x + −0 is x: no bias)

  const int64_t ow = a.heads * D;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t qi = q0 + ty * 4 + i;
    if (qi >= a.lq) continue;
    float* out = a.out + (b * a.lq + qi) * ow + h * D;
    const float inv_l = 1.0f / l[i];
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = tx + 16 * c;
      if (d < D) out[d] = o[i][c] * inv_l;
    }
  }
}

template <int NC>
void sdpa_launch(const SdpaArgs& a, cudaStream_t s) {
  const int S = sdpa_qk_stride(a.head_dim);
  const size_t smem = sdpa_smem_bytes(a.head_dim, NC);
  raise_dynamic_smem(reinterpret_cast<const void*>(&sdpa_kernel<NC>), smem);
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vec = a.head_dim % 4 == 0 && a.wq % 4 == 0 && a.wkv % 4 == 0 && a.q_off % 4 == 0 && a.k_off % 4 == 0 &&
                   a.v_off % 4 == 0 && aligned(a.q_src) && aligned(a.kv_src);
  const dim3 grid(unsigned((a.lq + kSdpaBQ - 1) / kSdpaBQ), unsigned(a.heads), unsigned(a.batch));
  sdpa_kernel<NC><<<grid, kSdpaThreads, smem, s>>>(a, S, vec);
}

// ---------------------------------------------------------------------------------------
// Timestep embedding: one thread per output element. The frequency's exponent is computed
// in f32 exactly as on the CPU (neg_log from the host's std::log); exp, sin and cos run in
// double and round once to f32, which reproduces the CPU's (nearly) correctly rounded
// expf/sinf/cosf: CUDA's f32 versions differ by an ulp or two, and an ulp of the frequency
// moves sin(t·f) by up to t·2⁻²⁴ ≈ 6e-5 at t = 999.

__global__ void timestep_embedding_kernel(TimestepEmbeddingArgs a, float neg_log) {
  const uint64_t idx = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= uint64_t(a.rows * a.dim)) return;
  const int64_t col = int64_t(idx % uint64_t(a.dim)), half = a.dim / 2;
  if (col >= 2 * half) {
    a.emb[idx] = 0.0f;
    return;
  }
  int64_t s = a.step ? int64_t(a.step[0]) : 0;
  s = s < 0 ? 0 : (s > a.n - 1 ? a.n - 1 : s);
  const float t = a.t[s];
  const bool first = col < half;
  const int64_t i = first ? col : col - half;
  const bool is_sin = first != a.flip_sin_to_cos;  // [sin | cos], or [cos | sin] when flipped
  const float e = neg_log * float(i) / (float(half) - a.freq_shift);
  const float f = float(exp(double(e)));
  const float arg = t * f;
  a.emb[idx] = is_sin ? float(sin(double(arg))) : float(cos(double(arg)));
}

// ---------------------------------------------------------------------------------------
// Sampler kernels: one thread per latent element; every thread clamps the step itself with
// sampler_row (shared with the CPU). The products and sums are rounded one by one, as the
// CPU's expression is written (no fused multiply-add), so both backends take the same steps.

__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }

__global__ void sampler_input_kernel(SamplerInputArgs a) {
  const uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= uint64_t(a.n)) return;
  const float s = a.coefs[sampler_row(a.step, a.steps) * kSamplerCoefs + kSin];
  const float v = mul(s, a.x[i]);
  for (int64_t k = 0; k < a.g; ++k) a.x_in[uint64_t(k * a.n) + i] = v;
}

__global__ void sampler_step_kernel(SamplerStepArgs a) {
  const uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= uint64_t(a.n)) return;
  const float* c = a.coefs + sampler_row(a.step, a.steps) * kSamplerCoefs;
  const float u = a.out[i];
  const float m = a.g == 2 ? add(u, mul(a.guidance, a.out[uint64_t(a.n) + i] - u)) : u;
  const float x = a.x[i];
  float v = add(mul(c[kAx], x), mul(c[kAm], m));
  if (a.h && c[kAh] != 0.0f) v = add(v, mul(c[kAh], a.h[i]));  // h is undefined before its first write
  if (a.noise) v = add(v, mul(c[kAz], a.noise[i]));
  if (a.h) a.h[i] = add(mul(c[kHx], x), mul(c[kHm], m));
  a.x[i] = v;
}

__global__ void normal_noise_kernel(NormalNoiseArgs a) {
  const uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= uint64_t(a.n)) return;
  const uint64_t seed = uint64_t(uint32_t(a.seed[0])) | (uint64_t(uint32_t(a.seed[1])) << 32);
  const uint64_t stream = uint64_t(a.stream) + uint64_t(a.step ? int64_t(a.step[0]) : 0);
  a.z[i] = philox_normal(seed, stream, i);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Launchers.

void conv2d_cuda(const Conv2dArgs& a, cudaStream_t s) {
  if (a.batch * a.ho * a.wo <= 0 || a.cout <= 0) return;
  const auto aligned = [](const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  const bool vec = a.cin % kConvBK == 0 && aligned(a.x, 16) && aligned(a.w, a.w_dtype == DType::F32 ? 16 : 8);
  switch (a.w_dtype) {
    case DType::F32:
      conv2d_dispatch<DType::F32>(a, vec, s);
      break;
    case DType::BF16:
      conv2d_dispatch<DType::BF16>(a, vec, s);
      break;
    case DType::F16:
      conv2d_dispatch<DType::F16>(a, vec, s);
      break;
    default:
      break;
  }
}

// Wide heads (head_dim above kCudaMaxSdpaHeadDim, which the tiled kernel's registers cannot
// hold): a block takes R query rows of one head, keeps their scores for every key in shared
// memory, and computes them a key per warp (lanes split the head dimension, so K rows load
// coalesced); then a softmax per row and P·V with the threads spread over output columns
// (V rows load coalesced). Each block reads K and V once for its R rows.
static __global__ void __launch_bounds__(256) sdpa_wide_kernel(SdpaArgs a, int R) {
  extern __shared__ __align__(16) float sm[];
  const int D = int(a.head_dim);
  float* q = sm;          // [R][D]
  float* p = sm + R * D;  // [R][lk]
  __shared__ float red[32];
  const int64_t q0 = int64_t(blockIdx.x) * R, h = blockIdx.y, b = blockIdx.z;
  const int rows = int(min(int64_t(R), a.lq - q0));
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
  for (int e = tid; e < rows * D; e += blockDim.x) {
    const int r = e / D, d = e - r * D;
    q[e] = a.q_src[(b * a.lq + q0 + r) * a.wq + a.q_off + h * D + d];
  }
  __syncthreads();
  const float* kv = a.kv_src + b * a.lk * a.wkv;
  for (int64_t j = warp; j < a.lk; j += nwarps) {
    const float* k = kv + j * a.wkv + a.k_off + h * D;
    for (int r = 0; r < rows; ++r) {
      float acc = 0.0f;
      for (int d = lane; d < D; d += 32) acc = fmaf(q[r * D + d], k[d], acc);
      for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
      if (lane == 0) p[int64_t(r) * a.lk + j] = (a.causal && j > q0 + r) ? -INFINITY : acc * a.scale;
    }
  }
  __syncthreads();
  for (int r = 0; r < rows; ++r) {  // softmax of row r, in place
    float* pr = p + int64_t(r) * a.lk;
    float mx = -INFINITY;
    for (int64_t j = tid; j < a.lk; j += blockDim.x) mx = fmaxf(mx, pr[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) red[warp] = mx;
    __syncthreads();
    mx = red[0];
    for (int w = 1; w < nwarps; ++w) mx = fmaxf(mx, red[w]);
    __syncthreads();
    float sum = 0.0f;
    for (int64_t j = tid; j < a.lk; j += blockDim.x) {
      const float e = expf(pr[j] - mx);
      pr[j] = e;
      sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) red[warp] = sum;
    __syncthreads();
    sum = 0.0f;
    for (int w = 0; w < nwarps; ++w) sum += red[w];
    const float inv = 1.0f / sum;
    for (int64_t j = tid; j < a.lk; j += blockDim.x) pr[j] *= inv;
    __syncthreads();
  }
  const int64_t ow = a.heads * int64_t(D);
  for (int d = tid; d < D; d += blockDim.x) {
    float acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = 0.0f;
    for (int64_t j = 0; j < a.lk; ++j) {
      const float v = kv[j * a.wkv + a.v_off + h * D + d];
#pragma unroll
      for (int r = 0; r < 8; ++r)
        if (r < rows) acc[r] = fmaf(p[int64_t(r) * a.lk + j], v, acc[r]);
    }
    for (int r = 0; r < rows; ++r) a.out[(b * a.lq + q0 + r) * ow + h * D + d] = acc[r];
  }
}

// Rows per block: as many (up to 8) as the scores of every key fit in shared memory.
static int sdpa_wide_rows(const SdpaArgs& a) {
  for (int r = 8; r >= 1; r /= 2)
    if (uint64_t(r) * uint64_t(a.head_dim + a.lk) * sizeof(float) <= kCudaMaxSdpaWideSmem) return r;
  return 0;
}

static void sdpa_wide_launch(const SdpaArgs& a, cudaStream_t s) {
  const int R = sdpa_wide_rows(a);  // > 0: checked at bind time (sdpa_cuda_supported)
  const size_t smem = size_t(R) * size_t(a.head_dim + a.lk) * sizeof(float);
  raise_dynamic_smem(reinterpret_cast<const void*>(&sdpa_wide_kernel), smem);
  const dim3 grid(unsigned((a.lq + R - 1) / R), unsigned(a.heads), unsigned(a.batch));
  sdpa_wide_kernel<<<grid, 256, smem, s>>>(a, R);
}

void sdpa_cuda(const SdpaArgs& a, cudaStream_t s) {
  if (a.batch * a.lq * a.heads <= 0) return;
  if (a.lk <= 0) {  // no keys: zeros, as on the CPU (the online softmax would give 0/0)
    cudaMemsetAsync(a.out, 0, size_t(a.batch * a.lq * a.heads * a.head_dim) * sizeof(float), s);
    return;
  }
  if (a.head_dim > kCudaMaxSdpaHeadDim) {  // e.g. the VAE's single 512-wide head
    sdpa_wide_launch(a, s);
    return;
  }
  const int64_t nc = (a.head_dim + 15) / 16;
  if (nc <= 2) sdpa_launch<2>(a, s);
  else if (nc <= 3) sdpa_launch<3>(a, s);
  else if (nc <= 4) sdpa_launch<4>(a, s);
  else if (nc <= 5) sdpa_launch<5>(a, s);
  else if (nc <= 8) sdpa_launch<8>(a, s);
  else if (nc <= 10) sdpa_launch<10>(a, s);
  else sdpa_launch<16>(a, s);  // head_dim <= kCudaMaxSdpaHeadDim, checked at bind time
}

void timestep_embedding_cuda(const TimestepEmbeddingArgs& a, cudaStream_t s) {
  if (a.rows * a.dim <= 0) return;
  // The same std::log the CPU twin calls, so the exponents agree bit for bit.
  const float neg_log = -std::log(a.max_period);
  timestep_embedding_kernel<<<blocks_for(uint64_t(a.rows * a.dim), 256), 256, 0, s>>>(a, neg_log);
}

void sampler_input_cuda(const SamplerInputArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  sampler_input_kernel<<<blocks_for(uint64_t(a.n), 256), 256, 0, s>>>(a);
}

void sampler_step_cuda(const SamplerStepArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  sampler_step_kernel<<<blocks_for(uint64_t(a.n), 256), 256, 0, s>>>(a);
}

void normal_noise_cuda(const NormalNoiseArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  normal_noise_kernel<<<blocks_for(uint64_t(a.n), 256), 256, 0, s>>>(a);
}

}  // namespace kiln
