// OpenAiHttpServer: the HTTP transport of the OpenAI-compatible API (cpp-httplib): routing,
// bearer auth, TLS, the thread pool, and writing produced bodies (SSE) to the socket.
//
//   OpenAiHttpServer::Options o; o.host = "127.0.0.1"; o.port = 8080;
//   SLQ_ASSIGN_OR_RETURN(auto http, OpenAiHttpServer::Start(o, &handler, &auth));
//   ... http->port() ...; http->Stop();
//
// Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (all need
// `Authorization: Bearer <token>` when auth is enabled), GET /health (no auth). Anything else
// is a 404 in OpenAI's error JSON. A streamed body is written as the engine produces it; while
// the engine is quiet the transport writes a keep-alive (an SSE comment) about every second, so a
// client that went away is noticed and its request cancelled (its KV blocks freed).
// Ignores SIGPIPE process-wide (writes to a closed socket must fail, not kill the server).
// Thread safety: Start/Stop from one thread; requests run on the server's own pool.
#ifndef SLQ_SERVER_HTTP_HTTP_SERVER_H_
#define SLQ_SERVER_HTTP_HTTP_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/api/auth.h"
#include "server/http/completions.h"

namespace httplib {
class Server;
}

namespace slq::http {

class OpenAiHttpServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 0;                                  // 0: any free port (port() tells which)
    std::string tls_cert, tls_key, tls_client_ca;  // PEM files; cert + key turn on HTTPS, a CA mTLS
    int threads = 256;                             // connections served at once (each open stream holds one)
    size_t max_body_bytes = 16 << 20;
  };

  // Listening when this returns. InvalidArgument for unusable TLS files; Unavailable when the
  // address cannot be bound.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> Start(const Options& options,
                                                                               CompletionsHandler* handler,
                                                                               const api::BearerAuth* auth);
  ~OpenAiHttpServer();  // Stop()
  int port() const { return port_; }
  bool tls() const { return tls_; }
  void Stop();

 private:
  OpenAiHttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  bool tls_ = false;
};

// "0.0.0.0:7070" -> "0.0.0.0", "[::]:7070" -> "::", "localhost" -> "localhost".
std::string HostOf(const std::string& listen);

}  // namespace slq::http

#endif  // SLQ_SERVER_HTTP_HTTP_SERVER_H_
