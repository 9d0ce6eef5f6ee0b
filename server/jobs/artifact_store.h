// ArtifactStore: content-addressed, crash-safe storage of finished artifacts.
//
// Layout of a LocalArtifactStore root (a local disk or a shared volume: rename(2) within one
// filesystem is what makes publishing atomic):
//   objects/<id>/            published artifacts; <id> = sha256 hex of <id>/manifest.json
//   tmp/<job_id>.staging/    staging containers (one per job); the artifact is written to .../artifact
//
//   SLQ_ASSIGN_OR_RETURN(StagedArtifact st, store->BeginStaging(job.id));
//   SLQ_RETURN_IF_ERROR(quant::WriteArtifact(model, st.dir, opts));   // creates st.dir
//   SLQ_ASSIGN_OR_RETURN(Artifact a, store->Publish(st));             // now visible
//   SLQ_RETURN_IF_ERROR(job_store->PutArtifact(a));                   // then mark SUCCEEDED
//
// The manifest format is the one of server/quant/artifact.h: a JSON object whose "files"
// member maps every other file of the directory to {"sha256": hex, "bytes": n}; an optional
// "certificate" member is copied into Artifact::certificate_json. Publish verifies every file
// before the rename, so objects/ never holds a partial or corrupt artifact; a crash leaves at
// most a staging container behind, which CollectGarbage removes.
//
// Thread-safety: all methods are thread-safe (they only use atomic filesystem operations);
// several processes may share one root.
#ifndef SLQ_SERVER_JOBS_ARTIFACT_STORE_H_
#define SLQ_SERVER_JOBS_ARTIFACT_STORE_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/jobs/clock.h"
#include "server/jobs/job_types.h"

namespace slq {

inline constexpr char kArtifactManifestName[] = "manifest.json";

struct StagedArtifact {
  std::string job_id;
  std::string container;  // tmp/<job_id>.staging, exists
  std::string dir;        // <container>/artifact, does NOT exist yet: the writer creates it
};

struct ArtifactFile {
  std::string name;  // plain file name inside the artifact
  uint64_t bytes = 0;
  std::string sha256;
};

// Sequential reader of one artifact file, for chunked streaming downloads. Not thread-safe.
class ArtifactReader {
 public:
  virtual ~ArtifactReader() = default;
  virtual uint64_t size() const = 0;
  // Reads up to `max_bytes` from the current offset; an empty string at end of file.
  [[nodiscard]] virtual absl::StatusOr<std::string> Read(size_t max_bytes) = 0;
  // Moves the offset (resuming a download); OutOfRange beyond the end.
  [[nodiscard]] virtual absl::Status Seek(uint64_t offset) = 0;
};

struct GcOptions {
  // Staging containers whose job is not live are removed (e.g. FAILED/CANCELLED jobs, or jobs
  // unknown to the job store). Unset: only the age rule applies.
  std::function<bool(const std::string& job_id)> is_live;
  // Containers older than this are removed even if their job is live (a stuck writer).
  absl::Duration max_age = absl::Hours(24);
};

struct GcResult {
  int64_t removed = 0;
  int64_t bytes_freed = 0;
};

class ArtifactStore {
 public:
  virtual ~ArtifactStore() = default;
  // Creates the job's staging container, or returns the existing one: the same job always gets
  // the same container (idempotent across schedulers and restarts).
  [[nodiscard]] virtual absl::StatusOr<StagedArtifact> BeginStaging(const std::string& job_id) = 0;
  // Verifies staged.dir (manifest present, every file listed with the right size and sha256,
  // no unlisted files or sub-directories), fsyncs it and renames it to objects/<id>. If the
  // id already exists (same content), the staged copy is dropped. Removes the container.
  [[nodiscard]] virtual absl::StatusOr<Artifact> Publish(const StagedArtifact& staged) = 0;
  // Removes a staging container (a failed job).
  [[nodiscard]] virtual absl::Status Abort(const StagedArtifact& staged) = 0;

  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> List() = 0;
  [[nodiscard]] virtual absl::StatusOr<std::string> Path(const std::string& id) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::vector<ArtifactFile>> ListFiles(const std::string& id) = 0;
  // Opens manifest.json or a file listed in it. NotFound for an unknown id or file.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenRead(const std::string& id,
                                                                                 const std::string& file) = 0;
  // Re-hashes every file: DataLoss naming the first bad one.
  [[nodiscard]] virtual absl::Status Verify(const std::string& id) = 0;
  [[nodiscard]] virtual absl::StatusOr<GcResult> CollectGarbage(const GcOptions& options) = 0;
};

class LocalArtifactStore final : public ArtifactStore {
 public:
  // Creates root/objects and root/tmp if needed. `clock` (not owned) dates the artifacts and
  // ages staging containers; nullptr: the real clock.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<LocalArtifactStore>> Open(const std::string& root,
                                                                                Clock* clock = nullptr);

  absl::StatusOr<StagedArtifact> BeginStaging(const std::string& job_id) override;
  absl::StatusOr<Artifact> Publish(const StagedArtifact& staged) override;
  absl::Status Abort(const StagedArtifact& staged) override;
  absl::StatusOr<std::vector<std::string>> List() override;
  absl::StatusOr<std::string> Path(const std::string& id) override;
  absl::StatusOr<std::vector<ArtifactFile>> ListFiles(const std::string& id) override;
  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenRead(const std::string& id, const std::string& file) override;
  absl::Status Verify(const std::string& id) override;
  absl::StatusOr<GcResult> CollectGarbage(const GcOptions& options) override;

 private:
  LocalArtifactStore(std::string root, Clock* clock) : root_(std::move(root)), clock_(clock) {}
  absl::Status CheckStaged(const StagedArtifact& staged) const;

  const std::string root_;
  Clock* const clock_;
};

// Parses a manifest and checks `dir` against it (see Publish). Returns the listed files.
[[nodiscard]] absl::StatusOr<std::vector<ArtifactFile>> VerifyArtifactDir(const std::string& dir);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_ARTIFACT_STORE_H_
