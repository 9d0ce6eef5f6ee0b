// The job-spec contract: ONE parser and ONE set of ranges and error texts for what a user
// writes as a quantization target, the allowed bitwidths and the quantizer options. Used by
// the service's SubmitJob (server/api), slqctl's flags (client/) and the engine
// (server/quant: the worker and the offline `slq` CLI), so a value is accepted or rejected,
// with the same message, wherever it is given.
//
//   SLQ_ASSIGN_OR_RETURN(spec::Target t, spec::ParseTarget("ear>=0.99"));
//   SLQ_ASSIGN_OR_RETURN(std::vector<int> f, spec::ParseFormats("4-5-6-7-8"));
//   SLQ_RETURN_IF_ERROR(spec::ValidateSpec({.target = "bits<=4.5", .formats = "4-8"}));
//
// Target syntax (case-insensitive, spaces ignored):
//   ear>=X   0 < X <= 1     the 95% lower bound of the held-out EAR is >= X
//   kl<=X    X > 0          the 95% upper bound of the held-out KL (nats/token) is <= X
//   bits<=X  2 < X <= 16    budget: the best fidelity at <= X average bits/param (quantized layers, scale
//                           and zero overhead included); X must be reachable with the smallest allowed width
//   tl       = tl<=0.01     task-lossless (METHOD.md 1): the cloze task check on held-out text, with the KL
//   tl<=X    X > 0          budget X (nats/token) as the search's proxy
// Formats: bitwidths 2..8 joined by '-' ("4-8" = {4, 8}, "4-5-6-7-8") or ',' ("4,6,8"), or a
// range "lo..hi" ("2..8"); no duplicates.
// Dependency-free (absl only). Thread safety: pure functions.
#ifndef SLQ_SERVER_SPEC_JOB_SPEC_H_
#define SLQ_SERVER_SPEC_JOB_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace slq::spec {

inline constexpr int kMinBits = 2;
inline constexpr int kMaxBits = 8;
inline constexpr double kTlKlBudget = 0.01;  // nats/token: the default TL proxy (METHOD.md 1)
inline constexpr double kMaxAvgBits = 16;
inline constexpr double kMaxTemperature = 10;

struct Target {
  enum class Kind { kEar, kKl, kBits, kTaskLossless };
  Kind kind = Kind::kEar;
  double value = 0.99;  // tau for EAR (>=), kappa for KL (<=), beta for bits (<=), the KL budget for TL
  // The canonical spelling: "ear>=0.99", "kl<=0.01", "bits<=4.5", "tl" (the default budget) or "tl<=0.02".
  std::string ToString() const;
  bool operator==(const Target&) const = default;
};

// Parses a target string (syntax above). InvalidArgument "target '...': why; allowed: ...".
[[nodiscard]] absl::StatusOr<Target> ParseTarget(std::string_view text);
// Range check of an already-typed target (e.g. from the proto): the same ranges and text as ParseTarget.
[[nodiscard]] absl::Status CheckTarget(const Target& t);

// Parses a format list (syntax above); returns the widths sorted. InvalidArgument
// "formats '...': why; allowed: ...".
[[nodiscard]] absl::StatusOr<std::vector<int>> ParseFormats(std::string_view text);

// 32, 64, 128 or -1 (per row).
[[nodiscard]] absl::Status CheckGroupSize(int64_t group_size);
// The fewest bits/param any allocation can have: the smallest width plus the scale (+ zero)
// overhead of one fp16 per group (+ the 2-bit grid index with grids; a lower bound for per-row
// groups: the width itself). With s8 (compact scales, quant/quantizer.h ScaleFormat::kS8) a group
// costs an 8-bit scale code (+ a `bits`-bit zero-point when asymmetric); the per-matrix base and
// ragged last groups are not counted (a lower bound: the pipeline checks the exact floor once it
// knows the layers' shapes, quant/pipeline.h).
double MinAvgBits(const std::vector<int>& formats, int64_t group_size, bool symmetric, bool grids = false,
                  bool s8 = false);
// InvalidArgument when `target` is bits<=X with X below MinAvgBits (OK for other kinds).
[[nodiscard]] absl::Status CheckBitsReachable(const Target& target, const std::vector<int>& formats, int64_t group_size,
                                              bool symmetric);

// Roundings the search may choose per layer (quant/rounding.h): a comma list of "rtn", "mse",
// "gptq", no duplicates; returns the names in order. InvalidArgument naming a bad or repeated one.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> ParseQuantizers(std::string_view text);

// The roundings a job or `slq quantize` searches when none are given: "rtn,gptq" (GPTQ fitted on
// Gram windows the closed loop never measures passed held-out verification at ear>=0.99 and cut
// held-out KL at 5 bits on all three real models: bench/results/quant-gptq-2026-12-02.md);
// "rtn" with hadamard (rotated layers are RTN only).
std::string DefaultQuantizers(bool hadamard);

// The per-layer variants the search may choose besides width and rounding: symmetric or
// asymmetric scales and the group size. The run's base variant (its QuantConfig: `symmetric`,
// `group_size`) is listed first; layer choices are coded relative to it (quant/choice.h), so a
// run that offers only the base variant is the width-only search unchanged.
struct VariantSpace {
  bool base_symmetric = false;
  int64_t base_group = 128;
  std::vector<bool> symmetric;  // offered; base first
  std::vector<int64_t> groups;  // offered; base first
  // Grid Games (quant/choice.h Choice::grids): offered for asymmetric candidates; {false} =
  // uniform only (the default), {true} = grids replace the uniform grid, {false, true} = both.
  // Symmetric candidates are always uniform.
  std::vector<bool> grids = {false};
  // Compact scales (quant/choice.h Choice::s8, ScaleFormat::kS8) for every candidate: {false} =
  // fp16 scales only (the default), {true} = s8 replaces fp16, {false, true} = both.
  std::vector<bool> s8 = {false};
};
// symmetry: "" (= only the `symmetric` flag's), "asym", "sym" or "both" ("sym" = the
// `symmetric` flag; "asym" contradicts it). group_sizes: "" (= {group_size}) or a comma list
// of group sizes (32, 64, 128, -1 = per row), no duplicates, that contains `group_size` (the
// base). grids: "" or "off" (= uniform only), "on" or "both"; "on" needs some asymmetric
// candidate. scales: "" or "fp16" (= fp16 only), "s8" or "both". InvalidArgument naming the
// field and what to change.
[[nodiscard]] absl::StatusOr<VariantSpace> ParseVariants(int64_t group_size, bool symmetric, std::string_view symmetry,
                                                         std::string_view group_sizes, std::string_view grids = "",
                                                         std::string_view scales = "");
// The fewest bits/param over every offered variant (MinAvgBits of each).
double MinAvgBits(const std::vector<int>& formats, const VariantSpace& v);
// The same over every variant of `v` (its cheapest one decides).
[[nodiscard]] absl::Status CheckBitsReachable(const Target& target, const std::vector<int>& formats,
                                              const VariantSpace& v);

// A whole spec as a user writes it (strings as on the command line).
struct SpecFields {
  std::string target = "ear>=0.99";
  std::string formats = "4-8";
  int64_t group_size = 128;
  bool symmetric = false;
  double temperature = 1.0;  // of the fidelity metrics; (0, 10]
  std::string quantizers = "rtn";
  bool hadamard = false;       // rotated layers take RTN only
  std::string symmetry;        // "" | asym | sym | both (ParseVariants)
  std::string group_sizes;     // "" | e.g. "64,128" (ParseVariants)
  std::string grids;           // "" | off | on | both (ParseVariants)
  std::string scales;          // "" | fp16 | s8 | both (ParseVariants); s8 is not combined with hadamard
  int64_t cloze_items = 2000;  // TL cloze items wanted; >= 0 (0 = no TL check)
};
// Every field, and that a bits<=X target is reachable with the formats and group size.
[[nodiscard]] absl::Status ValidateSpec(const SpecFields& spec);

}  // namespace slq::spec

#endif  // SLQ_SERVER_SPEC_JOB_SPEC_H_
