// SqliteJobStore: the embedded JobStore, one SQLite file in WAL mode.
//
//   SLQ_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store,
//                        SqliteJobStore::Open("/var/lib/slq/jobs.db"));
//
// Durability: synchronous=FULL, so a commit is on disk when a method returns. Several
// processes may share the file (BEGIN IMMEDIATE + busy timeout serialise writers); within one
// process all calls share one connection behind a mutex. Thread-safe.
#ifndef SLQ_SERVER_JOBS_SQLITE_JOB_STORE_H_
#define SLQ_SERVER_JOBS_SQLITE_JOB_STORE_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "server/jobs/sql_job_store.h"

namespace slq {

struct SqliteOptions {
  absl::Duration busy_timeout = absl::Seconds(5);
  Clock* clock = nullptr;  // not owned; nullptr: the real clock
};

class SqliteJobStore final : public SqlJobStore {
 public:
  // Opens or creates the database file and applies schema migrations.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(const std::string& path,
                                                                            const SqliteOptions& options = {});

 protected:
  absl::string_view ForUpdate() const override { return ""; }
  absl::string_view ForUpdateSkipLocked() const override { return ""; }
  absl::Status EngineCheck(SqlConn& conn, std::vector<std::string>* problems) override;

 private:
  using SqlJobStore::SqlJobStore;
};

// Opens one SQLite connection (exposed for tests of the SQL layer).
[[nodiscard]] absl::StatusOr<std::unique_ptr<SqlConn>> OpenSqliteConn(const std::string& path,
                                                                      absl::Duration busy_timeout);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_SQLITE_JOB_STORE_H_
