#include "server/model/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace slq {
namespace {

using ::testing::HasSubstr;

std::vector<float> Logits() { return {0.1f, 2.0f, 1.5f, -1.0f, 1.9f, 0.0f, 0.5f, -3.0f}; }

TEST(SamplerTest, GreedyPicksArgmax) {
  Sampler s(SamplingParams{.temperature = 0.0f});
  EXPECT_EQ(s.Sample(Logits(), {}), 1);
}

TEST(SamplerTest, SameSeedSameTokens) {
  SamplingParams p{.temperature = 1.0f, .seed = 1234};
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.Sample(Logits(), out));
    return out;
  };
  EXPECT_EQ(run(1234), run(1234));
  EXPECT_NE(run(1234), run(99));
}

TEST(SamplerTest, FrequenciesFollowSoftmax) {
  Sampler s(SamplingParams{.temperature = 1.0f, .seed = 7});
  std::vector<float> l = Logits();
  std::map<int32_t, int> count;
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++count[s.Sample(l, {})];
  double z = 0;
  for (float x : l) z += std::exp(x);
  for (int i = 0; i < 8; ++i) {
    const double p = std::exp(l[i]) / z;
    EXPECT_NEAR(count[i] / double(n), p, 4 * std::sqrt(p * (1 - p) / n) + 1e-3) << i;
  }
}

TEST(SamplerTest, TopKAndTopPRestrictSupport) {
  Sampler k2(SamplingParams{.temperature = 5.0f, .top_k = 2, .seed = 3});
  Sampler p(SamplingParams{.temperature = 1.0f, .top_p = 0.5f, .seed = 3});
  for (int i = 0; i < 500; ++i) {
    int32_t a = k2.Sample(Logits(), {});
    EXPECT_TRUE(a == 1 || a == 4) << a;
    // softmax: p(1) ~ 0.31, p(4) ~ 0.28 -> the nucleus at 0.5 is {1, 4}
    int32_t b = p.Sample(Logits(), {});
    EXPECT_TRUE(b == 1 || b == 4) << b;
  }
}

TEST(SamplerTest, RepetitionPenalty) {
  Sampler s(SamplingParams{.temperature = 0.0f, .repetition_penalty = 2.0f});
  // 2.0 / 2 = 1.0 < 1.9: token 4 wins once 1 was seen (several times: applied once).
  std::vector<int32_t> hist = {1, 1, 1};
  EXPECT_EQ(s.Sample(Logits(), hist), 4);
  Sampler s2(SamplingParams{.temperature = 0.0f, .repetition_penalty = 1.2f});
  EXPECT_EQ(s2.Sample(Logits(), hist), 4);  // 2.0 / 1.2 = 1.67 < 1.9
  std::vector<int32_t> once = {1};
  Sampler s3(SamplingParams{.temperature = 0.0f, .repetition_penalty = 1.04f});
  EXPECT_EQ(s3.Sample(Logits(), once), 1);  // 2.0 / 1.04 = 1.92 > 1.9
}

TEST(SamplerTest, Validation) {
  const int64_t v = 8;
  EXPECT_TRUE(ValidateSamplingParams({}, v).ok());
  EXPECT_THAT(ValidateSamplingParams({.temperature = -0.5f}, v).message(), HasSubstr("temperature"));
  EXPECT_FALSE(ValidateSamplingParams({.temperature = NAN}, v).ok());
  EXPECT_THAT(ValidateSamplingParams({.top_k = -1}, v).message(), HasSubstr("top_k"));
  EXPECT_THAT(ValidateSamplingParams({.top_p = 0.0f}, v).message(), HasSubstr("(0, 1]"));
  EXPECT_FALSE(ValidateSamplingParams({.top_p = 1.5f}, v).ok());
  EXPECT_FALSE(ValidateSamplingParams({.repetition_penalty = 0.0f}, v).ok());
  EXPECT_FALSE(ValidateSamplingParams({.stop_token_ids = {8}}, v).ok());
  Sampler s(SamplingParams{.stop_token_ids = {3, 5}});
  EXPECT_TRUE(s.IsStop(5));
  EXPECT_FALSE(s.IsStop(4));
}

TEST(SamplerTest, FindStopString) {
  std::vector<std::string> stops = {"\n\n", "END"};
  EXPECT_EQ(FindStopString("hello EN", stops, 2), std::string_view::npos);
  EXPECT_EQ(FindStopString("hello END", stops, 1), 6u);                         // match completed by the new char
  EXPECT_EQ(FindStopString("a\n\nb END", stops, 7), 1u);                        // earliest match
  EXPECT_EQ(FindStopString("a\n\nb END", stops, 5), 5u);                        // "\n\n" ended before
  EXPECT_EQ(FindStopString("END and more", stops, 3), std::string_view::npos);  // old match
}

}  // namespace
}  // namespace slq
