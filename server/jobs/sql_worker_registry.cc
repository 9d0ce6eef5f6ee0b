// SqlJobStore, WorkerRegistry part: registered workers.
#include "server/jobs/sql_job_store.h"

namespace slq {

absl::Status SqlJobStore::RegisterWorker(const Worker& w) {
  if (w.id.empty()) return absl::InvalidArgumentError("worker id is empty");
  return InTx<bool>([&](SqlTx& tx) -> absl::StatusOr<bool> {
           SLQ_RETURN_IF_ERROR(tx.Query("INSERT INTO workers (id, name, kind, last_heartbeat_us) VALUES ($1, $2, "
                                        "$3, $4) ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = "
                                        "excluded.kind, last_heartbeat_us = excluded.last_heartbeat_us",
                                        {w.id, w.name, std::string(WorkerKindName(w.kind)), NowUs()})
                                   .status());
           return true;
         })
      .status();
}

absl::StatusOr<std::vector<Worker>> SqlJobStore::ListWorkers() {
  return InTx<std::vector<Worker>>([&](SqlTx& tx) -> absl::StatusOr<std::vector<Worker>> {
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT id, name, kind, last_heartbeat_us FROM "
                                             "workers ORDER BY id",
                                             {}));
    std::vector<Worker> out;
    for (const SqlRow& r : rows) {
      Worker w;
      w.id = ColStr(r, 0);
      w.name = ColStr(r, 1);
      SLQ_ASSIGN_OR_RETURN(w.kind, ParseWorkerKind(ColStr(r, 2)));
      SLQ_ASSIGN_OR_RETURN(int64_t hb, ColInt(r, 3));
      w.last_heartbeat = TimeFromUs(hb);
      out.push_back(std::move(w));
    }
    return out;
  });
}

}  // namespace slq
