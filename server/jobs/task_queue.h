// TaskQueue: the durable work queue of job tasks with leases (one of the four parts of
// JobStore, see job_store.h). Workers' RPCs (LeaseTask / Heartbeat / CompleteTask) and the
// scheduler's fan-out go through it.
//
//   SLQ_RETURN_IF_ERROR(queue->AddTasks(job_id, {{"fetch", payload}}).status());
//   SLQ_ASSIGN_OR_RETURN(auto task, queue->LeaseTask("w1", {"fetch"}, absl::Seconds(30)));
//   if (task) { ...; queue->Heartbeat(task->id, "w1", absl::Seconds(30)); ...
//               queue->CompleteTask(task->id, "w1", {.ok = true, .result_json = "{}"}); }
//   queue->ExpireLeases(absl::Now());   // the scheduler's tick
//
// One fan-out per kind: a job's tasks of one kind are added by one AddTasks call; adding a kind
// the job already has is AlreadyExists and adds nothing. A failed attempt is retried by the same
// task (attempts / max_attempts), never by a new one. This is what lets several schedulers (two
// servers on one PostgreSQL store) reconcile the same job: exactly one of them creates a stage.
//
// Thread-safe and safe across processes; every mutating method has committed before it returns.
// Errors: NotFound (unknown id), InvalidArgument (bad request data), FailedPrecondition (ended
// job, lost/stale lease), AlreadyExists (the stage's tasks exist), Unavailable/Internal.
#ifndef SLQ_SERVER_JOBS_TASK_QUEUE_H_
#define SLQ_SERVER_JOBS_TASK_QUEUE_H_

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

struct ExpireResult {
  int64_t requeued = 0;  // back to PENDING
  int64_t failed = 0;    // out of attempts: FAILED
};

class TaskQueue {
 public:
  virtual ~TaskQueue() = default;

  // The job must exist and not be terminal, and must have no task of any kind in `specs` yet
  // (AlreadyExists otherwise: another scheduler created that stage first).
  [[nodiscard]] virtual absl::StatusOr<std::vector<Task>> AddTasks(const std::string& job_id,
                                                                   const std::vector<TaskSpec>& specs) = 0;
  [[nodiscard]] virtual absl::StatusOr<Task> GetTask(const std::string& task_id) = 0;
  // The job's tasks in creation order.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Task>> ListTasks(const std::string& job_id) = 0;
  // Leases the oldest PENDING task whose kind is in `kinds` (all kinds when empty) to
  // `worker_id` until Now() + lease. nullopt when none is available. Atomic: two concurrent
  // callers (threads or processes) never get the same task.
  [[nodiscard]] virtual absl::StatusOr<std::optional<Task>> LeaseTask(const std::string& worker_id,
                                                                      const std::vector<std::string>& kinds,
                                                                      absl::Duration lease) = 0;
  // Extends the lease to Now() + lease. FailedPrecondition if the task is not LEASED by
  // `worker_id` any more, or its lease has already expired (the message says which).
  [[nodiscard]] virtual absl::StatusOr<Task> Heartbeat(const std::string& task_id, const std::string& worker_id,
                                                       absl::Duration lease) = 0;
  // Finishes a task held (with an unexpired lease) by `worker_id`: DONE with the result, or
  // on error back to PENDING (retryable and attempts left) or FAILED. A stale holder gets
  // FailedPrecondition and changes nothing.
  [[nodiscard]] virtual absl::StatusOr<Task> CompleteTask(const std::string& task_id, const std::string& worker_id,
                                                          const TaskOutcome& outcome) = 0;
  // Tasks LEASED with lease_expiry < now go back to PENDING, or to FAILED when they have used
  // max_attempts leases.
  [[nodiscard]] virtual absl::StatusOr<ExpireResult> ExpireLeases(absl::Time now) = 0;
  // Number of tasks per state (every state present, zero if none): queue depth metrics.
  [[nodiscard]] virtual absl::StatusOr<std::map<TaskState, int64_t>> CountTasks() = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_TASK_QUEUE_H_
