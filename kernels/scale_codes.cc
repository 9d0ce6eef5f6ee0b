#include "kernels/scale_codes.h"

#include <cmath>

#include "server/common/half.h"

namespace slq::kernels {

uint16_t ScaleFromCode(float base, uint8_t u) { return FloatToHalf(base * ScaleCodeFactor(u)); }

uint16_t ZeroFromPoint(uint16_t scale16, int z) { return FloatToHalf(-HalfToFloat(scale16) * static_cast<float>(z)); }

uint8_t ScaleCodeAtLeast(float base, float s) {
  // The steps grow with u (fp16 rounding keeps them non-decreasing): binary search.
  int lo = 0, hi = 255;
  if (HalfToFloat(ScaleFromCode(base, 255)) < s) return 255;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (HalfToFloat(ScaleFromCode(base, static_cast<uint8_t>(mid))) >= s) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return static_cast<uint8_t>(lo);
}

float DefaultScaleBase(float s_max) {
  if (!(s_max > 0.0f) || !std::isfinite(s_max)) return std::ldexp(1.0f, -24);
  return s_max * 1.1f / ScaleCodeFactor(255);
}

void ExpandScaleCodes(const uint8_t* scale_codes, const uint8_t* zero_points, int64_t n, float base, uint16_t* scales16,
                      uint16_t* zeros16) {
  for (int64_t i = 0; i < n; ++i) {
    scales16[i] = ScaleFromCode(base, scale_codes[i]);
    if (zero_points != nullptr) zeros16[i] = ZeroFromPoint(scales16[i], zero_points[i]);
  }
}

}  // namespace slq::kernels
