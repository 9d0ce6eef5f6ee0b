// TaskExecutor: runs one leased task (fetch, profile, search, pack) with the quantization
// engine and returns its JSON result. Payload and result formats: server/scheduler/scheduler.h.
//
//   TaskExecutor exec({.resolve_model = ..., .resolve_data = ...});
//   absl::StatusOr<std::string> result = exec.Run("profile", payload_json, progress);
//
// Stateless between tasks except for the model/data resolution caches of the resolvers, so
// any worker can run any task of any job (a retried task may land on another worker).
// Thread-safe: concurrent Run calls are independent.
#ifndef SLQ_SERVER_WORKER_TASK_EXECUTOR_H_
#define SLQ_SERVER_WORKER_TASK_EXECUTOR_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "server/jobs/job_types.h"

namespace slq {

struct TaskExecutorOptions {
  // model URI (file://, hf://, https://, or a local path) -> local model directory/file.
  std::function<absl::StatusOr<std::string>(const std::string& uri)> resolve_model;
  // data reference (file:// URI, a path, or a bundled name; "" = default for the model) -> path.
  std::function<absl::StatusOr<std::string>(const std::string& ref, const std::string& model_path)>
      resolve_data;
  std::string profile_cache_dir;  // shared measured-profile cache; "" = none
};

// (stage, fraction within the task, message)
using TaskProgressFn = std::function<void(JobStage stage, double fraction, const std::string& message)>;

class TaskExecutor {
 public:
  explicit TaskExecutor(TaskExecutorOptions options) : options_(std::move(options)) {}
  // InvalidArgument for an unknown kind or a malformed payload; other errors from the engine.
  [[nodiscard]] absl::StatusOr<std::string> Run(const std::string& kind, const std::string& payload_json,
                                                const TaskProgressFn& progress) const;

 private:
  absl::StatusOr<std::string> Fetch(const std::string& payload, const TaskProgressFn& progress) const;
  absl::StatusOr<std::string> Profile(const std::string& payload, const TaskProgressFn& progress) const;
  absl::StatusOr<std::string> Search(const std::string& payload, const TaskProgressFn& progress) const;
  absl::StatusOr<std::string> Pack(const std::string& payload, const TaskProgressFn& progress) const;

  TaskExecutorOptions options_;
};

}  // namespace slq

#endif  // SLQ_SERVER_WORKER_TASK_EXECUTOR_H_
