// Security checks against a real in-process slq-server on loopback (LoopbackServer):
//  * every RPC of JobService, WorkerService and InferenceService (enumerated from the proto descriptors, so a
//    new RPC is covered automatically) rejects a call without a token, with a wrong token, with
//    a non-Bearer scheme and with the bare token, with UNAUTHENTICATED; grpc.health.v1 answers
//    without a token;
//  * file:// model URIs and artifact paths stay inside the allowed roots: '..' traversal, a
//    symlinked directory and a symlinked file leading out are refused (SubmitJob, LoadModel,
//    DownloadArtifact);
//  * the server's receive limit (max_message_bytes, default 16 MiB) is in force;
//  * the bearer token (and wrong tokens clients sent) never appear in the server's log.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "slq/v1/inference_service.grpc.pb.h"
#include "slq/v1/job_service.grpc.pb.h"
#include "slq/v1/worker_service.grpc.pb.h"
#include "tests/integration/bad_input/loopback_server.h"

namespace slq::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = slq::v1;

void* Tag(intptr_t i) { return reinterpret_cast<void*>(i); }

// Calls `method` ("/pkg.Service/Method") with `request` bytes through the generic API, so every
// RPC, unary or streaming, is called the same way. Returns the final status; *response gets
// the first response message's bytes.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& request, const std::string& authorization, std::string* response = nullptr) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* got = nullptr;
  bool ok = false;
  auto step = [&](intptr_t want) {
    EXPECT_TRUE(cq.Next(&got, &ok));
    EXPECT_EQ(got, Tag(want));
    return ok;
  };
  call->StartCall(Tag(1));
  bool alive = step(1);
  if (alive) {
    grpc::Slice slice(request);
    grpc::ByteBuffer buf(&slice, 1);
    call->WriteLast(buf, grpc::WriteOptions(), Tag(2));
    alive = step(2);
  }
  bool first = true;
  while (alive) {
    grpc::ByteBuffer in;
    call->Read(&in, Tag(3));
    if (!step(3)) break;
    if (first && response != nullptr) {
      std::vector<grpc::Slice> slices;
      (void)in.Dump(&slices);
      response->clear();
      for (const auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    first = false;
  }
  grpc::Status status;
  call->Finish(&status, Tag(4));
  step(4);
  return status;
}

struct Rpc {
  std::string path;  // "/slq.v1.JobService/SubmitJob"
  bool streaming;
};

std::vector<Rpc> AllRpcs() {
  std::vector<Rpc> out;
  for (const char* service : {"slq.v1.JobService", "slq.v1.WorkerService", "slq.v1.InferenceService"}) {
    const auto* svc = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    if (svc == nullptr) {
      ADD_FAILURE() << service << " not in the descriptor pool";
      continue;
    }
    for (int i = 0; i < svc->method_count(); ++i) {
      out.push_back({"/" + svc->full_name() + "/" + svc->method(i)->name(), svc->method(i)->server_streaming()});
    }
  }
  return out;
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new LoopbackServer();
    ASSERT_TRUE(server_->status().ok()) << server_->status();
  }
  static void TearDownTestSuite() { delete server_; }

  grpc::Status Submit(const std::string& uri) {
    auto stub = v1::JobService::NewStub(server_->channel());
    v1::SubmitJobRequest r;
    r.mutable_spec()->set_model_uri(uri);
    r.mutable_spec()->mutable_target()->set_min_ear(0.99);
    v1::SubmitJobResponse resp;
    grpc::ClientContext ctx;
    server_->Authorize(&ctx);
    return stub->SubmitJob(&ctx, r, &resp);
  }
  grpc::Status Load(const std::function<void(v1::LoadModelRequest&)>& fill) {
    auto stub = v1::InferenceService::NewStub(server_->channel());
    v1::LoadModelRequest r;
    fill(r);
    v1::LoadModelResponse resp;
    grpc::ClientContext ctx;
    server_->Authorize(&ctx);
    return stub->LoadModel(&ctx, r, &resp);
  }

  static LoopbackServer* server_;
};
LoopbackServer* SecurityTest::server_ = nullptr;

constexpr char kWrongToken[] = "wrong-token-SECRETPROBE-4711";

TEST_F(SecurityTest, EveryRpcRejectsMissingAndWrongTokens) {
  const std::vector<Rpc> rpcs = AllRpcs();
  ASSERT_EQ(rpcs.size(), 18u) << "JobService 12 + InferenceService 6 RPCs";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"no authorization metadata", ""},
      {"wrong token", std::string("Bearer ") + kWrongToken},
      {"Basic scheme", "Basic " + server_->token()},
      {"bare token", server_->token()},
      {"token with a suffix", "Bearer " + server_->token() + "x"},
      {"empty bearer", "Bearer "},
  };
  int rejected = 0;
  for (const Rpc& rpc : rpcs) {
    for (const auto& [what, header] : bad) {
      grpc::Status s = RawCall(server_->channel(), rpc.path, "", header);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << rpc.path << " with " << what << ": " << s.error_code() << " " << s.error_message();
      rejected += s.error_code() == grpc::StatusCode::UNAUTHENTICATED;
    }
  }
  std::printf("auth: %d/%zu unauthenticated calls rejected over %zu RPCs\n", rejected, rpcs.size() * bad.size(),
              rpcs.size());
  // The same empty requests with the right token get past auth (a validation error or OK).
  for (const Rpc& rpc : rpcs) {
    grpc::Status s = RawCall(server_->channel(), rpc.path, "", "Bearer " + server_->token());
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc.path << ": " << s.error_message();
  }
}

TEST_F(SecurityTest, HealthNeedsNoToken) {
  for (const std::string& service : std::vector<std::string>{"", "slq.v1.JobService", "slq.v1.InferenceService"}) {
    std::string req;
    if (!service.empty()) req = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
    std::string resp;
    grpc::Status s = RawCall(server_->channel(), "/grpc.health.v1.Health/Check", req, "", &resp);
    ASSERT_TRUE(s.ok()) << "health '" << service << "': " << s.error_message();
    EXPECT_EQ(resp, std::string("\x08\x01", 2)) << "health '" << service << "' is not SERVING";
  }
}

TEST_F(SecurityTest, FileUrisStayInsideTheAllowedRoots) {
  const std::string root = server_->root_dir();
  const std::string outside = server_->scratch_dir() + "/outside";
  fs::create_directories(outside + "/model");
  std::ofstream(outside + "/model/config.json") << "{}";
  std::ofstream(outside + "/secret.bin") << "secret";
  // A symlinked directory leading out of the root.
  fs::create_directory_symlink(outside + "/model", root + "/escape_dir");
  // A model directory inside the root whose weights file is a symlink leading out.
  fs::create_directories(root + "/escape_file");
  std::ofstream(root + "/escape_file/config.json") << "{}";
  fs::create_symlink(outside + "/secret.bin", root + "/escape_file/model.safetensors");
  // A legitimate directory inside the root (control).
  fs::create_directories(root + "/legit");
  std::ofstream(root + "/legit/config.json") << "{}";

  const auto denied = grpc::StatusCode::PERMISSION_DENIED;
  EXPECT_EQ(Submit("file://" + root + "/../outside/model").error_code(), denied) << "'..' traversal";
  EXPECT_EQ(Submit("file://" + root + "/legit/../../outside/model").error_code(), denied) << "nested '..'";
  EXPECT_EQ(Submit("file:///etc").error_code(), denied) << "absolute path outside";
  EXPECT_EQ(Submit("file://" + root + "/escape_dir").error_code(), denied) << "symlinked directory";
  EXPECT_EQ(Submit("file://" + root + "/escape_file").error_code(), denied) << "symlinked file";
  EXPECT_EQ(Submit("FILE://" + root + "/escape_dir").error_code(), denied) << "scheme case";
  // No existence probe: outside the roots, a missing and an existing path answer alike, on the
  // model URI, on calibration data, and on LoadModel.
  grpc::Status missing = Submit("file://" + outside + "/no-such-model");
  grpc::Status present = Submit("file://" + outside + "/model");
  EXPECT_EQ(missing.error_code(), denied) << missing.error_message();
  EXPECT_EQ(present.error_code(), denied) << present.error_message();
  EXPECT_EQ(Load([&](auto& r) { r.set_model_uri("file://" + outside + "/no-such-model"); }).error_code(), denied);
  EXPECT_EQ(Load([&](auto& r) { r.set_model_uri("file://" + outside + "/model"); }).error_code(), denied);
  grpc::Status legit = Submit("file://" + root + "/legit");
  EXPECT_TRUE(legit.ok()) << "control: a directory inside the root is accepted: " << legit.error_message();

  // The inference side (LoadModel) confines paths the same way.
  EXPECT_EQ(Load([&](auto& r) { r.set_model_uri("file://" + root + "/../outside/model"); }).error_code(), denied);
  EXPECT_EQ(Load([&](auto& r) { r.set_model_uri("file://" + root + "/escape_dir"); }).error_code(), denied);
  EXPECT_EQ(Load([&](auto& r) { r.set_artifact_path(root + "/../outside"); }).error_code(), denied);
  EXPECT_EQ(Load([&](auto& r) { r.set_artifact_path(root + "/escape_dir"); }).error_code(), denied);
  EXPECT_EQ(Load([&](auto& r) { r.set_artifact_id("../../outside"); }).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Artifact ids never become paths.
  auto jobs = v1::JobService::NewStub(server_->channel());
  for (const std::string& id : std::vector<std::string>{"../../outside", "..", "/etc/passwd", std::string(64, '.')}) {
    grpc::ClientContext ctx;
    server_->Authorize(&ctx);
    v1::DownloadArtifactRequest r;
    r.set_artifact_id(id);
    auto reader = jobs->DownloadArtifact(&ctx, r);
    v1::DownloadArtifactResponse m;
    EXPECT_FALSE(reader->Read(&m)) << "artifact id '" << id << "' returned data";
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT || s.error_code() == grpc::StatusCode::NOT_FOUND)
        << id << ": " << s.error_code() << " " << s.error_message();
  }
}

// RegisterWorker answers a long name with INVALID_ARGUMENT without echoing it, so the only
// RESOURCE_EXHAUSTED possible is the server's receive limit. (Errors that echo input are cut
// to 1 KiB: ErrorsEchoingHugeInputStayBounded.)
grpc::Status RegisterWithName(const LoopbackServer& server, size_t bytes) {
  auto workers = v1::WorkerService::NewStub(server.channel());
  v1::RegisterWorkerRequest r;
  r.set_name(std::string(bytes, 'x'));
  v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  server.Authorize(&ctx);
  return workers->RegisterWorker(&ctx, r, &resp);
}

TEST_F(SecurityTest, DefaultReceiveLimitIsInForce) {
  grpc::Status over = RegisterWithName(*server_, 17 << 20);  // over the 16 MiB default
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << over.error_message();
  EXPECT_NE(over.error_message().find("larger than max"), std::string::npos) << over.error_message();
  grpc::Status under = RegisterWithName(*server_, 15 << 20);
  EXPECT_EQ(under.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << under.error_message();
}

// Errors that echo client input stay small: a 512 KiB job id comes back as a NOT_FOUND whose
// message fits the client's metadata limit (it used to overflow it: the client saw only a
// transport error).
TEST_F(SecurityTest, ErrorsEchoingHugeInputStayBounded) {
  auto jobs = v1::JobService::NewStub(server_->channel());
  grpc::ClientContext ctx;
  server_->Authorize(&ctx);
  v1::GetJobRequest r;
  r.set_job_id(std::string(512 << 10, 'j'));
  v1::GetJobResponse job;
  grpc::Status s = jobs->GetJob(&ctx, r, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_code() << " " << s.error_message().substr(0, 200);
  EXPECT_LE(s.error_message().size(), 1024u);
  EXPECT_NE(s.error_message().find("bytes in all"), std::string::npos) << s.error_message().substr(0, 200);
}

TEST(SecurityLimits, ConfiguredReceiveLimitIsInForce) {
  LoopbackServer server([](ServerConfig& c) { c.max_message_bytes = 1 << 20; });
  ASSERT_TRUE(server.status().ok()) << server.status();
  grpc::Status over = RegisterWithName(server, 2 << 20);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << over.error_message();
  EXPECT_NE(over.error_message().find("larger than max"), std::string::npos) << over.error_message();
  grpc::Status under = RegisterWithName(server, 512 << 10);
  EXPECT_EQ(under.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << "under the limit: reaches the handler: " << under.error_message();
}

TEST_F(SecurityTest, TokensNeverReachTheLog) {
  // Traffic that makes the server log: wrong tokens, a registered worker, a submitted job.
  for (const Rpc& rpc : AllRpcs()) {
    (void)RawCall(server_->channel(), rpc.path, "", std::string("Bearer ") + kWrongToken);
  }
  auto workers = v1::WorkerService::NewStub(server_->channel());
  v1::RegisterWorkerRequest reg;
  reg.set_name("log-check");
  v1::RegisterWorkerResponse worker;
  grpc::ClientContext ctx;
  server_->Authorize(&ctx);
  ASSERT_TRUE(workers->RegisterWorker(&ctx, reg, &worker).ok());
  ASSERT_TRUE(Submit("file://" + CanonicalModelsDir() + "/tinystories-656k").ok());

  const std::string log = server_->Log();
  ASSERT_NE(log.find("registered"), std::string::npos) << "the log capture works: " << log;
  EXPECT_EQ(log.find(server_->token()), std::string::npos) << "the bearer token is in the server log";
  EXPECT_EQ(log.find(kWrongToken), std::string::npos) << "a client's wrong token is in the server log";
  EXPECT_EQ(log.find("Bearer"), std::string::npos) << "an authorization header is in the server log";
}

}  // namespace
}  // namespace slq::testing
