// Bad-input sweep: every RPC of JobService and InferenceService (proto/slq/v1/*.proto) called
// over loopback gRPC on a real in-process server (LoopbackServer) with invalid fields, one
// table row per (RPC, bad field). Each row states the status code the server must answer
// (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION or ALREADY_EXISTS as
// the proto/docs say) and a string the message must hold: the field's name as the proto spells
// it (e.g. "spec.target.min_ear", "prompt_ids[0]"), or the unknown id for NOT_FOUND. The last
// test checks that the table covers every RPC of both services that takes a field.
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
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

namespace v1 = slq::v1;
using grpc::StatusCode;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const std::string kUnknownArtifact(64, 'a');

struct Env {
  LoopbackServer* server;
  std::unique_ptr<v1::JobService::Stub> jobs;
  std::unique_ptr<v1::WorkerService::Stub> workers;
  std::unique_ptr<v1::InferenceService::Stub> infer;
  std::string job_id;     // a real queued job
  std::string worker_id;  // a registered worker
};

struct Case {
  std::string rpc;   // "Service.Method"
  std::string what;  // the bad input
  std::function<grpc::Status(Env&)> call;
  StatusCode code;
  std::string needle;  // must appear in the error message
};

std::unique_ptr<grpc::ClientContext> Ctx(const Env& e) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  e.server->Authorize(ctx.get());
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return ctx;
}

v1::JobSpec GoodSpec() {
  v1::JobSpec s;
  s.set_model_uri("file://" + CanonicalModelsDir() + "/tinystories-656k");
  s.mutable_target()->set_min_ear(0.99);
  return s;
}

// ---- JobService -----------------------------------------------------------------------
std::function<grpc::Status(Env&)> Submit(std::function<void(v1::SubmitJobRequest&)> edit) {
  return [edit](Env& e) {
    v1::SubmitJobRequest r;
    *r.mutable_spec() = GoodSpec();
    edit(r);
    v1::SubmitJobResponse resp;
    return e.jobs->SubmitJob(Ctx(e).get(), r, &resp);
  };
}
std::function<grpc::Status(Env&)> SubmitSpec(std::function<void(v1::JobSpec&)> edit) {
  return Submit([edit](v1::SubmitJobRequest& r) { edit(*r.mutable_spec()); });
}

template <typename Req, typename Resp>
std::function<grpc::Status(Env&)> JobUnary(grpc::Status (v1::JobService::Stub::*method)(grpc::ClientContext*,
                                                                                        const Req&, Resp*),
                                           std::function<void(Env&, Req&)> fill) {
  return [method, fill](Env& e) {
    Req r;
    fill(e, r);
    Resp resp;
    return (e.jobs.get()->*method)(Ctx(e).get(), r, &resp);
  };
}

template <typename Req, typename Resp>
std::function<grpc::Status(Env&)> WorkerUnary(grpc::Status (v1::WorkerService::Stub::*method)(grpc::ClientContext*,
                                                                                              const Req&, Resp*),
                                              std::function<void(Env&, Req&)> fill) {
  return [method, fill](Env& e) {
    Req r;
    fill(e, r);
    Resp resp;
    return (e.workers.get()->*method)(Ctx(e).get(), r, &resp);
  };
}

std::function<grpc::Status(Env&)> Watch(std::function<void(Env&, v1::WatchJobRequest&)> fill) {
  return [fill](Env& e) {
    v1::WatchJobRequest r;
    fill(e, r);
    auto ctx = Ctx(e);
    auto reader = e.jobs->WatchJob(ctx.get(), r);
    v1::WatchJobResponse m;
    while (reader->Read(&m)) {
    }
    return reader->Finish();
  };
}

std::function<grpc::Status(Env&)> Download(std::function<void(v1::DownloadArtifactRequest&)> fill) {
  return [fill](Env& e) {
    v1::DownloadArtifactRequest r;
    fill(r);
    auto ctx = Ctx(e);
    auto reader = e.jobs->DownloadArtifact(ctx.get(), r);
    v1::DownloadArtifactResponse m;
    while (reader->Read(&m)) {
    }
    return reader->Finish();
  };
}

// ---- InferenceService ---------------------------------------------------------------------
std::function<grpc::Status(Env&)> Generate(std::function<void(Env&, v1::GenerateRequest&)> edit) {
  return [edit](Env& e) {
    v1::GenerateRequest r;
    r.set_model(e.server->model_name());
    r.set_prompt("Once upon a time");
    r.set_max_tokens(4);
    edit(e, r);
    auto ctx = Ctx(e);
    auto reader = e.infer->Generate(ctx.get(), r);
    v1::GenerateResponse m;
    while (reader->Read(&m)) {
    }
    return reader->Finish();
  };
}

template <typename Req, typename Resp>
std::function<grpc::Status(Env&)> InferUnary(grpc::Status (v1::InferenceService::Stub::*method)(grpc::ClientContext*,
                                                                                                const Req&, Resp*),
                                             std::function<void(Env&, Req&)> fill) {
  return [method, fill](Env& e) {
    Req r;
    fill(e, r);
    Resp resp;
    return (e.infer.get()->*method)(Ctx(e).get(), r, &resp);
  };
}

using S = v1::JobService::Stub;
using I = v1::InferenceService::Stub;
using W = v1::WorkerService::Stub;

std::vector<Case> Cases() {
  const std::string models = CanonicalModelsDir();
  std::vector<Case> c;
  auto add = [&](std::string rpc, std::string what, std::function<grpc::Status(Env&)> call, StatusCode code,
                 std::string needle) {
    c.push_back({rpc, what, call, code, needle});
  };
  const StatusCode kInvalid = StatusCode::INVALID_ARGUMENT, kNotFound = StatusCode::NOT_FOUND;

  // SubmitJob
  add("JobService.SubmitJob", "no spec", Submit([](auto& r) { r.clear_spec(); }), kInvalid, "spec.model_uri");
  add("JobService.SubmitJob", "unknown scheme", SubmitSpec([](auto& s) { s.set_model_uri("s3://bucket/m"); }), kInvalid,
      "spec.model_uri");
  add("JobService.SubmitJob", "relative file path", SubmitSpec([](auto& s) { s.set_model_uri("file://models/x"); }),
      kInvalid, "spec.model_uri");
  add("JobService.SubmitJob", "malformed hf repo", SubmitSpec([](auto& s) { s.set_model_uri("hf://only-org"); }),
      kInvalid, "spec.model_uri");
  add("JobService.SubmitJob", "hf revision with ..",
      SubmitSpec([](auto& s) { s.set_model_uri("hf://org/name@../../x"); }), kInvalid, "spec.model_uri");
  add("JobService.SubmitJob", "calibration_data unknown name",
      SubmitSpec([](auto& s) { s.set_calibration_data("no-such-text"); }), kInvalid, "spec.calibration_data");
  add("JobService.SubmitJob", "calibration_data outside the roots",
      SubmitSpec([](auto& s) { s.set_calibration_data("file:///etc/passwd"); }), StatusCode::PERMISSION_DENIED,
      "spec.calibration_data");
  add("JobService.SubmitJob", "eval_data missing file",
      SubmitSpec([models](auto& s) { s.set_eval_data("file://" + models + "/no-such.txt"); }), kNotFound,
      "spec.eval_data");
  add("JobService.SubmitJob", "missing directory",
      SubmitSpec([models](auto& s) { s.set_model_uri("file://" + models + "/no-such-model"); }), kNotFound,
      "spec.model_uri");
  add("JobService.SubmitJob", "directory outside the roots",
      SubmitSpec([](auto& s) { s.set_model_uri("file:///etc"); }), StatusCode::PERMISSION_DENIED, "spec.model_uri");
  add("JobService.SubmitJob", "no target", SubmitSpec([](auto& s) { s.clear_target(); }), kInvalid, "spec.target");
  add("JobService.SubmitJob", "min_ear > 1", SubmitSpec([](auto& s) { s.mutable_target()->set_min_ear(1.5); }),
      kInvalid, "spec.target.min_ear");
  add("JobService.SubmitJob", "min_ear NaN", SubmitSpec([](auto& s) { s.mutable_target()->set_min_ear(kNaN); }),
      kInvalid, "spec.target.min_ear");
  add("JobService.SubmitJob", "max_kl 0", SubmitSpec([](auto& s) { s.mutable_target()->set_max_kl(0); }), kInvalid,
      "spec.target.max_kl");
  add("JobService.SubmitJob", "max_kl inf", SubmitSpec([](auto& s) { s.mutable_target()->set_max_kl(kInf); }), kInvalid,
      "spec.target.max_kl");
  add("JobService.SubmitJob", "max_avg_bits 1", SubmitSpec([](auto& s) { s.mutable_target()->set_max_avg_bits(1); }),
      kInvalid, "spec.target.max_avg_bits");
  add("JobService.SubmitJob", "task_lossless_kl < 0",
      SubmitSpec([](auto& s) { s.mutable_target()->set_task_lossless_kl(-1); }), kInvalid,
      "spec.target.task_lossless_kl");
  add("JobService.SubmitJob", "formats not a list", SubmitSpec([](auto& s) { s.set_formats("4;8"); }), kInvalid,
      "spec.formats");
  // The job-spec contract (server/spec/job_spec.h): rejected at submit, not later in a profile task.
  add("JobService.SubmitJob", "formats 9-10", SubmitSpec([](auto& s) { s.set_formats("9-10"); }), kInvalid,
      "spec.formats '9-10': '9' is not a bitwidth in 2..8");
  add("JobService.SubmitJob", "formats 1..8", SubmitSpec([](auto& s) { s.set_formats("1..8"); }), kInvalid,
      "spec.formats '1..8'");
  add("JobService.SubmitJob", "formats 4,4", SubmitSpec([](auto& s) { s.set_formats("4,4"); }), kInvalid,
      "4 is listed twice");
  add("JobService.SubmitJob", "max_avg_bits 2 (unreachable)", SubmitSpec([](auto& s) {
        s.mutable_target()->set_max_avg_bits(2);
        s.set_formats("2..8");
      }),
      kInvalid, "spec.target");
  add("JobService.SubmitJob", "max_avg_bits below the smallest width", SubmitSpec([](auto& s) {
        s.mutable_target()->set_max_avg_bits(3.5);
        s.set_formats("4-8");
      }),
      kInvalid, "unreachable");
  add("JobService.SubmitJob", "grids not off/on/both", SubmitSpec([](auto& s) { s.set_grids("sometimes"); }), kInvalid,
      "spec.grids 'sometimes' is not one of off, on, both");
  add("JobService.SubmitJob", "grids on with symmetric scales", SubmitSpec([](auto& s) {
        s.set_grids("on");
        s.set_symmetric(true);
      }),
      kInvalid, "spec.grids 'on' needs asymmetric scales");
  add("JobService.SubmitJob", "cloze_items -1", SubmitSpec([](auto& s) { s.set_cloze_items(-1); }), kInvalid,
      "spec.cloze_items must be >= 0");
  add("JobService.SubmitJob", "scales not fp16/s8/both", SubmitSpec([](auto& s) { s.set_scales("s4"); }), kInvalid,
      "spec.scales 's4' is not one of fp16, s8, both");
  add("JobService.SubmitJob", "scales s8 with hadamard", SubmitSpec([](auto& s) {
        s.set_scales("s8");
        s.set_hadamard(true);
      }),
      kInvalid, "spec.scales 's8' cannot be combined with hadamard");
  add("JobService.SubmitJob", "max_avg_bits below the s8 floor", SubmitSpec([](auto& s) {
        s.mutable_target()->set_max_avg_bits(4.05);  // 4 + 12/128 = 4.094 with s8 at g128
        s.set_formats("4-8");
        s.set_scales("s8");
      }),
      kInvalid, "s8 scale code and zero-point overhead");
  add("JobService.SubmitJob", "task_lossless_kl 0",
      SubmitSpec([](auto& s) { s.mutable_target()->set_task_lossless_kl(0); }), kInvalid,
      "spec.target.task_lossless_kl");
  add("JobService.SubmitJob", "group_size 7", SubmitSpec([](auto& s) { s.set_group_size(7); }), kInvalid,
      "spec.group_size");
  add("JobService.SubmitJob", "temperature < 0", SubmitSpec([](auto& s) { s.set_temperature(-0.5); }), kInvalid,
      "spec.temperature");
  add("JobService.SubmitJob", "temperature NaN", SubmitSpec([](auto& s) { s.set_temperature(kNaN); }), kInvalid,
      "spec.temperature");
  add("JobService.SubmitJob", "idempotency_key 300 bytes",
      Submit([](auto& r) { r.set_idempotency_key(std::string(300, 'k')); }), kInvalid, "idempotency_key");
  add("JobService.SubmitJob", "idempotency_key reused with another spec", Submit([](auto& r) {
        r.set_idempotency_key("sweep-key");
        r.mutable_spec()->mutable_target()->set_min_ear(0.95);
      }),
      StatusCode::ALREADY_EXISTS, "idempotency_key");

  // GetJob / ListJobs / WatchJob / CancelJob
  add("JobService.GetJob", "empty job_id",
      JobUnary<v1::GetJobRequest, v1::GetJobResponse>(&S::GetJob, [](auto&, auto&) {}), kInvalid, "job_id");
  add("JobService.GetJob", "unknown job_id",
      JobUnary<v1::GetJobRequest, v1::GetJobResponse>(&S::GetJob, [](auto&, auto& r) { r.set_job_id("job-nope-1"); }),
      kNotFound, "job-nope-1");
  add("JobService.ListJobs", "page_size -1",
      JobUnary<v1::ListJobsRequest, v1::ListJobsResponse>(&S::ListJobs, [](auto&, auto& r) { r.set_page_size(-1); }),
      kInvalid, "page_size");
  add("JobService.ListJobs", "page_size 501",
      JobUnary<v1::ListJobsRequest, v1::ListJobsResponse>(&S::ListJobs, [](auto&, auto& r) { r.set_page_size(501); }),
      kInvalid, "page_size");
  add("JobService.ListJobs", "state 42",
      JobUnary<v1::ListJobsRequest, v1::ListJobsResponse>(
          &S::ListJobs, [](auto&, auto& r) { r.set_state(static_cast<v1::JobState>(42)); }),
      kInvalid, "state");
  add("JobService.ListJobs", "forged page_token",
      JobUnary<v1::ListJobsRequest, v1::ListJobsResponse>(&S::ListJobs,
                                                          [](auto&, auto& r) { r.set_page_token("zzz"); }),
      kInvalid, "page_token");
  add("JobService.WatchJob", "empty job_id", Watch([](auto&, auto&) {}), kInvalid, "job_id");
  add("JobService.WatchJob", "after_sequence -1", Watch([](Env& e, auto& r) {
        r.set_job_id(e.job_id);
        r.set_after_sequence(-1);
      }),
      kInvalid, "after_sequence");
  add("JobService.WatchJob", "unknown job_id", Watch([](auto&, auto& r) { r.set_job_id("job-nope-2"); }), kNotFound,
      "job-nope-2");
  add("JobService.CancelJob", "empty job_id",
      JobUnary<v1::CancelJobRequest, v1::CancelJobResponse>(&S::CancelJob, [](auto&, auto&) {}), kInvalid, "job_id");
  add("JobService.CancelJob", "unknown job_id",
      JobUnary<v1::CancelJobRequest, v1::CancelJobResponse>(&S::CancelJob,
                                                            [](auto&, auto& r) { r.set_job_id("job-nope-3"); }),
      kNotFound, "job-nope-3");

  // Artifacts
  add("JobService.ListArtifacts", "page_size -1",
      JobUnary<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(&S::ListArtifacts,
                                                                    [](auto&, auto& r) { r.set_page_size(-1); }),
      kInvalid, "page_size");
  add("JobService.ListArtifacts", "page_size 501",
      JobUnary<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(&S::ListArtifacts,
                                                                    [](auto&, auto& r) { r.set_page_size(501); }),
      kInvalid, "page_size");
  add("JobService.ListArtifacts", "page_token not a number",
      JobUnary<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(&S::ListArtifacts,
                                                                    [](auto&, auto& r) { r.set_page_token("abc"); }),
      kInvalid, "page_token");
  add("JobService.ListArtifacts", "negative page_token",
      JobUnary<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(&S::ListArtifacts,
                                                                    [](auto&, auto& r) { r.set_page_token("-5"); }),
      kInvalid, "page_token");
  add("JobService.GetArtifact", "empty artifact_id",
      JobUnary<v1::GetArtifactRequest, v1::GetArtifactResponse>(&S::GetArtifact, [](auto&, auto&) {}), kInvalid,
      "artifact_id");
  add("JobService.GetArtifact", "unknown artifact_id",
      JobUnary<v1::GetArtifactRequest, v1::GetArtifactResponse>(
          &S::GetArtifact, [](auto&, auto& r) { r.set_artifact_id(kUnknownArtifact); }),
      kNotFound, kUnknownArtifact);
  add("JobService.DownloadArtifact", "empty artifact_id", Download([](auto&) {}), kInvalid, "artifact_id");
  add("JobService.DownloadArtifact", "chunk_bytes -1", Download([](auto& r) {
        r.set_artifact_id(kUnknownArtifact);
        r.set_chunk_bytes(-1);
      }),
      kInvalid, "chunk_bytes");
  add("JobService.DownloadArtifact", "chunk_bytes 5 MiB", Download([](auto& r) {
        r.set_artifact_id(kUnknownArtifact);
        r.set_chunk_bytes(5 << 20);
      }),
      kInvalid, "chunk_bytes");
  add("JobService.DownloadArtifact", "artifact_id a path", Download([](auto& r) { r.set_artifact_id("../../etc"); }),
      kInvalid, "artifact");
  add("JobService.DownloadArtifact", "unknown artifact_id",
      Download([](auto& r) { r.set_artifact_id(kUnknownArtifact); }), kNotFound, kUnknownArtifact);

  // Worker RPCs
  add("WorkerService.RegisterWorker", "empty name",
      WorkerUnary<v1::RegisterWorkerRequest, v1::RegisterWorkerResponse>(&W::RegisterWorker, [](auto&, auto&) {}),
      kInvalid, "name");
  add("WorkerService.RegisterWorker", "name 200 bytes",
      WorkerUnary<v1::RegisterWorkerRequest, v1::RegisterWorkerResponse>(
          &W::RegisterWorker, [](auto&, auto& r) { r.set_name(std::string(200, 'w')); }),
      kInvalid, "name");
  add("WorkerService.RegisterWorker", "device 9",
      WorkerUnary<v1::RegisterWorkerRequest, v1::RegisterWorkerResponse>(&W::RegisterWorker,
                                                                         [](auto&, auto& r) {
                                                                           r.set_name("w");
                                                                           r.set_device(
                                                                               static_cast<v1::WorkerDevice>(9));
                                                                         }),
      kInvalid, "device");
  add("WorkerService.LeaseTask", "empty worker_id",
      WorkerUnary<v1::LeaseTaskRequest, v1::LeaseTaskResponse>(&W::LeaseTask, [](auto&, auto&) {}), kInvalid,
      "worker_id");
  add("WorkerService.LeaseTask", "unregistered worker_id",
      WorkerUnary<v1::LeaseTaskRequest, v1::LeaseTaskResponse>(&W::LeaseTask,
                                                               [](auto&, auto& r) { r.set_worker_id("worker-nope"); }),
      kNotFound, "worker-nope");
  add("WorkerService.LeaseTask", "wait_seconds -1",
      WorkerUnary<v1::LeaseTaskRequest, v1::LeaseTaskResponse>(&W::LeaseTask,
                                                               [](Env& e, auto& r) {
                                                                 r.set_worker_id(e.worker_id);
                                                                 r.set_wait_seconds(-1);
                                                               }),
      kInvalid, "wait_seconds");
  add("WorkerService.Heartbeat", "empty worker_id",
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(&W::Heartbeat,
                                                               [](auto&, auto& r) { r.set_task_id("t"); }),
      kInvalid, "worker_id");
  add("WorkerService.Heartbeat", "empty task_id",
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(&W::Heartbeat,
                                                               [](Env& e, auto& r) { r.set_worker_id(e.worker_id); }),
      kInvalid, "task_id");
  add("WorkerService.Heartbeat", "progress 1.5",
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(&W::Heartbeat,
                                                               [](Env& e, auto& r) {
                                                                 r.set_worker_id(e.worker_id);
                                                                 r.set_task_id("task-x");
                                                                 r.set_progress(1.5);
                                                               }),
      kInvalid, "progress");
  add("WorkerService.Heartbeat", "progress NaN",
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(&W::Heartbeat,
                                                               [](Env& e, auto& r) {
                                                                 r.set_worker_id(e.worker_id);
                                                                 r.set_task_id("task-x");
                                                                 r.set_progress(kNaN);
                                                               }),
      kInvalid, "progress");
  add("WorkerService.Heartbeat", "stage 42",
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(&W::Heartbeat,
                                                               [](Env& e, auto& r) {
                                                                 r.set_worker_id(e.worker_id);
                                                                 r.set_task_id("task-x");
                                                                 r.set_stage(static_cast<v1::JobStage>(42));
                                                               }),
      kInvalid, "stage");
  add("WorkerService.Heartbeat", "unknown task_id",
      WorkerUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(&W::Heartbeat,
                                                               [](Env& e, auto& r) {
                                                                 r.set_worker_id(e.worker_id);
                                                                 r.set_task_id("task-nope-4");
                                                               }),
      kNotFound, "task-nope-4");
  add("WorkerService.CompleteTask", "empty worker_id",
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(&W::CompleteTask,
                                                                     [](auto&, auto& r) {
                                                                       r.set_task_id("t");
                                                                       r.mutable_result()->mutable_fetch();
                                                                     }),
      kInvalid, "worker_id");
  add("WorkerService.CompleteTask", "empty task_id",
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(&W::CompleteTask,
                                                                     [](Env& e, auto& r) {
                                                                       r.set_worker_id(e.worker_id);
                                                                       r.mutable_result()->mutable_fetch();
                                                                     }),
      kInvalid, "task_id");
  add("WorkerService.CompleteTask", "no outcome",
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(&W::CompleteTask,
                                                                     [](Env& e, auto& r) {
                                                                       r.set_worker_id(e.worker_id);
                                                                       r.set_task_id("task-x");
                                                                     }),
      kInvalid, "result");
  add("WorkerService.CompleteTask", "unknown task_id",
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(&W::CompleteTask,
                                                                     [](Env& e, auto& r) {
                                                                       r.set_worker_id(e.worker_id);
                                                                       r.set_task_id("task-nope-5");
                                                                       r.mutable_error()->set_code(2);
                                                                       r.mutable_error()->set_message("boom");
                                                                     }),
      kNotFound, "task-nope-5");
  add("WorkerService.CompleteTask", "error code 0 (OK)",
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(&W::CompleteTask,
                                                                     [](Env& e, auto& r) {
                                                                       r.set_worker_id(e.worker_id);
                                                                       r.set_task_id("task-x");
                                                                       r.mutable_error()->set_message("boom");
                                                                     }),
      kInvalid, "error.code");
  add("WorkerService.CompleteTask", "empty result",
      WorkerUnary<v1::CompleteTaskRequest, v1::CompleteTaskResponse>(&W::CompleteTask,
                                                                     [](Env& e, auto& r) {
                                                                       r.set_worker_id(e.worker_id);
                                                                       r.set_task_id("task-x");
                                                                       r.mutable_result();
                                                                     }),
      kInvalid, "result");

  // Generate
  add("InferenceService.Generate", "unknown model", Generate([](auto&, auto& r) { r.set_model("no-such-model"); }),
      kNotFound, "no-such-model");
  add("InferenceService.Generate", "empty model", Generate([](auto&, auto& r) { r.set_model(""); }), kNotFound,
      "model");
  add("InferenceService.Generate", "no prompt", Generate([](auto&, auto& r) { r.clear_prompt(); }), kInvalid, "prompt");
  add("InferenceService.Generate", "prompt_ids outside the vocab",
      Generate([](auto&, auto& r) { r.mutable_prompt_ids()->add_ids(100000); }), kInvalid, "prompt_ids[0]");
  add("InferenceService.Generate", "negative prompt_ids", Generate([](auto&, auto& r) {
        r.mutable_prompt_ids()->add_ids(1);
        r.mutable_prompt_ids()->add_ids(-3);
      }),
      kInvalid, "prompt_ids[1]");
  add("InferenceService.Generate", "prompt longer than the context",
      Generate([](auto&, auto& r) { r.set_prompt(std::string(20000, 'a') + " b c d e f g h i j k l"); }), kInvalid,
      "prompt");
  add("InferenceService.Generate", "max_tokens 0", Generate([](auto&, auto& r) { r.set_max_tokens(0); }), kInvalid,
      "max_tokens");
  add("InferenceService.Generate", "max_tokens -5", Generate([](auto&, auto& r) { r.set_max_tokens(-5); }), kInvalid,
      "max_tokens");
  add("InferenceService.Generate", "max_tokens beyond the context",
      Generate([](auto&, auto& r) { r.set_max_tokens(1 << 20); }), kInvalid, "max_tokens");
  add("InferenceService.Generate", "temperature -1",
      Generate([](auto&, auto& r) { r.mutable_sampling()->set_temperature(-1); }), kInvalid, "temperature");
  add("InferenceService.Generate", "temperature NaN",
      Generate([](auto&, auto& r) { r.mutable_sampling()->set_temperature(kNaN); }), kInvalid, "temperature");
  add("InferenceService.Generate", "temperature 1e300",
      Generate([](auto&, auto& r) { r.mutable_sampling()->set_temperature(1e300); }), kInvalid, "temperature");
  add("InferenceService.Generate", "top_k -1", Generate([](auto&, auto& r) { r.mutable_sampling()->set_top_k(-1); }),
      kInvalid, "top_k");
  add("InferenceService.Generate", "top_p 1.5", Generate([](auto&, auto& r) { r.mutable_sampling()->set_top_p(1.5); }),
      kInvalid, "top_p");
  add("InferenceService.Generate", "top_p -0.1",
      Generate([](auto&, auto& r) { r.mutable_sampling()->set_top_p(-0.1); }), kInvalid, "top_p");
  add("InferenceService.Generate", "repetition_penalty -1",
      Generate([](auto&, auto& r) { r.mutable_sampling()->set_repetition_penalty(-1); }), kInvalid,
      "repetition_penalty");
  add("InferenceService.Generate", "too many stop strings", Generate([](auto&, auto& r) {
        for (int i = 0; i < 1000; ++i) r.add_stop("s" + std::to_string(i));
      }),
      kInvalid, "stop");
  add("InferenceService.Generate", "empty stop string", Generate([](auto&, auto& r) { r.add_stop(""); }), kInvalid,
      "stop[0]");
  add("InferenceService.Generate", "stop string 100 KiB",
      Generate([](auto&, auto& r) { r.add_stop(std::string(100 << 10, 'x')); }), kInvalid, "stop[0]");

  // Tokenize / Score
  add("InferenceService.Tokenize", "unknown model",
      InferUnary<v1::TokenizeRequest, v1::TokenizeResponse>(&I::Tokenize,
                                                            [](auto&, auto& r) {
                                                              r.set_model("no-such-model");
                                                              r.set_text("hi");
                                                            }),
      kNotFound, "no-such-model");
  add("InferenceService.Tokenize", "empty model",
      InferUnary<v1::TokenizeRequest, v1::TokenizeResponse>(&I::Tokenize, [](auto&, auto& r) { r.set_text("hi"); }),
      kNotFound, "model");
  add("InferenceService.Score", "unknown model",
      InferUnary<v1::ScoreRequest, v1::ScoreResponse>(&I::Score,
                                                      [](auto&, auto& r) {
                                                        r.set_model("no-such-model");
                                                        r.set_text("hi");
                                                      }),
      kNotFound, "no-such-model");
  add("InferenceService.Score", "empty text",
      InferUnary<v1::ScoreRequest, v1::ScoreResponse>(&I::Score,
                                                      [](Env& e, auto& r) { r.set_model(e.server->model_name()); }),
      kInvalid, "text");
  add("InferenceService.Score", "text longer than the context",
      InferUnary<v1::ScoreRequest, v1::ScoreResponse>(&I::Score,
                                                      [](Env& e, auto& r) {
                                                        r.set_model(e.server->model_name());
                                                        std::string t;
                                                        for (int i = 0; i < 2000; ++i)
                                                          t += "w" + std::to_string(i) + " ";
                                                        r.set_text(t);
                                                      }),
      kInvalid, "text");

  // LoadModel / UnloadModel
  using LoadFn = std::function<void(Env&, v1::LoadModelRequest&)>;
  auto load = [](LoadFn f) { return InferUnary<v1::LoadModelRequest, v1::LoadModelResponse>(&I::LoadModel, f); };
  add("InferenceService.LoadModel", "no source", load([](auto&, auto& r) { r.set_name("x"); }), kInvalid, "source");
  add("InferenceService.LoadModel", "remote model_uri", load([](auto&, auto& r) { r.set_model_uri("hf://org/name"); }),
      kInvalid, "model_uri");
  add("InferenceService.LoadModel", "model_uri outside the roots",
      load([](auto&, auto& r) { r.set_model_uri("file:///etc"); }), StatusCode::PERMISSION_DENIED, "/etc");
  // LoadModel (model_loader.h): a path no loader accepts, a missing one included, is
  // INVALID_ARGUMENT listing the formats.
  add("InferenceService.LoadModel", "model_uri missing",
      load([models](auto&, auto& r) { r.set_model_uri("file://" + models + "/no-such-model"); }), kInvalid,
      "no-such-model");
  add("InferenceService.LoadModel", "artifact_id a path", load([](auto&, auto& r) { r.set_artifact_id("../x"); }),
      kInvalid, "artifact_id");
  add("InferenceService.LoadModel", "unknown artifact_id",
      load([](auto&, auto& r) { r.set_artifact_id(kUnknownArtifact); }), kNotFound, kUnknownArtifact);
  add("InferenceService.LoadModel", "artifact_path outside the roots",
      load([](auto&, auto& r) { r.set_artifact_path("/etc"); }), StatusCode::PERMISSION_DENIED, "/etc");
  add("InferenceService.LoadModel", "shadow_base_model for a base model", load([models](auto&, auto& r) {
        r.set_model_uri("file://" + models + "/tinystories-656k");
        r.set_shadow_base_model("stories260K");
      }),
      kInvalid, "shadow_base_model");
  add("InferenceService.LoadModel", "name taken", load([models](Env& e, auto& r) {
        r.set_name(e.server->model_name());
        r.set_model_uri("file://" + models + "/tinystories-656k");
      }),
      StatusCode::ALREADY_EXISTS, "stories260K");
  add("InferenceService.UnloadModel", "empty name",
      InferUnary<v1::UnloadModelRequest, v1::UnloadModelResponse>(&I::UnloadModel, [](auto&, auto&) {}), kInvalid,
      "name");
  add("InferenceService.UnloadModel", "unknown name",
      InferUnary<v1::UnloadModelRequest, v1::UnloadModelResponse>(&I::UnloadModel,
                                                                  [](auto&, auto& r) { r.set_name("no-such-model"); }),
      kNotFound, "no-such-model");
  return c;
}

class BadInputSweep : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new LoopbackServer();
    ASSERT_TRUE(server_->status().ok()) << server_->status();
    env_ = new Env{server_,
                   v1::JobService::NewStub(server_->channel()),
                   v1::WorkerService::NewStub(server_->channel()),
                   v1::InferenceService::NewStub(server_->channel()),
                   "",
                   ""};
    // A real job (stays queued: no worker) and a registered worker for the rows that need them.
    v1::SubmitJobRequest submit;
    *submit.mutable_spec() = GoodSpec();
    submit.set_idempotency_key("sweep-key");
    v1::SubmitJobResponse job;
    grpc::Status s = env_->jobs->SubmitJob(Ctx(*env_).get(), submit, &job);
    ASSERT_TRUE(s.ok()) << s.error_message();
    env_->job_id = job.job().id();
    v1::RegisterWorkerRequest reg;
    reg.set_name("sweep-worker");
    v1::RegisterWorkerResponse worker;
    s = env_->workers->RegisterWorker(Ctx(*env_).get(), reg, &worker);
    ASSERT_TRUE(s.ok()) << s.error_message();
    env_->worker_id = worker.worker_id();
  }
  static void TearDownTestSuite() {
    delete env_;
    delete server_;
  }
  static LoopbackServer* server_;
  static Env* env_;
};
LoopbackServer* BadInputSweep::server_ = nullptr;
Env* BadInputSweep::env_ = nullptr;

TEST_F(BadInputSweep, EveryRowGetsItsCodeAndNamesTheField) {
  ASSERT_NE(env_, nullptr);
  int passed = 0;
  const std::vector<Case> cases = Cases();
  for (const Case& c : cases) {
    grpc::Status s = c.call(*env_);
    EXPECT_EQ(s.error_code(), c.code) << c.rpc << " [" << c.what << "]: got " << s.error_code() << " '"
                                      << s.error_message() << "'";
    EXPECT_NE(s.error_message().find(c.needle), std::string::npos)
        << c.rpc << " [" << c.what << "]: message '" << s.error_message() << "' does not name '" << c.needle << "'";
    if (s.error_code() == c.code && s.error_message().find(c.needle) != std::string::npos) ++passed;
  }
  std::printf("bad-input sweep: %d/%zu cases passed\n", passed, cases.size());
}

TEST_F(BadInputSweep, CoversEveryRpcThatTakesAField) {
  std::set<std::string> covered;
  for (const Case& c : Cases()) covered.insert(c.rpc);
  std::vector<std::string> missing;
  for (const char* service : {"slq.v1.JobService", "slq.v1.WorkerService", "slq.v1.InferenceService"}) {
    const auto* svc = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    if (svc == nullptr) {
      ADD_FAILURE() << service << " not in the descriptor pool";
      continue;
    }
    for (int i = 0; i < svc->method_count(); ++i) {
      const auto* m = svc->method(i);
      if (m->input_type()->field_count() == 0) continue;  // ListModels: nothing to get wrong
      const std::string name = svc->name() + "." + m->name();
      if (!covered.count(name)) missing.push_back(name);
    }
  }
  EXPECT_TRUE(missing.empty()) << "RPCs without a bad-input row: " << ::testing::PrintToString(missing);
}

// The server keeps serving valid requests after the sweep.
TEST_F(BadInputSweep, ServerStillServesAfterTheSweep) {
  ASSERT_NE(env_, nullptr);
  for (const Case& c : Cases()) (void)c.call(*env_);
  v1::GenerateRequest r;
  r.set_model(server_->model_name());
  r.set_prompt("Once upon a time");
  r.set_max_tokens(4);
  auto ctx = Ctx(*env_);
  auto reader = env_->infer->Generate(ctx.get(), r);
  v1::GenerateResponse m;
  int tokens = 0;
  while (reader->Read(&m)) tokens += m.token_ids_size();
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_GT(tokens, 0);
  v1::GetJobRequest g;
  g.set_job_id(env_->job_id);
  v1::GetJobResponse job;
  s = env_->jobs->GetJob(Ctx(*env_).get(), g, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace slq::testing
