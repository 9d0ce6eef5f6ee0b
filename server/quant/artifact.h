// The quantized artifact: a directory holding
//   weights.safetensors  packed linears (<slot>.codes U32 [rows, words], <slot>.scales F16
//                        [rows, groups], <slot>.zeros F16 [rows, groups] for asymmetric
//                        layers only (symmetric: recomputed from the scale), <slot>.grid_ids
//                        U32 [rows, id words] for layers with per-group grids (kernels/grids.h),
//                        slq-packed-v1; layers with compact "s8" scales (kernels/scale_codes.h)
//                        store <slot>.scale_codes U8 [rows, groups] and, asymmetric,
//                        <slot>.zero_points U32 [rows, WordsPerRow(groups, bits)] (each row a
//                        bit stream of `bits`-bit zero-points, like codes) instead of .scales /
//                        .zeros; the manifest holds the layer's fp32 base) and
//                        every unquantized tensor (<slot>.weight for dense linears, embeddings,
//                        norms, biases): F16 when every value is exactly representable in fp16
//                        (the pipeline rounds embeddings and the LM head to fp16: "kept at 16
//                        bits"), else F32. Names follow Hugging Face ("model.layers.3.mlp.up_proj").
//   manifest.json        format + version, model config, per-layer quantization, the fidelity
//                        certificate (opaque JSON from the pipeline), and {file: sha256, bytes,
//                        chunk_bytes, chunk_sha256} for every other file in the directory (the
//                        sha256 of each 64 MiB piece too, verified in parallel: artifact_hash.h).
//   tokenizer files      copied in verbatim (names as given, base name only).
//
//   SLQ_RETURN_IF_ERROR(WriteArtifact(*model, "/store/a1", {.certificate = cert,
//                                                          .extra_files = {tok_json}}));
//   SLQ_ASSIGN_OR_RETURN(LoadedArtifact a, LoadArtifact("/store/a1"));  // a.model: QuantizedLinear slots
//
// Crash safety: everything is written into "<dir>.tmp-<pid>-<n>", each file fsynced, the temp
// dir fsynced, then renamed to <dir> (AlreadyExists if <dir> exists) and the parent fsynced.
// Loading verifies the sha256 and size of every listed file first (per chunk on the worker pool
// when the manifest lists chunk digests, else whole files) and refuses a corrupted or truncated
// artifact with DataLoss naming the file. It then builds the linears in parallel.
// Thread safety: functions are reentrant; do not write the same dir from two threads.
#ifndef SLQ_SERVER_QUANT_ARTIFACT_H_
#define SLQ_SERVER_QUANT_ARTIFACT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model.h"

namespace slq::quant {

// Format versions: 1 = uniform grids and fp16 scales only; 2 = some linear carries per-group
// grid ids ("grids": true, tensor <slot>.grid_ids); 3 = some linear stores s8 scales ("scales":
// "s8", "scale_base_bits": the fp32 bit pattern of its base D; tensors <slot>.scale_codes and,
// asymmetric, <slot>.zero_points). The writer writes the lowest version that holds every linear,
// so artifacts without grids or s8 stay readable by older builds, and those builds refuse a newer
// artifact (FailedPrecondition) instead of silently dequantizing wrong. This build reads 1 to 3.
inline constexpr int kArtifactFormatVersion = 3;  // the newest version this build reads
inline constexpr int kArtifactFormatVersionNoGrids = 1;
inline constexpr int kArtifactFormatVersionGrids = 2;
inline constexpr int kArtifactFormatVersionS8 = 3;
// The manifest's "grid" of a linear with grid ids: the fixed level tables of kernels/grids.h.
inline constexpr char kGridTablesName[] = "slq-grids-v1";
inline constexpr char kArtifactFormat[] = "slq-artifact";
inline constexpr char kManifestName[] = "manifest.json";
inline constexpr char kWeightsName[] = "weights.safetensors";

struct ArtifactWriteOptions {
  nlohmann::json certificate = nlohmann::json::object();     // METHOD.md section 6
  std::vector<std::string> extra_files;                      // paths copied in (tokenizer.json, config.json, ...)
  nlohmann::json extra_manifest = nlohmann::json::object();  // merged into the manifest top level
};

[[nodiscard]] absl::Status WriteArtifact(const Model& model, const std::string& dir,
                                         const ArtifactWriteOptions& options);

// Reads manifest.json and verifies every listed file's size and sha256 (DataLoss naming the
// file on mismatch, NotFound if missing, FailedPrecondition on a wrong format/version).
[[nodiscard]] absl::StatusOr<nlohmann::json> ReadVerifiedManifest(const std::string& dir);

struct LoadedArtifact {
  std::unique_ptr<Model> model;  // linear slots: QuantizedLinear or DenseLinear
  nlohmann::json manifest;
};
[[nodiscard]] absl::StatusOr<LoadedArtifact> LoadArtifact(const std::string& dir);

// Per-slot description of what WriteArtifact stores, for the manifest and certificate.
nlohmann::json DescribeLinears(Model& model);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_ARTIFACT_H_
