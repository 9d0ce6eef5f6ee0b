// ModelRegistry: the models an inference server serves, by name, each with its own Engine
// (and optional ShadowEvaluator for artifacts).
//
//   ModelRegistry reg(DefaultModelSource({.artifact_root = dir}), {.engine = eo}, metrics);
//   SLQ_ASSIGN_OR_RETURN(ModelInfo info, reg.Load({.name = "stories",
//       .kind = ModelSpec::Kind::kModelUri, .location = "/models/stories260k/stories260K.bin"}));
//   SLQ_ASSIGN_OR_RETURN(std::shared_ptr<ServedModel> m, reg.Get("stories"));
//   m->engine().Submit(...);
//
// Get() hands out shared_ptrs: an Unload() while requests stream cancels them (engine
// shutdown) but the weights live until the last holder lets go.
// Thread safety: all methods are thread-safe; Load runs the (slow) loader outside the lock.
#ifndef SLQ_SERVER_INFERENCE_MODEL_REGISTRY_H_
#define SLQ_SERVER_INFERENCE_MODEL_REGISTRY_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/inference/engine.h"
#include "server/inference/model_source.h"
#include "server/inference/shadow.h"
#include "server/metrics/metrics.h"

namespace slq::inference {

struct ModelInfo {
  std::string name;
  std::string source;  // artifact id or model URI
  bool quantized = false;
  double avg_bits = 0;
  int64_t memory_bytes = 0;  // weights
  int64_t context_length = 0;
  std::string device;
  double certified_ear_lower = 0;  // 0 for base models
  std::string shadow_base;         // "" when no shadow evaluation
};

struct RegistryOptions {
  EngineOptions engine;  // model_name is overwritten per model
  std::string device = "cpu";
  double shadow_fraction = 0.05;
  int64_t shadow_queue = 8;
  int64_t max_models = 8;
};

// One loaded model. Immutable after Load except the engine's internal state.
class ServedModel {
 public:
  ServedModel(ModelInfo info, LoadedModel loaded, std::unique_ptr<Engine> engine,
              std::unique_ptr<ShadowEvaluator> shadow);
  ~ServedModel();  // stops the engine (which feeds the shadow), then the shadow
  const ModelInfo& info() const { return info_; }
  Engine& engine() { return *engine_; }
  const Model& model() const { return *loaded_.model; }
  std::shared_ptr<const Model> model_ptr() const { return loaded_.model; }
  const TextCodec& codec() const { return *loaded_.codec; }
  ShadowEvaluator* shadow() { return shadow_.get(); }  // may be null

 private:
  ModelInfo info_;
  LoadedModel loaded_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ShadowEvaluator> shadow_;
};

class ModelRegistry {
 public:
  ModelRegistry(ModelSourceFn source, const RegistryOptions& options, Metrics* metrics = nullptr);
  ~ModelRegistry();

  // AlreadyExists if the name is taken (or being loaded); ResourceExhausted past max_models;
  // the source's error otherwise.
  [[nodiscard]] absl::StatusOr<ModelInfo> Load(const ModelSpec& spec);
  // Cancels the model's requests and removes it. NotFound naming the loaded models.
  [[nodiscard]] absl::Status Unload(const std::string& name);
  std::vector<ModelInfo> List() const;
  // NotFound naming the loaded models.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<ServedModel>> Get(const std::string& name) const;
  // Unloads everything (drain = let running requests finish first).
  void Shutdown(bool drain);

 private:
  absl::Status NotFound(const std::string& name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::unique_ptr<ShadowEvaluator>> MakeShadow(const ModelSpec& spec, const LoadedModel& loaded,
                                                              const std::string& label);

  ModelSourceFn source_;
  const RegistryOptions opt_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<ServedModel>> models_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> loading_ ABSL_GUARDED_BY(mu_);
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_MODEL_REGISTRY_H_
