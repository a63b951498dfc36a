// Quantized weight rows on the GPU, as matmul versions 2-4 and moe_experts versions 2-3 read them
// (kernels/matmul.h, kernels/moe.h): i8 q with one scale a row, applied to the row's dot product; i4
// (kernels/dtype.h's layout: 32 values in 16 bytes, values 0-15 the low nibbles, 16-31 the high ones)
// with a scale and, asymmetric, a zero point a group; f8e4m3 codes with a scale a group (the last
// group of a row may be short). q_weight gives each i4 and f8e4m3 weight as the CPU kernels compute it,
// the f32 product of its value with its group's scale; the GEMV (q_row_dots) scales each lane's sum of
// 8 products in one group instead (the CUDA twins are checked within 1e-5, not bit for bit). Shared by
// matmul.cu (the GEMV and the tiled kernel) and deepseek.cu (the MoE experts, whose weights are all
// experts' rows of one such matrix).
#pragma once
#include "kernels/cuda/common.cuh"

namespace kiln::cuda {

// f8e4m3_value (kernels/dtype.h): the code's bits moved into an f32, then scaled by 2^120.
__device__ __forceinline__ float f8_value(uint32_t code) {
  return __uint_as_float((uint32_t(int32_t(int8_t(uint8_t(code)))) << 20) & 0x87f00000u) * kF8E4M3Unbias;
}

// Rows of k values (an i4 row is k / 2 bytes) and their scales: (rows,) for i8, (rows, groups) for i4
// and f8e4m3; zero: an asymmetric i4 weight's zero points, shaped as its scales (null: 8).
struct QRows {
  const uint8_t* w;
  const float* scale;
  const int8_t* zero;
  int64_t k, group;
};

// i / group for a position i of a row: k and group are at most 2^31 (kMaxQuantizedRow, which the ops'
// validation enforces), so 32-bit division does (a 64-bit one is a long software sequence on the GPU).
__device__ __forceinline__ int64_t q_group_of(const QRows& q, int64_t i) {
  return int64_t(uint32_t(i) / uint32_t(q.group));
}

// Weight (j, i) (i8: q, unscaled).
template <DType W>
__device__ __forceinline__ float q_weight(const QRows& q, int64_t j, int64_t i) {
  if constexpr (W == DType::I8) {
    return float(int8_t(q.w[j * q.k + i]));
  } else if constexpr (W == DType::I4) {
    const int nibble = int((q.w[j * (q.k / 2) + (i / 32) * 16 + i % 16] >> (i % 32 < 16 ? 0 : 4)) & 15u);
    const int64_t g = j * (q.k / q.group) + q_group_of(q, i);
    return float(nibble - (q.zero ? int(q.zero[g]) : 8)) * q.scale[g];
  } else {
    return f8_value(q.w[j * q.k + i]) * q.scale[j * ((q.k + q.group - 1) / q.group) + q_group_of(q, i)];
  }
}

// The nibble at bit `shift` of `word`, less the zero point: 2^23 + nibble as an f32 (its bits), less
// zf = 2^23 + z. Both are integers below 2^24, so the difference is float(nibble − z) exactly, with
// two plain ALU operations where an int-to-float conversion runs at a quarter of their rate.
__device__ __forceinline__ float i4_minus_zero(uint32_t word, int shift, float zf) {
  return __uint_as_float(0x4B000000u | ((word >> shift) & 15u)) - zf;
}

// What multiplies row j's summed dot product: i8's row scale, else 1.
template <DType W>
__device__ __forceinline__ float q_row_scale(const QRows& q, int64_t j) {
  if constexpr (W == DType::I8) return q.scale[j];
  else return 1.0f;
}

// Whether q_row_dots may take vector loads for these rows and activations x (x in 16-byte float4s, the
// weights 4 or 8 bytes a lane): aligned bases, and for i8 and f8e4m3 rows of whole 8-value steps within
// one group each (i4 rows are whole 32-value blocks: the ops' validation requires it). Every activation
// row starts k floats after the last, so k % 4 keeps them aligned too.
template <DType W>
inline bool q_rows_vec(const QRows& q, const float* x) {
  const bool aligned =
      reinterpret_cast<uintptr_t>(q.w) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && q.k % 4 == 0;
  if constexpr (W == DType::I4) return aligned && q.k % 32 == 0 && q.group % 32 == 0;
  else if constexpr (W == DType::F8E4M3) return aligned && q.k % 8 == 0 && q.group % 8 == 0;
  else return aligned && q.k % 8 == 0;
}

// This lane's part of the dot products of row j with activation rows x + r·k, r < n (n ≤ R), added to
// acc[r]: the warp's weight and x reads are contiguous runs (coalesced), several steps unrolled so that
// loads are in flight together, each weight decoded once in registers for all n rows. The caller sums
// acc over the warp (warp_sum) and applies q_row_scale. vec: q_rows_vec's answer.
template <DType W, int R>
__device__ __forceinline__ void q_row_dots(const QRows& q, int64_t j, const float* x, int n, bool vec,
                                           float (&acc)[R]) {
  const int lane = threadIdx.x & 31;
  if (vec && W == DType::I4) {
    // A step: 8 blocks of 32 values (128 bytes of the row), a quad of lanes a block, each lane 4 bytes:
    // values 4t … 4t+3 of its block in the low nibbles, 16+4t … 16+4t+3 in the high ones (t = lane % 4),
    // so the quad's x reads are two runs of 64 bytes, as the weight reads are one run of 128. A lane's 8
    // values share one group (groups are whole blocks), so their sum is scaled once.
    const uint32_t* row = reinterpret_cast<const uint32_t*>(q.w + uint64_t(j) * uint64_t(q.k / 2));
    const int blocks = int(q.k / 32), per_group = int(q.group / 32);  // (k ≤ 2^31)
    const int group_shift = (per_group & (per_group - 1)) == 0 ? __ffs(per_group) - 1 : -1;
    const float* scale = q.scale + j * (q.k / q.group);
    const int8_t* zero = q.zero ? q.zero + j * (q.k / q.group) : nullptr;
    const int t4 = lane & 3;
#pragma unroll 4
    for (int b = lane >> 2; b < blocks; b += 8) {
      const uint32_t word = row[b * 4 + t4];
      const int g = group_shift >= 0 ? b >> group_shift : b / per_group;
      const float s = scale[g];
      const float zf = 8388608.0f + float(zero ? int(zero[g]) : 8);
      float lo[4], hi[4];
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        lo[t] = i4_minus_zero(word, 8 * t, zf);
        hi[t] = i4_minus_zero(word, 8 * t + 4, zf);
      }
      const int64_t i0 = int64_t(b) * 32 + 4 * t4;
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (r < n) {
          const float4 xl = *reinterpret_cast<const float4*>(x + r * q.k + i0);
          const float4 xh = *reinterpret_cast<const float4*>(x + r * q.k + i0 + 16);
          acc[r] += s * (lo[0] * xl.x + lo[1] * xl.y + lo[2] * xl.z + lo[3] * xl.w + hi[0] * xh.x + hi[1] * xh.y +
                         hi[2] * xh.z + hi[3] * xh.w);
        }
    }
  } else if (vec) {
    // A step: 256 values, each lane 8 (an 8-byte load, and its 32 bytes of x: both runs across the warp).
    const uint8_t* row = q.w + uint64_t(j) * uint64_t(q.k);
    const float* scale = q.scale + (W == DType::F8E4M3 ? j * ((q.k + q.group - 1) / q.group) : 0);
#pragma unroll 4
    for (int64_t i = int64_t(lane) * 8; i < q.k; i += 32 * 8) {
      const uint2 raw = *reinterpret_cast<const uint2*>(row + i);
      const uint32_t words[2] = {raw.x, raw.y};
      float s = 1.0f;  // (f8e4m3: a step's 8 values share one group, so their sum is scaled once)
      if constexpr (W == DType::F8E4M3) s = scale[q_group_of(q, i)];
      float wv[8];
#pragma unroll
      for (int t = 0; t < 8; ++t) {
        const uint32_t byte = (words[t / 4] >> (8 * (t % 4))) & 0xffu;
        if constexpr (W == DType::I8) wv[t] = float(int8_t(uint8_t(byte)));
        else wv[t] = f8_value(byte);
      }
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (r < n) {
          float xv[8];
          load8<DType::F32>(x + r * q.k, i, xv);
          if constexpr (W == DType::F8E4M3) acc[r] += s * dot8(wv, xv);
          else acc[r] += dot8(wv, xv);
        }
    }
  } else {
    for (int64_t i = lane; i < q.k; i += 32) {
      const float wv = q_weight<W>(q, j, i);
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (r < n) acc[r] += wv * x[r * q.k + i];
    }
  }
}

}  // namespace kiln::cuda
