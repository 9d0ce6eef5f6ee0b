// The TL test's power math (tl_power.h) against values worked out by hand.
// Constants: z_{0.975} = 1.959964, z_{0.80} = 0.841621, their sum 2.801585, its square 7.848880.
#include "server/quant/tl_power.h"

#include <cmath>

#include "gtest/gtest.h"

namespace slq::quant {
namespace {

TEST(TlPowerTest, MinDetectableDifferenceByHand) {
  // p = 0.5, n = 2000: SE = sqrt(0.25 / 2000) = sqrt(1.25e-4) = 0.0111803; x 2.801585 = 0.0313227.
  EXPECT_NEAR(MinDetectableDifference(0.5, 2000), 0.0313227, 1e-6);
  // p = 0.3, n = 100: SE = sqrt(0.21 / 100) = 0.0458258; x 2.801585 = 0.1283848 (the old ~100-item check).
  EXPECT_NEAR(MinDetectableDifference(0.3, 100), 0.1283848, 1e-6);
  // p = 0.3, n = 2000: SE = sqrt(0.21 / 2000) = 0.0102470; x 2.801585 = 0.0287077.
  EXPECT_NEAR(MinDetectableDifference(0.3, 2000), 0.0287077, 1e-6);
  // Symmetric in p <-> 1 - p.
  EXPECT_DOUBLE_EQ(MinDetectableDifference(0.3, 500), MinDetectableDifference(0.7, 500));
  EXPECT_TRUE(std::isinf(MinDetectableDifference(0.5, 0)));
}

TEST(TlPowerTest, ItemsToDetectFivePointsByHand) {
  // n = 7.848880 x p (1 - p) / 0.05^2, rounded up.
  EXPECT_EQ(ItemsToDetect(0.5, 0.05), 785);  // 7.848880 x 0.25 / 0.0025 = 784.888
  EXPECT_EQ(ItemsToDetect(0.3, 0.05), 660);  // 7.848880 x 0.21 / 0.0025 = 659.306
  EXPECT_EQ(ItemsToDetect(0.1, 0.05), 283);  // 7.848880 x 0.09 / 0.0025 = 282.560
  EXPECT_EQ(ItemsToDetect(0.5, 0.10), 197);  // 7.848880 x 0.25 / 0.01 = 196.222
  // With exactly that many items the test detects 0.05 (and one item fewer it does not).
  EXPECT_LE(MinDetectableDifference(0.5, 785), 0.05);
  EXPECT_GT(MinDetectableDifference(0.5, 784), 0.05);
  // p = 0 seen on 100 items: p is clamped to 0.5 / 100 = 0.005 -> 7.848880 x 0.004975 / 0.0025 = 15.62 -> 16.
  EXPECT_EQ(ItemsToDetect(0.0, 0.05, 100), 16);
}

TEST(TlPowerTest, PowerByHand) {
  // n = 785, p = 0.5: SE = sqrt(0.25 / 785) = 0.0178458; 0.05 / SE = 2.801785;
  // Phi(2.801785 - 1.959964) = Phi(0.841821) = 0.800057; the other tail Phi(-4.76) ~ 1e-6.
  EXPECT_NEAR(TlPower(0.05, 0.5, 785), 0.800057, 2e-6);
  // At the minimal detectable difference the power is 80% (+ the other tail, < 1e-5).
  for (double p : {0.1, 0.3, 0.5, 0.8}) {
    for (int64_t n : {100, 700, 2000}) {
      const double d = MinDetectableDifference(p, n);
      EXPECT_NEAR(TlPower(d, p, n), 0.80, 1e-5) << p << " " << n;
      EXPECT_LT(TlPower(d * 0.9, p, n), 0.80);
    }
  }
  // No difference: the test's size, 2 x Phi(-1.959964) = 0.05.
  EXPECT_NEAR(TlPower(0.0, 0.5, 1000), 0.05, 1e-9);
  EXPECT_EQ(TlPower(0.05, 0.5, 0), 0.0);
}

TEST(TlPowerTest, ConclusiveNeedsPowerAndARoomForFivePoints) {
  EXPECT_TRUE(TlConclusive(0.5, 785));   // MDE 0.049996
  EXPECT_FALSE(TlConclusive(0.5, 784));  // MDE 0.050028
  // 9 hits of 2000 (measured: tinystories-656k on debian-docs): MDE = 2.801585 x
  // sqrt(0.0045 x 0.9955 / 2000) = 0.0042 "detects" 0.05, but a 5-point drop is impossible.
  EXPECT_LE(MinDetectableDifference(0.0045, 2000), 0.05);
  EXPECT_FALSE(TlConclusive(0.0045, 2000));
  EXPECT_FALSE(TlConclusive(0.96, 2000));
  EXPECT_TRUE(TlConclusive(0.05, 2000));
  EXPECT_FALSE(TlConclusive(0.5, 0));
}

}  // namespace
}  // namespace slq::quant
