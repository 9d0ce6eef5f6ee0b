// The one place where absl::Status becomes grpc::Status (and back, for clients).
#ifndef SLQ_SERVER_API_STATUS_MAP_H_
#define SLQ_SERVER_API_STATUS_MAP_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace slq::api {

// Messages can echo client input (a job id, a path); gRPC carries them in a header that
// clients cap (8 KiB by default), so a message longer than kMaxMessageBytes is cut there (at a
// UTF-8 boundary) and ends with "... (N bytes in all)".
inline constexpr size_t kMaxMessageBytes = 1024;
std::string BoundedMessage(absl::string_view message);

// Same code (absl and gRPC share the canonical code space), the message bounded.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace slq::api

#endif  // SLQ_SERVER_API_STATUS_MAP_H_
