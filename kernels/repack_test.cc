// CPU tests: the reference matmul and the "slq-gpu-v1" repacking (no GPU needed).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/dequant_ref.h"
#include "kernels/repack.h"
#include "kernels/test_matrix.h"
#include "server/common/half.h"

namespace slq::kernels {
namespace {

TEST(DequantRefTest, MatchesHandComputedValues) {
  // 2 rows x 4 cols, 3 bits, group 2: codes row 0 = {1, 7, 0, 5}, row 1 = {2, 2, 6, 3}.
  OwnedPacked m;
  m.rows = 2;
  m.cols = 4;
  m.bits = 3;
  m.group_size = 2;
  m.codes.assign(2 * WordsPerRow(4, 3), 0u);
  const uint32_t q[2][4] = {{1, 7, 0, 5}, {2, 2, 6, 3}};
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 4; ++c) SetCode(m, r, c, q[r][c]);
  }
  // scales / zeros per (row, group): exact in fp16.
  const float s[2][2] = {{0.5f, 0.25f}, {1.0f, 2.0f}};
  const float z[2][2] = {{-1.0f, 0.5f}, {-3.0f, 1.0f}};
  for (int r = 0; r < 2; ++r) {
    for (int g = 0; g < 2; ++g) {
      m.scales.push_back(FloatToHalf(s[r][g]));
      m.zeros.push_back(FloatToHalf(z[r][g]));
    }
  }
  const float x[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  float y[2];
  ASSERT_EQ(DequantMatmulRef(m.View(), x, 1, y), "");
  // row 0: w = {-0.5, 2.5, 0.5, 1.75}; row 1: w = {-1, -1, 13, 7}.
  EXPECT_FLOAT_EQ(y[0], -0.5f - 5.0f + 0.25f + 5.25f);
  EXPECT_FLOAT_EQ(y[1], -1.0f + 2.0f + 6.5f + 21.0f);
}

TEST(DequantRefTest, RejectsBadBits) {
  std::mt19937_64 rng(1);
  OwnedPacked m = RandomPacked(2, 64, 4, 64, rng);
  PackedMatrixView v = m.View();
  v.bits = 9;
  float x[64] = {}, y[2];
  EXPECT_NE(DequantMatmulRef(v, x, 1, y).find("bits = 9"), std::string::npos);
}

TEST(RepackTest, RoundTripsEveryCodeForEveryBitwidth) {
  std::mt19937_64 rng(42);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int64_t g : {32, 64, 128}) {
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 200}, {16, 512}, {33, 1000}}) {
        OwnedPacked m = RandomPacked(rows, cols, bits, g, rng);
        RepackedMatrix rp;
        ASSERT_EQ(RepackForGpu(m.View(), &rp), "");
        EXPECT_EQ(rp.layout.row_tiles, (rows + 15) / 16);
        EXPECT_EQ(rp.layout.chunks, (cols + 255) / 256);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            ASSERT_EQ(RepackedCode(rp, r, c), PackedCode(m.View(), r, c))
                << "bits " << bits << " g " << g << " at (" << r << ", " << c << ")";
          }
        }
        // Scales/zeros land at [rt][group][row % 8][2 * (row % 16 >= 8) + {0, 1}].
        const int64_t gpad = rp.layout.chunks * 256 / g, gpr = GroupsPerRow(cols, g);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t gi = 0; gi < gpr; ++gi) {
            const int64_t base = ((r / 16 * gpad + gi) * 8 + r % 8) * 4 + (r % 16 >= 8 ? 2 : 0);
            ASSERT_EQ(rp.sz[base], m.scales[r * gpr + gi]);
            ASSERT_EQ(rp.sz[base + 1], m.zeros[r * gpr + gi]);
          }
        }
      }
    }
  }
}

TEST(RepackTest, RejectsUnsupportedShapes) {
  std::mt19937_64 rng(3);
  OwnedPacked m = RandomPacked(4, 96, 4, 16, rng);
  RepackedMatrix rp;
  EXPECT_NE(RepackForGpu(m.View(), &rp).find("group_size = 16"), std::string::npos);
  OwnedPacked m2 = RandomPacked(4, 100, 4, 64, rng);
  EXPECT_NE(RepackForGpu(m2.View(), &rp).find("cols = 100"), std::string::npos);
}

TEST(RepackTest, BitPlanesSumToBits) {
  for (int bits = 2; bits <= 8; ++bits) {
    int w[3];
    const int n = BitPlanes(bits, w);
    int sum = 0;
    for (int i = 0; i < n; ++i) {
      sum += w[i];
      if (i > 0) {
        EXPECT_LT(w[i], w[i - 1]);
      }
    }
    EXPECT_EQ(sum, bits);
  }
}

}  // namespace
}  // namespace slq::kernels
