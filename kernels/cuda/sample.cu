// CUDA next-token selection (kernels/sample.h), one block of 1024 threads per batch row.
// - Greedy: each thread scans a strided share of the row in ascending id order, then warps and
//   the block reduce with argmax_row's order.
// - Sampling, for at most kSampleMaxTopK candidates: a most-significant-digit radix select (4
//   passes of 8 bits over order-preserving keys) finds the k-th largest logit; the candidates
//   are gathered (ties at the boundary by lowest id, through a block scan over contiguous id
//   ranges), bitonic-sorted by (key descending, id ascending) in shared memory, and one thread
//   then runs sample_row's softmax, nucleus and draw over them in the same order and precision
//   as the CPU, so both backends pick the same token (exp in double may differ in the last bit
//   between CUDA and glibc, which can only matter when the draw lands within that of a boundary).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels_cuda.h"

namespace kiln {

namespace {

constexpr int kThreads = 1024;

// The argmax_row order: index −1 is "nothing yet"; a larger value wins, and equal values go to
// the lower index. NaN is never taken in (see the scan below).
__device__ __forceinline__ void argmax_take(float& v, int64_t& i, float w, int64_t j) {
  if (j < 0) return;
  if (i < 0 || w > v || (w == v && j < i)) v = w, i = j;
}

__device__ int32_t block_argmax(const float* row, int64_t vocab) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  __shared__ int32_t result;
  float v = 0.0f;
  int64_t i = -1;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float w = row[j];
    if (!isnan(w)) argmax_take(v, i, w, j);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t j = __shfl_xor_sync(0xffffffffu, i, o);
    argmax_take(v, i, w, j);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sv[warp] = v, si[warp] = i;
  __syncthreads();
  if (warp == 0) {
    const int warps = int(blockDim.x >> 5);
    v = lane < warps ? sv[lane] : 0.0f;
    i = lane < warps ? si[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
      const float w = __shfl_xor_sync(0xffffffffu, v, o);
      const int64_t j = __shfl_xor_sync(0xffffffffu, i, o);
      argmax_take(v, i, w, j);
    }
    if (lane == 0) result = i < 0 ? 0 : int32_t(i);
  }
  __syncthreads();
  return result;
}

__device__ __forceinline__ uint32_t order_key(float f) { return sample_order_key(f); }

// True when candidate (va, ia) comes before (vb, ib): the CPU's order, (key desc, id asc).
__device__ __forceinline__ bool before(float va, int32_t ia, float vb, int32_t ib) {
  const uint32_t ka = order_key(va), kb = order_key(vb);
  return ka > kb || (ka == kb && ia < ib);
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ uint32_t hist[256];
  __shared__ uint32_t sel_digit, sel_remaining, n_gt;
  __shared__ int32_t scan[kThreads];
  __shared__ float cand_v[kSampleMaxTopK];
  __shared__ int32_t cand_i[kSampleMaxTopK];
  __shared__ float probs[kSampleMaxTopK];
  __shared__ double e[kSampleMaxTopK];
  const int tid = threadIdx.x;
  const int64_t b = blockIdx.x;
  const int64_t n = min(int64_t(a.n_valid[b]), a.chunk);
  if (n <= 0) {
    if (tid == 0) a.next[b] = -1;
    return;
  }
  const float* row = a.logits + (b * a.chunk + n - 1) * a.vocab;
  const SampleParams p = a.params ? a.params[b] : SampleParams{0.0f, 0, 1.0f, 0, 0, 0};
  if (!(p.temperature > 0.0f)) {
    const int32_t best = block_argmax(row, a.vocab);
    if (tid == 0) a.next[b] = best;
    return;
  }
  const int64_t V = a.vocab;
  const int64_t K = p.top_k > 0 && p.top_k < V ? p.top_k : V;
  if (K > kSampleMaxTopK) {  // the host samples instead (Context::generate never asks for this)
    if (tid == 0) a.next[b] = -1;
    return;
  }

  // 1. The K-th largest key, most significant byte first.
  uint32_t prefix = 0, mask = 0, remaining = uint32_t(K);
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = tid; d < 256; d += kThreads) hist[d] = 0;
    __syncthreads();
    for (int64_t j = tid; j < V; j += kThreads) {
      const uint32_t k = order_key(row[j]);
      if ((k & mask) == prefix) atomicAdd(&hist[(k >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (tid == 0) {
      uint32_t cum = 0;
      for (int d = 255; d >= 0; --d) {
        if (cum + hist[d] >= remaining) {
          sel_digit = uint32_t(d);
          sel_remaining = remaining - cum;
          break;
        }
        cum += hist[d];
      }
      n_gt = 0;
    }
    __syncthreads();
    prefix |= sel_digit << shift;
    mask |= 255u << shift;
    remaining = sel_remaining;
  }
  const uint32_t kth = prefix;
  const int64_t need_eq = remaining;  // keys equal to kth to take, lowest ids first
  const int64_t count_gt = K - need_eq;

  // 2. Gather: keys above kth anywhere (their order is fixed by the sort), keys equal to kth by
  // rank in id order (a block scan over each thread's contiguous range of ids).
  const int64_t span = (V + kThreads - 1) / kThreads, lo = min(V, tid * span), hi = min(V, lo + span);
  int32_t eq = 0;
  for (int64_t j = lo; j < hi; ++j) {
    const float v = row[j];
    const uint32_t k = order_key(v);
    if (k > kth) {
      const uint32_t slot = atomicAdd(&n_gt, 1u);
      cand_v[slot] = v;
      cand_i[slot] = int32_t(j);
    } else if (k == kth) {
      ++eq;
    }
  }
  scan[tid] = eq;
  __syncthreads();
  for (int off = 1; off < kThreads; off <<= 1) {  // inclusive Hillis-Steele scan
    const int32_t add = tid >= off ? scan[tid - off] : 0;
    __syncthreads();
    scan[tid] += add;
    __syncthreads();
  }
  int64_t rank = scan[tid] - eq;  // exclusive
  for (int64_t j = lo; j < hi && rank < need_eq; ++j) {
    const float v = row[j];
    if (order_key(v) == kth) {
      cand_v[count_gt + rank] = v;
      cand_i[count_gt + rank] = int32_t(j);
      ++rank;
    }
  }
  __syncthreads();

  // 3. Bitonic sort of the K candidates (padded to a power of two) by (logit desc, id asc).
  int P = 1;
  while (P < K) P <<= 1;
  if (tid >= K && tid < P) {
    cand_v[tid] = __int_as_float(0x7fc00000);  // NaN: the smallest key, and the largest id, so last
    cand_i[tid] = INT32_MAX;
  }
  __syncthreads();
  for (int k = 2; k <= P; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      const int i = tid, x = i ^ j;
      if (i < P && x > i) {
        const bool up = (i & k) == 0;  // this half sorts in "before" order
        const bool swap = up ? before(cand_v[x], cand_i[x], cand_v[i], cand_i[i])
                             : before(cand_v[i], cand_i[i], cand_v[x], cand_i[x]);
        if (swap) {
          const float tv = cand_v[i];
          const int32_t ti = cand_i[i];
          cand_v[i] = cand_v[x], cand_i[i] = cand_i[x];
          cand_v[x] = tv, cand_i[x] = ti;
        }
      }
      __syncthreads();
    }

  // 4. sample_row's softmax, nucleus and draw, in its order and precision.
  const double inv_t = 1.0 / double(p.temperature), mx = double(cand_v[0]);
  if (tid < K) {
    e[tid] = exp((double(cand_v[tid]) - mx) * inv_t);
    probs[tid] = float(e[tid]);
  }
  __syncthreads();
  if (tid == 0) {
    double sum = 0.0;
    for (int64_t i = 0; i < K; ++i) sum += e[i];
    a.next[b] = sample_pick(cand_i, probs, K, sum, p);
  }
}

// One block: every row's feedback (when the control block says a replay came before), then the
// control block marks that one has.
__global__ void feedback_advance_kernel(FeedbackArgs a, FeedbackControl* ctrl) {
  const bool fed = ctrl->mode != 0;
  if (fed)
    for (int64_t r = threadIdx.x; r < a.batch; r += blockDim.x) feedback_row(a, r);
  __syncthreads();
  if (threadIdx.x == 0) ctrl->mode = 1;
}

// Copies next into ring slot seq % slots (host memory mapped into the device), then counts the step.
__global__ void feedback_publish_kernel(const int32_t* next, int64_t batch, FeedbackControl* ctrl, int32_t* ring,
                                        uint32_t slots) {
  const uint32_t slot = ctrl->seq % slots;
  for (int64_t r = threadIdx.x; r < batch; r += blockDim.x) ring[int64_t(slot) * batch + r] = next[r];
  __threadfence_system();
  __syncthreads();
  if (threadIdx.x == 0) ctrl->seq += 1;
}

}  // namespace

void feedback_advance_cuda(const FeedbackArgs& a, FeedbackControl* ctrl, cudaStream_t s) {
  feedback_advance_kernel<<<1, 128, 0, s>>>(a, ctrl);
}

void feedback_publish_cuda(const int32_t* next, int64_t batch, FeedbackControl* ctrl, int32_t* ring, uint32_t slots,
                           cudaStream_t s) {
  feedback_publish_kernel<<<1, 128, 0, s>>>(next, batch, ctrl, ring, slots);
}

void sample_cuda(const SampleArgs& a, cudaStream_t s) {
  if (a.batch <= 0) return;
  sample_kernel<<<unsigned(a.batch), kThreads, 0, s>>>(a);
}

}  // namespace kiln
