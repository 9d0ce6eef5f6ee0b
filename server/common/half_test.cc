#include "server/common/half.h"

#include <cmath>

#include "gtest/gtest.h"

namespace slq {
namespace {

TEST(HalfTest, RoundTripsEveryFiniteHalf) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    uint16_t bits = static_cast<uint16_t>(h);
    if (((bits >> 10) & 0x1f) == 0x1f) continue;  // inf/nan
    float f = HalfToFloat(bits);
    EXPECT_EQ(FloatToHalf(f), bits) << "bits=" << h;
  }
}

TEST(HalfTest, RoundsToNearestEven) {
  EXPECT_EQ(HalfToFloat(FloatToHalf(1.0f + 1.0f / 2048)), 1.0f);  // tie -> even (1.0)
  EXPECT_EQ(HalfToFloat(FloatToHalf(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
  EXPECT_EQ(HalfToFloat(FloatToHalf(1e-9f)), 0.0f);
  EXPECT_FLOAT_EQ(HalfToFloat(FloatToHalf(65504.0f)), 65504.0f);
}

TEST(Bf16Test, RoundTripsAndRounds) {
  for (uint32_t h = 0; h < 0x10000u; h += 7) {
    uint16_t bits = static_cast<uint16_t>(h);
    float f = Bf16ToFloat(bits);
    if (std::isnan(f)) continue;
    EXPECT_EQ(FloatToBf16(f), bits);
  }
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f)), 1.0f);
  EXPECT_NEAR(Bf16ToFloat(FloatToBf16(3.14159f)), 3.14159f, 0.01f);
}

}  // namespace
}  // namespace slq
