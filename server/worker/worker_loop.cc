#include "server/worker/worker_loop.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "server/jobs/test_pause.h"
#include "spdlog/spdlog.h"

namespace slq {

WorkerLoop::WorkerLoop(std::shared_ptr<grpc::Channel> channel, WorkerOptions options, const TaskExecutor* executor)
    : WorkerLoop(std::move(channel), std::move(options),
                 [executor](const slq::v1::TaskPayload& p, const TaskProgressFn& progress) {
                   return executor->Run(p, progress);
                 }) {}

WorkerLoop::WorkerLoop(std::shared_ptr<grpc::Channel> channel, WorkerOptions options, TaskRunFn run)
    : stub_(slq::v1::WorkerService::NewStub(channel)), options_(std::move(options)), run_(std::move(run)) {}

void WorkerLoop::Prepare(grpc::ClientContext* ctx, int seconds) const {
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

bool WorkerLoop::Register() {
  slq::v1::RegisterWorkerRequest req;
  req.set_name(options_.name);
  req.set_device(options_.device);
  req.set_device_name(options_.device_name);
  slq::v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  Prepare(&ctx, 10);
  grpc::Status s = stub_->RegisterWorker(&ctx, req, &resp);
  if (!s.ok()) {
    spdlog::warn("worker {}: register failed: {}", options_.name, s.error_message());
    return false;
  }
  worker_id_ = resp.worker_id();
  heartbeat_seconds_ = std::max(1, resp.heartbeat_seconds());
  spdlog::info("worker {}: registered as {} (heartbeat {}s)", options_.name, worker_id_, heartbeat_seconds_);
  return true;
}

void WorkerLoop::Run() {
  int backoff = 1;
  while (!stop_ && !Register()) {
    std::this_thread::sleep_for(std::chrono::seconds(backoff));
    backoff = std::min(backoff * 2, 10);
  }
  while (!stop_) {
    slq::v1::LeaseTaskRequest req;
    req.set_worker_id(worker_id_);
    for (const auto& k : options_.kinds) req.add_kinds(k);
    req.set_wait_seconds(options_.lease_wait_seconds);
    slq::v1::LeaseTaskResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, options_.lease_wait_seconds + 10);
    grpc::Status s = stub_->LeaseTask(&ctx, req, &resp);
    if (!s.ok()) {
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) Register();  // server lost our registration
      if (!stop_) std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (!resp.has_task()) continue;
    RunTask(resp.task());
    if (options_.max_tasks > 0 && tasks_done_ + tasks_failed_ >= options_.max_tasks) break;
  }
}

void WorkerLoop::RunTask(const slq::v1::Task& task) {
  spdlog::info("worker {}: job {} task {} ({}) attempt {}", options_.name, task.job_id(), task.id(), task.kind(),
               task.attempt());
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  bool abandon = false;
  JobStage stage = JobStage::kFetch;
  double progress = 0;
  std::string message;

  // Heartbeats run beside the task; they carry the latest progress.
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> l(mu);
    while (!cv.wait_for(l, std::chrono::seconds(heartbeat_seconds_), [&] { return finished; })) {
      slq::v1::HeartbeatRequest hb;
      hb.set_worker_id(worker_id_);
      hb.set_task_id(task.id());
      hb.set_progress(progress);
      hb.set_message(message);
      hb.set_stage(static_cast<slq::v1::JobStage>(static_cast<int>(stage) + 1));
      l.unlock();
      slq::v1::HeartbeatResponse resp;
      grpc::ClientContext ctx;
      Prepare(&ctx, 10);
      grpc::Status s = stub_->Heartbeat(&ctx, hb, &resp);
      l.lock();
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION || s.error_code() == grpc::StatusCode::NOT_FOUND ||
          (s.ok() && resp.cancel_requested())) {
        spdlog::warn("worker {}: task {} abandoned: {}", options_.name, task.id(),
                     s.ok() ? "job cancelled" : s.error_message());
        abandon = true;
      }
    }
  });

  auto result = run_(task.payload(), [&](JobStage st, double f, const std::string& msg) {
    // Test-only crash points (no-op unless SLQ_TEST_PAUSE_AT is set; see test_pause.h).
    TestPausePoint(JobStageName(st));
    if (msg == "write" && f >= 1) TestPausePoint("written");
    std::lock_guard<std::mutex> l(mu);
    stage = st;
    progress = f;
    message = msg;
  });
  {
    std::lock_guard<std::mutex> l(mu);
    finished = true;
  }
  cv.notify_all();
  heartbeat.join();
  if (abandon) return;

  slq::v1::CompleteTaskRequest req;
  req.set_worker_id(worker_id_);
  req.set_task_id(task.id());
  if (result.ok()) {
    *req.mutable_result() = std::move(*result);
  } else {
    // The code travels as a number: the server decides from it whether a retry can help.
    req.mutable_error()->set_code(static_cast<int32_t>(result.status().code()));
    req.mutable_error()->set_message(std::string(result.status().message()));
    spdlog::warn("worker {}: task {} failed: {}", options_.name, task.id(), result.status().ToString());
  }
  for (int attempt = 0; attempt < 5 && !stop_; ++attempt) {
    slq::v1::CompleteTaskResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, 30);
    grpc::Status s = stub_->CompleteTask(&ctx, req, &resp);
    if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE) {
      if (!s.ok()) spdlog::warn("worker {}: complete {}: {}", options_.name, task.id(), s.error_message());
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1 << attempt));
  }
  (result.ok() ? tasks_done_ : tasks_failed_)++;
}

}  // namespace slq
