#include "server/quant/search.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/common/status_macros.h"
#include "server/quant/choice.h"

namespace slq::quant {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kCostBins = 20000;          // resolution of the DP cost axis (non-integer costs)
constexpr int64_t kMaxExactBins = 200000;     // integer costs up to this total are exact
constexpr int64_t kMaxPickBytes = 200000000;  // cap on the DP back-pointer table

absl::Status Validate(const std::vector<LayerOptions>& layers) {
  if (layers.empty()) return absl::InvalidArgumentError("no layers to allocate bitwidths to");
  for (const auto& l : layers) {
    if (l.cost.empty() || l.cost.size() != l.damage.size() || l.cost.size() != l.bits.size()) {
      return absl::InvalidArgumentError(absl::StrCat("layer '", l.name,
                                                     "': needs >= 1 option and equal-length bits/cost/damage (got ",
                                                     l.bits.size(), "/", l.cost.size(), "/", l.damage.size(), ")"));
    }
    if (l.cost.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer '", l.name, "': ", l.cost.size(), " options; at most 255 allowed"));
    }
    for (size_t i = 0; i < l.cost.size(); ++i) {
      if (!std::isfinite(l.cost[i]) || l.cost[i] < 0 || !std::isfinite(l.damage[i]) || l.damage[i] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer '", l.name, "' option ", i, ": cost and damage must be finite and >= 0"));
      }
    }
  }
  return absl::OkStatus();
}

Allocation Finish(const std::vector<LayerOptions>& layers, std::vector<int> choice) {
  Allocation a;
  a.choice = std::move(choice);
  for (size_t l = 0; l < layers.size(); ++l) {
    const int c = a.choice[l];
    a.bits.push_back(layers[l].bits[c]);
    a.cost += layers[l].cost[c];
    a.damage += layers[l].damage[c];
  }
  return a;
}

// Per layer: the option minimising key (primary, secondary).
std::vector<int> PickExtreme(const std::vector<LayerOptions>& layers, bool least_damage) {
  std::vector<int> ch;
  for (const auto& l : layers) {
    int best = 0;
    for (size_t i = 1; i < l.cost.size(); ++i) {
      const auto key = [&](size_t k) {
        return least_damage ? std::pair(l.damage[k], l.cost[k]) : std::pair(l.cost[k], l.damage[k]);
      };
      if (key(i) < key(best)) best = static_cast<int>(i);
    }
    ch.push_back(best);
  }
  return ch;
}

// dp table: min damage per exact integer cost, with back-pointers.
struct DpTable {
  double unit = 1;
  bool exact = true;                        // integer costs, unit 1: the DP is exactly optimal
  std::vector<std::vector<int64_t>> icost;  // per layer, per option
  std::vector<double> best;                 // [C + 1]
  std::vector<std::vector<uint8_t>> pick;   // [L][C + 1]
};

DpTable BuildDp(const std::vector<LayerOptions>& layers) {
  DpTable t;
  double total = 0;
  bool integral = true;
  for (const auto& l : layers) {
    total += *std::max_element(l.cost.begin(), l.cost.end());
    for (double c : l.cost) integral = integral && c == std::floor(c);
  }
  // Rounding each layer's cost up wastes < 1 unit per layer, so the bins grow with the layer
  // count (waste <= 0.5% of the total) within a memory cap for the back-pointers.
  const int64_t L = static_cast<int64_t>(layers.size());
  const int64_t bins = std::clamp<int64_t>(200 * L, kCostBins, std::max<int64_t>(kCostBins, kMaxPickBytes / L));
  t.exact = integral && total <= kMaxExactBins;
  t.unit = t.exact ? 1.0 : std::max(total / static_cast<double>(bins), 1e-300);
  int64_t cap = 0;
  for (const auto& l : layers) {
    std::vector<int64_t> ic;
    for (double c : l.cost) ic.push_back(static_cast<int64_t>(std::ceil(c / t.unit - 1e-9)));
    cap += *std::max_element(ic.begin(), ic.end());
    t.icost.push_back(std::move(ic));
  }
  t.best.assign(static_cast<size_t>(cap + 1), kInf);
  t.best[0] = 0;
  int64_t reach = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    std::vector<double> next(t.best.size(), kInf);
    std::vector<uint8_t> pick(t.best.size(), 0);
    const auto& ic = t.icost[l];
    const int64_t lmax = *std::max_element(ic.begin(), ic.end());
    for (int64_t c = 0; c <= reach; ++c) {
      if (t.best[c] == kInf) continue;
      for (size_t i = 0; i < ic.size(); ++i) {
        const double d = t.best[c] + layers[l].damage[i];
        if (d < next[c + ic[i]]) {
          next[c + ic[i]] = d;
          pick[c + ic[i]] = static_cast<uint8_t>(i);
        }
      }
    }
    reach += lmax;
    t.best = std::move(next);
    t.pick.push_back(std::move(pick));
  }
  return t;
}

std::vector<int> Backtrack(const DpTable& t, int64_t c) {
  std::vector<int> ch(t.pick.size());
  for (size_t l = t.pick.size(); l-- > 0;) {
    ch[l] = t.pick[l][c];
    c -= t.icost[l][ch[l]];
  }
  return ch;
}

// Per layer argmin of cost + lambda * damage (ties: less damage).
std::vector<int> PickLagrangian(const std::vector<LayerOptions>& layers, double lambda) {
  std::vector<int> ch;
  for (const auto& l : layers) {
    int best = 0;
    for (size_t i = 1; i < l.cost.size(); ++i) {
      const double a = l.cost[i] + lambda * l.damage[i], b = l.cost[best] + lambda * l.damage[best];
      if (a < b || (a == b && l.damage[i] < l.damage[best])) best = static_cast<int>(i);
    }
    ch.push_back(best);
  }
  return ch;
}

// Smallest-cost (target) or least-damage (budget) Lagrangian point satisfying `ok`.
// ok must be monotone: false for small lambda, true for large (target) or reverse (budget).
template <typename Ok>
Allocation BisectLambda(const std::vector<LayerOptions>& layers, Ok ok, bool want_large_ok) {
  double lo = 0, hi = 1;
  // Find a lambda on the "other" side: cost grows with lambda, damage shrinks.
  for (int i = 0; i < 2000 && ok(Finish(layers, PickLagrangian(layers, hi))) != want_large_ok; ++i) {
    hi *= 2;
    if (!std::isfinite(hi)) break;
  }
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (ok(Finish(layers, PickLagrangian(layers, mid))) == want_large_ok)
      hi = mid;
    else
      lo = mid;
  }
  return Finish(layers, PickLagrangian(layers, want_large_ok ? hi : lo));
}

}  // namespace

absl::StatusOr<Allocation> MinCostForDamage(const std::vector<LayerOptions>& layers, double max_damage,
                                            SearchMethod method) {
  SLQ_RETURN_IF_ERROR(Validate(layers));
  const double tol = 1e-12 * std::max(1.0, std::fabs(max_damage));
  Allocation best_damage = Finish(layers, PickExtreme(layers, /*least_damage=*/true));
  if (best_damage.damage > max_damage + tol) {
    best_damage.note =
        absl::StrCat("infeasible: the least achievable damage ", best_damage.damage, " exceeds the limit ", max_damage,
                     "; returning that least-damage allocation (cost ", best_damage.cost, ")");
    return best_damage;
  }
  Allocation a;
  if (method == SearchMethod::kDynamicProgramming) {
    DpTable t = BuildDp(layers);
    for (int64_t c = 0; c < static_cast<int64_t>(t.best.size()); ++c) {
      if (t.best[c] <= max_damage + tol) {
        a = Finish(layers, Backtrack(t, c));
        break;
      }
    }
    if (!t.exact) {  // discretised: the hull point may be cheaper; keep the better
      Allocation g = BisectLambda(
          layers, [&](const Allocation& x) { return x.damage <= max_damage + tol; }, true);
      if (g.damage <= max_damage + tol && (a.choice.empty() || g.cost < a.cost)) a = g;
    }
  } else {
    a = BisectLambda(
        layers, [&](const Allocation& x) { return x.damage <= max_damage + tol; }, true);
  }
  if (a.choice.empty() || a.damage > max_damage + tol) a = best_damage;
  a.feasible = true;
  return a;
}

absl::StatusOr<Allocation> MinDamageForCost(const std::vector<LayerOptions>& layers, double budget,
                                            SearchMethod method) {
  SLQ_RETURN_IF_ERROR(Validate(layers));
  const double tol = 1e-12 * std::max(1.0, std::fabs(budget));
  Allocation cheapest = Finish(layers, PickExtreme(layers, /*least_damage=*/false));
  if (cheapest.cost > budget + tol) {
    cheapest.note = absl::StrCat("infeasible: the cheapest allocation costs ", cheapest.cost, " > budget ", budget,
                                 "; returning it (damage ", cheapest.damage, ")");
    return cheapest;
  }
  Allocation a;
  if (method == SearchMethod::kDynamicProgramming) {
    DpTable t = BuildDp(layers);
    const int64_t cmax = std::min<int64_t>(static_cast<int64_t>(t.best.size()) - 1,
                                           static_cast<int64_t>(std::floor(budget / t.unit + 1e-9)));
    int64_t arg = -1;
    for (int64_t c = 0; c <= cmax; ++c) {
      if (t.best[c] < kInf && (arg < 0 || t.best[c] < t.best[arg])) arg = c;
    }
    if (arg >= 0) a = Finish(layers, Backtrack(t, arg));
    if (!t.exact) {  // discretised: the hull point may be better; keep the better
      Allocation g = BisectLambda(
          layers, [&](const Allocation& x) { return x.cost <= budget + tol; }, false);
      if (g.cost <= budget + tol && (a.choice.empty() || g.damage < a.damage)) a = g;
    }
  } else {
    a = BisectLambda(
        layers, [&](const Allocation& x) { return x.cost <= budget + tol; }, false);
  }
  if (a.choice.empty() || a.cost > budget + tol) a = cheapest;
  a.feasible = true;
  return a;
}

std::vector<LayerOptions> BaseVariantOptions(const std::vector<LayerOptions>& layers) {
  std::vector<LayerOptions> out;
  for (const LayerOptions& l : layers) {
    LayerOptions o;
    o.name = l.name;
    for (size_t i = 0; i < l.bits.size(); ++i) {
      if (l.bits[i] >= kChoiceSymFlip) continue;  // symmetry, group, grids or scales differ from the base
      o.bits.push_back(l.bits[i]);
      o.cost.push_back(l.cost[i]);
      o.damage.push_back(l.damage[i]);
    }
    if (o.bits.empty()) return layers;
    out.push_back(std::move(o));
  }
  return out;
}

void to_json(nlohmann::json& j, const Allocation& a) {
  j = nlohmann::json{
      {"bits", a.bits}, {"cost", a.cost}, {"damage", a.damage}, {"feasible", a.feasible}, {"note", a.note}};
}

}  // namespace slq::quant
