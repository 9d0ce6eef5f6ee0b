// JobRepository: the durable record of jobs and their progress events (one of the four parts of
// JobStore, see job_store.h). Consumers that only read or update jobs (the JobService's
// GetJob/ListJobs/WatchJob) can take this narrow interface.
//
//   SLQ_ASSIGN_OR_RETURN(CreateJobResult r, jobs->CreateJob(request));   // durable on return
//   SLQ_RETURN_IF_ERROR(jobs->AppendEvent(r.job.id, JobStage::kFetch, 0.0, "fetching").status());
//
// Thread-safe; every mutating method has committed its transaction before it returns OK.
// Errors: NotFound (unknown id), InvalidArgument (bad request data), FailedPrecondition
// (state-machine violation, idempotency key reused with other parameters), Unavailable/Internal
// (database trouble).
#ifndef SLQ_SERVER_JOBS_JOB_REPOSITORY_H_
#define SLQ_SERVER_JOBS_JOB_REPOSITORY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/jobs/job_types.h"

namespace slq {

struct ListJobsOptions {
  std::optional<JobState> state;  // filter; unset: all states
  int32_t page_size = 50;         // 1..1000 (0 means 50)
  std::string page_token;         // from the previous page; empty: first page
};

struct JobPage {
  std::vector<Job> jobs;        // oldest first
  std::string next_page_token;  // empty on the last page
};

struct CreateJobResult {
  Job job;
  bool created = true;  // false: an existing job was returned for the idempotency key
};

class JobRepository {
 public:
  virtual ~JobRepository() = default;

  // Validates the request (model_uri and target non-empty, group_size > 0) and inserts a
  // QUEUED job. With an idempotency key already in use: the same request returns the
  // existing job (created=false); a different request is FailedPrecondition.
  [[nodiscard]] virtual absl::StatusOr<CreateJobResult> CreateJob(const JobRequest& req) = 0;
  [[nodiscard]] virtual absl::StatusOr<Job> GetJob(const std::string& job_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<JobPage> ListJobs(const ListJobsOptions& opts) = 0;
  // Applies the set fields. State changes are validated (ValidateJobTransition); SUCCEEDED
  // needs an artifact id; progress must be in [0, 1]. Moving to FAILED cancels the job's
  // PENDING/LEASED tasks (as CancelJob does). Returns the updated job.
  [[nodiscard]] virtual absl::StatusOr<Job> UpdateJob(const std::string& job_id, const JobUpdate& update) = 0;
  // Marks the job CANCELLED and its PENDING/LEASED tasks CANCELLED (their holders learn it
  // at the next Heartbeat/CompleteTask). Cancelling a cancelled job is OK; cancelling a
  // SUCCEEDED/FAILED one is FailedPrecondition.
  [[nodiscard]] virtual absl::StatusOr<Job> CancelJob(const std::string& job_id) = 0;
  // Number of jobs per state (every state present, zero if none): one query for the gauges.
  [[nodiscard]] virtual absl::StatusOr<std::map<JobState, int64_t>> CountJobs() = 0;

  // ---- Events (WatchJob resumes with after_seq = last seen seq) ----
  [[nodiscard]] virtual absl::StatusOr<JobEvent> AppendEvent(const std::string& job_id, JobStage stage, double progress,
                                                             const std::string& message) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<JobEvent>> ListEvents(const std::string& job_id, int64_t after_seq,
                                                                         int32_t limit = 1000) = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_JOB_REPOSITORY_H_
