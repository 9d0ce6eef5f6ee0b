// The process's one thread pool: a persistent fork-join WorkerPool, and ParallelFor on top of it.
//
//   slq::ParallelFor(rows, [&](int64_t begin, int64_t end) { ... });
//   WorkerPool::Default().Run(n, [&](int64_t begin, int64_t end) { ... });
//
// The workers live for the process, so a parallel region costs microseconds, not a thread start
// each (the CPU runtime's decode step issues ~60 of them, the quantizer one per matrix).
//
// Run() splits [0, n) into contiguous chunks (about 4 per participant) that the caller and the
// workers claim dynamically, and returns when all are done: a worker that is descheduled (an
// oversubscribed machine) only delays the chunk it holds, never the whole region. Workers spin
// briefly, then sleep on a condition variable, so an idle machine is not burned.
//
// Thread safety: Run / ParallelFor may be called from any thread. If the pool is busy (another
// thread's Run) or the caller is itself inside a task of a pool (a nested Run or ParallelFor),
// the call runs inline on the caller's thread instead of waiting: concurrent callers never
// deadlock and each still progresses. Work that must overlap with a busy pool (e.g. hashing
// files while the loader converts layers) starts its own threads.
//
// The default pool also sets OpenBLAS to one thread (openblas_set_num_threads(1)): the runtime
// parallelises GEMMs itself by output rows, and OpenBLAS's own spinning threads collapse when
// the machine is oversubscribed (measured: 5x slower decode under load).
#ifndef SLQ_SERVER_COMMON_THREAD_POOL_H_
#define SLQ_SERVER_COMMON_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace slq {

// SLQ_THREADS env var, else hardware concurrency.
int DefaultThreads();

class WorkerPool {
 public:
  using RangeFn = std::function<void(int64_t begin, int64_t end)>;

  // `threads` participants in total (the caller included); <= 1 means no worker threads.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // DefaultThreads() participants; created on first use, never destroyed.
  static WorkerPool& Default();

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn over [0, n) split into at most min(4 * threads(), max_parts) chunks.
  void Run(int64_t n, const RangeFn& fn, int64_t max_parts = int64_t{1} << 30);

 private:
  void WorkerLoop();
  // Claims and runs chunks of job `gen` until none is left.
  void Drain(uint64_t gen);

  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // held by the thread whose job is running
  std::mutex mu_;      // guards sleeping / waking
  std::condition_variable work_cv_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  // (generation << 32) | next chunk index: a claim is a CAS, so a worker that slept through a
  // job can never claim a chunk of a later one.
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};  // chunks finished in the current job
  std::atomic<bool> stop_{false};
  // The current job (written before generation_ is bumped, stable until done_ == chunks_).
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> chunks_{0};
};

// Runs fn over [0, n) on WorkerPool::Default(), in at most n / min_chunk chunks (so a chunk has
// at least min_chunk items). threads == 1 runs inline; other values of `threads` are accepted
// for compatibility (the pool's size is fixed: DefaultThreads()). Small ranges (n < 2 *
// min_chunk), nested calls and calls while the pool is busy run inline on the caller's thread.
void ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn, int threads = 0,
                 int64_t min_chunk = 1);

}  // namespace slq

#endif  // SLQ_SERVER_COMMON_THREAD_POOL_H_
