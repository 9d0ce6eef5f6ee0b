// TaskExecutor: runs one leased task (fetch, profile, search, pack) with the quantization
// engine and returns its typed result (slq.v1.TaskPayload -> slq.v1.TaskResult,
// proto/slq/v1/worker_service.proto).
//
//   TaskExecutor exec({.resolve_model = ..., .resolve_data = ...});
//   absl::StatusOr<slq::v1::TaskResult> result = exec.Run(task.payload(), progress);
//
// Any worker can run any task of any job (a retried task may land on another worker): the only
// state kept between tasks is a cache. The last QuantizationSession (model loaded, base logits
// computed, on the CPU or the GPU) is kept and reused by the next profile / search / pack task
// whose options need the same model, text and quantizer (QuantizationSession::ReuseKey: the
// profile tasks of one job, one per layer, and jobs that differ only in target or formats), so
// a large model is loaded and its base logits computed once per worker, not once per layer. Evaluations run
// where options.eval_backend says (eval_device.h).
// Thread-safe: concurrent Run calls are independent (a cached session is lent to one at a time).
// A cached session keeps its model in memory (and on the GPU) until evicted or the executor
// is destroyed.
#ifndef SLQ_SERVER_WORKER_TASK_EXECUTOR_H_
#define SLQ_SERVER_WORKER_TASK_EXECUTOR_H_

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/job_types.h"
#include "server/quant/pipeline.h"
#include "slq/v1/worker_service.pb.h"

namespace slq {

struct TaskExecutorOptions {
  // model URI (file://, hf://, https://, or a local path) -> local model directory/file.
  std::function<absl::StatusOr<std::string>(const std::string& uri)> resolve_model;
  // data reference (file:// URI, a path, or a bundled name; "" = default for the model) -> path.
  std::function<absl::StatusOr<std::string>(const std::string& ref, const std::string& model_path)> resolve_data;
  std::string profile_cache_dir;           // shared measured-profile cache; "" = none
  quant::EvalBackendFactory eval_backend;  // null: evaluate on the CPU
  // Sessions kept for later tasks (most recently used first out last); two let a worker
  // alternate between two jobs' models without reloading. 0: none.
  int cached_sessions = 2;
};

// (stage, fraction within the task, message)
using TaskProgressFn = std::function<void(JobStage stage, double fraction, const std::string& message)>;

class TaskExecutor {
 public:
  explicit TaskExecutor(TaskExecutorOptions options) : options_(std::move(options)) {}
  // InvalidArgument for an empty or malformed payload; other errors from the engine.
  [[nodiscard]] absl::StatusOr<slq::v1::TaskResult> Run(const slq::v1::TaskPayload& payload,
                                                        const TaskProgressFn& progress) const;
  // The engine's options for a task's QuantOptions (the fetch task's resolved paths included).
  static quant::PipelineOptions PipelineOptionsOf(const slq::v1::QuantOptions& options);

 private:
  absl::StatusOr<slq::v1::FetchResult> Fetch(const slq::v1::FetchTask& task, const TaskProgressFn& progress) const;
  absl::StatusOr<slq::v1::ProfileResult> Profile(const slq::v1::ProfileTask& task,
                                                 const TaskProgressFn& progress) const;
  absl::StatusOr<slq::v1::SearchResult> Search(const slq::v1::SearchTask& task, const TaskProgressFn& progress) const;
  absl::StatusOr<slq::v1::PackResult> Pack(const slq::v1::PackTask& task, const TaskProgressFn& progress) const;
  // A session for `opts` (output_dir aside): the cached one when it matches, else a new one.
  absl::StatusOr<std::unique_ptr<quant::QuantizationSession>> Session(const quant::PipelineOptions& opts,
                                                                      const quant::ProgressFn& progress) const;
  // Keeps `s` for later tasks (dropping the least recently used beyond cached_sessions).
  void Keep(std::unique_ptr<quant::QuantizationSession> s) const;

  TaskExecutorOptions options_;
  mutable absl::Mutex mu_;
  // (ReuseKey, session), least recently used first.
  mutable std::list<std::pair<std::string, std::unique_ptr<quant::QuantizationSession>>> cached_ ABSL_GUARDED_BY(mu_);
};

}  // namespace slq

#endif  // SLQ_SERVER_WORKER_TASK_EXECUTOR_H_
