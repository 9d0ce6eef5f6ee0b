// Model and text resolution shared by slq-server's in-process worker and slq-worker.
#ifndef SLQ_SERVER_MAIN_RESOLVERS_H_
#define SLQ_SERVER_MAIN_RESOLVERS_H_

#include <string>
#include <vector>

#include "server/worker/task_executor.h"

namespace slq {

class Metrics;

struct ResolverConfig {
  std::vector<std::string> allowed_roots;  // file:// model URIs and text paths
  std::string model_cache_dir;             // downloads (hf://, https://)
  std::string text_dir;                    // bundled texts
  std::string default_data = "wikitext2";
  Metrics* metrics = nullptr;  // slq_fetch_bytes_total; may be null
};

// Named texts: "tinystories" -> tinystories-valid-part1.txt, "wikitext2" ->
// wikitext-2-raw-test.txt, "debian-docs" -> debian-docs-val-part1.txt (in text_dir).
TaskExecutorOptions MakeExecutorOptions(const ResolverConfig& config);

// Checks a model URI at submit time: scheme known, file:// inside the allowed roots.
absl::Status ValidateModelUri(const ResolverConfig& config, const std::string& uri);

// Checks a calibration / evaluation text reference at submit time: empty (the default), a
// bundled name (present in text_dir when this process has one), or an absolute file:// path
// inside the allowed roots that exists (the rules the worker applies when it runs the job).
absl::Status ValidateDataRef(const ResolverConfig& config, const std::string& ref);

}  // namespace slq

#endif  // SLQ_SERVER_MAIN_RESOLVERS_H_
