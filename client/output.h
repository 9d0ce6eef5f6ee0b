// slqctl output: human-readable by default, JSON (--json) for scripts; exit codes.
#ifndef SLQ_CLIENT_OUTPUT_H_
#define SLQ_CLIENT_OUTPUT_H_

#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include <string>

#include "slq/v1/job_service.pb.h"

namespace slq::client {

// Exit codes scripts can rely on (documented in docs/API.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,         // any other error
  kExitUsage = 2,         // bad command line / INVALID_ARGUMENT
  kExitNotFound = 3,      // NOT_FOUND
  kExitAuth = 4,          // UNAUTHENTICATED / PERMISSION_DENIED
  kExitUnavailable = 5,   // server unreachable / UNAVAILABLE / DEADLINE_EXCEEDED
  kExitJobFailed = 6,     // the watched job FAILED
  kExitJobCancelled = 7,  // the watched job was CANCELLED
  kExitTargetNotMet = 8,  // the job finished but its certificate says the target was not met
  kExitBusy = 9,          // RESOURCE_EXHAUSTED
};

// Prints "error: <code>: <message>" (plus a hint) to stderr; returns the matching exit code.
int ReportRpcError(const grpc::Status& status, const std::string& what);

std::string ToJson(const google::protobuf::Message& m);
std::string JobStateName(slq::v1::JobState s);               // "QUEUED", ...
std::string JobStageName(slq::v1::JobStage s);               // "profile", ...
std::string FormatTarget(const slq::v1::FidelityTarget& t);  // "ear>=0.99"
std::string FormatDuration(double seconds);                  // "1m12s"
// "[########............] 40% profile  ETA 1m12s"
std::string ProgressBar(double fraction, const std::string& label, double eta_seconds, int width = 24);
void PrintJob(const slq::v1::Job& job);  // multi-line human summary
void PrintCertificate(const slq::v1::Certificate& c);

}  // namespace slq::client

#endif  // SLQ_CLIENT_OUTPUT_H_
