// Bearer-token authentication for every RPC except grpc.health.v1.
//
//   SLQ_ASSIGN_OR_RETURN(auto auth, BearerAuth::FromTokenFile("/etc/slq/token"));
//   grpc::Status s = auth.Check(*context);   // at the top of each handler
//
// Clients send `authorization: Bearer <token>`. The comparison is constant-time
// (CRYPTO_memcmp over SHA-256 digests, so the length does not leak either). A BearerAuth
// built with no token (`Disabled()`) accepts every call: single-user local setups.
// Thread-safe (immutable after construction).
#ifndef SLQ_SERVER_API_AUTH_H_
#define SLQ_SERVER_API_AUTH_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/statusor.h"

namespace slq::api {

class BearerAuth {
 public:
  static BearerAuth Disabled() { return BearerAuth(""); }
  // Reads the token from a file (surrounding whitespace trimmed). An empty file is an error.
  static absl::StatusOr<BearerAuth> FromTokenFile(const std::string& path);
  static BearerAuth FromToken(const std::string& token) { return BearerAuth(token); }

  bool enabled() const { return !token_digest_.empty(); }
  // OK, or UNAUTHENTICATED with a message saying what was missing or wrong.
  grpc::Status Check(const grpc::ServerContextBase& context) const;
  // Same check on a raw header value (e.g. "Bearer abc").
  grpc::Status CheckHeader(std::string_view authorization) const;

 private:
  explicit BearerAuth(const std::string& token);
  std::string token_digest_;  // raw SHA-256 of the token; empty = auth disabled
};

}  // namespace slq::api

#endif  // SLQ_SERVER_API_AUTH_H_
