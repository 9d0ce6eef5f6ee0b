// Row conversions, the schema migrations, the integrity check and small helpers of SqlJobStore.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/jobs/sql_job_store.h"
#include "spdlog/spdlog.h"

namespace slq {

const char kJobColumns[] =
    "id, state, stage, progress, model_uri, target, formats, group_size, calibration_data, "
    "eval_data, idempotency_key, request_hash, error, artifact_id, attempts, created_us, "
    "updated_us, options";
const char kTaskColumns[] =
    "id, job_id, kind, payload, state, lease_owner, lease_expiry_us, attempts, max_attempts, "
    "result, error, created_us, updated_us";
const char kArtifactColumns[] = "id, job_id, path, size_bytes, certificate, created_us";

namespace {

// Version N is migration index N-1. Never edit a released entry: append a new one.
// The SQL is valid for both SQLite (>= 3.35) and PostgreSQL (>= 12).
const std::vector<std::vector<std::string>>& Migrations() {
  static const auto* m = new std::vector<std::vector<std::string>>{
      {
          "CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, stage TEXT NOT NULL, "
          "progress DOUBLE PRECISION NOT NULL, model_uri TEXT NOT NULL, target TEXT NOT NULL, "
          "formats TEXT NOT NULL, group_size INTEGER NOT NULL, calibration_data TEXT NOT NULL, "
          "eval_data TEXT NOT NULL, idempotency_key TEXT UNIQUE, request_hash TEXT NOT NULL, "
          "error TEXT NOT NULL, artifact_id TEXT NOT NULL, attempts INTEGER NOT NULL, "
          "event_seq BIGINT NOT NULL DEFAULT 0, created_us BIGINT NOT NULL, "
          "updated_us BIGINT NOT NULL)",
          "CREATE INDEX jobs_by_created ON jobs (created_us, id)",
          "CREATE INDEX jobs_by_state ON jobs (state, created_us, id)",
          "CREATE TABLE tasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs (id), "
          "ord INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL, "
          "lease_owner TEXT NOT NULL, lease_expiry_us BIGINT NOT NULL, attempts INTEGER NOT NULL, "
          "max_attempts INTEGER NOT NULL, result TEXT NOT NULL, error TEXT NOT NULL, "
          "created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL)",
          "CREATE INDEX tasks_by_state ON tasks (state, created_us, ord)",
          "CREATE INDEX tasks_by_job ON tasks (job_id)",
          "CREATE TABLE job_events (job_id TEXT NOT NULL REFERENCES jobs (id), seq BIGINT NOT NULL, "
          "time_us BIGINT NOT NULL, stage TEXT NOT NULL, progress DOUBLE PRECISION NOT NULL, "
          "message TEXT NOT NULL, PRIMARY KEY (job_id, seq))",
          "CREATE TABLE artifacts (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, path TEXT NOT NULL, "
          "size_bytes BIGINT NOT NULL, certificate TEXT NOT NULL, created_us BIGINT NOT NULL)",
          "CREATE INDEX artifacts_by_job ON artifacts (job_id)",
          "CREATE TABLE workers (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, "
          "last_heartbeat_us BIGINT NOT NULL)",
      },
      {
          // v2: the job's quantization options (JobRequest::options_json).
          "ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT ''",
      }};
  return *m;
}

}  // namespace

void SqlBackoff(int attempt) { std::this_thread::sleep_for(std::chrono::milliseconds(5 << attempt)); }

SqlValue TimeValue(absl::Time t) {
  if (t == absl::InfinitePast()) return int64_t{0};
  return absl::ToUnixMicros(t);
}

absl::Time TimeFromUs(int64_t us) { return us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us); }

absl::Status SqlJobStore::Migrate() {
  {
    SqlPool::Handle conn = pool_->Acquire();
    SLQ_RETURN_IF_ERROR(conn->Query("CREATE TABLE IF NOT EXISTS schema_migrations (version "
                                    "INTEGER PRIMARY KEY, applied_us BIGINT NOT NULL)",
                                    {})
                            .status());
  }
  const auto& migrations = Migrations();
  for (size_t i = 0; i < migrations.size(); ++i) {
    const int64_t version = static_cast<int64_t>(i) + 1;
    auto applied = InTx<bool>([&](SqlTx& tx) -> absl::StatusOr<bool> {
      // Claim the version first: a concurrent migrator blocks here (or conflicts), so
      // exactly one applies each migration.
      SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query("INSERT INTO schema_migrations (version, "
                                               "applied_us) VALUES ($1, $2) ON CONFLICT "
                                               "DO NOTHING RETURNING version",
                                               {version, NowUs()}));
      if (rows.empty()) return false;
      for (const std::string& stmt : migrations[i]) {
        SLQ_RETURN_IF_ERROR(tx.Query(stmt, {}).status());
      }
      return true;
    });
    if (!applied.ok()) {
      return absl::Status(applied.status().code(),
                          absl::StrCat("schema migration ", version, " failed: ", applied.status().message()));
    }
    if (*applied) spdlog::info("jobs: applied schema migration {}", version);
  }
  return absl::OkStatus();
}

absl::StatusOr<Job> JobFromRow(const SqlRow& r) {
  Job j;
  j.id = ColStr(r, 0);
  SLQ_ASSIGN_OR_RETURN(j.state, ParseJobState(ColStr(r, 1)));
  SLQ_ASSIGN_OR_RETURN(j.stage, ParseJobStage(ColStr(r, 2)));
  SLQ_ASSIGN_OR_RETURN(j.progress, ColDouble(r, 3));
  j.request.model_uri = ColStr(r, 4);
  j.request.target = ColStr(r, 5);
  j.request.formats = ColStr(r, 6);
  SLQ_ASSIGN_OR_RETURN(int64_t group, ColInt(r, 7));
  j.request.group_size = static_cast<int32_t>(group);
  j.request.calibration_data = ColStr(r, 8);
  j.request.eval_data = ColStr(r, 9);
  j.request.idempotency_key = ColStr(r, 10);
  j.request_hash = ColStr(r, 11);
  j.error = ColStr(r, 12);
  j.artifact_id = ColStr(r, 13);
  SLQ_ASSIGN_OR_RETURN(int64_t attempts, ColInt(r, 14));
  j.attempts = static_cast<int32_t>(attempts);
  SLQ_ASSIGN_OR_RETURN(int64_t created, ColInt(r, 15));
  SLQ_ASSIGN_OR_RETURN(int64_t updated, ColInt(r, 16));
  j.created = TimeFromUs(created);
  j.updated = TimeFromUs(updated);
  j.request.options_json = ColStr(r, 17);
  return j;
}

absl::StatusOr<Task> TaskFromRow(const SqlRow& r) {
  Task t;
  t.id = ColStr(r, 0);
  t.job_id = ColStr(r, 1);
  t.kind = ColStr(r, 2);
  t.payload_json = ColStr(r, 3);
  SLQ_ASSIGN_OR_RETURN(t.state, ParseTaskState(ColStr(r, 4)));
  t.lease_owner = ColStr(r, 5);
  SLQ_ASSIGN_OR_RETURN(int64_t expiry, ColInt(r, 6));
  t.lease_expiry = TimeFromUs(expiry);
  SLQ_ASSIGN_OR_RETURN(int64_t attempts, ColInt(r, 7));
  SLQ_ASSIGN_OR_RETURN(int64_t max_attempts, ColInt(r, 8));
  t.attempts = static_cast<int32_t>(attempts);
  t.max_attempts = static_cast<int32_t>(max_attempts);
  t.result_json = ColStr(r, 9);
  t.error = ColStr(r, 10);
  SLQ_ASSIGN_OR_RETURN(int64_t created, ColInt(r, 11));
  SLQ_ASSIGN_OR_RETURN(int64_t updated, ColInt(r, 12));
  t.created = TimeFromUs(created);
  t.updated = TimeFromUs(updated);
  return t;
}

absl::StatusOr<Artifact> ArtifactFromRow(const SqlRow& r) {
  Artifact a;
  a.id = ColStr(r, 0);
  a.job_id = ColStr(r, 1);
  a.path = ColStr(r, 2);
  SLQ_ASSIGN_OR_RETURN(a.size, ColInt(r, 3));
  a.certificate_json = ColStr(r, 4);
  SLQ_ASSIGN_OR_RETURN(int64_t created, ColInt(r, 5));
  a.created = TimeFromUs(created);
  return a;
}

absl::Status SqlJobStore::IntegrityCheck() {
  struct Check {
    const char* what;
    const char* sql;
  };
  static constexpr Check kChecks[] = {
      {"LEASED task without owner or expiry",
       "SELECT id FROM tasks WHERE state = 'LEASED' AND (lease_owner = '' OR lease_expiry_us = "
       "0)"},
      {"SUCCEEDED job without an artifact row",
       "SELECT j.id FROM jobs j WHERE j.state = 'SUCCEEDED' AND NOT EXISTS (SELECT 1 FROM "
       "artifacts a WHERE a.id = j.artifact_id)"},
      {"job whose events have gaps", "SELECT job_id FROM job_events GROUP BY job_id HAVING MAX(seq) <> COUNT(*)"},
      {"task of a missing job",
       "SELECT t.id FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = t.job_id)"},
      {"PENDING/LEASED task of an ended job",
       "SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.state IN ('PENDING', "
       "'LEASED') AND j.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"},
  };
  std::vector<std::string> problems;
  SqlPool::Handle conn = pool_->Acquire();
  for (const Check& c : kChecks) {
    SLQ_ASSIGN_OR_RETURN(auto rows, conn->Query(c.sql, {}));
    for (const SqlRow& r : rows) problems.push_back(absl::StrCat(c.what, ": ", ColStr(r, 0)));
  }
  SLQ_RETURN_IF_ERROR(EngineCheck(*conn, &problems));
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("job store integrity check found ", problems.size(),
                                          " problem(s): ", absl::StrJoin(problems, "; ")));
}

}  // namespace slq
