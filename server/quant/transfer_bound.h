// The closed loop's acceptance rule: does a calibration-split measurement predict that the
// held-out certificate will meet the target? (METHOD.md sections 2 and 5.)
//
//   double b = TransferBound(calib.ear, calib.sequences, heldout_sequences, /*lower=*/true, 1.96);
//   bool accept = b >= tau;
//
// Why a margin: the certificate is met when the held-out bootstrap bound passes, i.e.
// mean_h - 1.96 se_h >= tau. The held-out mean differs from the calibration mean by sampling
// error of both splits, sd sqrt(se_c^2 + se_h^2) (disjoint documents from the same text), and
// the search picks the cheapest allocation that passes, which favours lucky calibration draws.
// So the calibration mean must clear tau by
//     z_t * sqrt(se_c^2 + se_h^2) + 1.96 * se_h
// where se_c is the calibration standard error, se_h = se_c * sqrt(n_c / n_h) the predicted
// held-out standard error (it scales as 1/sqrt(sequences); only the NUMBER of held-out sequences
// is used, never their text), and z_t the one-sided normal quantile of the wanted transfer
// reliability (1.96: 97.5%).
//
// se_c is itself estimated from only n_c sequences (5-8 on the 10 KB story text): the bootstrap
// standard error (interval width / (2 x 1.96)) is scaled up to its one-sided 95% upper confidence
// bound, se_c * sqrt((n_c - 1) / chi2_{0.05}(n_c - 1)) (SpreadUpperFactor: 1.92 at 7 sequences,
// 1.44 at 16, 1.12 at 128). Without it the loop accepted allocations whose calibration spread
// happened to come out small (tinystories-656k, 7 windows from 3 documents: S8 allocations had half
// the held-out spread on calibration) and 6 of 18 runs (9 document splits x fp16/S8) missed
// held-out verification (bench/results/quant-s8-transfer-2026-12-02.md).
// For upper bounds (KL <= kappa) the signs flip. Thread safety: pure.
#ifndef SLQ_SERVER_QUANT_TRANSFER_BOUND_H_
#define SLQ_SERVER_QUANT_TRANSFER_BOUND_H_

#include <cstdint>

#include "server/quant/metrics.h"

namespace slq::quant {

inline constexpr double kDefaultTransferZ = 1.96;

// sqrt((n - 1) / chi2_{0.05}(n - 1)): the one-sided 95% upper confidence bound of a standard
// deviation estimated from n >= 2 sequences, relative to the estimate (chi-square quantile: exact
// table up to 10 degrees of freedom, Wilson-Hilferty above). n < 2: the factor at 2.
double SpreadUpperFactor(int64_t n);

// Predicted conservative held-out bound from a calibration interval: a lower bound (EAR) when
// `lower`, else an upper bound (KL). calib_units, heldout_units: sequences on each side (>= 1).
// spread_upper: false = the calibration standard error as measured (the rule before 2026-12-02;
// only for comparisons).
double TransferBound(const Interval& calib, int64_t calib_units, int64_t heldout_units, bool lower,
                     double transfer_z = kDefaultTransferZ, bool spread_upper = true);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_TRANSFER_BOUND_H_
