// AllowedRoots: the folders that requests may name files in (the server's --allowed-roots), and
// the one containment check that every caller uses: LoadModel paths (server/inference/
// model_source), file:// model URIs (server/jobs/file_fetcher) and file:// texts
// (server/main/resolvers).
//
//   AllowedRoots roots({"/data/models", "/data/texts"});
//   SLQ_ASSIGN_OR_RETURN(std::filesystem::path dir,
//                        roots.Confine(uri_path, "model directory", {.check_entries = true}));
//
// Confine checks, in this order:
//   1. with reject_dotdot, any '..' segment: PermissionDenied ("give a direct path");
//   2. lexically, with no filesystem lookup: the absolute, normalised path must lie under a root,
//      as given or canonical. Otherwise PermissionDenied, the same answer whether or not the
//      path exists (no existence probe outside the roots);
//   3. the canonical path (symlinks resolved): NotFound when it does not exist (unless
//      allow_missing), PermissionDenied when it resolves outside every root;
//   4. with check_entries and a directory: every entry's target must resolve inside the roots
//      too (a symlinked file cannot smuggle a file in from elsewhere); a broken link is NotFound.
// Messages name `what`, the path and the roots.
#ifndef SLQ_SERVER_COMMON_ALLOWED_ROOTS_H_
#define SLQ_SERVER_COMMON_ALLOWED_ROOTS_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace slq {

class AllowedRoots {
 public:
  struct Options {
    bool reject_dotdot = false;  // refuse any '..' segment instead of normalising it away
    bool check_entries = false;  // for a directory, confine each entry's target too
    bool allow_missing = false;  // a missing path inside the roots is returned (weakly canonical)
  };

  AllowedRoots() = default;
  explicit AllowedRoots(const std::vector<std::string>& roots);

  bool empty() const { return given_.empty(); }
  // The roots as given, joined by ", ".
  std::string ToString() const;
  // True if `canonical` (symlinks already resolved) lies in a root.
  bool Contains(const std::filesystem::path& canonical) const;

  [[nodiscard]] absl::StatusOr<std::filesystem::path> Confine(const std::string& path, absl::string_view what,
                                                              const Options& options) const;

 private:
  std::vector<std::string> given_;
  std::vector<std::filesystem::path> canonical_;  // weakly canonical
  std::vector<std::filesystem::path> lexical_;    // absolute + normalised, and the canonical forms
};

}  // namespace slq

#endif  // SLQ_SERVER_COMMON_ALLOWED_ROOTS_H_
