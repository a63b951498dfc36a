// Counter-based random numbers for diffusion noise: Philox4x32-10 (Salmon et al., SC'11,
// "Parallel random numbers: as easy as 1, 2, 3") and a Box-Muller normal computed in double.
// Host code, the CPU kernels and the CUDA kernels all call these inline functions, so the
// same (seed, stream, index) gives the same float on every backend: the integer part is
// exact, and the double-precision transform rounds to the same f32 except in astronomically
// rare ties.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"

namespace kiln {

struct Philox4 {
  uint32_t v[4];
};

KILN_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * ctr.v[0];
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * ctr.v[2];
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0), hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

// The index-th standard normal of stream `stream` under `seed`: one Philox block per value,
// counter {index, stream}, key = seed; Box-Muller on the block's first two words.
KILN_HOST_DEVICE inline float philox_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const Philox4 r =
      philox4x32_10(Philox4{{uint32_t(index), uint32_t(index >> 32), uint32_t(stream), uint32_t(stream >> 32)}},
                    uint32_t(seed), uint32_t(seed >> 32));
  const double u1 = (double(r.v[0]) + 1.0) / 4294967296.0;  // (0, 1]
  const double u2 = double(r.v[1]) / 4294967296.0;          // [0, 1)
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace kiln
