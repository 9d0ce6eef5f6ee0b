// OpenAI-style errors: {"error": {"message", "type", "param", "code"}} with the matching HTTP
// status, from the absl::Status the engine, the registry or a request check returned.
//
//   HttpReply r = ErrorReply(absl::InvalidArgumentError("n must be 1"), "n");
//
// Mapping: InvalidArgument / OutOfRange / FailedPrecondition -> 400 invalid_request_error;
// Unauthenticated -> 401 (code invalid_api_key); PermissionDenied -> 403; NotFound -> 404
// (code model_not_found when param is "model"); ResourceExhausted -> 429 (server busy);
// Unavailable -> 503; DeadlineExceeded -> 504; everything else -> 500 server_error.
#ifndef SLQ_SERVER_HTTP_OPENAI_ERROR_H_
#define SLQ_SERVER_HTTP_OPENAI_ERROR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "server/http/sse.h"

namespace slq::http {

// A handler's answer: a complete body, or (producer != null, status 200) a body that is
// produced while the request runs (SSE, or a JSON body written when generation ends).
struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::unique_ptr<BodyProducer> producer;
};

int HttpStatusFor(absl::StatusCode code);
// The error object (without the HTTP status); `param` names the request field ("" = null).
nlohmann::json ErrorJson(const absl::Status& status, const std::string& param = "");
HttpReply ErrorReply(const absl::Status& status, const std::string& param = "");

}  // namespace slq::http

#endif  // SLQ_SERVER_HTTP_OPENAI_ERROR_H_
