#include "server/main/server_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/api/auth.h"
#include "server/api/job_service.h"
#include "server/api/worker_service.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"
#include "server/jobs/artifact_store.h"
#include "server/jobs/postgres_job_store.h"
#include "server/jobs/sqlite_job_store.h"
#include "server/main/resolvers.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/scheduler.h"
#include "server/worker/eval_device.h"
#include "server/worker/worker_loop.h"
#ifdef SLQ_WITH_INFERENCE
#include "server/api/inference_service.h"
#include "server/inference/forward_backend.h"
#include "server/inference/model_registry.h"
#include "server/inference/model_source.h"
#endif
#ifdef SLQ_WITH_HTTP
#include "server/http/http_server.h"
#endif
#include "spdlog/spdlog.h"

namespace slq {
namespace {

absl::StatusOr<std::unique_ptr<JobStore>> OpenStore(const std::string& store) {
  if (store.rfind("sqlite://", 0) == 0) {
    std::string path = store.substr(9);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    auto s = SqliteJobStore::Open(path);
    if (!s.ok()) return s.status();
    return std::unique_ptr<JobStore>(std::move(*s));
  }
  auto s = PostgresJobStore::Open(store);
  if (!s.ok()) return s.status();
  return std::unique_ptr<JobStore>(std::move(*s));
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerConfig& c) {
  if (c.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(c.tls_client_ca.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  auto cert = ReadFile(c.tls_cert);
  if (!cert.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-cert: ", cert.status().message()));
  auto key = ReadFile(c.tls_key);
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", key.status().message()));
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!c.tls_client_ca.empty()) {
    auto ca = ReadFile(c.tls_client_ca);
    if (!ca.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-client-ca: ", ca.status().message()));
    ssl.pem_root_certs = *ca;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

struct ServerApp::Impl {
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<JobStore> store;
  std::unique_ptr<ArtifactStore> artifacts;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<api::BearerAuth> auth;
  std::unique_ptr<api::JobServiceImpl> job_service;
  std::unique_ptr<api::WorkerServiceImpl> worker_service;
#ifdef SLQ_WITH_INFERENCE
  std::unique_ptr<inference::ModelRegistry> registry;
  std::unique_ptr<api::InferenceServiceImpl> inference_service;
#endif
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<TaskExecutor> executor;
  std::unique_ptr<WorkerLoop> worker;
  std::thread worker_thread;
  std::string token;
  bool shut_down = false;
#ifdef SLQ_WITH_HTTP
  std::unique_ptr<http::CompletionsHandler> http_handler;
  std::unique_ptr<http::OpenAiHttpServer> http;  // last: stops first
#endif
};

ServerApp::ServerApp(ServerConfig config) : config_(std::move(config)), impl_(std::make_unique<Impl>()) {}

ServerApp::~ServerApp() { Shutdown(absl::Seconds(1)); }

int ServerApp::metrics_port() const { return impl_->metrics ? impl_->metrics->port() : 0; }

absl::Status ServerApp::Start() {
  Impl& m = *impl_;
  m.metrics = std::make_unique<Metrics>();
  if (!config_.metrics_listen.empty()) {
    absl::Status s = m.metrics->Serve(config_.metrics_listen);
    if (!s.ok()) return s;
  }
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrCat("cannot create --data-dir ", config_.data_dir, ": ", ec.message()));
  auto store = OpenStore(config_.store);
  if (!store.ok()) return store.status();
  m.store = std::move(*store);
  auto artifacts = LocalArtifactStore::Open(config_.artifact_dir);
  if (!artifacts.ok()) return artifacts.status();
  m.artifacts = std::move(*artifacts);

  // Staging left by jobs that are no longer live (a crash mid-pack) is garbage.
  GcOptions gc;
  JobStore* st = m.store.get();
  gc.is_live = [st](const std::string& job_id) {
    auto j = st->GetJob(job_id);
    return j.ok() && !IsTerminal(j->state);
  };
  if (auto r = m.artifacts->CollectGarbage(gc); r.ok() && r->removed > 0) {
    spdlog::info("artifact store: removed {} stale staging dirs ({} bytes)", r->removed, r->bytes_freed);
  }

  if (!config_.auth_token_file.empty()) {
    auto auth = api::BearerAuth::FromTokenFile(config_.auth_token_file);
    if (!auth.ok()) return auth.status();
    m.auth = std::make_unique<api::BearerAuth>(*auth);
    m.token = std::string(absl::StripAsciiWhitespace(*ReadFile(config_.auth_token_file)));
  } else {
    m.auth = std::make_unique<api::BearerAuth>(api::BearerAuth::Disabled());
    spdlog::warn("no --auth-token-file: every caller is trusted (local use only)");
  }

  ResolverConfig rc{config_.allowed_roots, config_.model_cache_dir, config_.text_dir, config_.default_data,
                    m.metrics.get()};
  m.scheduler = std::make_unique<Scheduler>(m.store.get(), m.artifacts.get(), m.metrics.get());
  api::JobServiceOptions jo;
  jo.validate_model_uri = [rc](const std::string& uri) { return ValidateModelUri(rc, uri); };
  jo.validate_data_ref = [rc](const std::string& ref) { return ValidateDataRef(rc, ref); };
  m.job_service =
      std::make_unique<api::JobServiceImpl>(m.store.get(), m.artifacts.get(), m.scheduler.get(), m.metrics.get(), jo);
  api::JobServiceImpl* js = m.job_service.get();
  api::WorkerServiceOptions wso;
  wso.lease = absl::Seconds(config_.lease_seconds);
  wso.heartbeat = absl::Seconds(std::max(1, config_.lease_seconds / 6));
  wso.on_task_completed = [js](const std::string& id) { js->NotifyJobEvent(id); };
  m.worker_service = std::make_unique<api::WorkerServiceImpl>(m.store.get(), m.scheduler.get(), wso);
  api::WorkerServiceImpl* ws = m.worker_service.get();
  m.scheduler->set_on_event([js, ws](const std::string& id) {
    js->NotifyJobEvent(id);
    ws->NotifyTaskEvent();
  });

#ifdef SLQ_WITH_INFERENCE
  inference::ModelSourceOptions so;
  so.artifact_root = (std::filesystem::path(config_.artifact_dir) / "objects").string();
  so.allowed_roots = config_.allowed_roots;
  inference::RegistryOptions ro;
  ro.engine.kv_cache_bytes = static_cast<size_t>(config_.kv_cache_bytes);
  ro.engine.max_queue = config_.max_queue;
  ro.engine.forward_threads = config_.threads;
  // --device: cpu | cuda | auto (cuda when this build has CUDA and a GPU is usable).
  std::string device = config_.device;
  if (device == "auto") {
    std::string why;
    device = inference::CudaBackendAvailable(&why) ? "cuda" : "cpu";
    spdlog::info("--device auto: inference runs on {}{}", device, device == "cpu" ? " (" + why + ")" : "");
  }
  ro.engine.device = device;
  ro.device = device;
  ro.shadow_fraction = config_.shadow_fraction;
  m.registry = std::make_unique<inference::ModelRegistry>(inference::DefaultModelSource(so), ro, m.metrics.get());
  m.inference_service = std::make_unique<api::InferenceServiceImpl>(m.registry.get(), m.metrics.get());
  for (const std::string& model : config_.serve_models) {
    inference::ModelSpec spec;
    spec.location = model;
    spec.trusted = true;  // the operator's own command line, not a client
    spec.kind = model.find("://") != std::string::npos || model.find('/') != std::string::npos
                    ? inference::ModelSpec::Kind::kModelUri
                    : inference::ModelSpec::Kind::kArtifactId;
    if (spec.kind == inference::ModelSpec::Kind::kModelUri &&
        std::filesystem::exists(std::filesystem::path(model) / "manifest.json")) {
      spec.kind = inference::ModelSpec::Kind::kArtifactPath;
    }
    auto info = m.registry->Load(spec);
    if (!info.ok())
      return absl::Status(info.status().code(), absl::StrCat("--serve-models ", model, ": ", info.status().message()));
    spdlog::info("serving {} ({})", info->name, info->source);
  }
#endif

  auto creds = Credentials(config_);
  if (!creds.ok()) return creds.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, *creds, &grpc_port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.max_message_bytes));
  builder.RegisterService(m.job_service.get());
  builder.RegisterService(m.worker_service.get());
  // The bearer token is checked once for every slq.v1 RPC, by an interceptor (health and reflection stay open).
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(api::MakeAuthInterceptorFactory(m.auth.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
#ifdef SLQ_WITH_INFERENCE
  builder.RegisterService(m.inference_service.get());
#endif
  m.server = builder.BuildAndStart();
  if (!m.server || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --listen ", config_.listen));
  }
  // Per-service health (Kubernetes readiness probes name the service they need).
  if (auto* health = m.server->GetHealthCheckService()) {
    health->SetServingStatus("slq.v1.JobService", true);
    health->SetServingStatus("slq.v1.WorkerService", true);
#ifdef SLQ_WITH_INFERENCE
    health->SetServingStatus("slq.v1.InferenceService", true);
#endif
  }
#ifdef SLQ_WITH_HTTP
  // The OpenAI-compatible HTTP API: the same registry (engines, metrics), token and TLS files.
  if (config_.http_port > 0) {
    m.http_handler = std::make_unique<http::CompletionsHandler>(m.registry.get(), m.metrics.get(),
                                                                http::CompletionsOptions{so.artifact_root});
    http::OpenAiHttpServer::Options ho;
    ho.host = http::HostOf(config_.listen);
    ho.port = config_.http_port;
    ho.tls_cert = config_.tls_cert;
    ho.tls_key = config_.tls_key;
    ho.tls_client_ca = config_.tls_client_ca;
    ho.threads = config_.http_threads;
    ho.max_body_bytes = static_cast<size_t>(config_.max_message_bytes);
    SLQ_ASSIGN_OR_RETURN(m.http, http::OpenAiHttpServer::Start(ho, m.http_handler.get(), m.auth.get()));
    spdlog::info("OpenAI-compatible HTTP API on {}:{} ({})", ho.host, m.http->port(), m.http->tls() ? "https" : "http");
  }
#endif
  // Reconcile whatever the store holds (jobs interrupted by a crash continue from their tasks).
  absl::Status s = m.scheduler->ReconcileAll();
  if (!s.ok()) spdlog::error("initial reconcile: {}", s.ToString());
  m.scheduler->Start();

  if (config_.in_process_worker) {
    // The in-process worker evaluates (profiling, closed loop, verification) on the server's
    // --device: cpu, cuda, or auto (the GPU when this build has CUDA and one is usable).
    TaskExecutorOptions eo = MakeExecutorOptions(rc);
    std::string chosen;
    SLQ_ASSIGN_OR_RETURN(eo.eval_backend, EvalBackendFor(config_.device, &chosen));
    spdlog::info("in-process worker: evaluations on {}", chosen);
    m.executor = std::make_unique<TaskExecutor>(std::move(eo));
    WorkerOptions wo;
    wo.name = "in-process";
    wo.token = m.token;
    grpc::ChannelArguments args;
    m.worker = std::make_unique<WorkerLoop>(m.server->InProcessChannel(args), wo, m.executor.get());
    m.worker_thread = std::thread([w = m.worker.get()] { w->Run(); });
  }
  spdlog::info("slq-server listening on {} (port {}), /metrics on {}, store {}", config_.listen, grpc_port_,
               config_.metrics_listen.empty() ? "off" : config_.metrics_listen, config_.store);
  return absl::OkStatus();
}

void ServerApp::Wait() {
  if (impl_->server) impl_->server->Wait();
}

void ServerApp::Shutdown(absl::Duration grace) {
  Impl& m = *impl_;
  if (m.shut_down || !m.server) return;
  m.shut_down = true;
  spdlog::info("slq-server shutting down");
#ifdef SLQ_WITH_HTTP
  if (m.http) m.http->Stop();
#endif
  if (m.worker) m.worker->Stop();
  if (m.job_service) m.job_service->Shutdown();
  if (m.worker_service) m.worker_service->Shutdown();
  m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
  if (m.worker_thread.joinable()) m.worker_thread.join();
  if (m.scheduler) m.scheduler->Stop();
}

}  // namespace slq
