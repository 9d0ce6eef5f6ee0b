// SqlJobStore: the JobStore logic shared by SQLite and PostgreSQL, one .cc per part of the
// interface (job_store.h) over one connection pool and schema. Subclasses supply the
// connection pool and the few engine differences (row locking clauses, engine integrity
// check). The schema is created by versioned migrations recorded in `schema_migrations`.
//
// Thread-safety: all methods are thread-safe; each runs in one transaction on a pooled
// connection and is retried (up to 5 times) when the engine reports contention (Unavailable).
#ifndef SLQ_SERVER_JOBS_SQL_JOB_STORE_H_
#define SLQ_SERVER_JOBS_SQL_JOB_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/jobs/clock.h"
#include "server/jobs/job_store.h"
#include "server/jobs/sql_conn.h"

namespace slq {

class SqlJobStore : public JobStore {
 public:
  // JobRepository (sql_job_store.cc)
  absl::StatusOr<CreateJobResult> CreateJob(const JobRequest& req) override;
  absl::StatusOr<Job> GetJob(const std::string& job_id) override;
  absl::StatusOr<JobPage> ListJobs(const ListJobsOptions& opts) override;
  absl::StatusOr<Job> UpdateJob(const std::string& job_id, const JobUpdate& update) override;
  absl::StatusOr<Job> CancelJob(const std::string& job_id) override;
  absl::StatusOr<std::map<JobState, int64_t>> CountJobs() override;
  absl::StatusOr<JobEvent> AppendEvent(const std::string& job_id, JobStage stage, double progress,
                                       const std::string& message) override;
  absl::StatusOr<std::vector<JobEvent>> ListEvents(const std::string& job_id, int64_t after_seq,
                                                   int32_t limit) override;
  // TaskQueue (sql_task_queue.cc)
  absl::StatusOr<std::vector<Task>> AddTasks(const std::string& job_id, const std::vector<TaskSpec>& specs) override;
  absl::StatusOr<Task> GetTask(const std::string& task_id) override;
  absl::StatusOr<std::vector<Task>> ListTasks(const std::string& job_id) override;
  absl::StatusOr<std::optional<Task>> LeaseTask(const std::string& worker_id, const std::vector<std::string>& kinds,
                                                absl::Duration lease) override;
  absl::StatusOr<Task> Heartbeat(const std::string& task_id, const std::string& worker_id,
                                 absl::Duration lease) override;
  absl::StatusOr<Task> CompleteTask(const std::string& task_id, const std::string& worker_id,
                                    const TaskOutcome& outcome) override;
  absl::StatusOr<ExpireResult> ExpireLeases(absl::Time now) override;
  absl::StatusOr<std::map<TaskState, int64_t>> CountTasks() override;
  // ArtifactIndex (sql_artifact_index.cc)
  absl::Status PutArtifact(const Artifact& a) override;
  absl::StatusOr<Artifact> GetArtifact(const std::string& id) override;
  absl::StatusOr<std::vector<Artifact>> ListArtifacts(const std::string& job_id) override;
  // WorkerRegistry (sql_worker_registry.cc)
  absl::Status RegisterWorker(const Worker& w) override;
  absl::StatusOr<std::vector<Worker>> ListWorkers() override;
  // Across the parts (sql_rows.cc, with the schema)
  absl::Status IntegrityCheck() override;

 protected:
  // `clock` is not owned (nullptr: the real clock).
  SqlJobStore(std::unique_ptr<SqlPool> pool, Clock* clock)
      : pool_(std::move(pool)), clock_(clock != nullptr ? clock : RealClock()) {}

  // Applies the migrations not yet recorded. Call once from the subclass's Open().
  [[nodiscard]] absl::Status Migrate();

  // " FOR UPDATE" where the engine has row locks (PostgreSQL); "" for SQLite, whose
  // write transactions (BEGIN IMMEDIATE) already exclude each other.
  virtual absl::string_view ForUpdate() const = 0;
  // " FOR UPDATE SKIP LOCKED" for PostgreSQL; "" for SQLite.
  virtual absl::string_view ForUpdateSkipLocked() const = 0;
  // Engine-specific consistency check; appends problems to `problems`.
  [[nodiscard]] virtual absl::Status EngineCheck(SqlConn& conn, std::vector<std::string>* problems) = 0;

  // Runs fn(SqlTx&) -> StatusOr<T> in a transaction and commits; retries on Unavailable.
  template <typename T, typename Fn>
  absl::StatusOr<T> InTx(Fn&& fn);

  int64_t NowUs() const { return absl::ToUnixMicros(clock_->Now()); }

 private:
  absl::StatusOr<Job> LockJob(SqlTx& tx, const std::string& job_id);
  absl::StatusOr<Task> LockTask(SqlTx& tx, const std::string& task_id);
  absl::StatusOr<Job> FindByIdempotencyKey(SqlTx& tx, const JobRequest& req, const std::string& hash);

  std::unique_ptr<SqlPool> pool_;
  Clock* clock_;
};

void SqlBackoff(int attempt);  // sleeps a little, growing with attempt

template <typename T, typename Fn>
absl::StatusOr<T> SqlJobStore::InTx(Fn&& fn) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<T> r = [&]() -> absl::StatusOr<T> {
      SqlPool::Handle conn = pool_->Acquire();
      SLQ_ASSIGN_OR_RETURN(auto tx, SqlTx::Begin(&*conn));
      SLQ_ASSIGN_OR_RETURN(T v, fn(*tx));
      SLQ_RETURN_IF_ERROR(tx->Commit());
      return v;
    }();
    if (r.ok() || !absl::IsUnavailable(r.status()) || attempt >= 4) return r;
    SqlBackoff(attempt);
  }
}

// Row <-> value helpers shared by the .cc files (columns in the order of kJobColumns etc.).
extern const char kJobColumns[];
extern const char kTaskColumns[];
extern const char kArtifactColumns[];
absl::StatusOr<Job> JobFromRow(const SqlRow& r);
absl::StatusOr<Task> TaskFromRow(const SqlRow& r);
absl::StatusOr<Artifact> ArtifactFromRow(const SqlRow& r);
SqlValue TimeValue(absl::Time t);   // microseconds; InfinitePast -> 0
absl::Time TimeFromUs(int64_t us);  // 0 -> InfinitePast

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_SQL_JOB_STORE_H_
