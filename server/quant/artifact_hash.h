// Parallel sha256 of artifact files (internal to the artifact writer and loader).
//
// A single sha256 over a multi-GB weights file runs on one core (~1.5 GB/s with SHA-NI), so the
// manifest also lists the sha256 of each kHashChunkBytes piece of every file
// ("chunk_bytes", "chunk_sha256": [hex, ...]; chunk i covers [i * chunk_bytes, ...)), which the
// loader verifies on the worker pool, one chunk per task. The whole-file "sha256" stays the
// file's identity; artifacts written before the chunk list are verified by it (one thread).
//
//   SLQ_ASSIGN_OR_RETURN(auto chunks, Sha256Chunks(path, bytes, kHashChunkBytes));
//   SLQ_RETURN_IF_ERROR(VerifyDigests({{.path = p, .bytes = n, .sha256 = h, .chunk_bytes = c,
//                                       .chunk_sha256 = chunks}}));
// Thread safety: reentrant; both use WorkerPool::Default() (inline when called inside it).
#ifndef SLQ_SERVER_QUANT_ARTIFACT_HASH_H_
#define SLQ_SERVER_QUANT_ARTIFACT_HASH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slq::quant {

inline constexpr uint64_t kHashChunkBytes = uint64_t{64} << 20;

// sha256 (lowercase hex) of each chunk of the first `bytes` bytes of `path`; empty for 0 bytes.
// NotFound if the file is missing, DataLoss if it is shorter than `bytes`.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> Sha256Chunks(const std::string& path, uint64_t bytes,
                                                                    uint64_t chunk_bytes);

struct DigestCheck {
  std::string path;
  uint64_t bytes = 0;                     // the file's size (checked by the caller)
  std::string sha256;                     // whole file; checked when chunk_bytes == 0
  uint64_t chunk_bytes = 0;               // 0: no chunk list
  std::vector<std::string> chunk_sha256;  // ceil(bytes / chunk_bytes) entries
};

// Checks every file's chunks (or whole-file sha256) on the worker pool. DataLoss naming the
// first file (in `files` order) whose content differs, with the byte range of the bad chunk.
[[nodiscard]] absl::Status VerifyDigests(const std::vector<DigestCheck>& files);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_ARTIFACT_HASH_H_
