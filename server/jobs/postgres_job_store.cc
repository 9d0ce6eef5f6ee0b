#include "server/jobs/postgres_job_store.h"

#include <libpq-fe.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

// Maps SQLSTATE classes to Status codes: contention is Unavailable (retried by InTx).
absl::Status PgError(PGresult* res, PGconn* conn, absl::string_view sql) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string code = state ? state : "";
  std::string msg = absl::StrCat("postgres: ", PQerrorMessage(conn), " [", code, "] in: ", sql);
  if (code == "23505") return absl::AlreadyExistsError(msg);
  if (code == "40001" || code == "40P01" || code == "55P03" || code.rfind("08", 0) == 0 || code == "57P01" ||
      PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(msg);
  }
  if (code.rfind("23", 0) == 0) return absl::FailedPreconditionError(msg);
  return absl::InternalError(msg);
}

class PgConn final : public SqlConn {
 public:
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  ~PgConn() override { PQfinish(conn_); }

  absl::Status EnsureHealthy() override {
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    spdlog::warn("jobs: PostgreSQL connection lost, reconnecting");
    PQreset(conn_);
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("postgres: reconnect failed: ", PQerrorMessage(conn_)));
  }

  absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql, const std::vector<SqlValue>& params) override {
    // All parameters go as text with server-inferred types.
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      const SqlValue& v = params[i];
      if (v.kind == SqlValue::Kind::kNull) continue;
      if (v.kind == SqlValue::Kind::kInt) {
        text[i] = absl::StrCat(v.i);
      } else if (v.kind == SqlValue::Kind::kReal) {
        text[i] = absl::StrFormat("%.17g", v.d);
      } else {
        text[i] = v.s;
      }
      values[i] = text[i].c_str();
    }
    std::string sql_z(sql);
    PGresult* res = PQexecParams(conn_, sql_z.c_str(), static_cast<int>(params.size()), nullptr, values.data(), nullptr,
                                 nullptr, 0);
    std::unique_ptr<PGresult, void (*)(PGresult*)> guard(res, PQclear);
    const ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return PgError(res, conn_, sql);
    std::vector<SqlRow> rows;
    const int nrows = PQntuples(res), ncols = PQnfields(res);
    rows.reserve(static_cast<size_t>(nrows));
    for (int r = 0; r < nrows; ++r) {
      SqlRow row(static_cast<size_t>(ncols));
      for (int c = 0; c < ncols; ++c) {
        if (PQgetisnull(res, r, c)) continue;
        row[static_cast<size_t>(c)] = std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

 private:
  PGconn* conn_;
};

absl::StatusOr<std::unique_ptr<SqlConn>> Connect(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string msg = absl::StrCat("cannot connect to PostgreSQL: ", conn ? PQerrorMessage(conn) : "out of memory");
    PQfinish(conn);
    return absl::UnavailableError(msg);
  }
  auto pg = std::make_unique<PgConn>(conn);
  // Quiet NOTICEs ("relation already exists") and keep timestamps out of it: we store micros.
  SLQ_RETURN_IF_ERROR(pg->Query("SET client_min_messages = warning", {}).status());
  return std::unique_ptr<SqlConn>(std::move(pg));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresJobStore>> PostgresJobStore::Open(const std::string& conninfo,
                                                                         const PostgresOptions& options) {
  if (options.pool_size < 1 || options.pool_size > 64) {
    return absl::InvalidArgumentError(absl::StrCat("pool_size ", options.pool_size, " is outside [1, 64]"));
  }
  std::vector<std::unique_ptr<SqlConn>> conns;
  for (int i = 0; i < options.pool_size; ++i) {
    SLQ_ASSIGN_OR_RETURN(auto c, Connect(conninfo));
    conns.push_back(std::move(c));
  }
  std::unique_ptr<PostgresJobStore> store(
      new PostgresJobStore(std::make_unique<SqlPool>(std::move(conns)), options.clock));
  SLQ_RETURN_IF_ERROR(store->Migrate());
  spdlog::info("jobs: opened PostgreSQL job store ({} connections)", options.pool_size);
  return store;
}

absl::Status PostgresJobStore::EngineCheck(SqlConn& conn, std::vector<std::string>* problems) {
  // Every table of the schema must exist (catches a half-applied manual migration).
  SLQ_ASSIGN_OR_RETURN(auto rows, conn.Query("SELECT COUNT(*) FROM information_schema.tables "
                                             "WHERE table_schema = current_schema() AND "
                                             "table_name IN ('jobs', 'tasks', 'job_events', "
                                             "'artifacts', 'workers', 'schema_migrations')",
                                             {}));
  SLQ_ASSIGN_OR_RETURN(int64_t n, ColInt(rows.at(0), 0));
  if (n != 6) problems->push_back(absl::StrCat("postgres: ", n, " of 6 schema tables present"));
  return absl::OkStatus();
}

}  // namespace slq
