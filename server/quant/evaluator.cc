#include "server/quant/evaluator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/forward.h"

namespace slq::quant {

absl::StatusOr<SequenceLogits> ComputeLogits(const Model& model, const Sequences& seqs) {
  SequenceLogits out;
  out.vocab = model.config.vocab_size;
  for (const auto& s : seqs) {
    SLQ_ASSIGN_OR_RETURN(std::vector<float> l, TeacherForcedLogits(model, s));
    out.logits.push_back(std::move(l));
  }
  return out;
}

absl::StatusOr<std::vector<SequenceMetrics>> CompareModel(const Model& model, const Sequences& seqs,
                                                          const SequenceLogits& base, double temperature) {
  if (base.logits.size() != seqs.size() || base.vocab != model.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("base logits for ", base.logits.size(), " sequences (vocab ",
                                                   base.vocab, ") vs ", seqs.size(), " sequences (vocab ",
                                                   model.config.vocab_size, ")"));
  }
  std::vector<SequenceMetrics> out;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& s = seqs[i];
    if (s.size() < 2) continue;
    SLQ_ASSIGN_OR_RETURN(std::vector<float> q, TeacherForcedLogits(model, s));
    SLQ_ASSIGN_OR_RETURN(SequenceMetrics m,
                         CompareLogits(base.logits[i].data(), q.data(), static_cast<int64_t>(s.size()) - 1, base.vocab,
                                       s.data() + 1, temperature));
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<int32_t> RowArgmax(const float* logits, int64_t rows, int64_t vocab) {
  std::vector<int32_t> am(static_cast<size_t>(rows));
  for (int64_t t = 0; t < rows; ++t) {
    const float* row = logits + t * vocab;
    am[static_cast<size_t>(t)] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
  }
  return am;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> TeacherForcedArgmax(const Model& model, const Sequences& seqs) {
  const int64_t vocab = model.config.vocab_size;
  std::vector<std::vector<int32_t>> out;
  out.reserve(seqs.size());
  for (const auto& s : seqs) {
    SLQ_ASSIGN_OR_RETURN(std::vector<float> l, TeacherForcedLogits(model, s));
    out.push_back(RowArgmax(l.data(), static_cast<int64_t>(s.size()), vocab));
  }
  return out;
}

MeanDamage MeanOf(const std::vector<SequenceMetrics>& seqs) {
  double kl = 0, ear = 0;
  int64_t n = 0;
  for (const auto& s : seqs) {
    kl += s.SumKl();
    ear += s.SumEar();
    n += s.positions();
  }
  MeanDamage d;
  if (n > 0) {
    d.kl = kl / n;
    d.one_minus_ear = 1.0 - ear / n;
  }
  return d;
}

}  // namespace slq::quant
