// TransferBound: the formula, and simulations of the closed loop's selection showing that (1) the
// plain calibration 95% bound (the rule that certified tinystories-656k at 7.958 bits and then
// missed on held-out) fails the held-out check far more often than the transfer bound does, and
// (2) on a few windows from a few documents (the 10 KB story text) the transfer bound with the
// measured calibration spread fails far more often than with the spread's upper confidence bound.
#include "server/quant/transfer_bound.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace slq::quant {
namespace {

TEST(TransferBoundTest, MarginFromIntervalWidthAndSplitSizes) {
  const double z = 1.959964;
  Interval iv{0.995, 0.995 - z * 0.001, 0.995 + z * 0.001};  // se_c = 0.001 as measured
  // Equal splits: se_h = se_c; margin = 1.96 * sqrt(2) * se + 1.96 * se.
  EXPECT_NEAR(TransferBound(iv, 10, 10, true, 1.96, false), 0.995 - (1.96 * std::sqrt(2.0) + z) * 0.001, 1e-9);
  // Four times the held-out sequences: se_h = se_c / 2.
  EXPECT_NEAR(TransferBound(iv, 10, 40, true, 1.96, false), 0.995 - (1.96 * std::sqrt(1.25) + z * 0.5) * 0.001, 1e-9);
  // Upper bounds (KL) mirror; z = 0 leaves only the held-out interval's own half width.
  EXPECT_NEAR(TransferBound(iv, 10, 10, false, 0.0, false), 0.995 + z * 0.001, 1e-9);
  // The default scales se_c (and so se_h) by the spread's upper confidence factor of n_c.
  const double k = SpreadUpperFactor(10);
  EXPECT_NEAR(TransferBound(iv, 10, 10, true), 0.995 - (1.96 * std::sqrt(2.0) + z) * 0.001 * k, 1e-9);
  EXPECT_NEAR(TransferBound(iv, 10, 40, false), 0.995 + (1.96 * std::sqrt(1.25) + z * 0.5) * 0.001 * k, 1e-9);
  // A zero-width interval (identical models) gives the point estimate.
  EXPECT_EQ(TransferBound({1.0, 1.0, 1.0}, 5, 5, true), 1.0);
}

TEST(TransferBoundTest, SpreadUpperFactorIsTheChiSquareBound) {
  // sqrt(df / chi2_{0.05}(df)) from the chi-square table: df 6 -> 1.635383, df 15 -> 7.260944,
  // df 127 -> 102.0063 (the last two through Wilson-Hilferty).
  EXPECT_NEAR(SpreadUpperFactor(7), std::sqrt(6 / 1.635383), 1e-6);
  EXPECT_NEAR(SpreadUpperFactor(16), std::sqrt(15 / 7.260944), 2e-3);
  EXPECT_NEAR(SpreadUpperFactor(128), std::sqrt(127 / 102.0063), 2e-3);
  // Fewer sequences, a less certain spread: strictly decreasing towards 1.
  double prev = SpreadUpperFactor(2);
  for (int64_t n = 3; n <= 200; ++n) {
    const double f = SpreadUpperFactor(n);
    EXPECT_LT(f, prev) << n;
    EXPECT_GT(f, 1.0) << n;
    prev = f;
  }
  EXPECT_EQ(SpreadUpperFactor(1), SpreadUpperFactor(2));
  EXPECT_EQ(SpreadUpperFactor(0), SpreadUpperFactor(2));
}

// Per-sequence EAR values: one position per sequence, so the pooled mean is the plain mean.
std::vector<SequenceMetrics> Seqs(const std::vector<double>& v) {
  std::vector<SequenceMetrics> out;
  for (double e : v) {
    SequenceMetrics s;
    s.ear = {e};
    s.kl = {1 - e};
    s.flip = {0};
    out.push_back(s);
  }
  return out;
}

// Candidate allocations k = 0..9, cheaper as k grows, true mean EAR 0.9925 - 0.0004 k (the
// shape of tinystories-656k around 8 bits); 12 calibration and 12 held-out sequences whose
// per-sequence EAR scatters by 0.001 (a shared per-sequence effect, as the same sequences are
// scored for every allocation, plus a smaller allocation-specific part). The loop keeps the
// cheapest allocation that passes on calibration; we count how often its held-out 95% lower
// bound then meets tau = 0.99.
double HeldoutPassRate(double transfer_z, bool plain_rule, bool spread_upper = false) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> n01(0, 1);
  const double tau = 0.99;
  const int nc = 12, nh = 12, trials = 300;
  int passed_calib = 0, passed_heldout = 0;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> ec(nc), eh(nh);
    for (double& e : ec) e = n01(rng);
    for (double& e : eh) e = n01(rng);
    int chosen = -1;
    for (int k = 0; k < 10; ++k) {
      const double mu = 0.9925 - 0.0004 * k;
      std::vector<double> v(nc);
      for (int i = 0; i < nc; ++i) v[i] = mu + 0.001 * ec[i] + 0.0003 * n01(rng);
      const FidelityReport r = *Summarize(Seqs(v), {1000, static_cast<uint64_t>(t)});
      const double bound = plain_rule ? r.ear.lo : TransferBound(r.ear, nc, nh, true, transfer_z, spread_upper);
      if (bound >= tau) chosen = k;
    }
    if (chosen < 0) continue;
    ++passed_calib;
    const double mu = 0.9925 - 0.0004 * chosen;
    std::vector<double> v(nh);
    for (int i = 0; i < nh; ++i) v[i] = mu + 0.001 * eh[i] + 0.0003 * n01(rng);
    const FidelityReport h = *Summarize(Seqs(v), {1000, 7u + static_cast<uint64_t>(t)});
    passed_heldout += h.ear.lo >= tau;
  }
  return passed_calib ? static_cast<double>(passed_heldout) / passed_calib : 0.0;
}

TEST(TransferBoundTest, ClosedLoopSelectionCertifiesReliablyOnHeldout) {
  const double plain = HeldoutPassRate(0, /*plain_rule=*/true);
  const double transfer = HeldoutPassRate(kDefaultTransferZ, false);
  const double spread = HeldoutPassRate(kDefaultTransferZ, false, /*spread_upper=*/true);
  // Measured: plain 0.657, transfer 0.970 (printed above).
  std::printf("held-out pass rate: plain %.3f, transfer %.3f, with the spread bound %.3f\n", plain, transfer, spread);
  EXPECT_LT(plain, 0.8) << "plain " << plain << " transfer " << transfer;
  EXPECT_GT(transfer, 0.9) << "plain " << plain << " transfer " << transfer;
  EXPECT_GE(spread, transfer);
}

// The small-text case (tinystories-valid-part1, bench/results/quant-s8-transfer-2026-12-02.md):
// 7 calibration windows from 3 documents (2, 2 and 3 windows) and 12 held-out windows from 4
// (2, 6, 2, 2). A window's damage 1 - EAR = D_k (1 + 0.07 a_doc + 0.05 b_doc,k + 0.02 e): a
// document effect shared by every allocation, one specific to allocation k (on one split the S8
// allocations had half the held-out spread on calibration, the fp16 ones not), and a small
// window effect; every trial is a new document split. Candidate k = 0..9 has D_k = 0.0075 +
// 0.0004 k (cheaper as k grows); the loop keeps the cheapest k whose bound passes tau = 0.99 and
// the held-out window bootstrap of that k decides. Returns the pass rate among trials that
// accepted something. measured_spread: the rule before the spread bound; else TransferBound's
// defaults (the rule the closed loop uses).
double ClusteredPassRate(bool measured_spread) {
  std::mt19937_64 rng(2026);
  std::normal_distribution<double> n01(0, 1);
  const double tau = 0.99;
  const std::vector<int> calib_docs = {0, 0, 1, 1, 2, 2, 2};
  const std::vector<int> held_docs = {3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 6, 6};
  const int trials = 300;
  int accepted = 0, passed = 0;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> shared(7);
    for (double& a : shared) a = n01(rng);
    auto damage = [&](double d, const std::vector<double>& specific, int doc) {
      return d * (1 + 0.07 * shared[doc] + 0.05 * specific[doc] + 0.02 * n01(rng));
    };
    int chosen = -1;
    std::vector<double> chosen_specific;
    for (int k = 0; k < 10; ++k) {
      const double d = 0.0075 + 0.0004 * k;
      std::vector<double> specific(7);
      for (double& b : specific) b = n01(rng);
      std::vector<double> v;
      for (int doc : calib_docs) v.push_back(1 - damage(d, specific, doc));
      const FidelityReport r = *Summarize(Seqs(v), {1000, static_cast<uint64_t>(t)});
      const double bound = measured_spread ? TransferBound(r.ear, 7, 12, true, kDefaultTransferZ, false)
                                           : TransferBound(r.ear, 7, 12, true);
      if (bound >= tau) {
        chosen = k;
        chosen_specific = specific;
      }
    }
    if (chosen < 0) continue;
    ++accepted;
    std::vector<double> v;
    for (int doc : held_docs) v.push_back(1 - damage(0.0075 + 0.0004 * chosen, chosen_specific, doc));
    passed += Summarize(Seqs(v), {1000, 7u + static_cast<uint64_t>(t)})->ear.lo >= tau;
  }
  return accepted ? static_cast<double>(passed) / accepted : 0.0;
}

TEST(TransferBoundTest, FewClusteredWindowsNeedTheSpreadUpperBound) {
  const double measured = ClusteredPassRate(/*measured_spread=*/true);
  const double bounded = ClusteredPassRate(/*measured_spread=*/false);
  std::printf("held-out pass rate, 7 windows from 3 documents: measured spread %.3f, spread bound %.3f\n", measured,
              bounded);
  // Measured: 0.803 with the measured spread (the rule before), 0.932 with the bound.
  EXPECT_LT(measured, 0.87) << "measured " << measured << " bounded " << bounded;
  EXPECT_GT(bounded, 0.89) << "measured " << measured << " bounded " << bounded;
  EXPECT_GT(bounded - measured, 0.05) << "measured " << measured << " bounded " << bounded;
}

}  // namespace
}  // namespace slq::quant
