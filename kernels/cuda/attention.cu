// CUDA causal GQA attention over the KV cache, one block per (row, head), 4 warps. Each warp
// walks every 4th visible position with an online softmax (running max, running sum and an
// output accumulator of head_dim/32 values per lane), so no score buffer is needed and any
// context length works; the 4 partial results are then merged. Rows past n_valid get zeros.
//
// Prefill (chunks of kTiledMinChunk rows or more) uses the flash tile kernel of flash_tile.cuh
// instead: one block per (64 query rows, head, batch row), K and V tiles read from the cache (the
// KV head of the query head's GQA group) and widened to f32 in shared memory, so each K/V row is
// read once per 64 queries rather than once per query.
//
// Decode (a few rows) uses the split-K ("flash-decoding") pair instead, when the executor gives it
// scratch: one block per (row, KV head, split) reads each K/V row once for every query head of
// its GQA group, over 1/splits of the visible positions (the split length follows the live
// position, read on the device, so a graph captured once spreads any context evenly); a second
// kernel merges the splits' (max, sum, output) triples. One block per (row, head) would leave most
// of the GPU idle at batch 1 and walk the whole context serially.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/flash_tile.cuh"
#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

namespace {

constexpr int kWarps = 4;

template <int PER_LANE>  // head_dim <= 32 · PER_LANE
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionArgs a) {
  cuda::pdl_trigger();  // the o-projection GEMV after it may launch (and prefetch) early
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_o[kWarps][32 * PER_LANE];
  const int64_t r = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = r / a.chunk, t = r % a.chunk;
  const int64_t hd = a.head_dim;
  float* out = a.out + r * a.n_heads * hd + h * hd;
  const int64_t p = int64_t(a.start_pos[b]) + t;
  if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) {
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) out[d] = 0.0f;
    return;
  }
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * hd;
  const float* q = a.qkv + r * width + h * hd;
  const int64_t kvh = h / (a.n_heads / a.n_kv_heads), kv = a.n_kv_heads * hd;
  const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * hd);

  float qv[PER_LANE], acc[PER_LANE];
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) {
    const int64_t d = lane + 32 * e;
    qv[e] = d < hd ? q[d] * a.scale : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = attention_first_key(p, a.window) + warp; j <= p; j += kWarps) {
    const uint64_t row = base + uint64_t(j * kv);
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < hd) s += qv[e] * cuda::ld(a.k_cache, a.cache_dtype, row + uint64_t(d));
    }
    s = attention_softcap(cuda::warp_sum(s) + attention_alibi(a, h, j, p), a.softcap);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), w = __expf(s - m_new);
    l = l * corr + w;
#pragma unroll
    for (int e = 0; e < PER_LANE; ++e) {
      const int64_t d = lane + 32 * e;
      const float v = d < hd ? cuda::ld(a.v_cache, a.cache_dtype, row + uint64_t(d)) : 0.0f;
      acc[e] = acc[e] * corr + w * v;
    }
    m = m_new;
  }
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
#pragma unroll
  for (int e = 0; e < PER_LANE; ++e) part_o[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  const float sink = attention_sink(a, h);  // (−inf without sinks: weight 0)
  float mx = sink;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, part_m[w]);
  float total = a.sinks ? __expf(sink - mx) : 0.0f;
  for (int w = 0; w < kWarps; ++w) total += part_m[w] == -INFINITY ? 0.0f : part_l[w] * __expf(part_m[w] - mx);
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (part_m[w] != -INFINITY) o += part_o[w][d] * __expf(part_m[w] - mx);
    out[d] = o / total;
  }
}

}  // namespace

namespace {

constexpr int64_t kTiledMinChunk = 16;

// Fills rows [0, 64) of a tile (stride `stride`, columns [0, cols)) with cache rows r0 + row
// (element base + position·row_stride + d), widened to f32; zeros past n_rows or head_dim.
__device__ __forceinline__ void cache_load_tile(float* dst, int stride, int cols, const void* cache, DType t,
                                                uint64_t base, int64_t row_stride, int64_t r0, int64_t n_rows,
                                                int head_dim) {
  const int total = cuda::kSdpaBKV * cols;
  for (int e = threadIdx.x; e < total; e += cuda::kSdpaThreads) {
    const int row = e / cols, d = e % cols;
    dst[row * stride + d] =
        (r0 + row < n_rows && d < head_dim) ? cuda::ld(cache, t, base + uint64_t((r0 + row) * row_stride + d)) : 0.0f;
  }
}

template <int NC>  // head_dim <= 16 · NC
__global__ void __launch_bounds__(cuda::kSdpaThreads, NC <= 10 ? 2 : 1)
    attention_tiled_kernel(AttentionArgs a, int S, bool vec) {
  extern __shared__ __align__(16) float sm[];
  constexpr int SV = 16 * NC;
  float* Qs = sm;                                       // [64][S]
  float* KV = Qs + cuda::kSdpaBQ * S;                   // K: [64][S], then V: [64][SV]
  float* Ps = KV + cuda::kSdpaBKV * (S > SV ? S : SV);  // [64 keys][kSdpaPStride]
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const int64_t q0 = int64_t(blockIdx.x) * cuda::kSdpaBQ, h = blockIdx.y, b = blockIdx.z;
  const int D = int(a.head_dim), D4 = (D + 3) & ~3;
  const int64_t nv = min(int64_t(a.n_valid[b]), a.chunk), start = a.start_pos[b];
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * D;
  cuda::sdpa_load_tile(Qs, S, D4, a.qkv + b * a.chunk * width, width, h * D, q0, nv, D, vec);

  float o[4][NC], m[4], l[4];
  cuda::flash_init<NC>(o, m, l);
  // Row t sees cache positions 0..start + t (the last `window` of them with a window); no row of
  // this block sees past its last valid row, nor before its first row's first key.
  const int64_t last = min(q0 + cuda::kSdpaBQ, nv);
  const int64_t n_keys = last > q0 ? max(int64_t(0), min(start + last, a.max_seq)) : 0;
  const int64_t first_key = attention_first_key(max(int64_t(0), start + q0), a.window);
  const int64_t kv_begin = first_key / cuda::kSdpaBKV * cuda::kSdpaBKV;
  const int64_t kv = a.n_kv_heads * D;
  const uint64_t base = uint64_t(b * a.max_seq * kv + (h / (a.n_heads / a.n_kv_heads)) * D);
  cuda::flash_tile_loop<NC>(
      Qs, KV, Ps, S, D4, q0, kv_begin, n_keys, a.scale, a.softcap,
      [&](int64_t kv0) { cache_load_tile(KV, S, D4, a.k_cache, a.cache_dtype, base, kv, kv0, n_keys, D); },
      [&](int64_t kv0) { cache_load_tile(KV, SV, SV, a.v_cache, a.cache_dtype, base, kv, kv0, n_keys, D); },
      [&](int64_t qi, int64_t key) { return key <= start + qi && key >= attention_first_key(start + qi, a.window); },
      [&](int64_t qi, int64_t key) { return attention_alibi(a, h, key, start + qi); }, o, m, l);

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t t = q0 + ty * 4 + i;
    if (t >= a.chunk) continue;
    float* out = a.out + (b * a.chunk + t) * a.n_heads * D + h * D;
    const bool valid = t < nv && start + t >= 0 && start + t < a.max_seq;  // else zeros, as on the CPU
    float inv_l = valid ? 1.0f / l[i] : 0.0f;
    if (valid && a.sinks) {  // the sink joins the softmax: o and l are relative to max m[i]
      const float sink = a.sinks[h], mx = fmaxf(m[i], sink), f = expf(m[i] - mx);
      inv_l = f / (l[i] * f + expf(sink - mx));
    }
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = tx + 16 * c;
      if (d < D) out[d] = valid ? o[i][c] * inv_l : 0.0f;
    }
  }
}

template <int NC>
void tiled_launch(const AttentionArgs& a, cudaStream_t s) {
  const int S = cuda::sdpa_qk_stride(a.head_dim);
  const size_t smem = cuda::sdpa_smem_bytes(a.head_dim, NC);
  cuda::raise_dynamic_smem(reinterpret_cast<const void*>(&attention_tiled_kernel<NC>), smem);
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  const bool vec = a.head_dim % 4 == 0 && width % 4 == 0 && reinterpret_cast<uintptr_t>(a.qkv) % 16 == 0;
  const dim3 grid(unsigned((a.chunk + cuda::kSdpaBQ - 1) / cuda::kSdpaBQ), unsigned(a.n_heads), unsigned(a.batch));
  attention_tiled_kernel<NC><<<grid, cuda::kSdpaThreads, smem, s>>>(a, S, vec);
}

}  // namespace

void attention_cuda(const AttentionArgs& a, cudaStream_t s) {
  if (a.chunk >= kTiledMinChunk && a.head_dim <= 256 && a.batch <= 65535) {
    if (a.head_dim <= 64) tiled_launch<4>(a, s);
    else if (a.head_dim <= 128) tiled_launch<8>(a, s);
    else tiled_launch<16>(a, s);
    return;
  }
  const dim3 grid(unsigned(a.batch * a.chunk), unsigned(a.n_heads));
  if (a.head_dim <= 64) attention_kernel<2><<<grid, kWarps * 32, 0, s>>>(a);
  else if (a.head_dim <= 128) attention_kernel<4><<<grid, kWarps * 32, 0, s>>>(a);
  else attention_kernel<8><<<grid, kWarps * 32, 0, s>>>(a);
}

namespace {

constexpr int kSplitWarps = 4;
constexpr int64_t kSplitMaxRows = 16;        // more rows fill the GPU with the one-pass kernel
constexpr int64_t kSplitTargetBlocks = 264;  // two blocks per SM on a 132-SM H100/H200
constexpr int64_t kSplitMax = 64, kSplitMinPositions = 16;

// Per (row, head, split): max, sum, then head_dim output values (unnormalised).
__host__ __device__ inline int64_t split_stride(const AttentionArgs& a) { return a.head_dim + 2; }

template <int PL, int GM>  // head_dim <= 32·PL; GQA group <= GM
__global__ void __launch_bounds__(kSplitWarps * 32) attention_split_kernel(AttentionArgs a, float* part, int splits) {
  __shared__ float sm_m[kSplitWarps][GM], sm_l[kSplitWarps][GM];
  __shared__ float sm_o[kSplitWarps][GM][32 * PL];
  const int64_t r = blockIdx.x, kvh = blockIdx.y;
  const int s = int(blockIdx.z);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = r / a.chunk, t = r % a.chunk, hd = a.head_dim;
  const int G = int(a.n_heads / a.n_kv_heads);
  const int64_t p = int64_t(a.start_pos[b]) + t;
  int64_t begin = 0, end = 0;
  if (t < a.n_valid[b] && p >= 0 && p < a.max_seq) {
    const int64_t first = attention_first_key(p, a.window), n = p + 1 - first, len = (n + splits - 1) / splits;
    begin = first + min(n, int64_t(s) * len);
    end = first + min(n, int64_t(s) * len + len);
  }
  const int64_t width = (a.n_heads + 2 * a.n_kv_heads) * hd;
  const float* qrow = a.qkv + r * width + kvh * G * hd;
  float qv[GM][PL], acc[GM][PL], m[GM], l[GM];
#pragma unroll
  for (int g = 0; g < GM; ++g) {
#pragma unroll
    for (int e = 0; e < PL; ++e) {
      const int64_t d = lane + 32 * e;
      qv[g][e] = (g < G && d < hd) ? qrow[g * hd + d] * a.scale : 0.0f;
      acc[g][e] = 0.0f;
    }
    m[g] = -INFINITY;
    l[g] = 0.0f;
  }
  const int64_t kv = a.n_kv_heads * hd;
  const uint64_t base = uint64_t(b * a.max_seq * kv + kvh * hd);
  for (int64_t j = begin + warp; j < end; j += kSplitWarps) {
    const uint64_t row = base + uint64_t(j * kv);
    float kr[PL], vr[PL];
#pragma unroll
    for (int e = 0; e < PL; ++e) {
      const int64_t d = lane + 32 * e;
      kr[e] = d < hd ? cuda::ld(a.k_cache, a.cache_dtype, row + uint64_t(d)) : 0.0f;
      vr[e] = d < hd ? cuda::ld(a.v_cache, a.cache_dtype, row + uint64_t(d)) : 0.0f;
    }
#pragma unroll
    for (int g = 0; g < GM; ++g) {
      if (g >= G) break;  // uniform across the block
      float sc = 0.0f;
#pragma unroll
      for (int e = 0; e < PL; ++e) sc += qv[g][e] * kr[e];
      sc = attention_softcap(cuda::warp_sum(sc) + attention_alibi(a, kvh * G + g, j, p), a.softcap);
      const float m_new = fmaxf(m[g], sc);
      const float corr = __expf(m[g] - m_new), w = __expf(sc - m_new);
      l[g] = l[g] * corr + w;
#pragma unroll
      for (int e = 0; e < PL; ++e) acc[g][e] = acc[g][e] * corr + w * vr[e];
      m[g] = m_new;
    }
  }
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    if (lane == 0) {
      sm_m[warp][g] = m[g];
      sm_l[warp][g] = l[g];
    }
#pragma unroll
    for (int e = 0; e < PL; ++e) sm_o[warp][g][lane + 32 * e] = acc[g][e];
  }
  __syncthreads();
  const int64_t stride = split_stride(a);
  for (int64_t i = threadIdx.x; i < int64_t(G) * hd; i += blockDim.x) {
    const int g = int(i / hd);
    const int64_t d = i % hd;
    float mx = -INFINITY;
    for (int w = 0; w < kSplitWarps; ++w) mx = fmaxf(mx, sm_m[w][g]);
    float o = 0.0f, sum = 0.0f;
    for (int w = 0; w < kSplitWarps; ++w) {
      if (sm_m[w][g] == -INFINITY) continue;
      const float f = __expf(sm_m[w][g] - mx);
      o += sm_o[w][g][d] * f;
      sum += sm_l[w][g] * f;
    }
    float* dst = part + ((r * a.n_heads + kvh * G + g) * splits + s) * stride;
    dst[2 + d] = o;
    if (d == 0) {
      dst[0] = mx;
      dst[1] = sum;
    }
  }
}

__global__ void __launch_bounds__(128) attention_merge_kernel(AttentionArgs a, const float* part, int splits) {
  cuda::pdl_trigger();  // the o-projection GEMV after it may launch (and prefetch) early
  const int64_t r = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
  const int64_t b = r / a.chunk, t = r % a.chunk;
  float* out = a.out + r * a.n_heads * hd + h * hd;
  const int64_t p = int64_t(a.start_pos[b]) + t;
  if (t >= a.n_valid[b] || p < 0 || p >= a.max_seq) {
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) out[d] = 0.0f;
    return;
  }
  const int64_t stride = split_stride(a);
  const float* src = part + (r * a.n_heads + h) * splits * stride;
  const float sink = attention_sink(a, h);  // (−inf without sinks: weight 0)
  float mx = sink;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, src[s * stride]);
  float total = a.sinks ? __expf(sink - mx) : 0.0f;
  for (int s = 0; s < splits; ++s)
    if (src[s * stride] != -INFINITY) total += src[s * stride + 1] * __expf(src[s * stride] - mx);
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < splits; ++s)
      if (src[s * stride] != -INFINITY) o += src[s * stride + 2 + d] * __expf(src[s * stride] - mx);
    out[d] = o / total;
  }
}

// The template instance for a head_dim and group size, or 0 where the split kernel would need too
// many registers (the one-pass kernel then serves).
int split_variant(const AttentionArgs& a) {
  if (a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0) return 0;
  const int64_t g = a.n_heads / a.n_kv_heads;
  const int pl = a.head_dim <= 64 ? 2 : a.head_dim <= 128 ? 4 : a.head_dim <= 256 ? 8 : 0;
  const int gm = g <= 1 ? 1 : g <= 2 ? 2 : g <= 4 ? 4 : g <= 8 ? 8 : 0;
  if (pl == 0 || gm == 0 || pl * gm > 32) return 0;
  return pl * 100 + gm;
}

template <int PL, int GM>
void split_launch(const AttentionArgs& a, float* part, int splits, cudaStream_t s) {
  attention_split_kernel<PL, GM>
      <<<dim3(unsigned(a.batch * a.chunk), unsigned(a.n_kv_heads), unsigned(splits)), kSplitWarps * 32, 0, s>>>(a, part,
                                                                                                                splits);
}

}  // namespace

int attention_cuda_splits(const AttentionArgs& a) {
  const int64_t rows = a.batch * a.chunk;
  if (rows <= 0 || rows > kSplitMaxRows || split_variant(a) == 0) return 0;
  const int64_t blocks = rows * a.n_kv_heads;
  int64_t splits = (kSplitTargetBlocks + blocks - 1) / blocks;
  splits = std::min(splits, std::max<int64_t>(1, a.max_seq / kSplitMinPositions));
  return int(std::max<int64_t>(1, std::min(splits, kSplitMax)));
}

uint64_t attention_cuda_scratch_floats(const AttentionArgs& a) {
  const int splits = attention_cuda_splits(a);
  return splits == 0 ? 0 : uint64_t(a.batch * a.chunk * a.n_heads) * uint64_t(splits) * uint64_t(split_stride(a));
}

void attention_split_cuda(const AttentionArgs& a, float* scratch, cudaStream_t s) {
  const int splits = attention_cuda_splits(a);
  if (splits == 0 || scratch == nullptr) {
    attention_cuda(a, s);
    return;
  }
  switch (split_variant(a)) {
    case 201:
      split_launch<2, 1>(a, scratch, splits, s);
      break;
    case 202:
      split_launch<2, 2>(a, scratch, splits, s);
      break;
    case 204:
      split_launch<2, 4>(a, scratch, splits, s);
      break;
    case 208:
      split_launch<2, 8>(a, scratch, splits, s);
      break;
    case 401:
      split_launch<4, 1>(a, scratch, splits, s);
      break;
    case 402:
      split_launch<4, 2>(a, scratch, splits, s);
      break;
    case 404:
      split_launch<4, 4>(a, scratch, splits, s);
      break;
    case 408:
      split_launch<4, 8>(a, scratch, splits, s);
      break;
    case 801:
      split_launch<8, 1>(a, scratch, splits, s);
      break;
    case 802:
      split_launch<8, 2>(a, scratch, splits, s);
      break;
    case 804:
      split_launch<8, 4>(a, scratch, splits, s);
      break;
    default:
      attention_cuda(a, s);
      return;
  }
  attention_merge_kernel<<<dim3(unsigned(a.batch * a.chunk), unsigned(a.n_heads)), 128, 0, s>>>(a, scratch, splits);
}

}  // namespace kiln
