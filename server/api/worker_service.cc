#include "server/api/worker_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/api/job_convert.h"
#include "server/api/status_map.h"
#include "server/common/status_macros.h"
#include "server/scheduler/task_payload.h"
#include "spdlog/spdlog.h"

namespace slq::api {
namespace {

grpc::Status Invalid(const std::string& msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, BoundedMessage(msg));
}

}  // namespace

bool RetryableTaskCode(int code) {
  switch (static_cast<absl::StatusCode>(code)) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
      return false;
    default:
      return true;
  }
}

WorkerServiceImpl::WorkerServiceImpl(JobStore* store, Scheduler* scheduler, WorkerServiceOptions options)
    : store_(store), scheduler_(scheduler), options_(std::move(options)) {}

void WorkerServiceImpl::NotifyTaskEvent() {
  absl::MutexLock l(&mu_);
  ++event_epoch_;
}

void WorkerServiceImpl::Shutdown() {
  absl::MutexLock l(&mu_);
  shutdown_ = true;
}

bool WorkerServiceImpl::WaitForEvent(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  int64_t epoch = event_epoch_;
  auto changed = [this, epoch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return event_epoch_ != epoch || shutdown_; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return !shutdown_;
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext*, const slq::v1::RegisterWorkerRequest* req,
                                               slq::v1::RegisterWorkerResponse* resp) {
  if (req->name().empty() || req->name().size() > 128) return Invalid("name is required (at most 128 bytes)");
  if (!slq::v1::WorkerDevice_IsValid(req->device()))
    return Invalid(absl::StrCat("device ", req->device(), " is not a WorkerDevice"));
  Worker w;
  w.id = "worker-" + RandomHex(8);
  w.name = req->name();
  w.kind = req->device() == slq::v1::WORKER_DEVICE_CUDA ? WorkerKind::kGpu : WorkerKind::kCpu;
  absl::Status s = store_->RegisterWorker(w);
  if (!s.ok()) return ToGrpcStatus(s);
  {
    absl::MutexLock lock(&workers_mu_);
    workers_.insert(w.id);
  }
  spdlog::info("worker {} registered: {} ({})", w.id, w.name, req->device_name());
  resp->set_worker_id(w.id);
  resp->set_lease_seconds(static_cast<int32_t>(absl::ToInt64Seconds(options_.lease)));
  resp->set_heartbeat_seconds(static_cast<int32_t>(absl::ToInt64Seconds(options_.heartbeat)));
  return grpc::Status::OK;
}

absl::Status WorkerServiceImpl::CheckRegistered(const std::string& id) {
  {
    absl::MutexLock lock(&workers_mu_);
    if (workers_.contains(id)) return absl::OkStatus();
  }
  // Registered before this server started (the store keeps workers across restarts)?
  SLQ_ASSIGN_OR_RETURN(std::vector<Worker> all, store_->ListWorkers());
  absl::MutexLock lock(&workers_mu_);
  for (const Worker& w : all) workers_.insert(w.id);
  if (workers_.contains(id)) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("worker_id '", id, "' is not registered; call RegisterWorker first"));
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext* ctx, const slq::v1::LeaseTaskRequest* req,
                                          slq::v1::LeaseTaskResponse* resp) {
  if (req->worker_id().empty()) return Invalid("worker_id is required (RegisterWorker first)");
  if (req->wait_seconds() < 0) return Invalid("wait_seconds must be >= 0");
  if (absl::Status r = CheckRegistered(req->worker_id()); !r.ok()) return ToGrpcStatus(r);
  const absl::Time until = absl::Now() + absl::Seconds(std::min(req->wait_seconds(), options_.max_lease_wait_seconds));
  std::vector<std::string> kinds(req->kinds().begin(), req->kinds().end());
  while (!ctx->IsCancelled()) {
    auto task = store_->LeaseTask(req->worker_id(), kinds, options_.lease);
    if (!task.ok()) return ToGrpcStatus(task.status());
    if (task->has_value()) {
      const Task& t = **task;
      auto job = store_->GetJob(t.job_id);
      if (job.ok() && IsTerminal(job->state)) {  // a leftover of a finished job: retire it
        TaskOutcome o{.ok = false, .error = "job already " + std::string(JobStateName(job->state)), .retryable = false};
        (void)store_->CompleteTask(t.id, req->worker_id(), o);
        continue;
      }
      auto payload = DecodeTask<slq::v1::TaskPayload>(t.payload_json, absl::StrCat(t.kind, " task payload"));
      if (!payload.ok()) {  // no worker can run it: fail the task (and so the job) with the reason
        TaskOutcome o{.ok = false, .error = payload.status().ToString(), .retryable = false};
        (void)store_->CompleteTask(t.id, req->worker_id(), o);
        (void)scheduler_->Reconcile(t.job_id);
        continue;
      }
      auto* out = resp->mutable_task();
      out->set_id(t.id);
      out->set_job_id(t.job_id);
      out->set_kind(t.kind);
      *out->mutable_payload() = std::move(*payload);
      out->set_attempt(t.attempts);
      *out->mutable_lease_expire_time() = ToProto(t.lease_expiry);
      spdlog::info("job {}: task {} ({}) leased to {}", t.job_id, t.id, t.kind, req->worker_id());
      return grpc::Status::OK;
    }
    if (absl::Now() >= until) return grpc::Status::OK;
    if (!WaitForEvent(std::min(absl::Milliseconds(250), until - absl::Now()))) return grpc::Status::OK;
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*, const slq::v1::HeartbeatRequest* req,
                                          slq::v1::HeartbeatResponse* resp) {
  if (req->worker_id().empty() || req->task_id().empty()) return Invalid("worker_id and task_id are required");
  if (!(req->progress() >= 0 && req->progress() <= 1)) return Invalid("progress must be in [0, 1]");
  if (!slq::v1::JobStage_IsValid(req->stage()))
    return Invalid(absl::StrCat("stage ", req->stage(), " is not a JobStage"));
  auto task = store_->Heartbeat(req->task_id(), req->worker_id(), options_.lease);
  if (!task.ok()) return ToGrpcStatus(task.status());
  *resp->mutable_lease_expire_time() = ToProto(task->lease_expiry);
  auto job = store_->GetJob(task->job_id);
  if (job.ok() && IsTerminal(job->state)) {
    resp->set_cancel_requested(true);
    return grpc::Status::OK;
  }
  if (req->stage() != slq::v1::JOB_STAGE_UNSPECIFIED) {
    absl::Status s = scheduler_->TaskProgress(*task, FromProto(req->stage()), req->progress(), req->message());
    if (!s.ok()) spdlog::warn("job {}: progress: {}", task->job_id, s.ToString());
  }
  return grpc::Status::OK;
}

namespace {
// The task kind a result answers ("fetch", "profile", "search", "pack").
std::string ResultKind(const slq::v1::TaskResult& r) {
  switch (r.result_case()) {
    case slq::v1::TaskResult::kFetch:
      return "fetch";
    case slq::v1::TaskResult::kProfile:
      return "profile";
    case slq::v1::TaskResult::kSearch:
      return "search";
    case slq::v1::TaskResult::kPack:
      return "pack";
    default:
      return "";
  }
}
}  // namespace

grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext*, const slq::v1::CompleteTaskRequest* req,
                                             slq::v1::CompleteTaskResponse*) {
  if (req->worker_id().empty() || req->task_id().empty()) return Invalid("worker_id and task_id are required");
  TaskOutcome o;
  switch (req->outcome_case()) {
    case slq::v1::CompleteTaskRequest::kResult:
      if (req->result().result_case() == slq::v1::TaskResult::RESULT_NOT_SET) {
        return Invalid("result must hold the task's result (fetch, profile, search or pack)");
      }
      if (auto t = store_->GetTask(req->task_id()); t.ok() && ResultKind(req->result()) != t->kind) {
        return Invalid(absl::StrCat("task ", req->task_id(), " is a ", t->kind, " task but the result is a ",
                                    ResultKind(req->result()), " result"));
      }
      o.ok = true;
      o.result_json = EncodeTaskMessage(req->result());
      break;
    case slq::v1::CompleteTaskRequest::kError: {
      const int code = req->error().code();
      if (code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
        return Invalid(absl::StrCat("error.code must be a non-OK status code (1..16), got ", code));
      }
      o.ok = false;
      // The job's error reads as before ("NOT_FOUND: ..."); the retry decision comes from the code.
      o.error = absl::Status(static_cast<absl::StatusCode>(code), req->error().message()).ToString();
      o.retryable = RetryableTaskCode(code);
      break;
    }
    default:
      return Invalid("one of result or error is required");
  }
  auto task = store_->CompleteTask(req->task_id(), req->worker_id(), o);
  if (!task.ok()) return ToGrpcStatus(task.status());
  absl::Status s = scheduler_->Reconcile(task->job_id);
  if (!s.ok()) spdlog::warn("job {}: reconcile after {}: {}", task->job_id, task->id, s.ToString());
  scheduler_->Poke();
  NotifyTaskEvent();
  if (options_.on_task_completed) options_.on_task_completed(task->job_id);
  return grpc::Status::OK;
}

}  // namespace slq::api
