#include "server/jobs/artifact_store.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/test_paths.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

// Writes `files` plus a manifest in the server/quant format into `dir` (created here).
std::string WriteArtifactDir(const std::string& dir, const std::map<std::string, std::string>& files,
                             const nlohmann::json& certificate) {
  fs::create_directories(dir);
  nlohmann::json listed = nlohmann::json::object();
  for (const auto& [name, data] : files) {
    EXPECT_TRUE(WriteFileAtomic(dir + "/" + name, data).ok());
    listed[name] = {{"sha256", Sha256Hex(data)}, {"bytes", data.size()}};
  }
  nlohmann::json m = {{"format", "slq-artifact"}, {"certificate", certificate}, {"files", listed}};
  const std::string text = m.dump(2);
  EXPECT_TRUE(WriteFileAtomic(dir + "/manifest.json", text).ok());
  return Sha256Hex(text);
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / absl::StrCat("slq-art-", ::getpid(), "-", ++counter_);
    auto s = LocalArtifactStore::Open(root_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    // A real tokenizer + config from the shared test model as artifact payload.
    auto tok = ReadFile(testing::ModelsDir() + "/tinystories-656k/tokenizer.json");
    auto cfg = ReadFile(testing::ModelsDir() + "/tinystories-656k/config.json");
    ASSERT_TRUE(tok.ok() && cfg.ok()) << tok.status() << cfg.status();
    files_ = {{"tokenizer.json", *tok}, {"config.json", *cfg}, {"weights.safetensors", "packed"}};
  }
  void TearDown() override { fs::remove_all(root_); }

  static inline int counter_ = 0;
  fs::path root_;
  std::unique_ptr<LocalArtifactStore> store_;
  std::map<std::string, std::string> files_;
};

TEST_F(ArtifactStoreTest, PublishIsContentAddressedAndReadable) {
  auto st = store_->BeginStaging("job-0011");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_FALSE(fs::exists(st->dir));
  const std::string want_id = WriteArtifactDir(st->dir, files_, {{"ear", 0.995}});
  auto listed_before = store_->List();
  ASSERT_TRUE(listed_before.ok());
  EXPECT_TRUE(listed_before->empty());  // staged is invisible
  auto a = store_->Publish(*st);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->id, want_id);
  EXPECT_EQ(a->job_id, "job-0011");
  EXPECT_EQ(nlohmann::json::parse(a->certificate_json)["ear"], 0.995);
  EXPECT_FALSE(fs::exists(st->container));
  EXPECT_EQ(*store_->List(), std::vector<std::string>{want_id});
  EXPECT_TRUE(store_->Verify(a->id).ok());
  int64_t total = static_cast<int64_t>(ReadFile(a->path + "/manifest.json")->size());
  for (const auto& [n, d] : files_) total += static_cast<int64_t>(d.size());
  EXPECT_EQ(a->size, total);

  // Chunked read of the tokenizer reassembles the original bytes; Seek resumes.
  auto r = store_->OpenRead(a->id, "tokenizer.json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->size(), files_["tokenizer.json"].size());
  std::string got;
  for (;;) {
    auto chunk = (*r)->Read(4096);
    ASSERT_TRUE(chunk.ok());
    if (chunk->empty()) break;
    got += *chunk;
  }
  EXPECT_EQ(got, files_["tokenizer.json"]);
  ASSERT_TRUE((*r)->Seek(got.size() - 10).ok());
  EXPECT_EQ(*(*r)->Read(100), got.substr(got.size() - 10));
  EXPECT_TRUE(absl::IsOutOfRange((*r)->Seek(got.size() + 1)));
  EXPECT_TRUE(absl::IsNotFound(store_->OpenRead(a->id, "../../etc/passwd").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store_->OpenRead("../x", "manifest.json").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Path(std::string(64, 'a')).status()));

  // The same content published again by another job yields the same id, no duplicate.
  auto st2 = store_->BeginStaging("job-0012");
  ASSERT_TRUE(st2.ok());
  WriteArtifactDir(st2->dir, files_, {{"ear", 0.995}});
  auto a2 = store_->Publish(*st2);
  ASSERT_TRUE(a2.ok()) << a2.status();
  EXPECT_EQ(a2->id, a->id);
  EXPECT_EQ(store_->List()->size(), 1u);
}

TEST_F(ArtifactStoreTest, PublishRejectsCorruptOrUnlistedFiles) {
  auto st = store_->BeginStaging("job-bad");
  ASSERT_TRUE(st.ok());
  WriteArtifactDir(st->dir, files_, {});
  ASSERT_TRUE(WriteFileAtomic(st->dir + "/weights.safetensors", "PACKED").ok());  // same size
  auto a = store_->Publish(*st);
  EXPECT_TRUE(absl::IsDataLoss(a.status())) << a.status();
  EXPECT_NE(a.status().message().find("weights.safetensors"), std::string::npos);
  EXPECT_TRUE(store_->List()->empty());

  auto st2 = store_->BeginStaging("job-bad2");
  ASSERT_TRUE(st2.ok());
  WriteArtifactDir(st2->dir, files_, {});
  ASSERT_TRUE(WriteFileAtomic(st2->dir + "/stray.bin", "x").ok());
  auto b = store_->Publish(*st2);
  EXPECT_TRUE(absl::IsFailedPrecondition(b.status())) << b.status();
  EXPECT_NE(b.status().message().find("stray.bin"), std::string::npos);

  StagedArtifact forged{"job-x", "/etc", "/etc/artifact"};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Publish(forged).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store_->BeginStaging("../evil").status()));
}

TEST_F(ArtifactStoreTest, CrashBetweenStageAndPublishLeavesNothingVisibleAndGcCleans) {
  std::string container_failed, container_live;
  {
    auto st = store_->BeginStaging("job-failed");
    ASSERT_TRUE(st.ok());
    WriteArtifactDir(st->dir, files_, {});
    container_failed = st->container;
    auto live = store_->BeginStaging("job-live");
    ASSERT_TRUE(live.ok());
    WriteArtifactDir(live->dir, files_, {});
    container_live = live->container;
    store_.reset();  // "crash": the process dies before Publish
  }
  auto reopened = LocalArtifactStore::Open(root_.string());
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(*reopened);
  EXPECT_TRUE(store_->List()->empty());
  auto gc = store_->CollectGarbage({.is_live = [](const std::string& job) { return job == "job-live"; }});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->removed, 1);
  EXPECT_GT(gc->bytes_freed, static_cast<int64_t>(files_["tokenizer.json"].size()));
  EXPECT_FALSE(fs::exists(container_failed));
  EXPECT_TRUE(fs::exists(container_live));
  // The age rule removes even a live job's container once it is too old.
  auto gc2 = store_->CollectGarbage({.max_age = absl::Seconds(-1)});
  ASSERT_TRUE(gc2.ok());
  EXPECT_EQ(gc2->removed, 1);
  EXPECT_FALSE(fs::exists(container_live));
}

TEST_F(ArtifactStoreTest, CrashAfterRenameLeavesACompleteArtifact) {
  auto st = store_->BeginStaging("job-r");
  ASSERT_TRUE(st.ok());
  const std::string id = WriteArtifactDir(st->dir, files_, {});
  // Simulate the crash window after rename(2) but before the container was removed.
  fs::rename(st->dir, root_ / "objects" / id);
  EXPECT_TRUE(store_->Verify(id).ok());
  auto gc = store_->CollectGarbage({.is_live = [](const std::string&) { return false; }});
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->removed, 1);
  EXPECT_EQ(*store_->List(), std::vector<std::string>{id});
  // A tampered published file is caught by Verify.
  ASSERT_TRUE(WriteFileAtomic((root_ / "objects" / id / "config.json").string(), "{}").ok());
  EXPECT_TRUE(absl::IsDataLoss(store_->Verify(id)));
}

TEST_F(ArtifactStoreTest, AbortRemovesStaging) {
  auto st = store_->BeginStaging("job-a");
  ASSERT_TRUE(st.ok());
  WriteArtifactDir(st->dir, files_, {});
  ASSERT_TRUE(store_->Abort(*st).ok());
  EXPECT_FALSE(fs::exists(st->container));
}

// Two schedulers (two servers on one job store) staging the same job, or one scheduler again
// after a crash, get the same container: nothing is left behind for the loser.
TEST_F(ArtifactStoreTest, StagingTheSameJobTwiceReturnsTheSameContainer) {
  auto a = store_->BeginStaging("job-twice");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = store_->BeginStaging("job-twice");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->container, b->container);
  EXPECT_EQ(a->dir, b->dir);
  const std::string id = WriteArtifactDir(b->dir, files_, {});
  auto published = store_->Publish(*a);
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_EQ(published->id, id);
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
  // The loser's Publish finds nothing to publish; the artifact stays.
  EXPECT_FALSE(store_->Publish(*b).ok());
  EXPECT_TRUE(store_->Verify(id).ok());
}

}  // namespace
}  // namespace slq
