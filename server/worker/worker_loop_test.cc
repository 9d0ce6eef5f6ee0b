// WorkerLoop against a real server: JobService + WorkerService (+ the auth interceptor) on an
// in-process channel over a real SQLite job store file, with a stand-in task runner, so the
// protocol (lease, typed payloads and results, heartbeat, completion with a status code, a
// cancelled job) is tested without running the quantization engine.
#include "server/worker/worker_loop.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "server/api/auth.h"
#include "server/api/job_service.h"
#include "server/api/worker_service.h"
#include "server/jobs/artifact_store.h"
#include "server/jobs/sqlite_job_store.h"
#include "server/scheduler/scheduler.h"
#include "server/scheduler/task_payload.h"
#include "server/worker/task_executor.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

class WorkerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("slq-worker-test-" + RandomHex(6));
    fs::create_directories(dir_);
    auto store = SqliteJobStore::Open((dir_ / "jobs.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto artifacts = LocalArtifactStore::Open((dir_ / "artifacts").string());
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    artifacts_ = std::move(*artifacts);
    scheduler_ = std::make_unique<Scheduler>(store_.get(), artifacts_.get(), nullptr);
    jobs_ = std::make_unique<api::JobServiceImpl>(store_.get(), artifacts_.get(), scheduler_.get(), nullptr);
    api::WorkerServiceOptions wo;
    wo.heartbeat = absl::Seconds(1);
    wo.max_lease_wait_seconds = 1;
    workers_ = std::make_unique<api::WorkerServiceImpl>(store_.get(), scheduler_.get(), wo);
    auth_ = std::make_unique<api::BearerAuth>(api::BearerAuth::FromToken("t0ken"));
    grpc::ServerBuilder b;
    b.RegisterService(jobs_.get());
    b.RegisterService(workers_.get());
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(api::MakeAuthInterceptorFactory(auth_.get()));
    b.experimental().SetInterceptorCreators(std::move(interceptors));
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    stub_ = v1::JobService::NewStub(channel_);
  }
  void TearDown() override {
    workers_->Shutdown();
    jobs_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now());
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string Submit() {
    v1::SubmitJobRequest r;
    r.mutable_spec()->set_model_uri("file:///models/tiny");
    r.mutable_spec()->mutable_target()->set_task_lossless_kl(0.02);
    r.mutable_spec()->set_formats("4-8");
    r.mutable_spec()->set_eval_data("wikitext2");
    v1::SubmitJobResponse resp;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer t0ken");
    grpc::Status s = stub_->SubmitJob(&ctx, r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job().id();
  }

  WorkerOptions Options() {
    WorkerOptions o;
    o.name = "test";
    o.token = "t0ken";
    o.lease_wait_seconds = 1;
    o.max_tasks = 1;
    return o;
  }

  std::vector<Task> Tasks(const std::string& job) {
    auto t = store_->ListTasks(job);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : std::vector<Task>{};
  }

  fs::path dir_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<LocalArtifactStore> artifacts_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<api::JobServiceImpl> jobs_;
  std::unique_ptr<api::WorkerServiceImpl> workers_;
  std::unique_ptr<api::BearerAuth> auth_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

TEST_F(WorkerLoopTest, LeasesATypedTaskAndCompletesItWithATypedResult) {
  const std::string job = Submit();
  v1::TaskPayload seen;
  WorkerLoop loop(channel_, Options(), [&](const v1::TaskPayload& p, const TaskProgressFn&) {
    seen = p;
    v1::TaskResult r;
    *r.mutable_fetch()->mutable_options() = p.fetch().options();
    r.mutable_fetch()->mutable_options()->set_model_path("/models/tiny");
    for (int layer : {0, 1}) {
      auto* g = r.mutable_fetch()->add_layers();
      g->set_layer(layer);
      g->add_slots("model.layers." + std::to_string(layer) + ".mlp.up_proj");
    }
    return absl::StatusOr<v1::TaskResult>(r);
  });
  loop.Run();
  EXPECT_EQ(loop.tasks_done(), 1);
  // The fetch payload carried the job's spec, typed: the tl target and the held-out text.
  ASSERT_TRUE(seen.has_fetch());
  EXPECT_EQ(seen.fetch().options().target(), "tl<=0.02");
  EXPECT_EQ(seen.fetch().options().eval_data(), "wikitext2");
  EXPECT_EQ(seen.fetch().options().formats(), "4-8");
  // The scheduler read the typed result: one profile task per slot group, each a typed payload.
  int profiles = 0;
  for (const Task& t : Tasks(job)) {
    if (t.kind == "fetch") {
      EXPECT_EQ(t.state, TaskState::kDone);
    }
    if (t.kind != "profile") continue;
    auto p = DecodeTask<v1::TaskPayload>(t.payload_json, "profile payload");
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE(p->has_profile());
    EXPECT_EQ(p->profile().options().model_path(), "/models/tiny");
    EXPECT_EQ(p->profile().layer().slots_size(), 1);
    ++profiles;
  }
  EXPECT_EQ(profiles, 2);
}

TEST_F(WorkerLoopTest, AFailureCarriesItsCodeAndOnlyRetryableCodesRetry) {
  const std::string job = Submit();
  WorkerLoop transient(channel_, Options(), [](const v1::TaskPayload&, const TaskProgressFn&) {
    return absl::StatusOr<v1::TaskResult>(absl::UnavailableError("mirror down"));
  });
  transient.Run();
  EXPECT_EQ(transient.tasks_failed(), 1);
  std::vector<Task> tasks = Tasks(job);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].state, TaskState::kPending);  // UNAVAILABLE: back in the queue

  WorkerLoop permanent(channel_, Options(), [](const v1::TaskPayload&, const TaskProgressFn&) {
    return absl::StatusOr<v1::TaskResult>(absl::NotFoundError("no such model: /models/tiny"));
  });
  permanent.Run();
  EXPECT_EQ(permanent.tasks_failed(), 1);
  tasks = Tasks(job);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].state, TaskState::kFailed);  // NOT_FOUND: no retry can fix it
  EXPECT_EQ(tasks[0].attempts, 2);
  EXPECT_EQ(tasks[0].error, "NOT_FOUND: no such model: /models/tiny");
  auto j = store_->GetJob(job);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->state, JobState::kFailed);
  EXPECT_NE(j->error.find("NOT_FOUND: no such model"), std::string::npos) << j->error;
}

TEST_F(WorkerLoopTest, ACancelledJobsTaskIsAbandoned) {
  const std::string job = Submit();
  std::atomic<bool> cancelled{false};
  WorkerLoop* self = nullptr;
  WorkerLoop loop(channel_, Options(), [&](const v1::TaskPayload&, const TaskProgressFn&) {
    v1::CancelJobRequest r;
    r.set_job_id(job);
    v1::CancelJobResponse resp;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer t0ken");
    cancelled = stub_->CancelJob(&ctx, r, &resp).ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // a heartbeat (1 s) sees the cancel
    self->Stop();
    v1::TaskResult result;
    result.mutable_fetch();
    return absl::StatusOr<v1::TaskResult>(result);
  });
  self = &loop;
  loop.Run();
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(loop.tasks_done(), 0);  // abandoned: nothing reported
  EXPECT_EQ(loop.tasks_failed(), 0);
  auto j = store_->GetJob(job);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->state, JobState::kCancelled);
  for (const Task& t : Tasks(job)) EXPECT_NE(t.state, TaskState::kDone) << t.kind;
}

TEST_F(WorkerLoopTest, TheInterceptorRejectsAWorkerWithoutTheToken) {
  auto stub = v1::WorkerService::NewStub(channel_);
  v1::RegisterWorkerRequest r;
  r.set_name("intruder");
  v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->RegisterWorker(&ctx, r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("missing 'authorization: Bearer <token>'"), std::string::npos) << s.error_message();
  EXPECT_TRUE(resp.worker_id().empty());
  auto workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok());
  EXPECT_TRUE(workers->empty()) << "the handler must not see the request";
  grpc::ClientContext ok;
  ok.AddMetadata("authorization", "Bearer t0ken");
  EXPECT_TRUE(stub->RegisterWorker(&ok, r, &resp).ok());
}

TEST_F(WorkerLoopTest, AResultOfAnotherKindIsRefused) {
  const std::string job = Submit();
  auto stub = v1::WorkerService::NewStub(channel_);
  auto call = [](grpc::ClientContext* c) { c->AddMetadata("authorization", "Bearer t0ken"); };
  v1::RegisterWorkerRequest reg;
  reg.set_name("w");
  v1::RegisterWorkerResponse worker;
  {
    grpc::ClientContext ctx;
    call(&ctx);
    ASSERT_TRUE(stub->RegisterWorker(&ctx, reg, &worker).ok());
  }
  v1::LeaseTaskRequest lease;
  lease.set_worker_id(worker.worker_id());
  lease.set_wait_seconds(1);
  v1::LeaseTaskResponse leased;
  {
    grpc::ClientContext ctx;
    call(&ctx);
    ASSERT_TRUE(stub->LeaseTask(&ctx, lease, &leased).ok());
  }
  ASSERT_EQ(leased.task().kind(), "fetch");
  v1::CompleteTaskRequest done;
  done.set_worker_id(worker.worker_id());
  done.set_task_id(leased.task().id());
  done.mutable_result()->mutable_profile()->set_layer_profiles_json("{}");
  v1::CompleteTaskResponse resp;
  grpc::ClientContext ctx;
  call(&ctx);
  grpc::Status s = stub->CompleteTask(&ctx, done, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("is a fetch task but the result is a profile result"), std::string::npos)
      << s.error_message();
  std::vector<Task> tasks = Tasks(job);
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].state, TaskState::kLeased) << "a refused completion leaves the lease as it was";
}

// The job's roundings reach the engine's options; none given = the engine's default (rtn).
TEST(TaskExecutorTest, QuantizersReachThePipelineOptions) {
  slq::v1::QuantOptions q;
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).quantizers, quant::PipelineOptions{}.quantizers);
  q.set_quantizers("rtn,gptq");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).quantizers, "rtn,gptq");
}

// The job's variants reach the engine's options; none given = the base variant only.
TEST(TaskExecutorTest, VariantsReachThePipelineOptions) {
  slq::v1::QuantOptions q;
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).symmetry, "");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).group_sizes, "");
  q.set_symmetry("both");
  q.set_group_sizes("64,128");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).symmetry, "both");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).group_sizes, "64,128");
}

// The job's grids and cloze items reach the engine's options; none given = off and 2000 items.
TEST(TaskExecutorTest, GridsAndClozeItemsReachThePipelineOptions) {
  slq::v1::QuantOptions q;
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).grids, "");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).cloze_max_items, 2000);
  q.set_grids("both");
  q.set_cloze_items(0);
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).grids, "both");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).cloze_max_items, 0);
  q.set_cloze_items(300);
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).cloze_max_items, 300);
}

// The job's scales reach the engine's options; none given = "" (fp16).
TEST(TaskExecutorTest, ScalesReachThePipelineOptions) {
  slq::v1::QuantOptions q;
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).scales, "");
  q.set_scales("both");
  EXPECT_EQ(TaskExecutor::PipelineOptionsOf(q).scales, "both");
}

}  // namespace
}  // namespace slq
