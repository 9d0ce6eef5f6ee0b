// file:// fetcher and the scheme dispatcher.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/status_macros.h"
#include "server/jobs/fetcher.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

bool IsUnder(const fs::path& p, const fs::path& root) {
  const std::string ps = p.string(), rs = root.string();
  return ps == rs || (ps.size() > rs.size() && ps.compare(0, rs.size(), rs) == 0 &&
                      (rs.back() == '/' || ps[rs.size()] == '/'));
}

class FileFetcher final : public Fetcher {
 public:
  explicit FileFetcher(const FetcherOptions& options) {
    for (const std::string& r : options.file_roots) {
      std::error_code ec;
      fs::path c = fs::canonical(r, ec);
      if (ec) {
        spdlog::warn("fetch: file root {} ignored: {}", r, ec.message());
        continue;
      }
      roots_.push_back(c);
      lexical_roots_.push_back(fs::absolute(r, ec).lexically_normal());
      lexical_roots_.push_back(c);
    }
  }

  absl::StatusOr<std::string> Fetch(const std::string& uri, const std::string& /*cache_dir*/,
                                    const FetchProgressFn& progress) override {
    SLQ_ASSIGN_OR_RETURN(ModelUri u, ParseModelUri(uri));
    if (u.scheme != ModelUri::Scheme::kFile) {
      return absl::InvalidArgumentError(absl::StrCat("'", uri, "' is not a file:// URI"));
    }
    for (absl::string_view seg : absl::StrSplit(u.path, '/')) {
      if (seg == "..") {
        return absl::PermissionDeniedError(
            absl::StrCat("model path '", u.path, "' contains '..'; give a direct path"));
      }
    }
    std::error_code ec;
    // Confined before anything is looked up: a path outside the roots gets the same answer
    // whether or not it exists (no existence probe).
    const fs::path lexical = fs::absolute(u.path, ec).lexically_normal();
    bool maybe_inside = false;
    for (const fs::path& r : lexical_roots_) maybe_inside = maybe_inside || IsUnder(lexical, r);
    if (!maybe_inside) return Outside(u.path);
    const fs::path dir = fs::canonical(u.path, ec);
    if (ec) return absl::NotFoundError(absl::StrCat("model directory '", u.path, "': ", ec.message()));
    SLQ_RETURN_IF_ERROR(CheckConfined(dir, u.path));
    if (!fs::is_directory(dir)) {
      return absl::InvalidArgumentError(absl::StrCat("'", u.path, "' is not a directory"));
    }
    if (!fs::exists(dir / "config.json")) {
      return absl::NotFoundError(absl::StrCat("model directory '", u.path, "' has no config.json"));
    }
    uint64_t total = 0;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      // A symlink inside the model dir must not lead out of the roots either.
      const fs::path target = fs::canonical(e.path(), ec);
      if (ec) return absl::NotFoundError(absl::StrCat("broken link ", e.path().string()));
      SLQ_RETURN_IF_ERROR(CheckConfined(target, e.path().string()));
      if (fs::is_regular_file(target)) total += fs::file_size(target, ec);
    }
    if (progress) progress({"", total, total, total, total});
    return dir.string();
  }

 private:
  absl::Status Outside(const std::string& shown) const {
    std::string roots;
    for (const fs::path& r : roots_) absl::StrAppend(&roots, roots.empty() ? "" : ", ", r.string());
    return absl::PermissionDeniedError(
        absl::StrCat("'", shown, "' is outside the allowed model roots [", roots, "]"));
  }

  absl::Status CheckConfined(const fs::path& p, const std::string& shown) const {
    for (const fs::path& r : roots_) {
      if (IsUnder(p, r)) return absl::OkStatus();
    }
    std::string roots;
    for (const fs::path& r : roots_) absl::StrAppend(&roots, roots.empty() ? "" : ", ", r.string());
    return absl::PermissionDeniedError(absl::StrCat(
        "'", shown, "' resolves to '", p.string(), "', outside the allowed model roots [", roots,
        "]"));
  }

  std::vector<fs::path> roots_;          // canonical
  std::vector<fs::path> lexical_roots_;  // as given (absolute, normalised) and canonical
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
