// SqlJobStore, ArtifactIndex part: rows of published artifacts (content-addressed).
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/jobs/sql_job_store.h"

namespace slq {
namespace {

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) || absl::ascii_isupper(c)) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status SqlJobStore::PutArtifact(const Artifact& a) {
  if (!IsSha256Hex(a.id)) {
    return absl::InvalidArgumentError(absl::StrCat("artifact id '", a.id, "' is not a lower-case sha256 hex digest"));
  }
  const absl::Time created = a.created == absl::Time() ? absl::FromUnixMicros(NowUs()) : a.created;
  return InTx<bool>([&](SqlTx& tx) -> absl::StatusOr<bool> {
           SLQ_RETURN_IF_ERROR(tx.Query(absl::StrCat("INSERT INTO artifacts (", kArtifactColumns,
                                                     ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"),
                                        {a.id, a.job_id, a.path, a.size, a.certificate_json, TimeValue(created)})
                                   .status());
           return true;
         })
      .status();
}

absl::StatusOr<Artifact> SqlJobStore::GetArtifact(const std::string& id) {
  return InTx<Artifact>([&](SqlTx& tx) -> absl::StatusOr<Artifact> {
    SLQ_ASSIGN_OR_RETURN(auto rows,
                         tx.Query(absl::StrCat("SELECT ", kArtifactColumns, " FROM artifacts WHERE id = $1"), {id}));
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("artifact '", id, "' not found"));
    return ArtifactFromRow(rows[0]);
  });
}

absl::StatusOr<std::vector<Artifact>> SqlJobStore::ListArtifacts(const std::string& job_id) {
  std::string sql = absl::StrCat("SELECT ", kArtifactColumns, " FROM artifacts");
  std::vector<SqlValue> params;
  if (!job_id.empty()) {
    sql += " WHERE job_id = $1";
    params.push_back(job_id);
  }
  sql += " ORDER BY created_us, id";
  return InTx<std::vector<Artifact>>([&](SqlTx& tx) -> absl::StatusOr<std::vector<Artifact>> {
    SLQ_ASSIGN_OR_RETURN(auto rows, tx.Query(sql, params));
    std::vector<Artifact> out;
    for (const SqlRow& r : rows) {
      SLQ_ASSIGN_OR_RETURN(Artifact a, ArtifactFromRow(r));
      out.push_back(std::move(a));
    }
    return out;
  });
}

}  // namespace slq
