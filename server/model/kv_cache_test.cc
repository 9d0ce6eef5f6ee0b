#include "server/model/kv_cache.h"

#include <gtest/gtest.h>

#include <set>

namespace slq {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  return c;
}

TEST(KvCacheTest, ReserveGrowsByBlocks) {
  KvBlockPool pool(SmallConfig(), /*block_size=*/4, /*num_blocks=*/5);
  BlockTable seq;
  ASSERT_TRUE(pool.allocator().Reserve(&seq, 1).ok());
  EXPECT_EQ(seq.blocks.size(), 1u);
  ASSERT_TRUE(pool.allocator().Reserve(&seq, 4).ok());
  EXPECT_EQ(seq.blocks.size(), 1u);
  ASSERT_TRUE(pool.allocator().Reserve(&seq, 9).ok());
  EXPECT_EQ(seq.blocks.size(), 3u);
  EXPECT_EQ(pool.allocator().num_free(), 2);
  EXPECT_DOUBLE_EQ(pool.usage(), 0.6);
  std::set<int32_t> distinct(seq.blocks.begin(), seq.blocks.end());
  EXPECT_EQ(distinct.size(), 3u);
}

TEST(KvCacheTest, ExhaustionIsAllOrNothingAndFreeReturnsBlocks) {
  KvBlockPool pool(SmallConfig(), 4, 3);
  BlockTable a, b;
  ASSERT_TRUE(pool.allocator().Reserve(&a, 8).ok());  // 2 blocks
  absl::Status s = pool.allocator().Reserve(&b, 12);  // needs 3, 1 free
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_EQ(pool.allocator().num_free(), 1);
  pool.allocator().Release(&a);
  EXPECT_TRUE(a.blocks.empty());
  EXPECT_EQ(a.num_tokens, 0);
  EXPECT_EQ(pool.allocator().num_free(), 3);
  EXPECT_TRUE(pool.allocator().Reserve(&b, 12).ok());
  EXPECT_DOUBLE_EQ(pool.usage(), 1.0);
}

TEST(KvCacheTest, TruncateKeepsNeededBlocks) {
  KvBlockPool pool(SmallConfig(), 4, 4);
  BlockTable a;
  ASSERT_TRUE(pool.allocator().Reserve(&a, 16).ok());
  a.num_tokens = 16;
  pool.allocator().Truncate(&a, 5);
  EXPECT_EQ(a.blocks.size(), 2u);
  EXPECT_EQ(a.num_tokens, 5);
  EXPECT_EQ(pool.allocator().num_free(), 2);
}

TEST(KvCacheTest, StorageSlabsAreDisjoint) {
  ModelConfig c = SmallConfig();
  KvBlockPool pool(c, 4, 2);
  KvStorage& st = pool.storage();
  const int64_t slab = 4 * c.kv_dim();
  std::set<const float*> starts;
  for (int32_t b = 0; b < 2; ++b) {
    for (int64_t l = 0; l < c.num_layers; ++l) {
      starts.insert(st.K(b, l));
      starts.insert(st.V(b, l));
      EXPECT_GE(st.V(b, l) - st.K(b, l), slab);
    }
  }
  EXPECT_EQ(starts.size(), 2u * 3u * 2u);
  EXPECT_EQ(st.MemoryBytes(), 2u * 3 * 2 * slab * sizeof(float));
  EXPECT_EQ(KvBlockPool::BytesPerToken(c), 2u * 3 * 16 * 4);
  EXPECT_EQ(KvBlockPool::BlocksForBudget(c, 4, 10 * 4 * KvBlockPool::BytesPerToken(c)), 10);
}

}  // namespace
}  // namespace slq
