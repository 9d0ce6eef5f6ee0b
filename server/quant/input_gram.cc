#include "server/quant/input_gram.h"

#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/forward.h"

namespace slq::quant {
namespace {

// Runs `inner` and adds its input's Gram into *gram.
class GramCapture final : public LinearOp {
 public:
  GramCapture(std::unique_ptr<LinearOp> inner, InputGram* gram) : inner_(std::move(inner)), gram_(gram) {}
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  void Forward(const float* x, int64_t n, float* y) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      AccumulateGram(x, n, gram_);
    }
    inner_->Forward(x, n, y);
  }
  size_t MemoryBytes() const override { return inner_->MemoryBytes(); }
  std::string Describe() const override { return inner_->Describe(); }
  const PackedLinear* packed() const override { return inner_->packed(); }
  std::vector<float> WeightF32() const override { return inner_->WeightF32(); }
  std::unique_ptr<LinearOp> Release() { return std::move(inner_); }

 private:
  std::unique_ptr<LinearOp> inner_;
  InputGram* gram_;
  mutable std::mutex mu_;
};

}  // namespace

absl::StatusOr<std::map<std::string, InputGram>> CaptureInputGrams(Model& model, const std::vector<std::string>& slots,
                                                                   const std::vector<std::vector<int32_t>>& seqs) {
  std::map<std::string, InputGram> grams;
  std::map<std::string, std::unique_ptr<LinearOp>*> wrapped;
  for (const std::string& name : slots) grams[name];
  for (LinearSlot& s : model.LinearSlots()) {
    auto it = grams.find(s.name);
    if (it == grams.end() || *s.op == nullptr) continue;
    it->second.cols = (*s.op)->in_features();
    *s.op = std::make_unique<GramCapture>(std::move(*s.op), &it->second);
    wrapped[s.name] = s.op;
  }
  absl::Status status = wrapped.size() == grams.size()
                            ? absl::OkStatus()
                            : absl::NotFoundError("some slots to capture are not linear slots of the model");
  for (size_t i = 0; status.ok() && i < seqs.size(); ++i) status = TeacherForcedLogits(model, seqs[i]).status();
  for (auto& [name, op] : wrapped) *op = static_cast<GramCapture*>(op->get())->Release();
  SLQ_RETURN_IF_ERROR(status);
  return grams;
}

}  // namespace slq::quant
