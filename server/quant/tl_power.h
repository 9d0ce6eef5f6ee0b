// Power of the task-lossless (TL) test (METHOD.md section 1; docs/METRICS.md "Task-lossless").
//
//   double d = MinDetectableDifference(0.31, 2000);   // 0.0290: the test sees a 2.9-point change
//   int64_t n = ItemsToDetect(0.31, kTlDetectableDifference);  // 672 items for a 5-point change
//
// The test. With n cloze items, base accuracy p and quantized accuracy q on the same items,
// METHOD.md's rule rejects "task-lossless" when |q - p| > z x SE, SE = sqrt(p (1 - p) / n),
// z = z_{1 - alpha/2} = 1.95996 (alpha = 0.05, two-sided): a z-test that takes the base
// model's binomial standard error as the sampling error of the difference (the base accuracy
// is the benchmark's reference value; the quantized accuracy is measured with that error).
// Power. Under a true difference delta, (q - p) ~ N(delta, SE^2) in that model, so
//   power(delta) = Phi(delta / SE - z) + Phi(-delta / SE - z).
// The smallest difference detected with power 1 - beta = 0.80 (z_{0.80} = 0.84162) is
//   MDE = (z_{0.975} + z_{0.80}) x SE = 2.80159 x sqrt(p (1 - p) / n)
// (the second tail adds < 1e-5 to the power there), and the items needed for a difference d:
//   n_d = ceil((z_{0.975} + z_{0.80})^2 p (1 - p) / d^2) = ceil(7.84888 p (1 - p) / d^2).
// The rule is the one the verdict uses, so the reported power is the power of the verdict's test.
// Limits: the test is not paired. On the same items the difference's real variance is
// (psi - delta^2) / n with psi the share of discordant items (one model right, the other
// wrong); when psi > p (1 - p) + delta^2 the real power is lower than stated (the certificate
// reports the discordant counts, so a reader can check). A base accuracy of 0 or 1 would give
// SE 0 and claim infinite power: p is clamped to [0.5 / n, 1 - 0.5 / n] for the power (half an
// item), never for the verdict's SE.
// Thread safety: pure functions.
#ifndef SLQ_SERVER_QUANT_TL_POWER_H_
#define SLQ_SERVER_QUANT_TL_POWER_H_

#include <cstdint>

namespace slq::quant {

inline constexpr double kTlZAlpha = 1.959963984540054;  // z_{0.975}: alpha = 0.05, two-sided
inline constexpr double kTlZPower = 0.841621233572914;  // z_{0.80}: power 80%
// The difference a TL verdict must be able to detect (5 accuracy points) with 80% power.
inline constexpr double kTlDetectableDifference = 0.05;

// Power of the TL test against a true accuracy difference `diff` with `items` items at base
// accuracy `acc_base`. 0 when items <= 0.
double TlPower(double diff, double acc_base, int64_t items);

// The smallest |difference| detected with 80% power; +infinity when items <= 0.
double MinDetectableDifference(double acc_base, int64_t items);

// Whether a TL verdict can be conclusive: the test detects kTlDetectableDifference with 80%
// power AND a difference of that size is possible both ways (kTlDetectableDifference <=
// acc_base <= 1 - kTlDetectableDifference). A base model that completes almost no item cannot
// lose 5 points, and the normal approximation would claim power from a handful of items.
bool TlConclusive(double acc_base, int64_t items);

// Items needed to detect `diff` with 80% power at base accuracy acc_base (p clamped to
// [0.5 / items_seen, 1 - 0.5 / items_seen] as above when items_seen > 0). diff > 0.
int64_t ItemsToDetect(double acc_base, double diff, int64_t items_seen = 0);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_TL_POWER_H_
