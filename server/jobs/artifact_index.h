// ArtifactIndex: the rows that record published artifacts (one of the four parts of JobStore,
// see job_store.h). The files themselves live in an ArtifactStore (artifact_store.h); a row is
// put after ArtifactStore::Publish and before the job is marked SUCCEEDED.
//
//   SLQ_ASSIGN_OR_RETURN(Artifact a, artifact_store->Publish(staged));
//   SLQ_RETURN_IF_ERROR(index->PutArtifact(a));
//
// Content-addressed: putting the same id twice is OK (the first row stays). Thread-safe.
#ifndef SLQ_SERVER_JOBS_ARTIFACT_INDEX_H_
#define SLQ_SERVER_JOBS_ARTIFACT_INDEX_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/jobs/job_types.h"

namespace slq {

class ArtifactIndex {
 public:
  virtual ~ArtifactIndex() = default;

  // InvalidArgument unless the id is a lower-case sha256 hex digest.
  [[nodiscard]] virtual absl::Status PutArtifact(const Artifact& a) = 0;
  [[nodiscard]] virtual absl::StatusOr<Artifact> GetArtifact(const std::string& id) = 0;
  // All artifacts, or those of one job when job_id is non-empty; oldest first.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Artifact>> ListArtifacts(const std::string& job_id) = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_ARTIFACT_INDEX_H_
