// RequestStream: the thread-safe channel between the engine thread (producer) and whoever
// serves the request (a gRPC reactor, a test, the load generator).
//
//   auto s = engine.Submit(req).value();
//   GenerationEvent e;
//   while (s->Next(&e)) { ... if (e.final) break; }
//   s->Cancel();   // from any thread: the engine drops the request at its next step
//
// Non-blocking consumers (reactors) call SetNotifier once and then TryPopMerged() whenever
// notified: the notifier runs on the engine thread after each push, without locks held, so it
// must be cheap and must not block.
// Thread safety: all methods are thread-safe.
#ifndef SLQ_SERVER_INFERENCE_REQUEST_STREAM_H_
#define SLQ_SERVER_INFERENCE_REQUEST_STREAM_H_

#include <atomic>
#include <deque>
#include <functional>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/inference/request.h"

namespace slq::inference {

class RequestStream {
 public:
  RequestStream() = default;
  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;

  // Producer side (engine). Push after a final event is ignored.
  void Push(GenerationEvent event);

  // Blocks until an event is available or `timeout` passes; false on timeout or after the
  // final event was already consumed.
  bool Next(GenerationEvent* event, absl::Duration timeout = absl::InfiniteDuration());
  // All pending events merged into one (ids, text, logprobs concatenated; final, finish, usage
  // and status from the last); nullopt when none is pending.
  std::optional<GenerationEvent> TryPopMerged();
  // `fn` is called after every Push (and once now if events are already pending).
  void SetNotifier(std::function<void()> fn);

  // Asks the engine to drop the request; it then pushes a final kCancelled event.
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  bool finished() const;  // the final event was pushed

 private:
  mutable absl::Mutex mu_;
  std::deque<GenerationEvent> events_ ABSL_GUARDED_BY(mu_);
  bool final_pushed_ ABSL_GUARDED_BY(mu_) = false;
  bool final_popped_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> notifier_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> cancelled_{false};
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_REQUEST_STREAM_H_
