// slq-server configuration: one YAML file, SLQ_* environment variables and flags.
//
// Precedence: flag > environment > config file > default. Every option has the same name in
// all three: `--kv-cache-bytes` = `SLQ_KV_CACHE_BYTES` = `kv_cache_bytes:` in YAML.
//
//   ServerConfig cfg;
//   CLI::App app{"slq-server"};
//   RegisterServerFlags(app, &cfg);           // --help lists every option with its default
//   app.parse(argc, argv);
//   SLQ_RETURN_IF_ERROR(ResolveServerConfig(app, &cfg));  // applies file + env, validates
#ifndef SLQ_SERVER_MAIN_SERVER_CONFIG_H_
#define SLQ_SERVER_MAIN_SERVER_CONFIG_H_

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace slq {

struct ServerConfig {
  std::string config_file;                      // YAML; empty = none
  std::string listen = "0.0.0.0:7070";          // gRPC
  std::string metrics_listen = "0.0.0.0:9090";  // Prometheus /metrics; "" = off
  std::string data_dir = "/var/lib/slq";
  std::string store;                             // default sqlite://<data_dir>/jobs.db
  std::string artifact_dir;                      // default <data_dir>/artifacts
  std::string model_cache_dir;                   // default <data_dir>/models
  std::vector<std::string> allowed_roots;        // for file:// model URIs and data refs
  std::string auth_token_file;                   // empty = no auth (local use only)
  std::string tls_cert, tls_key, tls_client_ca;  // TLS; client CA turns on mTLS
  bool in_process_worker = true;
  std::string device = "auto";             // auto | cpu | cuda
  std::vector<std::string> serve_models;   // artifact ids / paths / URIs loaded at start
  int64_t max_queue = 256;                 // inference admission queue
  int64_t kv_cache_bytes = 256ll << 20;    // per loaded model
  double shadow_fraction = 0.0;            // 0..1 of requests shadow-evaluated
  int64_t max_message_bytes = 16ll << 20;  // gRPC receive limit
  int32_t lease_seconds = 60;
  int32_t threads = 0;  // compute threads; 0 = all cores
  std::string log_level = "info";
  std::string text_dir;                    // bundled texts (tinystories, wikitext2, debian-docs)
  std::string default_data = "wikitext2";  // calibration/eval text when a job names none
  int32_t http_port = 0;                   // OpenAI-compatible HTTP API; 0 = off
  int32_t http_threads = 256;              // HTTP connections served at once
};

// Declares every option on `app`, bound to the fields of *cfg (defaults shown in --help).
void RegisterServerFlags(CLI::App& app, ServerConfig* cfg);

// After app.parse(): fills options not given as flags from the environment, then from the
// YAML file; derives defaults that depend on data_dir; validates. InvalidArgument names the
// option and its source.
[[nodiscard]] absl::Status ResolveServerConfig(const CLI::App& app, ServerConfig* cfg);

}  // namespace slq

#endif  // SLQ_SERVER_MAIN_SERVER_CONFIG_H_
