// HttpExposer: a minimal HTTP/1.1 server that answers GET /metrics with the Prometheus text
// format of one registry, on one thread of its own.
//
// Why not prometheus-cpp's Exposer: it runs on civetweb, whose Debian build creates its
// threads with a fixed 100 KiB stack. glibc carves each thread's static TLS out of that stack,
// and the libraries slq links (OpenBLAS ~60 KiB, CUDA runtime 4 KiB page-aligned, cuBLAS
// ~110 KiB) leave civetweb too little: pthread_create fails (EINVAL) or a worker overflows its
// stack on the first scrape. This server's thread has the default stack size.
#ifndef SLQ_SERVER_METRICS_HTTP_EXPOSER_H_
#define SLQ_SERVER_METRICS_HTTP_EXPOSER_H_

#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace slq {

class HttpExposer {
 public:
  // Binds host:port ("127.0.0.1:9090", "0.0.0.0:0", "[::1]:9090"; port 0 picks a free port)
  // and starts serving `registry`.
  static absl::StatusOr<std::unique_ptr<HttpExposer>> Start(const std::string& listen_address,
                                                            std::shared_ptr<prometheus::Registry> registry);
  ~HttpExposer();  // stops the thread and closes the socket
  HttpExposer(const HttpExposer&) = delete;
  HttpExposer& operator=(const HttpExposer&) = delete;

  int port() const { return port_; }

 private:
  HttpExposer(int listen_fd, int stop_fd, int port, std::shared_ptr<prometheus::Registry> registry);
  void Run();
  void Handle(int fd);

  const int listen_fd_;
  const int stop_fd_;  // eventfd: written by the destructor to wake the poll loop
  const int port_;
  const std::shared_ptr<prometheus::Registry> registry_;
  std::thread thread_;
};

}  // namespace slq

#endif  // SLQ_SERVER_METRICS_HTTP_EXPOSER_H_
