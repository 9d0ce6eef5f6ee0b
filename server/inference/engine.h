// Engine: one model's continuous-batching inference loop on its own thread.
//
//   EngineOptions o; o.model_name = "stories"; o.kv_cache_bytes = 64 << 20;
//   SLQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, Engine::Create(model, codec, o, metrics));
//   GenerationRequest r; r.prompt_text = "Once upon a time"; r.max_tokens = 32;
//   SLQ_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> s, e->Submit(std::move(r)));
//   GenerationEvent ev;
//   while (s->Next(&ev) && !ev.final) std::cout << ev.text;
//
// Each step (scheduler.h) the thread: takes new requests into the queue; drops requests whose
// stream was cancelled or whose deadline passed (final event kCancelled, blocks freed); admits
// waiting requests whose context + headroom fits the KV pool; runs one batched Forward over the
// planned decode tokens and prefill chunks; samples each sequence that completed its context
// with its own seeded Sampler (so tokens do not depend on the batch); streams the events.
//
// Submit validates (InvalidArgument naming the field and the allowed range; DeadlineExceeded;
// ResourceExhausted when `max_queue` requests already wait, or when the request could never fit
// the KV pool; Unavailable after Shutdown). Metrics (optional) follow docs/METRICS.md.
// Thread safety: Submit, Shutdown, SetFinishHook and stats are thread-safe.
#ifndef SLQ_SERVER_INFERENCE_ENGINE_H_
#define SLQ_SERVER_INFERENCE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/inference/forward_backend.h"
#include "server/inference/request.h"
#include "server/inference/request_stream.h"
#include "server/inference/scheduler.h"
#include "server/inference/text_codec.h"
#include "server/metrics/metrics.h"
#include "server/model/forward.h"
#include "server/model/model.h"

namespace slq::inference {

struct EngineOptions {
  std::string model_name = "model";  // metric label and error messages
  int64_t kv_block_size = 16;
  size_t kv_cache_bytes = 64ull << 20;  // KV pool budget
  int64_t max_running = 64;
  int64_t token_budget = 512;
  int64_t prefill_chunk = 256;
  int64_t admit_headroom = 16;
  int64_t max_queue = 256;  // waiting requests beyond this: ResourceExhausted
  int forward_threads = 0;  // attention threads; <= 0: default
  int64_t max_stop_strings = 16;
  int64_t max_stop_length = 256;  // bytes per stop string
  std::string device = "cpu";     // "cpu" | "cuda" (forward_backend.h)
  bool cuda_graphs = true;        // cuda: replay decode steps from CUDA graphs
};

struct EngineStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_used = 0, kv_blocks_total = 0;
  int64_t steps = 0, preemptions = 0;
  int64_t max_batch_seen = 0;  // most sequences in one step
};

// Called on the engine thread for every request that finished normally (not cancelled):
// the full token sequence (prompt + generated, stop token excluded) and the prompt length.
using FinishHook = std::function<void(std::span<const int32_t> tokens, int64_t prompt_len)>;

class Engine {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Engine>> Create(std::shared_ptr<const Model> model,
                                                                      std::shared_ptr<const TextCodec> codec,
                                                                      const EngineOptions& options,
                                                                      Metrics* metrics = nullptr);
  ~Engine();  // Shutdown(/*drain=*/false)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  [[nodiscard]] absl::StatusOr<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  // Stops accepting requests; drain = finish queued and running ones, else cancel them (final
  // event kCancelled, status Unavailable). Blocks until the engine thread exits. Idempotent.
  void Shutdown(bool drain);
  void SetFinishHook(FinishHook hook);
  EngineStats stats() const;

  const Model& model() const { return *model_; }
  const TextCodec& codec() const { return *codec_; }
  const EngineOptions& options() const { return opt_; }
  // "cpu fp32" or "cuda: <linears and activation type>".
  std::string backend_description() const { return backend_->Describe(); }

 private:
  Engine(std::shared_ptr<const Model> model, std::shared_ptr<const TextCodec> codec, const EngineOptions& options,
         Metrics* metrics, std::unique_ptr<ForwardBackend> backend);

  absl::StatusOr<std::vector<int32_t>> ResolvePrompt(const GenerationRequest& r) const;
  absl::Status Validate(const GenerationRequest& r, const std::vector<int32_t>& prompt) const;
  void Loop();
  bool WaitForWork();  // false: exit the loop
  void ReapCancelled();
  void RunStep(const std::vector<Scheduler::Planned>& plan);
  // Streams one sampled token (or finishes on a stop token / stop string / length / context).
  void Emit(Sequence* seq, int32_t id, float logprob);
  void Complete(std::unique_ptr<Sequence> seq, FinishReason reason, const absl::Status& status);
  void FailAll(const absl::Status& status);
  void UpdateGauges();
  void CountRequest(const absl::Status& status);

  const std::shared_ptr<const Model> model_;
  const std::shared_ptr<const TextCodec> codec_;
  const EngineOptions opt_;
  Metrics* const metrics_;                   // may be null
  std::unique_ptr<ForwardBackend> backend_;  // its allocator is the scheduler's
  Scheduler scheduler_;                      // engine thread only
  StepOutput out_;                           // engine thread only
  std::vector<Sequence*> finished_now_;      // engine thread only

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Sequence>> incoming_ ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool drain_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t waiting_count_ ABSL_GUARDED_BY(mu_) = 0;  // incoming + queued (not running)
  EngineStats stats_ ABSL_GUARDED_BY(mu_);
  FinishHook hook_ ABSL_GUARDED_BY(mu_);
  double gauge_running_ = 0, gauge_waiting_ = 0;  // this engine's share of the global gauges
  std::thread thread_;
  absl::Mutex shutdown_mu_;  // serializes Shutdown
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_ENGINE_H_
