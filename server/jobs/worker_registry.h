// WorkerRegistry: the workers known to the service (one of the four parts of JobStore, see
// job_store.h). RegisterWorker hands out ids that LeaseTask checks; ListWorkers feeds the
// workers-connected gauge.
//
//   SLQ_RETURN_IF_ERROR(workers->RegisterWorker({.id = id, .name = "gpu0"}));
//
// Thread-safe; shared by every server on one store, so a worker may re-connect to another one.
#ifndef SLQ_SERVER_JOBS_WORKER_REGISTRY_H_
#define SLQ_SERVER_JOBS_WORKER_REGISTRY_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/jobs/job_types.h"

namespace slq {

class WorkerRegistry {
 public:
  virtual ~WorkerRegistry() = default;

  // Inserts or updates the worker; last_heartbeat is set to Now(). InvalidArgument for an
  // empty id.
  [[nodiscard]] virtual absl::Status RegisterWorker(const Worker& w) = 0;
  // Ordered by id.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Worker>> ListWorkers() = 0;
};

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_WORKER_REGISTRY_H_
