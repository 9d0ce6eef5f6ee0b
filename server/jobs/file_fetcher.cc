// file:// fetcher and the scheme dispatcher.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/common/allowed_roots.h"
#include "server/common/status_macros.h"
#include "server/jobs/fetcher.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

class FileFetcher final : public Fetcher {
 public:
  explicit FileFetcher(const FetcherOptions& options) : roots_(options.file_roots) {}

  absl::StatusOr<std::string> Fetch(const std::string& uri, const std::string& /*cache_dir*/,
                                    const FetchProgressFn& progress) override {
    SLQ_ASSIGN_OR_RETURN(ModelUri u, ParseModelUri(uri));
    if (u.scheme != ModelUri::Scheme::kFile) {
      return absl::InvalidArgumentError(absl::StrCat("'", uri, "' is not a file:// URI"));
    }
    // Confined before anything is looked up (server/common/allowed_roots.h): '..' refused, the
    // same answer outside the roots whether or not the path exists, symlinked folders and
    // files inside the model folder must resolve inside the roots too.
    SLQ_ASSIGN_OR_RETURN(const fs::path dir,
                         roots_.Confine(u.path, "model directory", {.reject_dotdot = true, .check_entries = true}));
    if (!fs::is_directory(dir)) {
      return absl::InvalidArgumentError(absl::StrCat("'", u.path, "' is not a directory"));
    }
    if (!fs::exists(dir / "config.json")) {
      return absl::NotFoundError(absl::StrCat("model directory '", u.path, "' has no config.json"));
    }
    uint64_t total = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const fs::path target = fs::canonical(e.path(), ec);
      if (!ec && fs::is_regular_file(target)) total += fs::file_size(target, ec);
    }
    if (progress) progress({"", total, total, total, total});
    return dir.string();
  }

 private:
  AllowedRoots roots_;
};

class DispatchFetcher final : public Fetcher {
 public:
  explicit DispatchFetcher(const FetcherOptions& o)
      : file_(MakeFileFetcher(o)), https_(MakeHttpsFetcher(o)), hf_(MakeHfFetcher(o)) {}

  absl::StatusOr<std::string> Fetch(const std::string& uri, const std::string& cache_dir,
                                    const FetchProgressFn& progress) override {
    SLQ_ASSIGN_OR_RETURN(ModelUri u, ParseModelUri(uri));
    switch (u.scheme) {
      case ModelUri::Scheme::kFile:
        return file_->Fetch(uri, cache_dir, progress);
      case ModelUri::Scheme::kHf:
        return hf_->Fetch(uri, cache_dir, progress);
      default:
        return https_->Fetch(uri, cache_dir, progress);
    }
  }

 private:
  std::unique_ptr<Fetcher> file_, https_, hf_;
};

}  // namespace

std::unique_ptr<Fetcher> MakeFileFetcher(const FetcherOptions& options) {
  return std::make_unique<FileFetcher>(options);
}

std::unique_ptr<Fetcher> MakeModelFetcher(const FetcherOptions& options) {
  return std::make_unique<DispatchFetcher>(options);
}

}  // namespace slq
