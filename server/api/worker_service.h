// gRPC WorkerService (proto/slq/v1/worker_service.proto): the protocol between the server and its
// workers (slq-worker, the in-process worker), separate from the user-facing JobService.
//
// Tasks travel as typed messages (TaskPayload / TaskResult); the store keeps each as its proto
// JSON text. A failed task comes back with a status code (TaskError.code): INVALID_ARGUMENT,
// NOT_FOUND, PERMISSION_DENIED and FAILED_PRECONDITION fail it at once, other codes are retried
// while attempts remain. Authentication is the server's interceptor (auth.h). The sync API holds
// one server thread per long-polling LeaseTask. Thread-safe.
#ifndef SLQ_SERVER_API_WORKER_SERVICE_H_
#define SLQ_SERVER_API_WORKER_SERVICE_H_

#include <functional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/job_store.h"
#include "server/scheduler/scheduler.h"
#include "slq/v1/worker_service.grpc.pb.h"

namespace slq::api {

struct WorkerServiceOptions {
  absl::Duration lease = absl::Seconds(60);
  absl::Duration heartbeat = absl::Seconds(10);
  int max_lease_wait_seconds = 30;
  // Called after a task completed and its job was reconciled (e.g. to wake WatchJob streams).
  std::function<void(const std::string& job_id)> on_task_completed;
};

// Whether a task error with this code may succeed when run again.
bool RetryableTaskCode(int code);

class WorkerServiceImpl final : public slq::v1::WorkerService::Service {
 public:
  // Pointers are not owned and must outlive the service.
  WorkerServiceImpl(JobStore* store, Scheduler* scheduler, WorkerServiceOptions options = {});

  // Wakes long-polling LeaseTask calls (the scheduler calls this on every job event).
  void NotifyTaskEvent();
  // Ends open LeaseTask loops (server shutdown).
  void Shutdown();

  grpc::Status RegisterWorker(grpc::ServerContext*, const slq::v1::RegisterWorkerRequest*,
                              slq::v1::RegisterWorkerResponse*) override;
  grpc::Status LeaseTask(grpc::ServerContext*, const slq::v1::LeaseTaskRequest*, slq::v1::LeaseTaskResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const slq::v1::HeartbeatRequest*, slq::v1::HeartbeatResponse*) override;
  grpc::Status CompleteTask(grpc::ServerContext*, const slq::v1::CompleteTaskRequest*,
                            slq::v1::CompleteTaskResponse*) override;

 private:
  // Waits until a job event or `timeout`; false when shutting down.
  bool WaitForEvent(absl::Duration timeout);
  // NotFound unless `id` was handed out by RegisterWorker (this server or the store).
  absl::Status CheckRegistered(const std::string& id);

  JobStore* const store_;
  Scheduler* const scheduler_;
  const WorkerServiceOptions options_;

  absl::Mutex mu_;
  int64_t event_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex workers_mu_;
  absl::flat_hash_set<std::string> workers_ ABSL_GUARDED_BY(workers_mu_);  // registered ids seen
};

}  // namespace slq::api

#endif  // SLQ_SERVER_API_WORKER_SERVICE_H_
