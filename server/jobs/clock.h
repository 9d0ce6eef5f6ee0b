// Clock abstraction so lease expiry and timestamps can be tested without sleeping.
//
//   slq::FakeClock clock(absl::FromUnixSeconds(1000));
//   store->LeaseTask(...);            // lease_expiry = Now() + duration
//   clock.Advance(absl::Minutes(5));  // leases are now expired
//
// Thread-safe: Now() may be called from any thread.
#ifndef SLQ_SERVER_JOBS_CLOCK_H_
#define SLQ_SERVER_JOBS_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace slq {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock. A process-wide instance is returned by RealClock().
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// Returns a static SystemClock (never destroyed).
Clock* RealClock();

// A manually advanced clock for tests.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_CLOCK_H_
