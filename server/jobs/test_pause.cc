// Test-only crash points (see test_pause.h).
#include "server/jobs/test_pause.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

struct PauseConfig {
  std::set<std::string> points;
  std::string dir;
};

const PauseConfig& Config() {
  static const PauseConfig* config = [] {
    auto* c = new PauseConfig;
    const char* at = std::getenv("SLQ_TEST_PAUSE_AT");
    const char* dir = std::getenv("SLQ_TEST_PAUSE_DIR");
    if (at != nullptr && *at != '\0') {
      for (absl::string_view p : absl::StrSplit(at, ',', absl::SkipEmpty())) c->points.insert(std::string(p));
      c->dir = dir != nullptr && *dir != '\0' ? dir : "/tmp";
      spdlog::warn("TEST HOOK: SLQ_TEST_PAUSE_AT={} (pause files in {}); never set this in production", at, c->dir);
    }
    return c;
  }();
  return *config;
}

}  // namespace

void TestPausePoint(const std::string& point) {
  const PauseConfig& c = Config();
  if (c.points.empty() || c.points.count(point) == 0) return;
  static std::mutex mu;
  static std::set<std::string> hit;
  {
    std::lock_guard<std::mutex> l(mu);
    if (!hit.insert(point).second) return;
  }
  namespace fs = std::filesystem;
  const fs::path resume = fs::path(c.dir) / ("resume-" + point);
  { std::ofstream(fs::path(c.dir) / ("paused-" + point)) << ::getpid() << "\n"; }
  spdlog::warn("TEST HOOK: paused at '{}' until {} exists", point, resume.string());
  std::error_code ec;
  while (!fs::exists(resume, ec)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  spdlog::warn("TEST HOOK: resumed at '{}'", point);
}

}  // namespace slq
