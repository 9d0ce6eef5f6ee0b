// Domain types of the durable job layer: jobs, tasks, events, artifacts, workers.
//
// These are plain C++ values (no protobuf); server/api converts them to wire messages.
// Timestamps are absl::Time; stores keep them as int64 microseconds since the Unix epoch.
//
// Job lifecycle:  QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED
//                 QUEUED -> CANCELLED | FAILED;  RUNNING -> QUEUED (re-queued after a crash)
// Terminal states (SUCCEEDED, FAILED, CANCELLED) are never left.
// Task lifecycle: PENDING -> LEASED -> DONE | FAILED | PENDING (retry / expired lease)
//                 PENDING | LEASED -> CANCELLED (job cancelled)
#ifndef SLQ_SERVER_JOBS_JOB_TYPES_H_
#define SLQ_SERVER_JOBS_JOB_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace slq {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
enum class JobStage { kFetch, kProfile, kSearch, kPack, kVerify, kPublish };
enum class TaskState { kPending, kLeased, kDone, kFailed, kCancelled };
enum class WorkerKind { kCpu, kGpu };

// Upper-case names ("QUEUED", ...) for job/task states, lower-case for stages and kinds
// ("fetch", "gpu"). Names are static strings (never destroyed). Parse* return InvalidArgument naming the bad value and
// the allowed ones.
const std::string& JobStateName(JobState s);
const std::string& JobStageName(JobStage s);
const std::string& TaskStateName(TaskState s);
const std::string& WorkerKindName(WorkerKind k);
absl::StatusOr<JobState> ParseJobState(absl::string_view s);
absl::StatusOr<JobStage> ParseJobStage(absl::string_view s);
absl::StatusOr<TaskState> ParseTaskState(absl::string_view s);
absl::StatusOr<WorkerKind> ParseWorkerKind(absl::string_view s);

bool IsTerminal(JobState s);
bool IsTerminal(TaskState s);

// OK if a job may move from `from` to `to`. Staying in the same live state is allowed
// (progress-only updates); a terminal job accepts no update at all. FailedPrecondition
// otherwise, naming both states.
absl::Status ValidateJobTransition(JobState from, JobState to);

// What a client asks for. Hashed (RequestHash) to detect a retried submit whose
// idempotency key matches but whose parameters differ.
struct JobRequest {
  std::string model_uri;  // file://, https:// or hf:// URI
  std::string target;     // e.g. "ear>=0.99"
  std::string formats;    // e.g. "4-5-6-7-8"
  int32_t group_size = 128;
  std::string calibration_data;  // data reference (path or URI)
  std::string eval_data;
  // The quantization options beyond the fields above (quant::PipelineOptions as JSON, written
  // by server/api). Opaque to the store; part of the request hash.
  std::string options_json;
  std::string idempotency_key;  // empty: none
};

// sha256 hex of the canonical encoding of every field except idempotency_key.
std::string RequestHash(const JobRequest& r);

struct Job {
  std::string id;  // "job-" + 16 lower-case hex digits
  JobState state = JobState::kQueued;
  JobStage stage = JobStage::kFetch;
  double progress = 0.0;  // 0..1 within the whole job
  JobRequest request;
  std::string request_hash;
  std::string error;        // set when FAILED
  std::string artifact_id;  // set when SUCCEEDED
  int32_t attempts = 0;     // times the job entered RUNNING
  absl::Time created;
  absl::Time updated;
};

// A partial update; unset fields are left unchanged.
struct JobUpdate {
  std::optional<JobState> state;
  std::optional<JobStage> stage;
  std::optional<double> progress;
  std::optional<std::string> error;
  std::optional<std::string> artifact_id;
};

struct TaskSpec {
  std::string kind;          // "fetch", "profile_layer", "search", "pack", "verify", "publish"
  std::string payload_json;  // opaque to the store
  int32_t max_attempts = 3;
};

struct Task {
  std::string id;  // "task-" + 16 hex
  std::string job_id;
  std::string kind;
  std::string payload_json;
  TaskState state = TaskState::kPending;
  std::string lease_owner;  // worker id while LEASED
  absl::Time lease_expiry = absl::InfinitePast();
  int32_t attempts = 0;  // leases handed out so far
  int32_t max_attempts = 3;
  std::string result_json;
  std::string error;
  absl::Time created;
  absl::Time updated;
};

// How a worker finishes a task. ok=false with retryable=true puts it back to PENDING
// while attempts remain.
struct TaskOutcome {
  bool ok = true;
  std::string result_json;
  std::string error;
  bool retryable = true;
};

struct JobEvent {
  std::string job_id;
  int64_t seq = 0;  // 1, 2, 3 ... per job, gap-free
  absl::Time time;
  JobStage stage = JobStage::kFetch;
  double progress = 0.0;
  std::string message;
};

struct Artifact {
  std::string id;  // sha256 hex of its manifest.json
  std::string job_id;
  std::string path;  // where the artifact store keeps it
  int64_t size = 0;  // bytes, all files
  std::string certificate_json;
  absl::Time created;
};

struct Worker {
  std::string id;
  std::string name;
  WorkerKind kind = WorkerKind::kCpu;
  absl::Time last_heartbeat;
};

// "job-"/"task-" + 16 random hex digits (from a CSPRNG, OpenSSL RAND_bytes).
std::string NewJobId();
std::string NewTaskId();
std::string RandomHex(int bytes);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_JOB_TYPES_H_
