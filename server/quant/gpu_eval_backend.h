// The GPU EvalBackend (server/quant/eval_backend.h): profiling, the closed loop and held-out
// verification of the quantization pipeline on one CUDA device. A quant-side adapter (library
// slq_quant_gpu, CUDA builds only) over the device runtime server/gpu, which knows nothing of
// server/quant: the dependency is quant -> gpu.
//
//   SLQ_ASSIGN_OR_RETURN(std::unique_ptr<quant::EvalBackend> e, MakeGpuEvalBackend(model));
//   QuantizationSession::Open(options, progress, [](const Model& m) { return MakeGpuEvalBackend(m); });
//
// The Model (all linears dense) is uploaded once as a dense fp16 mirror (GpuModel), plus a
// device copy of every linear's original weights. A slot change then costs a device copy:
// the original back from the copy, a quantized matrix as its packed codes + fp16 scales/zeros
// dequantized on the device (rotated ones dequantized on the host), a dense (noisy) one as
// fp32 converted on the device. The base logits of each sequence set stay in device memory
// (fp32); Compare runs teacher-forced batches of up to max_batch_tokens tokens and computes
// EAR / KL / flips / NLL per position on the device (fp64 sums, as quant::CompareLogits).
// Numerics: activations fp16, so the GPU's base differs from the fp32 CPU base (EAR ~0.999
// between them on the real models); base and quantized are both measured on the GPU, so the
// metrics compare like with like.
// Thread safety: one thread at a time (an EvalBackend's contract).
#ifndef SLQ_SERVER_QUANT_GPU_EVAL_BACKEND_H_
#define SLQ_SERVER_QUANT_GPU_EVAL_BACKEND_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "server/gpu/gpu_model.h"
#include "server/model/model.h"
#include "server/quant/eval_backend.h"

namespace slq::gpu {

struct GpuEvalOptions {
  int device_index = 0;  // cudaSetDevice before every call (workers may run on any thread)
  ActType act = ActType::kF16;
  int64_t max_batch_tokens = 2048;  // tokens per teacher-forced forward pass
};

// FailedPrecondition without a usable GPU or when a linear of `model` is not dense; the
// Model must outlive the backend only for the duration of this call (weights are copied).
[[nodiscard]] absl::StatusOr<std::unique_ptr<quant::EvalBackend>> MakeGpuEvalBackend(
    const Model& model, const GpuEvalOptions& options = {});

}  // namespace slq::gpu

#endif  // SLQ_SERVER_QUANT_GPU_EVAL_BACKEND_H_
