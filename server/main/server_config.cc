#include "server/main/server_config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <exception>
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace slq {
namespace {

// "--kv-cache-bytes" -> "SLQ_KV_CACHE_BYTES"
std::string EnvName(const std::string& flag) {
  std::string out = "SLQ_";
  for (char c : flag) out.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return out;
}

// "--kv-cache-bytes" -> "kv_cache_bytes"
std::string YamlKey(const std::string& flag) {
  std::string out;
  for (char c : flag) out.push_back(c == '-' ? '_' : c);
  return out;
}

template <typename T>
CLI::Option* Add(CLI::App& app, const std::string& name, T* field, const std::string& help) {
  return app.add_option("--" + name, *field, help)->envname(EnvName(name))->capture_default_str();
}

// Values of a YAML node as the strings CLI11 would have received.
absl::StatusOr<std::vector<std::string>> YamlValues(const YAML::Node& node, const std::string& key) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    out.push_back(node.as<std::string>());
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat("config key '", key, "': list items must be scalars"));
      }
      out.push_back(item.as<std::string>());
    }
  } else if (!node.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat("config key '", key, "' must be a scalar or a list"));
  }
  return out;
}

absl::Status ApplyYaml(const CLI::App& app, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --config '", path, "': ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("config file '", path, "' must be a YAML mapping"));
  }
  std::map<std::string, CLI::Option*> by_key;
  for (CLI::Option* opt : const_cast<CLI::App&>(app).get_options()) {
    if (opt->get_lnames().empty()) continue;
    by_key[YamlKey(opt->get_lnames().front())] = opt;
  }
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>();
    auto it = by_key.find(key);
    if (it == by_key.end() || key == "config" || key == "help") {
      return absl::InvalidArgumentError(
          absl::StrCat("config file '", path, "': unknown key '", key, "' (see slq-server --help)"));
    }
    CLI::Option* opt = it->second;
    if (opt->count() > 0) continue;  // a flag or the environment already set it
    auto values = YamlValues(kv.second, key);
    if (!values.ok()) return values.status();
    if (values->empty()) continue;
    try {
      opt->add_result(*values);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat("config file '", path, "' key '", key, "': ", e.what()));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const ServerConfig& c) {
  if (c.device != "auto" && c.device != "cpu" && c.device != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--device must be auto, cpu or cuda, got '", c.device, "'"));
  }
  if (c.shadow_fraction < 0 || c.shadow_fraction > 1) {
    return absl::InvalidArgumentError(absl::StrCat("--shadow-fraction must be in [0, 1], got ", c.shadow_fraction));
  }
  if (c.max_queue < 0) return absl::InvalidArgumentError("--max-queue must be >= 0");
  if (c.kv_cache_bytes < (1 << 20)) return absl::InvalidArgumentError("--kv-cache-bytes must be >= 1 MiB");
  if (c.lease_seconds < 5) return absl::InvalidArgumentError("--lease-seconds must be >= 5");
  if (c.http_port < 0 || c.http_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-port must be 0 (off) or a port 1..65535, got ", c.http_port));
  }
  if (c.http_threads < 1) return absl::InvalidArgumentError("--http-threads must be >= 1");
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca (mTLS) needs --tls-cert and --tls-key");
  }
  if (c.store.rfind("sqlite://", 0) != 0 && c.store.rfind("postgres://", 0) != 0 &&
      c.store.rfind("postgresql://", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store must be sqlite:///path/jobs.db or postgres://..., got '", c.store, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterServerFlags(CLI::App& app, ServerConfig* c) {
  app.add_option("--config", c->config_file, "YAML config file (keys = option names with '_')")->envname("SLQ_CONFIG");
  Add(app, "listen", &c->listen, "gRPC listen address (JobService, InferenceService, health)");
  Add(app, "metrics-listen", &c->metrics_listen, "Prometheus /metrics address; empty = off");
  Add(app, "data-dir", &c->data_dir, "State directory (job store, artifacts, model cache)");
  Add(app, "store", &c->store,
      "Job store: sqlite:///path/jobs.db (default <data-dir>/jobs.db) or postgres://user:pass@host/db");
  Add(app, "artifact-dir", &c->artifact_dir, "Artifact store (default <data-dir>/artifacts)");
  Add(app, "model-cache-dir", &c->model_cache_dir, "Downloaded models (default <data-dir>/models)");
  Add(app, "allowed-roots", &c->allowed_roots, "Directories file:// URIs may read (comma list)")->delimiter(',');
  Add(app, "auth-token-file", &c->auth_token_file, "Bearer token file; empty = no auth (local use)");
  Add(app, "tls-cert", &c->tls_cert, "TLS certificate (PEM)");
  Add(app, "tls-key", &c->tls_key, "TLS private key (PEM)");
  Add(app, "tls-client-ca", &c->tls_client_ca, "CA for client certificates: turns on mTLS");
  Add(app, "in-process-worker", &c->in_process_worker, "Run a worker inside the server");
  Add(app, "device", &c->device, "Inference device: auto (cuda when built with CUDA and a GPU is usable), cpu or cuda");
  Add(app, "serve-models", &c->serve_models, "Models to load at start: artifact ids, paths or URIs (comma list)")
      ->delimiter(',');
  Add(app, "max-queue", &c->max_queue, "Inference requests queued before RESOURCE_EXHAUSTED");
  Add(app, "kv-cache-bytes", &c->kv_cache_bytes, "KV-cache memory budget per loaded model");
  Add(app, "shadow-fraction", &c->shadow_fraction, "Fraction of requests shadow-evaluated against the base model");
  Add(app, "max-message-bytes", &c->max_message_bytes, "Largest gRPC request accepted");
  Add(app, "lease-seconds", &c->lease_seconds, "Worker task lease time");
  Add(app, "threads", &c->threads, "Compute threads; 0 = all cores");
  Add(app, "log-level", &c->log_level, "trace, debug, info, warn, error");
  Add(app, "text-dir", &c->text_dir, "Folder of the bundled texts named by jobs (tinystories, wikitext2, debian-docs)");
  Add(app, "default-data", &c->default_data, "Text used when a job names none: a bundled name, file:// URI or path");
  Add(app, "http-port", &c->http_port,
      "OpenAI-compatible HTTP API port (/v1/models, /v1/completions, "
      "/v1/chat/completions) on the --listen host, with the same token and TLS; 0 = off");
  Add(app, "http-threads", &c->http_threads, "HTTP connections served at once (each open stream holds one)");
}

absl::Status ResolveServerConfig(const CLI::App& app, ServerConfig* c) {
  if (!c->config_file.empty()) {
    absl::Status s = ApplyYaml(app, c->config_file);
    if (!s.ok()) return s;
  }
  namespace fs = std::filesystem;
  if (c->store.empty()) c->store = "sqlite://" + (fs::path(c->data_dir) / "jobs.db").string();
  if (c->artifact_dir.empty()) c->artifact_dir = (fs::path(c->data_dir) / "artifacts").string();
  if (c->model_cache_dir.empty()) c->model_cache_dir = (fs::path(c->data_dir) / "models").string();
  return Validate(*c);
}

}  // namespace slq
