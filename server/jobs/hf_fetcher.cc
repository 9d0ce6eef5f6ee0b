// hf:// and https:// fetchers (downloads through http_download.h).
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/jobs/fetcher.h"
#include "server/jobs/http_download.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

struct RemoteFile {
  std::string name;
  std::string url;
  std::optional<uint64_t> size;
  std::string sha256;
};

// Files a quantization job needs from a model repository (top level only).
bool Wanted(const std::string& name) {
  if (absl::StrContains(name, "/")) return false;
  static const char* const kNames[] = {"config.json",
                                       "generation_config.json",
                                       "tokenizer.json",
                                       "tokenizer_config.json",
                                       "special_tokens_map.json",
                                       "tokenizer.model",
                                       "vocab.json",
                                       "merges.txt",
                                       "model.safetensors.index.json"};
  for (const char* n : kNames) {
    if (name == n) return true;
  }
  return absl::EndsWith(name, ".safetensors");
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Downloads every file into `dest`, reporting aggregate progress.
absl::Status DownloadAll(const std::vector<RemoteFile>& files, const std::string& dest, const HttpOptions& http,
                         const FetchProgressFn& progress) {
  uint64_t total = 0, done = 0;
  for (const RemoteFile& f : files) total += f.size.value_or(0);
  for (const RemoteFile& f : files) {
    DownloadProgressFn per_file;
    if (progress) {
      per_file = [&](uint64_t file_done, uint64_t file_total) {
        progress({f.name, file_done, file_total, done + file_done, total});
      };
    }
    SLQ_RETURN_IF_ERROR(DownloadFile({f.url, dest + "/" + f.name, f.size, f.sha256}, http, per_file));
    std::error_code ec;
    done += fs::file_size(dest + "/" + f.name, ec);
  }
  return absl::OkStatus();
}

HttpOptions MakeHttp(const FetcherOptions& o, std::string token) {
  HttpOptions h;
  h.bearer_token = std::move(token);
  h.on_bytes = o.on_bytes;
  return h;
}

absl::Status CheckComplete(const std::vector<RemoteFile>& files, const std::string& where) {
  bool config = false, weights = false;
  for (const RemoteFile& f : files) {
    config = config || f.name == "config.json";
    weights = weights || absl::EndsWith(f.name, ".safetensors");
  }
  if (!config) return absl::NotFoundError(absl::StrCat(where, " has no config.json"));
  if (!weights) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " has no *.safetensors weights (only safetensors are supported)"));
  }
  return absl::OkStatus();
}

class HfFetcher final : public Fetcher {
 public:
  explicit HfFetcher(const FetcherOptions& o) : options_(o) {
    endpoint_ = !o.hf_endpoint.empty() ? o.hf_endpoint : Env("HF_ENDPOINT");
    if (endpoint_.empty()) endpoint_ = "https://huggingface.co";
    while (absl::EndsWith(endpoint_, "/")) endpoint_.pop_back();
    token_ = !o.hf_token.empty() ? o.hf_token : Env("HF_TOKEN");
  }

  absl::StatusOr<std::string> Fetch(const std::string& uri, const std::string& cache_dir,
                                    const FetchProgressFn& progress) override {
    SLQ_ASSIGN_OR_RETURN(ModelUri u, ParseModelUri(uri));
    if (u.scheme != ModelUri::Scheme::kHf) {
      return absl::InvalidArgumentError(absl::StrCat("'", uri, "' is not an hf:// URI"));
    }
    const HttpOptions http = MakeHttp(options_, token_);
    const std::string api = absl::StrCat(endpoint_, "/api/models/", u.repo, "/revision/", u.revision, "?blobs=true");
    auto body = HttpGet(api, http);
    if (absl::IsNotFound(body.status())) {
      return absl::NotFoundError(
          absl::StrCat("model ", u.repo, " at revision '", u.revision, "' not found (", api, ")"));
    }
    if (!body.ok()) return body.status();
    std::string commit;
    SLQ_ASSIGN_OR_RETURN(std::vector<RemoteFile> files, ParseListing(*body, u, api, &commit));
    SLQ_RETURN_IF_ERROR(CheckComplete(files, absl::StrCat("hf repo ", u.repo, "@", u.revision)));
    // Files are resolved at the listed commit and cached per commit, so a branch that moves
    // during or between fetches never mixes files of two commits.
    const std::string dest = absl::StrCat(cache_dir, "/hf/", u.repo, "/", commit);
    spdlog::info("fetch: {} -> {} ({} files)", uri, dest, files.size());
    SLQ_RETURN_IF_ERROR(DownloadAll(files, dest, http, progress));
    return dest;
  }

 private:
  // Parses the listing; *commit is its "sha" when it is a plain hex id, else the revision.
  absl::StatusOr<std::vector<RemoteFile>> ParseListing(const std::string& body, const ModelUri& u,
                                                       const std::string& api, std::string* commit) const {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("siblings") || !j["siblings"].is_array()) {
      return absl::UnavailableError(absl::StrCat(api, " did not return a model listing"));
    }
    *commit = u.revision;
    if (j.contains("sha") && j["sha"].is_string()) {
      const std::string sha = j["sha"].get<std::string>();
      if (!sha.empty() && sha.size() <= 64 && sha.find_first_not_of("0123456789abcdef") == std::string::npos) {
        *commit = sha;
      }
    }
    std::vector<RemoteFile> files;
    for (const auto& s : j["siblings"]) {
      if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) continue;
      RemoteFile f;
      f.name = s["rfilename"].get<std::string>();
      if (!Wanted(f.name)) continue;
      f.url = absl::StrCat(endpoint_, "/", u.repo, "/resolve/", *commit, "/", f.name);
      if (s.contains("size") && s["size"].is_number_unsigned()) f.size = s["size"].get<uint64_t>();
      if (s.contains("lfs") && s["lfs"].is_object()) {
        const auto& lfs = s["lfs"];
        if (lfs.contains("sha256") && lfs["sha256"].is_string()) {
          f.sha256 = lfs["sha256"].get<std::string>();
        }
        if (lfs.contains("size") && lfs["size"].is_number_unsigned()) {
          f.size = lfs["size"].get<uint64_t>();
        }
      }
      files.push_back(std::move(f));
    }
    return files;
  }

  FetcherOptions options_;
  std::string endpoint_;
  std::string token_;
};

class HttpsFetcher final : public Fetcher {
 public:
  explicit HttpsFetcher(const FetcherOptions& o) : options_(o) {}

  absl::StatusOr<std::string> Fetch(const std::string& uri, const std::string& cache_dir,
                                    const FetchProgressFn& progress) override {
    SLQ_ASSIGN_OR_RETURN(ModelUri u, ParseModelUri(uri));
    if (u.scheme == ModelUri::Scheme::kHttp && !options_.allow_insecure_http) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", uri, "' uses plain http; use https:// (insecure http is disabled)"));
    }
    if (u.scheme != ModelUri::Scheme::kHttps && u.scheme != ModelUri::Scheme::kHttp) {
      return absl::InvalidArgumentError(absl::StrCat("'", uri, "' is not an https:// URI"));
    }
    const HttpOptions http = MakeHttp(options_, "");
    const std::string dest = absl::StrCat(cache_dir, "/https/", Sha256Hex(u.url).substr(0, 16));
    std::vector<RemoteFile> files;
    auto index = HttpGet(u.url + "/model.safetensors.index.json", http);
    if (index.ok()) {
      SLQ_ASSIGN_OR_RETURN(files, ShardsFromIndex(*index, u.url));
    } else if (absl::IsNotFound(index.status())) {
      files.push_back({"model.safetensors", u.url + "/model.safetensors", {}, ""});
    } else {
      return index.status();
    }
    files.insert(files.begin(), {"config.json", u.url + "/config.json", {}, ""});
    spdlog::info("fetch: {} -> {}", uri, dest);
    SLQ_RETURN_IF_ERROR(DownloadAll(files, dest, http, progress));
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                             "generation_config.json", "tokenizer.model"}) {
      absl::Status s = DownloadFile({u.url + "/" + name, dest + "/" + name, {}, ""}, http, nullptr);
      if (!s.ok() && !absl::IsNotFound(s)) return s;  // optional files may be absent
    }
    return dest;
  }

 private:
  static absl::StatusOr<std::vector<RemoteFile>> ShardsFromIndex(const std::string& text, const std::string& base) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      return absl::FailedPreconditionError(absl::StrCat(base, "/model.safetensors.index.json has no weight_map"));
    }
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : j["weight_map"].items()) {
      if (!shard.is_string() || !Wanted(shard.get<std::string>())) {
        return absl::FailedPreconditionError(absl::StrCat("index maps ", tensor, " to an invalid shard name"));
      }
      shards.insert(shard.get<std::string>());
    }
    std::vector<RemoteFile> files{
        {"model.safetensors.index.json", base + "/model.safetensors.index.json", text.size(), ""}};
    for (const std::string& s : shards) files.push_back({s, base + "/" + s, {}, ""});
    return files;
  }

  FetcherOptions options_;
};

}  // namespace

std::unique_ptr<Fetcher> MakeHfFetcher(const FetcherOptions& options) { return std::make_unique<HfFetcher>(options); }

std::unique_ptr<Fetcher> MakeHttpsFetcher(const FetcherOptions& options) {
  return std::make_unique<HttpsFetcher>(options);
}

}  // namespace slq
