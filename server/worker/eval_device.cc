// EvalBackendFor: see eval_device.h.
#include "server/worker/eval_device.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#if SLQ_HAVE_CUDA
#include "server/quant/gpu_eval_backend.h"
#endif

namespace slq {

absl::StatusOr<quant::EvalBackendFactory> EvalBackendFor(const std::string& device, std::string* chosen) {
  int index = 0;
  bool cuda = false;
  if (device == "cpu") {
    *chosen = "cpu";
    return quant::EvalBackendFactory();
  }
  if (device == "cuda") {
    cuda = true;
  } else if (device.rfind("cuda:", 0) == 0) {
    if (!absl::SimpleAtoi(device.substr(5), &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat("device '", device, "': expected cuda:N with N >= 0"));
    }
    cuda = true;
  } else if (device != "auto") {
    return absl::InvalidArgumentError(absl::StrCat("device '", device, "'; allowed: cpu, cuda, cuda:N, auto"));
  }
#if SLQ_HAVE_CUDA
  std::string why;
  if (!gpu::GpuAvailable(&why)) {
    if (cuda) return absl::FailedPreconditionError(absl::StrCat("device '", device, "': no GPU: ", why));
    *chosen = "cpu";
    return quant::EvalBackendFactory();
  }
  *chosen = absl::StrCat("cuda:", index);
  gpu::GpuEvalOptions o;
  o.device_index = index;
  return quant::EvalBackendFactory([o](const Model& m) { return gpu::MakeGpuEvalBackend(m, o); });
#else
  if (cuda) return absl::FailedPreconditionError(absl::StrCat("device '", device, "': this build has no CUDA"));
  *chosen = "cpu";
  return quant::EvalBackendFactory();
#endif
}

}  // namespace slq
