#include "client/client.h"

#include <grpcpp/generic/generic_stub.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"

namespace slq::client {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  auto data = ReadFile(path);
  if (!data.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, ": ", data.status().message()));
  }
  return *data;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  std::unique_ptr<Client> c(new Client());
  c->options_ = options;
  if (!options.token.empty()) {
    c->token_ = options.token;
  } else if (!options.token_file.empty()) {
    auto t = ReadFile(options.token_file);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read --token-file: ", t.status().message()));
    }
    c->token_ = std::string(absl::StripAsciiWhitespace(*t));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (!options.tls_ca.empty() || !options.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      auto ca = ReadPem(options.tls_ca, "--tls-ca");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (!options.tls_cert.empty()) {
      auto cert = ReadPem(options.tls_cert, "--tls-cert");
      if (!cert.ok()) return cert.status();
      auto key = ReadPem(options.tls_key, "--tls-key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  c->channel_ = grpc::CreateCustomChannel(options.server, creds, args);
  c->jobs_ = slq::v1::JobService::NewStub(c->channel_);
  c->inference_ = slq::v1::InferenceService::NewStub(c->channel_);
  return c;
}

void Client::Prepare(grpc::ClientContext* ctx, bool with_deadline) const {
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  if (with_deadline && options_.timeout_seconds > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_seconds * 1000)));
  }
}

absl::Status Client::CheckHealth() const {
  // grpc.health.v1 without generated code: the request is an empty-service HealthCheckRequest
  // (field 1 string, empty -> zero bytes); the response field 1 is the enum status (1 = SERVING).
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::ByteBuffer request;  // empty message
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> l(mu);
    status = std::move(s);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("health check of ", options_.server, " failed: ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // Expect tag 0x08 (field 1, varint) followed by the status value.
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x08 && bytes[1] == 1) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(options_.server, " is not SERVING"));
}

}  // namespace slq::client
