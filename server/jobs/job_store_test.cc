// One JobStore test suite run against both backends: SQLite (a temp file) and PostgreSQL
// (a real server started by PgTestServer; the suite is skipped when PostgreSQL is absent).
#include "server/jobs/job_store.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/jobs/pg_test_server.h"
#include "server/jobs/postgres_job_store.h"
#include "server/jobs/sqlite_job_store.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

// The PostgreSQL server is started lazily by the first PostgreSQL test, stopped at exit.
testing::PgTestServer* g_pg = nullptr;
absl::Status g_pg_status = absl::OkStatus();

class PgEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_pg;
    g_pg = nullptr;
  }
};
const auto* const kPgEnv = ::testing::AddGlobalTestEnvironment(new PgEnvironment);

absl::Status EnsurePg() {
  if (g_pg != nullptr || !g_pg_status.ok()) return g_pg_status;
  auto pg = testing::PgTestServer::Start();
  if (!pg.ok()) {
    g_pg_status = pg.status();
    return g_pg_status;
  }
  g_pg = pg->release();
  return absl::OkStatus();
}

absl::Status PgExec(const std::string& sql) {
  PGconn* c = PQconnectdb(g_pg->ConnInfo().c_str());
  PGresult* r = PQexec(c, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string err = PQerrorMessage(c);
  PQclear(r);
  PQfinish(c);
  return ok ? absl::OkStatus() : absl::InternalError(err);
}

JobRequest Req(const std::string& uri, const std::string& key = "") {
  return JobRequest{.model_uri = uri,
                    .target = "ear>=0.99",
                    .formats = "4-5-6-7-8",
                    .group_size = 128,
                    .calibration_data = "data/cal.txt",
                    .eval_data = "data/eval.txt",
                    .options_json = "{\"bits\":[4,8]}",
                    .idempotency_key = key};
}

constexpr char kArtifactId[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

class JobStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    static int counter = 0;
    ++counter;
    if (GetParam() == "postgres") {
      absl::Status pg = EnsurePg();
      if (absl::IsFailedPrecondition(pg)) GTEST_SKIP() << "PostgreSQL tests skipped: " << pg;
      ASSERT_TRUE(pg.ok()) << pg;
      // A fresh schema per test (much cheaper than CREATE DATABASE).
      std::string schema = absl::StrCat("t", ::getpid(), "_", counter);
      ASSERT_TRUE(PgExec("CREATE SCHEMA " + schema).ok());
      conninfo_ = absl::StrCat(g_pg->ConnInfo(), " options='-c search_path=", schema, "'");
    } else {
      dir_ = fs::temp_directory_path() / absl::StrCat("slq-jobs-", ::getpid(), "-", counter);
      fs::create_directories(dir_);
    }
    ASSERT_TRUE(OpenStore().ok());
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  absl::Status OpenStore() {
    store_.reset();
    if (GetParam() == "postgres") {
      auto s = PostgresJobStore::Open(conninfo_, {.pool_size = 8, .clock = &clock_});
      if (!s.ok()) return s.status();
      store_ = std::move(*s);
    } else {
      auto s = SqliteJobStore::Open((dir_ / "jobs.db").string(), {.clock = &clock_});
      if (!s.ok()) return s.status();
      store_ = std::move(*s);
    }
    return absl::OkStatus();
  }

  // A second store on the same database: what a second server process opens.
  absl::StatusOr<std::unique_ptr<JobStore>> OpenSecond() {
    if (GetParam() == "postgres") {
      auto s = PostgresJobStore::Open(conninfo_, {.pool_size = 8, .clock = &clock_});
      if (!s.ok()) return s.status();
      return std::unique_ptr<JobStore>(std::move(*s));
    }
    auto s = SqliteJobStore::Open((dir_ / "jobs.db").string(), {.clock = &clock_});
    if (!s.ok()) return s.status();
    return std::unique_ptr<JobStore>(std::move(*s));
  }

  Job MustCreate(const std::string& uri) {
    auto r = store_->CreateJob(Req(uri));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->job : Job{};
  }

  FakeClock clock_{absl::FromUnixSeconds(1'700'000'000)};
  std::unique_ptr<JobStore> store_;
  fs::path dir_;
  std::string conninfo_;
};

TEST_P(JobStoreTest, CreateAndGetRoundTrip) {
  auto r = store_->CreateJob(Req("hf://org/model@main", "key-1"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->created);
  auto got = store_->GetJob(r->job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, r->job.id);
  EXPECT_EQ(got->state, JobState::kQueued);
  EXPECT_EQ(got->request.model_uri, "hf://org/model@main");
  EXPECT_EQ(got->request.target, "ear>=0.99");
  EXPECT_EQ(got->request.formats, "4-5-6-7-8");
  EXPECT_EQ(got->request.group_size, 128);
  EXPECT_EQ(got->request.calibration_data, "data/cal.txt");
  EXPECT_EQ(got->request.idempotency_key, "key-1");
  EXPECT_EQ(got->request.options_json, "{\"bits\":[4,8]}");
  EXPECT_EQ(got->request_hash, RequestHash(Req("hf://org/model@main")));
  EXPECT_EQ(got->created, clock_.Now());
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob("job-nope").status()));
}

TEST_P(JobStoreTest, CreateRejectsBadRequests) {
  JobRequest r = Req("");
  EXPECT_TRUE(absl::IsInvalidArgument(store_->CreateJob(r).status()));
  r = Req("hf://a/b");
  r.group_size = 0;
  auto s = store_->CreateJob(r).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("group_size 0"), std::string::npos) << s;
}

TEST_P(JobStoreTest, IdempotencyKeyReturnsSameJobOrRejectsDifferentParams) {
  auto a = store_->CreateJob(Req("hf://org/m", "k"));
  auto b = store_->CreateJob(Req("hf://org/m", "k"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->created);
  EXPECT_FALSE(b->created);
  EXPECT_EQ(a->job.id, b->job.id);
  auto c = store_->CreateJob(Req("hf://org/other", "k"));
  EXPECT_TRUE(absl::IsFailedPrecondition(c.status())) << c.status();
  EXPECT_NE(c.status().message().find(a->job.id), std::string::npos);
  auto d = store_->CreateJob(Req("hf://org/m"));  // no key: always a new job
  auto e = store_->CreateJob(Req("hf://org/m"));
  ASSERT_TRUE(d.ok() && e.ok());
  EXPECT_NE(d->job.id, e->job.id);
  EXPECT_NE(d->job.id, a->job.id);
}

TEST_P(JobStoreTest, ConcurrentIdempotentCreatesYieldOneJob) {
  constexpr int kThreads = 8;
  std::vector<std::string> ids(kThreads);
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto r = store_->CreateJob(Req("hf://org/m", "race-key"));
      ASSERT_TRUE(r.ok()) << r.status();
      ids[i] = r->job.id;
      if (r->created) ++created;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
}

TEST_P(JobStoreTest, ListJobsPagesAndFilters) {
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(MustCreate(absl::StrCat("file:///m", i)).id);
    clock_.Advance(absl::Seconds(1));
  }
  ASSERT_TRUE(store_->UpdateJob(ids[2], {.state = JobState::kRunning}).ok());
  ASSERT_TRUE(store_->UpdateJob(ids[5], {.state = JobState::kRunning}).ok());
  std::vector<std::string> seen;
  std::vector<size_t> sizes;
  ListJobsOptions opts{.page_size = 3};
  do {
    auto page = store_->ListJobs(opts);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->jobs.size());
    for (const Job& j : page->jobs) seen.push_back(j.id);
    opts.page_token = page->next_page_token;
  } while (!opts.page_token.empty());
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 1}));
  auto counts = store_->CountJobs();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ((*counts)[JobState::kQueued], 5);
  EXPECT_EQ((*counts)[JobState::kRunning], 2);
  EXPECT_EQ((*counts)[JobState::kSucceeded], 0);
  EXPECT_EQ(counts->size(), 5u);

  auto running = store_->ListJobs({.state = JobState::kRunning, .page_size = 1});
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->jobs.size(), 1u);
  EXPECT_EQ(running->jobs[0].id, ids[2]);
  auto next = store_->ListJobs({.state = JobState::kRunning, .page_size = 1, .page_token = running->next_page_token});
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->jobs.size(), 1u);
  EXPECT_EQ(next->jobs[0].id, ids[5]);
  EXPECT_TRUE(next->next_page_token.empty());

  EXPECT_TRUE(absl::IsInvalidArgument(store_->ListJobs({.page_token = "garbage!"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store_->ListJobs({.page_size = 5000}).status()));
}

TEST_P(JobStoreTest, StateMachineRejectsIllegalTransitions) {
  Job j = MustCreate("hf://o/m");
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->UpdateJob(j.id, {.state = JobState::kSucceeded}).status()));
  auto run = store_->UpdateJob(j.id, {.state = JobState::kRunning, .stage = JobStage::kProfile, .progress = 0.25});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->attempts, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateJob(j.id, {.progress = 1.5}).status()));
  // SUCCEEDED needs a published artifact.
  auto no_art = store_->UpdateJob(j.id, {.state = JobState::kSucceeded, .artifact_id = kArtifactId});
  EXPECT_TRUE(absl::IsFailedPrecondition(no_art.status())) << no_art.status();
  ASSERT_TRUE(store_->PutArtifact({kArtifactId, j.id, "/a", 10, "{}", {}}).ok());
  auto done = store_->UpdateJob(j.id, {.state = JobState::kSucceeded, .artifact_id = kArtifactId});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->progress, 1.0);
  auto again = store_->UpdateJob(j.id, {.state = JobState::kRunning});
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status()));
  EXPECT_NE(again.status().message().find("SUCCEEDED"), std::string::npos);
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->UpdateJob(j.id, {.progress = 0.5}).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->CancelJob(j.id).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->AddTasks(j.id, {{"pack", "{}"}}).status()));
  auto got = store_->GetJob(j.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kSucceeded);
  EXPECT_EQ(got->stage, JobStage::kProfile);
  EXPECT_EQ(got->artifact_id, kArtifactId);
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_P(JobStoreTest, CancelJobCancelsPendingAndLeasedTasks) {
  Job j = MustCreate("hf://o/m");
  ASSERT_TRUE(
      store_->AddTasks(j.id, {{"fetch", "{}"}, {"profile_layer", "{\"layer\":0}"}, {"profile_layer", "{\"layer\":1}"}})
          .ok());
  auto leased = store_->LeaseTask("w1", {"fetch"}, absl::Seconds(30));
  ASSERT_TRUE(leased.ok() && leased->has_value());
  auto cancelled = store_->CancelJob(j.id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_TRUE(store_->CancelJob(j.id).ok());  // idempotent
  auto tasks = store_->ListTasks(j.id);
  ASSERT_TRUE(tasks.ok());
  for (const Task& t : *tasks) EXPECT_EQ(t.state, TaskState::kCancelled) << t.id;
  auto hb = store_->Heartbeat((*leased)->id, "w1", absl::Seconds(30));
  EXPECT_TRUE(absl::IsFailedPrecondition(hb.status()));
  EXPECT_NE(hb.status().message().find("CANCELLED"), std::string::npos) << hb.status();
  auto none = store_->LeaseTask("w2", {}, absl::Seconds(30));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_P(JobStoreTest, FailingAJobCancelsItsUnfinishedTasks) {
  Job j = MustCreate("hf://o/m");
  ASSERT_TRUE(store_->UpdateJob(j.id, {.state = JobState::kRunning}).ok());
  ASSERT_TRUE(store_->AddTasks(j.id, {{"profile", "{}"}, {"profile", "{}"}, {"profile", "{}"}}).ok());
  auto done = store_->LeaseTask("w1", {}, absl::Seconds(30));
  ASSERT_TRUE(done.ok() && done->has_value());
  ASSERT_TRUE(store_->CompleteTask((*done)->id, "w1", {.ok = true, .result_json = "{}"}).ok());
  auto leased = store_->LeaseTask("w1", {}, absl::Seconds(30));
  ASSERT_TRUE(leased.ok() && leased->has_value());
  auto failed = store_->UpdateJob(j.id, {.state = JobState::kFailed, .error = "profile task failed"});
  ASSERT_TRUE(failed.ok()) << failed.status();
  auto tasks = store_->ListTasks(j.id);
  ASSERT_TRUE(tasks.ok());
  int cancelled = 0;
  for (const Task& t : *tasks) {
    EXPECT_EQ(t.state, t.id == (*done)->id ? TaskState::kDone : TaskState::kCancelled) << t.id;
    cancelled += t.state == TaskState::kCancelled;
  }
  EXPECT_EQ(cancelled, 2);
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Heartbeat((*leased)->id, "w1", absl::Seconds(30)).status()));
  auto none = store_->LeaseTask("w2", {}, absl::Seconds(30));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_P(JobStoreTest, EventsAreGapFreeAndResumable) {
  Job j = MustCreate("hf://o/m");
  constexpr int kThreads = 4, kPer = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) {
        auto e = store_->AppendEvent(j.id, JobStage::kProfile, 0.5, absl::StrCat(t, ":", i));
        ASSERT_TRUE(e.ok()) << e.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto all = store_->ListEvents(j.id, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(kThreads * kPer));
  for (size_t i = 0; i < all->size(); ++i) EXPECT_EQ((*all)[i].seq, static_cast<int64_t>(i + 1));
  auto tail = store_->ListEvents(j.id, 37);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 3u);
  EXPECT_EQ(tail->front().seq, 38);
  EXPECT_EQ(tail->front().stage, JobStage::kProfile);
  EXPECT_EQ(tail->front().message, (*all)[37].message);
  EXPECT_TRUE(absl::IsNotFound(store_->ListEvents("job-x", 0).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->AppendEvent("job-x", JobStage::kFetch, 0, "m").status()));
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_P(JobStoreTest, LeaseHonoursKindsOrderAndHolder) {
  Job j = MustCreate("hf://o/m");
  ASSERT_TRUE(store_->AddTasks(j.id, {{"fetch", "f"}, {"pack", "p0"}, {"pack", "p1"}}).ok());
  auto none = store_->LeaseTask("w1", {"verify"}, absl::Seconds(30));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto p0 = store_->LeaseTask("w1", {"pack", "verify"}, absl::Seconds(30));
  ASSERT_TRUE(p0.ok() && p0->has_value()) << p0.status();
  EXPECT_EQ((*p0)->payload_json, "p0");
  EXPECT_EQ((*p0)->state, TaskState::kLeased);
  EXPECT_EQ((*p0)->lease_owner, "w1");
  EXPECT_EQ((*p0)->attempts, 1);
  EXPECT_EQ((*p0)->lease_expiry, clock_.Now() + absl::Seconds(30));
  auto f = store_->LeaseTask("w2", {}, absl::Seconds(30));
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->kind, "fetch");
  // Only the holder may complete.
  auto stale = store_->CompleteTask((*p0)->id, "w2", {.ok = true, .result_json = "{}"});
  EXPECT_TRUE(absl::IsFailedPrecondition(stale.status())) << stale.status();
  auto done = store_->CompleteTask((*p0)->id, "w1", {.ok = true, .result_json = "{\"x\":1}"});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state, TaskState::kDone);
  auto got = store_->GetTask((*p0)->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->result_json, "{\"x\":1}");
  EXPECT_TRUE(
      absl::IsFailedPrecondition(store_->CompleteTask((*p0)->id, "w1", {.ok = true}).status()));  // already DONE
  auto counts = store_->CountTasks();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[TaskState::kPending], 1);
  EXPECT_EQ((*counts)[TaskState::kLeased], 1);
  EXPECT_EQ((*counts)[TaskState::kDone], 1);
  EXPECT_EQ((*counts)[TaskState::kFailed], 0);
  EXPECT_TRUE(absl::IsInvalidArgument(store_->LeaseTask("", {}, absl::Seconds(1)).status()));
}

TEST_P(JobStoreTest, ConcurrentLeasersNeverShareATask) {
  constexpr int kTasks = 60, kThreads = 8;
  Job j = MustCreate("hf://o/m");
  std::vector<TaskSpec> specs;
  for (int i = 0; i < kTasks; ++i) specs.push_back({"profile_layer", absl::StrCat(i)});
  ASSERT_TRUE(store_->AddTasks(j.id, specs).ok());
  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      const std::string worker = absl::StrCat("w", w);
      for (;;) {
        auto t = store_->LeaseTask(worker, {"profile_layer"}, absl::Seconds(60));
        ASSERT_TRUE(t.ok()) << t.status();
        if (!t->has_value()) return;
        got[w].push_back((*t)->id);
        ASSERT_TRUE(store_->CompleteTask((*t)->id, worker, {.ok = true}).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> unique;
  size_t total = 0;
  for (const auto& v : got) {
    total += v.size();
    unique.insert(v.begin(), v.end());
  }
  EXPECT_EQ(total, static_cast<size_t>(kTasks));
  EXPECT_EQ(unique.size(), static_cast<size_t>(kTasks));
  auto counts = store_->CountTasks();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[TaskState::kDone], kTasks);
}

TEST_P(JobStoreTest, EachKindIsAddedOnce) {
  Job j = MustCreate("hf://o/m");
  TaskQueue* queue = store_.get();  // the narrow interface is enough
  ASSERT_TRUE(queue->AddTasks(j.id, {{"profile", "a"}, {"profile", "b"}}).ok());
  auto again = queue->AddTasks(j.id, {{"profile", "c"}});
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  EXPECT_NE(again.status().message().find("2 'profile'"), std::string::npos) << again.status();
  // A batch with one existing kind adds nothing, not even its new kinds.
  EXPECT_TRUE(absl::IsAlreadyExists(queue->AddTasks(j.id, {{"search", "s"}, {"profile", "d"}}).status()));
  ASSERT_TRUE(queue->AddTasks(j.id, {{"search", "s"}}).ok());
  auto tasks = queue->ListTasks(j.id);
  ASSERT_TRUE(tasks.ok());
  std::multiset<std::string> payloads;
  for (const Task& t : *tasks) payloads.insert(t.payload_json);
  EXPECT_EQ(payloads, (std::multiset<std::string>{"a", "b", "s"}));
}

// Two servers on one database reconcile the same job at the same moment: each stage is
// created exactly once, whichever store object (connection pool) gets there first.
TEST_P(JobStoreTest, TwoStoresRacingToCreateAStageCreateItOnce) {
  auto second = OpenSecond();
  ASSERT_TRUE(second.ok()) << second.status();
  constexpr int kRounds = 10, kThreads = 6;
  for (int round = 0; round < kRounds; ++round) {
    Job j = MustCreate(absl::StrCat("hf://o/m", round));
    std::atomic<int> created{0}, refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      JobStore* s = i % 2 == 0 ? store_.get() : second->get();
      threads.emplace_back([&, s, i] {
        auto r = s->AddTasks(j.id, {{"profile", absl::StrCat(i)}, {"profile", absl::StrCat(i)}});
        if (r.ok()) {
          ++created;
        } else {
          EXPECT_TRUE(absl::IsAlreadyExists(r.status())) << r.status();
          ++refused;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(created.load(), 1);
    EXPECT_EQ(refused.load(), kThreads - 1);
    auto tasks = (*second)->ListTasks(j.id);
    ASSERT_TRUE(tasks.ok());
    EXPECT_EQ(tasks->size(), 2u);
  }
}

TEST_P(JobStoreTest, ExpiredLeasesRequeueThenFail) {
  Job j = MustCreate("hf://o/m");
  ASSERT_TRUE(store_->AddTasks(j.id, {{"search", "{}", /*max_attempts=*/2}}).ok());
  auto t1 = store_->LeaseTask("w1", {}, absl::Seconds(30));
  ASSERT_TRUE(t1.ok() && t1->has_value());
  const std::string id = (*t1)->id;
  auto r0 = store_->ExpireLeases(clock_.Now() + absl::Seconds(29));
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->requeued + r0->failed, 0);
  clock_.Advance(absl::Seconds(31));
  auto hb = store_->Heartbeat(id, "w1", absl::Seconds(30));
  EXPECT_TRUE(absl::IsFailedPrecondition(hb.status()));
  EXPECT_NE(hb.status().message().find("expired"), std::string::npos) << hb.status();
  auto r1 = store_->ExpireLeases(clock_.Now());
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->requeued, 1);
  EXPECT_EQ(r1->failed, 0);
  auto t2 = store_->LeaseTask("w2", {}, absl::Seconds(30));
  ASSERT_TRUE(t2.ok() && t2->has_value());
  EXPECT_EQ((*t2)->id, id);
  EXPECT_EQ((*t2)->attempts, 2);
  // The first holder is stale now.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->CompleteTask(id, "w1", {.ok = true}).status()));
  clock_.Advance(absl::Seconds(31));
  auto r2 = store_->ExpireLeases(clock_.Now());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->requeued, 0);
  EXPECT_EQ(r2->failed, 1);
  auto final_task = store_->GetTask(id);
  ASSERT_TRUE(final_task.ok());
  EXPECT_EQ(final_task->state, TaskState::kFailed);
  EXPECT_NE(final_task->error.find("lease expired"), std::string::npos);
  EXPECT_TRUE(store_->IntegrityCheck().ok());
}

TEST_P(JobStoreTest, HeartbeatKeepsTheLeaseAlive) {
  Job j = MustCreate("hf://o/m");
  ASSERT_TRUE(store_->AddTasks(j.id, {{"pack", "{}"}}).ok());
  auto t = store_->LeaseTask("w1", {}, absl::Seconds(30));
  ASSERT_TRUE(t.ok() && t->has_value());
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Seconds(20));
    auto hb = store_->Heartbeat((*t)->id, "w1", absl::Seconds(30));
    ASSERT_TRUE(hb.ok()) << hb.status();
    EXPECT_EQ(hb->lease_expiry, clock_.Now() + absl::Seconds(30));
    auto r = store_->ExpireLeases(clock_.Now() + absl::Seconds(25));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->requeued, 0);
  }
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Heartbeat((*t)->id, "intruder", absl::Seconds(30)).status()));
  EXPECT_TRUE(store_->CompleteTask((*t)->id, "w1", {.ok = true}).ok());
}

TEST_P(JobStoreTest, FailedTasksRetryUnlessPermanent) {
  Job j = MustCreate("hf://o/m");
  ASSERT_TRUE(store_->AddTasks(j.id, {{"verify", "{}", 3}}).ok());
  auto t = store_->LeaseTask("w1", {}, absl::Seconds(30));
  ASSERT_TRUE(t.ok() && t->has_value());
  auto retry = store_->CompleteTask((*t)->id, "w1", {.ok = false, .error = "cuda oom"});
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->state, TaskState::kPending);
  auto t2 = store_->LeaseTask("w1", {}, absl::Seconds(30));
  ASSERT_TRUE(t2.ok() && t2->has_value());
  auto fail = store_->CompleteTask((*t2)->id, "w1", {.ok = false, .error = "bad model", .retryable = false});
  ASSERT_TRUE(fail.ok());
  EXPECT_EQ(fail->state, TaskState::kFailed);
  EXPECT_EQ(store_->GetTask((*t2)->id)->error, "bad model");
}

TEST_P(JobStoreTest, ArtifactsAndWorkers) {
  Job j = MustCreate("hf://o/m");
  Artifact a{kArtifactId, j.id, "/store/objects/x", 1234, "{\"ear\":0.995}", {}};
  ASSERT_TRUE(store_->PutArtifact(a).ok());
  ASSERT_TRUE(store_->PutArtifact(a).ok());  // content-addressed: same id twice is fine
  EXPECT_TRUE(absl::IsInvalidArgument(store_->PutArtifact({"not-a-sha", j.id})));
  auto got = store_->GetArtifact(kArtifactId);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size, 1234);
  EXPECT_EQ(got->certificate_json, "{\"ear\":0.995}");
  EXPECT_EQ(got->created, clock_.Now());
  EXPECT_EQ(store_->ListArtifacts(j.id)->size(), 1u);
  EXPECT_EQ(store_->ListArtifacts("job-other")->size(), 0u);
  EXPECT_TRUE(absl::IsNotFound(store_->GetArtifact(std::string(64, 'f')).status()));

  ASSERT_TRUE(store_->RegisterWorker({"w1", "gpu-0", WorkerKind::kGpu, {}}).ok());
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(store_->RegisterWorker({"w1", "gpu-0b", WorkerKind::kGpu, {}}).ok());
  ASSERT_TRUE(store_->RegisterWorker({"w2", "cpu", WorkerKind::kCpu, {}}).ok());
  auto workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ((*workers)[0].name, "gpu-0b");
  EXPECT_EQ((*workers)[0].kind, WorkerKind::kGpu);
  EXPECT_EQ((*workers)[0].last_heartbeat, clock_.Now());
}

TEST_P(JobStoreTest, EverythingSurvivesReopen) {
  auto r = store_->CreateJob(Req("hf://o/m", "durable"));
  ASSERT_TRUE(r.ok());
  const std::string id = r->job.id;
  ASSERT_TRUE(store_->UpdateJob(id, {.state = JobState::kRunning}).ok());
  ASSERT_TRUE(store_->AddTasks(id, {{"fetch", "{}"}, {"pack", "{}"}}).ok());
  ASSERT_TRUE(store_->AppendEvent(id, JobStage::kFetch, 0.1, "fetching").ok());
  auto leased = store_->LeaseTask("w1", {"fetch"}, absl::Seconds(30));
  ASSERT_TRUE(leased.ok() && leased->has_value());
  ASSERT_TRUE(store_->PutArtifact({kArtifactId, id, "/p", 1, "{}", {}}).ok());
  ASSERT_TRUE(OpenStore().ok());  // close and reopen (migrations must not re-run)
  auto job = store_->GetJob(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state, JobState::kRunning);
  EXPECT_EQ(job->attempts, 1);
  EXPECT_EQ(store_->ListEvents(id, 0)->size(), 1u);
  auto tasks = store_->ListTasks(id);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 2u);
  EXPECT_EQ((*tasks)[0].state, TaskState::kLeased);
  EXPECT_EQ((*tasks)[0].lease_owner, "w1");
  EXPECT_TRUE(store_->GetArtifact(kArtifactId).ok());
  auto again = store_->CreateJob(Req("hf://o/m", "durable"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id, id);
  EXPECT_TRUE(store_->IntegrityCheck().ok());
  EXPECT_TRUE(store_->CompleteTask((*leased)->id, "w1", {.ok = true}).ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace slq
