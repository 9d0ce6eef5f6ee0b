#include "server/inference/shadow.h"

#include <gtest/gtest.h>

#include "server/inference/test_util.h"
#include "server/model/model_loader.h"

namespace slq::inference {
namespace {

std::shared_ptr<const Model> Tiny(int quant_bits) {
  auto m = LoadModel(testing::SharedModel("tinystories-656k"), {.compute_sha256 = false});
  if (!m.ok()) return nullptr;
  if (quant_bits > 0 && !testing::QuantizeLinears(m->get(), quant_bits)) return nullptr;
  return std::shared_ptr<const Model>(std::move(*m));
}

std::vector<int32_t> Tokens(int n, int offset) {
  std::vector<int32_t> t = {1};
  for (int i = 0; i < n; ++i) t.push_back(100 + (i * 37 + offset) % 1500);
  return t;
}

TEST(Shadow, IdenticalModelsScoreExactlyOneAndZero) {
  auto base = Tiny(0);
  ASSERT_NE(base, nullptr);
  auto s = ScoreAgainstBase(*base, *base, Tokens(40, 0));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ear, 1.0);
  EXPECT_EQ(s->kl, 0.0);
  EXPECT_EQ(s->positions, 41);
}

TEST(Shadow, QuantizedModelIsCloseButNotEqual) {
  auto base = Tiny(0);
  auto q8 = Tiny(8);
  auto q3 = Tiny(3);
  ASSERT_TRUE(base && q8 && q3);
  auto s8 = ScoreAgainstBase(*base, *q8, Tokens(60, 1));
  auto s3 = ScoreAgainstBase(*base, *q3, Tokens(60, 1));
  ASSERT_TRUE(s8.ok() && s3.ok());
  EXPECT_LT(s8->ear, 1.0);
  EXPECT_GT(s8->ear, 0.97);
  EXPECT_GT(s8->kl, 0.0);
  EXPECT_LT(s3->ear, s8->ear);  // fewer bits, lower fidelity
  EXPECT_GT(s3->kl, s8->kl);
}

TEST(Shadow, EvaluatorSamplesScoresAndObservesMetrics) {
  auto base = Tiny(0);
  auto q8 = Tiny(8);
  ASSERT_TRUE(base && q8);
  Metrics metrics;
  {
    ShadowEvaluator ev(base, q8, {.fraction = 1.0, .queue_capacity = 16, .label = "a8"}, &metrics);
    for (int i = 0; i < 3; ++i) ev.Offer(Tokens(20, i));
    ev.WaitIdle();
    ShadowStats st = ev.stats();
    EXPECT_EQ(st.evaluated, 3);
    EXPECT_GT(st.last.ear, 0.97);
  }
  EXPECT_EQ(metrics.shadow_ear("a8").Collect().histogram.sample_count, 3u);
  EXPECT_EQ(metrics.shadow_kl("a8").Collect().histogram.sample_count, 3u);
  {
    ShadowEvaluator none(base, q8, {.fraction = 0.0}, &metrics);
    none.Offer(Tokens(5, 0));
    EXPECT_EQ(none.stats().kept, 0);
  }
  {
    ShadowEvaluator busy(base, q8, {.fraction = 1.0, .queue_capacity = 1}, nullptr);
    for (int i = 0; i < 30; ++i) busy.Offer(Tokens(200, i));
    ShadowStats st = busy.stats();
    EXPECT_EQ(st.offered, 30);
    EXPECT_GT(st.dropped, 0);  // bounded queue: serving never waits for the shadow
  }
}

}  // namespace
}  // namespace slq::inference
