#include "server/common/allowed_roots.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace slq {
namespace fs = std::filesystem;

namespace {

// True if `p` equals `root` or lies below it (whole path components; both normalised).
bool IsUnder(const fs::path& p, const fs::path& root) {
  auto [ri, pi] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  // A trailing separator makes the root's last component empty.
  return ri == root.end() || (std::next(ri) == root.end() && ri->empty());
}

}  // namespace

AllowedRoots::AllowedRoots(const std::vector<std::string>& roots) {
  for (const std::string& r : roots) {
    if (r.empty()) continue;
    std::error_code ec;
    const fs::path lexical = fs::absolute(r, ec).lexically_normal();
    if (ec) continue;
    const fs::path canon = fs::weakly_canonical(lexical, ec);
    given_.push_back(r);
    canonical_.push_back(ec ? lexical : canon);
    lexical_.push_back(lexical);
    lexical_.push_back(canonical_.back());
  }
}

std::string AllowedRoots::ToString() const { return absl::StrJoin(given_, ", "); }

bool AllowedRoots::Contains(const fs::path& canonical) const {
  return std::any_of(canonical_.begin(), canonical_.end(), [&](const fs::path& r) { return IsUnder(canonical, r); });
}

absl::StatusOr<fs::path> AllowedRoots::Confine(const std::string& path, absl::string_view what,
                                               const Options& o) const {
  const auto outside = [&] {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " '", path, "' is outside the allowed roots [", ToString(), "]"));
  };
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " path is empty"));
  if (o.reject_dotdot) {
    for (const fs::path& seg : fs::path(path)) {
      if (seg == "..") {
        return absl::PermissionDeniedError(absl::StrCat(what, " '", path, "' contains '..'; give a direct path"));
      }
    }
  }
  std::error_code ec;
  const fs::path lexical = fs::absolute(path, ec).lexically_normal();
  if (ec || !std::any_of(lexical_.begin(), lexical_.end(), [&](const fs::path& r) { return IsUnder(lexical, r); })) {
    return outside();
  }
  fs::path canon = fs::canonical(lexical, ec);
  if (ec) {
    if (!o.allow_missing) return absl::NotFoundError(absl::StrCat(what, " '", path, "' not found"));
    canon = fs::weakly_canonical(lexical, ec);
    if (ec) return outside();
  }
  if (!Contains(canon)) {
    return absl::PermissionDeniedError(absl::StrCat(what, " '", path, "' resolves to '", canon.string(),
                                                    "', outside the allowed roots [", ToString(), "]"));
  }
  if (o.check_entries && fs::is_directory(canon, ec)) {
    for (const auto& e : fs::directory_iterator(canon, ec)) {
      std::error_code eec;
      const fs::path target = fs::canonical(e.path(), eec);
      if (eec) {
        return absl::NotFoundError(
            absl::StrCat(what, " '", path, "' holds a broken link '", e.path().filename().string(), "'"));
      }
      if (!Contains(target)) {
        return absl::PermissionDeniedError(absl::StrCat(what, " '", path, "' holds '", e.path().filename().string(),
                                                        "', which resolves outside the allowed roots"));
      }
    }
    if (ec) return absl::PermissionDeniedError(absl::StrCat(what, " '", path, "' cannot be listed: ", ec.message()));
  }
  return canon;
}

}  // namespace slq
