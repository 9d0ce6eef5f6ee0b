// HTTP(S) downloads over libcurl: small GETs (API JSON) and resumable, verified file
// downloads into a cache.
//
//   HttpOptions http{.bearer_token = token, .on_bytes = [&](uint64_t n) { counter += n; }};
//   SLQ_RETURN_IF_ERROR(DownloadFile({.url = u, .dest = "/cache/x/model.safetensors",
//                                     .size = 2624256, .sha256 = "187d..."}, http, nullptr));
//
// DownloadFile writes to "<dest>.part", resumes an existing partial file with a Range request
// (restarting if the server ignores it), checks size and sha256 when known, then renames to
// <dest>. A complete, verified <dest> is a cache hit (no request). Transient failures
// (connection errors, 5xx) are retried up to 3 times, resuming each time.
// Errors: NotFound (404, message holds the URL), Unauthenticated (401) / PermissionDenied
// (403), DataLoss (size or sha256 mismatch; the partial file is deleted), Unavailable
// (network, 5xx). Thread-safe (each call uses its own curl handle).
#ifndef SLQ_SERVER_JOBS_HTTP_DOWNLOAD_H_
#define SLQ_SERVER_JOBS_HTTP_DOWNLOAD_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace slq {

struct HttpOptions {
  std::string bearer_token;                // sent as "Authorization: Bearer <token>" when non-empty
  std::function<void(uint64_t)> on_bytes;  // every received body chunk (metrics counter)
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;  // abort when below 1 KiB/s for this long
  int max_attempts = 3;
};

struct DownloadSpec {
  std::string url;
  std::string dest;
  std::optional<uint64_t> size;  // expected bytes, when known
  std::string sha256;            // expected lower-case hex, when known
};

// (bytes of this file done, total bytes or 0 if unknown)
using DownloadProgressFn = std::function<void(uint64_t done, uint64_t total)>;

[[nodiscard]] absl::Status DownloadFile(const DownloadSpec& spec, const HttpOptions& options,
                                        const DownloadProgressFn& progress);

// GETs a small document (at most `max_bytes`) into memory.
[[nodiscard]] absl::StatusOr<std::string> HttpGet(const std::string& url, const HttpOptions& options,
                                                  uint64_t max_bytes = 64 << 20);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_HTTP_DOWNLOAD_H_
