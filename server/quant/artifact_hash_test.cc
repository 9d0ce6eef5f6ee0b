// Parallel artifact digests: chunked sha256 equals hashing the pieces, a flipped byte in any
// chunk is DataLoss naming the file and the chunk's range, the whole-file path (old manifests)
// still works, and a chunk list that does not fit the size is refused.
#include "server/quant/artifact_hash.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "server/common/file_util.h"
#include "server/common/sha256.h"

namespace slq::quant {
namespace {

class ArtifactHashTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/artifact_hash_test_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/w.bin";
    for (int i = 0; i < 10000; ++i) data_.push_back(static_cast<char>((i * 7919) >> 3));
    ASSERT_TRUE(WriteFileAtomic(path_, data_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  DigestCheck Chunked(uint64_t chunk) {
    absl::StatusOr<std::vector<std::string>> c = Sha256Chunks(path_, data_.size(), chunk);
    EXPECT_TRUE(c.ok()) << c.status();
    return {.path = path_,
            .bytes = data_.size(),
            .sha256 = Sha256Hex(data_),
            .chunk_bytes = chunk,
            .chunk_sha256 = c.ok() ? *c : std::vector<std::string>{}};
  }
  std::string dir_, path_, data_;
};

TEST_F(ArtifactHashTest, ChunksAreTheShaOfEachPiece) {
  absl::StatusOr<std::vector<std::string>> c = Sha256Chunks(path_, data_.size(), 3000);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), 4u);  // 3000, 3000, 3000, 1000
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ((*c)[i], Sha256Hex(std::string_view(data_).substr(i * 3000, 3000)));
  EXPECT_TRUE(Sha256Chunks(path_, 0, 3000)->empty());
  EXPECT_EQ(Sha256Chunks(dir_ + "/missing", 10, 3000).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Sha256Chunks(path_, data_.size() + 1, 3000).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ArtifactHashTest, IntactFilesPassChunkedAndWhole) {
  DigestCheck whole{.path = path_, .bytes = data_.size(), .sha256 = Sha256Hex(data_)};
  EXPECT_TRUE(VerifyDigests({Chunked(1024), whole, Chunked(1 << 20)}).ok());
}

TEST_F(ArtifactHashTest, AFlippedByteIsDataLossNamingTheFileAndRange) {
  const DigestCheck good = Chunked(1024);
  std::string bad = data_;
  bad[5000] ^= 1;  // chunk 4: [4096, 5120)
  ASSERT_TRUE(WriteFileAtomic(path_, bad).ok());
  absl::Status s = VerifyDigests({good});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find(path_), std::string::npos) << s;
  EXPECT_NE(s.message().find("[4096, 5120)"), std::string::npos) << s;
  EXPECT_NE(s.message().find("corrupted"), std::string::npos) << s;
  DigestCheck whole{.path = path_, .bytes = data_.size(), .sha256 = Sha256Hex(data_)};
  EXPECT_EQ(VerifyDigests({whole}).code(), absl::StatusCode::kDataLoss);
}

TEST_F(ArtifactHashTest, AChunkListThatDoesNotFitTheSizeIsRefused) {
  DigestCheck d = Chunked(1024);
  d.chunk_sha256.pop_back();
  absl::Status s = VerifyDigests({d});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("chunk digests"), std::string::npos) << s;
}

}  // namespace
}  // namespace slq::quant
