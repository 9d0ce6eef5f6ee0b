// A small C++ client library over the slq.v1 gRPC API (used by slqctl and the tests).
//
//   ClientOptions opts{.server = "127.0.0.1:7070", .token_file = "/etc/slq/token"};
//   SLQ_ASSIGN_OR_RETURN(auto client, Client::Connect(opts));
//   slq::v1::GetJobRequest req; req.set_job_id(id);
//   slq::v1::GetJobResponse resp;
//   grpc::Status s = client->Call(client->jobs(), &slq::v1::JobService::Stub::GetJob, req, &resp);
// (Call adds the bearer token and the unary deadline; streams use Prepare on their own context.)
//
// Thread-safe: stubs and channels may be shared across threads.
#ifndef SLQ_CLIENT_CLIENT_H_
#define SLQ_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "slq/v1/inference_service.grpc.pb.h"
#include "slq/v1/job_service.grpc.pb.h"

namespace slq::client {

struct ClientOptions {
  std::string server = "127.0.0.1:7070";
  std::string token_file;  // bearer token (also SLQ_TOKEN env, see slqctl)
  std::string token;       // explicit token (wins over token_file)
  std::string tls_ca;      // PEM CA: use TLS and verify the server with it
  std::string tls_cert;    // client certificate for mTLS
  std::string tls_key;
  std::string tls_server_name;  // override the name checked in the server certificate
  double timeout_seconds = 30;  // deadline for unary calls; streams have none by default
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);

  // Adds the bearer token and, when with_deadline, the unary deadline.
  void Prepare(grpc::ClientContext* ctx, bool with_deadline = true) const;

  slq::v1::JobService::Stub& jobs() { return *jobs_; }
  slq::v1::InferenceService::Stub& inference() { return *inference_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // One unary call with auth and the unary deadline (or none: with_deadline = false), e.g.
  //   grpc::Status s = c.Call(c.jobs(), &JobService::Stub::GetJob, req, &resp);
  template <typename Stub, typename Request, typename Response>
  grpc::Status Call(Stub& stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response, bool with_deadline = true) const {
    grpc::ClientContext ctx;
    Prepare(&ctx, with_deadline);
    return (stub.*method)(&ctx, request, response);
  }

  // grpc.health.v1 Check of the whole server ("" service). SERVING -> OK.
  absl::Status CheckHealth() const;

 private:
  Client() = default;
  ClientOptions options_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<slq::v1::JobService::Stub> jobs_;
  std::unique_ptr<slq::v1::InferenceService::Stub> inference_;
};

}  // namespace slq::client

#endif  // SLQ_CLIENT_CLIENT_H_
