// Opens the job store named by one configuration string (a server flag):
//   "/var/lib/slq/jobs.db" or "sqlite:///var/lib/slq/jobs.db"  -> SqliteJobStore
//   "postgres://user@host:5432/slq" / "postgresql://..."       -> PostgresJobStore (URI)
//   "postgres:host=db dbname=slq user=slq"                      -> PostgresJobStore (conninfo)
//
//   SLQ_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, OpenJobStore(flags.job_store));
#ifndef SLQ_SERVER_JOBS_OPEN_JOB_STORE_H_
#define SLQ_SERVER_JOBS_OPEN_JOB_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/jobs/clock.h"
#include "server/jobs/job_store.h"

namespace slq {

struct OpenJobStoreOptions {
  int postgres_pool_size = 8;
  Clock* clock = nullptr;  // not owned; nullptr: the real clock
};

// InvalidArgument for an empty spec; otherwise the backend's Open() errors.
[[nodiscard]] absl::StatusOr<std::unique_ptr<JobStore>> OpenJobStore(const std::string& spec,
                                                                     const OpenJobStoreOptions& options = {});

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_OPEN_JOB_STORE_H_
