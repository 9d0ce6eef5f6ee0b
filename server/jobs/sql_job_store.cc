// SqlJobStore, JobRepository part: jobs and events. Tasks: sql_task_queue.cc; artifacts:
// sql_artifact_index.cc; workers: sql_worker_registry.cc; schema and IntegrityCheck: sql_rows.cc.
#include "server/jobs/sql_job_store.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

constexpr int32_t kDefaultPageSize = 50;
constexpr int32_t kMaxPageSize = 1000;

absl::Status ValidateRequest(const JobRequest& r) {
  if (r.model_uri.empty()) return absl::InvalidArgumentError("model_uri is empty");
  if (r.target.empty()) return absl::InvalidArgumentError("target is empty (e.g. \"ear>=0.99\")");
  if (r.group_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("group_size ", r.group_size, " must be positive (e.g. 64 or 128)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateProgress(double p) {
  if (p >= 0.0 && p <= 1.0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("progress ", p, " is outside [0, 1]"));
}

absl::Status JobNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("job '", id, "' not found"));
}

// Opaque page token: web-safe base64 of "created_us/id" of the last job on the page.
std::string EncodePageToken(const Job& last) {
  return absl::WebSafeBase64Escape(absl::StrCat(absl::ToUnixMicros(last.created), "/", last.id));
}

absl::Status DecodePageToken(const std::string& token, int64_t* created_us, std::string* id) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, absl::MaxSplits('/', 1));
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], created_us) || parts[1].empty()) {
    return absl::InvalidArgumentError(absl::StrCat("page_token '", token, "' is not a token returned by ListJobs"));
  }
  *id = parts[1];
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Job> SqlJobStore::LockJob(SqlTx& tx, const std::string& job_id) {
  SLQ_ASSIGN_OR_RETURN(
      auto rows, tx.Query(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = $1", ForUpdate()), {job_id}));
  if (rows.empty()) return JobNotFound(job_id);
  return JobFromRow(rows[0]);
}

absl::StatusOr<Job> SqlJobStore::FindByIdempotencyKey(SqlTx& tx, const JobRequest& req, const std::string& hash) {
  SLQ_ASSIGN_OR_RETURN(
      auto rows,
      tx.Query(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE idempotency_key = $1"), {req.idempotency_key}));
  if (rows.empty()) return absl::NotFoundError("no job with that idempotency key");
  SLQ_ASSIGN_OR_RETURN(Job existing, JobFromRow(rows[0]));
  if (existing.request_hash != hash) {
    return absl::FailedPreconditionError(
        absl::StrCat("idempotency_key '", req.idempotency_key, "' was already used by job ", existing.id,
                     " with different parameters; use a new key or resend the original request"));
  }
  return existing;
}

absl::StatusOr<CreateJobResult> SqlJobStore::CreateJob(const JobRequest& req) {
  SLQ_RETURN_IF_ERROR(ValidateRequest(req));
  const std::string hash = RequestHash(req);
  auto result = InTx<CreateJobResult>([&](SqlTx& tx) -> absl::StatusOr<CreateJobResult> {
    if (!req.idempotency_key.empty()) {
      auto existing = FindByIdempotencyKey(tx, req, hash);
      if (existing.ok()) return CreateJobResult{*existing, false};
      if (!absl::IsNotFound(existing.status())) return existing.status();
    }
    Job j;
    j.id = NewJobId();
    j.request = req;
    j.request_hash = hash;
    j.created = j.updated = absl::FromUnixMicros(NowUs());
    SqlValue key = req.idempotency_key.empty() ? SqlValue(nullptr) : SqlValue(req.idempotency_key);
    SLQ_ASSIGN_OR_RETURN(
        auto rows, tx.Query(absl::StrCat("INSERT INTO jobs (", kJobColumns,
                                         ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                                         "$14, $15, $16, $17, $18) ON CONFLICT DO NOTHING RETURNING id"),
                            {j.id, std::string(JobStateName(j.state)), std::string(JobStageName(j.stage)), j.progress,
                             req.model_uri, req.target, req.formats, int64_t{req.group_size}, req.calibration_data,
                             req.eval_data, key, hash, j.error, j.artifact_id, int64_t{0}, TimeValue(j.created),
                             TimeValue(j.updated), req.options_json}));
    if (rows.empty()) {  // lost a race for the same idempotency key
      SLQ_ASSIGN_OR_RETURN(Job existing, FindByIdempotencyKey(tx, req, hash));
      return CreateJobResult{existing, false};
    }
    return CreateJobResult{j, true};
  });
  if (result.ok() && result->created) {
    spdlog::info("job {}: created for {} (target {})", result->job.id, req.model_uri, req.target);
  }
  return result;
}

absl::StatusOr<Job> SqlJobStore::GetJob(const std::string& job_id) {
  return InTx<Job>([&](SqlTx& tx) -> absl::StatusOr<Job> {
    SLQ_ASSIGN_OR_RETURN(auto rows,
                         tx.Query(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = $1"), {job_id}));
    if (rows.empty()) return JobNotFound(job_id);
    return JobFromRow(rows[0]);
  });
}

absl::StatusOr<JobPage> SqlJobStore::ListJobs(const ListJobsOptions& opts) {
  int32_t size = opts.page_size == 0 ? kDefaultPageSize : opts.page_size;
  if (size < 0 || size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", opts.page_size, " is outside [0, ", kMaxPageSize, "]"));
  }
  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE 1 = 1");
  std::vector<SqlValue> params;
  if (opts.state.has_value()) {
    params.push_back(std::string(JobStateName(*opts.state)));
    absl::StrAppend(&sql, " AND state = $", params.size());
  }
  if (!opts.page_token.empty()) {
    int64_t created_us = 0;
    std::string id;
    SLQ_RETURN_IF_ERROR(DecodePageToken(opts.page_token, &created_us, &id));
    params.push_back(created_us);
    params.push_back(id);
    const size_t c = params.size() - 1, i = params.size();
    absl::StrAppend(&sql, " AND (created_us > $", c, " OR (created_us = $", c, " AND id > $", i, "))");
  }
  params.push_back(int64_t{size} + 1);  // one extra row tells whether another page exists
  absl::StrAppend(&sql, " ORDER BY created_us, id LIMIT $", params.size());
  return InTx<JobPage>([&](SqlTx& tx) -> absl::StatusOr<JobPage> {
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query(sql, params));
    JobPage page;
    for (size_t r = 0; r < rows.size() && r < static_cast<size_t>(size); ++r) {
      SLQ_ASSIGN_OR_RETURN(Job j, JobFromRow(rows[r]));
      page.jobs.push_back(std::move(j));
    }
    if (rows.size() > static_cast<size_t>(size)) {
      page.next_page_token = EncodePageToken(page.jobs.back());
    }
    return page;
  });
}

absl::StatusOr<Job> SqlJobStore::UpdateJob(const std::string& job_id, const JobUpdate& u) {
  if (u.progress.has_value()) SLQ_RETURN_IF_ERROR(ValidateProgress(*u.progress));
  JobState before = JobState::kQueued;
  auto result = InTx<Job>([&](SqlTx& tx) -> absl::StatusOr<Job> {
    SLQ_ASSIGN_OR_RETURN(Job j, LockJob(tx, job_id));
    before = j.state;
    const JobState to = u.state.value_or(j.state);
    SLQ_RETURN_IF_ERROR(ValidateJobTransition(j.state, to));
    if (to == JobState::kRunning && j.state != JobState::kRunning) ++j.attempts;
    j.state = to;
    if (u.stage) j.stage = *u.stage;
    if (u.progress) j.progress = *u.progress;
    if (u.error) j.error = *u.error;
    if (u.artifact_id) j.artifact_id = *u.artifact_id;
    if (to == JobState::kSucceeded) {
      SLQ_ASSIGN_OR_RETURN(auto art, tx.Query("SELECT id FROM artifacts WHERE id = $1", {j.artifact_id}));
      if (j.artifact_id.empty() || art.empty()) {
        return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " cannot be SUCCEEDED: artifact '",
                                                          j.artifact_id, "' is not published (PutArtifact first)"));
      }
      j.progress = 1.0;
    }
    j.updated = absl::FromUnixMicros(NowUs());
    SLQ_RETURN_IF_ERROR(tx.Query("UPDATE jobs SET state = $2, stage = $3, progress = $4, error = $5, "
                                 "artifact_id = $6, attempts = $7, updated_us = $8 WHERE id = $1",
                                 {job_id, std::string(JobStateName(j.state)), std::string(JobStageName(j.stage)),
                                  j.progress, j.error, j.artifact_id, int64_t{j.attempts}, TimeValue(j.updated)})
                            .status());
    if (to == JobState::kFailed && before != JobState::kFailed) {
      // Nothing may run for a failed job any more (holders learn it at their next heartbeat).
      SLQ_RETURN_IF_ERROR(tx.Query("UPDATE tasks SET state = 'CANCELLED', error = 'job failed', "
                                   "updated_us = $2 WHERE job_id = $1 AND state IN ('PENDING', "
                                   "'LEASED')",
                                   {job_id, TimeValue(j.updated)})
                              .status());
    }
    return j;
  });
  if (result.ok() && before != result->state) {
    spdlog::info("job {}: {} -> {}{}", job_id, JobStateName(before), JobStateName(result->state),
                 result->error.empty() ? "" : " (" + result->error + ")");
  }
  return result;
}

absl::StatusOr<Job> SqlJobStore::CancelJob(const std::string& job_id) {
  auto result = InTx<Job>([&](SqlTx& tx) -> absl::StatusOr<Job> {
    SLQ_ASSIGN_OR_RETURN(Job j, LockJob(tx, job_id));
    if (j.state == JobState::kCancelled) return j;
    SLQ_RETURN_IF_ERROR(ValidateJobTransition(j.state, JobState::kCancelled));
    j.state = JobState::kCancelled;
    j.updated = absl::FromUnixMicros(NowUs());
    SLQ_RETURN_IF_ERROR(tx.Query("UPDATE jobs SET state = $2, updated_us = $3 WHERE id = $1",
                                 {job_id, std::string(JobStateName(j.state)), TimeValue(j.updated)})
                            .status());
    SLQ_RETURN_IF_ERROR(tx.Query("UPDATE tasks SET state = 'CANCELLED', error = 'job cancelled', "
                                 "updated_us = $2 WHERE job_id = $1 AND state IN ('PENDING', "
                                 "'LEASED')",
                                 {job_id, TimeValue(j.updated)})
                            .status());
    return j;
  });
  if (result.ok()) spdlog::info("job {}: cancelled", job_id);
  return result;
}

absl::StatusOr<JobEvent> SqlJobStore::AppendEvent(const std::string& job_id, JobStage stage, double progress,
                                                  const std::string& message) {
  SLQ_RETURN_IF_ERROR(ValidateProgress(progress));
  return InTx<JobEvent>([&](SqlTx& tx) -> absl::StatusOr<JobEvent> {
    // The row update serialises appenders of one job, so seq is gap-free and unique.
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query("UPDATE jobs SET event_seq = event_seq + 1 WHERE "
                                             "id = $1 RETURNING event_seq",
                                             {job_id}));
    if (rows.empty()) return JobNotFound(job_id);
    JobEvent e{job_id, 0, absl::FromUnixMicros(NowUs()), stage, progress, message};
    SLQ_ASSIGN_OR_RETURN(e.seq, ColInt(rows[0], 0));
    SLQ_RETURN_IF_ERROR(
        tx.Query("INSERT INTO job_events (job_id, seq, time_us, stage, "
                 "progress, message) VALUES ($1, $2, $3, $4, $5, $6)",
                 {job_id, e.seq, TimeValue(e.time), std::string(JobStageName(stage)), progress, message})
            .status());
    return e;
  });
}

absl::StatusOr<std::vector<JobEvent>> SqlJobStore::ListEvents(const std::string& job_id, int64_t after_seq,
                                                              int32_t limit) {
  if (limit <= 0 || limit > 10000) {
    return absl::InvalidArgumentError(absl::StrCat("limit ", limit, " is outside [1, 10000]"));
  }
  return InTx<std::vector<JobEvent>>([&](SqlTx& tx) -> absl::StatusOr<std::vector<JobEvent>> {
    SLQ_ASSIGN_OR_RETURN(auto exists, tx.Query("SELECT id FROM jobs WHERE id = $1", {job_id}));
    if (exists.empty()) return JobNotFound(job_id);
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT seq, time_us, stage, progress, message "
                                             "FROM job_events WHERE job_id = $1 AND seq > $2 "
                                             "ORDER BY seq LIMIT $3",
                                             {job_id, after_seq, int64_t{limit}}));
    std::vector<JobEvent> out;
    for (const SqlRow& r : rows) {
      JobEvent e;
      e.job_id = job_id;
      SLQ_ASSIGN_OR_RETURN(e.seq, ColInt(r, 0));
      SLQ_ASSIGN_OR_RETURN(int64_t t, ColInt(r, 1));
      e.time = TimeFromUs(t);
      SLQ_ASSIGN_OR_RETURN(e.stage, ParseJobStage(ColStr(r, 2)));
      SLQ_ASSIGN_OR_RETURN(e.progress, ColDouble(r, 3));
      e.message = ColStr(r, 4);
      out.push_back(std::move(e));
    }
    return out;
  });
}

absl::StatusOr<std::map<JobState, int64_t>> SqlJobStore::CountJobs() {
  using Counts = std::map<JobState, int64_t>;
  return InTx<Counts>([&](SqlTx& tx) -> absl::StatusOr<Counts> {
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT state, COUNT(*) FROM jobs GROUP BY state", {}));
    Counts counts;
    for (JobState s :
         {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
      counts[s] = 0;
    }
    for (const SqlRow& r : rows) {
      SLQ_ASSIGN_OR_RETURN(JobState s, ParseJobState(ColStr(r, 0)));
      SLQ_ASSIGN_OR_RETURN(counts[s], ColInt(r, 1));
    }
    return counts;
  });
}

}  // namespace slq
