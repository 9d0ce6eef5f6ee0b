// ServerApp: everything slq-server runs, wired together: job store, artifact store,
// scheduler, JobService, InferenceService, health, reflection, /metrics and the in-process
// worker. Used by slq_server_main.cc and by integration tests that want a server in-process.
//
//   ServerApp app(config);
//   SLQ_RETURN_IF_ERROR(app.Start());   // listening when this returns
//   app.Wait();                          // until Shutdown() (e.g. from a signal handler)
#ifndef SLQ_SERVER_MAIN_SERVER_APP_H_
#define SLQ_SERVER_MAIN_SERVER_APP_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "server/main/server_config.h"

namespace slq {

class ServerApp {
 public:
  explicit ServerApp(ServerConfig config);
  ~ServerApp();
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  [[nodiscard]] absl::Status Start();
  void Wait();
  // Stops accepting calls, lets in-flight calls finish for up to `grace`, stops the worker
  // and the scheduler. Safe to call from another thread, once.
  void Shutdown(absl::Duration grace = absl::Seconds(10));
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const;

 private:
  struct Impl;
  ServerConfig config_;
  std::unique_ptr<Impl> impl_;
  int grpc_port_ = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_MAIN_SERVER_APP_H_
