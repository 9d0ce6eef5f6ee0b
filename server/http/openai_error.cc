#include "server/http/openai_error.h"

namespace slq::http {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

nlohmann::json ErrorJson(const absl::Status& status, const std::string& param) {
  const int http = HttpStatusFor(status.code());
  std::string type = "invalid_request_error";
  nlohmann::json code = nullptr;
  if (http == 401) {
    code = "invalid_api_key";
  } else if (http == 403) {
    type = "permission_error";
  } else if (http == 404) {
    code = param == "model" ? "model_not_found" : "not_found";
  } else if (http == 429) {
    type = "server_busy";
    code = "server_busy";
  } else if (http >= 500) {
    type = "server_error";
  }
  std::string message(status.message());
  if (message.size() > 1024)
    message = message.substr(0, 1000) + "... (" + std::to_string(message.size()) + " bytes in all)";
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
            {"code", code}}}};
}

HttpReply ErrorReply(const absl::Status& status, const std::string& param) {
  HttpReply r;
  r.status = HttpStatusFor(status.code());
  r.body = ErrorJson(status, param).dump();
  return r;
}

}  // namespace slq::http
