// Model URIs accepted by the job service:
//   file:///abs/path/to/model_dir      a local directory (confined to configured roots)
//   https://host/path/to/model_dir     a directory served over HTTPS (config.json, weights, ...)
//   hf://org/name[@revision]           a Hugging Face hub repository (revision default "main")
// http:// parses too; fetchers refuse it unless insecure HTTP is explicitly allowed.
#ifndef SLQ_SERVER_JOBS_MODEL_URI_H_
#define SLQ_SERVER_JOBS_MODEL_URI_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace slq {

struct ModelUri {
  enum class Scheme { kFile, kHttp, kHttps, kHf };
  Scheme scheme = Scheme::kFile;
  std::string path;      // file: absolute path as given
  std::string url;       // http(s): the URL without trailing '/'
  std::string repo;      // hf: "org/name"
  std::string revision;  // hf: branch, tag or commit
  std::string original;  // the URI as given
};

// InvalidArgument naming the URI and what is wrong (missing or unknown scheme, relative file
// path, empty host, malformed hf repo or revision).
[[nodiscard]] absl::StatusOr<ModelUri> ParseModelUri(absl::string_view uri);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_MODEL_URI_H_
