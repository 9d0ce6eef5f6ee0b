#include "server/jobs/job_types.h"

#include <openssl/rand.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/sha256.h"

namespace slq {
namespace {

using Names = std::vector<std::string>;
const Names& JobStates() {
  static const auto* n = new Names{"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"};
  return *n;
}
const Names& Stages() {
  static const auto* n = new Names{"fetch", "profile", "search", "pack", "verify", "publish"};
  return *n;
}
const Names& TaskStates() {
  static const auto* n = new Names{"PENDING", "LEASED", "DONE", "FAILED", "CANCELLED"};
  return *n;
}
const Names& WorkerKinds() {
  static const auto* n = new Names{"cpu", "gpu"};
  return *n;
}

template <typename E>
absl::StatusOr<E> ParseName(absl::string_view s, const Names& names, absl::string_view what) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == s) return static_cast<E>(i);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " '", s, "'; allowed: ", absl::StrJoin(names, ", ")));
}

}  // namespace

const std::string& JobStateName(JobState s) { return JobStates()[static_cast<size_t>(s)]; }
const std::string& JobStageName(JobStage s) { return Stages()[static_cast<size_t>(s)]; }
const std::string& TaskStateName(TaskState s) { return TaskStates()[static_cast<size_t>(s)]; }
const std::string& WorkerKindName(WorkerKind k) { return WorkerKinds()[static_cast<size_t>(k)]; }

absl::StatusOr<JobState> ParseJobState(absl::string_view s) { return ParseName<JobState>(s, JobStates(), "job state"); }
absl::StatusOr<JobStage> ParseJobStage(absl::string_view s) { return ParseName<JobStage>(s, Stages(), "job stage"); }
absl::StatusOr<TaskState> ParseTaskState(absl::string_view s) {
  return ParseName<TaskState>(s, TaskStates(), "task state");
}
absl::StatusOr<WorkerKind> ParseWorkerKind(absl::string_view s) {
  return ParseName<WorkerKind>(s, WorkerKinds(), "worker kind");
}

bool IsTerminal(JobState s) { return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled; }
bool IsTerminal(TaskState s) { return s == TaskState::kDone || s == TaskState::kFailed || s == TaskState::kCancelled; }

absl::Status ValidateJobTransition(JobState from, JobState to) {
  bool ok = false;
  if (!IsTerminal(from)) {
    if (from == to) {
      ok = true;
    } else if (from == JobState::kQueued) {
      ok = to == JobState::kRunning || to == JobState::kCancelled || to == JobState::kFailed;
    } else {                          // RUNNING
      ok = to != JobState::kRunning;  // any terminal state, or back to QUEUED
    }
  }
  if (ok) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("job state cannot change from ", JobStateName(from), " to ",
                                                    JobStateName(to),
                                                    IsTerminal(from) ? " (terminal states are final)" : ""));
}

std::string RequestHash(const JobRequest& r) {
  // Length-prefixed fields: no two different requests share an encoding.
  std::string enc;
  for (absl::string_view f :
       {absl::string_view(r.model_uri), absl::string_view(r.target), absl::string_view(r.formats),
        absl::string_view(r.calibration_data), absl::string_view(r.eval_data), absl::string_view(r.options_json)}) {
    absl::StrAppend(&enc, f.size(), ":", f, ";");
  }
  absl::StrAppend(&enc, "g", r.group_size);
  return Sha256Hex(enc);
}

std::string RandomHex(int bytes) {
  std::string buf(static_cast<size_t>(bytes), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), bytes) != 1) {
    // OpenSSL's CSPRNG failing is a broken environment, not bad input.
    std::abort();
  }
  return absl::BytesToHexString(buf);
}

std::string NewJobId() { return "job-" + RandomHex(8); }
std::string NewTaskId() { return "task-" + RandomHex(8); }

}  // namespace slq
