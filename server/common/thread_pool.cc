#include "server/common/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>

namespace slq {
namespace {

// Spin iterations (~50-100 us) before sleeping: a decode step issues parallel regions every
// few microseconds, so a short spin saves the futex wake-up; it is bounded so an
// oversubscribed machine does not lose much CPU to spinning.
constexpr int kSpin = 4000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Set while this thread runs a task of some pool (worker or caller): a nested Run then runs
// inline instead of try_lock-ing a mutex this thread may already own.
thread_local bool t_in_pool_task = false;

struct InTask {
  bool saved = t_in_pool_task;
  InTask() { t_in_pool_task = true; }
  ~InTask() { t_in_pool_task = saved; }
};

}  // namespace

int DefaultThreads() {
  if (const char* env = std::getenv("SLQ_THREADS")) {
    int t = std::atoi(env);
    if (t > 0) return t;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

WorkerPool::WorkerPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

WorkerPool& WorkerPool::Default() {
  static WorkerPool* pool = [] {
    openblas_set_num_threads(1);
    return new WorkerPool(DefaultThreads());
  }();
  return *pool;
}

void WorkerPool::Drain(uint64_t gen) {
  const uint64_t tag = (gen & 0xffffffffu) << 32;
  uint64_t v = next_.load(std::memory_order_acquire);
  while (true) {
    if ((v & ~uint64_t{0xffffffffu}) != tag) return;  // another job
    // chunks_ is atomic: a worker that finds this job exhausted may read it while the caller
    // is already setting up the next job.
    const int64_t chunks = chunks_.load(std::memory_order_relaxed);
    const int64_t chunk = static_cast<int64_t>(v & 0xffffffffu);
    if (chunk >= chunks) return;
    if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
    // Claimed: the job cannot finish (nor fn_ / n_ change) before this chunk is counted done.
    const int64_t begin = n_ * chunk / chunks, end = n_ * (chunk + 1) / chunks;
    if (begin < end) {
      InTask in_task;
      (*fn_)(begin, end);
    }
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
      std::lock_guard<std::mutex> l(mu_);
      done_cv_.notify_one();
    }
    v = next_.load(std::memory_order_acquire);
  }
}

void WorkerPool::Run(int64_t n, const RangeFn& fn, int64_t max_parts) {
  if (n <= 0) return;
  const int64_t chunks = std::min<int64_t>({n, 4 * static_cast<int64_t>(threads()), max_parts});
  if (chunks <= 1 || workers_.empty() || t_in_pool_task || !run_mu_.try_lock()) {
    fn(0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  chunks_.store(chunks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  uint64_t gen;
  {
    std::lock_guard<std::mutex> l(mu_);
    gen = generation_.load(std::memory_order_relaxed) + 1;
    next_.store((gen & 0xffffffffu) << 32, std::memory_order_release);
    generation_.store(gen, std::memory_order_release);
  }
  work_cv_.notify_all();
  Drain(gen);
  for (int i = 0; i < kSpin && done_.load(std::memory_order_acquire) < chunks; ++i) CpuRelax();
  if (done_.load(std::memory_order_acquire) < chunks) {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return done_.load(std::memory_order_acquire) >= chunks; });
  }
  // Close the job before its fields can be reused: a worker still holding a stale view of
  // next_ then fails its CAS instead of claiming a chunk of a job that is being set up.
  next_.store(((gen & 0xffffffffu) << 32) | 0xffffffffu, std::memory_order_release);
  fn_ = nullptr;
  run_mu_.unlock();
}

void WorkerPool::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    for (int i = 0;
         i < kSpin && generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed);
         ++i) {
      CpuRelax();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> l(mu_);
      work_cv_.wait(l, [&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(); });
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    Drain(seen);
  }
}

void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int threads, int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t parts = n / std::max<int64_t>(1, min_chunk);
  if (threads == 1 || parts <= 1) {
    fn(0, n);
    return;
  }
  WorkerPool::Default().Run(n, fn, parts);
}

}  // namespace slq
