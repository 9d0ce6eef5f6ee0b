// EvalBackend: where the pipeline's teacher-forced evaluations run (profiling, the closed loop,
// held-out verification). The CPU backend runs slq::TeacherForcedLogits on the Model itself;
// the GPU backend (server/quant/gpu_eval_backend.h, library slq_quant_gpu) keeps a dense fp16 mirror of the Model on
// the device, the base logits of each sequence set in device memory, and computes the
// per-position metrics there, so only a few numbers per position come back to the host.
//
//   std::unique_ptr<EvalBackend> eval = MakeCpuEvalBackend(model);
//   SLQ_ASSIGN_OR_RETURN(int calib, eval->AddBaseSet(data.calibration));   // base weights now
//   mq.set_on_change([&](const std::string& s, const LinearOp& op) { return eval->SlotChanged(s, op); });
//   SLQ_RETURN_IF_ERROR(mq.SetBits("model.layers.0.mlp.up_proj", 4));
//   SLQ_ASSIGN_OR_RETURN(std::vector<SequenceMetrics> m, eval->Compare(calib, 1.0));
//
// Contract: AddBaseSet records the model's logits as the weights are at that moment; Compare
// evaluates the weights as they are now (the CPU backend reads the Model; the GPU backend its
// mirror, kept current by SlotChanged / KeptTensorsChanged). Sequences shorter than 2 tokens
// have no positions and are skipped by Compare (as CompareModel does).
// Thread safety: one thread at a time.
#ifndef SLQ_SERVER_QUANT_EVAL_BACKEND_H_
#define SLQ_SERVER_QUANT_EVAL_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/model.h"
#include "server/quant/evaluator.h"
#include "server/quant/metrics.h"

namespace slq::quant {

class EvalBackend {
 public:
  virtual ~EvalBackend() = default;
  // "cpu", or "cuda:0 NVIDIA H100 80GB HBM3 (fp16 dense mirror)".
  virtual std::string device() const = 0;
  // Records the base logits of `seqs` (the current weights); returns the set's id.
  [[nodiscard]] virtual absl::StatusOr<int> AddBaseSet(const Sequences& seqs) = 0;
  // The base model's greedy token at every position of every sequence of a set.
  virtual const std::vector<std::vector<int32_t>>& BaseArgmax(int set) const = 0;
  // A quantizable slot of the Model now holds `op` (quantized, noisy or the original).
  [[nodiscard]] virtual absl::Status SlotChanged(const std::string& slot, const LinearOp& op) = 0;
  // The embeddings or an unquantized LM head of the Model were changed (fp16 rounding).
  [[nodiscard]] virtual absl::Status KeptTensorsChanged(const Model& model) = 0;
  // Per-sequence metrics of the current weights against base set `set`.
  [[nodiscard]] virtual absl::StatusOr<std::vector<SequenceMetrics>> Compare(int set, double temperature) = 0;
};

// Evaluates on the CPU, on `model` in place (which must outlive the backend).
std::unique_ptr<EvalBackend> MakeCpuEvalBackend(const Model& model);

// Builds a backend for a loaded Model (the pipeline calls it once per session).
using EvalBackendFactory = std::function<absl::StatusOr<std::unique_ptr<EvalBackend>>(const Model& model)>;

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_EVAL_BACKEND_H_
