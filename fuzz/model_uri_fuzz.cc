// Fuzz target: the model URI parser (slq::ParseModelUri, server/jobs/model_uri.cc). Checks the
// parser's promises on every accepted URI: file paths are absolute, hf repos are "org/name"
// with a revision, http(s) URLs keep their scheme and lose trailing slashes.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "server/jobs/model_uri.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view uri(reinterpret_cast<const char*>(data), size);
  auto u = slq::ParseModelUri(uri);
  if (!u.ok()) return 0;
  if (u->original != std::string(uri)) __builtin_trap();
  switch (u->scheme) {
    case slq::ModelUri::Scheme::kFile:
      if (u->path.empty() || u->path.front() != '/') __builtin_trap();
      break;
    case slq::ModelUri::Scheme::kHf:
      if (u->repo.find('/') == std::string::npos || u->revision.empty()) __builtin_trap();
      if (u->revision.find("..") != std::string::npos) __builtin_trap();
      break;
    case slq::ModelUri::Scheme::kHttp:
    case slq::ModelUri::Scheme::kHttps:
      if (u->url.empty() || u->url.back() == '/') __builtin_trap();
      break;
  }
  return 0;
}
