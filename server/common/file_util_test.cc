#include "server/common/file_util.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "server/common/sha256.h"

namespace slq {
namespace {

TEST(FileUtilTest, AtomicWriteThenReadAndHash) {
  std::string dir = ::testing::TempDir() + "/slq_file_util";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/a.txt";
  ASSERT_TRUE(WriteFileAtomic(path, "hello").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "abc").ok());  // replaces
  auto data = ReadFile(path);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "abc");
  EXPECT_EQ(*Sha256File(path), Sha256Hex("abc"));
  EXPECT_EQ(*FileSize(path), 3u);
  // No temp file left behind.
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  EXPECT_EQ(n, 1);
}

TEST(FileUtilTest, ErrorsNameThePath) {
  auto r = ReadFile("/nonexistent/x");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/x"), std::string::npos);
  EXPECT_FALSE(WriteFileAtomic("/nonexistent/dir/x", "a").ok());
}

}  // namespace
}  // namespace slq
