#include "server/api/job_convert.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/spec/job_spec.h"

namespace slq::api {
namespace {

using json = nlohmann::json;

double Get(const json& j, const char* a, const char* b) {
  if (j.contains(a) && j[a].is_number()) return j[a].get<double>();
  if (j.contains(b) && j[b].is_number()) return j[b].get<double>();
  return 0;
}

void FillInterval(const json& j, slq::v1::Interval* out) {
  if (!j.is_object()) return;
  out->set_mean(Get(j, "mean", "mean"));
  out->set_lower(Get(j, "lo95", "lower"));
  out->set_upper(Get(j, "hi95", "upper"));
}

}  // namespace

absl::StatusOr<spec::Target> TargetFromProto(const slq::v1::FidelityTarget& t) {
  spec::Target out;
  const char* field = "";
  switch (t.target_case()) {
    case slq::v1::FidelityTarget::kMinEar:
      out = {spec::Target::Kind::kEar, t.min_ear()}, field = "min_ear";
      break;
    case slq::v1::FidelityTarget::kMaxKl:
      out = {spec::Target::Kind::kKl, t.max_kl()}, field = "max_kl";
      break;
    case slq::v1::FidelityTarget::kMaxAvgBits:
      out = {spec::Target::Kind::kBits, t.max_avg_bits()}, field = "max_avg_bits";
      break;
    // Task-lossless: the cloze check with this KL budget as the search's proxy, as `slq quantize --target tl`.
    case slq::v1::FidelityTarget::kTaskLosslessKl:
      out = {spec::Target::Kind::kTaskLossless, t.task_lossless_kl()}, field = "task_lossless_kl";
      break;
    default:
      return absl::InvalidArgumentError(
          "spec.target is required: set one of min_ear, max_kl, max_avg_bits, task_lossless_kl");
  }
  if (absl::Status s = spec::CheckTarget(out); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spec.target.", field, ": ", s.message()));
  }
  return out;
}

slq::v1::FidelityTarget TargetToProto(const spec::Target& t) {
  slq::v1::FidelityTarget p;
  switch (t.kind) {
    case spec::Target::Kind::kEar:
      p.set_min_ear(t.value);
      break;
    case spec::Target::Kind::kKl:
      p.set_max_kl(t.value);
      break;
    case spec::Target::Kind::kBits:
      p.set_max_avg_bits(t.value);
      break;
    case spec::Target::Kind::kTaskLossless:
      p.set_task_lossless_kl(t.value);
      break;
  }
  return p;
}

absl::StatusOr<std::string> TargetString(const slq::v1::FidelityTarget& t) {
  auto target = TargetFromProto(t);
  if (!target.ok()) return target.status();
  return target->ToString();
}

absl::StatusOr<slq::v1::FidelityTarget> ParseTargetString(const std::string& s) {
  auto t = spec::ParseTarget(s);
  if (!t.ok()) return t.status();
  return TargetToProto(*t);
}

absl::StatusOr<JobRequest> SpecToRequest(const slq::v1::JobSpec& spec, const std::string& key) {
  if (spec.model_uri().empty()) {
    return absl::InvalidArgumentError("spec.model_uri is required (file:///path, hf://org/name[@rev], https://...)");
  }
  // Errors of the one validator (server/spec/job_spec.h) start with the field's name, as slqctl prints them.
  const auto field_error = [](const absl::Status& s) {
    return s.message().rfind("spec.", 0) == 0 ? s : absl::InvalidArgumentError(absl::StrCat("spec.", s.message()));
  };
  auto target = TargetString(spec.target());
  if (!target.ok()) return field_error(target.status());
  std::string formats = spec.formats().empty() ? "4-8" : spec.formats();
  int group = spec.group_size() == 0 ? 128 : spec.group_size();
  const double temperature = spec.temperature() == 0 ? 1.0 : spec.temperature();
  const std::string quantizers =
      spec.quantizers().empty() ? spec::DefaultQuantizers(spec.hadamard()) : spec.quantizers();
  // The one validator slqctl and the engine use too (server/spec/job_spec.h).
  if (absl::Status s = spec::ValidateSpec({.target = *target,
                                           .formats = formats,
                                           .group_size = group,
                                           .symmetric = spec.symmetric(),
                                           .temperature = temperature,
                                           .quantizers = quantizers,
                                           .hadamard = spec.hadamard(),
                                           .symmetry = spec.symmetry(),
                                           .group_sizes = spec.group_sizes(),
                                           .grids = spec.grids(),
                                           .scales = spec.scales(),
                                           .cloze_items = spec.has_cloze_items() ? spec.cloze_items() : 2000});
      !s.ok()) {
    return field_error(s);
  }
  if (key.size() > 256) return absl::InvalidArgumentError("idempotency_key longer than 256 bytes");
  JobRequest r;
  r.model_uri = spec.model_uri();
  r.target = *target;
  r.formats = formats;
  r.group_size = group;
  r.calibration_data = spec.calibration_data();
  r.eval_data = spec.eval_data();
  r.idempotency_key = key;
  json o = {{"model_uri", spec.model_uri()},
            {"model_id", spec.model_uri()},
            {"data_ref", spec.calibration_data()},
            {"eval_ref", spec.eval_data()},
            {"target", *target},
            {"formats", formats},
            {"group_size", group},
            {"symmetric", spec.symmetric()},
            {"mse_clip", spec.mse_clip()},
            {"rotate", spec.hadamard()},
            {"quantize_lm_head", spec.has_keep_head_fp16() && !spec.keep_head_fp16()},
            {"temperature", temperature}};
  if (spec.seed() != 0) o["seed"] = spec.seed();
  if (quantizers != "rtn") o["quantizers"] = quantizers;  // absent = rtn (jobs stored before it existed)
  // Absent = the base variant only (as jobs stored before they existed).
  if (!spec.symmetry().empty()) o["symmetry"] = spec.symmetry();
  if (!spec.group_sizes().empty()) o["group_sizes"] = spec.group_sizes();
  if (!spec.grids().empty()) o["grids"] = spec.grids();               // absent = off
  if (spec.has_cloze_items()) o["cloze_items"] = spec.cloze_items();  // absent = the engine's default
  if (!spec.scales().empty()) o["scales"] = spec.scales();            // absent = fp16
  r.options_json = o.dump();
  return r;
}

slq::v1::JobState ToProto(JobState s) { return static_cast<slq::v1::JobState>(static_cast<int>(s) + 1); }
slq::v1::JobStage ToProto(JobStage s) { return static_cast<slq::v1::JobStage>(static_cast<int>(s) + 1); }
absl::StatusOr<JobState> FromProto(slq::v1::JobState s) {
  if (s == slq::v1::JOB_STATE_UNSPECIFIED || !slq::v1::JobState_IsValid(s)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid job state ", static_cast<int>(s)));
  }
  return static_cast<JobState>(static_cast<int>(s) - 1);
}
JobStage FromProto(slq::v1::JobStage s) {
  int v = std::clamp(static_cast<int>(s) - 1, 0, 5);
  return static_cast<JobStage>(v);
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  int64_t us = absl::ToUnixMicros(t);
  ts.set_seconds(us / 1000000);
  ts.set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
  return ts;
}

slq::v1::Certificate CertificateFromJson(const std::string& text) {
  slq::v1::Certificate c;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return c;
  c.set_json(text);
  c.set_source_model(j.value("/source_model/id"_json_pointer, std::string()));
  c.set_source_sha256(j.value("/source_model/sha256"_json_pointer, std::string()));
  c.set_tokenizer(j.value("/tokenizer/id"_json_pointer, std::string()));
  if (j.contains("layers") && j["layers"].is_object()) {
    std::vector<std::tuple<int, std::string, json>> layers;
    for (auto& [name, e] : j["layers"].items()) layers.emplace_back(e.value("layer", -1), name, e);
    // Transformer layers in order, the LM head (-1) last.
    std::sort(layers.begin(), layers.end(), [](const auto& a, const auto& b) {
      int la = std::get<0>(a) < 0 ? 1 << 30 : std::get<0>(a), lb = std::get<0>(b) < 0 ? 1 << 30 : std::get<0>(b);
      return std::tie(la, std::get<1>(a)) < std::tie(lb, std::get<1>(b));
    });
    for (auto& [layer, name, e] : layers) {
      auto* l = c.add_layers();
      l->set_name(name);
      l->set_bits(e.value("quantized", false) ? e.value("bits", 0) : 16);
      l->set_group_size(static_cast<int32_t>(e.value("group_size", 0)));
      l->set_symmetric(e.value("symmetric", false));
      l->set_rotation(e.value("rotation", false) ? "hadamard" : "");
      l->set_params(e.value("params", int64_t{0}));
    }
  }
  c.set_avg_bits_quantized(j.value("avg_bits_per_param_quantized_layers", 0.0));
  c.set_avg_bits_model(j.value("avg_bits_per_param_whole_model", 0.0));
  if (auto t = ParseTargetString(j.value("target", std::string())); t.ok()) *c.mutable_target() = *t;
  const json& h = j.contains("heldout") ? j["heldout"] : json::object();
  if (h.is_object()) {
    FillInterval(h.value("ear", json()), c.mutable_ear());
    FillInterval(h.value("kl", json()), c.mutable_kl());
    FillInterval(h.value("flip_rate", json()), c.mutable_flip_rate());
    FillInterval(h.value("ppl_ratio", json()), c.mutable_perplexity_ratio());
    c.set_sequences(static_cast<int32_t>(h.value("sequences", 0)));
    c.set_tokens(h.value("tokens", int64_t{0}));
    c.set_seed(h.value("bootstrap_seed", uint64_t{0}));
  }
  c.set_dataset_sha256(j.value("/dataset/sha256"_json_pointer, std::string()));
  // Certificates from before "heldout_dataset" were verified on the split of the calibration text.
  c.set_heldout_dataset(
      j.value("/heldout_dataset/id"_json_pointer, j.value("/dataset/path"_json_pointer, std::string())));
  c.set_heldout_dataset_sha256(j.value("/heldout_dataset/sha256"_json_pointer, c.dataset_sha256()));
  c.set_target_met(j.value("target_met", false));
  c.set_tool_version(j.value("tool_version", std::string()));
  if (j.contains("stage_wall_seconds") && j["stage_wall_seconds"].is_object()) {
    for (auto& [k, v] : j["stage_wall_seconds"].items()) {
      if (v.is_number()) (*c.mutable_stage_seconds())[k] = v.get<double>();
    }
  }
  return c;
}

slq::v1::Job JobToProto(const Job& job, const std::string& certificate_json) {
  slq::v1::Job p;
  p.set_id(job.id);
  auto* spec = p.mutable_spec();
  spec->set_model_uri(job.request.model_uri);
  if (auto t = ParseTargetString(job.request.target); t.ok()) *spec->mutable_target() = *t;
  spec->set_formats(job.request.formats);
  spec->set_group_size(job.request.group_size);
  spec->set_calibration_data(job.request.calibration_data);
  spec->set_eval_data(job.request.eval_data);
  json o = json::parse(job.request.options_json, nullptr, false);
  if (o.is_object()) {
    spec->set_symmetric(o.value("symmetric", false));
    spec->set_mse_clip(o.value("mse_clip", false));
    spec->set_hadamard(o.value("rotate", false));
    spec->set_keep_head_fp16(!o.value("quantize_lm_head", false));
    spec->set_seed(o.value("seed", uint64_t{0}));
    spec->set_temperature(o.value("temperature", 1.0));
    spec->set_quantizers(o.value("quantizers", "rtn"));
    spec->set_symmetry(o.value("symmetry", ""));
    spec->set_group_sizes(o.value("group_sizes", ""));
    spec->set_grids(o.value("grids", ""));
    if (o.contains("cloze_items")) spec->set_cloze_items(o.value("cloze_items", int64_t{0}));
    spec->set_scales(o.value("scales", ""));
  }
  p.set_state(ToProto(job.state));
  p.set_stage(ToProto(job.stage));
  p.set_progress(job.progress);
  p.set_message(job.error);
  p.set_artifact_id(job.artifact_id);
  *p.mutable_create_time() = ToProto(job.created);
  *p.mutable_update_time() = ToProto(job.updated);
  p.set_idempotency_key(job.request.idempotency_key);
  if (!certificate_json.empty()) *p.mutable_certificate() = CertificateFromJson(certificate_json);
  return p;
}

}  // namespace slq::api
