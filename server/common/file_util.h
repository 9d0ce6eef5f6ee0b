// Whole-file reads and crash-safe writes.
#ifndef SLQ_SERVER_COMMON_FILE_UTIL_H_
#define SLQ_SERVER_COMMON_FILE_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace slq {

// Reads the whole file. NotFound if it does not exist.
[[nodiscard]] absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `data` to `path` via a temp file in the same directory, fsync, rename, fsync(dir):
// after a crash the file holds either the old or the new content, never a mix.
[[nodiscard]] absl::Status WriteFileAtomic(const std::string& path, std::string_view data);

// fsyncs a file or directory by path.
[[nodiscard]] absl::Status FsyncPath(const std::string& path);

// Size of a file in bytes.
[[nodiscard]] absl::StatusOr<uint64_t> FileSize(const std::string& path);

}  // namespace slq

#endif  // SLQ_SERVER_COMMON_FILE_UTIL_H_
