#include "server/spec/job_spec.h"

#include "gtest/gtest.h"

namespace slq::spec {
namespace {

TEST(JobSpecTest, ParsesEveryTargetForm) {
  EXPECT_EQ(*ParseTarget("ear>=0.99"), (Target{Target::Kind::kEar, 0.99}));
  EXPECT_EQ(*ParseTarget(" KL <= 0.01 "), (Target{Target::Kind::kKl, 0.01}));
  EXPECT_EQ(*ParseTarget("bits<=4.5"), (Target{Target::Kind::kBits, 4.5}));
  EXPECT_EQ(*ParseTarget("tl"), (Target{Target::Kind::kTaskLossless, kTlKlBudget}));
  EXPECT_EQ(*ParseTarget("TL<=0.02"), (Target{Target::Kind::kTaskLossless, 0.02}));
}

TEST(JobSpecTest, TargetStringsRoundTrip) {
  for (const char* s : {"ear>=0.99", "kl<=0.01", "bits<=4.5", "tl", "tl<=0.02"}) {
    EXPECT_EQ(ParseTarget(s)->ToString(), s);
  }
  EXPECT_EQ(ParseTarget("tl<=0.01")->ToString(), "tl");  // the two spellings of the default are one target
}

TEST(JobSpecTest, RejectsTargetsWithOneText) {
  for (const char* bad : {"", "ear>=0", "ear>=1.5", "ear<=0.9", "kl<=0", "kl<=-1", "bits<=2", "bits<=17", "tl<=0",
                          "tl<=", "ppl<=2", "ear>=x", "ear>=nan", "kl<=inf"}) {
    auto t = ParseTarget(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(t.status().message().find("allowed: \"ear>=X\""), std::string::npos) << t.status();
    EXPECT_EQ(t.status().message().rfind("target '", 0), 0u) << t.status();
  }
  EXPECT_FALSE(CheckTarget({Target::Kind::kEar, 1.5}).ok());
  EXPECT_TRUE(CheckTarget({Target::Kind::kTaskLossless, 0.05}).ok());
}

TEST(JobSpecTest, ParsesFormats) {
  EXPECT_EQ(*ParseFormats("4-8"), (std::vector<int>{4, 8}));
  EXPECT_EQ(*ParseFormats("4-5-6-7-8"), (std::vector<int>{4, 5, 6, 7, 8}));
  EXPECT_EQ(*ParseFormats("2..8"), (std::vector<int>{2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(*ParseFormats("8,4,6"), (std::vector<int>{4, 6, 8}));
  EXPECT_EQ(*ParseFormats(" 4 "), (std::vector<int>{4}));
  for (const char* bad :
       {"", "9-10", "1..8", "4,4", "4-4", "4-9", "abc", "4..", "8..4", "4-6,8", "fp8", "2..9", "4..6..8", "-4", "4-"}) {
    auto r = ParseFormats(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message().rfind("formats '", 0), 0u) << r.status();
    EXPECT_NE(r.status().message().find("allowed"), std::string::npos);
  }
  EXPECT_NE(ParseFormats("4,4").status().message().find("4 is listed twice"), std::string::npos);
}

TEST(JobSpecTest, ParsesQuantizers) {
  EXPECT_EQ(*ParseQuantizers("rtn"), std::vector<std::string>{"rtn"});
  EXPECT_EQ(*ParseQuantizers("gptq, rtn,mse"), (std::vector<std::string>{"gptq", "rtn", "mse"}));
  EXPECT_FALSE(ParseQuantizers("").ok());
  EXPECT_FALSE(ParseQuantizers("rtn,,gptq").ok());
  EXPECT_NE(ParseQuantizers("awq").status().message().find("'awq' is not one of rtn, mse, gptq"), std::string::npos);
  EXPECT_NE(ParseQuantizers("mse,mse").status().message().find("listed twice"), std::string::npos);
  EXPECT_TRUE(ValidateSpec({.quantizers = "rtn", .hadamard = true}).ok());
  EXPECT_FALSE(ValidateSpec({.quantizers = "rtn,gptq", .hadamard = true}).ok());
  EXPECT_TRUE(ValidateSpec({.quantizers = "rtn,gptq"}).ok());
  // The default when none are given: rtn,gptq, rtn with hadamard; each passes the validator.
  EXPECT_EQ(DefaultQuantizers(false), "rtn,gptq");
  EXPECT_EQ(DefaultQuantizers(true), "rtn");
  EXPECT_TRUE(ValidateSpec({.quantizers = DefaultQuantizers(true), .hadamard = true}).ok());
  EXPECT_TRUE(ValidateSpec({.quantizers = DefaultQuantizers(false)}).ok());
}

TEST(JobSpecTest, ParsesVariants) {
  auto v = ParseVariants(128, false, "", "");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(v->base_symmetric);
  EXPECT_EQ(v->symmetric, std::vector<bool>{false});
  EXPECT_EQ(v->groups, std::vector<int64_t>{128});
  v = ParseVariants(128, false, "both", "64, 128");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->symmetric, (std::vector<bool>{false, true}));  // base first
  EXPECT_EQ(v->groups, (std::vector<int64_t>{128, 64}));
  v = ParseVariants(64, true, "BOTH", "");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->base_symmetric);
  EXPECT_EQ(v->symmetric, (std::vector<bool>{true, false}));
  EXPECT_TRUE(ParseVariants(128, false, "sym", "")->base_symmetric);
  EXPECT_TRUE(ParseVariants(128, true, "sym", "").ok());
  auto msg = [](const absl::StatusOr<VariantSpace>& r) { return std::string(r.status().message()); };
  EXPECT_NE(msg(ParseVariants(128, true, "asym", "")).find("contradicts symmetric"), std::string::npos);
  EXPECT_NE(msg(ParseVariants(128, false, "half", "")).find("'half' is not one of asym, sym, both"), std::string::npos);
  EXPECT_NE(msg(ParseVariants(128, false, "", "64")).find("does not contain group_size 128"), std::string::npos);
  EXPECT_NE(msg(ParseVariants(128, false, "", "64,100,128")).find("'100' is not a group size"), std::string::npos);
  EXPECT_NE(msg(ParseVariants(128, false, "", "64,64,128")).find("64 is listed twice"), std::string::npos);
  EXPECT_FALSE(ParseVariants(128, false, "", "64,,128").ok());
  EXPECT_FALSE(ParseVariants(100, false, "", "").ok());
  // The cheapest offered variant decides what a bits<=X budget can reach.
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, *ParseVariants(64, false, "both", "64,128")), 4.125);
  EXPECT_FALSE(ValidateSpec({.target = "bits<=4.2", .formats = "4-8"}).ok());
  EXPECT_TRUE(ValidateSpec({.target = "bits<=4.2", .formats = "4-8", .symmetry = "both"}).ok());
  EXPECT_FALSE(ValidateSpec({.group_size = 64, .group_sizes = "128"}).ok());
  EXPECT_TRUE(ValidateSpec({.group_size = 64, .group_sizes = "128,64"}).ok());
}

// grids: off (default) / on / both; "on" needs an asymmetric candidate and charges the grid
// index in the reachable budget; cloze_items >= 0.
TEST(JobSpecTest, ParsesGridsAndClozeItems) {
  EXPECT_EQ(ParseVariants(128, false, "", "")->grids, std::vector<bool>{false});
  EXPECT_EQ(ParseVariants(128, false, "", "", "off")->grids, std::vector<bool>{false});
  EXPECT_EQ(ParseVariants(128, false, "", "", "on")->grids, std::vector<bool>{true});
  EXPECT_EQ(ParseVariants(128, false, "", "", " Both ")->grids, (std::vector<bool>{false, true}));
  EXPECT_TRUE(ParseVariants(128, true, "both", "", "on").ok());  // the asymmetric twins carry grids
  EXPECT_TRUE(ParseVariants(128, true, "", "", "both").ok());    // nothing to offer them to: uniform only
  auto msg = [](const absl::StatusOr<VariantSpace>& r) { return std::string(r.status().message()); };
  EXPECT_NE(msg(ParseVariants(128, false, "", "", "yes")).find("grids 'yes' is not one of off, on, both"),
            std::string::npos);
  EXPECT_NE(msg(ParseVariants(128, true, "", "", "on")).find("needs asymmetric scales"), std::string::npos);
  EXPECT_NE(msg(ParseVariants(128, false, "sym", "", "on")).find("needs asymmetric scales"), std::string::npos);
  // The grid index costs 2 bits per group: "on" raises the floor, "both" keeps the uniform one.
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, 128, false, true), 4 + 34.0 / 128);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, *ParseVariants(128, false, "", "", "on")), 4 + 34.0 / 128);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, *ParseVariants(128, false, "", "", "both")), 4.25);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, *ParseVariants(128, false, "both", "", "on")), 4.125);
  EXPECT_TRUE(ValidateSpec({.target = "bits<=4.25", .formats = "4-8", .grids = "both"}).ok());
  const absl::Status s = ValidateSpec({.target = "bits<=4.25", .formats = "4-8", .grids = "on"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("grid index"), std::string::npos) << s;
  EXPECT_FALSE(ValidateSpec({.grids = "sometimes"}).ok());
  EXPECT_TRUE(ValidateSpec({.cloze_items = 0}).ok());
  EXPECT_TRUE(ValidateSpec({.cloze_items = 5000}).ok());
  const absl::Status c = ValidateSpec({.cloze_items = -1});
  EXPECT_EQ(c.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.message().find("cloze_items must be >= 0"), std::string::npos) << c;
}

// scales: fp16 (default) / s8 / both; s8 lowers the floor (8-bit code + a width-bit zero-point
// per group instead of 32 bits), is refused with hadamard, and a bad word names the field.
TEST(JobSpecTest, ParsesScales) {
  EXPECT_EQ(ParseVariants(128, false, "", "")->s8, std::vector<bool>{false});
  EXPECT_EQ(ParseVariants(128, false, "", "", "", "fp16")->s8, std::vector<bool>{false});
  EXPECT_EQ(ParseVariants(128, false, "", "", "", "s8")->s8, std::vector<bool>{true});
  EXPECT_EQ(ParseVariants(128, false, "", "", "", " Both ")->s8, (std::vector<bool>{false, true}));
  EXPECT_TRUE(ParseVariants(128, true, "", "", "", "s8").ok());  // symmetric groups: the code alone
  const auto bad = ParseVariants(128, false, "", "", "", "int8");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("scales 'int8' is not one of fp16, s8, both"), std::string::npos);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, 128, false, false, true), 4 + 12.0 / 128);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, 128, true, false, true), 4 + 8.0 / 128);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, 64, false, true, true), 4 + 14.0 / 64);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, *ParseVariants(128, false, "", "", "", "both")), 4 + 12.0 / 128);
  EXPECT_DOUBLE_EQ(MinAvgBits({4, 8}, *ParseVariants(128, false, "", "64,128", "", "s8")), 4 + 12.0 / 128);
  EXPECT_FALSE(ValidateSpec({.target = "bits<=4.2", .formats = "4-8"}).ok());
  EXPECT_TRUE(ValidateSpec({.target = "bits<=4.2", .formats = "4-8", .scales = "both"}).ok());
  const absl::Status low = ValidateSpec({.target = "bits<=4.05", .formats = "4-8", .scales = "s8"});
  EXPECT_EQ(low.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(low.message().find("s8 scale code and zero-point overhead"), std::string::npos) << low;
  const absl::Status h = ValidateSpec({.quantizers = "rtn", .hadamard = true, .scales = "both"});
  EXPECT_EQ(h.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(h.message().find("cannot be combined with hadamard"), std::string::npos) << h;
  EXPECT_TRUE(ValidateSpec({.quantizers = "rtn", .hadamard = true, .scales = "fp16"}).ok());
}

TEST(JobSpecTest, BitsBudgetMustBeReachable) {
  // Asymmetric g128: fp16 scale + zero = 32 bits per 128 weights on top of the width.
  EXPECT_DOUBLE_EQ(MinAvgBits({2, 4}, 128, false), 2.25);
  EXPECT_DOUBLE_EQ(MinAvgBits({4}, 32, true), 4.5);
  EXPECT_DOUBLE_EQ(MinAvgBits({3}, -1, false), 3);
  EXPECT_FALSE(ValidateSpec({.target = "bits<=2.2", .formats = "2..8"}).ok());
  EXPECT_TRUE(ValidateSpec({.target = "bits<=2.25", .formats = "2..8"}).ok());
  auto s = ValidateSpec({.target = "bits<=4", .formats = "4-8"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unreachable"), std::string::npos) << s;
  EXPECT_TRUE(ValidateSpec({.target = "bits<=4.5", .formats = "4-8"}).ok());
}

TEST(JobSpecTest, ValidatesTheOtherFields) {
  EXPECT_TRUE(ValidateSpec({}).ok());
  EXPECT_FALSE(ValidateSpec({.group_size = 100}).ok());
  EXPECT_TRUE(ValidateSpec({.group_size = -1}).ok());
  EXPECT_FALSE(ValidateSpec({.temperature = 0}).ok());
  EXPECT_FALSE(ValidateSpec({.temperature = 11}).ok());
  EXPECT_FALSE(ValidateSpec({.formats = "4,4"}).ok());
}

}  // namespace
}  // namespace slq::spec
