// Bulk dtype conversions used by the CPU kernels and the compiler.
#include "kernels/dtype.h"

namespace kiln {

void convert_to_f32(const void* src, DType t, float* dst, uint64_t n) {
  switch (t) {
    // memcpy-based loads: the source may be unaligned (a safetensors mapping).
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      break;
    case DType::BF16: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      break;
    }
    case DType::F16: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      break;
    }
    case DType::I8: {
      const int8_t* s = static_cast<const int8_t*>(src);
      for (uint64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      break;
    }
    case DType::I4: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (uint64_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      break;
    }
    case DType::F8E4M3: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (uint64_t i = 0; i < n; ++i) dst[i] = f8e4m3_value(s[i]);
      break;
    }
    default:
      for (uint64_t i = 0; i < n; ++i) dst[i] = 0.0f;
  }
}

void convert_f32_to(const float* src, DType t, void* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) store_from_f32(dst, t, i, src[i]);
}

}  // namespace kiln
