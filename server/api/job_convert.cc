#include "server/api/job_convert.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace slq::api {
namespace {

using json = nlohmann::json;

bool ValidFormats(const std::string& f) {
  if (f.empty()) return false;
  for (char c : f) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == ',' || c == '.')) return false;
  }
  return true;
}

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

absl::StatusOr<std::string> TargetString(const slq::v1::FidelityTarget& t) {
  switch (t.target_case()) {
    case slq::v1::FidelityTarget::kMinEar:
      if (!(t.min_ear() > 0 && t.min_ear() <= 1)) {
        return absl::InvalidArgumentError(absl::StrCat("spec.target.min_ear must be in (0, 1], got ", t.min_ear()));
      }
      return absl::StrFormat("ear>=%.10g", t.min_ear());
    case slq::v1::FidelityTarget::kMaxKl:
      if (!(t.max_kl() > 0) || !std::isfinite(t.max_kl())) {
        return absl::InvalidArgumentError(absl::StrCat("spec.target.max_kl must be > 0, got ", t.max_kl()));
      }
      return absl::StrFormat("kl<=%.10g", t.max_kl());
    case slq::v1::FidelityTarget::kMaxAvgBits:
      if (!(t.max_avg_bits() >= 2 && t.max_avg_bits() <= 16)) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.target.max_avg_bits must be in [2, 16], got ", t.max_avg_bits()));
      }
      return absl::StrFormat("bits<=%.10g", t.max_avg_bits());
    case slq::v1::FidelityTarget::kTaskLosslessKl:
      if (!(t.task_lossless_kl() > 0) || !std::isfinite(t.task_lossless_kl())) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.target.task_lossless_kl must be > 0, got ", t.task_lossless_kl()));
      }
      // The engine's task-lossless mode is a KL budget (METHOD.md section 1).
      return absl::StrFormat("kl<=%.10g", t.task_lossless_kl());
    default:
      return absl::InvalidArgumentError(
          "spec.target is required: set one of min_ear, max_kl, max_avg_bits, task_lossless_kl");
  }
}

absl::StatusOr<slq::v1::FidelityTarget> ParseTargetString(const std::string& s) {
  slq::v1::FidelityTarget t;
  double v = 0;
  auto num = [&](size_t skip) { return absl::SimpleAtod(s.substr(skip), &v); };
  if (s.rfind("ear>=", 0) == 0 && num(5)) {
    t.set_min_ear(v);
  } else if (s.rfind("kl<=", 0) == 0 && num(4)) {
    t.set_max_kl(v);
  } else if (s.rfind("bits<=", 0) == 0 && num(6)) {
    t.set_max_avg_bits(v);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown target '", s, "'"));
  }
  return t;
}

absl::StatusOr<JobRequest> SpecToRequest(const slq::v1::JobSpec& spec, const std::string& key) {
  if (spec.model_uri().empty()) {
    return absl::InvalidArgumentError("spec.model_uri is required (file:///path, hf://org/name[@rev], https://...)");
  }
  auto target = TargetString(spec.target());
  if (!target.ok()) return target.status();
  std::string formats = spec.formats().empty() ? "4-8" : spec.formats();
  if (!ValidFormats(formats)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.formats '", formats, "' is not a bitwidth list: use e.g. \"4-8\", \"4-5-6-7-8\", \"2..8\" or \"4,6,8\""));
  }
  int group = spec.group_size() == 0 ? 128 : spec.group_size();
  if (group != -1 && group != 32 && group != 64 && group != 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.group_size must be 32, 64, 128 or -1 (per row), got ", spec.group_size()));
  }
  if (!(spec.temperature() >= 0 && spec.temperature() <= 10)) {
    return absl::InvalidArgumentError(absl::StrCat("spec.temperature must be in [0, 10], got ", spec.temperature()));
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
            {"temperature", spec.temperature() == 0 ? 1.0 : spec.temperature()}};
  if (spec.seed() != 0) o["seed"] = spec.seed();
  r.options_json = o.dump();
  return r;
}

slq::v1::JobState ToProto(JobState s) {
  return static_cast<slq::v1::JobState>(static_cast<int>(s) + 1);
}
slq::v1::JobStage ToProto(JobStage s) {
  return static_cast<slq::v1::JobStage>(static_cast<int>(s) + 1);
}
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
