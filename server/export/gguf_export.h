// Export of a quantized artifact, or of an unquantized model folder, as a GGUF (v3) file for
// llama.cpp, with no re-quantization.
//
//   SLQ_RETURN_IF_ERROR(ExportGguf("/store/objects/<id>", "/tmp/model.gguf"));            // exact types
//   SLQ_RETURN_IF_ERROR(ExportGguf("/store/objects/<id>", "/tmp/deq.gguf", {.dtype = "f32"}));
//   SLQ_RETURN_IF_ERROR(ExportGguf("/models/docs-19m", "/tmp/base.gguf", {.dtype = "f32"}));
//
// dtype "exact" (the default): every tensor gets the GGUF type that holds its values exactly, or
// the export is refused (below). dtype "f32" / "f16": every linear, quantized or not, and the
// embedding are written dequantized (LinearOp::WeightF32) as F32 (exact) / F16 (rounded), and the
// LM head is always written as its own "output" tensor, also when the model ties it to the
// embedding, so llama.cpp tools (llama-quantize) can type it separately. This is how slq
// artifacts are scored by llama-perplexity beside llama.cpp's own types (bench/compare/).
// A directory without manifest.json is loaded as a model (model_loader.h; it needs an HF
// tokenizer.json for the metadata).
//
// Exact mappings (llama.cpp block layouts, 32 weights per block):
//   4-bit, group 32, x = z + s*q (asymmetric, or symmetric with its stored zero) -> Q4_1 (d = s, m = z)
//   5-bit, group 32, x = z + s*q                                                 -> Q5_1 (d = s, m = z)
//   8-bit symmetric, group 32, z exactly -127*s and codes <= 254                 -> Q8_0 (d = s, q - 127)
//   dense tensors: F16 when every value is exactly an fp16, else F32; norms F32.
// Layers with compact "s8" scales (kernels/scale_codes.h) are expanded to fp16 (s, z) at load,
// so they map exactly like fp16 layers of the same width and group size.
// Anything else (other bit widths or group sizes, Hadamard rotation, asymmetric 8-bit, a
// symmetric 8-bit group whose fp16 zero is not exactly -127*s) has no exact GGUF type:
// InvalidArgument naming the first such layer and why. Tensor names and metadata follow
// llama.cpp's "llama" architecture (q/k rows in its interleaved RoPE order). The tokenizer goes in
// as tokenizer.ggml.* metadata (gguf_tokenizer.h); an artifact whose tokenizer llama.cpp cannot
// express is refused the same way, before anything is written.
// Thread safety: reentrant.
#ifndef SLQ_SERVER_EXPORT_GGUF_EXPORT_H_
#define SLQ_SERVER_EXPORT_GGUF_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace slq::exporter {

// ggml type ids used here (ggml.h).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_1 = 3, kQ5_1 = 7, kQ8_0 = 8 };

struct GgufExportOptions {
  std::string dtype = "exact";  // exact | f32 | f16
};

[[nodiscard]] absl::Status ExportGguf(const std::string& artifact_or_model_dir, const std::string& out_path,
                                      const GgufExportOptions& options = {});

}  // namespace slq::exporter

#endif  // SLQ_SERVER_EXPORT_GGUF_EXPORT_H_
