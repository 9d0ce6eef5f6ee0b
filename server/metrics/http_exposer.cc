// HttpExposer: GET /metrics over plain HTTP/1.1, one connection at a time (Prometheus scrapes
// every few seconds; a scrape takes well under a millisecond), Connection: close.
#include "server/metrics/http_exposer.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <prometheus/text_serializer.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace slq {
namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;
constexpr int kClientTimeoutMs = 5000;

absl::Status Invalid(const std::string& address, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad --metrics-listen address '", address, "': ", why,
                   " (want host:port, e.g. 0.0.0.0:9090 or [::1]:9090; port 0 picks a free one)"));
}

// Waits until fd is ready for `events` or the client timeout passes.
bool WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = poll(&p, 1, kClientTimeoutMs);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

void SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    if (!WaitFor(fd, POLLOUT)) return;
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const char* content_type, const std::string& body, bool head_only) {
  std::string r = absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", content_type,
                               "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n");
  if (!head_only) r += body;
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpExposer>> HttpExposer::Start(const std::string& listen_address,
                                                                std::shared_ptr<prometheus::Registry> registry) {
  const size_t colon = listen_address.rfind(':');
  if (colon == std::string::npos) return Invalid(listen_address, "no port");
  std::string host = listen_address.substr(0, colon);
  const std::string port_text = listen_address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return Invalid(listen_address, absl::StrCat("port '", port_text, "' is not in 0..65535"));
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int e = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &res); e != 0) {
    return Invalid(listen_address, absl::StrCat("cannot resolve host '", host, "': ", gai_strerror(e)));
  }
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) break;
    last_error = std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on '", listen_address, "': ", last_error,
                                               " (is the port in use? pick another with --metrics-listen)"));
  }

  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    if (bound.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    if (bound.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  }
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("eventfd for the /metrics server: ", std::strerror(errno)));
  }
  std::unique_ptr<HttpExposer> e(new HttpExposer(fd, stop_fd, port, std::move(registry)));
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

HttpExposer::HttpExposer(int listen_fd, int stop_fd, int port, std::shared_ptr<prometheus::Registry> registry)
    : listen_fd_(listen_fd), stop_fd_(stop_fd), port_(port), registry_(std::move(registry)) {}

HttpExposer::~HttpExposer() {
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof(one)) < 0) {
    // The eventfd counter cannot overflow with one write; nothing else can fail here.
  }
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_fd_);
}

void HttpExposer::Run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // e.g. the client gave up (ECONNABORTED) or EMFILE: try again
    Handle(fd);
    close(fd);
  }
}

void HttpExposer::Handle(int fd) {
  // Read the request head (up to the blank line); the body, if any, is ignored.
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos) {
    if (req.size() > kMaxRequestBytes || !WaitFor(fd, POLLIN)) return;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  const size_t line_end = req.find_first_of("\r\n");
  const std::string line = req.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) {
    SendAll(fd, Response(400, "Bad Request", "text/plain", "bad request line\n", false));
    return;
  }
  const std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    SendAll(fd, Response(405, "Method Not Allowed", "text/plain", "only GET /metrics\n", false));
    return;
  }
  if (target != "/metrics") {
    SendAll(fd, Response(404, "Not Found", "text/plain", "only /metrics is served here\n", head));
    return;
  }
  const std::string body = prometheus::TextSerializer().Serialize(registry_->Collect());
  SendAll(fd, Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, head));
}

}  // namespace slq
