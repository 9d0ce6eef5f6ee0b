// Conversions between the slq.v1 wire types and the job layer's C++ types.
#ifndef SLQ_SERVER_API_JOB_CONVERT_H_
#define SLQ_SERVER_API_JOB_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/jobs/job_types.h"
#include "server/spec/job_spec.h"
#include "slq/v1/job_service.pb.h"

namespace slq::api {

// Validates a JobSpec and turns it into a JobRequest whose options_json holds the
// quant::PipelineOptions (plus "model_uri" and "data_ref"). InvalidArgument names the field.
absl::StatusOr<JobRequest> SpecToRequest(const slq::v1::JobSpec& spec, const std::string& idempotency_key);
// The target as the engine's string (server/spec/job_spec.h): "ear>=0.99", "kl<=0.01", "bits<=4.5",
// "tl" / "tl<=0.02" (task_lossless_kl is the task-lossless target, as the CLI's "tl").
absl::StatusOr<std::string> TargetString(const slq::v1::FidelityTarget& t);
absl::StatusOr<spec::Target> TargetFromProto(const slq::v1::FidelityTarget& t);
slq::v1::FidelityTarget TargetToProto(const spec::Target& t);
absl::StatusOr<slq::v1::FidelityTarget> ParseTargetString(const std::string& s);

slq::v1::JobState ToProto(JobState s);
slq::v1::JobStage ToProto(JobStage s);
absl::StatusOr<JobState> FromProto(slq::v1::JobState s);
JobStage FromProto(slq::v1::JobStage s);
google::protobuf::Timestamp ToProto(absl::Time t);

// The job as clients see it. certificate_json (may be empty) fills job.certificate.
slq::v1::Job JobToProto(const Job& job, const std::string& certificate_json);
// Reads the engine's certificate JSON (server/quant/artifact.h) into the wire message; the
// full JSON is kept in Certificate.json for fields the schema does not name.
slq::v1::Certificate CertificateFromJson(const std::string& certificate_json);

}  // namespace slq::api

#endif  // SLQ_SERVER_API_JOB_CONVERT_H_
