#include "server/api/inference_service.h"

#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/api/status_map.h"
#include "server/common/status_macros.h"
#include "server/metrics/metrics.h"
#include "server/model/forward.h"

namespace slq::api {
namespace {

namespace v1 = slq::v1;
using inference::GenerationEvent;
using inference::RequestStream;

v1::FinishReason FinishToProto(inference::FinishReason r) {
  switch (r) {
    case inference::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case inference::FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case inference::FinishReason::kContext:
      return v1::FINISH_REASON_CONTEXT;
    case inference::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case inference::FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& ctx) {
  const auto d = ctx.deadline();
  if (d >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

// A stream rejected before it started: finishes at once with the status.
class RejectReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit RejectReactor(const grpc::Status& s) { Finish(s); }
  void OnDone() override { delete this; }
};

// Writes one request's engine events. Engine-side notifications reach the reactor through
// Link (shared with the stream's notifier), which OnDone severs under its mutex, so the
// engine thread never touches a deleted reactor. gRPC does not run reactions inline from
// Start*/Finish, so calling them under the mutex is safe.
class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  struct Link {
    absl::Mutex mu;
    GenerateReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };

  GenerateReactor(std::shared_ptr<inference::ServedModel> model, std::shared_ptr<RequestStream> stream)
      : model_(std::move(model)), stream_(std::move(stream)), link_(std::make_shared<Link>()) {
    {
      absl::MutexLock lock(&link_->mu);
      link_->reactor = this;
    }
    stream_->SetNotifier([link = link_] {
      absl::MutexLock lock(&link->mu);
      if (link->reactor) link->reactor->WriteNextLocked();
    });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&link_->mu);
    writing_ = false;
    if (!ok) {  // the client went away
      stream_->Cancel();
      FinishOnceLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed: client gone"));
      return;
    }
    WriteNextLocked();
  }
  void OnCancel() override { stream_->Cancel(); }
  void OnDone() override {
    {
      absl::MutexLock lock(&link_->mu);
      link_->reactor = nullptr;
    }
    stream_->Cancel();  // no-op if it already finished
    delete this;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (writing_ || finished_) return;
    std::optional<GenerationEvent> e = stream_->TryPopMerged();
    if (!e) return;
    if (e->final && !e->status.ok()) {
      FinishOnceLocked(ToGrpcStatus(e->status));
      return;
    }
    response_ = ToProto(*e);
    writing_ = true;
    if (e->final) {
      finished_ = true;
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&response_);
    }
  }
  void FinishOnceLocked(const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  std::shared_ptr<inference::ServedModel> model_;  // keeps the engine alive while streaming
  std::shared_ptr<RequestStream> stream_;
  std::shared_ptr<Link> link_;
  v1::GenerateResponse response_;  // the message in flight
  bool writing_ = false;           // guarded by link_->mu
  bool finished_ = false;          // guarded by link_->mu
};

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(s));
  return r;
}

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const grpc::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(s);
  return r;
}

float LogSoftmaxAt(const float* row, int64_t vocab, int32_t id) {
  double mx = row[0];
  for (int64_t v = 1; v < vocab; ++v) mx = std::max<double>(mx, row[v]);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - mx);
  return static_cast<float>(static_cast<double>(row[id]) - mx - std::log(sum));
}

}  // namespace

absl::StatusOr<inference::GenerationRequest> FromProto(const v1::GenerateRequest& r) {
  inference::GenerationRequest out;
  if (r.input_case() == v1::GenerateRequest::kPrompt) {
    out.prompt_text = r.prompt();
  } else if (r.input_case() == v1::GenerateRequest::kPromptIds) {
    out.prompt_ids.assign(r.prompt_ids().ids().begin(), r.prompt_ids().ids().end());
  }
  out.add_bos = r.add_bos();
  const v1::SamplingParams& s = r.sampling();
  if (!std::isfinite(s.temperature()) || !std::isfinite(s.top_p()) || !std::isfinite(s.repetition_penalty())) {
    return absl::InvalidArgumentError("sampling: temperature, top_p and repetition_penalty must be finite");
  }
  out.sampling.temperature = static_cast<float>(s.temperature());
  out.sampling.top_k = s.top_k();
  out.sampling.top_p = s.top_p() == 0 ? 1.0f : static_cast<float>(s.top_p());
  out.sampling.repetition_penalty = s.repetition_penalty() == 0 ? 1.0f : static_cast<float>(s.repetition_penalty());
  out.sampling.seed = s.seed();
  out.max_tokens = r.max_tokens();
  out.stop.assign(r.stop().begin(), r.stop().end());
  out.logprobs = r.logprobs();
  return out;
}

v1::GenerateResponse ToProto(const GenerationEvent& e) {
  v1::GenerateResponse out;
  out.mutable_token_ids()->Add(e.token_ids.begin(), e.token_ids.end());
  out.set_text(e.text);
  out.mutable_logprobs()->Add(e.logprobs.begin(), e.logprobs.end());
  if (e.final) {
    out.set_finish_reason(FinishToProto(e.finish));
    v1::Usage* u = out.mutable_usage();
    u->set_prompt_tokens(static_cast<int32_t>(e.usage.prompt_tokens));
    u->set_generated_tokens(static_cast<int32_t>(e.usage.generated_tokens));
    u->set_ttft_seconds(e.usage.ttft_seconds);
    u->set_total_seconds(e.usage.total_seconds);
  }
  return out;
}

v1::ModelInfo ToProto(const inference::ModelInfo& m) {
  v1::ModelInfo out;
  out.set_name(m.name);
  out.set_source(m.source);
  out.set_quantized(m.quantized);
  out.set_avg_bits(m.avg_bits);
  out.set_memory_bytes(m.memory_bytes);
  out.set_context_length(static_cast<int32_t>(m.context_length));
  out.set_device(m.device);
  out.set_certified_ear_lower(m.certified_ear_lower);
  return out;
}

InferenceServiceImpl::InferenceServiceImpl(inference::ModelRegistry* registry, Metrics* metrics)
    : registry_(registry), metrics_(metrics) {}

void InferenceServiceImpl::CountRejected(const std::string& model, const absl::Status& s) {
  if (metrics_) metrics_->inference_requests(model, absl::StatusCodeToString(s.code())).Increment();
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceServiceImpl::Generate(grpc::CallbackServerContext* context,
                                                                               const v1::GenerateRequest* request) {
  absl::StatusOr<std::shared_ptr<inference::ServedModel>> model = registry_->Get(request->model());
  if (!model.ok()) {
    CountRejected("unknown", model.status());  // a client-chosen name is no metric label
    return new RejectReactor(ToGrpcStatus(model.status()));
  }
  absl::StatusOr<inference::GenerationRequest> req = FromProto(*request);
  if (!req.ok()) {
    CountRejected(request->model(), req.status());
    return new RejectReactor(ToGrpcStatus(req.status()));
  }
  req->deadline = DeadlineOf(*context);
  // Submit counts its own rejections.
  absl::StatusOr<std::shared_ptr<RequestStream>> stream = (*model)->engine().Submit(*std::move(req));
  if (!stream.ok()) return new RejectReactor(ToGrpcStatus(stream.status()));
  return new GenerateReactor(*std::move(model), *std::move(stream));
}

absl::Status InferenceServiceImpl::DoTokenize(const v1::TokenizeRequest& req, v1::TokenizeResponse* resp) {
  SLQ_ASSIGN_OR_RETURN(std::shared_ptr<inference::ServedModel> m, registry_->Get(req.model()));
  SLQ_ASSIGN_OR_RETURN(std::vector<int32_t> ids, m->codec().Encode(req.text(), req.add_special_tokens()));
  for (int32_t id : ids) {
    resp->add_ids(id);
    resp->add_pieces(m->codec().Piece(id));
  }
  return absl::OkStatus();
}

absl::Status InferenceServiceImpl::DoScore(const v1::ScoreRequest& req, v1::ScoreResponse* resp) {
  SLQ_ASSIGN_OR_RETURN(std::shared_ptr<inference::ServedModel> m, registry_->Get(req.model()));
  if (req.text().empty()) return absl::InvalidArgumentError("text is empty: nothing to score");
  SLQ_ASSIGN_OR_RETURN(std::vector<int32_t> ids, m->codec().Encode(req.text(), true));
  const int64_t ctx = m->model().config.max_position_embeddings;
  if (static_cast<int64_t>(ids.size()) > ctx) {
    return absl::InvalidArgumentError(
        absl::StrCat("text has ", ids.size(), " tokens; model '", req.model(), "' has a context length of ", ctx));
  }
  SLQ_ASSIGN_OR_RETURN(std::vector<float> logits, TeacherForcedLogits(m->model(), ids));  // [T, vocab]
  const int64_t vocab = m->model().config.vocab_size;
  double nll = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    resp->add_ids(ids[i]);
    const float lp = i == 0 ? 0.0f : LogSoftmaxAt(logits.data() + (i - 1) * vocab, vocab, ids[i]);
    resp->add_logprobs(lp);
    nll -= lp;
  }
  resp->set_mean_nll(ids.size() > 1 ? nll / static_cast<double>(ids.size() - 1) : 0.0);
  return absl::OkStatus();
}

absl::Status InferenceServiceImpl::DoLoad(const v1::LoadModelRequest& req, v1::LoadModelResponse* resp) {
  inference::ModelSpec spec;
  spec.name = req.name();
  spec.shadow_base = req.shadow_base_model();
  switch (req.source_case()) {
    case v1::LoadModelRequest::kArtifactId:
      spec.kind = inference::ModelSpec::Kind::kArtifactId;
      spec.location = req.artifact_id();
      break;
    case v1::LoadModelRequest::kArtifactPath:
      spec.kind = inference::ModelSpec::Kind::kArtifactPath;
      spec.location = req.artifact_path();
      break;
    case v1::LoadModelRequest::kModelUri:
      spec.kind = inference::ModelSpec::Kind::kModelUri;
      spec.location = req.model_uri();
      break;
    default:
      return absl::InvalidArgumentError("source: set one of artifact_id, artifact_path or model_uri");
  }
  SLQ_ASSIGN_OR_RETURN(inference::ModelInfo info, registry_->Load(spec));
  *resp->mutable_model() = ToProto(info);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Tokenize(grpc::CallbackServerContext* context,
                                                         const v1::TokenizeRequest* request,
                                                         v1::TokenizeResponse* response) {
  return Done(context, DoTokenize(*request, response));
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Score(grpc::CallbackServerContext* context,
                                                      const v1::ScoreRequest* request, v1::ScoreResponse* response) {
  return Done(context, DoScore(*request, response));
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                           const v1::ListModelsRequest*,
                                                           v1::ListModelsResponse* response) {
  for (const inference::ModelInfo& m : registry_->List()) *response->add_models() = ToProto(m);
  return Done(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::LoadModel(grpc::CallbackServerContext* context,
                                                          const v1::LoadModelRequest* request,
                                                          v1::LoadModelResponse* response) {
  return Done(context, DoLoad(*request, response));
}

grpc::ServerUnaryReactor* InferenceServiceImpl::UnloadModel(grpc::CallbackServerContext* context,
                                                            const v1::UnloadModelRequest* request,
                                                            v1::UnloadModelResponse*) {
  if (request->name().empty()) return Done(context, absl::InvalidArgumentError("name is empty"));
  return Done(context, registry_->Unload(request->name()));
}

}  // namespace slq::api
