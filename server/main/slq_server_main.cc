// slq-server: the job service (durable quantization jobs), the inference service, health,
// reflection and Prometheus /metrics in one process, with an in-process worker by default.
// `slq-server --help` lists every option; docs/OPERATIONS.md explains them.
#include <csignal>
#include <iostream>
#include <thread>

#include "server/main/server_app.h"
#include "spdlog/spdlog.h"

namespace {

volatile std::sig_atomic_t g_signal = 0;
void OnSignal(int sig) { g_signal = sig; }

}  // namespace

int main(int argc, char** argv) {
  slq::ServerConfig config;
  CLI::App app{"slq-server: quantize LLMs to a fidelity target and serve them (gRPC)"};
  slq::RegisterServerFlags(app, &config);
  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = slq::ResolveServerConfig(app, &config); !s.ok()) {
    std::cerr << "slq-server: " << s.message() << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  slq::ServerApp server(config);
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "slq-server: " << s.message() << "\n";
    return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::thread waiter([&] { server.Wait(); });
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("signal {}: draining", static_cast<int>(g_signal));
  server.Shutdown(absl::Seconds(10));
  waiter.join();
  return 0;
}
