// Export of a quantized artifact as a plain Hugging Face folder: the dequantized weights in one
// model.safetensors (bf16, fp16 or fp32), a config.json written from the artifact's model
// config, and the artifact's tokenizer files, so transformers (or slq's own HF loader) loads it
// as an ordinary LlamaForCausalLM / Qwen2ForCausalLM / ... checkpoint.
//
//   SLQ_RETURN_IF_ERROR(ExportHf("/store/objects/<id>", "/tmp/model-hf", {.dtype = "bf16"}));
//
// Hadamard-rotated layers are mapped back to the original basis. Artifacts of llama2.c
// checkpoints (interleaved RoPE) get their q/k rows permuted into HF's rotate-half order.
// `out_dir` must not exist or be empty (FailedPrecondition otherwise).
// Thread safety: reentrant.
#ifndef SLQ_SERVER_EXPORT_HF_EXPORT_H_
#define SLQ_SERVER_EXPORT_HF_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model.h"

namespace slq::exporter {

struct HfExportOptions {
  std::string dtype = "bf16";  // bf16 | fp16 | fp32
};

[[nodiscard]] absl::Status ExportHf(const std::string& artifact_dir, const std::string& out_dir,
                                    const HfExportOptions& options);

// The config.json of a model (Hugging Face keys), `dtype` as torch_dtype ("bfloat16", ...).
nlohmann::json HfConfigJson(const ModelConfig& c, const std::string& torch_dtype);

// Row order of HF (rotate-half) q/k projections for a llama2.c-style (interleaved) one, per
// head: hf[i] = interleaved[2i], hf[i + d/2] = interleaved[2i + 1]. `inverse` maps HF rows to
// the interleaved order (what GGUF's llama architecture expects).
std::vector<int64_t> RopeRowOrder(int64_t heads, int64_t head_dim, bool inverse);

// Empty-or-missing output folder, created.
[[nodiscard]] absl::Status PrepareOutDir(const std::string& out_dir);

}  // namespace slq::exporter

#endif  // SLQ_SERVER_EXPORT_HF_EXPORT_H_
