// Scheduler: iteration-level (continuous) batching over a paged KV cache.
//
// Each engine step asks PlanStep() which sequences run and how many of their tokens:
//   1. decoding sequences (one token each), oldest first: inter-token latency comes first;
//   2. prefilling sequences, oldest first, a chunk of at most `prefill_chunk` tokens each,
//      while the step's `token_budget` lasts (long prompts are split over several steps, so
//      they never stall the decoders).
// Admission (Admit): waiting sequences join FIFO while fewer than `max_running` run and the
// pool has free blocks for the whole known context + `admit_headroom` tokens (reserved at once).
// Growth: PlanStep reserves the blocks each planned chunk writes. When the pool is full it
// preempts the youngest running sequence not yet planned (blocks released, back to the front
// of the queue, recomputed later: vLLM's recompute preemption).
//
// Ownership: the scheduler owns queued and running sequences (unique_ptr); Planned holds raw
// pointers valid until the next call that removes sequences. Thread safety: engine thread only.
#ifndef SLQ_SERVER_INFERENCE_SCHEDULER_H_
#define SLQ_SERVER_INFERENCE_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "server/inference/sequence.h"
#include "server/model/kv_cache.h"

namespace slq::inference {

struct SchedulerOptions {
  int64_t max_running = 64;     // sequences in the batch
  int64_t token_budget = 512;   // tokens fed per step (decodes + prefill chunks); > max_running
  int64_t prefill_chunk = 256;  // most prompt tokens of one sequence per step
  int64_t admit_headroom = 16;  // extra positions reserved at admission
  int64_t max_context = 0;      // the model's context length (caps reservations)
};

// InvalidArgument naming the bad option.
[[nodiscard]] absl::Status ValidateSchedulerOptions(const SchedulerOptions& o);

class Scheduler {
 public:
  struct Planned {
    Sequence* seq;
    int64_t count;  // tokens of seq->tokens fed this step, from seq->cached()
  };

  Scheduler(BlockAllocator* allocator, const SchedulerOptions& options) : alloc_(allocator), opt_(options) {}
  ~Scheduler();

  void Enqueue(std::unique_ptr<Sequence> seq);  // to the waiting queue, in id order
  void Admit();
  std::vector<Planned> PlanStep();
  // Removes a running sequence, releases its blocks and returns it.
  std::unique_ptr<Sequence> Finish(Sequence* seq);
  // Removes every queued or running sequence for which pred is true (blocks released).
  std::vector<std::unique_ptr<Sequence>> RemoveIf(const std::function<bool(const Sequence&)>& pred);

  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t preemptions() const { return preemptions_; }
  bool empty() const { return running_.empty() && waiting_.empty(); }

 private:
  int64_t AdmitTokens(const Sequence& s) const;
  // Preempts the youngest running sequence not in `planned`; false if there is none.
  bool PreemptYoungest(const std::vector<Planned>& planned, const Sequence* except);
  void Preempt(std::vector<std::unique_ptr<Sequence>>::iterator it);

  BlockAllocator* alloc_;
  SchedulerOptions opt_;
  std::deque<std::unique_ptr<Sequence>> waiting_;   // ascending id
  std::vector<std::unique_ptr<Sequence>> running_;  // ascending id
  int64_t preemptions_ = 0;
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_SCHEDULER_H_
