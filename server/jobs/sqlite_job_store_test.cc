// SQLite-specific JobStore tests (the shared suite over both backends is job_store_test.cc)
// and OpenJobStore.
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/jobs/open_job_store.h"
#include "server/jobs/sqlite_job_store.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

JobRequest Req(const std::string& uri) { return JobRequest{.model_uri = uri, .target = "ear>=0.99", .formats = "4-8"}; }

// Two store instances on one file act like two processes.
TEST(SqliteJobStoreTest, TwoStoresOnOneFileNeverShareATask) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("slq-jobs-two-", ::getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "jobs.db").string();
  auto a = SqliteJobStore::Open(path);
  auto b = SqliteJobStore::Open(path);
  ASSERT_TRUE(a.ok() && b.ok());
  auto job = (*a)->CreateJob(Req("hf://o/m"));
  ASSERT_TRUE(job.ok());
  std::vector<TaskSpec> specs(40, TaskSpec{"profile_layer", "{}"});
  ASSERT_TRUE((*a)->AddTasks(job->job.id, specs).ok());
  std::vector<std::string> ids_a, ids_b;
  auto drain = [](JobStore* s, const std::string& w, std::vector<std::string>* out) {
    for (;;) {
      auto t = s->LeaseTask(w, {}, absl::Seconds(60));
      ASSERT_TRUE(t.ok()) << t.status();
      if (!t->has_value()) return;
      out->push_back((*t)->id);
    }
  };
  std::thread ta(drain, a->get(), "wa", &ids_a), tb(drain, b->get(), "wb", &ids_b);
  ta.join();
  tb.join();
  std::set<std::string> all(ids_a.begin(), ids_a.end());
  all.insert(ids_b.begin(), ids_b.end());
  EXPECT_EQ(ids_a.size() + ids_b.size(), 40u);
  EXPECT_EQ(all.size(), 40u);
  a->reset();
  b->reset();
  fs::remove_all(dir);
}

TEST(SqliteJobStoreTest, IntegrityCheckFindsSucceededJobWithoutArtifact) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("slq-jobs-ic-", ::getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "jobs.db").string();
  auto store = SqliteJobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto job = (*store)->CreateJob(Req("hf://o/m"));
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE((*store)->IntegrityCheck().ok());
  auto raw = OpenSqliteConn(path, absl::Seconds(1));  // bypass the state machine
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE((*raw)->Query("UPDATE jobs SET state = 'SUCCEEDED', artifact_id = 'gone'", {}).ok());
  absl::Status s = (*store)->IntegrityCheck();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find(job->job.id), std::string::npos) << s;
  raw->reset();
  store->reset();
  fs::remove_all(dir);
}

TEST(SqliteJobStoreTest, IntegrityCheckFindsRunnableTaskOfEndedJob) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("slq-jobs-ic2-", ::getpid());
  fs::create_directories(dir);
  const std::string path = (dir / "jobs.db").string();
  auto store = SqliteJobStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto job = (*store)->CreateJob(Req("hf://o/m"));
  ASSERT_TRUE(job.ok());
  auto tasks = (*store)->AddTasks(job->job.id, {{"fetch", "{}"}});
  ASSERT_TRUE(tasks.ok());
  EXPECT_TRUE((*store)->IntegrityCheck().ok());
  auto raw = OpenSqliteConn(path, absl::Seconds(1));  // bypass the store (FAILED cancels tasks)
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE((*raw)->Query("UPDATE jobs SET state = 'FAILED', error = 'x'", {}).ok());
  absl::Status s = (*store)->IntegrityCheck();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find(tasks->front().id), std::string::npos) << s;
  raw->reset();
  store->reset();
  fs::remove_all(dir);
}

TEST(SqliteJobStoreTest, OpenFailsClearlyOnBadPath) {
  auto s = SqliteJobStore::Open("/nonexistent-dir/x/jobs.db");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent-dir/x/jobs.db"), std::string::npos);
}

TEST(OpenJobStoreTest, PicksTheBackendFromTheSpec) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("slq-open-", ::getpid());
  fs::create_directories(dir);
  auto a = OpenJobStore("sqlite://" + (dir / "a.db").string());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE((*a)->CreateJob(Req("hf://o/m")).ok());
  EXPECT_TRUE(fs::exists(dir / "a.db"));
  EXPECT_TRUE(OpenJobStore((dir / "b.db").string()).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(OpenJobStore("").status()));
  auto bad = OpenJobStore("mysql://h/db");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("mysql://h/db"), std::string::npos);
  // Nothing listens on port 1: the PostgreSQL backend was chosen and reports Unavailable.
  auto pg = OpenJobStore("postgres://slq@127.0.0.1:1/slq?connect_timeout=2");
  EXPECT_TRUE(absl::IsUnavailable(pg.status())) << pg.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace slq
