// ShadowEvaluator: live fidelity monitoring of an artifact-backed model against its base model.
//
//   ShadowEvaluator shadow(base, artifact_model, {.fraction = 0.05, .label = "a1"}, metrics);
//   engine->SetFinishHook([&](auto tokens, int64_t prompt_len) { shadow.Offer(tokens); });
//
// Offer() keeps a seeded-random `fraction` of finished sequences (prompt + generated tokens) in
// a bounded queue (dropped when full: the shadow never slows serving). A background thread at
// the lowest CPU priority runs both models teacher-forced over each kept sequence, computes the
// per-position EAR = sum_v min(p, q) and KL(p || q) (p = base, q = artifact; quant/metrics.h,
// fp64 with max-subtraction) and observes the sequence means in slq_shadow_ear{artifact} and
// slq_shadow_kl{artifact}.
// Thread safety: Offer and stats are thread-safe; the destructor stops the thread (pending
// sequences are dropped).
#ifndef SLQ_SERVER_INFERENCE_SHADOW_H_
#define SLQ_SERVER_INFERENCE_SHADOW_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/metrics/metrics.h"
#include "server/model/model.h"

namespace slq::inference {

struct ShadowOptions {
  double fraction = 0.05;          // of finished sequences, in [0, 1]
  int64_t queue_capacity = 8;      // pending sequences; more are dropped
  int64_t max_tokens = 1024;       // longer sequences are truncated to their first max_tokens
  uint64_t seed = 1;               // sampling of which sequences to keep
  std::string label = "artifact";  // the metrics' artifact label
};

struct ShadowScore {
  double ear = 0;  // mean over positions
  double kl = 0;   // mean over positions, nats
  int64_t positions = 0;
};

struct ShadowStats {
  int64_t offered = 0, kept = 0, dropped = 0, evaluated = 0, failed = 0;
  ShadowScore last;
};

// Scores one sequence teacher-forced with both models (same config required).
[[nodiscard]] absl::StatusOr<ShadowScore> ScoreAgainstBase(const Model& base, const Model& candidate,
                                                           std::span<const int32_t> tokens);

class ShadowEvaluator {
 public:
  ShadowEvaluator(std::shared_ptr<const Model> base, std::shared_ptr<const Model> candidate,
                  const ShadowOptions& options, Metrics* metrics);
  ~ShadowEvaluator();
  ShadowEvaluator(const ShadowEvaluator&) = delete;
  ShadowEvaluator& operator=(const ShadowEvaluator&) = delete;

  void Offer(std::span<const int32_t> tokens);
  ShadowStats stats() const;
  // Blocks until the queue is empty and no sequence is being scored (tests).
  void WaitIdle() const;

 private:
  void Run();

  const std::shared_ptr<const Model> base_, candidate_;
  const ShadowOptions opt_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::deque<std::vector<int32_t>> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  ShadowStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_SHADOW_H_
