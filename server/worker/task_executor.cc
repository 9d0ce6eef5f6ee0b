#include "server/worker/task_executor.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/config.h"
#include "server/model/model_loader.h"
#include "server/quant/pipeline.h"
#include "spdlog/spdlog.h"

namespace slq {
namespace {

using json = nlohmann::json;

template <typename T>
absl::StatusOr<T> FromJson(const std::string& text, const char* what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("task payload: ", what, " is not JSON"));
  try {
    return j.get<T>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("task payload: bad ", what, ": ", e.what()));
  }
}

JobStage StageOf(const std::string& name, JobStage fallback) {
  auto s = ParseJobStage(name);
  return s.ok() ? *s : fallback;
}

// Maps the engine's progress (stage names such as "load", "profile", "verify", "write") to job
// stages. Names that are not job stages keep the current one, and the stage never moves back,
// so a task's events follow the documented order.
quant::ProgressFn Forward(const TaskProgressFn& progress, JobStage first) {
  auto current = std::make_shared<JobStage>(first);
  return [progress, current](const std::string& stage, double f) {
    JobStage s = StageOf(stage, *current);
    if (static_cast<int>(s) > static_cast<int>(*current)) *current = s;
    if (progress) progress(*current, f, stage);
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<quant::QuantizationSession>> TaskExecutor::Session(
    const quant::PipelineOptions& opts, const quant::ProgressFn& progress) const {
  const std::string key = quant::QuantizationSession::ReuseKey(opts);
  std::unique_ptr<quant::QuantizationSession> s;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      if (it->first != key) continue;
      s = std::move(it->second);
      cached_.erase(it);
      break;
    }
    // Free the least recently used model before loading another.
    if (!s && cached_.size() >= static_cast<size_t>(std::max(options_.cached_sessions, 1))) cached_.pop_front();
  }
  if (s) {
    SLQ_RETURN_IF_ERROR(s->Retarget(opts));
    s->set_progress(progress);
    return s;
  }
  const auto t0 = std::chrono::steady_clock::now();
  SLQ_ASSIGN_OR_RETURN(s, quant::QuantizationSession::Open(opts, progress, options_.eval_backend));
  auto& st = s->stage_seconds();
  spdlog::info(
      "session for {} opened in {:.1f} s (load {:.1f} s, data {:.1f} s, evaluator setup {:.1f} s and base logits "
      "{:.1f} s on {})",
      opts.model_path, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), st["load"],
      st["data"], st["eval_setup"], st["base_logits"] - st["eval_setup"], s->eval_device());
  return s;
}

void TaskExecutor::Keep(std::unique_ptr<quant::QuantizationSession> s) const {
  if (options_.cached_sessions <= 0 || !s) return;
  s->set_progress(nullptr);
  const std::string key = quant::QuantizationSession::ReuseKey(s->options());
  absl::MutexLock lock(&mu_);
  cached_.emplace_back(key, std::move(s));
  while (static_cast<int>(cached_.size()) > std::max(options_.cached_sessions, 1)) cached_.pop_front();
}

quant::PipelineOptions TaskExecutor::PipelineOptionsOf(const v1::QuantOptions& q) {
  quant::PipelineOptions o;
  o.model_path = q.model_path();
  o.model_id = q.model_uri();
  o.data_path = q.data_path();
  o.data_id = q.calibration_data().empty() ? "default" : q.calibration_data();
  o.heldout_path = q.heldout_path();
  o.heldout_id = q.eval_data();
  if (!q.target().empty()) o.target = q.target();
  if (!q.formats().empty()) o.formats = q.formats();
  if (q.group_size() != 0) o.group_size = q.group_size();
  o.symmetric = q.symmetric();
  o.mse_clip = q.mse_clip();
  o.rotate = q.hadamard();
  o.quantize_lm_head = q.quantize_lm_head();
  if (q.temperature() > 0) o.temperature = q.temperature();
  if (q.seed() != 0) o.seed = q.seed();
  o.profile_cache_dir = q.profile_cache_dir();
  if (!q.quantizers().empty()) o.quantizers = q.quantizers();
  o.symmetry = q.symmetry();
  o.group_sizes = q.group_sizes();
  o.grids = q.grids();
  if (q.has_cloze_items()) o.cloze_max_items = q.cloze_items();
  o.scales = q.scales();
  return o;
}

absl::StatusOr<v1::TaskResult> TaskExecutor::Run(const v1::TaskPayload& payload, const TaskProgressFn& progress) const {
  v1::TaskResult r;
  switch (payload.task_case()) {
    case v1::TaskPayload::kFetch: {
      SLQ_ASSIGN_OR_RETURN(*r.mutable_fetch(), Fetch(payload.fetch(), progress));
      return r;
    }
    case v1::TaskPayload::kProfile: {
      SLQ_ASSIGN_OR_RETURN(*r.mutable_profile(), Profile(payload.profile(), progress));
      return r;
    }
    case v1::TaskPayload::kSearch: {
      SLQ_ASSIGN_OR_RETURN(*r.mutable_search(), Search(payload.search(), progress));
      return r;
    }
    case v1::TaskPayload::kPack: {
      SLQ_ASSIGN_OR_RETURN(*r.mutable_pack(), Pack(payload.pack(), progress));
      return r;
    }
    default:
      return absl::InvalidArgumentError("task payload has no task (fetch, profile, search, pack)");
  }
}

absl::StatusOr<v1::FetchResult> TaskExecutor::Fetch(const v1::FetchTask& task, const TaskProgressFn& progress) const {
  v1::FetchResult out;
  v1::QuantOptions& opts = *out.mutable_options();
  opts = task.options();
  const std::string uri = opts.model_uri().empty() ? opts.model_path() : opts.model_uri();
  if (progress) progress(JobStage::kFetch, 0, "fetching " + uri);
  SLQ_ASSIGN_OR_RETURN(std::string model_path, options_.resolve_model(uri));
  SLQ_ASSIGN_OR_RETURN(std::string data_path, options_.resolve_data(opts.calibration_data(), model_path));
  opts.set_model_path(model_path);
  opts.set_data_path(data_path);
  // A held-out text of its own (JobSpec.eval_data): verification runs on it, not on a split of the calibration text.
  if (!opts.eval_data().empty()) {
    SLQ_ASSIGN_OR_RETURN(std::string heldout_path, options_.resolve_data(opts.eval_data(), model_path));
    opts.set_heldout_path(heldout_path);
  }
  if (!options_.profile_cache_dir.empty()) opts.set_profile_cache_dir(options_.profile_cache_dir);

  // Group the quantizable slots by transformer layer: one profile task per layer. An HF folder
  // needs only its config.json for that (the slot names come from a weightless Model of that
  // shape); other formats are loaded (without hashing: the profile task's load does that).
  std::unique_ptr<Model> model;
  if (std::filesystem::is_regular_file(std::filesystem::path(model_path) / "config.json")) {
    SLQ_ASSIGN_OR_RETURN(ModelConfig config, LoadHfConfig(model_path));
    model = std::make_unique<Model>();
    model->config = config;
    model->layers.resize(static_cast<size_t>(config.num_layers));
  } else {
    LoadOptions lo;
    lo.compute_sha256 = false;
    SLQ_ASSIGN_OR_RETURN(model, LoadModel(model_path, lo));
  }
  std::map<int, std::vector<std::string>> groups;
  for (const auto& slot : model->LinearSlots()) {
    if (slot.layer < 0 && !opts.quantize_lm_head()) continue;
    groups[slot.layer].push_back(slot.name);
  }
  for (auto& [layer, names] : groups) {
    v1::SlotGroup* g = out.add_layers();
    g->set_layer(layer);
    for (auto& n : names) g->add_slots(n);
  }
  if (progress) progress(JobStage::kFetch, 1, absl::StrCat("fetched; ", groups.size(), " layer groups"));
  return out;
}

absl::StatusOr<v1::ProfileResult> TaskExecutor::Profile(const v1::ProfileTask& task,
                                                        const TaskProgressFn& progress) const {
  const quant::PipelineOptions opts = PipelineOptionsOf(task.options());
  std::vector<std::string> layers(task.layer().slots().begin(), task.layer().slots().end());
  if (layers.empty()) return absl::InvalidArgumentError("profile task: the layer has no slots");
  SLQ_ASSIGN_OR_RETURN(auto session, Session(opts, Forward(progress, JobStage::kProfile)));
  SLQ_ASSIGN_OR_RETURN(quant::LayerProfiles share, session->Profile(layers));
  Keep(std::move(session));
  v1::ProfileResult out;
  out.set_layer_profiles_json(json(share).dump());
  return out;
}

absl::StatusOr<v1::SearchResult> TaskExecutor::Search(const v1::SearchTask& task,
                                                      const TaskProgressFn& progress) const {
  const quant::PipelineOptions opts = PipelineOptionsOf(task.options());
  std::vector<quant::LayerProfiles> shares;
  for (const v1::ProfileResult& p : task.profiles()) {
    SLQ_ASSIGN_OR_RETURN(quant::LayerProfiles share,
                         FromJson<quant::LayerProfiles>(p.layer_profiles_json(), "profile"));
    shares.push_back(std::move(share));
  }
  SLQ_ASSIGN_OR_RETURN(quant::LayerProfiles merged, quant::MergeProfiles(shares));
  SLQ_ASSIGN_OR_RETURN(auto session, Session(opts, Forward(progress, JobStage::kSearch)));
  SLQ_ASSIGN_OR_RETURN(quant::SearchOutcome outcome, session->Search(merged));
  Keep(std::move(session));
  v1::SearchResult out;
  out.set_search_outcome_json(json(outcome).dump());
  out.set_merged_profiles_json(json(merged).dump());
  return out;
}

absl::StatusOr<v1::PackResult> TaskExecutor::Pack(const v1::PackTask& task, const TaskProgressFn& progress) const {
  quant::PipelineOptions opts = PipelineOptionsOf(task.options());
  opts.output_dir = task.staging().dir();
  if (opts.output_dir.empty()) return absl::InvalidArgumentError("pack task: staging.dir is empty");
  SLQ_ASSIGN_OR_RETURN(auto search, FromJson<quant::SearchOutcome>(task.search().search_outcome_json(), "search"));
  SLQ_ASSIGN_OR_RETURN(auto profile,
                       FromJson<quant::LayerProfiles>(task.search().merged_profiles_json(), "merged profiles"));
  // A retried pack task finds the previous attempt's partial output: start clean.
  std::error_code ec;
  std::filesystem::remove_all(opts.output_dir, ec);
  // Stages: pack (load, quantize with the searched bitwidths), verify (held-out, once), then
  // the verified artifact is written with its certificate into the staging directory.
  if (progress) progress(JobStage::kPack, 0, "quantizing with the searched bitwidths");
  SLQ_ASSIGN_OR_RETURN(auto session, Session(opts, Forward(progress, JobStage::kPack)));
  if (progress) progress(JobStage::kVerify, 0, "verifying on held-out text");
  SLQ_ASSIGN_OR_RETURN(quant::FidelityReport heldout, session->Verify(search.bits));
  if (progress) progress(JobStage::kVerify, 0.9, "writing the verified artifact");
  SLQ_ASSIGN_OR_RETURN(quant::PipelineResult r, session->Finish(profile, search, heldout));
  Keep(std::move(session));  // another job on the same model and text may follow
  SLQ_ASSIGN_OR_RETURN(std::string manifest_sha, Sha256File(opts.output_dir + "/manifest.json"));
  v1::PackResult out;
  out.set_target_met(r.target_met);
  out.set_status(r.status);
  out.set_certificate_json(r.certificate.dump());
  out.set_manifest_sha256(manifest_sha);
  return out;
}

}  // namespace slq
