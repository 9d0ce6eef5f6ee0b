// ParallelFor: splits [0, n) into contiguous chunks run on up to `threads` std::threads.
//
//   slq::ParallelFor(rows, [&](int64_t begin, int64_t end) { ... }, /*threads=*/0);
//
// threads <= 0 means DefaultThreads() (SLQ_THREADS env var, else hardware concurrency).
// Small ranges (n < min_chunk * 2) run inline on the caller's thread.
#ifndef SLQ_SERVER_COMMON_THREAD_POOL_H_
#define SLQ_SERVER_COMMON_THREAD_POOL_H_

#include <cstdint>
#include <functional>

namespace slq {

int DefaultThreads();

void ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                 int threads = 0, int64_t min_chunk = 1);

}  // namespace slq

#endif  // SLQ_SERVER_COMMON_THREAD_POOL_H_
