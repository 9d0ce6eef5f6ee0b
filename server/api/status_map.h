// The one place where absl::Status becomes grpc::Status (and back, for clients).
#ifndef SLQ_SERVER_API_STATUS_MAP_H_
#define SLQ_SERVER_API_STATUS_MAP_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace slq::api {

// Same code (absl and gRPC share the canonical code space), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace slq::api

#endif  // SLQ_SERVER_API_STATUS_MAP_H_
