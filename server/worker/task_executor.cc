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

absl::StatusOr<json> ParsePayload(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("task payload is not a JSON object");
  if (!j.contains("options")) return absl::InvalidArgumentError("task payload has no 'options'");
  return j;
}

absl::StatusOr<quant::PipelineOptions> Options(const json& payload) {
  try {
    return payload.at("options").get<quant::PipelineOptions>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad pipeline options in task payload: ", e.what()));
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

absl::StatusOr<std::string> TaskExecutor::Run(const std::string& kind, const std::string& payload,
                                              const TaskProgressFn& progress) const {
  try {
    if (kind == "fetch") return Fetch(payload, progress);
    if (kind == "profile") return Profile(payload, progress);
    if (kind == "search") return Search(payload, progress);
    if (kind == "pack") return Pack(payload, progress);
  } catch (const std::exception& e) {  // a malformed payload field (nlohmann throws)
    return absl::InvalidArgumentError(absl::StrCat(kind, " task: malformed payload: ", e.what()));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown task kind '", kind, "' (fetch, profile, search, pack)"));
}

absl::StatusOr<std::string> TaskExecutor::Fetch(const std::string& text, const TaskProgressFn& progress) const {
  SLQ_ASSIGN_OR_RETURN(json payload, ParsePayload(text));
  json opts = payload["options"];
  const std::string uri = opts.value("model_uri", opts.value("model_path", ""));
  if (progress) progress(JobStage::kFetch, 0, "fetching " + uri);
  SLQ_ASSIGN_OR_RETURN(std::string model_path, options_.resolve_model(uri));
  SLQ_ASSIGN_OR_RETURN(std::string data_path,
                       options_.resolve_data(opts.value("data_ref", std::string()), model_path));
  opts["model_path"] = model_path;
  opts["data_path"] = data_path;
  if (!opts.contains("model_id") || opts["model_id"].get<std::string>().empty()) opts["model_id"] = uri;
  if (!options_.profile_cache_dir.empty()) opts["profile_cache_dir"] = options_.profile_cache_dir;

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
  const bool with_head = opts.value("quantize_lm_head", false);
  std::map<int, std::vector<std::string>> groups;
  for (const auto& slot : model->LinearSlots()) {
    if (slot.layer < 0 && !with_head) continue;
    groups[slot.layer].push_back(slot.name);
  }
  json layers = json::array();
  for (auto& [layer, names] : groups) layers.push_back(names);
  if (progress) progress(JobStage::kFetch, 1, absl::StrCat("fetched; ", layers.size(), " layer groups"));
  json result = {{"options", opts}, {"layers", layers}};
  return result.dump();
}

absl::StatusOr<std::string> TaskExecutor::Profile(const std::string& text, const TaskProgressFn& progress) const {
  SLQ_ASSIGN_OR_RETURN(json payload, ParsePayload(text));
  SLQ_ASSIGN_OR_RETURN(quant::PipelineOptions opts, Options(payload));
  auto layers = payload.at("layers").get<std::vector<std::string>>();
  SLQ_ASSIGN_OR_RETURN(auto session, Session(opts, Forward(progress, JobStage::kProfile)));
  SLQ_ASSIGN_OR_RETURN(quant::LayerProfiles share, session->Profile(layers));
  Keep(std::move(session));
  json out = share;
  return out.dump();
}

absl::StatusOr<std::string> TaskExecutor::Search(const std::string& text, const TaskProgressFn& progress) const {
  SLQ_ASSIGN_OR_RETURN(json payload, ParsePayload(text));
  SLQ_ASSIGN_OR_RETURN(quant::PipelineOptions opts, Options(payload));
  std::vector<quant::LayerProfiles> shares;
  for (const auto& s : payload.at("profiles")) shares.push_back(s.get<quant::LayerProfiles>());
  SLQ_ASSIGN_OR_RETURN(quant::LayerProfiles merged, quant::MergeProfiles(shares));
  SLQ_ASSIGN_OR_RETURN(auto session, Session(opts, Forward(progress, JobStage::kSearch)));
  SLQ_ASSIGN_OR_RETURN(quant::SearchOutcome outcome, session->Search(merged));
  Keep(std::move(session));
  json out = {{"search", outcome}, {"profile", merged}};
  return out.dump();
}

absl::StatusOr<std::string> TaskExecutor::Pack(const std::string& text, const TaskProgressFn& progress) const {
  SLQ_ASSIGN_OR_RETURN(json payload, ParsePayload(text));
  SLQ_ASSIGN_OR_RETURN(quant::PipelineOptions opts, Options(payload));
  opts.output_dir = payload.at("staging").at("dir").get<std::string>();
  auto search = payload.at("search").get<quant::SearchOutcome>();
  auto profile = payload.at("profile").get<quant::LayerProfiles>();
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
  json out = {{"target_met", r.target_met},
              {"status", r.status},
              {"certificate", r.certificate},
              {"manifest_sha256", manifest_sha}};
  return out.dump();
}

}  // namespace slq
