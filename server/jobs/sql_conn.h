// A minimal SQL connection interface shared by the SQLite and PostgreSQL job stores, a
// blocking connection pool and a transaction guard.
//
// SQL uses PostgreSQL-style positional parameters ($1, $2, ...) for both engines (SQLite
// accepts them as named parameters). Values come back as text (NULL as nullopt).
//
// Thread-safety: an SqlConn is used by one thread at a time (the pool guarantees it);
// SqlPool is thread-safe.
#ifndef SLQ_SERVER_JOBS_SQL_CONN_H_
#define SLQ_SERVER_JOBS_SQL_CONN_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace slq {

// One bound parameter: NULL, integer, real or text (implicitly built from each).
struct SqlValue {
  enum class Kind { kNull, kInt, kReal, kText };
  SqlValue(std::nullptr_t) {}                                      // NOLINT(runtime/explicit)
  SqlValue(int64_t v) : kind(Kind::kInt), i(v) {}                  // NOLINT(runtime/explicit)
  SqlValue(double v) : kind(Kind::kReal), d(v) {}                  // NOLINT(runtime/explicit)
  SqlValue(std::string v) : kind(Kind::kText), s(std::move(v)) {}  // NOLINT(runtime/explicit)
  SqlValue(const char* v) : kind(Kind::kText), s(v) {}             // NOLINT(runtime/explicit)

  Kind kind = Kind::kNull;
  int64_t i = 0;
  double d = 0.0;
  std::string s;
};
using SqlRow = std::vector<std::optional<std::string>>;

class SqlConn {
 public:
  virtual ~SqlConn() = default;
  // Runs one statement; returns its rows (empty for statements without results).
  // A unique-constraint violation is AlreadyExists; busy/lock timeouts are Unavailable.
  [[nodiscard]] virtual absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql,
                                                                  const std::vector<SqlValue>& params) = 0;
  // Statement that opens a write transaction ("BEGIN IMMEDIATE" for SQLite).
  virtual absl::string_view BeginSql() const { return "BEGIN"; }
  // Re-establishes a broken connection; no-op if healthy.
  virtual absl::Status EnsureHealthy() { return absl::OkStatus(); }
};

// Owns `conns`; Acquire() blocks until one is free and returns it on the handle's destruction.
class SqlPool {
 public:
  explicit SqlPool(std::vector<std::unique_ptr<SqlConn>> conns);

  class Handle {
   public:
    Handle(SqlPool* pool, SqlConn* conn) : pool_(pool), conn_(conn) {}
    Handle(Handle&& o) noexcept : pool_(o.pool_), conn_(o.conn_) { o.conn_ = nullptr; }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() {
      if (conn_ != nullptr) pool_->Release(conn_);
    }
    SqlConn* operator->() const { return conn_; }
    SqlConn& operator*() const { return *conn_; }

   private:
    SqlPool* pool_;
    SqlConn* conn_;
  };

  Handle Acquire();

 private:
  void Release(SqlConn* c);

  std::vector<std::unique_ptr<SqlConn>> owned_;
  // std::mutex rather than absl::Mutex: the Debian Abseil build is not TSan-instrumented, so
  // TSan cannot see absl::Mutex hand-offs and reports false races on the pooled connections;
  // with std::mutex the TSan run of the store test is clean.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SqlConn*> free_;  // guarded by mu_
};

// Opens a transaction on `conn`; rolls back on destruction unless Commit() succeeded.
class SqlTx {
 public:
  static absl::StatusOr<std::unique_ptr<SqlTx>> Begin(SqlConn* conn);
  ~SqlTx();
  SqlTx(const SqlTx&) = delete;
  SqlTx& operator=(const SqlTx&) = delete;

  [[nodiscard]] absl::StatusOr<std::vector<SqlRow>> Query(absl::string_view sql, const std::vector<SqlValue>& params) {
    return conn_->Query(sql, params);
  }
  [[nodiscard]] absl::Status Commit();

 private:
  explicit SqlTx(SqlConn* conn) : conn_(conn) {}
  SqlConn* conn_;
  bool done_ = false;
};

// Typed access to text columns. Malformed numbers are Internal errors (corrupt rows).
std::string ColStr(const SqlRow& row, size_t i);
absl::StatusOr<int64_t> ColInt(const SqlRow& row, size_t i);
absl::StatusOr<double> ColDouble(const SqlRow& row, size_t i);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_SQL_CONN_H_
