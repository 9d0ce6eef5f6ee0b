#include "server/model/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

namespace slq {
namespace {

TEST(OpsTest, RmsNormMatchesFormula) {
  std::vector<float> x = {1, -2, 3, 0.5f, 4, 4, -4, 4}, w = {1, 2, 0.5f, 1};
  std::vector<float> y(8);
  RmsNorm(x.data(), w.data(), 2, 4, 1e-5, y.data());
  for (int r = 0; r < 2; ++r) {
    double ms = 0;
    for (int i = 0; i < 4; ++i) ms += x[r * 4 + i] * x[r * 4 + i] / 4.0;
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(y[r * 4 + i], w[i] * x[r * 4 + i] / std::sqrt(ms + 1e-5), 1e-6);
    }
  }
}

TEST(OpsTest, RopeStylesAreAPermutationOfEachOther) {
  ModelConfig c;
  c.head_dim = 8;
  std::vector<float> inv = RopeInvFreq(c);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_FLOAT_EQ(inv[1], 1.0f / std::pow(10000.0f, 0.25f));
  int64_t pos = 7;
  std::vector<float> cs(4), sn(4);
  RopeTables(inv, &pos, 1, cs.data(), sn.data());
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> half(8), inter(8);
  for (float& v : half) v = nd(rng);
  for (int i = 0; i < 4; ++i) {  // rotate_half pair (i, i+4) == interleaved pair (2i, 2i+1)
    inter[2 * i] = half[i];
    inter[2 * i + 1] = half[i + 4];
  }
  const std::vector<float> orig = half;
  ApplyRope(half.data(), 1, 8, cs.data(), sn.data(), RopeStyle::kRotateHalf);
  ApplyRope(inter.data(), 1, 8, cs.data(), sn.data(), RopeStyle::kInterleaved);
  double n0 = 0, n1 = 0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(inter[2 * i], half[i]);
    EXPECT_FLOAT_EQ(inter[2 * i + 1], half[i + 4]);
    // A rotation by 7 * inv[i] radians.
    const double a = 7.0 * inv[i];
    EXPECT_NEAR(half[i], orig[i] * std::cos(a) - orig[i + 4] * std::sin(a), 1e-5);
  }
  for (int i = 0; i < 8; ++i) {
    n0 += orig[i] * orig[i];
    n1 += half[i] * half[i];
  }
  EXPECT_NEAR(n0, n1, 1e-4);
}

TEST(OpsTest, Llama3ScalingBands) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  std::vector<float> base = RopeInvFreq(c);
  c.rope_scaling = {RopeScaling::Type::kLlama3, 8.0, 1.0, 4.0, 8192};
  std::vector<float> scaled = RopeInvFreq(c);
  int kept = 0, divided = 0, mid = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * M_PI / base[i];
    if (wavelen < 8192.0 / 4) {
      EXPECT_EQ(scaled[i], base[i]);
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_NEAR(scaled[i], base[i] / 8.0, 1e-12);
      ++divided;
    } else {
      const double s = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(scaled[i], (1 - s) * base[i] / 8 + s * base[i], 1e-9);
      ++mid;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(mid, 0);
}

TEST(OpsTest, SwiGluAndSoftmax) {
  std::vector<float> g = {-1, 0, 2}, u = {2, 3, 0.5f}, h(3);
  SwiGlu(g.data(), u.data(), 3, h.data());
  EXPECT_NEAR(h[0], -1 / (1 + std::exp(1.0)) * 2, 1e-6);
  EXPECT_EQ(h[1], 0.0f);
  EXPECT_NEAR(h[2], 2 / (1 + std::exp(-2.0)) * 0.5, 1e-6);
  std::vector<float> x = {1000, 1001, 999};
  SoftmaxInPlace(x.data(), 3);
  EXPECT_NEAR(std::accumulate(x.begin(), x.end(), 0.0), 1.0, 1e-6);
  EXPECT_GT(x[1], x[0]);
  EXPECT_NEAR(x[1] / x[0], std::exp(1.0), 1e-4);
}

}  // namespace
}  // namespace slq
