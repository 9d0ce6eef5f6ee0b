#include "server/spec/job_spec.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace slq::spec {
namespace {

constexpr char kTargetHelp[] =
    "allowed: \"ear>=X\" (0 < X <= 1), \"kl<=X\" (X > 0, nats/token), \"bits<=X\" (2 < X <= 16), "
    "\"tl\" or \"tl<=X\" (task-lossless with KL budget X > 0; \"tl\" = \"tl<=0.01\")";
constexpr char kFormatsHelp[] =
    "allowed: bitwidths 2..8 joined by '-' (\"4-8\", \"4-5-6-7-8\") or ',' (\"4,6,8\"), or a range \"lo..hi\" "
    "(\"2..8\"), no duplicates";

absl::Status BadTarget(std::string_view text, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("target '", std::string(text), "': ", why, "; ", kTargetHelp));
}

absl::Status BadFormats(std::string_view text, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("formats '", std::string(text), "': ", why, "; ", kFormatsHelp));
}

// The range rule of each kind; "" when v is in range.
std::string RangeError(Target::Kind kind, double v) {
  if (!std::isfinite(v)) return "the value is not a finite number";
  switch (kind) {
    case Target::Kind::kEar:
      return v > 0 && v <= 1 ? "" : absl::StrCat("ear must be in (0, 1], got ", v);
    case Target::Kind::kKl:
      return v > 0 ? "" : absl::StrCat("kl must be > 0, got ", v);
    case Target::Kind::kBits:
      return v > kMinBits && v <= kMaxAvgBits ? "" : absl::StrCat("bits must be in (2, 16], got ", v);
    case Target::Kind::kTaskLossless:
      return v > 0 ? "" : absl::StrCat("the tl KL budget must be > 0, got ", v);
  }
  return "unknown target kind";
}

std::string Number(double v) { return absl::StrFormat("%.10g", v); }

}  // namespace

std::string Target::ToString() const {
  switch (kind) {
    case Kind::kEar:
      return absl::StrCat("ear>=", Number(value));
    case Kind::kKl:
      return absl::StrCat("kl<=", Number(value));
    case Kind::kBits:
      return absl::StrCat("bits<=", Number(value));
    case Kind::kTaskLossless:
      return value == kTlKlBudget ? "tl" : absl::StrCat("tl<=", Number(value));
  }
  return "?";
}

absl::StatusOr<Target> ParseTarget(std::string_view text) {
  std::string t = absl::AsciiStrToLower(absl::string_view(text.data(), text.size()));
  t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return absl::ascii_isspace(c); }), t.end());
  if (t.empty()) return BadTarget(text, "empty");
  Target out;
  if (t == "tl") {
    out.kind = Target::Kind::kTaskLossless;
    out.value = kTlKlBudget;
    return out;
  }
  struct Form {
    const char* prefix;
    Target::Kind kind;
  };
  for (const Form& f : {Form{"ear>=", Target::Kind::kEar}, Form{"kl<=", Target::Kind::kKl},
                        Form{"bits<=", Target::Kind::kBits}, Form{"tl<=", Target::Kind::kTaskLossless}}) {
    if (t.rfind(f.prefix, 0) != 0) continue;
    double v = 0;
    if (!absl::SimpleAtod(t.substr(std::string_view(f.prefix).size()), &v) || !std::isfinite(v)) {
      return BadTarget(text, "the value is not a number");
    }
    out.kind = f.kind;
    out.value = v;
    if (std::string why = RangeError(f.kind, v); !why.empty()) return BadTarget(text, why);
    return out;
  }
  return BadTarget(text, "unknown form");
}

absl::Status CheckTarget(const Target& t) {
  if (std::string why = RangeError(t.kind, t.value); !why.empty()) return BadTarget(t.ToString(), why);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int>> ParseFormats(std::string_view raw) {
  const std::string text(absl::StripAsciiWhitespace(absl::string_view(raw.data(), raw.size())));
  if (text.empty()) return BadFormats(text, "empty");
  const auto width = [](absl::string_view p, int* v) {
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(p), v) && *v >= kMinBits && *v <= kMaxBits;
  };
  std::vector<int> out;
  if (text.find("..") != std::string::npos) {
    std::vector<absl::string_view> parts = absl::StrSplit(text, "..");
    int lo = 0, hi = 0;
    if (parts.size() != 2) return BadFormats(text, "a range is \"lo..hi\"");
    for (auto [p, v] : {std::pair{parts[0], &lo}, std::pair{parts[1], &hi}}) {
      if (!width(p, v)) return BadFormats(text, absl::StrCat("'", p, "' is not a bitwidth in 2..8"));
    }
    if (lo > hi) return BadFormats(text, absl::StrCat("the range is empty (", lo, " > ", hi, ")"));
    for (int b = lo; b <= hi; ++b) out.push_back(b);
    return out;
  }
  const bool dash = text.find('-') != std::string::npos, comma = text.find(',') != std::string::npos;
  if (dash && comma) return BadFormats(text, "mixes '-' and ','");
  for (absl::string_view p : absl::StrSplit(text, comma ? ',' : '-')) {
    int v = 0;
    if (!width(p, &v)) return BadFormats(text, absl::StrCat("'", p, "' is not a bitwidth in 2..8"));
    if (std::find(out.begin(), out.end(), v) != out.end()) {
      return BadFormats(text, absl::StrCat(v, " is listed twice"));
    }
    out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status CheckGroupSize(int64_t g) {
  if (g == -1 || g == 32 || g == 64 || g == 128) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("group_size must be 32, 64, 128 or -1 (per row), got ", g));
}

double MinAvgBits(const std::vector<int>& formats, int64_t group_size, bool symmetric, bool grids, bool s8) {
  if (formats.empty()) return 0;
  const int width = *std::min_element(formats.begin(), formats.end());
  // fp16 scale (+ fp16 zero), or (s8) an 8-bit scale code (+ a width-bit zero-point), (+ the
  // 2-bit grid index, kernels/grids.h kGridIdBits) per group
  const double scale = s8 ? 8.0 : 16.0, zero = symmetric ? 0.0 : (s8 ? width : 16.0);
  const double per_group = scale + zero + (grids ? 2.0 : 0.0);
  const double overhead = group_size > 0 ? per_group / static_cast<double>(group_size) : 0;
  return width + overhead;
}

absl::StatusOr<std::vector<std::string>> ParseQuantizers(std::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    const std::string name(absl::StripAsciiWhitespace(item));
    if (name != "rtn" && name != "mse" && name != "gptq") {
      return absl::InvalidArgumentError(absl::StrCat("quantizers: '", name, "' is not one of rtn, mse, gptq"));
    }
    if (std::find(out.begin(), out.end(), name) != out.end()) {
      return absl::InvalidArgumentError(absl::StrCat("quantizers: '", name, "' is listed twice"));
    }
    out.push_back(name);
  }
  return out;
}

std::string DefaultQuantizers(bool hadamard) { return hadamard ? "rtn" : "rtn,gptq"; }

namespace {

// A two-valued variant flag: "" or `off` -> {false}, `on` -> {true}, "both" -> {false, true}
// (case and surrounding blanks ignored); `field` names it in the error.
absl::StatusOr<std::vector<bool>> ParseFlagSet(std::string_view text, std::string_view field, std::string_view off,
                                               std::string_view on) {
  const std::string raw(text);
  const std::string f = absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw));
  if (f.empty() || f == off) return std::vector<bool>{false};
  if (f == on) return std::vector<bool>{true};
  if (f == "both") return std::vector<bool>{false, true};
  return absl::InvalidArgumentError(absl::StrFormat("%s '%s' is not one of %s, %s, both", std::string(field), raw,
                                                    std::string(off), std::string(on)));
}

// grids: "" | off | on | both -> the offered flags; "on" needs an asymmetric candidate.
absl::Status ParseGrids(std::string_view text, VariantSpace* v) {
  absl::StatusOr<std::vector<bool>> set = ParseFlagSet(text, "grids", "off", "on");
  if (!set.ok()) return set.status();
  v->grids = *std::move(set);
  if (v->grids == std::vector<bool>{true} &&
      std::find(v->symmetric.begin(), v->symmetric.end(), false) == v->symmetric.end()) {
    return absl::InvalidArgumentError(
        "grids 'on' needs asymmetric scales (grids are asymmetric only): drop symmetric, or set symmetry to both");
  }
  return absl::OkStatus();
}

// scales: "" | fp16 | s8 | both -> the offered s8 flags.
absl::Status ParseScales(std::string_view text, VariantSpace* v) {
  absl::StatusOr<std::vector<bool>> set = ParseFlagSet(text, "scales", "fp16", "s8");
  if (!set.ok()) return set.status();
  v->s8 = *std::move(set);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VariantSpace> ParseVariants(int64_t group_size, bool symmetric, std::string_view symmetry,
                                           std::string_view group_sizes, std::string_view grids,
                                           std::string_view scales) {
  if (absl::Status g = CheckGroupSize(group_size); !g.ok()) return g;
  VariantSpace v;
  const std::string sym_text(symmetry), groups_text(group_sizes);  // absl::string_view is not std's here
  const std::string sym = absl::AsciiStrToLower(absl::StripAsciiWhitespace(sym_text));
  if (sym == "asym" && symmetric) {
    return absl::InvalidArgumentError("symmetry 'asym' contradicts symmetric (drop one of them)");
  }
  if (!sym.empty() && sym != "asym" && sym != "sym" && sym != "both") {
    return absl::InvalidArgumentError(absl::StrCat("symmetry '", sym_text, "' is not one of asym, sym, both"));
  }
  v.base_symmetric = symmetric || sym == "sym";
  v.symmetric = {v.base_symmetric};
  if (sym == "both") v.symmetric.push_back(!v.base_symmetric);
  if (absl::Status g = ParseGrids(grids, &v); !g.ok()) return g;
  if (absl::Status f = ParseScales(scales, &v); !f.ok()) return f;
  v.base_group = group_size;
  v.groups = {group_size};
  if (absl::StripAsciiWhitespace(groups_text).empty()) return v;
  std::vector<int64_t> listed;
  for (absl::string_view item : absl::StrSplit(groups_text, ',')) {
    int64_t g = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(item), &g) || !CheckGroupSize(g).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_sizes: '", item, "' is not a group size (32, 64, 128 or -1 for per row)"));
    }
    if (std::find(listed.begin(), listed.end(), g) != listed.end()) {
      return absl::InvalidArgumentError(absl::StrCat("group_sizes: ", g, " is listed twice"));
    }
    listed.push_back(g);
  }
  if (std::find(listed.begin(), listed.end(), group_size) == listed.end()) {
    return absl::InvalidArgumentError(absl::StrCat("group_sizes '", groups_text, "' does not contain group_size ",
                                                   group_size, " (the run's base group): add it, or set group_size to ",
                                                   "one of the listed sizes"));
  }
  for (int64_t g : listed) {
    if (g != group_size) v.groups.push_back(g);
  }
  return v;
}

double MinAvgBits(const std::vector<int>& formats, const VariantSpace& v) {
  double best = -1;
  for (int64_t g : v.groups) {
    for (bool s : v.symmetric) {
      const bool grids = !s && std::find(v.grids.begin(), v.grids.end(), false) == v.grids.end();
      for (bool s8 : v.s8) {
        const double b = MinAvgBits(formats, g, s, grids, s8);  // "on": asymmetric candidates carry grids
        if (best < 0 || b < best) best = b;
      }
    }
  }
  return best < 0 ? MinAvgBits(formats, v.base_group, v.base_symmetric) : best;
}

absl::Status ValidateSpec(const SpecFields& s) {
  auto target = ParseTarget(s.target);
  if (!target.ok()) return target.status();
  auto quantizers = ParseQuantizers(s.quantizers);
  if (!quantizers.ok()) return quantizers.status();
  if (s.hadamard && (quantizers->size() != 1 || quantizers->front() != "rtn")) {
    return absl::InvalidArgumentError(absl::StrCat("quantizers: '", s.quantizers,
                                                   "' cannot be combined with hadamard (rotated layers are RTN only)"));
  }
  auto formats = ParseFormats(s.formats);
  if (!formats.ok()) return formats.status();
  if (absl::Status g = CheckGroupSize(s.group_size); !g.ok()) return g;
  auto variants = ParseVariants(s.group_size, s.symmetric, s.symmetry, s.group_sizes, s.grids, s.scales);
  if (!variants.ok()) return variants.status();
  if (s.hadamard && std::find(variants->s8.begin(), variants->s8.end(), true) != variants->s8.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("scales '", s.scales,
                     "' cannot be combined with hadamard (rotated layers keep fp16 scales): set scales to fp16"));
  }
  if (s.cloze_items < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cloze_items must be >= 0 (0 = no TL check), got ", s.cloze_items));
  }
  if (!(s.temperature > 0 && s.temperature <= kMaxTemperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be in (0, 10], got ", s.temperature));
  }
  return CheckBitsReachable(*target, *formats, *variants);
}

absl::Status CheckBitsReachable(const Target& target, const std::vector<int>& formats, int64_t group_size,
                                bool symmetric) {
  VariantSpace v;
  v.base_group = group_size;
  v.base_symmetric = symmetric;
  v.groups = {group_size};
  v.symmetric = {symmetric};
  return CheckBitsReachable(target, formats, v);
}

absl::Status CheckBitsReachable(const Target& target, const std::vector<int>& formats, const VariantSpace& v) {
  if (target.kind != Target::Kind::kBits || formats.empty()) return absl::OkStatus();
  const double floor = MinAvgBits(formats, v);
  // The cheapest offered variant, for the message.
  const bool grids_only = std::find(v.grids.begin(), v.grids.end(), false) == v.grids.end();
  int64_t group_size = v.base_group;
  bool symmetric = v.base_symmetric;
  bool s8 = v.s8.front();
  for (int64_t g : v.groups) {
    for (bool s : v.symmetric) {
      for (bool c : v.s8) {
        if (MinAvgBits(formats, g, s, grids_only && !s, c) <
            MinAvgBits(formats, group_size, symmetric, grids_only && !symmetric, s8)) {
          group_size = g;
          symmetric = s;
          s8 = c;
        }
      }
    }
  }
  const bool grids = grids_only && !symmetric;
  const std::string scale = s8 ? "s8 scale code" : "fp16 scale";
  const std::string zero = s8 ? "zero-point" : "fp16 zero";
  if (target.value < floor) {
    return absl::InvalidArgumentError(
        absl::StrFormat("target '%s' is unreachable with formats {%s} and group size %d: the fewest bits/param is %.4g "
                        "(the smallest width %d plus the %s overhead); raise the budget or allow a smaller width",
                        target.ToString(), absl::StrJoin(formats, ","), group_size, floor, formats.front(),
                        symmetric ? scale
                        : grids   ? absl::StrCat(scale, ", ", zero, " and grid index")
                                  : absl::StrCat(scale, " and ", zero)));
  }
  return absl::OkStatus();
}

}  // namespace slq::spec
