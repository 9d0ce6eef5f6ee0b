// TSan shim for Debian's Abseil (SLQ_SANITIZE=thread only; cmake/SlqSanitizers.cmake links it
// into every target).
//
// Debian builds libabsl_synchronization without -fsanitize=thread, so ThreadSanitizer cannot
// see absl::Mutex / absl::CondVar hand-offs and reports false races on every field an
// absl::Mutex guards. This file interposes the exported Mutex and CondVar entry points: each
// wrapper calls the real function (found with dlsym(RTLD_NEXT)) and tells TSan about the
// happens-before edge it creates (__tsan_acquire after taking the lock, __tsan_release
// before giving it up; waits release and re-acquire). Races on data that is not under an
// absl lock are still reported. The mangled names carry Debian's inline namespace; a build
// against another Abseil fails at start-up with a message naming the missing symbol.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

namespace {

template <typename Fn>
Fn Real(const char* mangled) {
  void* p = dlsym(RTLD_NEXT, mangled);
  if (p == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in Abseil (%s)\n", mangled, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(p);
}

#define SLQ_REAL(type, mangled) static const auto real = Real<type>(mangled);

// Abseil evaluates a waiter's Condition while holding the lock, inside LockWhen/Await (where
// it may then drop the lock internally to block) and also on the thread that unlocks. The
// wrapper tells TSan the evaluating thread acquired `mu`, and publishes what it read (the
// lock may be released inside Abseil right after, unseen).
struct Guarded {
  const absl::Condition* cond;
  absl::Mutex* mu;
};
bool EvalHolding(void* arg) {
  auto* g = static_cast<Guarded*>(arg);
  __tsan_acquire(g->mu);
  const bool ok = g->cond->Eval();
  __tsan_release(g->mu);
  return ok;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  SLQ_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}
void Mutex::ReaderLock() {
  SLQ_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}
bool Mutex::TryLock() {
  SLQ_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool ok = real(this);
  if (ok) __tsan_acquire(this);
  return ok;
}
bool Mutex::ReaderTryLock() {
  SLQ_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool ok = real(this);
  if (ok) __tsan_acquire(this);
  return ok;
}
void Mutex::Unlock() {
  SLQ_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}
void Mutex::ReaderUnlock() {
  SLQ_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}
void Mutex::LockWhen(const Condition& cond) {
  SLQ_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  real(this, wrapped);
  __tsan_acquire(this);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  SLQ_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  real(this, wrapped);
  __tsan_acquire(this);
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  SLQ_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
           "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  const bool ok = real(this, wrapped, deadline);
  __tsan_acquire(this);  // held on return either way
  return ok;
}
bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  SLQ_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
           "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  const bool ok = real(this, wrapped, timeout);
  __tsan_acquire(this);
  return ok;
}
bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  SLQ_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
           "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  const bool ok = real(this, wrapped, deadline);
  __tsan_acquire(this);
  return ok;
}
bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  SLQ_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
           "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  const bool ok = real(this, wrapped, timeout);
  __tsan_acquire(this);
  return ok;
}
void Mutex::Await(const Condition& cond) {
  SLQ_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  __tsan_release(this);
  real(this, wrapped);
  __tsan_acquire(this);
}
bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  SLQ_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
           "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  __tsan_release(this);
  const bool ok = real(this, wrapped, deadline);
  __tsan_acquire(this);
  return ok;
}
bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  SLQ_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
           "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  const Condition wrapped(&EvalHolding, &g);
  __tsan_release(this);
  const bool ok = real(this, wrapped, timeout);
  __tsan_acquire(this);
  return ok;
}

void CondVar::Wait(Mutex* mu) {
  SLQ_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  SLQ_REAL(bool (*)(CondVar*, Mutex*, absl::Duration),
           "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool ok = real(this, mu, timeout);
  __tsan_acquire(mu);
  return ok;
}
bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  SLQ_REAL(bool (*)(CondVar*, Mutex*, absl::Time), "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool ok = real(this, mu, deadline);
  __tsan_acquire(mu);
  return ok;
}

ABSL_NAMESPACE_END
}  // namespace absl
