// PostgresJobStore: the scale-out JobStore over libpq (same schema as SQLite).
//
//   SLQ_ASSIGN_OR_RETURN(auto store, PostgresJobStore::Open(
//       "host=db port=5432 dbname=slq user=slq", {.pool_size = 8}));
//
// Leases use SELECT ... FOR UPDATE SKIP LOCKED, so any number of job-service replicas can
// lease concurrently without handing one task out twice. Thread-safe: each call borrows one
// of `pool_size` connections (blocking while all are busy); broken connections are reset.
#ifndef SLQ_SERVER_JOBS_POSTGRES_JOB_STORE_H_
#define SLQ_SERVER_JOBS_POSTGRES_JOB_STORE_H_

#include <memory>
#include <string>

#include "server/jobs/sql_job_store.h"

namespace slq {

struct PostgresOptions {
  int pool_size = 4;       // 1..64 connections
  Clock* clock = nullptr;  // not owned; nullptr: the real clock
};

class PostgresJobStore final : public SqlJobStore {
 public:
  // Connects (libpq conninfo string or URI) and applies schema migrations. Unavailable if the
  // server cannot be reached.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostgresJobStore>> Open(const std::string& conninfo,
                                                                              const PostgresOptions& options = {});

 protected:
  absl::string_view ForUpdate() const override { return " FOR UPDATE"; }
  absl::string_view ForUpdateSkipLocked() const override { return " FOR UPDATE SKIP LOCKED"; }
  absl::Status EngineCheck(SqlConn& conn, std::vector<std::string>* problems) override;

 private:
  using SqlJobStore::SqlJobStore;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_POSTGRES_JOB_STORE_H_
