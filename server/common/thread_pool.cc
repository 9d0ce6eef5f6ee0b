#include "server/common/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

namespace slq {

int DefaultThreads() {
  if (const char* env = std::getenv("SLQ_THREADS")) {
    int t = std::atoi(env);
    if (t > 0) return t;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int threads,
                 int64_t min_chunk) {
  if (n <= 0) return;
  if (threads <= 0) threads = DefaultThreads();
  int64_t max_by_chunk = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  int64_t t = std::min<int64_t>(threads, max_by_chunk);
  if (t <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(t - 1));
  int64_t chunk = (n + t - 1) / t;
  for (int64_t i = 1; i < t; ++i) {
    int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    workers.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, chunk));
  for (auto& w : workers) w.join();
}

}  // namespace slq
