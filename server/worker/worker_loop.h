// WorkerLoop: registers with the WorkerService, leases tasks, runs them with a TaskExecutor,
// heartbeats while they run and reports the outcome. Used by `slq-worker` (over the network)
// and by slq-server's in-process worker (over an in-process channel): the same code path.
//
//   WorkerLoop loop(channel, {.name = "gpu0", .token = token}, &executor);
//   std::thread t([&] { loop.Run(); });  ...  loop.Stop(); t.join();
//
// A lost lease (the heartbeat says FAILED_PRECONDITION) or a cancelled job abandons the
// task's result: the task was or will be handed to someone else, so nothing is reported. A
// failed task is completed with its status code (TaskError.code) and message; the server decides
// from the code whether to retry it.
// Thread safety: Run() on one thread; Stop() from any.
#ifndef SLQ_SERVER_WORKER_WORKER_LOOP_H_
#define SLQ_SERVER_WORKER_WORKER_LOOP_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "server/worker/task_executor.h"
#include "slq/v1/worker_service.grpc.pb.h"

namespace slq {

struct WorkerOptions {
  std::string name = "worker";
  slq::v1::WorkerDevice device = slq::v1::WORKER_DEVICE_CPU;
  std::string device_name;
  std::string token;               // bearer token; empty = none
  std::vector<std::string> kinds;  // task kinds to accept; empty = all
  int lease_wait_seconds = 5;      // long-poll of LeaseTask
  int max_tasks = 0;               // stop after this many tasks (tests); 0 = unlimited
};

// Runs one task's payload (TaskExecutor::Run, or a stand-in in tests).
using TaskRunFn =
    std::function<absl::StatusOr<slq::v1::TaskResult>(const slq::v1::TaskPayload&, const TaskProgressFn&)>;

class WorkerLoop {
 public:
  WorkerLoop(std::shared_ptr<grpc::Channel> channel, WorkerOptions options, const TaskExecutor* executor);
  WorkerLoop(std::shared_ptr<grpc::Channel> channel, WorkerOptions options, TaskRunFn run);
  // Runs until Stop() (or max_tasks). Reconnects when the server is unreachable.
  void Run();
  void Stop() { stop_ = true; }
  int64_t tasks_done() const { return tasks_done_; }
  int64_t tasks_failed() const { return tasks_failed_; }

 private:
  bool Register();
  void RunTask(const slq::v1::Task& task);
  void Prepare(grpc::ClientContext* ctx, int seconds) const;

  std::unique_ptr<slq::v1::WorkerService::Stub> stub_;
  WorkerOptions options_;
  TaskRunFn run_;
  std::string worker_id_;
  int heartbeat_seconds_ = 10;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> tasks_done_{0}, tasks_failed_{0};
};

}  // namespace slq

#endif  // SLQ_SERVER_WORKER_WORKER_LOOP_H_
