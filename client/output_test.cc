#include "client/output.h"

#include "gtest/gtest.h"

namespace slq::client {
namespace {

TEST(OutputTest, ProgressBarAndDurations) {
  EXPECT_EQ(ProgressBar(0.5, "profile", 72, 10), "[#####.....]  50% profile   ETA 1m12s");
  EXPECT_EQ(ProgressBar(2.0, "fetch", 0, 4), "[####] 100% fetch   ");
  EXPECT_EQ(FormatDuration(5), "5s");
  EXPECT_EQ(FormatDuration(3725), "1h02m");
}

TEST(OutputTest, NamesAndExitCodes) {
  EXPECT_EQ(JobStateName(slq::v1::JOB_STATE_SUCCEEDED), "SUCCEEDED");
  EXPECT_EQ(JobStageName(slq::v1::JOB_STAGE_PROFILE), "profile");
  EXPECT_EQ(ReportRpcError(grpc::Status(grpc::StatusCode::NOT_FOUND, "x"), "t"), kExitNotFound);
  EXPECT_EQ(ReportRpcError(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "x"), "t"), kExitAuth);
  EXPECT_EQ(ReportRpcError(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x"), "t"), kExitBusy);
}

}  // namespace
}  // namespace slq::client
