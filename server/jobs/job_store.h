// JobStore: the durable record of jobs, their tasks, progress events, artifacts and workers.
//
//   SLQ_ASSIGN_OR_RETURN(auto store, SqliteJobStore::Open("/var/lib/slq/jobs.db"));
//   SLQ_ASSIGN_OR_RETURN(Job job, store->CreateJob(request));        // durable on return
//   SLQ_RETURN_IF_ERROR(store->AddTasks(job.id, {{"fetch", "{}"}}).status());
//   // a worker:
//   SLQ_ASSIGN_OR_RETURN(auto task, store->LeaseTask("w1", {"fetch"}, absl::Seconds(30)));
//   if (task) { ...; store->Heartbeat(task->id, "w1", absl::Seconds(30)); ...
//               store->CompleteTask(task->id, "w1", {.ok = true, .result_json = "{}"}); }
//
// Implementations: SqliteJobStore (one file, WAL) and PostgresJobStore (scale-out); both share
// the schema and SQL in SqlJobStore. All methods are thread-safe. Every mutating method has
// committed its transaction before it returns OK.
//
// Errors: NotFound (unknown id), InvalidArgument (bad request data), FailedPrecondition
// (state-machine violation, lost/stale lease, idempotency key reused with other parameters),
// Unavailable/Internal (database trouble).
#ifndef SLQ_SERVER_JOBS_JOB_STORE_H_
#define SLQ_SERVER_JOBS_JOB_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/jobs/job_types.h"

namespace slq {

struct ListJobsOptions {
  std::optional<JobState> state;  // filter; unset: all states
  int32_t page_size = 50;         // 1..1000 (0 means 50)
  std::string page_token;         // from the previous page; empty: first page
};

struct JobPage {
  std::vector<Job> jobs;        // oldest first
  std::string next_page_token;  // empty on the last page
};

struct ExpireResult {
  int64_t requeued = 0;  // back to PENDING
  int64_t failed = 0;    // out of attempts: FAILED
};

struct CreateJobResult {
  Job job;
  bool created = true;  // false: an existing job was returned for the idempotency key
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // ---- Jobs ----
  // Validates the request (model_uri and target non-empty, group_size > 0) and inserts a
  // QUEUED job. With an idempotency key already in use: the same request returns the
  // existing job (created=false); a different request is FailedPrecondition.
  [[nodiscard]] virtual absl::StatusOr<CreateJobResult> CreateJob(const JobRequest& req) = 0;
  [[nodiscard]] virtual absl::StatusOr<Job> GetJob(const std::string& job_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<JobPage> ListJobs(const ListJobsOptions& opts) = 0;
  // Applies the set fields. State changes are validated (ValidateJobTransition); SUCCEEDED
  // needs an artifact id; progress must be in [0, 1]. Moving to FAILED cancels the job's
  // PENDING/LEASED tasks (as CancelJob does). Returns the updated job.
  [[nodiscard]] virtual absl::StatusOr<Job> UpdateJob(const std::string& job_id,
                                                      const JobUpdate& update) = 0;
  // Marks the job CANCELLED and its PENDING/LEASED tasks CANCELLED (their holders learn it
  // at the next Heartbeat/CompleteTask). Cancelling a cancelled job is OK; cancelling a
  // SUCCEEDED/FAILED one is FailedPrecondition.
  [[nodiscard]] virtual absl::StatusOr<Job> CancelJob(const std::string& job_id) = 0;

  // ---- Events (WatchJob resumes with after_seq = last seen seq) ----
  [[nodiscard]] virtual absl::StatusOr<JobEvent> AppendEvent(const std::string& job_id,
                                                             JobStage stage, double progress,
                                                             const std::string& message) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<JobEvent>> ListEvents(
      const std::string& job_id, int64_t after_seq, int32_t limit = 1000) = 0;

  // ---- Tasks ----
  // The job must exist and not be terminal.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Task>> AddTasks(
      const std::string& job_id, const std::vector<TaskSpec>& specs) = 0;
  [[nodiscard]] virtual absl::StatusOr<Task> GetTask(const std::string& task_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<Task>> ListTasks(
      const std::string& job_id) = 0;
  // Leases the oldest PENDING task whose kind is in `kinds` (all kinds when empty) to
  // `worker_id` until Now() + lease. nullopt when none is available. Atomic: two concurrent
  // callers (threads or processes) never get the same task.
  [[nodiscard]] virtual absl::StatusOr<std::optional<Task>> LeaseTask(
      const std::string& worker_id, const std::vector<std::string>& kinds,
      absl::Duration lease) = 0;
  // Extends the lease to Now() + lease. FailedPrecondition if the task is not LEASED by
  // `worker_id` any more, or its lease has already expired (the message says which).
  [[nodiscard]] virtual absl::StatusOr<Task> Heartbeat(const std::string& task_id,
                                                       const std::string& worker_id,
                                                       absl::Duration lease) = 0;
  // Finishes a task held (with an unexpired lease) by `worker_id`: DONE with the result, or
  // on error back to PENDING (retryable and attempts left) or FAILED. A stale holder gets
  // FailedPrecondition and changes nothing.
  [[nodiscard]] virtual absl::StatusOr<Task> CompleteTask(const std::string& task_id,
                                                          const std::string& worker_id,
                                                          const TaskOutcome& outcome) = 0;
  // Tasks LEASED with lease_expiry < now go back to PENDING, or to FAILED when they have used
  // max_attempts leases.
  [[nodiscard]] virtual absl::StatusOr<ExpireResult> ExpireLeases(absl::Time now) = 0;
  // Number of jobs per state (every state present, zero if none): one query for the gauges.
  [[nodiscard]] virtual absl::StatusOr<std::map<JobState, int64_t>> CountJobs() = 0;
  // Number of tasks per state (every state present, zero if none): queue depth metrics.
  [[nodiscard]] virtual absl::StatusOr<std::map<TaskState, int64_t>> CountTasks() = 0;

  // ---- Artifacts (content-addressed; putting the same id twice is OK) ----
  [[nodiscard]] virtual absl::Status PutArtifact(const Artifact& a) = 0;
  [[nodiscard]] virtual absl::StatusOr<Artifact> GetArtifact(const std::string& id) = 0;
  // All artifacts, or those of one job when job_id is non-empty.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Artifact>> ListArtifacts(
      const std::string& job_id) = 0;

  // ---- Workers ----
  // Inserts or updates the worker; last_heartbeat is set to Now().
  [[nodiscard]] virtual absl::Status RegisterWorker(const Worker& w) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<Worker>> ListWorkers() = 0;

  // Consistency checks: every LEASED task has an owner and an expiry, every SUCCEEDED job has
  // an artifact row, events are gap-free, no task without its job, no PENDING/LEASED task of an
  // ended job, plus the engine's own check (SQLite PRAGMA integrity_check). DataLoss listing
  // every problem found.
  [[nodiscard]] virtual absl::Status IntegrityCheck() = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_JOB_STORE_H_
