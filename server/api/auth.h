// Bearer-token authentication for every slq.v1 RPC (JobService, WorkerService, InferenceService);
// grpc.health.v1 and server reflection stay open. It runs as a server interceptor, not in the
// handlers:
//
//   SLQ_ASSIGN_OR_RETURN(auto auth, BearerAuth::FromTokenFile("/etc/slq/token"));
//   std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> v;
//   v.push_back(MakeAuthInterceptorFactory(&auth));
//   builder.experimental().SetInterceptorCreators(std::move(v));
//
// Clients send `authorization: Bearer <token>`. The comparison is constant-time
// (CRYPTO_memcmp over SHA-256 digests, so the length does not leak either). A BearerAuth
// built with no token (`Disabled()`) accepts every call: single-user local setups.
// Thread-safe (immutable after construction).
#ifndef SLQ_SERVER_API_AUTH_H_
#define SLQ_SERVER_API_AUTH_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
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

// The interceptor factory (`auth` is not owned and must outlive the server). A call whose token is
// missing or wrong ends UNAUTHENTICATED with BearerAuth's message. gRPC 1.51's server
// interceptors cannot end a call before its handler runs, so the interceptor withholds the
// request from the handler (it receives an empty message, which every slq.v1 RPC rejects or
// answers read-only) and replaces whatever the handler sends (messages emptied, the status
// UNAUTHENTICATED): the caller's fields never reach a handler and no data reaches the caller.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuthInterceptorFactory(
    const BearerAuth* auth);

}  // namespace slq::api

#endif  // SLQ_SERVER_API_AUTH_H_
