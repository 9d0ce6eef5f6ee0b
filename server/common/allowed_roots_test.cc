#include "server/common/allowed_roots.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

class AllowedRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::path(::testing::TempDir()) / "slq_allowed_roots";
    fs::remove_all(base_);
    fs::create_directories(base_ / "root/model");
    fs::create_directories(base_ / "outside/model");
    std::ofstream(base_ / "root/model/config.json") << "{}";
    std::ofstream(base_ / "outside/secret.txt") << "secret";
    // The root is named through a symlink: both spellings count as inside.
    fs::create_directory_symlink(base_ / "root", base_ / "root-link");
    roots_ = AllowedRoots({(base_ / "root-link").string()});
  }
  void TearDown() override { fs::remove_all(base_); }

  fs::path base_;
  AllowedRoots roots_;
};

TEST_F(AllowedRootsTest, InsideResolvesToTheCanonicalPath) {
  auto r = roots_.Confine((base_ / "root-link/model").string(), "model", {.check_entries = true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, fs::canonical(base_ / "root/model"));
  EXPECT_TRUE(roots_.Confine((base_ / "root/model/config.json").string(), "file", {}).ok());
  EXPECT_TRUE(roots_.Contains(fs::canonical(base_ / "root/model")));
  EXPECT_FALSE(roots_.Contains(fs::canonical(base_ / "outside")));
  EXPECT_FALSE(roots_.empty());
  EXPECT_TRUE(AllowedRoots(std::vector<std::string>{}).empty());
}

TEST_F(AllowedRootsTest, OutsideIsDeniedWithoutAnExistenceProbe) {
  auto present = roots_.Confine((base_ / "outside/secret.txt").string(), "text", {});
  auto missing = roots_.Confine((base_ / "outside/no-such.txt").string(), "text", {});
  EXPECT_EQ(present.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(present.status().message().find("outside the allowed roots"), std::string::npos);
  EXPECT_NE(present.status().message().find("text '"), std::string::npos) << "names what was refused";
  // A sibling whose name merely starts with the root's name is not inside.
  fs::create_directories(base_ / "root-linkX");
  EXPECT_EQ(roots_.Confine((base_ / "root-linkX").string(), "model", {}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(AllowedRootsTest, DotDotIsNormalisedOrRefused) {
  const std::string escape = (base_ / "root-link/model/../../outside/secret.txt").string();
  EXPECT_EQ(roots_.Confine(escape, "file", {}).status().code(), absl::StatusCode::kPermissionDenied);
  // Normalised away when it stays inside; refused outright with reject_dotdot.
  const std::string inside = (base_ / "root-link/model/../model/config.json").string();
  EXPECT_TRUE(roots_.Confine(inside, "file", {}).ok());
  auto refused = roots_.Confine(inside, "file", {.reject_dotdot = true});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("'..'"), std::string::npos);
}

TEST_F(AllowedRootsTest, MissingInsideIsNotFoundUnlessAllowed) {
  const std::string p = (base_ / "root-link/no-such-model").string();
  EXPECT_EQ(roots_.Confine(p, "model", {}).status().code(), absl::StatusCode::kNotFound);
  auto r = roots_.Confine(p, "model", {.allow_missing = true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, fs::canonical(base_ / "root") / "no-such-model");
}

TEST_F(AllowedRootsTest, SymlinkEscapesAreDenied) {
  // A directory link inside the root pointing outside.
  fs::create_directory_symlink(base_ / "outside/model", base_ / "root/escape");
  auto dir = roots_.Confine((base_ / "root-link/escape").string(), "model", {});
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(dir.status().message().find("resolves to"), std::string::npos);
  // A file link inside an allowed folder: refused only when entries are checked.
  fs::create_symlink(base_ / "outside/secret.txt", base_ / "root/model/weights.safetensors");
  EXPECT_TRUE(roots_.Confine((base_ / "root/model").string(), "model", {}).ok());
  auto entries = roots_.Confine((base_ / "root/model").string(), "model", {.check_entries = true});
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(entries.status().message().find("weights.safetensors"), std::string::npos);
  // A broken link is NotFound.
  fs::remove(base_ / "root/model/weights.safetensors");
  fs::create_symlink(base_ / "root/nothing-here", base_ / "root/model/dangling");
  EXPECT_EQ(roots_.Confine((base_ / "root/model").string(), "model", {.check_entries = true}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AllowedRootsTest, NoRootsAllowNothing) {
  AllowedRoots none;
  EXPECT_EQ(none.Confine((base_ / "root/model").string(), "model", {}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace slq
