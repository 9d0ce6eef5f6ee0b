// Test helper: a real slq-server (ServerApp: JobService, InferenceService, health, auth) in
// this process on 127.0.0.1 with a bearer token, a SQLite store in a scratch directory,
// stories260K served as a base model, the shared models and a scratch "root" folder as the
// allowed roots, and every server log line captured for inspection. Used by the bad-input
// sweep and the security tests.
//
//   LoopbackServer server({});                       // ASSERT_TRUE(server.status().ok())
//   auto jobs = slq::v1::JobService::NewStub(server.channel());
//   grpc::ClientContext ctx;  server.Authorize(&ctx);
#ifndef SLQ_TESTS_INTEGRATION_BAD_INPUT_LOOPBACK_SERVER_H_
#define SLQ_TESTS_INTEGRATION_BAD_INPUT_LOOPBACK_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/main/server_config.h"

namespace slq {
class ServerApp;
}

namespace slq::testing {

class LoopbackServer {
 public:
  // `tweak` may change the config before the server starts.
  explicit LoopbackServer(const std::function<void(ServerConfig&)>& tweak = {});
  ~LoopbackServer();

  const absl::Status& status() const { return status_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  const std::string& token() const { return token_; }
  // Adds the right bearer token.
  void Authorize(grpc::ClientContext* ctx) const;
  // A scratch folder inside the allowed roots (tests put models / symlinks here).
  const std::string& root_dir() const { return root_dir_; }
  const std::string& scratch_dir() const { return scratch_dir_; }
  // Name of the served base model (stories260K).
  const std::string& model_name() const { return model_name_; }
  // Everything the server logged so far (spdlog, all levels).
  std::string Log() const;

 private:
  absl::Status status_;
  std::string scratch_dir_, root_dir_, token_, model_name_;
  std::unique_ptr<ServerApp> app_;
  std::shared_ptr<grpc::Channel> channel_;
};

// The shared models folder (SLQ_SHARED_DIR/models), canonical (no "..": file:// URIs
// with ".." are refused).
std::string CanonicalModelsDir();

}  // namespace slq::testing

#endif  // SLQ_TESTS_INTEGRATION_BAD_INPUT_LOOPBACK_SERVER_H_
