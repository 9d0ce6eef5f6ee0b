#include "server/http/http_server.h"

#include <httplib.h>

#include <csignal>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace slq::http {
namespace {

void Send(const HttpReply& r, httplib::Response& res) {
  res.status = r.status;
  res.set_content(r.body, r.content_type.c_str());
}

// Writes a produced body: Next() waits at most 250 ms for the engine; after about a second
// without output the keep-alive bytes go out, so a vanished client fails a write and cancels.
void SendProduced(HttpReply r, httplib::Response& res) {
  std::shared_ptr<BodyProducer> p(std::move(r.producer));
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      r.content_type,
      [p](size_t, httplib::DataSink& sink) {
        std::string chunk;
        absl::Time quiet_since = absl::Now();
        bool more = true;
        while (chunk.empty() && more) {
          more = p->Next(&chunk, absl::Milliseconds(250));
          if (chunk.empty() && more && absl::Now() - quiet_since >= absl::Seconds(1)) chunk = p->KeepAlive();
        }
        if (!chunk.empty() && !sink.write(chunk.data(), chunk.size())) {
          p->Cancel();
          return false;
        }
        if (!more) sink.done();
        return true;
      },
      [p](bool success) {
        if (!success) p->Cancel();
      });
}

}  // namespace

std::string HostOf(const std::string& listen) {
  if (!listen.empty() && listen[0] == '[') {
    size_t close = listen.find(']');
    return close == std::string::npos ? listen : listen.substr(1, close - 1);
  }
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || listen.find(':') != colon) return listen;
  return listen.substr(0, colon);
}

absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> OpenAiHttpServer::Start(const Options& o, CompletionsHandler* handler,
                                                                          const api::BearerAuth* auth) {
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<OpenAiHttpServer> out(new OpenAiHttpServer());
  if (!o.tls_cert.empty()) {
    for (const auto& [flag, path] : {std::pair{"--tls-cert", o.tls_cert}, std::pair{"--tls-key", o.tls_key},
                                     std::pair{"--tls-client-ca", o.tls_client_ca}}) {
      std::error_code ec;
      if (!path.empty() && !std::filesystem::is_regular_file(path, ec)) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a readable file"));
      }
    }
    out->server_ = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str(),
                                                        o.tls_client_ca.empty() ? nullptr : o.tls_client_ca.c_str());
    out->tls_ = true;
  } else {
    out->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& svr = *out->server_;
  if (!svr.is_valid()) {
    return absl::InvalidArgumentError(
        "the HTTP server cannot use --tls-cert / --tls-key / --tls-client-ca (not PEM, or the key does not match)");
  }
  const int threads = std::max(1, o.threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_payload_max_length(o.max_body_bytes);
  svr.set_keep_alive_max_count(100);

  // Every /v1 route checks the bearer token first.
  auto authorized = [auth](const httplib::Request& req, httplib::Response& res) {
    grpc::Status a = auth->CheckHeader(req.get_header_value("Authorization"));
    if (a.ok()) return true;
    Send(ErrorReply(absl::UnauthenticatedError(absl::StrCat(
             a.error_message(), " (send 'Authorization: Bearer <token>', the token of --auth-token-file)"))),
         res);
    return false;
  };
  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  svr.Get("/v1/models", [=](const httplib::Request& req, httplib::Response& res) {
    if (authorized(req, res)) Send(handler->Models(), res);
  });
  for (const auto& [path, chat] : {std::pair{"/v1/completions", false}, std::pair{"/v1/chat/completions", true}}) {
    const bool is_chat = chat;
    svr.Post(path, [=](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      HttpReply r = handler->Completions(req.body, is_chat);
      if (r.producer) {
        SendProduced(std::move(r), res);
      } else {
        Send(r, res);
      }
    });
  }
  auto not_found = [](const httplib::Request& req, httplib::Response& res) {
    Send(ErrorReply(absl::NotFoundError(
             absl::StrCat("no route ", req.method, " ", req.path,
                          ": this server has GET /v1/models, POST /v1/completions and POST /v1/chat/completions"))),
         res);
  };
  svr.Get(".*", not_found);
  svr.Post(".*", not_found);
  svr.Delete(".*", not_found);
  svr.Put(".*", not_found);
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    Send(ErrorReply(absl::InternalError(what)), res);
  });

  if (o.port == 0) {
    out->port_ = svr.bind_to_any_port(o.host);
    if (out->port_ <= 0) return absl::UnavailableError(absl::StrCat("HTTP: cannot bind any port on ", o.host));
  } else {
    if (!svr.bind_to_port(o.host, o.port)) {
      return absl::UnavailableError(
          absl::StrCat("HTTP: cannot listen on ", o.host, ":", o.port, " (--http-port in use or not allowed?)"));
    }
    out->port_ = o.port;
  }
  out->thread_ = std::thread([s = out->server_.get()] { s->listen_after_bind(); });
  return out;
}

OpenAiHttpServer::~OpenAiHttpServer() { Stop(); }

void OpenAiHttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace slq::http
