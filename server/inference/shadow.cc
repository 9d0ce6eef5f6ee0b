#include "server/inference/shadow.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/forward.h"
#include "server/quant/metrics.h"

namespace slq::inference {

absl::StatusOr<ShadowScore> ScoreAgainstBase(const Model& base, const Model& candidate,
                                             std::span<const int32_t> tokens) {
  const int64_t vocab = base.config.vocab_size;
  if (candidate.config.vocab_size != vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("shadow base has vocab ", vocab, ", the served model ", candidate.config.vocab_size));
  }
  if (tokens.empty()) return absl::InvalidArgumentError("nothing to score: empty sequence");
  SLQ_ASSIGN_OR_RETURN(std::vector<float> p, TeacherForcedLogits(base, tokens));       // [T, vocab]
  SLQ_ASSIGN_OR_RETURN(std::vector<float> q, TeacherForcedLogits(candidate, tokens));  // [T, vocab]
  const int64_t positions = static_cast<int64_t>(tokens.size());
  SLQ_ASSIGN_OR_RETURN(quant::SequenceMetrics m,
                       quant::CompareLogits(p.data(), q.data(), positions, vocab, nullptr, 1.0));
  ShadowScore s;
  s.positions = m.positions();
  s.ear = m.SumEar() / static_cast<double>(s.positions);
  s.kl = m.SumKl() / static_cast<double>(s.positions);
  return s;
}

ShadowEvaluator::ShadowEvaluator(std::shared_ptr<const Model> base, std::shared_ptr<const Model> candidate,
                                 const ShadowOptions& options, Metrics* metrics)
    : base_(std::move(base)), candidate_(std::move(candidate)), opt_(options), metrics_(metrics), rng_(options.seed) {
  thread_ = std::thread([this] { Run(); });
}

ShadowEvaluator::~ShadowEvaluator() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void ShadowEvaluator::Offer(std::span<const int32_t> tokens) {
  absl::MutexLock lock(&mu_);
  ++stats_.offered;
  // 53 random bits -> [0, 1): the same seed keeps the same requests.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  if (u >= opt_.fraction) return;
  if (static_cast<int64_t>(queue_.size()) >= opt_.queue_capacity) {
    ++stats_.dropped;
    return;
  }
  ++stats_.kept;
  const size_t n = std::min<size_t>(
      tokens.size(), static_cast<size_t>(std::min(opt_.max_tokens, base_->config.max_position_embeddings)));
  queue_.emplace_back(tokens.begin(), tokens.begin() + n);
}

ShadowStats ShadowEvaluator::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void ShadowEvaluator::WaitIdle() const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.empty() && !busy_; };
  mu_.Await(absl::Condition(&idle));
}

void ShadowEvaluator::Run() {
  // Lowest priority for this thread only (Linux: a thread id is a process id for setpriority).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  while (true) {
    std::vector<int32_t> seq;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      seq = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    absl::StatusOr<ShadowScore> s = ScoreAgainstBase(*base_, *candidate_, seq);
    if (s.ok() && metrics_) {
      metrics_->shadow_ear(opt_.label).Observe(s->ear);
      metrics_->shadow_kl(opt_.label).Observe(s->kl);
    }
    absl::MutexLock lock(&mu_);
    busy_ = false;
    if (s.ok()) {
      ++stats_.evaluated;
      stats_.last = *s;
    } else {
      ++stats_.failed;
    }
  }
}

}  // namespace slq::inference
