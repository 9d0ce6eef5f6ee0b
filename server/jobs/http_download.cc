#include "server/jobs/http_download.h"

#include <curl/curl.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Where the body of one request goes: a file (downloads) or a string (GETs). Error bodies
// (HTTP >= 400) are kept in `error_body` and never written to the file.
struct Sink {
  CURL* curl = nullptr;
  std::FILE* file = nullptr;
  std::string* memory = nullptr;
  uint64_t max_bytes = 0;
  uint64_t offset = 0;   // bytes already in the file before this request
  uint64_t written = 0;  // bytes written by this request
  uint64_t total = 0;    // expected full size, 0 if unknown
  bool checked = false;  // response code inspected
  bool error = false;
  bool restarted = false;  // the server ignored Range: file truncated
  std::string error_body;
  const HttpOptions* options = nullptr;
  const DownloadProgressFn* progress = nullptr;
};

size_t WriteCallback(char* data, size_t size, size_t nmemb, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t n = size * nmemb;
  if (!s->checked) {
    long code = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
    s->checked = true;
    s->error = code >= 400;
    if (!s->error && s->file != nullptr && s->offset > 0 && code == 200) {
      // Range ignored: start over from byte 0.
      if (std::fseek(s->file, 0, SEEK_SET) != 0 || ::ftruncate(fileno(s->file), 0) != 0) return 0;
      s->offset = 0;
      s->restarted = true;
    }
  }
  if (s->error) {
    if (s->error_body.size() < 512) s->error_body.append(data, std::min<size_t>(n, 512));
    return n;
  }
  if (s->file != nullptr) {
    if (std::fwrite(data, 1, n, s->file) != n) return 0;
  } else {
    if (s->written + n > s->max_bytes) return 0;
    s->memory->append(data, n);
  }
  s->written += n;
  if (s->options->on_bytes) s->options->on_bytes(n);
  if (s->progress != nullptr && *s->progress) (*s->progress)(s->offset + s->written, s->total);
  return n;
}

absl::Status StatusForCode(long code, const std::string& url, const std::string& body) {
  std::string msg = absl::StrCat("HTTP ", code, " for ", url);
  if (!body.empty()) absl::StrAppend(&msg, ": ", body.substr(0, 200));
  if (code == 404) return absl::NotFoundError(msg);
  if (code == 401) {
    return absl::UnauthenticatedError(msg + " (set HF_TOKEN for gated or private models)");
  }
  if (code == 403) return absl::PermissionDeniedError(msg);
  if (code == 429 || code >= 500) return absl::UnavailableError(msg);
  return absl::FailedPreconditionError(msg);
}

// Runs one request into `sink`. Returns the HTTP status as a Status.
absl::Status Perform(const std::string& url, uint64_t range_from, const HttpOptions& options, Sink* sink) {
  GlobalInit();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::unique_ptr<CURL, void (*)(CURL*)> guard(curl, curl_easy_cleanup);
  sink->curl = curl;
  sink->options = &options;
  curl_slist* headers = nullptr;
  if (!options.bearer_token.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + options.bearer_token).c_str());
  }
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> hguard(headers, curl_slist_free_all);
  const std::string range = absl::StrCat(range_from, "-");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);  // hub files redirect to a CDN
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "slq/0.1");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options.stall_timeout_s);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteCallback);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
  if (range_from > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 400) return StatusForCode(code, url, sink->error_body);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("fetching ", url, ": ", curl_easy_strerror(rc)));
  }
  return absl::OkStatus();
}

absl::Status VerifyFile(const std::string& path, const DownloadSpec& spec) {
  SLQ_ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  if (spec.size.has_value() && size != *spec.size) {
    return absl::DataLossError(absl::StrCat(spec.url, ": got ", size, " bytes, expected ", *spec.size));
  }
  if (!spec.sha256.empty()) {
    SLQ_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    if (sha != spec.sha256) {
      return absl::DataLossError(
          absl::StrCat(spec.url, ": sha256 ", sha, " does not match the ", "expected ", spec.sha256));
    }
  }
  return absl::OkStatus();
}

// One attempt: resume <dest>.part from its current size.
absl::Status DownloadOnce(const DownloadSpec& spec, const HttpOptions& options, const DownloadProgressFn& progress) {
  const std::string part = spec.dest + ".part";
  std::error_code ec;
  uint64_t offset = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
  if (spec.size.has_value() && offset > *spec.size) {
    fs::remove(part, ec);
    offset = 0;
  }
  if (!spec.size.has_value() || offset < *spec.size) {
    std::FILE* f = std::fopen(part.c_str(), "ab");
    if (f == nullptr) return absl::InternalError(absl::StrCat("cannot write ", part));
    Sink sink;
    sink.file = f;
    sink.offset = offset;
    sink.total = spec.size.value_or(0);
    sink.progress = &progress;
    if (offset > 0) spdlog::info("fetch: resuming {} at byte {}", spec.url, offset);
    absl::Status s = Perform(spec.url, offset, options, &sink);
    const bool flushed = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    std::fclose(f);
    if (s.ok() && !flushed) s = absl::InternalError(absl::StrCat("cannot flush ", part));
    if (!s.ok()) return s;
  }
  absl::Status v = VerifyFile(part, spec);
  if (!v.ok()) {
    fs::remove(part, ec);  // a corrupt partial file must not be resumed
    return v;
  }
  if (::rename(part.c_str(), spec.dest.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", part, " to ", spec.dest));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DownloadFile(const DownloadSpec& spec, const HttpOptions& options, const DownloadProgressFn& progress) {
  std::error_code ec;
  fs::create_directories(fs::path(spec.dest).parent_path(), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create the cache dir for ", spec.dest, ": ", ec.message()));
  }
  if (fs::exists(spec.dest, ec)) {
    if (VerifyFile(spec.dest, spec).ok()) {
      if (progress) progress(fs::file_size(spec.dest, ec), spec.size.value_or(0));
      return absl::OkStatus();  // cache hit
    }
    spdlog::warn("fetch: cached {} does not match; downloading again", spec.dest);
    fs::remove(spec.dest, ec);
  }
  absl::Status s;
  for (int attempt = 1; attempt <= std::max(1, options.max_attempts); ++attempt) {
    s = DownloadOnce(spec, options, progress);
    if (s.ok() || !absl::IsUnavailable(s)) return s;
    spdlog::warn("fetch: attempt {} of {} failed: {}", attempt, spec.url, s.ToString());
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
  return s;
}

absl::StatusOr<std::string> HttpGet(const std::string& url, const HttpOptions& options, uint64_t max_bytes) {
  std::string body;
  Sink sink;
  sink.memory = &body;
  sink.max_bytes = max_bytes;
  absl::Status s = Perform(url, 0, options, &sink);
  if (!s.ok()) return s;
  return body;
}

}  // namespace slq
