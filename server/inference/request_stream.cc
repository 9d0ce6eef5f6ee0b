#include "server/inference/request_stream.h"

#include <utility>

namespace slq::inference {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kContext:
      return "context";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

void RequestStream::Push(GenerationEvent event) {
  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    if (final_pushed_) return;
    final_pushed_ = event.final;
    events_.push_back(std::move(event));
    notify = notifier_;
  }
  if (notify) notify();
}

bool RequestStream::Next(GenerationEvent* event, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty(); };
  if (final_popped_) return false;
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  if (event->final) final_popped_ = true;
  return true;
}

std::optional<GenerationEvent> RequestStream::TryPopMerged() {
  absl::MutexLock lock(&mu_);
  if (events_.empty()) return std::nullopt;
  GenerationEvent out = std::move(events_.front());
  events_.pop_front();
  while (!events_.empty()) {
    GenerationEvent& e = events_.front();
    out.token_ids.insert(out.token_ids.end(), e.token_ids.begin(), e.token_ids.end());
    out.text += e.text;
    out.logprobs.insert(out.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    out.final = e.final;
    out.finish = e.finish;
    out.usage = e.usage;
    out.status = e.status;
    events_.pop_front();
  }
  if (out.final) final_popped_ = true;
  return out;
}

void RequestStream::SetNotifier(std::function<void()> fn) {
  bool pending;
  {
    absl::MutexLock lock(&mu_);
    notifier_ = fn;
    pending = !events_.empty();
  }
  if (pending && fn) fn();
}

bool RequestStream::finished() const {
  absl::MutexLock lock(&mu_);
  return final_pushed_;
}

}  // namespace slq::inference
