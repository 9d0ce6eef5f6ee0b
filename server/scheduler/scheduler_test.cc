// The reconciler against a real SQLite file and a real artifact directory: tasks are leased and
// completed by hand through the store, as a worker would. Assertions are on task kinds, counts and
// states and on job states, not on payload text (the payload format is the worker contract's, see
// docs/ARCHITECTURE.md); the few results the scheduler reads are built by the helpers below.
#include "server/scheduler/scheduler.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/jobs/sqlite_job_store.h"
#include "server/scheduler/task_payload.h"

namespace slq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- Task results as a worker reports them (the only place that knows their format) ----

// fetch: the model's layers, in `groups` profile shares.
std::string FetchResult(int groups) {
  v1::TaskResult r;
  v1::FetchResult* f = r.mutable_fetch();
  f->mutable_options()->set_model_path("/models/m");
  for (int g = 0; g < groups; ++g) {
    v1::SlotGroup* layer = f->add_layers();
    layer->set_layer(g);
    layer->add_slots(absl::StrCat("layers.", g, ".mlp"));
  }
  return EncodeTaskMessage(r);
}
std::string ProfileResult() {
  v1::TaskResult r;
  r.mutable_profile()->set_layer_profiles_json(json{{"layers", json::array()}}.dump());
  return EncodeTaskMessage(r);
}
std::string SearchResult() {
  v1::TaskResult r;
  r.mutable_search()->set_search_outcome_json(json{{"avg_bits", 5.5}}.dump());
  r.mutable_search()->set_merged_profiles_json(json::object().dump());
  return EncodeTaskMessage(r);
}
// pack: writes a complete artifact into the job's staging dir, as the pack task does, and returns
// the result naming its manifest sha256.
std::string PackArtifactAndResult(ArtifactStore& artifacts, const std::string& job_id, bool target_met = true) {
  auto staged = artifacts.BeginStaging(job_id);  // one container per job: the scheduler's
  EXPECT_TRUE(staged.ok()) << staged.status();
  if (!staged.ok()) return "";
  fs::create_directories(staged->dir);
  const std::string weights = "packed weights of " + job_id;
  EXPECT_TRUE(WriteFileAtomic(staged->dir + "/weights.safetensors", weights).ok());
  json m = {{"format", "slq-artifact"},
            {"certificate", {{"target_met", target_met}}},
            {"files", {{"weights.safetensors", {{"sha256", Sha256Hex(weights)}, {"bytes", weights.size()}}}}}};
  const std::string manifest = m.dump(2);
  EXPECT_TRUE(WriteFileAtomic(staged->dir + "/manifest.json", manifest).ok());
  v1::TaskResult r;
  v1::PackResult* p = r.mutable_pack();
  p->set_target_met(target_met);
  p->set_status(target_met ? "met" : "unreachable");
  p->set_certificate_json(json{{"target_met", target_met}}.dump());
  p->set_manifest_sha256(Sha256Hex(manifest));
  return EncodeTaskMessage(r);
}

JobRequest Req(const std::string& key = "") {
  return JobRequest{.model_uri = "file:///models/m",
                    .target = "ear>=0.99",
                    .formats = "4-5-6-7-8",
                    .group_size = 128,
                    .options_json = R"({"formats":"4-5-6-7-8"})",
                    .idempotency_key = key};
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("slq-sched-", ::getpid(), "-", ++counter_);
    fs::create_directories(dir_);
    auto artifacts = LocalArtifactStore::Open((dir_ / "artifacts").string());
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    artifacts_ = std::move(*artifacts);
    Restart();
  }
  void TearDown() override {
    scheduler_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // A server restart: a new store and a new Scheduler on the same SQLite file; nothing in memory
  // survives.
  void Restart() {
    scheduler_.reset();
    store_.reset();
    auto store = SqliteJobStore::Open((dir_ / "jobs.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    scheduler_ = std::make_unique<Scheduler>(store_.get(), artifacts_.get(), nullptr);
  }

  std::string Submit() {
    auto r = store_->CreateJob(Req());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->job.id : "";
  }

  // Reconciles twice; the second call must change nothing (same tasks, same job state and stage).
  void ReconcileTwice(const std::string& job_id) {
    ASSERT_TRUE(scheduler_->Reconcile(job_id).ok());
    const auto tasks = Tasks(job_id);
    const Job job = GetJob(job_id);
    const size_t events = Events(job_id).size();
    ASSERT_TRUE(scheduler_->Reconcile(job_id).ok());
    EXPECT_EQ(Tasks(job_id), tasks) << "a second reconcile changed the tasks";
    EXPECT_EQ(GetJob(job_id).state, job.state);
    EXPECT_EQ(GetJob(job_id).stage, job.stage);
    EXPECT_EQ(Events(job_id).size(), events) << "a second reconcile appended events";
  }

  Job GetJob(const std::string& id) {
    auto j = store_->GetJob(id);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : Job{};
  }
  std::vector<JobEvent> Events(const std::string& id) {
    auto e = store_->ListEvents(id, 0, 1000);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : std::vector<JobEvent>{};
  }
  // kind -> "STATE STATE ..." in creation order: compact to compare.
  std::map<std::string, std::string> Tasks(const std::string& job_id) {
    auto tasks = store_->ListTasks(job_id);
    EXPECT_TRUE(tasks.ok()) << tasks.status();
    std::map<std::string, std::string> out;
    if (!tasks.ok()) return out;
    for (const Task& t : *tasks) {
      std::string& s = out[t.kind];
      absl::StrAppend(&s, s.empty() ? "" : " ", TaskStateName(t.state));
    }
    return out;
  }

  // Leases the next task of `kind` as `worker` and completes it with `result`.
  void Complete(const std::string& kind, const std::string& result, const std::string& worker = "w1") {
    auto t = store_->LeaseTask(worker, {kind}, absl::Seconds(30));
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_TRUE(t->has_value()) << "no PENDING " << kind << " task";
    ASSERT_TRUE(store_->CompleteTask((*t)->id, worker, {.ok = true, .result_json = result}).ok());
  }

  // Drives a new job through fetch and the profile fan-out (3 shares): the search task is PENDING.
  std::string JobAtSearch() {
    const std::string id = Submit();
    EXPECT_TRUE(scheduler_->Reconcile(id).ok());
    Complete("fetch", FetchResult(3));
    EXPECT_TRUE(scheduler_->Reconcile(id).ok());
    for (int i = 0; i < 3; ++i) Complete("profile", ProfileResult());
    EXPECT_TRUE(scheduler_->Reconcile(id).ok());
    EXPECT_EQ(Tasks(id)["search"], "PENDING");
    return id;
  }

  static inline int counter_ = 0;
  fs::path dir_;
  std::unique_ptr<LocalArtifactStore> artifacts_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

using TaskMap = std::map<std::string, std::string>;

TEST_F(SchedulerTest, JobGoesThroughEveryStageAndEachReconcileIsIdempotent) {
  const std::string id = Submit();
  EXPECT_EQ(GetJob(id).state, JobState::kQueued);

  ReconcileTwice(id);  // start: one fetch task
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "PENDING"}}));
  EXPECT_EQ(GetJob(id).state, JobState::kRunning);
  EXPECT_EQ(GetJob(id).stage, JobStage::kFetch);

  Complete("fetch", FetchResult(3));
  ReconcileTwice(id);  // fan-out: one profile task per share
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "PENDING PENDING PENDING"}}));
  EXPECT_EQ(GetJob(id).stage, JobStage::kProfile);

  Complete("profile", ProfileResult());
  Complete("profile", ProfileResult(), "w2");
  ReconcileTwice(id);  // 2 of 3 shares: no search yet, progress recorded once
  EXPECT_EQ(Tasks(id).count("search"), 0u);
  EXPECT_GT(GetJob(id).progress, 0.05);

  Complete("profile", ProfileResult());
  ReconcileTwice(id);
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "DONE DONE DONE"}, {"search", "PENDING"}}));
  EXPECT_EQ(GetJob(id).stage, JobStage::kSearch);

  Complete("search", SearchResult());
  ReconcileTwice(id);
  EXPECT_EQ(Tasks(id)["pack"], "PENDING");
  EXPECT_EQ(GetJob(id).stage, JobStage::kPack);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "artifacts" / "tmp"), fs::directory_iterator()), 1)
      << "one staging container for the pack task";

  Complete("pack", PackArtifactAndResult(*artifacts_, id));
  ReconcileTwice(id);  // publish
  const Job done = GetJob(id);
  EXPECT_EQ(done.state, JobState::kSucceeded);
  EXPECT_EQ(done.stage, JobStage::kPublish);
  EXPECT_EQ(done.progress, 1.0);
  ASSERT_FALSE(done.artifact_id.empty());
  EXPECT_TRUE(store_->GetArtifact(done.artifact_id).ok());
  EXPECT_TRUE(artifacts_->Verify(done.artifact_id).ok());
  EXPECT_TRUE(fs::is_empty(dir_ / "artifacts" / "tmp"));

  // One event per stage change at least, in stage order, ending with publish.
  std::vector<JobStage> stages;
  for (const JobEvent& e : Events(id)) {
    if (stages.empty() || stages.back() != e.stage) stages.push_back(e.stage);
  }
  EXPECT_EQ(stages, (std::vector<JobStage>{JobStage::kFetch, JobStage::kProfile, JobStage::kSearch, JobStage::kPack,
                                           JobStage::kPublish}));
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SchedulerTest, ARestartContinuesWhereTheStoreSaysTheJobIs) {
  const std::string id = Submit();
  Restart();  // submitted, never reconciled (the server died right after the RPC)
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "PENDING"}}));

  Complete("fetch", FetchResult(2));
  Restart();  // the fetch completed but nobody reconciled
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "PENDING PENDING"}}));

  Complete("profile", ProfileResult());
  Complete("profile", ProfileResult());
  Restart();
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  Complete("search", SearchResult());
  Restart();
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  EXPECT_EQ(Tasks(id)["pack"], "PENDING");

  Complete("pack", PackArtifactAndResult(*artifacts_, id));
  Restart();  // pack done, not yet published
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  EXPECT_EQ(GetJob(id).state, JobState::kSucceeded);
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "DONE DONE"}, {"search", "DONE"}, {"pack", "DONE"}}));
  EXPECT_TRUE(fs::is_empty(dir_ / "artifacts" / "tmp"));
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SchedulerTest, AnExpiredLeasePutsTheTaskBack) {
  const std::string id = Submit();
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  auto t = store_->LeaseTask("dead-worker", {"fetch"}, absl::Milliseconds(50));
  ASSERT_TRUE(t.ok() && t->has_value());
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "LEASED"}}));
  absl::SleepFor(absl::Milliseconds(120));
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());  // expires leases first
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "PENDING"}}));
  // The dead worker's late completion is refused; another worker finishes the task.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->CompleteTask((*t)->id, "dead-worker", {.ok = true, .result_json = FetchResult(1)}).status()));
  Complete("fetch", FetchResult(1), "w2");
  auto again = store_->GetTask((*t)->id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->attempts, 2);
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "PENDING"}}));
  EXPECT_EQ(GetJob(id).state, JobState::kRunning);
}

TEST_F(SchedulerTest, ATaskOutOfAttemptsFailsTheJobAndCancelsItsPendingTasks) {
  const std::string id = Submit();
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  Complete("fetch", FetchResult(4));
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  Complete("profile", ProfileResult());
  // One share leased by a worker that keeps dying: 3 expired leases use up its attempts.
  std::string task_id;
  absl::StatusOr<std::optional<Task>> live;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto t = store_->LeaseTask(absl::StrCat("dying-", attempt), {"profile"}, absl::Milliseconds(20));
    ASSERT_TRUE(t.ok() && t->has_value());
    if (task_id.empty()) task_id = (*t)->id;
    ASSERT_EQ((*t)->id, task_id) << "the expired share is leased again first";
    if (attempt == 1) {  // another share is running on a live worker when the job fails
      live = store_->LeaseTask("w-live", {"profile"}, absl::Seconds(30));
      ASSERT_TRUE(live.ok() && live->has_value());
    }
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  }

  const Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_NE(job.error.find("profile task failed after 3 attempt(s)"), std::string::npos) << job.error;
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "DONE FAILED CANCELLED CANCELLED"}}));
  // The live worker learns it at its next heartbeat; nothing is leased any more.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Heartbeat((*live)->id, "w-live", absl::Seconds(30)).status()));
  auto none = store_->LeaseTask("w3", {}, absl::Seconds(30));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ReconcileTwice(id);  // a failed job stays as it is
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SchedulerTest, APermanentErrorFailsTheJobAtOnceAndRemovesItsStaging) {
  const std::string id = JobAtSearch();
  Complete("search", SearchResult());
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  ASSERT_EQ(Tasks(id)["pack"], "PENDING");
  ASSERT_FALSE(fs::is_empty(dir_ / "artifacts" / "tmp"));
  auto t = store_->LeaseTask("w1", {"pack"}, absl::Seconds(30));
  ASSERT_TRUE(t.ok() && t->has_value());
  ASSERT_TRUE(
      store_->CompleteTask((*t)->id, "w1", {.ok = false, .error = "INVALID_ARGUMENT: bad", .retryable = false}).ok());
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  EXPECT_EQ(GetJob(id).state, JobState::kFailed);
  EXPECT_EQ(Tasks(id)["pack"], "FAILED");
  EXPECT_TRUE(fs::is_empty(dir_ / "artifacts" / "tmp")) << "a failed job's staging container is removed";
}

TEST_F(SchedulerTest, CancelStopsTheJobAndItsTasks) {
  const std::string id = Submit();
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  Complete("fetch", FetchResult(3));
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  Complete("profile", ProfileResult());
  auto running = store_->LeaseTask("w1", {"profile"}, absl::Seconds(30));
  ASSERT_TRUE(running.ok() && running->has_value());

  ASSERT_TRUE(store_->CancelJob(id).ok());
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "DONE CANCELLED CANCELLED"}}));
  // The running worker's completion is refused; reconciling and the tick change nothing.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store_->CompleteTask((*running)->id, "w1", {.ok = true, .result_json = ProfileResult()}).status()));
  ReconcileTwice(id);
  ASSERT_TRUE(scheduler_->ReconcileAll().ok());
  EXPECT_EQ(GetJob(id).state, JobState::kCancelled);
  EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "DONE"}, {"profile", "DONE CANCELLED CANCELLED"}}));
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_F(SchedulerTest, ATargetMissIsPublishedAndFailsTheJob) {
  const std::string id = JobAtSearch();
  Complete("search", SearchResult());
  ASSERT_TRUE(scheduler_->Reconcile(id).ok());
  Complete("pack", PackArtifactAndResult(*artifacts_, id, /*target_met=*/false));
  ReconcileTwice(id);
  const Job job = GetJob(id);
  EXPECT_EQ(job.state, JobState::kFailed);
  EXPECT_NE(job.error.find("target not met"), std::string::npos) << job.error;
  ASSERT_FALSE(job.artifact_id.empty());
  EXPECT_TRUE(store_->GetArtifact(job.artifact_id).ok()) << "kept, marked failing";
}

// Two servers on one store: two Schedulers (each with its own store connection) reconcile the same
// jobs at the same time, at every stage. Each stage is created once and the job is published once.
TEST_F(SchedulerTest, TwoSchedulersOnOneStoreDoEachStepOnce) {
  auto other_store = SqliteJobStore::Open((dir_ / "jobs.db").string());
  ASSERT_TRUE(other_store.ok()) << other_store.status();
  Scheduler other(other_store->get(), artifacts_.get(), nullptr);
  constexpr int kJobs = 6;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) ids.push_back(Submit());

  // Both reconcile every job concurrently, in the same order (so they collide), several times,
  // after each round of completions.
  auto race = [&] {
    std::thread a([&] {
      for (int r = 0; r < 3; ++r) {
        for (const std::string& id : ids) EXPECT_TRUE(scheduler_->Reconcile(id).ok());
      }
    });
    std::thread b([&] {
      for (int r = 0; r < 3; ++r) {
        for (const std::string& id : ids) EXPECT_TRUE(other.Reconcile(id).ok());
      }
    });
    a.join();
    b.join();
  };
  race();
  for (const std::string& id : ids) EXPECT_EQ(Tasks(id), (TaskMap{{"fetch", "PENDING"}})) << id;
  for (int i = 0; i < kJobs; ++i) Complete("fetch", FetchResult(3));
  race();
  for (const std::string& id : ids) EXPECT_EQ(Tasks(id)["profile"], "PENDING PENDING PENDING") << id;
  for (int i = 0; i < 3 * kJobs; ++i) Complete("profile", ProfileResult());
  race();
  for (int i = 0; i < kJobs; ++i) Complete("search", SearchResult());
  race();
  for (const std::string& id : ids) {
    EXPECT_EQ(Tasks(id)["pack"], "PENDING") << id;
    auto t = store_->LeaseTask("w1", {"pack"}, absl::Seconds(30));
    ASSERT_TRUE(t.ok() && t->has_value());
    const std::string result = PackArtifactAndResult(*artifacts_, (*t)->job_id);
    ASSERT_TRUE(store_->CompleteTask((*t)->id, "w1", {.ok = true, .result_json = result}).ok());
  }
  race();
  for (const std::string& id : ids) {
    const Job job = GetJob(id);
    EXPECT_EQ(job.state, JobState::kSucceeded) << id << ": " << job.error;
    int published = 0;
    for (const JobEvent& e : Events(id)) published += e.stage == JobStage::kPublish;
    EXPECT_EQ(published, 1) << id << ": published once";
    auto arts = store_->ListArtifacts(id);
    ASSERT_TRUE(arts.ok());
    EXPECT_EQ(arts->size(), 1u);
  }
  EXPECT_TRUE(fs::is_empty(dir_ / "artifacts" / "tmp"));
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

}  // namespace
}  // namespace slq
