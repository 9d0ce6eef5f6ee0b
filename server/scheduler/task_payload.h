// Task payloads and results as stored by the job store: the typed slq.v1.TaskPayload /
// TaskResult messages (proto/slq/v1/worker_service.proto) in their proto JSON text, so the
// store's text columns stay readable. The scheduler writes payloads and reads results; the
// WorkerService decodes payloads for LeaseTask and encodes results from CompleteTask.
#ifndef SLQ_SERVER_SCHEDULER_TASK_PAYLOAD_H_
#define SLQ_SERVER_SCHEDULER_TASK_PAYLOAD_H_

#include <string>

#include "absl/status/statusor.h"
#include "slq/v1/worker_service.pb.h"

namespace slq {

std::string EncodeTaskMessage(const google::protobuf::Message& m);
// InvalidArgument naming `what` when the text is not that message's JSON form.
absl::Status DecodeTaskMessage(const std::string& text, const std::string& what, google::protobuf::Message* out);

template <typename M>
absl::StatusOr<M> DecodeTask(const std::string& text, const std::string& what) {
  M m;
  absl::Status s = DecodeTaskMessage(text, what, &m);
  if (!s.ok()) return s;
  return m;
}

}  // namespace slq

#endif  // SLQ_SERVER_SCHEDULER_TASK_PAYLOAD_H_
