#include "server/api/auth.h"

#include <fstream>

#include "gtest/gtest.h"

namespace slq::api {
namespace {

TEST(BearerAuthTest, AcceptsOnlyTheRightToken) {
  BearerAuth auth = BearerAuth::FromToken("s3cret");
  EXPECT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.CheckHeader("Bearer s3cret").ok());
  EXPECT_TRUE(auth.CheckHeader("bearer s3cret").ok());
  EXPECT_EQ(auth.CheckHeader("Bearer s3cre").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(auth.CheckHeader("Bearer s3cret2").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(auth.CheckHeader("s3cret").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status missing = auth.CheckHeader("");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(missing.error_message().find("--token-file"), std::string::npos);
  // The token never appears in an error message.
  EXPECT_EQ(auth.CheckHeader("Bearer wrong").error_message().find("s3cret"), std::string::npos);
}

TEST(BearerAuthTest, DisabledAcceptsEverything) { EXPECT_TRUE(BearerAuth::Disabled().CheckHeader("").ok()); }

TEST(BearerAuthTest, TokenFileIsTrimmedAndEmptyFileRejected) {
  std::string path = ::testing::TempDir() + "/slq_token";
  std::ofstream(path) << "  abc\n";
  auto auth = BearerAuth::FromTokenFile(path);
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE(auth->CheckHeader("Bearer abc").ok());
  std::ofstream(path) << "\n";
  EXPECT_EQ(BearerAuth::FromTokenFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(BearerAuth::FromTokenFile("/nonexistent/token").ok());
}

}  // namespace
}  // namespace slq::api
