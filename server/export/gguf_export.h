// Export of a quantized artifact as a GGUF (v3) file for llama.cpp, with no re-quantization:
// every tensor gets the GGUF type that holds its values exactly, or the export is refused.
//
//   SLQ_RETURN_IF_ERROR(ExportGguf("/store/objects/<id>", "/tmp/model.gguf"));
//
// Exact mappings (llama.cpp block layouts, 32 weights per block):
//   4-bit, group 32, x = z + s*q (asymmetric, or symmetric with its stored zero) -> Q4_1 (d = s, m = z)
//   5-bit, group 32, x = z + s*q                                                 -> Q5_1 (d = s, m = z)
//   8-bit symmetric, group 32, z exactly -127*s and codes <= 254                 -> Q8_0 (d = s, q - 127)
//   dense tensors: F16 when every value is exactly an fp16, else F32; norms F32.
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

[[nodiscard]] absl::Status ExportGguf(const std::string& artifact_dir, const std::string& out_path);

}  // namespace slq::exporter

#endif  // SLQ_SERVER_EXPORT_GGUF_EXPORT_H_
