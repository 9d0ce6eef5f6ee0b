// Teacher-forced comparison of a (quantized) model against cached base-model logits.
//
//   SLQ_ASSIGN_OR_RETURN(SequenceLogits base, ComputeLogits(base_model, data.calibration));
//   SLQ_ASSIGN_OR_RETURN(auto per_seq, CompareModel(quant_model, data.calibration, base, 1.0));
//   SLQ_ASSIGN_OR_RETURN(FidelityReport r, Summarize(per_seq, {1000, seed}));
//
// Position t of a sequence s (t < |s| - 1) compares the next-token distributions after s[0..t]
// and scores s[t+1] for perplexity. Thread safety: the Model is only read (forward passes).
#ifndef SLQ_SERVER_QUANT_EVALUATOR_H_
#define SLQ_SERVER_QUANT_EVALUATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/quant/metrics.h"

namespace slq::quant {

using Sequences = std::vector<std::vector<int32_t>>;

struct SequenceLogits {
  int64_t vocab = 0;
  std::vector<std::vector<float>> logits;  // per sequence: [|s|, vocab] fp32
};

[[nodiscard]] absl::StatusOr<SequenceLogits> ComputeLogits(const Model& model, const Sequences& seqs);

[[nodiscard]] absl::StatusOr<std::vector<SequenceMetrics>> CompareModel(const Model& model, const Sequences& seqs,
                                                                        const SequenceLogits& base, double temperature);

// The argmax of each of `rows` rows of `vocab` logits (lowest id on ties).
std::vector<int32_t> RowArgmax(const float* logits, int64_t rows, int64_t vocab);

// Per sequence, the greedy token after each prefix: argmax over the vocabulary of the
// teacher-forced logits at every position (the TL cloze's first tokens, cloze.h). Lowest id on ties.
[[nodiscard]] absl::StatusOr<std::vector<std::vector<int32_t>>> TeacherForcedArgmax(const Model& model,
                                                                                    const Sequences& seqs);

// Mean KL and mean 1 - EAR over all positions (no bootstrap), for profiling.
struct MeanDamage {
  double kl = 0, one_minus_ear = 0;
};
MeanDamage MeanOf(const std::vector<SequenceMetrics>& seqs);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_EVALUATOR_H_
