// gRPC InferenceService (proto/slq/v1/inference_service.proto) over inference::ModelRegistry.
//
//   inference::ModelRegistry registry(inference::DefaultModelSource({...}), {...}, &metrics);
//   api::InferenceServiceImpl service(&registry, &metrics);   // auth: the server interceptor (auth.h)
//   builder.RegisterService(&service);
//
// Callback API: Generate is one ServerWriteReactor per stream that writes engine events as
// they come (events that pile up while a write is in flight are merged into one message); a
// client cancel (OnCancel) or a deadline drops the request from the batch at the next engine
// step. Unary RPCs run inline on gRPC's callback threads (Score and LoadModel do real work:
// a teacher-forced pass, a model load). The server's auth interceptor checks the token. proto types
// stop here: requests become inference:: types, absl::Status becomes grpc::Status
// (ToGrpcStatus). Thread-safe; pointers are not owned and must outlive the service.
#ifndef SLQ_SERVER_API_INFERENCE_SERVICE_H_
#define SLQ_SERVER_API_INFERENCE_SERVICE_H_

#include "absl/status/statusor.h"
#include "server/api/auth.h"
#include "server/inference/model_registry.h"
#include "slq/v1/inference_service.grpc.pb.h"

namespace slq {
class Metrics;
}

namespace slq::api {

// Proto -> engine request (sampling defaults: top_p 0 -> 1, repetition_penalty 0 -> 1).
// InvalidArgument naming the field for values that cannot be represented.
[[nodiscard]] absl::StatusOr<inference::GenerationRequest> FromProto(const slq::v1::GenerateRequest& r);
slq::v1::GenerateResponse ToProto(const inference::GenerationEvent& e);
slq::v1::ModelInfo ToProto(const inference::ModelInfo& m);

class InferenceServiceImpl final : public slq::v1::InferenceService::CallbackService {
 public:
  // metrics may be null.
  InferenceServiceImpl(inference::ModelRegistry* registry, Metrics* metrics);

  grpc::ServerWriteReactor<slq::v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                                const slq::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context, const slq::v1::TokenizeRequest* request,
                                     slq::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context, const slq::v1::ScoreRequest* request,
                                  slq::v1::ScoreResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context, const slq::v1::ListModelsRequest* request,
                                       slq::v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context, const slq::v1::LoadModelRequest* request,
                                      slq::v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const slq::v1::UnloadModelRequest* request,
                                        slq::v1::UnloadModelResponse* response) override;

 private:
  absl::Status DoTokenize(const slq::v1::TokenizeRequest& req, slq::v1::TokenizeResponse* resp);
  absl::Status DoScore(const slq::v1::ScoreRequest& req, slq::v1::ScoreResponse* resp);
  absl::Status DoLoad(const slq::v1::LoadModelRequest& req, slq::v1::LoadModelResponse* resp);
  // Counts a Generate rejected before it reached an engine.
  void CountRejected(const std::string& model, const absl::Status& s);

  inference::ModelRegistry* const registry_;
  Metrics* const metrics_;
};

}  // namespace slq::api

#endif  // SLQ_SERVER_API_INFERENCE_SERVICE_H_
