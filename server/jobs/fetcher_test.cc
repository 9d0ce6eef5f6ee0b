// Fetchers against a local hub look-alike (testdata/hf_test_server.py) serving the real
// TinyStories-656K model, and file:// confinement on real directories.
#include "server/jobs/fetcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/test_paths.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

std::string ModelDir() { return testing::ModelsDir() + "/tinystories-656k"; }
constexpr char kToken[] = "hf_test_token_123";

std::string ScriptPath() { return testing::SourceDir() + "/server/jobs/testdata/hf_test_server.py"; }

// Runs hf_test_server.py as a child process; kills it on destruction.
class HubServer {
 public:
  bool Start(const std::string& log) {
    int fds[2];
    if (::pipe(fds) != 0) return false;
    const std::string script = ScriptPath();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::execlp("python3", "python3", script.c_str(), ModelDir().c_str(), log.c_str(), kToken,
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    std::FILE* out = ::fdopen(fds[0], "r");
    char line[32] = {0};
    const bool ok = std::fgets(line, sizeof(line), out) != nullptr;
    std::fclose(out);
    port_ = ok ? std::atoi(line) : 0;
    return port_ > 0;
  }
  ~HubServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string Endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

class FetcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(ModelDir() + "/model.safetensors")) return;
    log_ = (fs::temp_directory_path() / absl::StrCat("slq-hub-", ::getpid(), ".log")).string();
    server_ = new HubServer();
    if (!server_->Start(log_)) {
      delete server_;
      server_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    fs::remove(log_);
  }
  void SetUp() override {
    if (server_ == nullptr) {
      ASSERT_TRUE(fs::exists(ScriptPath())) << "missing " << ScriptPath() << " (SLQ_SOURCE_DIR?)";
      GTEST_SKIP() << "python3 or the shared test model is missing; hub tests skipped";
    }
    cache_ = fs::temp_directory_path() / absl::StrCat("slq-fetch-", ::getpid(), "-", ++n_);
    fs::create_directories(cache_);
    fs::remove(log_);
    opts_.hf_endpoint = server_->Endpoint();
    opts_.on_bytes = [this](uint64_t n) { bytes_ += n; };
  }
  void TearDown() override { fs::remove_all(cache_); }

  std::string Log() { return ReadFile(log_).value_or(""); }
  uint64_t ModelBytes() {
    uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(ModelDir())) total += e.file_size();
    return total;
  }
  void ExpectSameFiles(const std::string& dir) {
    for (const auto& e : fs::directory_iterator(ModelDir())) {
      const std::string name = e.path().filename().string();
      EXPECT_EQ(*Sha256File(dir + "/" + name), *Sha256File(e.path().string())) << name;
    }
  }

  static inline HubServer* server_ = nullptr;
  static inline std::string log_;
  static inline int n_ = 0;
  fs::path cache_;
  FetcherOptions opts_;
  std::atomic<uint64_t> bytes_{0};
};

TEST_F(FetcherTest, HfFetchEndToEndThenCacheHit) {
  auto f = MakeModelFetcher(opts_);
  FetchProgress last;
  int calls = 0;
  auto dir = f->Fetch("hf://slq-test/tiny", cache_.string(), [&](const FetchProgress& p) {
    EXPECT_LE(p.done, p.total);
    last = p;
    ++calls;
  });
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, cache_.string() + "/hf/slq-test/tiny/0123abcd");  // the listed commit
  EXPECT_NE(Log().find("/slq-test/tiny/resolve/0123abcd/config.json"), std::string::npos);
  ExpectSameFiles(*dir);
  // Every file once, plus the JSON listing (< 4 KiB).
  EXPECT_GE(bytes_.load(), ModelBytes());
  EXPECT_LT(bytes_.load(), ModelBytes() + 4096);
  EXPECT_GT(calls, 0);
  EXPECT_EQ(last.done, ModelBytes());
  EXPECT_EQ(last.total, ModelBytes());
  EXPECT_NE(Log().find("/api/models/slq-test/tiny/revision/main"), std::string::npos);
  EXPECT_EQ(Log().find("\"auth\": \"Bearer"), std::string::npos);  // no token configured

  // Second fetch: every file is a verified cache hit; only the listing is requested.
  bytes_ = 0;
  fs::remove(log_);
  auto again = f->Fetch("hf://slq-test/tiny", cache_.string(), nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_LT(bytes_.load(), 4096u);
  EXPECT_EQ(Log().find("/resolve/"), std::string::npos) << Log();
}

TEST_F(FetcherTest, HfEndpointAndTokenComeFromTheEnvironment) {
  ::setenv("HF_ENDPOINT", server_->Endpoint().c_str(), 1);
  ::setenv("HF_TOKEN", kToken, 1);
  FetcherOptions env_opts;  // no endpoint/token given: the environment decides
  auto f = MakeHfFetcher(env_opts);
  ::unsetenv("HF_ENDPOINT");
  ::unsetenv("HF_TOKEN");
  auto dir = f->Fetch("hf://slq-test/private", cache_.string(), nullptr);
  ASSERT_TRUE(dir.ok()) << dir.status();
  ExpectSameFiles(*dir);
  const std::string log = Log();
  EXPECT_NE(log.find(absl::StrCat("\"auth\": \"Bearer ", kToken, "\"")), std::string::npos);
  EXPECT_EQ(log.find("\"auth\": \"\""), std::string::npos) << "a request went without token";

  auto no_token = MakeHfFetcher(opts_)->Fetch("hf://slq-test/private", cache_.string() + "/x", nullptr);
  EXPECT_TRUE(absl::IsUnauthenticated(no_token.status())) << no_token.status();
  EXPECT_NE(no_token.status().message().find("HF_TOKEN"), std::string::npos);
}

TEST_F(FetcherTest, ResumesATruncatedPartialFile) {
  const std::string dest = cache_.string() + "/hf/slq-test/tiny/0123abcd";
  fs::create_directories(dest);
  auto full = ReadFile(ModelDir() + "/model.safetensors");
  ASSERT_TRUE(full.ok());
  const size_t half = full->size() / 2;
  ASSERT_TRUE(WriteFileAtomic(dest + "/model.safetensors.part", full->substr(0, half)).ok());
  auto dir = MakeHfFetcher(opts_)->Fetch("hf://slq-test/tiny", cache_.string(), nullptr);
  ASSERT_TRUE(dir.ok()) << dir.status();
  ExpectSameFiles(*dir);
  // Only the missing half came over the wire (plus the JSON listing, < 4 KiB).
  EXPECT_GE(bytes_.load(), ModelBytes() - half);
  EXPECT_LT(bytes_.load(), ModelBytes() - half + 4096);
  EXPECT_NE(Log().find(absl::StrCat("\"range\": \"bytes=", half, "-\"")), std::string::npos) << Log();
  EXPECT_FALSE(fs::exists(dest + "/model.safetensors.part"));
}

TEST_F(FetcherTest, RestartsWhenTheServerIgnoresRange) {
  const std::string dest = cache_.string() + "/hf/slq-test/norange/0123abcd";
  fs::create_directories(dest);
  // A stale partial file with wrong bytes: a 200 reply must replace it, not be appended.
  ASSERT_TRUE(WriteFileAtomic(dest + "/model.safetensors.part", std::string(1000, 'x')).ok());
  auto dir = MakeHfFetcher(opts_)->Fetch("hf://slq-test/norange", cache_.string(), nullptr);
  ASSERT_TRUE(dir.ok()) << dir.status();
  ExpectSameFiles(*dir);
}

TEST_F(FetcherTest, CompletePartialFileNeedsNoRequest) {
  const std::string dest = cache_.string() + "/hf/slq-test/tiny/0123abcd";
  fs::create_directories(dest);
  auto full = ReadFile(ModelDir() + "/model.safetensors");
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE(WriteFileAtomic(dest + "/model.safetensors.part", *full).ok());  // crash before rename
  auto dir = MakeHfFetcher(opts_)->Fetch("hf://slq-test/tiny", cache_.string(), nullptr);
  ASSERT_TRUE(dir.ok()) << dir.status();
  ExpectSameFiles(*dir);
  EXPECT_EQ(Log().find("/resolve/0123abcd/model.safetensors"), std::string::npos);
  EXPECT_LT(bytes_.load(), ModelBytes() - full->size() + 4096);
}

TEST_F(FetcherTest, ShaMismatchIsRejectedAndNothingIsKept) {
  auto dir = MakeHfFetcher(opts_)->Fetch("hf://slq-test/badsha", cache_.string(), nullptr);
  ASSERT_TRUE(absl::IsDataLoss(dir.status())) << dir.status();
  EXPECT_NE(dir.status().message().find("sha256"), std::string::npos);
  EXPECT_NE(dir.status().message().find("model.safetensors"), std::string::npos);
  const std::string dest = cache_.string() + "/hf/slq-test/badsha/0123abcd";
  EXPECT_FALSE(fs::exists(dest + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dest + "/model.safetensors.part"));
}

TEST_F(FetcherTest, MissingRepoAndFileAreNotFoundWithTheUrl) {
  auto repo = MakeHfFetcher(opts_)->Fetch("hf://slq-test/nope", cache_.string(), nullptr);
  ASSERT_TRUE(absl::IsNotFound(repo.status())) << repo.status();
  EXPECT_NE(repo.status().message().find(opts_.hf_endpoint + "/api/models/slq-test/nope"), std::string::npos)
      << repo.status();
  opts_.allow_insecure_http = true;
  const std::string base = server_->Endpoint() + "/missing-dir";
  auto file = MakeHttpsFetcher(opts_)->Fetch(base, cache_.string(), nullptr);
  ASSERT_TRUE(absl::IsNotFound(file.status())) << file.status();
  EXPECT_NE(file.status().message().find(base + "/"), std::string::npos) << file.status();
}

TEST_F(FetcherTest, HttpsFetcherDownloadsAPlainDirectory) {
  auto refused = MakeModelFetcher(opts_)->Fetch(server_->Endpoint() + "/plain", cache_.string(), nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  opts_.allow_insecure_http = true;
  auto dir = MakeModelFetcher(opts_)->Fetch(server_->Endpoint() + "/plain", cache_.string(), nullptr);
  ASSERT_TRUE(dir.ok()) << dir.status();
  ExpectSameFiles(*dir);
}

// ---- file:// ----

class FileFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / absl::StrCat("slq-roots-", ::getpid());
    fs::create_directories(root_ / "allowed" / "model");
    ASSERT_TRUE(WriteFileAtomic((root_ / "allowed/model/config.json").string(), "{}").ok());
    fs::create_directories(root_ / "secret");
    ASSERT_TRUE(WriteFileAtomic((root_ / "secret/config.json").string(), "{}").ok());
    opts_.file_roots = {(root_ / "allowed").string(), testing::ModelsDir()};
  }
  void TearDown() override { fs::remove_all(root_); }
  absl::StatusOr<std::string> Fetch(const std::string& path) {
    return MakeModelFetcher(opts_)->Fetch("file://" + path, "/unused", nullptr);
  }
  fs::path root_;
  FetcherOptions opts_;
};

TEST_F(FileFetcherTest, ReturnsTheCanonicalDirectoryInsideARoot) {
  auto dir = Fetch((root_ / "allowed/model").string());
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, fs::canonical(root_ / "allowed/model").string());
  auto real = Fetch(fs::canonical(ModelDir()).string());  // SLQ_SHARED_DIR may hold ".."
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_TRUE(fs::exists(*real + "/model.safetensors"));
}

TEST_F(FileFetcherTest, RejectsTraversalAndSymlinkEscapes) {
  auto dots = Fetch((root_ / "allowed/model/../../secret").string());
  EXPECT_TRUE(absl::IsPermissionDenied(dots.status())) << dots.status();
  EXPECT_NE(dots.status().message().find(".."), std::string::npos);
  auto outside = Fetch((root_ / "secret").string());
  EXPECT_TRUE(absl::IsPermissionDenied(outside.status())) << outside.status();
  fs::create_directory_symlink(root_ / "secret", root_ / "allowed/link");
  auto link = Fetch((root_ / "allowed/link").string());
  EXPECT_TRUE(absl::IsPermissionDenied(link.status())) << link.status();
  EXPECT_NE(link.status().message().find("secret"), std::string::npos);
  // A file inside an allowed model dir that links outside is refused too.
  fs::create_symlink(root_ / "secret/config.json", root_ / "allowed/model/weights.safetensors");
  auto inner = Fetch((root_ / "allowed/model").string());
  EXPECT_TRUE(absl::IsPermissionDenied(inner.status())) << inner.status();
  auto missing = Fetch((root_ / "allowed/none").string());
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  opts_.file_roots.clear();
  EXPECT_TRUE(absl::IsPermissionDenied(Fetch((root_ / "allowed/model").string()).status()));
}

TEST(FetcherDispatchTest, UnknownSchemeIsNamed) {
  auto r = MakeModelFetcher({})->Fetch("ftp://x/y", "/tmp", nullptr);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_NE(r.status().message().find("'ftp'"), std::string::npos);
}

}  // namespace
}  // namespace slq
