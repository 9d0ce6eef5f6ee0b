#include "server/jobs/model_uri.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace slq {
namespace {

absl::Status Bad(absl::string_view uri, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("model URI '", uri, "': ", why));
}

bool IsRepoPart(absl::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 96) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool IsRevision(absl::string_view s) {
  if (s.empty() || s.size() > 128 || absl::StrContains(s, "..")) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != '/') {
      return false;
    }
  }
  return s.front() != '/' && s.back() != '/';
}

absl::StatusOr<ModelUri> ParseHf(absl::string_view uri, absl::string_view rest) {
  ModelUri u;
  u.scheme = ModelUri::Scheme::kHf;
  u.revision = "main";
  const size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    u.revision = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!IsRevision(u.revision)) {
      return Bad(uri, absl::StrCat("revision '", u.revision, "' must be letters, digits, '-', '_', '.', '/'"));
    }
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  if (parts.size() != 2 || !IsRepoPart(parts[0]) || !IsRepoPart(parts[1])) {
    return Bad(uri,
               "expected hf://org/name[@revision] with org and name made of letters, "
               "digits, '-', '_' and '.'");
  }
  u.repo = std::string(rest);
  return u;
}

}  // namespace

absl::StatusOr<ModelUri> ParseModelUri(absl::string_view uri) {
  const size_t sep = uri.find("://");
  if (uri.empty()) return absl::InvalidArgumentError("model URI is empty");
  if (sep == absl::string_view::npos) {
    return Bad(uri, "no scheme; use file:///path, https://host/path or hf://org/name");
  }
  const std::string scheme = absl::AsciiStrToLower(uri.substr(0, sep));
  const absl::string_view rest = uri.substr(sep + 3);
  absl::StatusOr<ModelUri> out;
  if (scheme == "hf") {
    out = ParseHf(uri, rest);
  } else if (scheme == "file") {
    if (rest.empty() || rest.front() != '/') {
      return Bad(uri, "file URIs need an absolute path: file:///abs/dir");
    }
    out = ModelUri{ModelUri::Scheme::kFile, std::string(rest), "", "", "", ""};
  } else if (scheme == "https" || scheme == "http") {
    const absl::string_view host = rest.substr(0, rest.find('/'));
    if (host.empty()) return Bad(uri, "the host is empty");
    if (absl::StrContains(rest, " ")) return Bad(uri, "URLs may not contain spaces");
    std::string url(uri);
    while (absl::EndsWith(url, "/")) url.pop_back();
    out = ModelUri{scheme == "https" ? ModelUri::Scheme::kHttps : ModelUri::Scheme::kHttp, "", url, "", "", ""};
  } else {
    return Bad(uri, absl::StrCat("unknown scheme '", scheme, "'; allowed: file, https, hf"));
  }
  if (out.ok()) out->original = std::string(uri);
  return out;
}

}  // namespace slq
