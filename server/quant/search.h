// Bitwidth allocation as a multiple-choice knapsack (METHOD.md section 5), plus the parsers of
// the user-facing format ("4-8", "2..8", "4,6,8") and target ("ear>=0.99", "kl<=0.01",
// "bits<=4.5", "tl") strings.
//
//   std::vector<LayerOptions> layers = ...;   // per layer: cost and damage of each choice
//   SLQ_ASSIGN_OR_RETURN(Allocation a, MinCostForDamage(layers, /*max_damage=*/0.01,
//                                                        SearchMethod::kDynamicProgramming));
//   if (!a.feasible) LOG(a.note);             // best found (least damage) is still returned
//
// Dynamic programming is exact over a discretised COST axis: costs are divided by a unit
// (1 when they are integers with a small total: then exactly optimal; else total / bins with
// bins = max(20000, 200 x layers)) and rounded up, so a DP answer never exceeds a budget; in
// the discretised case the Lagrangian hull point is also computed and the better one kept. Lagrangian relaxation
// minimises cost + lambda * damage per layer and bisects lambda; it returns points on the lower convex hull (may be
// suboptimal in between, never infeasible when a feasible hull point exists). Thread safety: pure.
#ifndef SLQ_SERVER_QUANT_SEARCH_H_
#define SLQ_SERVER_QUANT_SEARCH_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/spec/job_spec.h"

namespace slq::quant {

// One layer's choices (same length vectors; choice i = the layer choice code bits[i], choice.h).
struct LayerOptions {
  std::string name;
  std::vector<int> bits;
  std::vector<double> cost;    // e.g. params * bits_per_param(bits) (>= 0)
  std::vector<double> damage;  // predicted metric damage (>= 0)
  bool operator==(const LayerOptions&) const = default;
};

// The options of the run's base variant (width and rounding only: codes without the symmetry
// or group fields, choice.h), for the same layers in the same order; `layers` unchanged when
// some layer offers none.
std::vector<LayerOptions> BaseVariantOptions(const std::vector<LayerOptions>& layers);

struct Allocation {
  std::vector<int> choice;  // index into each layer's options
  std::vector<int> bits;    // bits of the chosen option per layer
  double cost = 0, damage = 0;
  bool feasible = false;
  std::string note;  // why infeasible, with the best found
};
void to_json(nlohmann::json& j, const Allocation& a);

enum class SearchMethod { kDynamicProgramming, kLagrangian };

// Target mode: minimise sum cost s.t. sum damage <= max_damage. If even the least-damage
// allocation exceeds max_damage, returns it with feasible = false and a note.
[[nodiscard]] absl::StatusOr<Allocation> MinCostForDamage(const std::vector<LayerOptions>& layers, double max_damage,
                                                          SearchMethod method);
// Budget mode: minimise sum damage s.t. sum cost <= budget. If even the cheapest allocation
// exceeds the budget, returns it with feasible = false and a note.
[[nodiscard]] absl::StatusOr<Allocation> MinDamageForCost(const std::vector<LayerOptions>& layers, double budget,
                                                          SearchMethod method);

// Targets and formats are the job-spec contract's (server/spec/job_spec.h): one parser, one set of
// ranges and error texts for the engine, the service and slqctl.
// "4-8" -> {4,8}; "4-5-6-7-8"; "2..8" -> {2,...,8}; "4,6,8". Sorted, each in 2..8, no duplicates.
[[nodiscard]] inline absl::StatusOr<std::vector<int>> ParseFormats(std::string_view s) { return spec::ParseFormats(s); }

using Target = spec::Target;
inline constexpr double kTlKlBudget = spec::kTlKlBudget;  // nats/token, the TL proxy (METHOD.md 1)
// "ear>=0.99", "kl<=0.01", "bits<=4.5", "tl" / "tl<=0.02" (spaces ignored, case-insensitive).
[[nodiscard]] inline absl::StatusOr<Target> ParseTarget(std::string_view s) { return spec::ParseTarget(s); }

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_SEARCH_H_
