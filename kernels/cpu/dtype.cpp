// Bulk dtype conversions used by the CPU kernels and the compiler.
#include "kernels/dtype.h"

namespace kiln {

void convert_to_f32(const void* src, DType t, float* dst, uint64_t n) {
  switch (t) {
    case DType::F32: {
      const float* s = static_cast<const float*>(src);
      for (uint64_t i = 0; i < n; ++i) dst[i] = s[i];
      break;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (uint64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      break;
    }
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (uint64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
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
