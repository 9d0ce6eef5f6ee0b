#include "server/jobs/sqlite_job_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view sql) {
  std::string msg = absl::StrCat("sqlite: ", sqlite3_errmsg(db), " (code ", rc, ") in: ", sql);
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return absl::UnavailableError(msg);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(msg);
  }
  if (primary == SQLITE_CONSTRAINT) return absl::FailedPreconditionError(msg);
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return absl::DataLossError(msg);
  if (primary == SQLITE_FULL) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

class SqliteConn final : public SqlConn {
 public:
  explicit SqliteConn(sqlite3* db) : db_(db) {}
  ~SqliteConn() override { sqlite3_close_v2(db_); }

  absl::string_view BeginSql() const override { return "BEGIN IMMEDIATE"; }

  absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql, const std::vector<SqlValue>& params) override {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, sql);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
    absl::Status bound = Bind(stmt, params, sql);
    if (!bound.ok()) return bound;
    std::vector<SqlRow> rows;
    const int ncol = sqlite3_column_count(stmt);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      SqlRow row(static_cast<size_t>(ncol));
      for (int c = 0; c < ncol; ++c) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL) continue;
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        row[static_cast<size_t>(c)] = std::string(text, sqlite3_column_bytes(stmt, c));
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, sql);
    return rows;
  }

 private:
  // Binds $1..$n by name (a parameter may appear several times in the SQL).
  absl::Status Bind(sqlite3_stmt* stmt, const std::vector<SqlValue>& params, absl::string_view sql) {
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string name = absl::StrCat("$", i + 1);
      const int idx = sqlite3_bind_parameter_index(stmt, name.c_str());
      if (idx == 0) continue;  // parameter not used by this statement
      int rc = SQLITE_OK;
      const SqlValue& v = params[i];
      switch (v.kind) {
        case SqlValue::Kind::kNull:
          rc = sqlite3_bind_null(stmt, idx);
          break;
        case SqlValue::Kind::kInt:
          rc = sqlite3_bind_int64(stmt, idx, v.i);
          break;
        case SqlValue::Kind::kReal:
          rc = sqlite3_bind_double(stmt, idx, v.d);
          break;
        case SqlValue::Kind::kText:
          rc = sqlite3_bind_text(stmt, idx, v.s.data(), static_cast<int>(v.s.size()), SQLITE_TRANSIENT);
          break;
      }
      if (rc != SQLITE_OK) return SqliteError(db_, rc, sql);
    }
    return absl::OkStatus();
  }

  sqlite3* db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqlConn>> OpenSqliteConn(const std::string& path, absl::Duration busy_timeout) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg =
        absl::StrCat("cannot open SQLite database '", path, "': ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return absl::UnavailableError(msg);
  }
  sqlite3_busy_timeout(db, static_cast<int>(absl::ToInt64Milliseconds(busy_timeout)));
  auto conn = std::make_unique<SqliteConn>(db);
  for (const char* pragma : {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"}) {
    auto r = conn->Query(pragma, {});
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat("database '", path, "': ", r.status().message()));
    }
  }
  return std::unique_ptr<SqlConn>(std::move(conn));
}

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path,
                                                                     const SqliteOptions& options) {
  SLQ_ASSIGN_OR_RETURN(auto conn, OpenSqliteConn(path, options.busy_timeout));
  std::vector<std::unique_ptr<SqlConn>> conns;
  conns.push_back(std::move(conn));
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(std::make_unique<SqlPool>(std::move(conns)), options.clock));
  SLQ_RETURN_IF_ERROR(store->Migrate());
  spdlog::info("jobs: opened SQLite job store {}", path);
  return store;
}

absl::Status SqliteJobStore::EngineCheck(SqlConn& conn, std::vector<std::string>* problems) {
  SLQ_ASSIGN_OR_RETURN(auto rows, conn.Query("PRAGMA integrity_check", {}));
  for (const SqlRow& r : rows) {
    if (ColStr(r, 0) != "ok") problems->push_back("sqlite: " + ColStr(r, 0));
  }
  return absl::OkStatus();
}

}  // namespace slq
