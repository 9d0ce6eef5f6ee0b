#include "server/quant/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace slq::quant {
namespace {

// p[v] = softmax(logits / T) in fp64; returns log of the normaliser (for log-probs).
double Softmax(const float* logits, int64_t vocab, double temperature, std::vector<double>& p) {
  double mx = -INFINITY;
  for (int64_t v = 0; v < vocab; ++v) mx = std::max(mx, static_cast<double>(logits[v]) / temperature);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) {
    p[v] = std::exp(static_cast<double>(logits[v]) / temperature - mx);
    sum += p[v];
  }
  for (int64_t v = 0; v < vocab; ++v) p[v] /= sum;
  return mx + std::log(sum);
}

int64_t Argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

struct Totals {
  double ear = 0, kl = 0, flip = 0, nllb = 0, nllq = 0;
  int64_t n = 0, n_nll = 0;
  void Add(const SequenceMetrics& s) {
    ear += s.SumEar();
    kl += s.SumKl();
    for (uint8_t f : s.flip) flip += f;
    for (double x : s.nll_base) nllb += x;
    for (double x : s.nll_quant) nllq += x;
    n += s.positions();
    n_nll += static_cast<int64_t>(s.nll_base.size());
  }
  double PplRatio() const { return n_nll ? std::exp((nllq - nllb) / n_nll) : 1.0; }
};

double Percentile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  const double f = pos - static_cast<double>(i);
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

}  // namespace

double SequenceMetrics::SumEar() const { return std::accumulate(ear.begin(), ear.end(), 0.0); }
double SequenceMetrics::SumKl() const { return std::accumulate(kl.begin(), kl.end(), 0.0); }

absl::StatusOr<SequenceMetrics> CompareLogits(const float* base, const float* quant, int64_t positions, int64_t vocab,
                                              const int32_t* next, double temperature) {
  if (positions < 0 || vocab <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("logits shape [", positions, ", ", vocab, "]: need positions >= 0 and vocab > 0"));
  }
  if (!(temperature > 0.0) || !std::isfinite(temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature = ", temperature, "; must be > 0"));
  }
  SequenceMetrics s;
  std::vector<double> p(static_cast<size_t>(vocab)), q(static_cast<size_t>(vocab));
  for (int64_t t = 0; t < positions; ++t) {
    const float* lb = base + t * vocab;
    const float* lq = quant + t * vocab;
    const double lzp = Softmax(lb, vocab, temperature, p);
    const double lzq = Softmax(lq, vocab, temperature, q);
    double tv2 = 0.0, kl = 0.0;
    for (int64_t v = 0; v < vocab; ++v) {
      tv2 += std::fabs(p[v] - q[v]);
      // log p - log q from logits (exact 0 for identical inputs).
      const double lp = lb[v] / temperature - lzp, lqv = lq[v] / temperature - lzq;
      if (p[v] > 0.0) kl += p[v] * (lp - lqv);
    }
    s.ear.push_back(1.0 - 0.5 * tv2);
    s.kl.push_back(std::max(0.0, kl));
    const int64_t ab = Argmax(lb, vocab), aq = Argmax(lq, vocab);
    s.flip.push_back(ab != aq);
    s.argmax_quant.push_back(static_cast<int32_t>(aq));
    if (next != nullptr) {
      if (next[t] < 0 || next[t] >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("target token ", next[t], " at position ", t, " outside vocab [0, ", vocab, ")"));
      }
      s.nll_base.push_back(lzp - lb[next[t]] / temperature);
      s.nll_quant.push_back(lzq - lq[next[t]] / temperature);
    }
  }
  return s;
}

absl::StatusOr<FidelityReport> Summarize(const std::vector<SequenceMetrics>& seqs, const BootstrapOptions& opts) {
  if (opts.resamples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("resamples = ", opts.resamples, "; must be >= 1"));
  }
  Totals all;
  for (const auto& s : seqs) all.Add(s);
  if (seqs.empty() || all.n == 0) {
    return absl::InvalidArgumentError("no positions to evaluate: need at least one non-empty sequence");
  }
  FidelityReport r;
  r.sequences = static_cast<int64_t>(seqs.size());
  r.positions = all.n;
  r.resamples = opts.resamples;
  r.seed = opts.seed;
  r.ppl_base = all.n_nll ? std::exp(all.nllb / all.n_nll) : 0.0;
  r.ppl_quant = all.n_nll ? std::exp(all.nllq / all.n_nll) : 0.0;
  std::vector<double> ear, kl, flip, ppl;
  std::mt19937_64 rng(opts.seed);
  std::uniform_int_distribution<size_t> pick(0, seqs.size() - 1);
  for (int b = 0; b < opts.resamples; ++b) {
    Totals t;
    for (size_t i = 0; i < seqs.size(); ++i) t.Add(seqs[pick(rng)]);
    if (t.n == 0) continue;
    ear.push_back(t.ear / t.n);
    kl.push_back(t.kl / t.n);
    flip.push_back(t.flip / t.n);
    ppl.push_back(t.PplRatio());
  }
  auto fill = [](Interval& iv, double mean, std::vector<double>& v) {
    iv.mean = mean;
    iv.lo = v.empty() ? mean : Percentile(v, 0.025);
    iv.hi = v.empty() ? mean : Percentile(v, 0.975);
  };
  fill(r.ear, all.ear / all.n, ear);
  fill(r.kl, all.kl / all.n, kl);
  fill(r.flip, all.flip / all.n, flip);
  fill(r.ppl_ratio, all.PplRatio(), ppl);
  return r;
}

bool EarTargetMet(const FidelityReport& r, double tau) { return r.ear.lo >= tau; }
bool KlTargetMet(const FidelityReport& r, double kappa) { return r.kl.hi <= kappa; }

void to_json(nlohmann::json& j, const Interval& v) {
  j = nlohmann::json{{"mean", v.mean}, {"lo95", v.lo}, {"hi95", v.hi}};
}
void from_json(const nlohmann::json& j, Interval& v) {
  v.mean = j.at("mean").get<double>();
  v.lo = j.at("lo95").get<double>();
  v.hi = j.at("hi95").get<double>();
}
void to_json(nlohmann::json& j, const TaskResult& v) {
  j = nlohmann::json{{"task", v.task},
                     {"items", v.items},
                     {"spelling", v.spelling},
                     {"hits_base", v.hits_base},
                     {"hits_quant", v.hits_quant},
                     {"acc_base", v.acc_base},
                     {"acc_quant", v.acc_quant},
                     {"se_base", v.se_base},
                     {"tl_holds", v.tl_holds},
                     {"verdict", v.verdict},
                     {"rule",
                      "holds when |acc_quant - acc_base| <= 1.96 x binomial SE of acc_base and the test detects a "
                      "0.05 difference with 80% power (0.05 <= acc_base <= 0.95); else inconclusive or not held"},
                     {"min_detectable_diff", v.min_detectable_diff},
                     {"power_basis", "80% power, alpha 0.05 two-sided, z-test with the base accuracy's binomial SE"},
                     {"items_for_5pt", v.items_for_5pt},
                     {"items_in_text", v.items_in_text},
                     {"base_only", v.base_only},
                     {"quant_only", v.quant_only}};
}
void from_json(const nlohmann::json& j, TaskResult& v) {
  v.task = j.at("task").get<std::string>();
  v.spelling = j.value("spelling", "");
  v.items = j.at("items").get<int64_t>();
  v.hits_base = j.at("hits_base").get<int64_t>();
  v.hits_quant = j.at("hits_quant").get<int64_t>();
  v.acc_base = j.at("acc_base").get<double>();
  v.acc_quant = j.at("acc_quant").get<double>();
  v.se_base = j.at("se_base").get<double>();
  v.tl_holds = j.at("tl_holds").get<bool>();
  // Certificates before the power fields: absent keys stay 0 / empty.
  v.verdict = j.value("verdict", "");
  v.min_detectable_diff = j.value("min_detectable_diff", 0.0);
  v.items_for_5pt = j.value("items_for_5pt", int64_t{0});
  v.items_in_text = j.value("items_in_text", int64_t{0});
  v.base_only = j.value("base_only", int64_t{0});
  v.quant_only = j.value("quant_only", int64_t{0});
}
void to_json(nlohmann::json& j, const FidelityReport& v) {
  j = nlohmann::json{{"ear", v.ear},
                     {"kl", v.kl},
                     {"flip_rate", v.flip},
                     {"ppl_ratio", v.ppl_ratio},
                     {"ppl_base", v.ppl_base},
                     {"ppl_quant", v.ppl_quant},
                     {"sequences", v.sequences},
                     {"tokens", v.positions},
                     {"bootstrap_resamples", v.resamples},
                     {"bootstrap_seed", v.seed}};
  if (v.task.items > 0) j["task"] = v.task;
}
void from_json(const nlohmann::json& j, FidelityReport& v) {
  j.at("ear").get_to(v.ear);
  j.at("kl").get_to(v.kl);
  j.at("flip_rate").get_to(v.flip);
  j.at("ppl_ratio").get_to(v.ppl_ratio);
  v.ppl_base = j.at("ppl_base").get<double>();
  v.ppl_quant = j.at("ppl_quant").get<double>();
  v.sequences = j.at("sequences").get<int64_t>();
  v.positions = j.at("tokens").get<int64_t>();
  v.resamples = j.at("bootstrap_resamples").get<int>();
  v.seed = j.at("bootstrap_seed").get<uint64_t>();
  if (j.contains("task")) j.at("task").get_to(v.task);
}

}  // namespace slq::quant
