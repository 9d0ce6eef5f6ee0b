#include "server/quant/model_quantizer.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/quant/quantized_linear.h"

namespace slq::quant {

ModelQuantizer::ModelQuantizer(Model* model, QuantConfig config, bool quantize_lm_head)
    : model_(model), config_(config), quantize_lm_head_(quantize_lm_head) {}

absl::Status ModelQuantizer::Init() {
  for (LinearSlot& s : model_->LinearSlots()) {
    if (s.layer < 0 && !quantize_lm_head_) continue;
    const auto* d = dynamic_cast<const DenseLinear*>(s.op->get());
    if (d == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("slot ", s.name, " holds '",
                                                        (*s.op) ? (*s.op)->Describe() : "nothing",
                                                        "'; quantization needs the dense base model"));
    }
    slots_.push_back({s.name, s.layer, d->out_features(), d->in_features()});
    ops_[s.name] = s.op;
  }
  if (slots_.empty()) return absl::FailedPreconditionError("model has no quantizable linear layers");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LinearOp>*> ModelQuantizer::SlotOp(const std::string& name) {
  auto it = ops_.find(name);
  if (it == ops_.end()) return absl::NotFoundError(absl::StrCat("no quantizable slot named ", name));
  return it->second;
}

absl::StatusOr<const std::vector<float>*> ModelQuantizer::Weights(const std::string& name) const {
  auto st = stash_.find(name);
  const LinearOp* op = nullptr;
  if (st != stash_.end()) {
    op = st->second.get();
  } else {
    auto it = ops_.find(name);
    if (it == ops_.end()) return absl::NotFoundError(absl::StrCat("no quantizable slot named ", name));
    op = it->second->get();
  }
  const auto* d = dynamic_cast<const DenseLinear*>(op);
  if (d == nullptr) return absl::InternalError(absl::StrCat("slot ", name, ": original is not dense"));
  return &d->weight();
}

absl::StatusOr<const QuantizedMatrix*> ModelQuantizer::Quantized(const std::string& name, int bits) {
  auto key = std::make_pair(name, bits);
  auto it = cache_.find(key);
  if (it != cache_.end()) return &it->second;
  SLQ_ASSIGN_OR_RETURN(const std::vector<float>* w, Weights(name));
  SLQ_ASSIGN_OR_RETURN(std::unique_ptr<LinearOp> * op, SlotOp(name));
  (void)op;
  const SlotInfo* info = nullptr;
  for (const auto& s : slots_) {
    if (s.name == name) info = &s;
  }
  SLQ_ASSIGN_OR_RETURN(const Choice choice, DecodeChoice(bits, BaseOf(config_)));
  QuantConfig cfg = choice.Config(config_);
  // One rotation seed per slot, derived from the configured seed and the slot's index.
  cfg.rotation_seed = config_.rotation_seed * 1000003ULL + static_cast<uint64_t>(info - slots_.data());
  const Rounding rounding = choice.rounding;
  const InputGram* gram = nullptr;
  if (rounding != Rounding::kRtn) {
    auto g = grams_.find(name);
    if (g == grams_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("slot ", name, ": ", RoundingName(rounding), " needs the input Gram (none captured)"));
    }
    gram = &g->second;
  }
  SLQ_ASSIGN_OR_RETURN(QuantizedMatrix q,
                       QuantizeMatrixRounded(w->data(), info->rows, info->cols, cfg, rounding, gram, gptq_));
  return &cache_.emplace(key, std::move(q)).first->second;
}

absl::Status ModelQuantizer::Restore(const std::string& name) {
  SLQ_ASSIGN_OR_RETURN(std::unique_ptr<LinearOp> * op, SlotOp(name));
  auto st = stash_.find(name);
  if (st == stash_.end()) return absl::OkStatus();
  *op = std::move(st->second);
  stash_.erase(st);
  current_.erase(name);
  return Notify(name, **op);
}

void ModelQuantizer::RestoreAll() {
  for (const auto& s : slots_) (void)Restore(s.name);
}

absl::Status ModelQuantizer::SetBits(const std::string& name, int bits) {
  if (bits == 0 || bits == 16) return Restore(name);
  auto cur = current_.find(name);
  if (cur != current_.end() && cur->second == bits) return absl::OkStatus();  // already there
  SLQ_ASSIGN_OR_RETURN(const QuantizedMatrix* q, Quantized(name, bits));
  SLQ_ASSIGN_OR_RETURN(std::unique_ptr<LinearOp> * op, SlotOp(name));
  if (!stash_.count(name)) stash_[name] = std::move(*op);
  *op = std::make_unique<QuantizedLinear>(*q);
  current_[name] = bits;
  return Notify(name, **op);
}

absl::Status ModelQuantizer::Notify(const std::string& name, const LinearOp& op) {
  return on_change_ ? on_change_(name, op) : absl::OkStatus();
}

absl::Status ModelQuantizer::Apply(const std::map<std::string, int>& bits) {
  for (const auto& [name, b] : bits) SLQ_RETURN_IF_ERROR(SlotOp(name).status());
  for (const auto& s : slots_) {
    auto it = bits.find(s.name);
    SLQ_RETURN_IF_ERROR(SetBits(s.name, it == bits.end() ? 0 : it->second));
  }
  return absl::OkStatus();
}

absl::Status ModelQuantizer::InjectNoise(const std::string& name, double rel, uint64_t seed) {
  SLQ_RETURN_IF_ERROR(Restore(name));
  SLQ_ASSIGN_OR_RETURN(const std::vector<float>* w, Weights(name));
  SLQ_ASSIGN_OR_RETURN(std::unique_ptr<LinearOp> * op, SlotOp(name));
  double norm2 = 0;
  for (float x : *w) norm2 += static_cast<double>(x) * x;
  const double sigma = std::sqrt(rel * norm2 / static_cast<double>(w->size()));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, sigma);
  std::vector<float> noisy(*w);
  for (auto& x : noisy) x += static_cast<float>(n(rng));
  const int64_t rows = (*op)->out_features(), cols = (*op)->in_features();
  stash_[name] = std::move(*op);
  *op = std::make_unique<DenseLinear>(rows, cols, std::move(noisy));
  current_[name] = kNoisy;
  return Notify(name, **op);
}

absl::StatusOr<double> ModelQuantizer::RelativeOutputError(const std::string& name, int bits) {
  auto key = std::make_pair(name, bits);
  auto it = out_err_cache_.find(key);
  if (it != out_err_cache_.end()) return it->second;
  auto g = grams_.find(name);
  if (g == grams_.end()) return absl::FailedPreconditionError(absl::StrCat("slot ", name, ": no input Gram"));
  SLQ_ASSIGN_OR_RETURN(const std::vector<float>* w, Weights(name));
  SLQ_ASSIGN_OR_RETURN(const QuantizedMatrix* q, Quantized(name, bits));
  const double energy = OutputEnergy(w->data(), q->rows, g->second);
  const double e = energy > 0 ? OutputError(w->data(), *q, g->second) / energy : 0.0;
  out_err_cache_[key] = e;
  return e;
}

absl::StatusOr<bool> ModelQuantizer::SameWeights(const std::string& name, int a, int b) {
  if (a == b) return true;
  if (IsDenseChoice(a) || IsDenseChoice(b)) return IsDenseChoice(a) && IsDenseChoice(b);
  SLQ_ASSIGN_OR_RETURN(const QuantizedMatrix* qa, Quantized(name, a));
  SLQ_ASSIGN_OR_RETURN(const QuantizedMatrix* qb, Quantized(name, b));
  if (qa->bits != qb->bits || qa->rotation.block != qb->rotation.block || qa->rotation.seed != qb->rotation.seed) {
    return false;
  }
  return Dequantize(*qa) == Dequantize(*qb);
}

absl::StatusOr<double> ModelQuantizer::RelativeError(const std::string& name, int bits) {
  auto key = std::make_pair(name, bits);
  auto it = err_cache_.find(key);
  if (it != err_cache_.end()) return it->second;
  SLQ_ASSIGN_OR_RETURN(const std::vector<float>* w, Weights(name));
  SLQ_ASSIGN_OR_RETURN(const QuantizedMatrix* q, Quantized(name, bits));
  const double e = quant::RelativeError(w->data(), *q);
  err_cache_[key] = e;
  return e;
}

}  // namespace slq::quant
