// Host-side image preprocessing for ControlNet control images, as diffusers does it:
// PIL's Image.resize with Lanczos (the VaeImageProcessor default), reproduced bit for bit —
// PIL's filter weights (a = 3, widened by the downscale factor), its 22-bit fixed-point
// accumulation and its horizontal-then-vertical passes with 8-bit rounding in between — then
// scaling to [0, 1] (the ControlNet processor does not normalize to [−1, 1]).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/status.h"

namespace kiln {

// rgb: h × w × 3 bytes → out: out_h × out_w × 3 bytes (a copy when the sizes match).
Status resize_lanczos_rgb8(const uint8_t* rgb, int64_t w, int64_t h, int64_t out_w, int64_t out_h,
                           std::vector<uint8_t>* out);

// The ControlNet input: resized as above, then each byte / 255.
Status control_image_from_rgb8(const uint8_t* rgb, int64_t w, int64_t h, int64_t out_w, int64_t out_h, float* out);

}  // namespace kiln
