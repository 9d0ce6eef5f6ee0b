#include "server/jobs/pg_test_server.h"

#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"

namespace slq::testing {
namespace {

namespace fs = std::filesystem;

std::string FindBinDir() {
  if (const char* env = std::getenv("SLQ_PG_BIN")) return env;
  for (const char* v : {"15", "16", "17", "14", "13"}) {
    std::string dir = absl::StrCat("/usr/lib/postgresql/", v, "/bin");
    if (fs::exists(dir + "/initdb") && fs::exists(dir + "/pg_ctl")) return dir;
  }
  return "";
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string LogTail(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return "(no log)";
  return text->size() > 2000 ? text->substr(text->size() - 2000) : *text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgTestServer>> PgTestServer::Start() {
  std::unique_ptr<PgTestServer> s(new PgTestServer());
  s->bin_dir_ = FindBinDir();
  if (s->bin_dir_.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin (install the Debian "
        "'postgresql' package or set SLQ_PG_BIN)");
  }
  char tmpl[] = "/tmp/slq-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  s->dir_ = tmpl;
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError("running as root but no 'postgres' user exists");
    }
    if (::chown(s->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError("cannot chown " + s->dir_ + " to postgres");
    }
    s->as_user_ = "runuser -u postgres -- ";
  }
  const std::string log = s->dir_ + "/setup.log";
  std::string initdb = absl::StrCat(s->as_user_, s->bin_dir_, "/initdb -D ", s->dir_,
                                    "/data -U slq -A trust -E UTF8 --no-sync >", log, " 2>&1");
  if (std::system(initdb.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("initdb failed: ", LogTail(log)));
  }
  for (int attempt = 0; attempt < 3 && !s->running_; ++attempt) {
    s->port_ = FreePort();
    std::string start =
        absl::StrCat(s->as_user_, s->bin_dir_, "/pg_ctl -D ", s->dir_, "/data -l ", s->dir_,
                     "/server.log -w -t 30 -o \"-p ", s->port_, " -k ", s->dir_,
                     " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50\" start >>", log, " 2>&1");
    s->running_ = std::system(start.c_str()) == 0;
  }
  if (!s->running_) {
    return absl::InternalError(
        absl::StrCat("pg_ctl start failed: ", LogTail(log), "\n", LogTail(s->dir_ + "/server.log")));
  }
  return s;
}

PgTestServer::~PgTestServer() {
  if (running_) {
    std::string stop =
        absl::StrCat(as_user_, bin_dir_, "/pg_ctl -D ", dir_, "/data -m immediate -w stop >/dev/null 2>&1");
    if (std::system(stop.c_str()) != 0) {
      // Leave the directory for inspection; the server may still be running.
      return;
    }
  }
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string PgTestServer::ConnInfo() const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=slq dbname=postgres connect_timeout=10");
}

}  // namespace slq::testing
