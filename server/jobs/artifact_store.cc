#include "server/jobs/artifact_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

namespace fs = std::filesystem;

bool IsArtifactId(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

absl::Status CheckId(const std::string& id) {
  if (IsArtifactId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("artifact id '", id, "' is not a lower-case sha256 hex digest"));
}

bool IsPlainName(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos && n.find('\0') == std::string::npos;
}

// Job ids become file names: keep them to [A-Za-z0-9_-].
absl::Status CheckJobId(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 128;
  for (char c : id) ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("job id '", id, "' may only hold letters, digits, '-' and '_'"));
}

absl::StatusOr<nlohmann::json> ReadManifest(const std::string& dir) {
  const std::string path = dir + "/" + kArtifactManifestName;
  SLQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json m = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object() || !m.contains("files") || !m["files"].is_object()) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a JSON object with a \"files\" object"));
  }
  return m;
}

int64_t TreeBytes(const fs::path& p) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::end(it); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

class FileReader final : public ArtifactReader {
 public:
  FileReader(std::FILE* f, uint64_t size) : f_(f), size_(size) {}
  ~FileReader() override { std::fclose(f_); }
  uint64_t size() const override { return size_; }
  absl::StatusOr<std::string> Read(size_t max_bytes) override {
    std::string buf(max_bytes, '\0');
    size_t n = std::fread(buf.data(), 1, max_bytes, f_);
    if (n < max_bytes && std::ferror(f_)) return absl::InternalError("artifact read failed");
    buf.resize(n);
    return buf;
  }
  absl::Status Seek(uint64_t offset) override {
    if (offset > size_) {
      return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is beyond the file size ", size_));
    }
    if (std::fseek(f_, static_cast<long>(offset), SEEK_SET) != 0) {
      return absl::InternalError("artifact seek failed");
    }
    return absl::OkStatus();
  }

 private:
  std::FILE* f_;
  uint64_t size_;
};

}  // namespace

absl::StatusOr<std::vector<ArtifactFile>> VerifyArtifactDir(const std::string& dir) {
  SLQ_ASSIGN_OR_RETURN(nlohmann::json m, ReadManifest(dir));
  std::vector<ArtifactFile> files;
  std::set<std::string> listed;
  for (auto& [name, f] : m["files"].items()) {
    if (!IsPlainName(name) || name == kArtifactManifestName) {
      return absl::FailedPreconditionError(
          absl::StrCat("manifest of ", dir, " lists an invalid file name '", name, "'"));
    }
    if (!f.is_object() || !f.contains("sha256") || !f["sha256"].is_string() || !f.contains("bytes") ||
        !f["bytes"].is_number_unsigned()) {
      return absl::FailedPreconditionError(
          absl::StrCat("manifest entry for '", name, "' needs {\"sha256\": hex, \"bytes\": n}"));
    }
    ArtifactFile af{name, f["bytes"].get<uint64_t>(), f["sha256"].get<std::string>()};
    const std::string path = dir + "/" + name;
    SLQ_ASSIGN_OR_RETURN(uint64_t bytes, FileSize(path));
    if (bytes != af.bytes) {
      return absl::DataLossError(
          absl::StrCat("artifact file ", path, " has ", bytes, " bytes, the manifest says ", af.bytes));
    }
    SLQ_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    if (sha != af.sha256) {
      return absl::DataLossError(
          absl::StrCat("artifact file ", path, " has sha256 ", sha, ", the manifest says ", af.sha256));
    }
    listed.insert(name);
    files.push_back(std::move(af));
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == kArtifactManifestName) continue;
    if (!e.is_regular_file() || !listed.count(name)) {
      return absl::FailedPreconditionError(
          absl::StrCat("artifact dir ", dir, " holds '", name, "', which the manifest does not list"));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  return files;
}

absl::StatusOr<std::unique_ptr<LocalArtifactStore>> LocalArtifactStore::Open(const std::string& root, Clock* clock) {
  std::error_code ec;
  for (const char* sub : {"objects", "tmp"}) {
    fs::create_directories(fs::path(root) / sub, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create artifact store dir ", root, "/", sub, ": ", ec.message()));
    }
  }
  return std::unique_ptr<LocalArtifactStore>(
      new LocalArtifactStore(fs::canonical(root).string(), clock ? clock : RealClock()));
}

absl::StatusOr<StagedArtifact> LocalArtifactStore::BeginStaging(const std::string& job_id) {
  SLQ_RETURN_IF_ERROR(CheckJobId(job_id));
  StagedArtifact st;
  st.job_id = job_id;
  // One container per job, so that two schedulers staging the same job (two servers on one
  // job store) get the same one, and a scheduler that crashed before recording it reuses it.
  st.container = absl::StrCat(root_, "/tmp/", job_id, ".staging");
  st.dir = st.container + "/artifact";
  std::error_code ec;
  const bool created = fs::create_directory(st.container, ec);
  if (ec || (!created && !fs::is_directory(st.container, ec))) {
    return absl::InternalError(absl::StrCat("cannot create staging dir ", st.container, ": ",
                                            ec ? ec.message() : "exists and is not a directory"));
  }
  spdlog::debug("job {}: staging artifact in {}", job_id, st.container);
  return st;
}

absl::Status LocalArtifactStore::CheckStaged(const StagedArtifact& st) const {
  const std::string prefix = root_ + "/tmp/" + st.job_id + ".";
  if (st.container.rfind(prefix, 0) != 0 || !IsPlainName(st.container.substr(root_.size() + 5)) ||
      st.dir != st.container + "/artifact") {
    return absl::InvalidArgumentError(
        absl::StrCat("'", st.container, "' is not a staging container of this store for job ", st.job_id));
  }
  return absl::OkStatus();
}

absl::StatusOr<Artifact> LocalArtifactStore::Publish(const StagedArtifact& st) {
  SLQ_RETURN_IF_ERROR(CheckStaged(st));
  SLQ_ASSIGN_OR_RETURN(std::vector<ArtifactFile> files, VerifyArtifactDir(st.dir));
  const std::string manifest_path = st.dir + "/" + kArtifactManifestName;
  SLQ_ASSIGN_OR_RETURN(std::string manifest, ReadFile(manifest_path));
  Artifact a;
  a.id = Sha256Hex(manifest);
  a.job_id = st.job_id;
  a.path = absl::StrCat(root_, "/objects/", a.id);
  a.size = static_cast<int64_t>(manifest.size());
  for (const ArtifactFile& f : files) {
    a.size += static_cast<int64_t>(f.bytes);
    SLQ_RETURN_IF_ERROR(FsyncPath(st.dir + "/" + f.name));
  }
  SLQ_RETURN_IF_ERROR(FsyncPath(manifest_path));
  SLQ_RETURN_IF_ERROR(FsyncPath(st.dir));
  nlohmann::json m = nlohmann::json::parse(manifest, nullptr, false);
  if (m.contains("certificate")) a.certificate_json = m["certificate"].dump();
  a.created = clock_->Now();
  if (::rename(st.dir.c_str(), a.path.c_str()) != 0) {
    if (errno != EEXIST && errno != ENOTEMPTY) {
      return absl::InternalError(absl::StrCat("cannot rename ", st.dir, " to ", a.path, ": ", std::strerror(errno)));
    }
    spdlog::info("job {}: artifact {} already published; dropping the copy", st.job_id, a.id);
  }
  SLQ_RETURN_IF_ERROR(FsyncPath(root_ + "/objects"));
  std::error_code ec;
  fs::remove_all(st.container, ec);  // best effort: GC removes leftovers
  spdlog::info("job {}: published artifact {} ({} bytes)", st.job_id, a.id, a.size);
  return a;
}

absl::Status LocalArtifactStore::Abort(const StagedArtifact& st) {
  SLQ_RETURN_IF_ERROR(CheckStaged(st));
  std::error_code ec;
  fs::remove_all(st.container, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", st.container, ": ", ec.message()));
  spdlog::info("job {}: staging dir {} removed", st.job_id, st.container);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> LocalArtifactStore::List() {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ + "/objects", ec)) {
    std::string name = e.path().filename().string();
    if (IsArtifactId(name) && e.is_directory()) ids.push_back(std::move(name));
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", root_, "/objects: ", ec.message()));
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<std::string> LocalArtifactStore::Path(const std::string& id) {
  SLQ_RETURN_IF_ERROR(CheckId(id));
  std::string p = absl::StrCat(root_, "/objects/", id);
  if (!fs::is_directory(p)) return absl::NotFoundError(absl::StrCat("artifact ", id, " not found"));
  return p;
}

absl::StatusOr<std::vector<ArtifactFile>> LocalArtifactStore::ListFiles(const std::string& id) {
  SLQ_ASSIGN_OR_RETURN(std::string dir, Path(id));
  SLQ_ASSIGN_OR_RETURN(nlohmann::json m, ReadManifest(dir));
  std::vector<ArtifactFile> files;
  for (auto& [name, f] : m["files"].items()) {
    files.push_back({name, f.value("bytes", uint64_t{0}), f.value("sha256", std::string())});
  }
  return files;
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> LocalArtifactStore::OpenRead(const std::string& id,
                                                                             const std::string& file) {
  SLQ_ASSIGN_OR_RETURN(std::string dir, Path(id));
  bool known = file == kArtifactManifestName;
  if (!known) {
    SLQ_ASSIGN_OR_RETURN(std::vector<ArtifactFile> files, ListFiles(id));
    for (const ArtifactFile& f : files) known = known || f.name == file;
  }
  if (!known) {
    return absl::NotFoundError(absl::StrCat("artifact ", id, " has no file '", file, "'"));
  }
  const std::string path = dir + "/" + file;
  SLQ_ASSIGN_OR_RETURN(uint64_t size, FileSize(path));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  return std::unique_ptr<ArtifactReader>(new FileReader(f, size));
}

absl::Status LocalArtifactStore::Verify(const std::string& id) {
  SLQ_ASSIGN_OR_RETURN(std::string dir, Path(id));
  SLQ_ASSIGN_OR_RETURN(std::string manifest, ReadFile(dir + "/" + kArtifactManifestName));
  if (Sha256Hex(manifest) != id) {
    return absl::DataLossError(absl::StrCat("manifest of artifact ", id, " was modified"));
  }
  return VerifyArtifactDir(dir).status();
}

absl::StatusOr<GcResult> LocalArtifactStore::CollectGarbage(const GcOptions& options) {
  GcResult r;
  std::error_code ec;
  const absl::Time now = clock_->Now();
  for (const auto& e : fs::directory_iterator(root_ + "/tmp", ec)) {
    const std::string name = e.path().filename().string();
    const std::string job_id = name.substr(0, name.find('.'));
    struct stat st {};
    const bool old = ::stat(e.path().c_str(), &st) == 0 && now - absl::FromTimeT(st.st_mtime) > options.max_age;
    const bool dead = options.is_live && !options.is_live(job_id);
    if (!old && !dead) continue;
    const int64_t bytes = TreeBytes(e.path());
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    if (rm) {
      spdlog::warn("job {}: cannot remove staging dir {}: {}", job_id, e.path().string(), rm.message());
      continue;
    }
    spdlog::info("job {}: removed staging dir {} ({} bytes, {})", job_id, e.path().string(), bytes,
                 dead ? "job not live" : "too old");
    ++r.removed;
    r.bytes_freed += bytes;
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", root_, "/tmp: ", ec.message()));
  return r;
}

}  // namespace slq
