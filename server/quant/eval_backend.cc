// The CPU EvalBackend: base logits kept on the host, the Model evaluated in place.
#include "server/quant/eval_backend.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace slq::quant {
namespace {

class CpuEvalBackend final : public EvalBackend {
 public:
  explicit CpuEvalBackend(const Model& model) : model_(model) {}
  std::string device() const override { return "cpu"; }

  absl::StatusOr<int> AddBaseSet(const Sequences& seqs) override {
    Set set;
    set.seqs = seqs;
    SLQ_ASSIGN_OR_RETURN(set.base, ComputeLogits(model_, seqs));
    const int64_t v = set.base.vocab;
    for (size_t i = 0; i < seqs.size(); ++i) {
      set.argmax.push_back(RowArgmax(set.base.logits[i].data(), static_cast<int64_t>(seqs[i].size()), v));
    }
    sets_.push_back(std::move(set));
    return static_cast<int>(sets_.size()) - 1;
  }

  const std::vector<std::vector<int32_t>>& BaseArgmax(int set) const override {
    return sets_.at(static_cast<size_t>(set)).argmax;
  }

  absl::Status SlotChanged(const std::string&, const LinearOp&) override { return absl::OkStatus(); }
  absl::Status KeptTensorsChanged(const Model&) override { return absl::OkStatus(); }

  absl::StatusOr<std::vector<SequenceMetrics>> Compare(int set, double temperature) override {
    if (set < 0 || static_cast<size_t>(set) >= sets_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("no base set ", set));
    }
    const Set& s = sets_[static_cast<size_t>(set)];
    return CompareModel(model_, s.seqs, s.base, temperature);
  }

 private:
  struct Set {
    Sequences seqs;
    SequenceLogits base;
    std::vector<std::vector<int32_t>> argmax;
  };
  const Model& model_;
  std::vector<Set> sets_;
};

}  // namespace

std::unique_ptr<EvalBackend> MakeCpuEvalBackend(const Model& model) { return std::make_unique<CpuEvalBackend>(model); }

}  // namespace slq::quant
