// A layer's choice in the search: {width, rounding, symmetric, group size, grids, s8}, and its exact
// int code (what allocations, profile caches and certificates store).
//
//   const ChoiceBase base = BaseOf(mq.config());          // the run's symmetric + group_size
//   SLQ_ASSIGN_OR_RETURN(int code, EncodeChoice({4, Rounding::kGptq, true, 64}, base));
//   SLQ_ASSIGN_OR_RETURN(Choice c, DecodeChoice(code, base));
//   double bpp = c.BitsPerParam(rows, cols);              // exact, as the artifact stores it
//
// Code = bits + 16 * rounding + 64 * (symmetric != base.symmetric) + 128 * group index, where
// the group index is 0 for the run's base group and 1..4 for 32, 64, 128, per row otherwise,
// + 1024 (kChoiceGrid) when each group picks one of kernels::kGridCount grids (Grid Games,
// kernels/grids.h; asymmetric only), + 2048 (kChoiceS8) when the scales are compact
// (ScaleFormat::kS8, kernels/scale_codes.h). The largest code without grids is 8 + 32 + 64 + 512 < 1024.
// So a choice of the base variant keeps the codes written before variants existed: the
// bitwidth for RTN, bits + 16 * rounding for mse / gptq (allocations, profile cache keys and
// certificates read unchanged). A code's meaning needs the base; the profile cache keys and the
// certificate both record it (group_size, symmetric). 0 and 16 mean "kept dense".
// Thread safety: pure functions, plain values.
#ifndef SLQ_SERVER_QUANT_CHOICE_H_
#define SLQ_SERVER_QUANT_CHOICE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/quant/quantizer.h"

namespace slq::quant {

// The run's base variant: the QuantConfig's symmetric flag and group size.
struct ChoiceBase {
  bool symmetric = false;
  int64_t group_size = 128;
};
inline ChoiceBase BaseOf(const QuantConfig& c) { return {c.symmetric, c.group_size}; }

struct Choice {
  int bits = 0;  // 2..8; 0 = kept dense
  Rounding rounding = Rounding::kRtn;
  bool symmetric = false;
  int64_t group_size = 128;  // 32/64/128/-1 (per row), or the base's
  bool grids = false;        // per-group grid index (kernels/grids.h); asymmetric only
  bool s8 = false;           // compact scales (ScaleFormat::kS8, kernels/scale_codes.h)
  bool dense() const { return bits == 0; }
  // `base` with this choice's width and variant.
  QuantConfig Config(QuantConfig base) const;
  // Exact bits/param of the stored layout of a [rows, cols] matrix (quantizer.h BitsPerParam);
  // 16 when dense.
  double BitsPerParam(int64_t rows, int64_t cols) const;
  // "gptq4 sym g64", "rtn8 asym g128", "rtn5 asym row", "gptq4 asym g128 grid", "gptq4 asym g64 s8",
  // "dense".
  std::string Name() const;
  bool operator==(const Choice&) const = default;
};

inline constexpr int kChoiceStride = 16;                       // per rounding
inline constexpr int kChoiceSymFlip = 64;                      // symmetric differs from the base
inline constexpr int kChoiceGroupStep = 128;                   // per group index
inline constexpr int64_t kChoiceGroups[] = {32, 64, 128, -1};  // group index 1..4
inline constexpr int kChoiceGrid = 1024;                       // grids on (Choice::grids)
inline constexpr int kChoiceS8 = 2048;                         // compact scales (Choice::s8)

// The code of `c` under `base`. InvalidArgument for bits outside 2..8 (0 = dense: code 0), a
// group size that is neither the base's nor one of kChoiceGroups, or grids with symmetric scales.
[[nodiscard]] absl::StatusOr<int> EncodeChoice(const Choice& c, const ChoiceBase& base);
// InvalidArgument for a code no choice has.
[[nodiscard]] absl::StatusOr<Choice> DecodeChoice(int code, const ChoiceBase& base);

// Width and rounding of the base variant: bits + 16 * rounding (the codes before variants).
inline int EncodeChoice(int bits, Rounding r) { return bits + kChoiceStride * static_cast<int>(r); }
// 0 and 16 mean "kept dense" (ModelQuantizer::SetBits); test this before decoding.
inline bool IsDenseChoice(int code) { return code == 0 || code == 16; }
// The fields that need no base.
inline int ChoiceBits(int code) { return code % kChoiceStride; }
inline bool ChoiceGrids(int code) { return code % kChoiceS8 >= kChoiceGrid; }
inline bool ChoiceS8(int code) { return code >= kChoiceS8; }
inline Rounding ChoiceRounding(int code) { return static_cast<Rounding>(code % kChoiceSymFlip / kChoiceStride); }
// The same choice with another rounding (variant kept).
inline int WithRounding(int code, Rounding r) {
  return code - kChoiceStride * static_cast<int>(ChoiceRounding(code)) + kChoiceStride * static_cast<int>(r);
}
// A quantized choice whose rounding needs the input Gram (mse, gptq).
inline bool UsesActivations(int code) { return !IsDenseChoice(code) && ChoiceRounding(code) != Rounding::kRtn; }
// InvalidArgument unless DecodeChoice would succeed (the base only matters for its group).
[[nodiscard]] absl::Status CheckChoice(int code);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_CHOICE_H_
