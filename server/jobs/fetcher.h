// Model fetchers: turn a model URI into a local directory holding config.json, the
// safetensors weights (single file or shards + index) and the tokenizer files.
//
//   FetcherOptions opts{.file_roots = {"/models"}, .on_bytes = [&](uint64_t n) { ... }};
//   std::unique_ptr<Fetcher> f = MakeModelFetcher(opts);
//   SLQ_ASSIGN_OR_RETURN(std::string dir, f->Fetch("hf://org/name@main", "/var/cache/slq",
//                                                   [](const FetchProgress& p) { ... }));
//
// file://  returns the canonical directory itself (no copy) after checking that it, and every
//          file in it, resolves (symlinks included) inside one of `file_roots`; ".." segments
//          are refused outright.
// https:// fetches <url>/config.json, <url>/model.safetensors.index.json (then its shards) or
//          <url>/model.safetensors, and the optional tokenizer files, into
//          <cache>/https/<sha256(url)[:16]>/.
// hf://    lists {endpoint}/api/models/{repo}/revision/{rev}?blobs=true (sizes, lfs.sha256),
//          then downloads {endpoint}/{repo}/resolve/{commit}/{file} (commit: the listing's
//          "sha", pinning a moving branch) for config.json, tokenizer files, *.safetensors and
//          the index into <cache>/hf/{repo}/{commit}/. The endpoint is
//          HF_ENDPOINT or https://huggingface.co; HF_TOKEN is sent as a Bearer token.
// Downloads resume partial files, verify sizes and sha256 when the source gives them, and
// reuse complete cached files. Thread-safe; concurrent fetches of the same URI into the same
// cache are not coordinated (the job scheduler runs one fetch task per model).
#ifndef SLQ_SERVER_JOBS_FETCHER_H_
#define SLQ_SERVER_JOBS_FETCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/jobs/model_uri.h"

namespace slq {

struct FetchProgress {
  std::string file;         // file being fetched
  uint64_t file_done = 0;   // bytes of it present
  uint64_t file_total = 0;  // its size, 0 if unknown
  uint64_t done = 0;        // bytes of all files present (completed files + file_done)
  uint64_t total = 0;       // sum of known sizes, 0 if unknown
};
using FetchProgressFn = std::function<void(const FetchProgress&)>;

struct FetcherOptions {
  std::vector<std::string> file_roots;     // directories file:// may read; empty: file:// refused
  std::string hf_endpoint;                 // empty: $HF_ENDPOINT, else https://huggingface.co
  std::string hf_token;                    // empty: $HF_TOKEN
  bool allow_insecure_http = false;        // accept http:// model URIs (tests, private mirrors)
  std::function<void(uint64_t)> on_bytes;  // bytes received over the network (metrics)
};

class Fetcher {
 public:
  virtual ~Fetcher() = default;
  // Returns the local model directory. Errors: InvalidArgument (bad URI, scheme not handled
  // by this fetcher), PermissionDenied (file:// outside the roots), NotFound (missing model
  // or file; the message names the URL/path), DataLoss (size/sha256 mismatch), Unavailable.
  [[nodiscard]] virtual absl::StatusOr<std::string> Fetch(const std::string& uri, const std::string& cache_dir,
                                                          const FetchProgressFn& progress) = 0;
};

std::unique_ptr<Fetcher> MakeFileFetcher(const FetcherOptions& options);
std::unique_ptr<Fetcher> MakeHttpsFetcher(const FetcherOptions& options);
std::unique_ptr<Fetcher> MakeHfFetcher(const FetcherOptions& options);
// Dispatches on the URI scheme to the three above.
std::unique_ptr<Fetcher> MakeModelFetcher(const FetcherOptions& options);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_FETCHER_H_
