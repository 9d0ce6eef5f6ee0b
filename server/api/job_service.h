// gRPC JobService (proto/slq/v1/job_service.proto) over the job layer.
//
// Authentication is the server's interceptor (auth.h). The worker protocol is WorkerService
// (worker_service.h). The sync API is used on purpose: WatchJob and
// DownloadArtifact are long loops, and LeaseTask long-polls; each holds one server thread.
// Thread-safe.
#ifndef SLQ_SERVER_API_JOB_SERVICE_H_
#define SLQ_SERVER_API_JOB_SERVICE_H_

#include <functional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server/jobs/artifact_store.h"
#include "server/jobs/job_store.h"
#include "server/scheduler/scheduler.h"
#include "slq/v1/job_service.grpc.pb.h"

namespace slq {
class Metrics;
}

namespace slq::api {

struct JobServiceOptions {
  // Checks a model URI at submit time (scheme known, file:// inside the allowed roots), so a
  // bad URI is rejected before a job exists. Unset: checked only when the job is fetched.
  std::function<absl::Status(const std::string& uri)> validate_model_uri;
  // Checks spec.calibration_data / spec.eval_data at submit (null: not checked).
  std::function<absl::Status(const std::string& ref)> validate_data_ref;
};

class JobServiceImpl final : public slq::v1::JobService::Service {
 public:
  // Pointers are not owned and must outlive the service. metrics may be null.
  JobServiceImpl(JobStore* store, ArtifactStore* artifacts, Scheduler* scheduler, Metrics* metrics,
                 JobServiceOptions options = {});

  // Wakes WatchJob streams of a job (the scheduler calls this on every event).
  void NotifyJobEvent(const std::string& job_id);
  // Ends open WatchJob loops (server shutdown).
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

 private:
  std::string CertificateOf(const Job& job);
  absl::StatusOr<slq::v1::Artifact> ArtifactToProto(const Artifact& a);
  // Waits until a job event or `timeout`; false when shutting down.
  bool WaitForEvent(absl::Duration timeout);

  JobStore* const store_;
  ArtifactStore* const artifacts_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
  const JobServiceOptions options_;

  absl::Mutex mu_;
  int64_t event_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every job event
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace slq::api

#endif  // SLQ_SERVER_API_JOB_SERVICE_H_
