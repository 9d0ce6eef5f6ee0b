#include "server/http/openai_error.h"

#include <gtest/gtest.h>

#include "server/http/http_server.h"
#include "server/http/sse.h"

namespace slq::http {
namespace {

TEST(OpenAiErrorTest, StatusAndErrorObjectPerCode) {
  struct Case {
    absl::Status status;
    std::string param;
    int http;
    std::string type;
    nlohmann::json code;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("n must be 1"), "n", 400, "invalid_request_error", nullptr},
      {absl::UnauthenticatedError("missing token"), "", 401, "invalid_request_error", "invalid_api_key"},
      {absl::NotFoundError("model 'x' is not loaded"), "model", 404, "invalid_request_error", "model_not_found"},
      {absl::ResourceExhaustedError("queue full"), "", 429, "server_busy", "server_busy"},
      {absl::UnavailableError("shutting down"), "", 503, "server_error", nullptr},
      {absl::InternalError("boom"), "", 500, "server_error", nullptr},
  };
  for (const Case& c : cases) {
    HttpReply r = ErrorReply(c.status, c.param);
    EXPECT_EQ(r.status, c.http) << c.status;
    nlohmann::json j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j["error"]["message"], std::string(c.status.message()));
    EXPECT_EQ(j["error"]["type"], c.type) << c.status;
    EXPECT_EQ(j["error"]["code"], c.code) << c.status;
    EXPECT_EQ(j["error"]["param"], c.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.param));
  }
}

TEST(OpenAiErrorTest, LongMessagesAreCut) {
  nlohmann::json j = ErrorJson(absl::InvalidArgumentError(std::string(5000, 'x')));
  EXPECT_LT(j["error"]["message"].get<std::string>().size(), 1100u);
  EXPECT_NE(j["error"]["message"].get<std::string>().find("(5000 bytes in all)"), std::string::npos);
}

TEST(SseTest, Framing) {
  EXPECT_EQ(SseEvent({{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(SseDone(), "data: [DONE]\n\n");
}

TEST(HttpServerTest, HostOfListenAddress) {
  EXPECT_EQ(HostOf("0.0.0.0:7070"), "0.0.0.0");
  EXPECT_EQ(HostOf("127.0.0.1:1"), "127.0.0.1");
  EXPECT_EQ(HostOf("[::]:7070"), "::");
  EXPECT_EQ(HostOf("localhost"), "localhost");
}

}  // namespace
}  // namespace slq::http
