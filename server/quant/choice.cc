#include "server/quant/choice.h"

#include "absl/strings/str_cat.h"

namespace slq::quant {
namespace {

constexpr int kGroupCount = static_cast<int>(sizeof(kChoiceGroups) / sizeof(kChoiceGroups[0]));

absl::Status BadCode(int code, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("layer choice ", code, ": ", why));
}

}  // namespace

QuantConfig Choice::Config(QuantConfig base) const {
  base.bits = bits;
  base.symmetric = symmetric;
  base.group_size = group_size;
  base.grids = grids;
  base.scales = s8 ? ScaleFormat::kS8 : ScaleFormat::kFp16;
  return base;
}

double Choice::BitsPerParam(int64_t rows, int64_t cols) const {
  return dense() ? 16.0
                 : quant::BitsPerParam(bits, group_size, cols, symmetric, grids,
                                       s8 ? ScaleFormat::kS8 : ScaleFormat::kFp16, rows);
}

std::string Choice::Name() const {
  if (dense()) return "dense";
  return absl::StrCat(RoundingName(rounding), bits, symmetric ? " sym " : " asym ",
                      group_size < 0 ? std::string("row") : absl::StrCat("g", group_size), grids ? " grid" : "",
                      s8 ? " s8" : "");
}

absl::StatusOr<int> EncodeChoice(const Choice& c, const ChoiceBase& base) {
  if (c.dense()) return 0;
  if (c.bits < 2 || c.bits > 8)
    return absl::InvalidArgumentError(absl::StrCat("choice bits ", c.bits, "; allowed 2..8"));
  if (c.grids && c.symmetric) {
    return absl::InvalidArgumentError(
        absl::StrCat("choice ", c.Name(), ": grids need asymmetric scales (drop grids or symmetric)"));
  }
  int group = 0;
  if (c.group_size != base.group_size) {
    for (int i = 0; i < kGroupCount; ++i) {
      if (kChoiceGroups[i] == c.group_size) group = i + 1;
    }
    if (group == 0) {
      return absl::InvalidArgumentError(absl::StrCat("choice group size ", c.group_size, "; allowed: the run's ",
                                                     base.group_size, ", 32, 64, 128, -1"));
    }
  }
  return c.bits + kChoiceStride * static_cast<int>(c.rounding) + (c.symmetric != base.symmetric ? kChoiceSymFlip : 0) +
         kChoiceGroupStep * group + (c.grids ? kChoiceGrid : 0) + (c.s8 ? kChoiceS8 : 0);
}

absl::StatusOr<Choice> DecodeChoice(int code, const ChoiceBase& base) {
  if (IsDenseChoice(code)) return Choice{0, Rounding::kRtn, base.symmetric, base.group_size};
  if (code < 0) return BadCode(code, "negative");
  const int full = code;
  if (code >= 2 * kChoiceS8) return BadCode(code, "unknown flags");
  const bool s8 = ChoiceS8(code);
  if (s8) code -= kChoiceS8;
  const bool grids = ChoiceGrids(code);
  if (grids) code -= kChoiceGrid;
  if (IsDenseChoice(code)) return BadCode(full, "a dense layer has no grids or s8 scales");
  const int bits = ChoiceBits(code);
  const int rounding = code % kChoiceSymFlip / kChoiceStride;
  const bool flip = code % kChoiceGroupStep >= kChoiceSymFlip;
  const int group = code / kChoiceGroupStep;
  if (bits < 2 || bits > 8) return BadCode(full, absl::StrCat("bits ", bits, " outside 2..8"));
  if (rounding > static_cast<int>(Rounding::kGptq)) return BadCode(full, absl::StrCat("unknown rounding ", rounding));
  if (group > kGroupCount) return BadCode(full, absl::StrCat("unknown group index ", group));
  const Choice c{bits,
                 static_cast<Rounding>(rounding),
                 flip ? !base.symmetric : base.symmetric,
                 group == 0 ? base.group_size : kChoiceGroups[group - 1],
                 grids,
                 s8};
  if (c.grids && c.symmetric) return BadCode(full, "grids with symmetric scales");
  return c;
}

absl::Status CheckChoice(int code) { return DecodeChoice(code, ChoiceBase{}).status(); }

}  // namespace slq::quant
