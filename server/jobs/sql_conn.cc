#include "server/jobs/sql_conn.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace slq {

SqlPool::SqlPool(std::vector<std::unique_ptr<SqlConn>> conns) : owned_(std::move(conns)) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : owned_) free_.push_back(c.get());
}

SqlPool::Handle SqlPool::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !free_.empty(); });
  SqlConn* c = free_.back();
  free_.pop_back();
  return Handle(this, c);
}

void SqlPool::Release(SqlConn* c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(c);
  }
  cv_.notify_one();
}

absl::StatusOr<std::unique_ptr<SqlTx>> SqlTx::Begin(SqlConn* conn) {
  absl::Status healthy = conn->EnsureHealthy();
  if (!healthy.ok()) return healthy;
  auto r = conn->Query(conn->BeginSql(), {});
  if (!r.ok()) return r.status();
  return std::unique_ptr<SqlTx>(new SqlTx(conn));
}

SqlTx::~SqlTx() {
  if (done_) return;
  auto r = conn_->Query("ROLLBACK", {});
  if (!r.ok()) spdlog::warn("jobs: rollback failed: {}", r.status().ToString());
}

absl::Status SqlTx::Commit() {
  auto r = conn_->Query("COMMIT", {});
  if (!r.ok()) return r.status();
  done_ = true;
  return absl::OkStatus();
}

std::string ColStr(const SqlRow& row, size_t i) {
  return i < row.size() && row[i].has_value() ? *row[i] : std::string();
}

absl::StatusOr<int64_t> ColInt(const SqlRow& row, size_t i) {
  int64_t v = 0;
  std::string s = ColStr(row, i);
  if (s.empty()) return int64_t{0};
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::InternalError(absl::StrCat("column ", i, ": '", s, "' is not an integer"));
  }
  return v;
}

absl::StatusOr<double> ColDouble(const SqlRow& row, size_t i) {
  double v = 0;
  std::string s = ColStr(row, i);
  if (s.empty()) return 0.0;
  if (!absl::SimpleAtod(s, &v)) {
    return absl::InternalError(absl::StrCat("column ", i, ": '", s, "' is not a number"));
  }
  return v;
}

}  // namespace slq
