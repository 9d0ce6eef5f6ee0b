// A throwaway PostgreSQL server for tests: initdb + pg_ctl in a fresh temp dir, listening on
// a free 127.0.0.1 port (unix socket in the temp dir), fsync off. Stopped and deleted on
// destruction. When running as root the server runs as the `postgres` user (initdb refuses
// root). Not thread-safe; one instance per test suite.
//
//   auto pg = slq::testing::PgTestServer::Start();
//   if (!pg.ok()) GTEST_SKIP() << pg.status();
//   auto store = PostgresJobStore::Open((*pg)->ConnInfo());
#ifndef SLQ_SERVER_JOBS_PG_TEST_SERVER_H_
#define SLQ_SERVER_JOBS_PG_TEST_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace slq::testing {

class PgTestServer {
 public:
  // FailedPrecondition if no PostgreSQL binaries are installed (callers skip), Internal if
  // the server fails to start (the message holds the server log's tail).
  static absl::StatusOr<std::unique_ptr<PgTestServer>> Start();
  ~PgTestServer();
  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  // libpq conninfo for the superuser `slq`, database `postgres`.
  std::string ConnInfo() const;
  int port() const { return port_; }

 private:
  PgTestServer() = default;
  std::string bin_dir_;
  std::string dir_;
  std::string as_user_;  // "runuser -u postgres -- " when root, else ""
  int port_ = 0;
  bool running_ = false;
};

}  // namespace slq::testing

#endif  // SLQ_SERVER_JOBS_PG_TEST_SERVER_H_
