// The word-level repacking (RepackForGpu / RepackRowTiles) against the element-by-element
// reference (RepackForGpuReference): identical words on random matrices of every width, both
// group sizes and ragged shapes, and tile ranges written separately match the whole.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "kernels/repack.h"
#include "kernels/test_matrix.h"

namespace slq::kernels {
namespace {

struct Shape {
  int64_t rows, cols;
};
// Ragged in both directions (rows % 16 != 0, cols % 256 != 0, a last group that is short).
constexpr Shape kShapes[] = {{1, 8}, {16, 256}, {17, 264}, {37, 200}, {64, 1000}, {45, 520}, {128, 768}};

TEST(RepackFastTest, EqualsTheElementwiseReferenceForEveryWidthGroupAndShape) {
  std::mt19937_64 rng(7);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int64_t g : {64, 128}) {
      for (const Shape& sh : kShapes) {
        SCOPED_TRACE(testing::Message() << "bits " << bits << " g " << g << " shape " << sh.rows << "x" << sh.cols);
        OwnedPacked m = RandomPacked(sh.rows, sh.cols, bits, g, rng);
        RepackedMatrix fast, ref;
        ASSERT_EQ(RepackForGpu(m.View(), &fast), "");
        ASSERT_EQ(RepackForGpuReference(m.View(), &ref), "");
        EXPECT_EQ(fast.layout.CodeWords(), ref.layout.CodeWords());
        ASSERT_EQ(fast.codes, ref.codes);
        ASSERT_EQ(fast.sz, ref.sz);
      }
    }
  }
}

TEST(RepackFastTest, TileRangesIntoUninitialisedStorageMatchTheWhole) {
  std::mt19937_64 rng(11);
  for (int bits : {3, 4, 8}) {
    OwnedPacked m = RandomPacked(77, 520, bits, 64, rng);
    RepackedMatrix ref;
    ASSERT_EQ(RepackForGpuReference(m.View(), &ref), "");
    const GpuLayout l = GpuLayoutFor(m.View());
    ASSERT_EQ(l.row_tiles, 5);
    // Garbage-filled storage: every element of the written tiles must be overwritten.
    std::vector<uint32_t> codes(static_cast<size_t>(l.CodeWords()), 0xdeadbeefu);
    std::vector<uint16_t> sz(static_cast<size_t>(l.SzHalves()), 0xbeefu);
    const int64_t wpt = CodeWordsPerTile(l), spt = SzHalvesPerTile(l);
    for (auto [b, e] : {std::pair<int64_t, int64_t>{3, 5}, {0, 1}, {1, 3}}) {
      RepackRowTiles(m.View(), b, e, codes.data() + b * wpt, sz.data() + b * spt);
    }
    EXPECT_EQ(codes, ref.codes) << "bits " << bits;
    EXPECT_EQ(sz, ref.sz) << "bits " << bits;
  }
}

TEST(RepackFastTest, ExtremeCodesSurvive) {
  // All-ones codes (every bit set) exercise the plane masks; all-zero codes the padding.
  std::mt19937_64 rng(5);
  for (int bits = 2; bits <= 8; ++bits) {
    OwnedPacked m = RandomPacked(20, 264, bits, 128, rng);
    std::fill(m.codes.begin(), m.codes.end(), 0u);  // SetCode ORs into the words
    for (int64_t r = 0; r < m.rows; ++r) {
      for (int64_t c = 0; c < m.cols; ++c) SetCode(m, r, c, r % 2 ? (1u << bits) - 1u : 0u);
    }
    RepackedMatrix fast, ref;
    ASSERT_EQ(RepackForGpu(m.View(), &fast), "");
    ASSERT_EQ(RepackForGpuReference(m.View(), &ref), "");
    ASSERT_EQ(fast.codes, ref.codes) << "bits " << bits;
    for (int64_t r = 0; r < m.rows; ++r) {
      ASSERT_EQ(RepackedCode(fast, r, 263), r % 2 ? (1u << bits) - 1u : 0u);
    }
  }
}

}  // namespace
}  // namespace slq::kernels
