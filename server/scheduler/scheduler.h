// Scheduler: moves durable jobs through their stages by creating tasks for workers.
//
//   fetch -> profile (one task per transformer layer: fan-out) -> search -> pack (+verify)
//   -> publish (done here, in the server: atomic rename into the artifact store)
//
// It is a reconciler: Reconcile(job) reads the job and its tasks from the JobStore and does
// whatever step is missing, so it is idempotent and crash-safe. After a restart the same
// calls pick up where the store says the job is; nothing is kept only in memory. The server
// calls ReconcileAll() on start, after every CompleteTask, and periodically (which also
// expires lost leases).
//
// Task payloads and results are JSON (documented in docs/ARCHITECTURE.md#tasks):
//   fetch    {options}                       -> {model_path, model_sha256, layers: [[slot...]...]}
//   profile  {options, model_path, layers}   -> LayerProfiles JSON (a share)
//   search   {options, model_path, profiles} -> SearchOutcome JSON
//   pack     {options, model_path, search, profile, staging{container,dir}} -> {target_met, status, certificate}
// `options` is the job's quant::PipelineOptions JSON (model_path filled in after fetch).
//
// Failures: a failed task (out of attempts) or an artifact volume that cannot hold the staging
// dir (full, read-only) ends the job FAILED with the error; its staging container is removed.
// Test-only crash points "publish" / "published" around the publish rename: server/jobs/test_pause.h.
//
// Thread safety: all methods may be called concurrently; reconciling one job is serialised.
// Several servers may run a Scheduler on one PostgreSQL store with one shared artifact dir (the
// staging dirs the workers write are in it): each step is done once (see reconcile_mu_).
#ifndef SLQ_SERVER_SCHEDULER_SCHEDULER_H_
#define SLQ_SERVER_SCHEDULER_SCHEDULER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/artifact_store.h"
#include "server/jobs/job_store.h"

namespace slq {

class Metrics;

struct SchedulerOptions {
  absl::Duration tick = absl::Seconds(1);  // Run(): period of ReconcileAll + lease expiry
};

class Scheduler {
 public:
  // None of the pointers is owned; all must outlive the scheduler. metrics may be null.
  Scheduler(JobStore* store, ArtifactStore* artifacts, Metrics* metrics, SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Advances one job as far as its tasks allow. OK for terminal jobs (nothing to do).
  [[nodiscard]] absl::Status Reconcile(const std::string& job_id);
  // Expires lost leases, reconciles every live job, refreshes the gauges.
  [[nodiscard]] absl::Status ReconcileAll();

  // Starts/stops a background thread calling ReconcileAll() every tick (and when Poke()d).
  void Start();
  void Stop();
  void Poke();  // e.g. after a task completed: reconcile now rather than at the next tick

  // A worker's heartbeat: records progress of a running task as a job event. Profile tasks
  // run in parallel, so their progress is reported per finished share by Reconcile instead.
  [[nodiscard]] absl::Status TaskProgress(const Task& task, JobStage stage, double progress,
                                          const std::string& message);

  // Called when a job's event log changes (WatchJob wakes up on it).
  void set_on_event(std::function<void(const std::string& job_id)> fn) { on_event_ = std::move(fn); }

 private:
  absl::Status ReconcileLocked(const Job& job);
  // True when `s` (a failed reconcile step) only means another scheduler sharing the store did
  // the step first; logged, not an error.
  bool LostRace(const std::string& job_id, const absl::Status& s);
  absl::Status StartJob(const Job& job);
  absl::Status Advance(const Job& job, const std::vector<Task>& tasks);
  absl::Status Publish(const Job& job, const Task& pack);
  // Marks the job FAILED and removes its staging container (a partial artifact).
  absl::Status Fail(const Job& job, const std::string& error);
  void AbortStaging(const Job& job);
  absl::Status Event(const Job& job, JobStage stage, double progress, const std::string& msg);
  void UpdateGauges();
  // Records how long the job spent in its current stage when it moves on to `next`.
  void ObserveStageEnd(const Job& job, JobStage next);

  JobStore* const store_;
  ArtifactStore* const artifacts_;
  Metrics* const metrics_;
  const SchedulerOptions options_;
  std::function<void(const std::string&)> on_event_;

  // Serialises reconciliation within this process. Schedulers of other servers on the same store
  // are fenced by the store: a stage's tasks are added once (AddTasks: AlreadyExists), the
  // staging container is per job, and an ended job's state is final.
  absl::Mutex reconcile_mu_;

  absl::Mutex loop_mu_;
  bool running_ ABSL_GUARDED_BY(loop_mu_) = false;
  bool poked_ ABSL_GUARDED_BY(loop_mu_) = false;
  std::unique_ptr<std::thread> thread_;
};

}  // namespace slq

#endif  // SLQ_SERVER_SCHEDULER_SCHEDULER_H_
