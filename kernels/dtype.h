// Storage data types shared by kernels, runtime and compiler, and the scalar conversions
// between them. The numeric values are the ones in schema/plan.fbs (enum DType); the
// runtime static_asserts that they agree.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln {

// I8: a weight quantized to int8, one f32 scale per row in its own tensor (the op that reads it
// names the scale operand: matmul version 2, kernels/matmul.h); the value is q · scale[row].
// I4: a weight quantized to int4 in groups along its rows, two values a byte: an element of an I4
// tensor is one byte, so a tensor's last dimension counts bytes (k/2 for k values, k a multiple of
// 32). A row is blocks of 32 values in 16 bytes: byte b of a block holds the block's value b in its
// low nibble and value 16 + b in its high one (so that the 16 lanes of a vector find their values
// in the low and high nibbles of 16 consecutive bytes), each as q + 8 (0…15 for q in −8…7). The f32
// scales are (rows, k/group) in their own tensor (matmul version 2); the value is q · scale[row][i/group].
// F8E4M3: a weight stored as float8_e4m3fn codes (1 sign, 4 exponent bits of bias 7, 3 mantissa bits),
// one byte a value, with f32 scales (rows, ceil(k/group)) in their own tensor (matmul version 3); the
// value is the f32 product f8e4m3_value(code) · scale[row][i/group]. The two NaN codes (S.1111.111),
// which kiln's compiler never writes, read as ±480 in the kernels (f8e4m3_value).
enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, I64 = 4, I8 = 5, I4 = 6, F8E4M3 = 7 };
constexpr int kNumDTypes = 8;

inline bool dtype_valid(uint8_t v) { return v < kNumDTypes; }

constexpr uint64_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::BF16:
      return 2;
    case DType::F16:
      return 2;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::I8:
    case DType::I4:  // a byte of two values
    case DType::F8E4M3:
      return 1;
  }
  return 0;
}

inline bool dtype_is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }
// Weights stored quantized, read with their scales (matmul versions 2-4, moe_experts versions 2-3).
constexpr bool dtype_is_quantized(DType t) { return t == DType::I8 || t == DType::I4 || t == DType::F8E4M3; }

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::BF16:
      return "bf16";
    case DType::F16:
      return "f16";
    case DType::I32:
      return "i32";
    case DType::I64:
      return "i64";
    case DType::I8:
      return "i8";
    case DType::I4:
      return "i4";
    case DType::F8E4M3:
      return "f8e4m3";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// Scalar conversions. bf16 and f16 are stored as uint16_t bit patterns. Float → half
// conversions round to nearest even, as torch does; NaN stays NaN.

inline float bits_to_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t b = f32_to_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return uint16_t((b >> 16) | 0x40);  // quiet NaN
  b += 0x7fffu + ((b >> 16) & 1u);
  return uint16_t(b >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    // subnormal: value = man * 2^-24
    float v = float(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (man << 13));
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

inline uint16_t f32_to_f16(float f) {
  uint32_t b = f32_to_bits(f);
  uint16_t sign = uint16_t((b >> 16) & 0x8000u);
  uint32_t abs = b & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to inf (>= 65520)
  if (abs < 0x38800000u) {                                  // below the smallest normal 2^-14
    if (abs < 0x33000000u) return sign;                     // below half the smallest subnormal
    uint32_t exp = abs >> 23;
    uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    // value = man * 2^(exp-150); the subnormal unit is 2^-24, so q = man >> (126 - exp)
    uint32_t shift = 126u - exp;
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return uint16_t(sign | q);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 → 15
  r += 0xfffu + ((r >> 13) & 1u);
  return uint16_t(sign | uint16_t(r >> 13));
}

// float8_e4m3fn in the kernels. f8e4m3_bits_f32(code) is the f32 whose sign, exponent and mantissa
// bits are the code's, moved into place (sign-extended, shifted, masked): the code's value times
// 2^-120 exactly, subnormals included (an f32 exponent field of 0 is subnormal as e4m3's is).
// f8e4m3_value(code) = f8e4m3_bits_f32(code) · 2^120, exact; the NaN codes give ±480. The subnormal
// codes' bits are f32 subnormals: a thread running with denormals-are-zero (an -ffast-math startup,
// for one) reads them as 0, in the kernels and in the compiler's FP8 reader alike (kiln's own binaries
// leave the flag off).
constexpr float kF8E4M3Unbias = 0x1p120f;
inline float f8e4m3_bits_f32(uint8_t code) {
  return bits_to_f32((uint32_t(int32_t(int8_t(code))) << 20) & 0x87f00000u);
}
inline float f8e4m3_value(uint8_t code) { return f8e4m3_bits_f32(code) * kF8E4M3Unbias; }
// The code of f32 v, rounded to nearest even as torch 2.15's CPU cast to float8_e4m3fn does: every
// magnitude from 448 up (infinities too) saturates to ±448, NaN gives the NaN code. (The quantizer
// clamps to ±448 first.)
inline uint8_t f32_to_f8e4m3(float v) {
  const uint32_t b = f32_to_bits(v);
  const uint8_t sign = uint8_t((b >> 24) & 0x80u);
  const float a = std::fabs(v);
  if (a != a) return uint8_t(sign | 0x7fu);
  if (a >= 448.0f) return uint8_t(sign | 0x7eu);
  if (a < 0x1p-6f) {  // subnormal codes: multiples of 2^-9, rounded to nearest even
    const float q = std::nearbyint(a * 512.0f);
    return uint8_t(sign | uint8_t(q));  // (q = 8 is the smallest normal's code, 0.0001.000)
  }
  // Normal: keep 3 mantissa bits of the f32, rounding to nearest even on the 20 dropped.
  uint32_t m = f32_to_bits(a);
  m += 0x7ffffu + ((m >> 20) & 1u);
  const uint32_t e = (m >> 23) - 120u, man = (m >> 20) & 7u;  // e4m3 exponent bias 7
  return uint8_t(sign | (e << 3) | man);
}

// Load element i of a float tensor of any float dtype as f32 (of an I8 tensor: q, unscaled; of an I4
// tensor: its byte, both values packed, 0…255; of an F8E4M3 tensor: f8e4m3_value, unscaled).
// Loads go through memcpy, so element pointers need no alignment (safetensors does not
// promise any); compilers turn these into plain loads.
inline float load_as_f32(const void* p, DType t, uint64_t i) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  switch (t) {
    case DType::F32: {
      float f;
      std::memcpy(&f, b + i * 4, 4);
      return f;
    }
    case DType::BF16:
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, b + i * 2, 2);
      return t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
    case DType::I8:
      return float(int8_t(b[i]));
    case DType::I4:
      return float(b[i]);
    case DType::F8E4M3:
      return f8e4m3_value(b[i]);
    default:
      return 0.0f;
  }
}

inline void store_from_f32(void* p, DType t, uint64_t i, float v) {
  switch (t) {
    case DType::F32:
      static_cast<float*>(p)[i] = v;
      break;
    case DType::BF16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      break;
    case DType::F16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
      break;
    case DType::I8:  // rounded and saturated (NaN: 0); the quantizer passes whole numbers in [-127, 127]
      static_cast<int8_t*>(p)[i] =
          v == v ? int8_t(std::fmin(127.0f, std::fmax(-128.0f, std::nearbyint(v)))) : int8_t(0);
      break;
    case DType::I4:  // a packed byte, rounded and saturated to 0…255 (NaN: 0); the quantizer passes bytes
      static_cast<uint8_t*>(p)[i] =
          v == v ? uint8_t(std::fmin(255.0f, std::fmax(0.0f, std::nearbyint(v)))) : uint8_t(0);
      break;
    case DType::F8E4M3:  // the code of v (the quantizer passes values that are codes' values)
      static_cast<uint8_t*>(p)[i] = f32_to_f8e4m3(v);
      break;
    default:
      break;
  }
}

// Convert n contiguous elements to f32 (I8: the unscaled q; I4: the packed bytes; F8E4M3: the unscaled values).
void convert_to_f32(const void* src, DType t, float* dst, uint64_t n);
// Convert n contiguous f32 elements to a float dtype.
void convert_f32_to(const float* src, DType t, void* dst, uint64_t n);

// An I4 group's zero point: the nibble that stands for 0, zeros[g] (asymmetric int4, matmul version 4),
// or 8 without zero points (symmetric: the nibble is q + 8).
inline int i4_zero(const int8_t* zeros, int64_t g) { return zeros ? int(zeros[g]) : 8; }

// Value i of a packed I4 row: q = its nibble − 8; and the byte and the shift of its nibble.
inline uint64_t i4_byte(uint64_t i) { return i / 32 * 16 + i % 16; }
inline unsigned i4_shift(uint64_t i) { return i % 32 < 16 ? 0u : 4u; }
inline int load_i4(const uint8_t* row, uint64_t i) { return int((row[i4_byte(i)] >> i4_shift(i)) & 15u) - 8; }
// Sets value i of a packed I4 row to q (−8…7), its byte's other nibble kept.
inline void store_i4(uint8_t* row, uint64_t i, int q) {
  uint8_t& b = row[i4_byte(i)];
  b = uint8_t((b & ~(15u << i4_shift(i))) | (unsigned(q + 8) << i4_shift(i)));
}

}  // namespace kiln
