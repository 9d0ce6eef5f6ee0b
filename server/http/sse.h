// Bodies produced while a request runs, and the server-sent-events framing of the OpenAI
// streaming API.
//
//   out += SseEvent(chunk_json);   // "data: {...}\n\n"
//   out += SseDone();              // "data: [DONE]\n\n"
//
// EventBody turns an engine RequestStream into a body: the transport (http_server.cc) calls
// Next() in a loop and writes what it appends; Next waits up to `wait` for the engine, so the
// transport regularly gets control back to find out whether the client is still there (an
// idle write: an SSE comment, or a blank before a JSON body, which JSON parsers skip). Cancel()
// (the client went away) cancels the engine request, which frees its KV blocks at the next step.
// Thread safety: one BodyProducer is driven by one thread; Cancel may come from another.
#ifndef SLQ_SERVER_HTTP_SSE_H_
#define SLQ_SERVER_HTTP_SSE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/inference/model_registry.h"
#include "server/inference/request_stream.h"

namespace slq::http {

std::string SseEvent(const nlohmann::json& data);
std::string SseDone();
inline constexpr char kSseKeepAlive[] = ": keep-alive\n\n";

class BodyProducer {
 public:
  virtual ~BodyProducer() = default;
  // Appends the next piece of the body to *out (possibly nothing, when `wait` passed without
  // news). Returns false once the body is complete (the last piece is appended with it).
  virtual bool Next(std::string* out, absl::Duration wait) = 0;
  // The bytes to write when Next produced nothing for a while (probes the connection).
  virtual std::string KeepAlive() const = 0;
  virtual void Cancel() = 0;
};

// Formats engine events: called with each merged event in order (the last one has final set);
// appends the body bytes for it.
using EventFormatter = std::function<void(const inference::GenerationEvent& event, std::string* out)>;

class EventBody final : public BodyProducer {
 public:
  EventBody(std::shared_ptr<inference::ServedModel> model, std::shared_ptr<inference::RequestStream> stream,
            EventFormatter format, bool sse)
      : model_(std::move(model)), stream_(std::move(stream)), format_(std::move(format)), sse_(sse) {}
  ~EventBody() override { stream_->Cancel(); }  // no-op once finished

  bool Next(std::string* out, absl::Duration wait) override;
  std::string KeepAlive() const override { return sse_ ? kSseKeepAlive : " "; }
  void Cancel() override { stream_->Cancel(); }

 private:
  std::shared_ptr<inference::ServedModel> model_;  // keeps the engine alive while streaming
  std::shared_ptr<inference::RequestStream> stream_;
  EventFormatter format_;
  const bool sse_;
  bool done_ = false;
};

}  // namespace slq::http

#endif  // SLQ_SERVER_HTTP_SSE_H_
