// WorkerPool: a persistent fork-join pool for the CPU runtime's hot loops (GEMM row slices,
// attention tasks). Unlike slq::ParallelFor (server/common), which starts std::threads on
// every call, the workers here live for the process, so a decode step's ~60 parallel regions
// cost microseconds, not a thread start each.
//
//   WorkerPool::Default().Run(n, [&](int64_t begin, int64_t end) { ... });
//
// Run() splits [0, n) into contiguous chunks (about 4 per participant) that the caller and the
// workers claim dynamically, and returns when all are done: a worker that is descheduled (an
// oversubscribed machine) only delays the chunk it holds, never the whole region. Workers spin
// briefly, then sleep on a condition variable, so an idle machine is not burned.
//
// Thread safety: Run may be called from any thread. If the pool is busy (another thread's Run,
// or a Run nested inside a task), the call runs inline on the caller's thread instead of
// waiting: concurrent callers never deadlock and each still progresses.
//
// The default pool also sets OpenBLAS to one thread (openblas_set_num_threads(1)): the runtime
// parallelises GEMMs itself by output rows, and OpenBLAS's own spinning threads collapse when
// the machine is oversubscribed (measured: 5x slower decode under load).
#ifndef SLQ_SERVER_MODEL_WORKER_POOL_H_
#define SLQ_SERVER_MODEL_WORKER_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace slq {

class WorkerPool {
 public:
  using RangeFn = std::function<void(int64_t begin, int64_t end)>;

  // `threads` participants in total (the caller included); <= 1 means no worker threads.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // DefaultThreads() participants (SLQ_THREADS, else hardware concurrency).
  static WorkerPool& Default();

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn over [0, n) split into at most min(4 * threads(), max_parts) chunks.
  void Run(int64_t n, const RangeFn& fn, int max_parts = 1 << 30);

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

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_WORKER_POOL_H_
