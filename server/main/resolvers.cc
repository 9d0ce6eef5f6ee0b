#include "server/main/resolvers.h"

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/allowed_roots.h"
#include "server/common/status_macros.h"
#include "server/jobs/fetcher.h"
#include "server/jobs/model_uri.h"
#include "server/metrics/metrics.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::string>& NamedTexts() {
  static const std::map<std::string, std::string> kTexts = {{"tinystories", "tinystories-valid-part1.txt"},
                                                            {"wikitext2", "wikitext-2-raw-test.txt"},
                                                            {"debian-docs", "debian-docs-val-part1.txt"}};
  return kTexts;
}

absl::StatusOr<std::string> ResolveText(const ResolverConfig& cfg, std::string ref) {
  if (ref.empty()) ref = cfg.default_data;
  if (auto it = NamedTexts().find(ref); it != NamedTexts().end()) {
    if (cfg.text_dir.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("bundled text '", ref, "' needs the server's --text-dir"));
    }
    fs::path p = fs::path(cfg.text_dir) / it->second;
    if (!fs::exists(p)) return absl::NotFoundError(absl::StrCat("bundled text ", p.string(), " is missing"));
    return p.string();
  }
  std::string path = ref.rfind("file://", 0) == 0 ? ref.substr(7) : ref;
  if (path.empty() || path[0] != '/') {
    std::vector<std::string> names;
    for (const auto& [k, v] : NamedTexts()) names.push_back(k);
    return absl::InvalidArgumentError(absl::StrCat("data reference '", ref, "' is neither a bundled text (",
                                                   absl::StrJoin(names, ", "), ") nor an absolute file:// path"));
  }
  // Confined before the lookup (server/common/allowed_roots.h): '..' refused, and outside the
  // roots an existing and a missing file answer alike.
  SLQ_ASSIGN_OR_RETURN(fs::path canon,
                       AllowedRoots(cfg.allowed_roots).Confine(path, "data file", {.reject_dotdot = true}));
  return canon.string();
}

FetcherOptions FetchOptions(const ResolverConfig& cfg) {
  FetcherOptions o;
  o.file_roots = cfg.allowed_roots;
  Metrics* m = cfg.metrics;
  if (m) o.on_bytes = [m](uint64_t n) { m->fetch_bytes().Increment(static_cast<double>(n)); };
  return o;
}

}  // namespace

TaskExecutorOptions MakeExecutorOptions(const ResolverConfig& cfg) {
  TaskExecutorOptions o;
  auto fetcher = std::shared_ptr<Fetcher>(MakeModelFetcher(FetchOptions(cfg)));
  o.resolve_model = [cfg, fetcher](const std::string& uri) -> absl::StatusOr<std::string> {
    return fetcher->Fetch(uri, cfg.model_cache_dir, nullptr);
  };
  o.resolve_data = [cfg](const std::string& ref, const std::string&) { return ResolveText(cfg, ref); };
  if (!cfg.model_cache_dir.empty()) o.profile_cache_dir = (fs::path(cfg.model_cache_dir) / "profiles").string();
  return o;
}

absl::Status ValidateDataRef(const ResolverConfig& cfg, const std::string& ref) {
  if (ref.empty()) return absl::OkStatus();
  // Workers may hold the bundled texts when this server does not.
  if (NamedTexts().count(ref) && cfg.text_dir.empty()) return absl::OkStatus();
  return ResolveText(cfg, ref).status();
}

absl::Status ValidateModelUri(const ResolverConfig& cfg, const std::string& uri) {
  auto parsed = ParseModelUri(uri);
  if (!parsed.ok()) return parsed.status();
  if (parsed->scheme != ModelUri::Scheme::kFile) return absl::OkStatus();  // checked when fetched
  // file:// is checked now: the file fetcher only validates (no copy), so this is cheap.
  return MakeFileFetcher(FetchOptions(cfg))->Fetch(uri, cfg.model_cache_dir, nullptr).status();
}

}  // namespace slq
