#include "server/jobs/open_job_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/jobs/postgres_job_store.h"
#include "server/jobs/sqlite_job_store.h"

namespace slq {

absl::StatusOr<std::unique_ptr<JobStore>> OpenJobStore(const std::string& spec, const OpenJobStoreOptions& options) {
  if (spec.empty()) {
    return absl::InvalidArgumentError("job store spec is empty; give a SQLite file path or a postgres:// URI");
  }
  const PostgresOptions pg{.pool_size = options.postgres_pool_size, .clock = options.clock};
  if (absl::StartsWith(spec, "postgres://") || absl::StartsWith(spec, "postgresql://")) {
    SLQ_ASSIGN_OR_RETURN(auto s, PostgresJobStore::Open(spec, pg));
    return std::unique_ptr<JobStore>(std::move(s));
  }
  if (absl::StartsWith(spec, "postgres:")) {
    SLQ_ASSIGN_OR_RETURN(auto s, PostgresJobStore::Open(spec.substr(9), pg));
    return std::unique_ptr<JobStore>(std::move(s));
  }
  const bool sqlite_uri = absl::StartsWith(spec, "sqlite://");
  const std::string path = sqlite_uri ? spec.substr(9) : spec;
  if (path.empty() || (!sqlite_uri && absl::StrContains(spec, "://"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("job store spec '", spec, "' is neither a SQLite path nor a postgres:// URI"));
  }
  SLQ_ASSIGN_OR_RETURN(auto s, SqliteJobStore::Open(path, {.clock = options.clock}));
  return std::unique_ptr<JobStore>(std::move(s));
}

}  // namespace slq
