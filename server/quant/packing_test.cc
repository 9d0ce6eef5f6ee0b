#include "server/quant/packing.h"

#include <random>

#include "gtest/gtest.h"
#include "kernels/packed_matrix.h"

namespace slq::quant {
namespace {

TEST(PackingTest, RoundTripsEveryBitwidthOnRaggedShapes) {
  std::mt19937 rng(1);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int64_t cols : {1, 3, 31, 32, 33, 100, 129}) {
      const int64_t rows = 5;
      std::vector<uint8_t> codes(rows * cols);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1u << bits));
      auto words = PackCodes(codes.data(), rows, cols, bits);
      ASSERT_TRUE(words.ok()) << words.status();
      ASSERT_EQ(static_cast<int64_t>(words->size()), rows * kernels::WordsPerRow(cols, bits));
      EXPECT_EQ(UnpackCodes(words->data(), rows, cols, bits), codes) << bits << " " << cols;
      // Unused high bits of each row's last word are zero.
      const int64_t wpr = kernels::WordsPerRow(cols, bits);
      const int64_t used = cols * bits - (wpr - 1) * 32;
      if (used < 32) {
        for (int64_t r = 0; r < rows; ++r) EXPECT_EQ((*words)[r * wpr + wpr - 1] >> used, 0u);
      }
    }
  }
}

TEST(PackingTest, LayoutIsLittleEndianBitStream) {
  // 3-bit codes 0..7 at positions 0..7: stream bits [3j, 3j+3).
  std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 0, 5, 1, 7};
  auto words = PackCodes(codes.data(), 1, 11, 3);
  ASSERT_TRUE(words.ok());
  uint64_t expect = 0;
  for (size_t j = 0; j < codes.size(); ++j) expect |= static_cast<uint64_t>(codes[j]) << (3 * j);
  EXPECT_EQ((*words)[0], static_cast<uint32_t>(expect));
  EXPECT_EQ((*words)[1], static_cast<uint32_t>(expect >> 32));
}

TEST(PackingTest, RejectsBadInput) {
  std::vector<uint8_t> codes = {16};
  EXPECT_FALSE(PackCodes(codes.data(), 1, 1, 4).ok());
  EXPECT_FALSE(PackCodes(codes.data(), 1, 1, 9).ok());
  EXPECT_FALSE(PackCodes(codes.data(), 1, 1, 1).ok());
}

}  // namespace
}  // namespace slq::quant
