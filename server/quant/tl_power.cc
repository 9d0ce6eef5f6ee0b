// TlPower / MinDetectableDifference / ItemsToDetect: see tl_power.h for the derivation.
#include "server/quant/tl_power.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace slq::quant {
namespace {

double Phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// p (1 - p) with p clamped to half an item away from 0 and 1 (tl_power.h).
double Variance(double p, int64_t items) {
  if (items > 0) {
    const double half = 0.5 / static_cast<double>(items);
    p = std::clamp(p, half, 1.0 - half);
  }
  return p * (1.0 - p);
}

}  // namespace

double TlPower(double diff, double acc_base, int64_t items) {
  if (items <= 0) return 0;
  const double se = std::sqrt(Variance(acc_base, items) / static_cast<double>(items));
  const double x = std::fabs(diff) / se;
  return Phi(x - kTlZAlpha) + Phi(-x - kTlZAlpha);
}

double MinDetectableDifference(double acc_base, int64_t items) {
  if (items <= 0) return std::numeric_limits<double>::infinity();
  return (kTlZAlpha + kTlZPower) * std::sqrt(Variance(acc_base, items) / static_cast<double>(items));
}

bool TlConclusive(double acc_base, int64_t items) {
  return items > 0 && acc_base >= kTlDetectableDifference && acc_base <= 1.0 - kTlDetectableDifference &&
         MinDetectableDifference(acc_base, items) <= kTlDetectableDifference;
}

int64_t ItemsToDetect(double acc_base, double diff, int64_t items_seen) {
  const double z = kTlZAlpha + kTlZPower;
  return static_cast<int64_t>(std::ceil(z * z * Variance(acc_base, items_seen) / (diff * diff) - 1e-9));
}

}  // namespace slq::quant
