// QuantizationSession::Finish (fidelity certificate, METHOD.md section 6, + artifact) and the
// JSON forms of the pipeline's inputs and outputs.
#include <chrono>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "server/common/status_macros.h"
#include "server/quant/artifact.h"
#include "server/quant/pipeline.h"
#include "server/quant/rounding.h"

namespace slq::quant {

using nlohmann::json;

absl::StatusOr<PipelineResult> QuantizationSession::Finish(const LayerProfiles& profile, const SearchOutcome& search,
                                                           const FidelityReport& heldout) {
  if (progress_) progress_("write", 0);
  const auto t0 = std::chrono::steady_clock::now();
  SLQ_RETURN_IF_ERROR(mq_->Apply(search.bits));
  PipelineResult res;
  res.target_met = Met(heldout, search.avg_bits);
  const bool ear = target_.kind == Target::Kind::kEar;
  const double metric = Conservative(heldout);
  const std::string what = ear ? "EAR" : "KL";
  if (res.target_met) {
    res.status = "met";
  } else if (target_.kind == Target::Kind::kTaskLossless && heldout.task.items > 0) {
    const TaskResult& t = heldout.task;
    res.status = absl::StrFormat(
        "failed on held-out: cloze %s: accuracy %.4f vs base %.4f (1.96 x SE %.4f; detects %.4f with 80%% power, %d "
        "items) at %.3f bits",
        t.verdict, t.acc_quant, t.acc_base, 1.96 * t.se_base, t.min_detectable_diff, static_cast<int>(t.items),
        search.avg_bits);
  } else if (!search.calibration_met) {
    res.status =
        absl::StrFormat("unreachable: best found %s %.6f (held-out 95%% %s bound %.6f) at %.3f bits", what,
                        ear ? heldout.ear.mean : heldout.kl.mean, ear ? "lower" : "upper", metric, search.avg_bits);
  } else {
    res.status = absl::StrFormat("failed on held-out: %s 95%% %s bound %.6f misses %s at %.3f bits", what,
                                 ear ? "lower" : "upper", metric, target_.ToString(), search.avg_bits);
  }
  double qparams = 0;
  for (const SlotInfo& s : mq_->slots()) qparams += static_cast<double>(s.params());
  const double total = static_cast<double>(model_->ParamCount());
  const double whole = (search.avg_bits * qparams + 16.0 * std::max(0.0, total - qparams)) / total;
  json files = json::array();
  for (const auto& f : model_->files) files.push_back({{"name", f.name}, {"sha256", f.sha256}, {"bytes", f.bytes}});
  json tok_files = json::array();
  for (const auto& f : tokenizer_files_) tok_files.push_back(std::filesystem::path(f).filename().string());
  json cert = {{"tool_version", kToolVersion},
               {"source_model",
                {{"id", opts_.model_id},
                 {"path", opts_.model_path},
                 {"format", model_->format},
                 {"sha256", model_->identity_sha256},
                 {"files", files}}},
               {"tokenizer",
                {{"id", opts_.tokenizer_path.empty() ? opts_.model_path : opts_.tokenizer_path}, {"files", tok_files}}},
               {"layers", DescribeLinears(*model_)},
               {"avg_bits_per_param_quantized_layers", search.avg_bits},
               {"avg_bits_per_param_whole_model", whole},
               {"quantized_params", qparams},
               {"total_params", total},
               {"kept_16bit", opts_.quantize_lm_head ? "embeddings (fp16); LM head quantized"
                                                     : "embeddings and LM head kept at 16 bits (fp16)"},
               {"target", target_.ToString()},
               {"target_met", res.target_met},
               {"status", res.status},
               {"heldout", heldout},
               {"calibration",
                {{"sequences", data_.calibration.size()},
                 {"tokens", data_.CalibrationTokens()},
                 {"target_met", search.calibration_met},
                 {"metric", search.calib_metric},
                 {"mean", search.calib_mean},
                 {"acceptance",
                  opts_.transfer_z > 0
                      ? absl::StrFormat("predicted held-out bound (transfer z %.2f, calibration spread at its 95%% "
                                        "upper bound)",
                                        opts_.transfer_z)
                      : std::string("calibration 95% bound")}}},
               {"dataset",
                {{"id", opts_.data_id.empty() ? opts_.data_path : opts_.data_id},
                 {"path", opts_.data_path},
                 {"sha256", data_.data_sha256},
                 {"split_rule", data_.split_rule},
                 {"documents", data_.documents},
                 {"calibration_documents", data_.calibration_documents},
                 {"heldout_documents", data_.heldout_documents},
                 {"heldout_sequences", data_.heldout.size()},
                 {"heldout_tokens", data_.HeldoutTokens()}}},
               // The text the held-out numbers above were computed on: its own file (slqctl submit --eval,
               // PipelineOptions::heldout_path) or the held-out split of the calibration text.
               {"heldout_dataset", HeldoutDataset()},
               {"seeds", {{"bootstrap", opts_.seed}, {"noise", opts_.seed}, {"rotation", opts_.rotation_seed}}},
               {"search",
                {{"estimator", profile.estimator},
                 {"solver", opts_.solver},
                 {"formats", formats_},
                 {"uniform_bits", opts_.uniform_bits},
                 {"outcome", search}}},
               {"options", opts_},
               {"temperature", opts_.temperature},
               {"verification_device", eval_->device()},
               {"stage_wall_seconds", stage_seconds_}};
  if (!data_.gram_scheme.empty()) {  // mse/gptq: the windows their input Gram came from
    cert["calibration"]["gram"] = {{"scheme", data_.gram_scheme},
                                   {"sequences", data_.gram.size()},
                                   {"tokens", data_.GramTokens()},
                                   {"disjoint_from", data_.gram_scheme == "all-calibration"
                                                         ? "held-out windows (a bits<=X target: every calibration "
                                                           "window, the measured ones included)"
                                                         : "calibration and held-out windows"}};
  }
  if (!opts_.output_dir.empty()) {
    ArtifactWriteOptions wo;
    wo.certificate = cert;
    wo.extra_files = tokenizer_files_;
    SLQ_RETURN_IF_ERROR(WriteArtifact(*model_, opts_.output_dir, wo));
    res.artifact_dir = opts_.output_dir;
  }
  stage_seconds_["write"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cert["stage_wall_seconds"] = stage_seconds_;
  res.certificate = std::move(cert);
  if (progress_) progress_("write", 1);
  return res;
}

json QuantizationSession::HeldoutDataset() const {
  const bool separate = !data_.heldout_sha256.empty();
  const std::string data_id = opts_.data_id.empty() ? opts_.data_path : opts_.data_id;
  const std::string heldout_id = opts_.heldout_id.empty() ? opts_.heldout_path : opts_.heldout_id;
  return {{"id", separate ? heldout_id : data_id},
          {"path", separate ? opts_.heldout_path : opts_.data_path},
          {"sha256", separate ? data_.heldout_sha256 : data_.data_sha256},
          {"source", separate ? "separate held-out text" : "held-out split of the calibration text"},
          {"documents", data_.heldout_documents},
          {"sequences", data_.heldout.size()},
          {"tokens", data_.HeldoutTokens()}};
}

void to_json(json& j, const PipelineOptions& o) {
  j = {{"model_path", o.model_path},
       {"tokenizer_path", o.tokenizer_path},
       {"model_id", o.model_id},
       {"data_path", o.data_path},
       {"heldout_path", o.heldout_path},
       {"data_id", o.data_id},
       {"heldout_id", o.heldout_id},
       {"output_dir", o.output_dir},
       {"target", o.target},
       {"formats", o.formats},
       {"uniform_bits", o.uniform_bits},
       {"group_size", o.group_size},
       {"symmetric", o.symmetric},
       {"mse_clip", o.mse_clip},
       {"rotate", o.rotate},
       {"quantizers", o.quantizers},
       {"symmetry", o.symmetry},
       {"group_sizes", o.group_sizes},
       {"grids", o.grids},
       {"scales", o.scales},
       {"gptq_damp", o.gptq_damp},
       {"rotation_seed", o.rotation_seed},
       {"estimator", o.estimator},
       {"solver", o.solver},
       {"temperature", o.temperature},
       {"data", o.data},
       {"bootstrap_resamples", o.bootstrap_resamples},
       {"calibration_resamples", o.calibration_resamples},
       {"seed", o.seed},
       {"closed_loop_max_evals", o.closed_loop_max_evals},
       {"transfer_z", o.transfer_z},
       {"cloze_max_items", o.cloze_max_items},
       {"quantize_lm_head", o.quantize_lm_head},
       {"embeddings_fp16", o.embeddings_fp16},
       {"profile_cache_dir", o.profile_cache_dir}};
  // Only where they matter, so RTN-only options (and certificates) stay as they were.
  if (UsesGram(o)) {
    j["gptq_act_order"] = o.gptq_act_order;
    j["gram_data"] = o.gram_data;
  }
}

void from_json(const json& j, PipelineOptions& o) {
  const PipelineOptions d;
  o.model_path = j.value("model_path", d.model_path);
  o.tokenizer_path = j.value("tokenizer_path", d.tokenizer_path);
  o.model_id = j.value("model_id", d.model_id);
  o.data_path = j.value("data_path", d.data_path);
  o.heldout_path = j.value("heldout_path", d.heldout_path);
  o.data_id = j.value("data_id", d.data_id);
  o.heldout_id = j.value("heldout_id", d.heldout_id);
  o.output_dir = j.value("output_dir", d.output_dir);
  o.target = j.value("target", d.target);
  o.formats = j.value("formats", d.formats);
  o.uniform_bits = j.value("uniform_bits", d.uniform_bits);
  o.group_size = j.value("group_size", d.group_size);
  o.symmetric = j.value("symmetric", d.symmetric);
  o.mse_clip = j.value("mse_clip", d.mse_clip);
  o.rotate = j.value("rotate", d.rotate);
  o.quantizers = j.value("quantizers", d.quantizers);
  o.symmetry = j.value("symmetry", d.symmetry);
  o.group_sizes = j.value("group_sizes", d.group_sizes);
  o.grids = j.value("grids", d.grids);
  o.scales = j.value("scales", d.scales);
  o.gptq_damp = j.value("gptq_damp", d.gptq_damp);
  o.gptq_act_order = j.value("gptq_act_order", d.gptq_act_order);
  if (j.contains("gram_data")) j.at("gram_data").get_to(o.gram_data);
  o.rotation_seed = j.value("rotation_seed", d.rotation_seed);
  o.estimator = j.value("estimator", d.estimator);
  o.solver = j.value("solver", d.solver);
  o.temperature = j.value("temperature", d.temperature);
  if (j.contains("data")) j.at("data").get_to(o.data);
  o.bootstrap_resamples = j.value("bootstrap_resamples", d.bootstrap_resamples);
  o.calibration_resamples = j.value("calibration_resamples", d.calibration_resamples);
  o.seed = j.value("seed", d.seed);
  o.closed_loop_max_evals = j.value("closed_loop_max_evals", d.closed_loop_max_evals);
  o.transfer_z = j.value("transfer_z", d.transfer_z);
  o.cloze_max_items = j.value("cloze_max_items", d.cloze_max_items);
  o.quantize_lm_head = j.value("quantize_lm_head", d.quantize_lm_head);
  o.embeddings_fp16 = j.value("embeddings_fp16", d.embeddings_fp16);
  o.profile_cache_dir = j.value("profile_cache_dir", d.profile_cache_dir);
}

void to_json(json& j, const SearchOutcome& s) {
  json steps = json::array();
  for (const auto& st : s.steps) {
    steps.push_back({{"max_damage", st.max_damage},
                     {"avg_bits", st.avg_bits},
                     {"calib_metric", st.calib_metric},
                     {"calib_mean", st.calib_mean},
                     {"calib_kl", st.calib_kl},
                     {"met", st.met}});
  }
  // "bits": each layer's width (16 = kept dense); "choices": the search's codes (width + rounding
  // + variant, quant/choice.h) and "variants" their names, present only when some layer is not
  // plain RTN at the base variant, so readers of "bits" always get widths and the outcome still
  // round-trips exactly.
  std::map<std::string, int> widths;
  bool plain = true;
  for (const auto& [name, choice] : s.bits) {
    widths[name] = IsDenseChoice(choice) ? choice : ChoiceBits(choice);
    plain = plain && widths[name] == choice;
  }
  j = {{"bits", widths},
       {"avg_bits", s.avg_bits},
       {"max_damage", s.max_damage},
       {"calibration_met", s.calibration_met},
       {"calib_metric", s.calib_metric},
       {"calib_mean", s.calib_mean},
       {"damage_metric", s.damage_metric},
       {"steps", steps},
       {"note", s.note},
       {"wall_seconds", s.wall_seconds}};
  if (!plain) {
    j["choices"] = s.bits;
    if (!s.variants.empty()) j["variants"] = s.variants;
  }
}

void from_json(const json& j, SearchOutcome& s) {
  s.bits = j.contains("choices") ? j.at("choices").get<std::map<std::string, int>>()
                                 : j.at("bits").get<std::map<std::string, int>>();
  s.variants = j.contains("variants") ? j.at("variants").get<std::map<std::string, std::string>>()
                                      : std::map<std::string, std::string>{};
  s.avg_bits = j.at("avg_bits").get<double>();
  s.max_damage = j.at("max_damage").get<double>();
  s.calibration_met = j.at("calibration_met").get<bool>();
  s.calib_metric = j.at("calib_metric").get<double>();
  s.calib_mean = j.value("calib_mean", 0.0);
  s.damage_metric = j.value("damage_metric", "");
  s.note = j.value("note", "");
  s.wall_seconds = j.value("wall_seconds", 0.0);
  s.steps.clear();
  for (const auto& st : j.at("steps")) {
    s.steps.push_back({st.at("max_damage").get<double>(), st.at("avg_bits").get<double>(),
                       st.at("calib_metric").get<double>(), st.value("calib_mean", 0.0), st.value("calib_kl", 0.0),
                       st.at("met").get<bool>()});
  }
}

}  // namespace slq::quant
