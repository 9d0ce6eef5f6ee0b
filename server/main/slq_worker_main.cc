// slq-worker: leases quantization tasks (fetch, per-layer profile, search, pack) from an
// slq-server and runs them; one per GPU (CUDA_VISIBLE_DEVICES) or on CPU.
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <thread>

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/main/resolvers.h"
#include "server/metrics/metrics.h"
#include "server/worker/eval_device.h"
#include "server/worker/task_executor.h"
#include "server/worker/worker_loop.h"
#include "spdlog/spdlog.h"

namespace {
slq::WorkerLoop* g_loop = nullptr;
void OnSignal(int) {
  if (g_loop) g_loop->Stop();
}
}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:7070", token_file, tls_ca, device = "auto", name, metrics_listen;
  std::string log_level = "info";
  slq::ResolverConfig rc;
  rc.model_cache_dir = "/var/lib/slq/models";
  std::vector<std::string> kinds;
  int max_tasks = 0;
  CLI::App app{"slq-worker: runs quantization tasks leased from slq-server"};
  auto env = [](CLI::Option* o, const char* e) { o->envname(e)->capture_default_str(); };
  env(app.add_option("--server", server, "slq-server address"), "SLQ_SERVER");
  env(app.add_option("--auth-token-file", token_file, "Bearer token file"), "SLQ_AUTH_TOKEN_FILE");
  env(app.add_option("--tls-ca", tls_ca, "CA (PEM) to verify a TLS server"), "SLQ_TLS_CA");
  env(app.add_option("--device", device,
                     "Where profiling/verification run: cpu, cuda, cuda:N or auto (cuda:0 when usable); "
                     "CUDA_VISIBLE_DEVICES picks the physical GPU"),
      "SLQ_DEVICE");
  env(app.add_option("--name", name, "Worker name (default: hostname-pid)"), "SLQ_NAME");
  env(app.add_option("--metrics-listen", metrics_listen, "Prometheus /metrics address; empty = off"),
      "SLQ_METRICS_LISTEN");
  env(app.add_option("--allowed-roots", rc.allowed_roots, "Directories file:// URIs may read")->delimiter(','),
      "SLQ_ALLOWED_ROOTS");
  env(app.add_option("--model-cache-dir", rc.model_cache_dir, "Downloaded models"), "SLQ_MODEL_CACHE_DIR");
  env(app.add_option("--text-dir", rc.text_dir, "Folder of the bundled texts"), "SLQ_TEXT_DIR");
  env(app.add_option("--default-data", rc.default_data, "Text used when a job names none"), "SLQ_DEFAULT_DATA");
  app.add_option("--kinds", kinds, "Task kinds to run (fetch, profile, search, pack); default all")->delimiter(',');
  app.add_option("--max-tasks", max_tasks, "Exit after this many tasks (0 = run forever)");
  env(app.add_option("--log-level", log_level, "trace, debug, info, warn, error"), "SLQ_LOG_LEVEL");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));

  slq::Metrics metrics;
  if (!metrics_listen.empty()) {
    if (absl::Status s = metrics.Serve(metrics_listen); !s.ok()) {
      std::cerr << "slq-worker: " << s.message() << "\n";
      return 1;
    }
  }
  rc.metrics = &metrics;
  slq::WorkerOptions wo;
  wo.name = name.empty() ? absl::StrCat("worker-", ::getpid()) : name;
  std::string chosen;
  auto eval = slq::EvalBackendFor(device, &chosen);
  if (!eval.ok()) {
    std::cerr << "slq-worker: --device: " << eval.status().message() << "\n";
    return 2;
  }
  wo.device = chosen.rfind("cuda", 0) == 0 ? slq::v1::WORKER_DEVICE_CUDA : slq::v1::WORKER_DEVICE_CPU;
  wo.device_name = chosen;
  wo.kinds = kinds;
  wo.max_tasks = max_tasks;
  if (!token_file.empty()) {
    auto t = slq::ReadFile(token_file);
    if (!t.ok()) {
      std::cerr << "slq-worker: cannot read --auth-token-file: " << t.status().message() << "\n";
      return 2;
    }
    wo.token = std::string(absl::StripAsciiWhitespace(*t));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!tls_ca.empty()) {
    auto ca = slq::ReadFile(tls_ca);
    if (!ca.ok()) {
      std::cerr << "slq-worker: cannot read --tls-ca: " << ca.status().message() << "\n";
      return 2;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *ca;
    creds = grpc::SslCredentials(ssl);
  }
  slq::TaskExecutorOptions eo = slq::MakeExecutorOptions(rc);
  eo.eval_backend = *eval;
  slq::TaskExecutor executor(std::move(eo));
  slq::WorkerLoop loop(grpc::CreateChannel(server, creds), wo, &executor);
  g_loop = &loop;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  spdlog::info("slq-worker {} -> {} (evaluations on {})", wo.name, server, chosen);
  loop.Run();
  spdlog::info("slq-worker {}: {} tasks done, {} failed", wo.name, loop.tasks_done(), loop.tasks_failed());
  return 0;
}
