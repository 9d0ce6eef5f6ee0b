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
// where se_c is the calibration bootstrap standard error (interval width / (2 x 1.96)),
// se_h = se_c * sqrt(n_c / n_h) is the predicted held-out standard error (it scales as
// 1/sqrt(sequences); only the NUMBER of held-out sequences is used, never their text), and
// z_t the one-sided normal quantile of the wanted transfer reliability (1.96: 97.5%).
// For upper bounds (KL <= kappa) the signs flip. Thread safety: pure.
#ifndef SLQ_SERVER_QUANT_TRANSFER_BOUND_H_
#define SLQ_SERVER_QUANT_TRANSFER_BOUND_H_

#include <cstdint>

#include "server/quant/metrics.h"

namespace slq::quant {

inline constexpr double kDefaultTransferZ = 1.96;

// Predicted conservative held-out bound from a calibration interval: a lower bound (EAR) when
// `lower`, else an upper bound (KL). calib_units, heldout_units: sequences on each side (>= 1).
double TransferBound(const Interval& calib, int64_t calib_units, int64_t heldout_units, bool lower,
                     double transfer_z = kDefaultTransferZ);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_TRANSFER_BOUND_H_
