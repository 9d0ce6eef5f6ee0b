#include "client/target_flag.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace slq::client {

absl::StatusOr<slq::v1::FidelityTarget> ParseTargetFlag(const std::string& raw) {
  std::string text = absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw));
  const std::string help =
      "expected one of ear>=X (0<X<=1), kl<=X (X>0), bits<=X (2<=X<=16), tl<=X (X>0)";
  auto split = [&](const std::string& key, const std::string& op, double* value) -> bool {
    std::string prefix = key + op;
    if (text.rfind(prefix, 0) != 0) return false;
    return absl::SimpleAtod(text.substr(prefix.size()), value) && std::isfinite(*value);
  };
  slq::v1::FidelityTarget t;
  double v = 0;
  if (split("ear", ">=", &v)) {
    if (!(v > 0 && v <= 1)) return absl::InvalidArgumentError(absl::StrCat("--target ear must be in (0, 1], got ", v));
    t.set_min_ear(v);
  } else if (split("kl", "<=", &v)) {
    if (!(v > 0)) return absl::InvalidArgumentError(absl::StrCat("--target kl must be > 0, got ", v));
    t.set_max_kl(v);
  } else if (split("bits", "<=", &v)) {
    if (!(v >= 2 && v <= 16)) return absl::InvalidArgumentError(absl::StrCat("--target bits must be in [2, 16], got ", v));
    t.set_max_avg_bits(v);
  } else if (split("tl", "<=", &v)) {
    if (!(v > 0)) return absl::InvalidArgumentError(absl::StrCat("--target tl must be > 0, got ", v));
    t.set_task_lossless_kl(v);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("cannot parse --target '", raw, "': ", help));
  }
  return t;
}

}  // namespace slq::client
