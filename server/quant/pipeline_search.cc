// QuantizationSession::Search: allocation by knapsack + closed-loop bisection on the damage
// limit D, measured on the calibration split only (METHOD.md section 5).
//
// The knapsack always budgets the profile's KL (mean KL adds across layers to first order: it
// is second order in each layer's perturbation and the cross terms average out; 1 - EAR = TV
// does not add, it is first order and sub-additive). The closed loop bisects the KL budget D
// and accepts an allocation when its *predicted held-out* bound from the calibration split
// (transfer_bound.h: the calibration mean minus a margin for calibration and held-out
// sampling error) meets the target, so that the one held-out verification passes reliably.
#include <chrono>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/quant/pipeline.h"
#include "server/quant/transfer_bound.h"

namespace slq::quant {
namespace {

using Bits = std::map<std::string, int>;

struct Eval {
  Bits bits;
  double avg_bits = 0, metric = 0, damage = 0, mean = 0, kl = 0;
  bool met = false;
};

}  // namespace

bool QuantizationSession::Met(const FidelityReport& r, double avg_bits) const {
  switch (target_.kind) {
    case Target::Kind::kEar:
      return r.ear.lo >= target_.value;
    case Target::Kind::kKl:
      return r.kl.hi <= target_.value;
    // TL is the cloze test itself; the KL budget is only the search's proxy.
    case Target::Kind::kTaskLossless:
      return r.task.items > 0 ? r.task.tl_holds : r.kl.hi <= target_.value;
    case Target::Kind::kBits:
      return avg_bits <= target_.value + 1e-9;
  }
  return false;
}

double QuantizationSession::Conservative(const FidelityReport& r) const {
  return target_.kind == Target::Kind::kEar ? r.ear.lo : r.kl.hi;
}

double QuantizationSession::CalibrationBound(const FidelityReport& r) const {
  if (opts_.transfer_z <= 0) return Conservative(r);
  const bool ear = target_.kind == Target::Kind::kEar;
  return TransferBound(ear ? r.ear : r.kl, r.sequences, static_cast<int64_t>(data_.heldout.size()),
                       /*lower=*/ear, opts_.transfer_z);
}

std::vector<LayerOptions> QuantizationSession::Options(const LayerProfiles& p) const {
  const DamageMetric metric = DamageMetric::kKl;  // additive across layers (see the top)
  std::vector<LayerOptions> out;
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const LayerProfile& l = p.layers[i];
    LayerOptions o;
    o.name = l.name;
    for (int b : p.bits) {  // layer choice codes; each charged its exact bits (width, symmetry, group, grids, scales)
      const absl::StatusOr<Choice> c = DecodeChoice(b, choice_base());
      if (!c.ok()) continue;  // a foreign code in a profile: not offered
      o.bits.push_back(b);
      o.cost.push_back(static_cast<double>(l.rows * l.cols) * c->BitsPerParam(l.rows, l.cols));
      o.damage.push_back(p.Damage(i, b, metric));
    }
    out.push_back(std::move(o));
  }
  return out;
}

absl::StatusOr<SearchOutcome> QuantizationSession::Search(const LayerProfiles& profile) {
  if (progress_) progress_("search", 0);
  const auto t0 = std::chrono::steady_clock::now();
  const SearchMethod method = opts_.solver == "dp" ? SearchMethod::kDynamicProgramming : SearchMethod::kLagrangian;
  std::vector<Eval> evals;
  auto evaluate = [&](const Bits& bits, double damage) -> absl::StatusOr<const Eval*> {
    for (const Eval& e : evals) {
      if (e.bits == bits) return &e;
    }
    SLQ_ASSIGN_OR_RETURN(FidelityReport r, EvaluateOn(bits, calib_set_, opts_.calibration_resamples));
    const bool ear = target_.kind == Target::Kind::kEar;
    Eval e{bits, AverageBits(bits), CalibrationBound(r), damage, ear ? r.ear.mean : r.kl.mean, r.kl.mean, false};
    switch (target_.kind) {
      case Target::Kind::kEar:
        e.met = e.metric >= target_.value;
        break;
      case Target::Kind::kKl:
        e.met = e.metric <= target_.value;
        break;
      // TL: the KL proxy (with the transfer margin). The cloze runs once, at held-out verification
      // (its windows are held-out text; r.task is empty here and the term below is a no-op).
      case Target::Kind::kTaskLossless:
        e.met = e.metric <= target_.value && (r.task.items == 0 || r.task.tl_holds);
        break;
      case Target::Kind::kBits:
        e.met = e.avg_bits <= target_.value + 1e-9;
        break;
    }
    evals.push_back(e);
    if (progress_) progress_("search", std::min(1.0, evals.size() / static_cast<double>(opts_.closed_loop_max_evals)));
    return &evals.back();
  };
  SearchOutcome out;
  std::string note;
  if (opts_.uniform_bits > 0 || profile.layers.empty()) {
    Bits bits;
    const Rounding r = roundings_.size() == 1 ? roundings_[0] : Rounding::kRtn;
    // Grids "on" with asymmetric base scales: every layer on per-group grids.
    const bool grids = variants_.grids == std::vector<bool>{true} && !variants_.base_symmetric;
    // Scales "s8": every layer in s8 scales.
    const bool s8 = variants_.s8 == std::vector<bool>{true};
    for (const SlotInfo& s : mq_->slots()) {
      bits[s.name] = EncodeChoice(opts_.uniform_bits > 0 ? opts_.uniform_bits : formats_.back(), r) +
                     (grids ? kChoiceGrid : 0) + (s8 ? kChoiceS8 : 0);
    }
    SLQ_RETURN_IF_ERROR(evaluate(bits, 0).status());
    note = "uniform allocation";
  } else {
    const std::vector<LayerOptions> layers = Options(profile);
    auto to_bits = [&](const Allocation& a) {
      Bits b;
      for (size_t i = 0; i < layers.size(); ++i) b[layers[i].name] = a.bits[i];
      return b;
    };
    if (target_.kind == Target::Kind::kBits) {
      double params = 0;
      for (const auto& l : profile.layers) params += static_cast<double>(l.rows * l.cols);
      SLQ_ASSIGN_OR_RETURN(Allocation a, MinDamageForCost(layers, target_.value * params, method));
      note = a.note;
      SLQ_RETURN_IF_ERROR(evaluate(to_bits(a), a.damage).status());
    } else {
      // The closed loop over `opts`: bisects the KL budget D until the cheapest met allocation is
      // bracketed; every evaluation lands in `evals` (the best is picked from all of them).
      auto closed_loop = [&](const std::vector<LayerOptions>& opts) -> absl::Status {
        double dmin = 0, dmax = 0;
        for (const auto& l : opts) {
          dmin += *std::min_element(l.damage.begin(), l.damage.end());
          dmax += l.damage[std::min_element(l.cost.begin(), l.cost.end()) - l.cost.begin()];
        }
        dmin = std::max(dmin, 1e-15);
        dmax = std::max(dmax, dmin);
        // First guess of the KL budget for an EAR target: measured on these models, KL ~= 5 x
        // (1 - EAR)^2 (small perturbations: TV first order, KL second order); the bracketing
        // below corrects it.
        const double d0 =
            target_.kind == Target::Kind::kEar ? 5.0 * (1.0 - target_.value) * (1.0 - target_.value) : target_.value;
        double D = std::clamp(d0, dmin, dmax);
        double lo = -1, hi = -1;  // largest met D, smallest unmet D
        for (int it = 0, fresh = 0; it < 60 && fresh < opts_.closed_loop_max_evals; ++it) {
          SLQ_ASSIGN_OR_RETURN(Allocation a, MinCostForDamage(opts, D, method));
          const size_t before = evals.size();
          // to_bits: `opts` has the layers of `layers`, in their order (BaseVariantOptions keeps it).
          SLQ_ASSIGN_OR_RETURN(const Eval* e, evaluate(to_bits(a), a.damage));
          fresh += evals.size() > before;
          out.steps.push_back({D, e->avg_bits, e->metric, e->mean, e->kl, e->met});
          if (e->met)
            lo = std::max(lo, D);
          else
            hi = hi < 0 ? D : std::min(hi, D);
          if (lo < 0) {
            if (D <= dmin * (1 + 1e-9)) break;  // even the least damage fails: unreachable
            D = std::max(D / 4, dmin);
          } else if (hi < 0) {
            if (D >= dmax * (1 - 1e-9)) break;  // even the cheapest allocation meets it
            D = std::min(D * 4, dmax);
          } else {
            if (hi / lo < 1.02) break;
            D = std::sqrt(lo * hi);
          }
        }
        return absl::OkStatus();
      };
      SLQ_RETURN_IF_ERROR(closed_loop(layers));
      // With variants offered, the loop over the base variant's choices runs too and the cheapest
      // met evaluation of both wins: the per-layer damages are measured with noise, and picking
      // among more near-equal candidates favours lucky measurements (stories260k, ear>=0.99: the
      // variant loop alone met nothing on calibration and fell back to 8.505 bits; the base
      // variant's loop certifies 8.451).
      const std::vector<LayerOptions> base = BaseVariantOptions(layers);
      if (base != layers) SLQ_RETURN_IF_ERROR(closed_loop(base));
    }
  }
  // Best: the cheapest met evaluation (ties: better metric); none met: the best metric.
  const bool ear = target_.kind == Target::Kind::kEar;
  auto better_metric = [&](const Eval& a, const Eval& b) { return ear ? a.metric > b.metric : a.metric < b.metric; };
  const Eval* best = nullptr;
  for (const Eval& e : evals) {
    if (e.met && (!best || e.avg_bits < best->avg_bits || (e.avg_bits == best->avg_bits && better_metric(e, *best))))
      best = &e;
  }
  out.calibration_met = best != nullptr;
  if (!best) {
    for (const Eval& e : evals) {
      if (!best || better_metric(e, *best)) best = &e;
    }
    note = absl::StrFormat(
        "unreachable on the calibration split: best found %s %.6f (predicted "
        "held-out %s bound %.6f) at %.3f bits",
        ear ? "EAR" : "KL", best->mean, ear ? "lower" : "upper", best->metric, best->avg_bits);
  }
  out.bits = best->bits;
  for (const auto& [name, code] : out.bits) {
    SLQ_ASSIGN_OR_RETURN(const Choice c, DecodeChoice(code, choice_base()));
    out.variants[name] = c.Name();
  }
  out.avg_bits = best->avg_bits;
  out.max_damage = best->damage;
  out.calib_metric = best->metric;
  out.calib_mean = best->mean;
  out.damage_metric = "kl";
  out.note = note;
  mq_->RestoreAll();
  out.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stage_seconds_["search"] = out.wall_seconds;
  if (progress_) progress_("search", 1);
  return out;
}

}  // namespace slq::quant
