#include "server/inference/model_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"

namespace slq::inference {

ServedModel::ServedModel(ModelInfo info, LoadedModel loaded, std::unique_ptr<Engine> engine,
                         std::unique_ptr<ShadowEvaluator> shadow)
    : info_(std::move(info)), loaded_(std::move(loaded)), engine_(std::move(engine)), shadow_(std::move(shadow)) {}

ServedModel::~ServedModel() {
  engine_->Shutdown(/*drain=*/false);  // joins the engine thread: no hook call in flight
  shadow_.reset();
  engine_.reset();
}

ModelRegistry::ModelRegistry(ModelSourceFn source, const RegistryOptions& options, Metrics* metrics)
    : source_(std::move(source)), opt_(options), metrics_(metrics) {}

ModelRegistry::~ModelRegistry() { Shutdown(/*drain=*/false); }

absl::Status ModelRegistry::NotFound(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& [n, m] : models_) names.push_back(n);
  return absl::NotFoundError(absl::StrCat(
      "model '", name, "' is not loaded; loaded models: ", names.empty() ? "(none)" : absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::unique_ptr<ShadowEvaluator>> ModelRegistry::MakeShadow(const ModelSpec& spec,
                                                                           const LoadedModel& loaded,
                                                                           const std::string& label) {
  if (spec.shadow_base.empty()) return std::unique_ptr<ShadowEvaluator>();
  if (!loaded.quantized) {
    return absl::InvalidArgumentError("shadow_base_model is only for artifacts, not base models");
  }
  std::shared_ptr<const Model> base;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(spec.shadow_base);
    if (it != models_.end()) base = it->second->model_ptr();
  }
  if (!base) {
    // Through the model source, so an RPC's path is confined like any other model path.
    ModelSpec bs;
    bs.kind = ModelSpec::Kind::kModelUri;
    bs.location = spec.shadow_base;
    bs.trusted = spec.trusted;
    absl::StatusOr<LoadedModel> b = source_(bs);
    if (!b.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shadow_base_model '", spec.shadow_base, "' is neither a loaded model nor loadable: ", b.status().message()));
    }
    base = b->model;
  }
  if (base->config.vocab_size != loaded.model->config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("shadow_base_model '", spec.shadow_base, "' has vocab ",
                                                   base->config.vocab_size, "; the artifact has ",
                                                   loaded.model->config.vocab_size));
  }
  ShadowOptions so;
  so.fraction = opt_.shadow_fraction;
  so.queue_capacity = opt_.shadow_queue;
  so.label = label;
  return std::make_unique<ShadowEvaluator>(std::move(base), loaded.model, so, metrics_);
}

absl::StatusOr<ModelInfo> ModelRegistry::Load(const ModelSpec& spec) {
  const std::string name = spec.name.empty() ? DefaultModelName(spec.location) : spec.name;
  if (name.empty()) return absl::InvalidArgumentError("model name is empty and cannot be derived");
  {
    absl::MutexLock lock(&mu_);
    if (models_.count(name) || loading_.count(name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("a model named '", name, "' is already loaded; unload it or pick another name"));
    }
    if (static_cast<int64_t>(models_.size() + loading_.size()) >= opt_.max_models) {
      return absl::ResourceExhaustedError(
          absl::StrCat("already serving ", models_.size(), " models (limit ", opt_.max_models, ")"));
    }
    loading_.insert(name);
  }
  absl::StatusOr<std::shared_ptr<ServedModel>> served = [&]() -> absl::StatusOr<std::shared_ptr<ServedModel>> {
    SLQ_ASSIGN_OR_RETURN(LoadedModel loaded, source_(spec));
    ModelInfo info;
    info.name = name;
    info.source = loaded.source;
    info.quantized = loaded.quantized;
    info.avg_bits = loaded.avg_bits;
    info.memory_bytes = static_cast<int64_t>(loaded.model->MemoryBytes());
    info.context_length = loaded.model->config.max_position_embeddings;
    info.device = opt_.device;
    info.certified_ear_lower = loaded.certified_ear_lower;
    info.shadow_base = spec.shadow_base;
    SLQ_ASSIGN_OR_RETURN(std::unique_ptr<ShadowEvaluator> shadow, MakeShadow(spec, loaded, name));
    EngineOptions eo = opt_.engine;
    eo.model_name = name;
    SLQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(loaded.model, loaded.codec, eo, metrics_));
    if (shadow) {
      ShadowEvaluator* sh = shadow.get();
      engine->SetFinishHook([sh](std::span<const int32_t> tokens, int64_t) { sh->Offer(tokens); });
    }
    return std::make_shared<ServedModel>(std::move(info), std::move(loaded), std::move(engine), std::move(shadow));
  }();
  absl::MutexLock lock(&mu_);
  loading_.erase(name);
  if (!served.ok()) return served.status();
  const ModelInfo& info = (*served)->info();
  if (metrics_) {
    metrics_->model_memory_bytes(name).Set(static_cast<double>(info.memory_bytes));
    if (info.quantized) metrics_->certified_ear(name).Set(info.certified_ear_lower);
  }
  models_[name] = *served;
  return info;
}

absl::Status ModelRegistry::Unload(const std::string& name) {
  std::shared_ptr<ServedModel> m;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return NotFound(name);
    m = std::move(it->second);
    models_.erase(it);
  }
  m->engine().Shutdown(/*drain=*/false);
  if (metrics_) {
    metrics_->model_memory_bytes(name).Set(0);
    metrics_->kv_cache_usage(name).Set(0);
  }
  return absl::OkStatus();
}

std::vector<ModelInfo> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ModelInfo> out;
  for (const auto& [n, m] : models_) out.push_back(m->info());
  return out;
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelRegistry::Get(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound(name);
  return it->second;
}

void ModelRegistry::Shutdown(bool drain) {
  std::map<std::string, std::shared_ptr<ServedModel>> all;
  {
    absl::MutexLock lock(&mu_);
    all.swap(models_);
  }
  for (auto& [n, m] : all) m->engine().Shutdown(drain);
}

}  // namespace slq::inference
