// Fuzz target: gRPC request validation. The first input byte picks an RPC, the rest is that
// RPC's request message in protobuf wire format. Bytes that parse go to the real handler:
//
//  * JobService unary RPCs (SubmitJob, GetJob, ListJobs, CancelJob, ListArtifacts,
//    GetArtifact, RegisterWorker, LeaseTask, Heartbeat, CompleteTask): api::JobServiceImpl over
//    a real SQLite job store, artifact store and scheduler in a scratch directory, auth off,
//    model URIs checked with ParseModelUri (the server also checks the allowed roots);
//  * InferenceService Generate: api::FromProto (proto -> engine request) and the engine's
//    sampling validation; LoadModel: the source oneof and ParseModelUri.
//
// A handler may answer any status; the target checks that it does not crash, that every
// error has a message, and that errors are client codes for malformed input (never INTERNAL
// or UNKNOWN, which would mean the server failed on bad input).
#include <grpcpp/server_context.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fuzz/fuzz_util.h"
#include "google/protobuf/stubs/logging.h"
#include "server/api/auth.h"
#include "server/api/inference_service.h"
#include "server/api/job_service.h"
#include "server/api/worker_service.h"
#include "server/jobs/artifact_store.h"
#include "server/jobs/model_uri.h"
#include "server/jobs/sqlite_job_store.h"
#include "server/model/sampler.h"
#include "server/scheduler/scheduler.h"
#include "spdlog/spdlog.h"

namespace {

namespace v1 = slq::v1;

struct World {
  std::unique_ptr<slq::SqliteJobStore> store;
  std::unique_ptr<slq::LocalArtifactStore> artifacts;
  std::unique_ptr<slq::Scheduler> scheduler;
  slq::api::BearerAuth auth = slq::api::BearerAuth::Disabled();
  std::unique_ptr<slq::api::JobServiceImpl> jobs;
  std::unique_ptr<slq::api::WorkerServiceImpl> workers;
};

World* g_world = nullptr;

void Check(const grpc::Status& s) {
  if (s.ok()) return;
  if (s.error_message().empty()) __builtin_trap();
  if (s.error_code() == grpc::StatusCode::INTERNAL || s.error_code() == grpc::StatusCode::UNKNOWN) {
    std::fprintf(stderr, "server error on bad input: %d %s\n", s.error_code(), s.error_message().c_str());
    __builtin_trap();
  }
}

void Check(const absl::Status& s) {
  Check(grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message())));
}

template <typename Req>
bool Parse(const uint8_t* data, size_t size, Req* req) {
  return req->ParseFromArray(data, static_cast<int>(size));
}

template <typename Req, typename Resp, typename Service, typename Fn>
void UnaryOn(Service* service, const uint8_t* data, size_t size, Fn fn) {
  Req req;
  if (!Parse(data, size, &req)) return;
  Resp resp;
  grpc::ServerContext ctx;
  Check((service->*fn)(&ctx, &req, &resp));
}

template <typename Req, typename Resp, typename Fn>
void Unary(const uint8_t* data, size_t size, Fn fn) {
  UnaryOn<Req, Resp>(g_world->jobs.get(), data, size, fn);
}

template <typename Req, typename Resp, typename Fn>
void WorkerUnary(const uint8_t* data, size_t size, Fn fn) {
  UnaryOn<Req, Resp>(g_world->workers.get(), data, size, fn);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 in string fields is logged per parse
  auto* w = new World;
  const std::string dir = slq::fuzz::ScratchDir();
  auto store = slq::SqliteJobStore::Open(dir + "/jobs.db");
  if (!store.ok()) std::abort();
  w->store = std::move(*store);
  auto artifacts = slq::LocalArtifactStore::Open(dir + "/artifacts");
  if (!artifacts.ok()) std::abort();
  w->artifacts = std::move(*artifacts);
  w->scheduler = std::make_unique<slq::Scheduler>(w->store.get(), w->artifacts.get(), nullptr);
  slq::api::JobServiceOptions o;
  o.validate_model_uri = [](const std::string& uri) { return slq::ParseModelUri(uri).status(); };
  w->jobs =
      std::make_unique<slq::api::JobServiceImpl>(w->store.get(), w->artifacts.get(), w->scheduler.get(), nullptr, o);
  slq::api::WorkerServiceOptions wo;
  wo.max_lease_wait_seconds = 0;
  w->workers = std::make_unique<slq::api::WorkerServiceImpl>(w->store.get(), w->scheduler.get(), wo);
  g_world = w;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t kind = data[0] % 12;
  ++data;
  --size;
  using S = slq::api::JobServiceImpl;
  using W = slq::api::WorkerServiceImpl;
  switch (kind) {
    case 0:
      Unary<v1::SubmitJobRequest, v1::SubmitJobResponse>(data, size, &S::SubmitJob);
      break;
    case 1:
      Unary<v1::GetJobRequest, v1::GetJobResponse>(data, size, &S::GetJob);
      break;
    case 2:
      Unary<v1::ListJobsRequest, v1::ListJobsResponse>(data, size, &S::ListJobs);
      break;
    case 3:
      Unary<v1::CancelJobRequest, v1::CancelJobResponse>(data, size, &S::CancelJob);
      break;
    case 4:
      Unary<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(data, size, &S::ListArtifacts);
      break;
    case 5:
      Unary<v1::GetArtifactRequest, v1::GetArtifactResponse>(data, size, &S::GetArtifact);
      break;
    case 6:
      WorkerUnary<v1::RegisterWorkerRequest, v1::RegisterWorkerResponse>(data, size, &W::RegisterWorker);
      break;
    case 7:
      WorkerUnary<v1::LeaseTaskRequest, v1::LeaseTaskResponse>(data, size, &W::LeaseTask);
      break;
    case 8:
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(data, size, &W::Heartbeat);
      break;
    case 9:
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(data, size, &W::CompleteTask);
      break;
    case 10: {
      v1::GenerateRequest req;
      if (!Parse(data, size, &req)) return 0;
      auto r = slq::api::FromProto(req);
      if (!r.ok()) {
        Check(r.status());
        return 0;
      }
      Check(slq::ValidateSamplingParams(r->sampling, 512));
      break;
    }
    case 11: {
      v1::LoadModelRequest req;
      if (!Parse(data, size, &req)) return 0;
      if (req.source_case() == v1::LoadModelRequest::kModelUri) Check(slq::ParseModelUri(req.model_uri()).status());
      break;
    }
  }
  return 0;
}
