// See loopback_server.h.
#include "tests/integration/bad_input/loopback_server.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/common/test_paths.h"
#include "server/main/server_app.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"

namespace slq::testing {
namespace {

namespace fs = std::filesystem;

// Keeps every formatted log line; Text() may be called while the server logs.
class StringSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string Text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    text_.append(buf.data(), buf.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

// One capture per process: spdlog's default logger is global.
const std::shared_ptr<StringSink>& Capture() {
  static const auto* sink = new std::shared_ptr<StringSink>(std::make_shared<StringSink>());
  return *sink;
}

std::string RandomToken() {
  std::random_device rd;
  std::string t = "slq-test-token-";
  for (int i = 0; i < 24; ++i) t += "0123456789abcdef"[rd() % 16];
  return t;
}

}  // namespace

std::string CanonicalModelsDir() {
  std::error_code ec;
  fs::path p = fs::canonical(ModelsDir(), ec);
  return ec ? ModelsDir() : p.string();
}

LoopbackServer::LoopbackServer(const std::function<void(ServerConfig&)>& tweak) {
  static int counter = 0;
  scratch_dir_ = (fs::temp_directory_path() / absl::StrCat("slq_loopback_", ::getpid(), "_", counter++)).string();
  fs::remove_all(scratch_dir_);
  root_dir_ = scratch_dir_ + "/root";
  fs::create_directories(root_dir_);
  token_ = RandomToken();
  { std::ofstream(scratch_dir_ + "/token") << token_ << "\n"; }
  auto logger = std::make_shared<spdlog::logger>("slq-test", Capture());
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);

  ServerConfig c;
  c.listen = "127.0.0.1:0";
  c.metrics_listen = "";
  c.data_dir = scratch_dir_ + "/data";
  c.store = "sqlite://" + c.data_dir + "/jobs.db";
  c.artifact_dir = c.data_dir + "/artifacts";
  c.model_cache_dir = c.data_dir + "/models";
  c.allowed_roots = {CanonicalModelsDir(), root_dir_};
  c.auth_token_file = scratch_dir_ + "/token";
  c.in_process_worker = false;  // jobs stay queued: these tests look at the edge only
  c.device = "cpu";
  c.serve_models = {CanonicalModelsDir() + "/stories260k/stories260K.bin"};
  c.kv_cache_bytes = 8ll << 20;
  c.max_queue = 16;
  c.threads = 1;
  c.text_dir = DataDir();
  if (tweak) tweak(c);
  model_name_ = "stories260K";
  app_ = std::make_unique<ServerApp>(c);
  status_ = app_->Start();
  if (!status_.ok()) return;
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", app_->grpc_port()), grpc::InsecureChannelCredentials());
}

LoopbackServer::~LoopbackServer() {
  if (app_) app_->Shutdown(absl::Seconds(2));
  app_.reset();
  std::error_code ec;
  fs::remove_all(scratch_dir_, ec);
}

void LoopbackServer::Authorize(grpc::ClientContext* ctx) const {
  ctx->AddMetadata("authorization", "Bearer " + token_);
}

std::string LoopbackServer::Log() const { return Capture()->Text(); }

}  // namespace slq::testing
