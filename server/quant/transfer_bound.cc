// TransferBound: see transfer_bound.h for the derivation.
#include "server/quant/transfer_bound.h"

#include <algorithm>
#include <cmath>

namespace slq::quant {

double SpreadUpperFactor(int64_t n) {
  // chi2_{0.05}(df) for df = 1..10 (exact to 6 digits); above, Wilson-Hilferty (< 0.2% off).
  static constexpr double kChi2Lower05[] = {0.003932, 0.102587, 0.351846, 0.710723, 1.145476,
                                            1.635383, 2.167350, 2.732637, 3.325113, 3.940299};
  constexpr double kZ05 = -1.6448536;  // lower 5% normal quantile
  const int64_t df = std::max<int64_t>(2, n) - 1;
  double chi2 = 0;
  if (df <= 10) {
    chi2 = kChi2Lower05[df - 1];
  } else {
    const double a = 2.0 / (9.0 * static_cast<double>(df));
    chi2 = static_cast<double>(df) * std::pow(1.0 - a + kZ05 * std::sqrt(a), 3);
  }
  return std::sqrt(static_cast<double>(df) / chi2);
}

double TransferBound(const Interval& calib, int64_t calib_units, int64_t heldout_units, bool lower, double transfer_z,
                     bool spread_upper) {
  constexpr double kZ95 = 1.959964;
  const int64_t nc = std::max<int64_t>(1, calib_units), nh = std::max<int64_t>(1, heldout_units);
  double se_c = std::max(0.0, calib.hi - calib.lo) / (2 * kZ95);
  if (spread_upper) se_c *= SpreadUpperFactor(nc);
  const double se_h = se_c * std::sqrt(static_cast<double>(nc) / static_cast<double>(nh));
  const double margin = transfer_z * std::sqrt(se_c * se_c + se_h * se_h) + kZ95 * se_h;
  return lower ? calib.mean - margin : calib.mean + margin;
}

}  // namespace slq::quant
