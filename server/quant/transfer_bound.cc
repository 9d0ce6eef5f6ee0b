// TransferBound: see transfer_bound.h for the derivation.
#include "server/quant/transfer_bound.h"

#include <algorithm>
#include <cmath>

namespace slq::quant {

double TransferBound(const Interval& calib, int64_t calib_units, int64_t heldout_units, bool lower, double transfer_z) {
  constexpr double kZ95 = 1.959964;
  const double se_c = std::max(0.0, calib.hi - calib.lo) / (2 * kZ95);
  const double ratio =
      static_cast<double>(std::max<int64_t>(1, calib_units)) / static_cast<double>(std::max<int64_t>(1, heldout_units));
  const double se_h = se_c * std::sqrt(ratio);
  const double margin = transfer_z * std::sqrt(se_c * se_c + se_h * se_h) + kZ95 * se_h;
  return lower ? calib.mean - margin : calib.mean + margin;
}

}  // namespace slq::quant
