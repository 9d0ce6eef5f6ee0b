#include "server/metrics/metrics.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace slq {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using Buckets = prometheus::Histogram::BucketBoundaries;

// Latency buckets from 1 ms to ~100 s (CPU decode of small models is ~ms per token; a job
// stage can take minutes, hence the separate stage buckets).
const Buckets& LatencyBuckets() {
  static const Buckets b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100};
  return b;
}
const Buckets& StageBuckets() {
  static const Buckets b = {0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200};
  return b;
}
const Buckets& BatchBuckets() {
  static const Buckets b = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  return b;
}
// EAR lives in [0, 1] and matters near 1: fine buckets above 0.9.
const Buckets& EarBuckets() {
  static const Buckets b = {0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.985, 0.99, 0.995, 0.998, 0.999, 1.0};
  return b;
}
const Buckets& KlBuckets() {
  static const Buckets b = {1e-5, 1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.5, 1};
  return b;
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  jobs_ = &BuildGauge().Name("slq_jobs").Help("Jobs by state").Register(r);
  jobs_finished_ =
      &BuildCounter().Name("slq_jobs_finished_total").Help("Jobs that reached a terminal state, by state").Register(r);
  stage_duration_ =
      &BuildHistogram().Name("slq_job_stage_duration_seconds").Help("Wall time of job stages").Register(r);
  task_queue_depth_ = &BuildGauge().Name("slq_task_queue_depth").Help("Tasks waiting for a worker").Register(r).Add({});
  leases_active_ = &BuildGauge().Name("slq_leases_active").Help("Tasks leased by workers").Register(r).Add({});
  leases_expired_ = &BuildCounter()
                         .Name("slq_leases_expired_total")
                         .Help("Leases that expired and returned their task to the queue")
                         .Register(r)
                         .Add({});
  workers_connected_ = &BuildGauge()
                            .Name("slq_workers_connected")
                            .Help("Workers with a heartbeat within the lease time")
                            .Register(r)
                            .Add({});
  fetch_bytes_ =
      &BuildCounter().Name("slq_fetch_bytes_total").Help("Bytes downloaded by model fetchers").Register(r).Add({});

  requests_ = &BuildCounter()
                   .Name("slq_inference_requests_total")
                   .Help("Inference requests by model and final status")
                   .Register(r);
  ttft_ = &BuildHistogram().Name("slq_inference_ttft_seconds").Help("Time to first token").Register(r);
  itl_ = &BuildHistogram().Name("slq_inference_itl_seconds").Help("Inter-token latency").Register(r);
  e2e_ = &BuildHistogram().Name("slq_inference_e2e_seconds").Help("End-to-end request latency").Register(r);
  prompt_tokens_ =
      &BuildCounter().Name("slq_inference_prompt_tokens_total").Help("Prompt tokens processed").Register(r);
  generated_tokens_ = &BuildCounter().Name("slq_inference_generated_tokens_total").Help("Tokens generated").Register(r);
  requests_running_ =
      &BuildGauge().Name("slq_inference_requests_running").Help("Requests in the running batch").Register(r).Add({});
  requests_waiting_ =
      &BuildGauge().Name("slq_inference_requests_waiting").Help("Requests queued for admission").Register(r).Add({});
  batch_size_ = &BuildHistogram()
                     .Name("slq_inference_batch_size")
                     .Help("Sequences per engine step")
                     .Register(r)
                     .Add({}, BatchBuckets());
  kv_cache_usage_ =
      &BuildGauge().Name("slq_kv_cache_usage_ratio").Help("Fraction of a model's KV-cache blocks in use").Register(r);
  model_memory_ = &BuildGauge().Name("slq_model_memory_bytes").Help("Weight memory of loaded models").Register(r);
  shadow_ear_ = &BuildHistogram()
                     .Name("slq_shadow_ear")
                     .Help("EAR of served generations measured against the base model")
                     .Register(r);
  shadow_kl_ = &BuildHistogram()
                    .Name("slq_shadow_kl")
                    .Help("KL (nats/token) of served generations against the base model")
                    .Register(r);
  certified_ear_ = &BuildGauge()
                        .Name("slq_artifact_certified_ear")
                        .Help("Lower bound of the held-out EAR interval in the certificate")
                        .Register(r);
}

Metrics::~Metrics() = default;

absl::Status Metrics::Serve(const std::string& listen_address) {
  absl::StatusOr<std::unique_ptr<HttpExposer>> e = HttpExposer::Start(listen_address, registry_);
  if (!e.ok()) {
    return absl::Status(e.status().code(),
                        absl::StrCat("cannot serve /metrics on '", listen_address, "': ", e.status().message()));
  }
  exposer_ = *std::move(e);
  return absl::OkStatus();
}

int Metrics::port() const { return exposer_ ? exposer_->port() : 0; }

prometheus::Histogram& Metrics::stage_duration(const std::string& stage) {
  return stage_duration_->Add({{"stage", stage}}, StageBuckets());
}
prometheus::Histogram& Metrics::inference_ttft(const std::string& model) {
  return ttft_->Add({{"model", model}}, LatencyBuckets());
}
prometheus::Histogram& Metrics::inference_itl(const std::string& model) {
  return itl_->Add({{"model", model}}, LatencyBuckets());
}
prometheus::Histogram& Metrics::inference_e2e(const std::string& model) {
  return e2e_->Add({{"model", model}}, LatencyBuckets());
}
prometheus::Histogram& Metrics::shadow_ear(const std::string& artifact) {
  return shadow_ear_->Add({{"artifact", artifact}}, EarBuckets());
}
prometheus::Histogram& Metrics::shadow_kl(const std::string& artifact) {
  return shadow_kl_->Add({{"artifact", artifact}}, KlBuckets());
}

}  // namespace slq
