#include "server/common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace slq {
namespace {

TEST(WorkerPoolTest, CoversRangeExactlyOnce) {
  WorkerPool pool(3);
  for (int64_t n : {1, 2, 3, 7, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    for (int rep = 0; rep < 50; ++rep) {
      pool.Run(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
    }
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 50) << n << " " << i;
  }
}

TEST(WorkerPoolTest, NestedAndConcurrentCallsRunInline) {
  WorkerPool pool(2);
  std::atomic<int64_t> sum{0};
  auto job = [&] {
    for (int r = 0; r < 200; ++r) {
      pool.Run(4, [&](int64_t b, int64_t e) {
        pool.Run(e - b, [&](int64_t b2, int64_t e2) { sum += e2 - b2; });  // nested
      });
    }
  };
  std::thread t1(job), t2(job);
  t1.join();
  t2.join();
  EXPECT_EQ(sum.load(), 2 * 200 * 4);
}

TEST(WorkerPoolTest, SingleThreadPoolRunsInline) {
  WorkerPool pool(1);
  int64_t calls = 0;
  pool.Run(10, [&](int64_t b, int64_t e) {
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ParallelForTest, RunsOnThePersistentPoolAndCoversRange) {
  for (int64_t n : {1, 5, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    ParallelFor(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << n << " " << i;
  }
}

TEST(ParallelForTest, MinChunkBoundsTheChunks) {
  std::atomic<int> calls{0};
  ParallelFor(
      100,
      [&](int64_t b, int64_t e) {
        EXPECT_GE(e - b, 50);
        ++calls;
      },
      /*threads=*/0, /*min_chunk=*/50);
  EXPECT_LE(calls.load(), 2);
}

TEST(ParallelForTest, NestedInsidePoolTasksAndConcurrentCallersDoNotDeadlock) {
  std::atomic<int64_t> sum{0};
  auto job = [&] {
    for (int r = 0; r < 100; ++r) {
      ParallelFor(8, [&](int64_t b, int64_t e) {
        ParallelFor(e - b, [&](int64_t b2, int64_t e2) {
          WorkerPool::Default().Run(e2 - b2, [&](int64_t b3, int64_t e3) { sum += e3 - b3; });
        });
      });
    }
  };
  std::thread t1(job), t2(job), t3(job);
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(sum.load(), 3 * 100 * 8);
}

}  // namespace
}  // namespace slq
