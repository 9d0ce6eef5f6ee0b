// The word-level repacking (RepackForGpu / RepackRowTiles) against the element-by-element
// reference (RepackForGpuReference): identical words on random matrices of every width, both
// group sizes and ragged shapes, and tile ranges written separately match the whole. Grid ids
// (kernels/grids.h): the repacked ids and level table of matrices with random ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "kernels/grids.h"
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
    for (int64_t g : {32, 64, 128}) {
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

TEST(RepackGridTest, IdsAndLevelsRoundTripForEveryWidthGroupAndShape) {
  std::mt19937_64 rng(13);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int64_t g : {32, 64, 128}) {
      for (const Shape& sh : kShapes) {
        SCOPED_TRACE(testing::Message() << "bits " << bits << " g " << g << " shape " << sh.rows << "x" << sh.cols);
        OwnedPacked m = RandomPacked(sh.rows, sh.cols, bits, g, rng);
        RandomGridIds(m, rng);
        const std::vector<uint32_t>& ids = m.grid_ids;
        const PackedMatrixView v = m.View();
        PackedMatrixView no_ids = v;
        no_ids.grid_ids = nullptr;
        RepackedMatrix fast, ref, plain;
        ASSERT_EQ(RepackForGpu(v, &fast), "");
        ASSERT_EQ(RepackForGpuReference(v, &ref), "");
        ASSERT_EQ(RepackForGpu(no_ids, &plain), "");
        // Codes and scales/zeros are untouched by the ids.
        ASSERT_EQ(fast.codes, plain.codes);
        ASSERT_EQ(fast.sz, plain.sz);
        ASSERT_TRUE(fast.layout.grids);
        ASSERT_FALSE(plain.layout.grids);
        EXPECT_TRUE(plain.grid.empty());
        EXPECT_TRUE(plain.levels.empty());
        ASSERT_EQ(static_cast<int64_t>(fast.grid.size()), fast.layout.GridBytes());
        ASSERT_EQ(fast.layout.GridBytes(), fast.layout.row_tiles * fast.layout.GroupsPadded() * 8);
        ASSERT_EQ(fast.grid, ref.grid);
        const int64_t gpr = GroupsPerRow(sh.cols, g);
        for (int64_t r = 0; r < sh.rows; ++r) {
          for (int64_t gi = 0; gi < gpr; ++gi) {
            ASSERT_EQ(RepackedGridId(fast, r, gi),
                      static_cast<int>(PackedCode(ids.data() + r * WordsPerRow(gpr, kGridIdBits), gi, kGridIdBits)))
                << "row " << r << " group " << gi;
          }
        }
        // Padding (rows past the matrix, groups past the row) is grid 0.
        for (int64_t r = sh.rows; r < fast.layout.row_tiles * kTileRows; ++r) {
          for (int64_t gi = 0; gi < fast.layout.GroupsPadded(); ++gi) ASSERT_EQ(RepackedGridId(fast, r, gi), 0);
        }
        for (int64_t r = 0; r < sh.rows; ++r) {
          for (int64_t gi = gpr; gi < fast.layout.GroupsPadded(); ++gi) ASSERT_EQ(RepackedGridId(fast, r, gi), 0);
        }
        // The level table: every grid of the width, in order.
        ASSERT_EQ(fast.levels.size(), static_cast<size_t>(kGridCount << bits));
        EXPECT_EQ(fast.levels, ref.levels);
        for (int gr = 0; gr < kGridCount; ++gr) {
          for (int q = 0; q < (1 << bits); ++q) {
            ASSERT_EQ(fast.levels[static_cast<size_t>((gr << bits) + q)], GridLevels(bits, gr)[q]);
          }
        }
      }
    }
  }
}

TEST(RepackGridTest, AllZeroIdsRepackToZeroBytes) {
  std::mt19937_64 rng(17);
  OwnedPacked m = RandomPacked(37, 520, 4, 64, rng);
  RandomGridIds(m, rng);
  std::fill(m.grid_ids.begin(), m.grid_ids.end(), 0u);
  RepackedMatrix rp;
  ASSERT_EQ(RepackForGpu(m.View(), &rp), "");
  ASSERT_FALSE(rp.grid.empty());
  EXPECT_EQ(std::count(rp.grid.begin(), rp.grid.end(), uint8_t{0}), static_cast<std::ptrdiff_t>(rp.grid.size()));
}

TEST(RepackGridTest, TileRangesIntoUninitialisedStorageMatchTheWhole) {
  std::mt19937_64 rng(19);
  OwnedPacked m = RandomPacked(77, 520, 3, 64, rng);
  RandomGridIds(m, rng);
  const PackedMatrixView v = m.View();
  RepackedMatrix ref;
  ASSERT_EQ(RepackForGpuReference(v, &ref), "");
  const GpuLayout l = GpuLayoutFor(v);
  ASSERT_EQ(GridBytesPerTile(l), l.GroupsPadded() * 8);
  std::vector<uint8_t> grid(static_cast<size_t>(l.GridBytes()), 0xEE);
  const int64_t bpt = GridBytesPerTile(l);
  for (auto [b, e] : {std::pair<int64_t, int64_t>{3, 5}, {0, 1}, {1, 3}}) {
    RepackGridTiles(v, b, e, grid.data() + b * bpt);
  }
  EXPECT_EQ(grid, ref.grid);
}

TEST(RepackGridTest, LevelTableOfABadWidthIsEmpty) {
  EXPECT_TRUE(GridLevelTable(1).empty());
  EXPECT_TRUE(GridLevelTable(9).empty());
  EXPECT_EQ(GridLevelTable(2).size(), static_cast<size_t>(kGridCount * 4));
  EXPECT_EQ(GpuLayoutFor(PackedMatrixView{}).GridBytes(), 0);
}

}  // namespace
}  // namespace slq::kernels
