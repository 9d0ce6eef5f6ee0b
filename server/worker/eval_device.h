// Where a worker (or the offline CLI) runs the quantization pipeline's evaluations.
//
//   std::string chosen;
//   SLQ_ASSIGN_OR_RETURN(quant::EvalBackendFactory f, EvalBackendFor("auto", &chosen));
//   QuantizationSession::Open(options, progress, f);   // chosen: "cpu" or "cuda:0"
//
// "cpu": the CPU forward pass (a null factory). "cuda" / "cuda:N": the GPU EvalBackend
// (server/quant/gpu_eval_backend.h) on device N (0 by default; CUDA_VISIBLE_DEVICES decides
// which physical GPU that is). "auto": cuda:0 when this build has CUDA and a GPU is usable,
// else cpu. FailedPrecondition for "cuda" without CUDA support or without a GPU,
// InvalidArgument for anything else.
#ifndef SLQ_SERVER_WORKER_EVAL_DEVICE_H_
#define SLQ_SERVER_WORKER_EVAL_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/quant/eval_backend.h"

namespace slq {

[[nodiscard]] absl::StatusOr<quant::EvalBackendFactory> EvalBackendFor(const std::string& device, std::string* chosen);

}  // namespace slq

#endif  // SLQ_SERVER_WORKER_EVAL_DEVICE_H_
