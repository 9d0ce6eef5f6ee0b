// Fidelity metrics of a quantized model against its base model (METHOD.md section 2), from
// teacher-forced logits of both on the same tokens.
//
//   SequenceMetrics s = CompareLogits(base.data(), quant.data(), T, vocab, next.data(), 1.0);
//   FidelityReport r = Summarize({s, ...}, {.resamples = 1000, .seed = 7});
//   bool ok = r.ear.lo >= 0.99;
//
// Numerics: softmax in fp64 with max-subtraction. EAR_t = 1 - 0.5 * sum_v |p - q| (= sum min),
// so identical logits give exactly EAR 1, KL 0 (p == q bit for bit, every term is 0).
// Aggregation pools positions: EAR = sum over positions / number of positions. The 95%
// interval is a percentile bootstrap over SEQUENCES (positions inside one are correlated).
// Thread safety: pure functions.
#ifndef SLQ_SERVER_QUANT_METRICS_H_
#define SLQ_SERVER_QUANT_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace slq::quant {

// Per-position metrics of one sequence (length = positions).
struct SequenceMetrics {
  std::vector<double> ear;            // 1 - TV(p_t, q_t)
  std::vector<double> kl;             // KL(p_t || q_t), nats
  std::vector<uint8_t> flip;          // argmax p_t != argmax q_t
  std::vector<double> nll_base;       // -log p_t(next token); empty when no targets
  std::vector<double> nll_quant;      // -log q_t(next token)
  std::vector<int32_t> argmax_quant;  // greedy token of the quantized model at each position
  double SumEar() const;
  double SumKl() const;
  int64_t positions() const { return static_cast<int64_t>(ear.size()); }
};

// base, quant: [positions, vocab] fp32 logits. next: [positions] target tokens (token t+1 for
// position t) or nullptr (no perplexity). temperature > 0.
[[nodiscard]] absl::StatusOr<SequenceMetrics> CompareLogits(const float* base, const float* quant, int64_t positions,
                                                            int64_t vocab, const int32_t* next,
                                                            double temperature = 1.0);

struct Interval {
  double mean = 0, lo = 0, hi = 0;  // point estimate and 95% percentile bootstrap interval
};
void to_json(nlohmann::json& j, const Interval& v);
void from_json(const nlohmann::json& j, Interval& v);

struct BootstrapOptions {
  int resamples = 1000;
  uint64_t seed = 12345;
};

// Task-lossless check (METHOD.md section 1) on a LAMBADA-style cloze (cloze.h): accuracy of
// both models, the binomial standard error of the base accuracy, the test's power
// (tl_power.h) and the verdict: TL holds when |acc_quant - acc_base| <= 1.96 x se_base AND the
// test detects a 5-point difference with 80% power (min_detectable_diff <= 0.05, and
// 0.05 <= acc_base <= 0.95 so that such a difference can occur both ways); a test without that
// power is "inconclusive: ...". items == 0: not computed.
struct TaskResult {
  std::string task;      // "cloze-last-word"
  std::string spelling;  // how a hit is spelled (empty in certificates before the space rule)
  int64_t items = 0;
  int64_t items_in_text = 0;  // items the held-out text had (items <= it; 0: not recorded)
  int64_t hits_base = 0, hits_quant = 0;
  int64_t base_only = 0, quant_only = 0;  // discordant items: only the base / only the quantized model hit
  double acc_base = 0, acc_quant = 0, se_base = 0;
  double min_detectable_diff = 0;  // |accuracy difference| detected with 80% power (alpha 0.05, two-sided)
  int64_t items_for_5pt = 0;       // items the test needs to detect 0.05 with 80% power
  bool tl_holds = false;
  std::string verdict;  // "task-lossless", "not task-lossless", "inconclusive: too few items"
};
void to_json(nlohmann::json& j, const TaskResult& v);
void from_json(const nlohmann::json& j, TaskResult& v);

struct FidelityReport {
  Interval ear, kl, flip, ppl_ratio;  // ppl_ratio = ppl_quant / ppl_base
  TaskResult task;                    // filled by the pipeline (cloze); items 0 = absent
  double ppl_base = 0, ppl_quant = 0;
  int64_t sequences = 0, positions = 0;
  int resamples = 0;
  uint64_t seed = 0;
};
void to_json(nlohmann::json& j, const FidelityReport& v);
void from_json(const nlohmann::json& j, FidelityReport& v);

// InvalidArgument when there are no sequences/positions or resamples < 1.
[[nodiscard]] absl::StatusOr<FidelityReport> Summarize(const std::vector<SequenceMetrics>& seqs,
                                                       const BootstrapOptions& opts);

// A target on one metric: met iff the conservative end of the interval satisfies it.
bool EarTargetMet(const FidelityReport& r, double tau);   // r.ear.lo >= tau
bool KlTargetMet(const FidelityReport& r, double kappa);  // r.kl.hi <= kappa

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_METRICS_H_
