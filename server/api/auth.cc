#include "server/api/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <google/protobuf/message.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"

namespace slq::api {
namespace {

std::string Digest(std::string_view s) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof(md));
}

}  // namespace

BearerAuth::BearerAuth(const std::string& token) : token_digest_(token.empty() ? "" : Digest(token)) {}

absl::StatusOr<BearerAuth> BearerAuth::FromTokenFile(const std::string& path) {
  auto data = ReadFile(path);
  if (!data.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --auth-token-file: ", data.status().message()));
  }
  std::string token(absl::StripAsciiWhitespace(*data));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("auth token file '", path, "' is empty"));
  }
  return BearerAuth(token);
}

grpc::Status BearerAuth::CheckHeader(std::string_view authorization) const {
  if (!enabled()) return grpc::Status::OK;
  if (authorization.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata (slqctl: --token-file)");
  }
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.size() < kPrefix.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(authorization.data(), kPrefix.size()),
                              absl::string_view(kPrefix.data(), kPrefix.size()))) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "authorization metadata must be 'Bearer <token>'");
  }
  std::string got = Digest(authorization.substr(kPrefix.size()));
  if (CRYPTO_memcmp(got.data(), token_digest_.data(), got.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  }
  return grpc::Status::OK;
}

grpc::Status BearerAuth::Check(const grpc::ServerContextBase& context) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return CheckHeader("");
  return CheckHeader(std::string_view(it->second.data(), it->second.size()));
}

namespace {

using grpc::experimental::InterceptionHookPoints;

class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit AuthInterceptor(const BearerAuth* auth) : auth_(auth) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      std::string_view header;
      if (auto* md = m->GetRecvInitialMetadata(); md != nullptr) {
        if (auto it = md->find("authorization"); it != md->end()) header = {it->second.data(), it->second.size()};
      }
      status_ = auth_->CheckHeader(header);
    }
    if (!status_.ok()) {
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
        if (void* req = m->GetRecvMessage(); req != nullptr) static_cast<google::protobuf::Message*>(req)->Clear();
      }
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
        if (grpc::ByteBuffer* b = m->GetSerializedSendMessage(); b != nullptr) b->Clear();  // an empty message
      }
      if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) m->ModifySendStatus(status_);
    }
    m->Proceed();
  }

 private:
  const BearerAuth* const auth_;
  grpc::Status status_;
};

class AuthInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(const BearerAuth* auth) : auth_(auth) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    // Only the slq.v1 services: health checks and reflection stay open.
    if (!auth_->enabled() || std::string_view(info->method()).rfind("/slq.", 0) != 0) return nullptr;
    return new AuthInterceptor(auth_);
  }

 private:
  const BearerAuth* const auth_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuthInterceptorFactory(
    const BearerAuth* auth) {
  return std::make_unique<AuthInterceptorFactory>(auth);
}

}  // namespace slq::api
