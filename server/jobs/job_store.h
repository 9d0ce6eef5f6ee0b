// JobStore: the durable record of jobs, their tasks, progress events, artifacts and workers.
// It is the aggregate of four narrow interfaces, each in its own header, which consumers that
// need only one part take instead:
//
//   JobRepository  (job_repository.h)   jobs (idempotent create, paging, validated updates,
//                                       cancel, counts) and their gap-free event log
//   TaskQueue      (task_queue.h)       tasks: add (one fan-out per kind), lease, heartbeat,
//                                       complete, expire, counts
//   ArtifactIndex  (artifact_index.h)   rows of published artifacts
//   WorkerRegistry (worker_registry.h)  registered workers
//
//   SLQ_ASSIGN_OR_RETURN(auto store, SqliteJobStore::Open("/var/lib/slq/jobs.db"));
//   SLQ_ASSIGN_OR_RETURN(CreateJobResult r, store->CreateJob(request));   // durable on return
//   SLQ_RETURN_IF_ERROR(store->AddTasks(r.job.id, {{"fetch", "{}"}}).status());
//   TaskQueue* queue = store.get();                                      // a narrow consumer
//
// Implementations: SqliteJobStore (one file, WAL) and PostgresJobStore (scale-out; several
// servers may share one database); both share the schema and SQL in SqlJobStore, one .cc per
// part. All methods are thread-safe. Every mutating method has committed its transaction
// before it returns OK.
#ifndef SLQ_SERVER_JOBS_JOB_STORE_H_
#define SLQ_SERVER_JOBS_JOB_STORE_H_

#include "absl/status/status.h"
#include "server/jobs/artifact_index.h"
#include "server/jobs/job_repository.h"
#include "server/jobs/task_queue.h"
#include "server/jobs/worker_registry.h"

namespace slq {

class JobStore : public JobRepository, public TaskQueue, public ArtifactIndex, public WorkerRegistry {
 public:
  ~JobStore() override = default;

  // Consistency checks across the four parts: every LEASED task has an owner and an expiry,
  // every SUCCEEDED job has an artifact row, events are gap-free, no task without its job, no
  // PENDING/LEASED task of an ended job, plus the engine's own check (SQLite PRAGMA
  // integrity_check). DataLoss listing every problem found.
  [[nodiscard]] virtual absl::Status IntegrityCheck() = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_JOB_STORE_H_
