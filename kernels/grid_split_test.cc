// CPU tests of the bf16 split of the grid levels (kernels/grid_split.h): exact for every level
// of every grid (the bf16 streaming grid kernel relies on it), the rounding agrees with
// server/common/half.h's bf16 conversion, and a value with too many significant bits is refused
// by the same check (so the check can fail).
#include "kernels/grid_split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/grids.h"
#include "server/common/half.h"

namespace slq::kernels {
namespace {

// True when hi + lo == level exactly and lo itself was not rounded.
bool SplitIsExact(float level) {
  const SplitLevel s = SplitLevelBf16(level);
  const double sum = static_cast<double>(Bf16Value(s.hi)) + static_cast<double>(Bf16Value(s.lo));
  return sum == static_cast<double>(level);
}

TEST(GridSplitTest, EveryLevelOfEveryGridSplitsExactly) {
  for (int bits = 2; bits <= 8; ++bits) {
    int not_bf16_exact = 0;
    for (int grid = 0; grid < kGridCount; ++grid) {
      const float* lv = GridLevels(bits, grid);
      ASSERT_NE(lv, nullptr);
      for (int q = 0; q < (1 << bits); ++q) {
        const std::string what = "bits " + std::to_string(bits) + " grid " + std::to_string(grid) + " code " +
                                 std::to_string(q) + " level " + std::to_string(lv[q]);
        const SplitLevel s = SplitLevelBf16(lv[q]);
        EXPECT_TRUE(SplitIsExact(lv[q])) << what;
        EXPECT_EQ(s.hi, FloatToBf16(lv[q])) << what;  // hi = bf16(L), round to nearest even
        EXPECT_EQ(s.lo, FloatToBf16(lv[q] - Bf16ToFloat(s.hi))) << what;
        // lo is below half a bf16 ulp of hi (RNE), so |lo| <= |hi| / 256.
        EXPECT_LE(std::fabs(Bf16Value(s.lo)), std::fabs(Bf16Value(s.hi)) / 256.f) << what;
        const uint32_t word = SplitLevelWord(lv[q]);
        EXPECT_EQ(word & 0xFFFFu, s.hi) << what;
        EXPECT_EQ(word >> 16, s.lo) << what;
        if (s.lo != 0) ++not_bf16_exact;
      }
    }
    // Otherwise the split would not be needed at this width (and the test above says little).
    EXPECT_GT(not_bf16_exact, 0) << "bits " << bits << ": every level is bf16-exact";
  }
}

TEST(GridSplitTest, GridZeroIsBf16Exact) {
  // Grid 0 is the uniform grid (level q = q): bf16 holds integers up to 256 exactly.
  for (int bits = 2; bits <= 8; ++bits) {
    const float* lv = GridLevels(bits, 0);
    for (int q = 0; q < (1 << bits); ++q) EXPECT_EQ(SplitLevelBf16(lv[q]).lo, 0) << bits << " " << q;
  }
}

TEST(GridSplitTest, TooManySignificantBitsIsNotExact) {
  // 1 + 2^-9 + 2^-20: hi = 1, the remainder has 12 significant bits, more than bf16's 8.
  const float v = 1.f + std::ldexp(1.f, -9) + std::ldexp(1.f, -20);
  EXPECT_FALSE(SplitIsExact(v));
  EXPECT_EQ(Bf16Value(SplitLevelBf16(v).hi), 1.f);
  // Every fp16 value in [2^-14, 65504] splits exactly (the argument in grid_split.h).
  for (uint32_t h = 0x0400; h < 0x7C00; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    ASSERT_TRUE(SplitIsExact(f)) << "fp16 bits " << h;
    ASSERT_TRUE(SplitIsExact(-f)) << "fp16 bits -" << h;
  }
}

}  // namespace
}  // namespace slq::kernels
