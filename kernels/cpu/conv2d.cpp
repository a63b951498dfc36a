// CPU conv2d: output pixels in blocks of kConvPixelBlock. A block's input patches (kh·kw·cin
// floats each, zeros outside the image) are gathered into the worker's scratch, then every
// output channel's weight row (widened once per block when not f32) is dotted with each
// patch. The association order per output is fixed, so results do not depend on threads.
#include "kernels/conv2d.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/simd.h"

namespace kiln {

void conv2d_cpu(const Conv2dArgs& a, ThreadPool& pool) {
  const int64_t K = a.kh * a.kw * a.cin;
  const int64_t pix = a.ho * a.wo, total = a.batch * pix;
  const int64_t hv = a.hv, wv = a.wv;  // the input as read (resized or not)
  const uint64_t esz = dtype_size(a.w_dtype);
  const int64_t n_blocks = (total + kConvPixelBlock - 1) / kConvPixelBlock;
  pool.parallel_for(n_blocks, 1, [&](int64_t b0, int64_t b1, int worker) {
    float* patches = pool.scratch(worker);
    float* wrow = patches + kConvPixelBlock * K;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t p0 = blk * kConvPixelBlock, np = std::min(kConvPixelBlock, total - p0);
      for (int64_t q = 0; q < np; ++q) {
        const int64_t gp = p0 + q, b = gp / pix, oy = (gp % pix) / a.wo, ox = gp % a.wo;
        float* dst = patches + q * K;
        for (int64_t ky = 0; ky < a.kh; ++ky) {
          const int64_t iy = oy * a.stride - a.pad + ky;
          for (int64_t kx = 0; kx < a.kw; ++kx, dst += a.cin) {
            const int64_t ix = ox * a.stride - a.pad + kx;
            if (iy < 0 || iy >= hv || ix < 0 || ix >= wv) {
              std::memset(dst, 0, size_t(a.cin) * sizeof(float));
              continue;
            }
            const int64_t sy = nearest_source(iy, a.h, hv), sx = nearest_source(ix, a.w_in, wv);
            const float* src = a.x + ((b * a.h + sy) * a.w_in + sx) * a.cin;
            std::memcpy(dst, src, size_t(a.cin) * sizeof(float));
          }
        }
      }
      for (int64_t co = 0; co < a.cout; ++co) {
        const void* src = static_cast<const uint8_t*>(a.w) + uint64_t(co * K) * esz;
        const float* w;
        if (a.w_dtype == DType::F32) {
          w = static_cast<const float*>(src);
        } else {
          convert_to_f32(src, a.w_dtype, wrow, uint64_t(K));
          w = wrow;
        }
        const float bias = a.bias ? load_as_f32(a.bias, a.w_dtype, uint64_t(co)) : 0.0f;
        for (int64_t q = 0; q < np; ++q) {
          const int64_t gp = p0 + q, b = gp / pix;
          float v = dot_f32(patches + q * K, w, K) + bias;
          if (a.chan_add) v += a.chan_add[b * a.cout + co];
          if (a.residual) v += a.residual[gp * a.cout + co];
          a.y[gp * a.cout + co] = v * a.out_scale;
        }
      }
    }
  });
}

}  // namespace kiln
