// dtype conversions: round-to-nearest-even against exhaustive and hand-derived cases.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "kernels/dtype.h"

using namespace kiln;

TEST_CASE("f16 round-trips every finite half value and matches the IEEE definition") {
  int checked = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t bits = uint16_t(h);
    const uint32_t exp = (bits >> 10) & 0x1f, man = bits & 0x3ff;
    if (exp == 31) continue;  // inf / NaN below
    const double sign = (bits & 0x8000) ? -1.0 : 1.0;
    const double expected =
        exp == 0 ? sign * std::ldexp(double(man), -24) : sign * std::ldexp(double(1024 + man), int(exp) - 25);
    REQUIRE(double(f16_to_f32(bits)) == expected);
    if (!(bits == 0x8000)) REQUIRE(f32_to_f16(f16_to_f32(bits)) == bits);
    ++checked;
  }
  CHECK(checked == 63488);
  CHECK(std::isinf(f16_to_f32(0x7c00)));
  CHECK(std::isnan(f16_to_f32(0x7e00)));
}

TEST_CASE("f32 to f16 rounds to nearest even, saturates to inf and keeps NaN") {
  CHECK(f32_to_f16(1.0f) == 0x3c00);
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties to even (1.0).
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(f32_to_f16(65504.0f) == 0x7bff);
  CHECK(f32_to_f16(65520.0f) == 0x7c00);
  CHECK(f32_to_f16(-1e9f) == 0xfc00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // exactly half of it: ties to even (0)
  CHECK(f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: ties to even (2)
  CHECK((f32_to_f16(std::numeric_limits<float>::quiet_NaN()) & 0x7e00) == 0x7e00);
}

TEST_CASE("bf16 conversion rounds to nearest even") {
  CHECK(f32_to_bf16(1.0f) == 0x3f80);
  CHECK(bf16_to_f32(0x3f80) == 1.0f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t b = uint16_t(h);
    if (((b >> 7) & 0xff) == 0xff) continue;
    REQUIRE(f32_to_bf16(bf16_to_f32(b)) == b);
  }
}
