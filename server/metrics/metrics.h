// Prometheus metrics of slq (names documented in docs/METRICS.md).
//
//   auto metrics = std::make_shared<slq::Metrics>();
//   metrics->inference_ttft(model).Observe(0.012);
//   SLQ_RETURN_IF_ERROR(metrics->Serve("0.0.0.0:9090"));   // GET /metrics
//
// One Metrics object per process, shared by the job service, the inference engine and the
// worker. prometheus-cpp families are thread-safe; label children are created on first use
// and cached by prometheus-cpp itself.
#ifndef SLQ_SERVER_METRICS_METRICS_H_
#define SLQ_SERVER_METRICS_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/metrics/http_exposer.h"

namespace slq {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Starts the HTTP exposer (GET /metrics) on host:port. Port 0 picks a free port.
  absl::Status Serve(const std::string& listen_address);
  // The bound port once Serve() succeeded (useful with port 0), else 0.
  int port() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // ---- Jobs ----
  prometheus::Gauge& jobs(const std::string& state) { return jobs_->Add({{"state", state}}); }
  prometheus::Counter& jobs_finished(const std::string& state) { return jobs_finished_->Add({{"state", state}}); }
  prometheus::Histogram& stage_duration(const std::string& stage);
  prometheus::Gauge& task_queue_depth() { return *task_queue_depth_; }
  prometheus::Gauge& leases_active() { return *leases_active_; }
  prometheus::Counter& leases_expired() { return *leases_expired_; }
  prometheus::Gauge& workers_connected() { return *workers_connected_; }
  prometheus::Counter& fetch_bytes() { return *fetch_bytes_; }

  // ---- Inference ----
  prometheus::Counter& inference_requests(const std::string& model, const std::string& status) {
    return requests_->Add({{"model", model}, {"status", status}});
  }
  prometheus::Histogram& inference_ttft(const std::string& model);
  prometheus::Histogram& inference_itl(const std::string& model);
  prometheus::Histogram& inference_e2e(const std::string& model);
  prometheus::Counter& prompt_tokens(const std::string& model) { return prompt_tokens_->Add({{"model", model}}); }
  prometheus::Counter& generated_tokens(const std::string& model) { return generated_tokens_->Add({{"model", model}}); }
  prometheus::Gauge& requests_running() { return *requests_running_; }
  prometheus::Gauge& requests_waiting() { return *requests_waiting_; }
  prometheus::Histogram& batch_size() { return *batch_size_; }
  // Used / all KV-cache blocks of one loaded model's engine (each engine has its own pool).
  prometheus::Gauge& kv_cache_usage(const std::string& model) { return kv_cache_usage_->Add({{"model", model}}); }
  prometheus::Gauge& model_memory_bytes(const std::string& model) { return model_memory_->Add({{"model", model}}); }
  prometheus::Histogram& shadow_ear(const std::string& artifact);
  prometheus::Histogram& shadow_kl(const std::string& artifact);
  prometheus::Gauge& certified_ear(const std::string& artifact) {
    return certified_ear_->Add({{"artifact", artifact}});
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<HttpExposer> exposer_;

  prometheus::Family<prometheus::Gauge>* jobs_;
  prometheus::Family<prometheus::Counter>* jobs_finished_;
  prometheus::Family<prometheus::Histogram>* stage_duration_;
  prometheus::Gauge* task_queue_depth_;
  prometheus::Gauge* leases_active_;
  prometheus::Counter* leases_expired_;
  prometheus::Gauge* workers_connected_;
  prometheus::Counter* fetch_bytes_;

  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* ttft_;
  prometheus::Family<prometheus::Histogram>* itl_;
  prometheus::Family<prometheus::Histogram>* e2e_;
  prometheus::Family<prometheus::Counter>* prompt_tokens_;
  prometheus::Family<prometheus::Counter>* generated_tokens_;
  prometheus::Gauge* requests_running_;
  prometheus::Gauge* requests_waiting_;
  prometheus::Histogram* batch_size_;
  prometheus::Family<prometheus::Gauge>* kv_cache_usage_;
  prometheus::Family<prometheus::Gauge>* model_memory_;
  prometheus::Family<prometheus::Histogram>* shadow_ear_;
  prometheus::Family<prometheus::Histogram>* shadow_kl_;
  prometheus::Family<prometheus::Gauge>* certified_ear_;
};

}  // namespace slq

#endif  // SLQ_SERVER_METRICS_METRICS_H_
