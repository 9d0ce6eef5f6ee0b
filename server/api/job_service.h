// gRPC JobService (proto/slq/v1/job_service.proto) over the job layer.
//
// Every RPC checks the bearer token first. The sync API is used on purpose: WatchJob and
// DownloadArtifact are long loops, and LeaseTask long-polls; each holds one server thread.
// Thread-safe.
#ifndef SLQ_SERVER_API_JOB_SERVICE_H_
#define SLQ_SERVER_API_JOB_SERVICE_H_

#include <functional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/api/auth.h"
#include "server/jobs/artifact_store.h"
#include "server/jobs/job_store.h"
#include "server/scheduler/scheduler.h"
#include "slq/v1/job_service.grpc.pb.h"

namespace slq {
class Metrics;
}

namespace slq::api {

struct JobServiceOptions {
  absl::Duration lease = absl::Seconds(60);
  absl::Duration heartbeat = absl::Seconds(10);
  int max_lease_wait_seconds = 30;
  // Checks a model URI at submit time (scheme known, file:// inside the allowed roots), so a
  // bad URI is rejected before a job exists. Unset: checked only when the job is fetched.
  std::function<absl::Status(const std::string& uri)> validate_model_uri;
  // Checks spec.calibration_data / spec.eval_data at submit (null: not checked).
  std::function<absl::Status(const std::string& ref)> validate_data_ref;
};

class JobServiceImpl final : public slq::v1::JobService::Service {
 public:
  // Pointers are not owned and must outlive the service. metrics may be null.
  JobServiceImpl(JobStore* store, ArtifactStore* artifacts, Scheduler* scheduler, const BearerAuth* auth,
                 Metrics* metrics, JobServiceOptions options = {});

  // Wakes WatchJob streams of a job (the scheduler calls this on every event).
  void NotifyJobEvent(const std::string& job_id);
  // Ends open WatchJob and LeaseTask loops (server shutdown).
  void Shutdown();

  grpc::Status SubmitJob(grpc::ServerContext*, const slq::v1::SubmitJobRequest*, slq::v1::SubmitJobResponse*) override;
  grpc::Status GetJob(grpc::ServerContext*, const slq::v1::GetJobRequest*, slq::v1::GetJobResponse*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const slq::v1::ListJobsRequest*, slq::v1::ListJobsResponse*) override;
  grpc::Status WatchJob(grpc::ServerContext*, const slq::v1::WatchJobRequest*,
                        grpc::ServerWriter<slq::v1::WatchJobResponse>*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const slq::v1::CancelJobRequest*, slq::v1::CancelJobResponse*) override;
  grpc::Status ListArtifacts(grpc::ServerContext*, const slq::v1::ListArtifactsRequest*,
                             slq::v1::ListArtifactsResponse*) override;
  grpc::Status GetArtifact(grpc::ServerContext*, const slq::v1::GetArtifactRequest*,
                           slq::v1::GetArtifactResponse*) override;
  grpc::Status DownloadArtifact(grpc::ServerContext*, const slq::v1::DownloadArtifactRequest*,
                                grpc::ServerWriter<slq::v1::DownloadArtifactResponse>*) override;
  grpc::Status RegisterWorker(grpc::ServerContext*, const slq::v1::RegisterWorkerRequest*,
                              slq::v1::RegisterWorkerResponse*) override;
  grpc::Status LeaseTask(grpc::ServerContext*, const slq::v1::LeaseTaskRequest*, slq::v1::LeaseTaskResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const slq::v1::HeartbeatRequest*, slq::v1::HeartbeatResponse*) override;
  grpc::Status CompleteTask(grpc::ServerContext*, const slq::v1::CompleteTaskRequest*,
                            slq::v1::CompleteTaskResponse*) override;

 private:
  std::string CertificateOf(const Job& job);
  absl::StatusOr<slq::v1::Artifact> ArtifactToProto(const Artifact& a);
  // Waits until a job event or `timeout`; false when shutting down.
  bool WaitForEvent(absl::Duration timeout);
  // NotFound unless `id` was handed out by RegisterWorker (this server or the store).
  absl::Status CheckRegistered(const std::string& id);

  JobStore* const store_;
  ArtifactStore* const artifacts_;
  Scheduler* const scheduler_;
  const BearerAuth* const auth_;
  Metrics* const metrics_;
  const JobServiceOptions options_;

  absl::Mutex mu_;
  int64_t event_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every job event
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex workers_mu_;
  absl::flat_hash_set<std::string> workers_ ABSL_GUARDED_BY(workers_mu_);  // registered ids seen
};

}  // namespace slq::api

#endif  // SLQ_SERVER_API_JOB_SERVICE_H_
