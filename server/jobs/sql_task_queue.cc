// SqlJobStore, TaskQueue part: tasks (one fan-out per kind), leases, expiry, counts.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/jobs/sql_job_store.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

absl::Status TaskNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("task '", id, "' not found"));
}

// OK if `worker_id` holds an unexpired lease on `t` at `now_us`.
absl::Status CheckLeaseHolder(const Task& t, const std::string& worker_id, int64_t now_us) {
  if (t.state != TaskState::kLeased) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", t.id, " (job ", t.job_id, ") is ", TaskStateName(t.state), ", not LEASED; drop it"));
  }
  if (t.lease_owner != worker_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", t.id, " is leased by '", t.lease_owner, "', not by '", worker_id, "'"));
  }
  if (absl::ToUnixMicros(t.lease_expiry) < now_us) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease of task ", t.id, " by '", worker_id, "' expired at ", absl::FormatTime(t.lease_expiry)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Task> SqlJobStore::LockTask(SqlTx& tx, const std::string& task_id) {
  SLQ_ASSIGN_OR_RETURN(
      auto rows, tx.Query(absl::StrCat("SELECT ", kTaskColumns, " FROM tasks WHERE id = $1", ForUpdate()), {task_id}));
  if (rows.empty()) return TaskNotFound(task_id);
  return TaskFromRow(rows[0]);
}

absl::StatusOr<std::vector<Task>> SqlJobStore::AddTasks(const std::string& job_id, const std::vector<TaskSpec>& specs) {
  for (const TaskSpec& s : specs) {
    if (s.kind.empty()) return absl::InvalidArgumentError("task kind is empty");
    if (s.max_attempts < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_attempts ", s.max_attempts, " of a '", s.kind, "' task must be >= 1"));
    }
  }
  return InTx<std::vector<Task>>([&](SqlTx& tx) -> absl::StatusOr<std::vector<Task>> {
    SLQ_ASSIGN_OR_RETURN(Job j, LockJob(tx, job_id));
    if (IsTerminal(j.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is ", JobStateName(j.state), "; no tasks can be added"));
    }
    // One fan-out per kind. The job row is locked (FOR UPDATE; SQLite: BEGIN IMMEDIATE), so of
    // two schedulers creating the same stage concurrently the second sees the first's rows here.
    std::vector<SqlValue> params{job_id};
    std::vector<std::string> marks;
    for (const TaskSpec& s : specs) {
      params.push_back(s.kind);
      marks.push_back(absl::StrCat("$", params.size()));
    }
    SLQ_ASSIGN_OR_RETURN(auto existing,
                         tx.Query(absl::StrCat("SELECT kind, COUNT(*) FROM tasks WHERE job_id = $1 AND kind IN (",
                                               absl::StrJoin(marks, ", "), ") GROUP BY kind ORDER BY kind"),
                                  params));
    if (!existing.empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat("job ", job_id, " already has ", ColStr(existing[0], 1), " '", ColStr(existing[0], 0),
                       "' task(s): a stage's tasks are added once (another scheduler created them first?)"));
    }
    std::vector<Task> out;
    const absl::Time now = absl::FromUnixMicros(NowUs());
    for (size_t i = 0; i < specs.size(); ++i) {
      Task t;
      t.id = NewTaskId();
      t.job_id = job_id;
      t.kind = specs[i].kind;
      t.payload_json = specs[i].payload_json;
      t.max_attempts = specs[i].max_attempts;
      t.created = t.updated = now;
      SLQ_RETURN_IF_ERROR(tx.Query(absl::StrCat("INSERT INTO tasks (", kTaskColumns,
                                                ", ord) VALUES ($1, $2, $3, $4, $5, '', 0, 0, $6, '', '', $7, "
                                                "$7, $8)"),
                                   {t.id, job_id, t.kind, t.payload_json, std::string(TaskStateName(t.state)),
                                    int64_t{t.max_attempts}, TimeValue(now), static_cast<int64_t>(i)})
                              .status());
      out.push_back(std::move(t));
    }
    spdlog::debug("job {}: added {} tasks", job_id, out.size());
    return out;
  });
}

absl::StatusOr<Task> SqlJobStore::GetTask(const std::string& task_id) {
  return InTx<Task>([&](SqlTx& tx) -> absl::StatusOr<Task> {
    SLQ_ASSIGN_OR_RETURN(auto rows,
                         tx.Query(absl::StrCat("SELECT ", kTaskColumns, " FROM tasks WHERE id = $1"), {task_id}));
    if (rows.empty()) return TaskNotFound(task_id);
    return TaskFromRow(rows[0]);
  });
}

absl::StatusOr<std::vector<Task>> SqlJobStore::ListTasks(const std::string& job_id) {
  return InTx<std::vector<Task>>([&](SqlTx& tx) -> absl::StatusOr<std::vector<Task>> {
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query(absl::StrCat("SELECT ", kTaskColumns,
                                                          " FROM tasks WHERE job_id = $1 ORDER BY "
                                                          "created_us, ord, id"),
                                             {job_id}));
    std::vector<Task> out;
    for (const SqlRow& r : rows) {
      SLQ_ASSIGN_OR_RETURN(Task t, TaskFromRow(r));
      out.push_back(std::move(t));
    }
    return out;
  });
}

absl::StatusOr<std::optional<Task>> SqlJobStore::LeaseTask(const std::string& worker_id,
                                                           const std::vector<std::string>& kinds,
                                                           absl::Duration lease) {
  if (worker_id.empty()) return absl::InvalidArgumentError("worker_id is empty");
  if (lease <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease duration ", absl::FormatDuration(lease), " must be positive"));
  }
  std::string sql = "SELECT id FROM tasks WHERE state = 'PENDING'";
  std::vector<SqlValue> params;
  if (!kinds.empty()) {
    std::vector<std::string> marks;
    for (const std::string& k : kinds) {
      params.push_back(k);
      marks.push_back(absl::StrCat("$", params.size()));
    }
    absl::StrAppend(&sql, " AND kind IN (", absl::StrJoin(marks, ", "), ")");
  }
  absl::StrAppend(&sql, " ORDER BY created_us, ord, id LIMIT 1", ForUpdateSkipLocked());
  auto result = InTx<std::optional<Task>>([&](SqlTx& tx) -> absl::StatusOr<std::optional<Task>> {
    SLQ_ASSIGN_OR_RETURN(auto ids, tx.Query(sql, params));
    if (ids.empty()) return std::optional<Task>();
    const int64_t now = NowUs();
    SLQ_ASSIGN_OR_RETURN(auto rows,
                         tx.Query(absl::StrCat("UPDATE tasks SET state = 'LEASED', lease_owner = $2, "
                                               "lease_expiry_us = $3, attempts = attempts + 1, updated_us = $4 "
                                               "WHERE id = $1 RETURNING ",
                                               kTaskColumns),
                                  {ColStr(ids[0], 0), worker_id, now + absl::ToInt64Microseconds(lease), now}));
    if (rows.empty()) return absl::UnavailableError("task vanished while leasing; retry");
    SLQ_ASSIGN_OR_RETURN(Task t, TaskFromRow(rows[0]));
    return std::optional<Task>(std::move(t));
  });
  if (result.ok() && result->has_value()) {
    const Task& t = **result;
    spdlog::debug("job {}: task {} ({}) leased to {} (attempt {}/{})", t.job_id, t.id, t.kind, worker_id, t.attempts,
                  t.max_attempts);
  }
  return result;
}

absl::StatusOr<Task> SqlJobStore::Heartbeat(const std::string& task_id, const std::string& worker_id,
                                            absl::Duration lease) {
  if (lease <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease duration ", absl::FormatDuration(lease), " must be positive"));
  }
  return InTx<Task>([&](SqlTx& tx) -> absl::StatusOr<Task> {
    SLQ_ASSIGN_OR_RETURN(Task t, LockTask(tx, task_id));
    const int64_t now = NowUs();
    SLQ_RETURN_IF_ERROR(CheckLeaseHolder(t, worker_id, now));
    const int64_t expiry = now + absl::ToInt64Microseconds(lease);
    SLQ_RETURN_IF_ERROR(tx.Query("UPDATE tasks SET lease_expiry_us = $2, updated_us = $3 WHERE "
                                 "id = $1",
                                 {task_id, expiry, now})
                            .status());
    t.lease_expiry = TimeFromUs(expiry);
    t.updated = TimeFromUs(now);
    return t;
  });
}

absl::StatusOr<Task> SqlJobStore::CompleteTask(const std::string& task_id, const std::string& worker_id,
                                               const TaskOutcome& outcome) {
  auto result = InTx<Task>([&](SqlTx& tx) -> absl::StatusOr<Task> {
    SLQ_ASSIGN_OR_RETURN(Task t, LockTask(tx, task_id));
    const int64_t now = NowUs();
    SLQ_RETURN_IF_ERROR(CheckLeaseHolder(t, worker_id, now));
    if (outcome.ok) {
      t.state = TaskState::kDone;
      t.result_json = outcome.result_json;
    } else {
      t.state = outcome.retryable && t.attempts < t.max_attempts ? TaskState::kPending : TaskState::kFailed;
      t.error = outcome.error;
    }
    t.lease_owner.clear();
    t.lease_expiry = absl::InfinitePast();
    t.updated = TimeFromUs(now);
    SLQ_RETURN_IF_ERROR(tx.Query("UPDATE tasks SET state = $2, result = $3, error = $4, "
                                 "lease_owner = '', lease_expiry_us = 0, updated_us = $5 WHERE "
                                 "id = $1",
                                 {task_id, std::string(TaskStateName(t.state)), t.result_json, t.error, now})
                            .status());
    return t;
  });
  if (result.ok()) {
    spdlog::debug("job {}: task {} ({}) -> {}{}", result->job_id, task_id, result->kind, TaskStateName(result->state),
                  outcome.ok ? "" : ": " + outcome.error);
  }
  return result;
}

absl::StatusOr<ExpireResult> SqlJobStore::ExpireLeases(absl::Time now) {
  const int64_t now_us = absl::ToUnixMicros(now);
  auto result = InTx<ExpireResult>([&](SqlTx& tx) -> absl::StatusOr<ExpireResult> {
    SLQ_ASSIGN_OR_RETURN(auto failed,
                         tx.Query("UPDATE tasks SET state = 'FAILED', error = 'lease expired on the last allowed "
                                  "attempt', lease_owner = '', lease_expiry_us = 0, updated_us = $1 WHERE state = "
                                  "'LEASED' AND lease_expiry_us < $1 AND attempts >= max_attempts RETURNING id, "
                                  "job_id",
                                  {now_us}));
    SLQ_ASSIGN_OR_RETURN(auto requeued, tx.Query("UPDATE tasks SET state = 'PENDING', lease_owner = '', "
                                                 "lease_expiry_us = 0, updated_us = $1 WHERE state = 'LEASED' "
                                                 "AND lease_expiry_us < $1 RETURNING id, job_id",
                                                 {now_us}));
    for (const SqlRow& r : failed) {
      spdlog::warn("job {}: task {} failed: lease expired, no attempts left", ColStr(r, 1), ColStr(r, 0));
    }
    for (const SqlRow& r : requeued) {
      spdlog::info("job {}: task {} lease expired, re-queued", ColStr(r, 1), ColStr(r, 0));
    }
    return ExpireResult{static_cast<int64_t>(requeued.size()), static_cast<int64_t>(failed.size())};
  });
  return result;
}

absl::StatusOr<std::map<TaskState, int64_t>> SqlJobStore::CountTasks() {
  using Counts = std::map<TaskState, int64_t>;
  return InTx<Counts>([&](SqlTx& tx) -> absl::StatusOr<Counts> {
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT state, COUNT(*) FROM tasks GROUP BY state", {}));
    Counts counts;
    for (TaskState s :
         {TaskState::kPending, TaskState::kLeased, TaskState::kDone, TaskState::kFailed, TaskState::kCancelled}) {
      counts[s] = 0;
    }
    for (const SqlRow& r : rows) {
      SLQ_ASSIGN_OR_RETURN(TaskState s, ParseTaskState(ColStr(r, 0)));
      SLQ_ASSIGN_OR_RETURN(counts[s], ColInt(r, 1));
    }
    return counts;
  });
}

}  // namespace slq
