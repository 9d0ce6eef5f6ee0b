#include "server/quant/metrics.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace slq::quant {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 3.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(MetricsTest, IdenticalLogitsGiveExactlyOneAndZero) {
  const int64_t T = 20, V = 2048;
  std::vector<float> a = Random(T * V, 1, 8.f);
  std::vector<int32_t> next(T, 5);
  for (double temp : {1.0, 0.7, 1.3}) {
    auto s = CompareLogits(a.data(), a.data(), T, V, next.data(), temp);
    ASSERT_TRUE(s.ok());
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(s->ear[t], 1.0);
      EXPECT_EQ(s->kl[t], 0.0);
      EXPECT_EQ(s->flip[t], 0);
      EXPECT_EQ(s->nll_base[t], s->nll_quant[t]);
    }
    auto r = Summarize({*s, *s}, {});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->ear.mean, 1.0);
    EXPECT_EQ(r->ear.lo, 1.0);
    EXPECT_EQ(r->kl.hi, 0.0);
    EXPECT_EQ(r->ppl_ratio.mean, 1.0);
  }
}

TEST(MetricsTest, MatchesHandComputedTwoTokenCase) {
  // p = softmax(0, 0) = (.5, .5); q = softmax(log 3, 0) = (.75, .25).
  const float base[2] = {0.f, 0.f};
  const float quant[2] = {std::log(3.f), 0.f};
  const int32_t next[1] = {1};
  auto s = CompareLogits(base, quant, 1, 2, next, 1.0);
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR(s->ear[0], 0.75, 1e-7);  // min(.5,.75) + min(.5,.25)
  EXPECT_NEAR(s->kl[0], 0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25), 1e-7);
  EXPECT_EQ(s->flip[0], 0);  // p's tie resolves to index 0, q's argmax is 0
  EXPECT_NEAR(s->nll_quant[0], -std::log(0.25), 1e-7);
  EXPECT_NEAR(s->nll_base[0], -std::log(0.5), 1e-7);
}

TEST(MetricsTest, TemperatureSharpensOrFlattens) {
  const int64_t T = 10, V = 50;
  std::vector<float> a = Random(T * V, 2), b = a;
  for (auto& x : b) x += 0.3f * Random(1, static_cast<uint32_t>(&x - b.data()))[0];
  auto s1 = CompareLogits(a.data(), b.data(), T, V, nullptr, 1.0);
  auto s2 = CompareLogits(a.data(), b.data(), T, V, nullptr, 4.0);
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_GT(s2->SumEar(), s1->SumEar());  // higher temperature: closer distributions
  EXPECT_TRUE(s1->nll_base.empty());
  EXPECT_FALSE(CompareLogits(a.data(), b.data(), T, V, nullptr, 0.0).ok());
}

TEST(MetricsTest, BootstrapIntervalCoversMeanAndIsSeeded) {
  std::vector<SequenceMetrics> seqs;
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.9, 1.0);
  for (int i = 0; i < 40; ++i) {
    SequenceMetrics s;
    const double level = u(rng);
    for (int t = 0; t < 30; ++t) {
      s.ear.push_back(level);
      s.kl.push_back(1 - level);
      s.flip.push_back(t % 7 == 0);
    }
    seqs.push_back(s);
  }
  auto r1 = Summarize(seqs, {1000, 7});
  auto r2 = Summarize(seqs, {1000, 7});
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_LT(r1->ear.lo, r1->ear.mean);
  EXPECT_GT(r1->ear.hi, r1->ear.mean);
  EXPECT_EQ(r1->ear.lo, r2->ear.lo);
  // Sequence-level spread: half-width ~ 1.96 * sd(levels) / sqrt(40) = 0.009.
  EXPECT_NEAR(r1->ear.hi - r1->ear.lo, 2 * 1.96 * 0.1 / std::sqrt(12.0) / std::sqrt(40.0), 0.004);
  EXPECT_TRUE(EarTargetMet(*r1, r1->ear.lo));
  EXPECT_FALSE(EarTargetMet(*r1, r1->ear.mean));
  EXPECT_FALSE(KlTargetMet(*r1, r1->kl.mean));
  EXPECT_EQ(r1->sequences, 40);
  EXPECT_EQ(r1->positions, 1200);
  EXPECT_FALSE(Summarize({}, {}).ok());
  nlohmann::json j = *r1;
  FidelityReport back = j.get<FidelityReport>();
  EXPECT_EQ(back.ear.lo, r1->ear.lo);
}

}  // namespace
}  // namespace slq::quant
