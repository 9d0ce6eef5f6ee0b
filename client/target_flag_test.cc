#include "client/target_flag.h"

#include "gtest/gtest.h"

namespace slq::client {
namespace {

TEST(TargetFlagTest, ParsesEveryKind) {
  EXPECT_DOUBLE_EQ(ParseTargetFlag("ear>=0.99")->min_ear(), 0.99);
  EXPECT_DOUBLE_EQ(ParseTargetFlag(" KL<=0.01 ")->max_kl(), 0.01);
  EXPECT_DOUBLE_EQ(ParseTargetFlag("bits<=4.5")->max_avg_bits(), 4.5);
  EXPECT_DOUBLE_EQ(ParseTargetFlag("tl<=0.02")->task_lossless_kl(), 0.02);
  EXPECT_DOUBLE_EQ(ParseTargetFlag("tl")->task_lossless_kl(), 0.01);  // as `slq quantize --target tl`
}

TEST(TargetFlagTest, SubmitFlagsFailBeforeTheRpc) {
  EXPECT_TRUE(ValidateSubmitFlags("ear>=0.99", "4-5-6-7-8", 128, false).ok());
  for (const char* f : {"9-10", "1..8", "4,4", ""}) {
    EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", f, 128, false).code(), absl::StatusCode::kInvalidArgument) << f;
  }
  EXPECT_EQ(ValidateSubmitFlags("bits<=2", "2..8", 128, false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 100, false).code(), absl::StatusCode::kInvalidArgument);
  // --symmetry / --group-sizes: the server's validator, before the RPC.
  EXPECT_TRUE(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "both", "64,128").ok());
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "both", "64").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, true, "rtn", false, "asym", "").code(),
            absl::StatusCode::kInvalidArgument);
  // Symmetric variants lower the reachable budget: bits<=4.2 needs them at 4 bits, g128.
  EXPECT_FALSE(ValidateSubmitFlags("bits<=4.2", "4-8", 128, false).ok());
  EXPECT_TRUE(ValidateSubmitFlags("bits<=4.2", "4-8", 128, false, "rtn", false, "both", "").ok());
  // --grids / --cloze-items: the server's validator, before the RPC.
  EXPECT_TRUE(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "", "", "both", 0).ok());
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "", "", "always").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, true, "rtn", false, "", "", "on").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "", "", "", -1).code(),
            absl::StatusCode::kInvalidArgument);
  // --scales: fp16 | s8 | both; s8 lowers the reachable budget (4 + 12/128 at 4-bit g128) and is
  // refused with --hadamard.
  EXPECT_TRUE(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "", "", "", 2000, "both").ok());
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", false, "", "", "", 2000, "int8").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ValidateSubmitFlags("bits<=4.2", "4-8", 128, false, "rtn", false, "", "", "", 2000, "fp16").ok());
  EXPECT_TRUE(ValidateSubmitFlags("bits<=4.2", "4-8", 128, false, "rtn", false, "", "", "", 2000, "s8").ok());
  EXPECT_EQ(ValidateSubmitFlags("ear>=0.99", "4-8", 128, false, "rtn", true, "", "", "", 2000, "s8").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TargetFlagTest, RejectsWithAReason) {
  for (const char* bad : {"ear>=1.5", "ear>=0", "kl<=-1", "bits<=1", "ear=0.9", "", "ppl<=3", "ear>=x"}) {
    auto t = ParseTargetFlag(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseTargetFlag("ppl<=3").status().message().find("ear>=X"), std::string::npos);
}

}  // namespace
}  // namespace slq::client
