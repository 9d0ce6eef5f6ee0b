// InferenceService over a real grpc::Server on 127.0.0.1:0 and a real stub.
#include "server/api/inference_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "server/common/test_paths.h"
#include "server/metrics/metrics.h"

namespace slq::api {
namespace {

namespace v1 = slq::v1;

std::string Tiny() { return slq::testing::ModelsDir() + "/tinystories-656k"; }

class InferenceServiceTest : public ::testing::Test {
 protected:
  void StartServer(BearerAuth auth) {
    auth_ = std::make_unique<BearerAuth>(auth);
    inference::RegistryOptions ro;
    ro.engine.kv_cache_bytes = 16 << 20;
    registry_ = std::make_unique<inference::ModelRegistry>(
        inference::DefaultModelSource({.allowed_roots = {slq::testing::ModelsDir()}}), ro, &metrics_);
    inference::ModelSpec spec;
    spec.name = "tiny";
    spec.location = Tiny();
    ASSERT_TRUE(registry_->Load(spec).ok());
    service_ = std::make_unique<InferenceServiceImpl>(registry_.get(), &metrics_);
    grpc::ServerBuilder b;
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(MakeAuthInterceptorFactory(auth_.get()));
    b.experimental().SetInterceptorCreators(std::move(interceptors));
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = v1::InferenceService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  void SetUp() override { StartServer(BearerAuth::Disabled()); }
  void TearDown() override {
    if (server_) server_->Shutdown();
    registry_.reset();
  }

  struct Stream {
    std::vector<v1::GenerateResponse> messages;
    grpc::Status status;
    std::vector<int32_t> ids;
    std::string text;
  };
  Stream Generate(const v1::GenerateRequest& req, grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    if (!ctx) ctx = &local;
    Stream s;
    auto reader = stub_->Generate(ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
      s.messages.push_back(r);
      s.ids.insert(s.ids.end(), r.token_ids().begin(), r.token_ids().end());
      s.text += r.text();
    }
    s.status = reader->Finish();
    return s;
  }
  static v1::GenerateRequest Request(const std::string& prompt, int max_tokens) {
    v1::GenerateRequest req;
    req.set_model("tiny");
    req.set_prompt(prompt);
    req.set_max_tokens(max_tokens);
    return req;
  }

  Metrics metrics_;
  std::unique_ptr<BearerAuth> auth_;
  std::unique_ptr<inference::ModelRegistry> registry_;
  std::unique_ptr<InferenceServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::InferenceService::Stub> stub_;
};

TEST_F(InferenceServiceTest, StreamsGreedyTokensLikeTheEngine) {
  v1::GenerateRequest req = Request("Once upon a time", 24);
  req.set_logprobs(true);
  Stream s = Generate(req);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  // The reactor merges events that queued up while a write was in flight, so a fast engine may
  // deliver the whole generation in one message: the contract is per message, not a count.
  ASSERT_FALSE(s.messages.empty());
  const v1::GenerateResponse& last = s.messages.back();
  EXPECT_EQ(last.logprobs_size(), last.token_ids_size());
  EXPECT_NE(last.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(last.usage().generated_tokens(), static_cast<int32_t>(s.ids.size()));
  EXPECT_GT(last.usage().prompt_tokens(), 1);
  EXPECT_GT(last.usage().ttft_seconds(), 0);
  for (size_t i = 0; i + 1 < s.messages.size(); ++i) {
    EXPECT_EQ(s.messages[i].finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
    EXPECT_EQ(s.messages[i].logprobs_size(), s.messages[i].token_ids_size());
  }
  EXPECT_FALSE(s.text.empty());
  // The same request straight into the engine gives the same tokens and text.
  auto served = registry_->Get("tiny");
  ASSERT_TRUE(served.ok());
  auto direct = (*served)->engine().Submit(*FromProto(req));
  ASSERT_TRUE(direct.ok());
  std::vector<int32_t> ids;
  std::string text;
  inference::GenerationEvent e;
  while ((*direct)->Next(&e, absl::Seconds(30))) {
    ids.insert(ids.end(), e.token_ids.begin(), e.token_ids.end());
    text += e.text;
    if (e.final) break;
  }
  EXPECT_EQ(ids, s.ids);
  EXPECT_EQ(text, s.text);
  // The engine counts a request right after its final event: wait for the direct one.
  for (int i = 0; i < 200 && metrics_.inference_requests("tiny", "OK").Value() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(metrics_.inference_requests("tiny", "OK").Value(), 2);
}

TEST_F(InferenceServiceTest, BadRequestsNameTheProblem) {
  v1::GenerateRequest req = Request("Once", 8);
  req.set_model("nope");
  Stream s = Generate(req);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.status.error_message().find("loaded models: tiny"), std::string::npos) << s.status.error_message();

  req = Request("Once", 0);
  s = Generate(req);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.status.error_message().find("max_tokens"), std::string::npos) << s.status.error_message();

  req = Request("Once", 8);
  req.mutable_sampling()->set_top_p(1.5);
  s = Generate(req);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.status.error_message().find("top_p"), std::string::npos) << s.status.error_message();

  req = Request("", 8);
  req.clear_prompt();
  s = Generate(req);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.status.error_message().find("prompt"), std::string::npos) << s.status.error_message();

  grpc::ClientContext ctx;
  v1::LoadModelRequest load;
  v1::LoadModelResponse loaded;
  grpc::Status st = stub_->LoadModel(&ctx, load, &loaded);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("source"), std::string::npos);
}

TEST_F(InferenceServiceTest, CancelAndDeadlineFreeTheSlot) {
  auto served = *registry_->Get("tiny");
  {
    grpc::ClientContext ctx;
    auto reader = stub_->Generate(&ctx, Request("Once upon a time", 400));
    v1::GenerateResponse r;
    ASSERT_TRUE(reader->Read(&r));
    ctx.TryCancel();
    while (reader->Read(&r)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(5));
    v1::GenerateRequest req = Request("Once upon a time", 480);
    req.mutable_sampling()->set_temperature(1.0);
    Stream s = Generate(req, &ctx);
    EXPECT_EQ(s.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  for (int i = 0; i < 400 && served->engine().stats().kv_blocks_used != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(served->engine().stats().kv_blocks_used, 0);
  EXPECT_EQ(served->engine().stats().running, 0);
}

TEST_F(InferenceServiceTest, TokenizeScoreAndModelManagement) {
  grpc::ClientContext c1;
  v1::TokenizeRequest tr;
  tr.set_model("tiny");
  tr.set_text("Once upon a time");
  tr.set_add_special_tokens(true);
  v1::TokenizeResponse tok;
  ASSERT_TRUE(stub_->Tokenize(&c1, tr, &tok).ok());
  ASSERT_GT(tok.ids_size(), 2);
  EXPECT_EQ(tok.ids(0), 1);  // BOS
  EXPECT_EQ(tok.pieces_size(), tok.ids_size());

  grpc::ClientContext c2;
  v1::ScoreRequest sr;
  sr.set_model("tiny");
  sr.set_text("Once upon a time, there was a little girl.");
  v1::ScoreResponse score;
  ASSERT_TRUE(stub_->Score(&c2, sr, &score).ok());
  ASSERT_EQ(score.logprobs_size(), score.ids_size());
  EXPECT_EQ(score.logprobs(0), 0.0f);
  double nll = 0;
  for (int i = 1; i < score.logprobs_size(); ++i) {
    EXPECT_LT(score.logprobs(i), 0.0f);
    nll -= score.logprobs(i);
  }
  EXPECT_NEAR(score.mean_nll(), nll / (score.ids_size() - 1), 1e-5);
  EXPECT_LT(score.mean_nll(), std::log(2048.0));  // better than uniform: a trained model

  grpc::ClientContext c3;
  v1::LoadModelRequest lr;
  lr.set_model_uri(slq::testing::ModelsDir() + "/stories260k/stories260K.bin");
  v1::LoadModelResponse loaded;
  grpc::Status ls = stub_->LoadModel(&c3, lr, &loaded);
  ASSERT_TRUE(ls.ok()) << ls.error_message();
  EXPECT_EQ(loaded.model().name(), "stories260K");
  EXPECT_EQ(loaded.model().context_length(), 512);
  EXPECT_FALSE(loaded.model().quantized());

  grpc::ClientContext c4;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(&c4, v1::ListModelsRequest(), &list).ok());
  EXPECT_EQ(list.models_size(), 2);

  grpc::ClientContext c5;
  v1::UnloadModelRequest ur;
  ur.set_name("stories260K");
  v1::UnloadModelResponse unloaded;
  ASSERT_TRUE(stub_->UnloadModel(&c5, ur, &unloaded).ok());
  grpc::ClientContext c6;
  EXPECT_EQ(stub_->UnloadModel(&c6, ur, &unloaded).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(InferenceServiceTest, UnloadDuringAStreamEndsItUnavailable) {
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, Request("Once upon a time", 480));
  v1::GenerateResponse r;
  ASSERT_TRUE(reader->Read(&r));
  ASSERT_TRUE(registry_->Unload("tiny").ok());
  while (reader->Read(&r)) {
  }
  grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  Stream s = Generate(Request("Once", 4));
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.status.error_message().find("(none)"), std::string::npos) << s.status.error_message();
}

class AuthedInferenceServiceTest : public InferenceServiceTest {
 protected:
  void SetUp() override { StartServer(BearerAuth::FromToken("s3cret")); }
};

TEST_F(AuthedInferenceServiceTest, RejectsMissingOrWrongTokens) {
  grpc::ClientContext none;
  v1::ListModelsResponse list;
  EXPECT_EQ(stub_->ListModels(&none, v1::ListModelsRequest(), &list).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext wrong;
  wrong.AddMetadata("authorization", "Bearer nope");
  Stream s = Generate(Request("Once", 4), &wrong);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(s.messages.empty());
  grpc::ClientContext good;
  good.AddMetadata("authorization", "Bearer s3cret");
  EXPECT_TRUE(stub_->ListModels(&good, v1::ListModelsRequest(), &list).ok());
  EXPECT_EQ(list.models_size(), 1);
}

}  // namespace
}  // namespace slq::api
