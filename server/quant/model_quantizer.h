// ModelQuantizer: applies, swaps and reverts per-slot quantization of a Model in place.
//
//   ModelQuantizer mq(model.get(), cfg, /*quantize_lm_head=*/false);
//   SLQ_RETURN_IF_ERROR(mq.Apply({{"model.layers.0.mlp.up_proj", 4}, ...}));  // others dense
//   ... evaluate ...
//   mq.RestoreAll();                                                        // back to base
//
// Ownership: the original dense ops are moved out of the model into a stash while a slot holds
// a quantized (or noisy) op, and moved back on Restore; the Model must outlive this object.
// A slot's "bits" argument is a layer choice code (choice.h, relative to this quantizer's
// config): its bitwidth for RTN at the config's variant, or EncodeChoice(...) for another
// rounding, symmetry or group size; mse / gptq need the slots' input Grams
// (SetInputGrams; FailedPrecondition without). Quantized matrices are cached per (slot,
// choice); setting a slot to the choice it already holds is a no-op. An observer (set_on_change) is told of every
// change, with the op now in the slot: an EvalBackend keeping a device mirror of the weights uses it. Thread safety:
// not thread-safe, and no forward pass may run on the model during a swap.
#ifndef SLQ_SERVER_QUANT_MODEL_QUANTIZER_H_
#define SLQ_SERVER_QUANT_MODEL_QUANTIZER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/quant/choice.h"
#include "server/quant/quantizer.h"
#include "server/quant/rounding.h"

namespace slq::quant {

struct SlotInfo {
  std::string name;
  int layer = -1;
  int64_t rows = 0, cols = 0;
  int64_t params() const { return rows * cols; }
};

class ModelQuantizer {
 public:
  // Every slot must hold a DenseLinear (FailedPrecondition from Init otherwise).
  ModelQuantizer(Model* model, QuantConfig config, bool quantize_lm_head);
  [[nodiscard]] absl::Status Init();

  const std::vector<SlotInfo>& slots() const { return slots_; }  // the quantizable ones
  const QuantConfig& config() const { return config_; }
  // The fp32 weights [rows, cols] of a slot (from the stash when swapped out).
  [[nodiscard]] absl::StatusOr<const std::vector<float>*> Weights(const std::string& name) const;

  // The Gram of each slot's inputs on the calibration text (input_gram.h), for mse / gptq.
  void SetInputGrams(std::map<std::string, InputGram> grams) { grams_ = std::move(grams); }
  bool has_input_grams() const { return !grams_.empty(); }
  // GPTQ's options (dampening); set before the first gptq choice is quantized (cached after).
  void set_gptq_options(GptqOptions o) { gptq_ = o; }
  const GptqOptions& gptq_options() const { return gptq_; }

  // Quantizes one slot at choice `bits` (2..8, or a choice code, choice.h); 0 or 16 = restore dense.
  [[nodiscard]] absl::Status SetBits(const std::string& name, int bits);
  // Sets every quantizable slot from the map (slots not in it: dense).
  [[nodiscard]] absl::Status Apply(const std::map<std::string, int>& bits);
  // Replaces a slot by W + noise with ||noise||_F^2 = rel * ||W||_F^2 (Gaussian, seeded).
  [[nodiscard]] absl::Status InjectNoise(const std::string& name, double rel, uint64_t seed);
  [[nodiscard]] absl::Status Restore(const std::string& name);
  void RestoreAll();
  // Called after a slot's op changed (name, the op now in the slot); an error is returned by
  // the call that made the change.
  using ChangeFn = std::function<absl::Status(const std::string& name, const LinearOp& op)>;
  void set_on_change(ChangeFn fn) { on_change_ = std::move(fn); }
  // ||W - W'||^2 / ||W||^2 at `bits` from the weights alone (cached).
  [[nodiscard]] absl::StatusOr<double> RelativeError(const std::string& name, int bits);
  // Whether choices a and b give this slot bit-identical dequantized weights (e.g. g64 and g128
  // when the slot has <= 64 input columns): then every measurement of one is the other's.
  [[nodiscard]] absl::StatusOr<bool> SameWeights(const std::string& name, int a, int b);
  // ||(W - W')X||^2 / ||W X||^2 over the captured inputs (FailedPrecondition without grams; cached).
  [[nodiscard]] absl::StatusOr<double> RelativeOutputError(const std::string& name, int bits);

 private:
  absl::StatusOr<std::unique_ptr<LinearOp>*> SlotOp(const std::string& name);
  absl::StatusOr<const QuantizedMatrix*> Quantized(const std::string& name, int bits);
  absl::Status Notify(const std::string& name, const LinearOp& op);
  static constexpr int kNoisy = -1;

  Model* model_;
  QuantConfig config_;
  bool quantize_lm_head_;
  std::vector<SlotInfo> slots_;
  std::map<std::string, std::unique_ptr<LinearOp>*> ops_;
  std::map<std::string, std::unique_ptr<LinearOp>> stash_;  // original dense ops swapped out
  std::map<std::pair<std::string, int>, QuantizedMatrix> cache_;
  std::map<std::pair<std::string, int>, double> err_cache_;
  std::map<std::pair<std::string, int>, double> out_err_cache_;
  std::map<std::string, InputGram> grams_;
  GptqOptions gptq_;
  std::map<std::string, int> current_;  // slots swapped out: bits, or kNoisy
  ChangeFn on_change_;
};

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_MODEL_QUANTIZER_H_
