#include "server/model/config.h"

#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"

namespace slq {
namespace {

using json = nlohmann::json;

// Per-architecture traits: one row per supported HF architecture.
struct ArchTraits {
  absl::string_view name;
  bool qkv_bias;        // q/k/v projections always have a bias
  bool qk_norm;         // per-head RMSNorm on q and k before RoPE
  bool sliding_window;  // honours config "sliding_window"
};
constexpr ArchTraits kArchitectures[] = {
    {"LlamaForCausalLM", false, false, false},
    {"MistralForCausalLM", false, false, true},
    {"Qwen2ForCausalLM", true, false, false},
    {"Qwen3ForCausalLM", false, true, false},
};

class JsonReader {
 public:
  JsonReader(const json& j, absl::string_view source) : j_(j), source_(source) {}

  absl::StatusOr<std::optional<int64_t>> OptInt(absl::string_view key) const {
    auto it = j_.find(std::string(key));
    if (it == j_.end() || it->is_null()) return std::optional<int64_t>();
    if (!it->is_number_integer()) return Bad(key, "an integer");
    return std::optional<int64_t>(it->get<int64_t>());
  }
  absl::StatusOr<int64_t> Int(absl::string_view key) const {
    SLQ_ASSIGN_OR_RETURN(auto v, OptInt(key));
    if (!v) return Missing(key);
    return *v;
  }
  absl::StatusOr<std::optional<double>> OptNum(absl::string_view key) const {
    auto it = j_.find(std::string(key));
    if (it == j_.end() || it->is_null()) return std::optional<double>();
    if (!it->is_number()) return Bad(key, "a number");
    return std::optional<double>(it->get<double>());
  }
  absl::StatusOr<bool> Bool(absl::string_view key, bool def) const {
    auto it = j_.find(std::string(key));
    if (it == j_.end() || it->is_null()) return def;
    if (!it->is_boolean()) return Bad(key, "true or false");
    return it->get<bool>();
  }
  absl::Status Bad(absl::string_view key, absl::string_view want) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": '", key, "' must be ", want, ", got ", j_.at(std::string(key)).dump()));
  }
  absl::Status Missing(absl::string_view key) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": missing required key '", key, "'"));
  }

 private:
  const json& j_;
  absl::string_view source_;
};

absl::StatusOr<RopeScaling> ParseRopeScaling(const json& rs, absl::string_view source) {
  RopeScaling out;
  if (rs.is_null()) return out;
  if (!rs.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": 'rope_scaling' must be an object"));
  }
  std::string type = rs.value("rope_type", rs.value("type", std::string("default")));
  JsonReader r(rs, source);
  if (type == "default") return out;
  SLQ_ASSIGN_OR_RETURN(auto factor, r.OptNum("factor"));
  if (!factor || *factor <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": rope_scaling '", type, "' needs a positive 'factor'"));
  }
  out.factor = *factor;
  if (type == "linear") {
    out.type = RopeScaling::Type::kLinear;
    return out;
  }
  if (type != "llama3") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": unsupported rope_scaling type '", type, "' (supported: default, linear, llama3)"));
  }
  out.type = RopeScaling::Type::kLlama3;
  SLQ_ASSIGN_OR_RETURN(auto lo, r.OptNum("low_freq_factor"));
  SLQ_ASSIGN_OR_RETURN(auto hi, r.OptNum("high_freq_factor"));
  SLQ_ASSIGN_OR_RETURN(auto orig, r.OptInt("original_max_position_embeddings"));
  if (!lo || !hi || !orig || *hi <= *lo || *orig <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": llama3 rope_scaling needs low_freq_factor < high_freq_factor and a positive "
                     "original_max_position_embeddings"));
  }
  out.low_freq_factor = *lo;
  out.high_freq_factor = *hi;
  out.original_max_position_embeddings = *orig;
  return out;
}

absl::StatusOr<std::vector<int32_t>> ParseIds(const json& v, absl::string_view key, absl::string_view source) {
  std::vector<int32_t> ids;
  if (v.is_null()) return ids;
  if (v.is_number_integer()) {
    ids.push_back(v.get<int32_t>());
    return ids;
  }
  if (v.is_array()) {
    for (const json& e : v) {
      if (!e.is_number_integer()) break;
      ids.push_back(e.get<int32_t>());
    }
    if (ids.size() == v.size()) return ids;
  }
  return absl::InvalidArgumentError(absl::StrCat(source, ": '", key, "' must be an integer or a list of integers"));
}

// bos/eos ids from a config or generation config object (only the keys present).
absl::Status ParseSpecialIds(const json& j, absl::string_view source, ModelConfig* cfg) {
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null()) {
    SLQ_ASSIGN_OR_RETURN(auto bos, ParseIds(j["bos_token_id"], "bos_token_id", source));
    if (bos.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": 'bos_token_id' must be one id"));
    }
    cfg->bos_token_id = bos[0];
  }
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    SLQ_ASSIGN_OR_RETURN(cfg->eos_token_ids, ParseIds(j["eos_token_id"], "eos_token_id", source));
  }
  return absl::OkStatus();
}

const ArchTraits* FindArch(absl::string_view name) {
  for (const auto& a : kArchitectures) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

absl::Status ParseShape(const JsonReader& r, ModelConfig* c) {
  SLQ_ASSIGN_OR_RETURN(c->hidden_size, r.Int("hidden_size"));
  SLQ_ASSIGN_OR_RETURN(c->intermediate_size, r.Int("intermediate_size"));
  SLQ_ASSIGN_OR_RETURN(c->num_layers, r.Int("num_hidden_layers"));
  SLQ_ASSIGN_OR_RETURN(c->num_heads, r.Int("num_attention_heads"));
  SLQ_ASSIGN_OR_RETURN(c->vocab_size, r.Int("vocab_size"));
  SLQ_ASSIGN_OR_RETURN(auto kv, r.OptInt("num_key_value_heads"));
  c->num_kv_heads = kv.value_or(c->num_heads);
  SLQ_ASSIGN_OR_RETURN(auto hd, r.OptInt("head_dim"));
  c->head_dim = hd.value_or(c->num_heads > 0 ? c->hidden_size / c->num_heads : 0);
  SLQ_ASSIGN_OR_RETURN(auto maxpos, r.OptInt("max_position_embeddings"));
  c->max_position_embeddings = maxpos.value_or(2048);
  SLQ_ASSIGN_OR_RETURN(auto eps, r.OptNum("rms_norm_eps"));
  c->rms_norm_eps = eps.value_or(1e-6);
  return absl::OkStatus();
}

absl::Status ParseRope(const json& j, absl::string_view source, ModelConfig* c) {
  // transformers >= 5 writes "rope_parameters" {rope_theta, rope_type, ...}; older versions
  // write "rope_theta" and "rope_scaling" at the top level.
  const json* params = nullptr;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    params = &j["rope_parameters"];
  }
  JsonReader top(j, source);
  SLQ_ASSIGN_OR_RETURN(auto theta, top.OptNum("rope_theta"));
  if (!theta && params != nullptr) {
    SLQ_ASSIGN_OR_RETURN(theta, JsonReader(*params, source).OptNum("rope_theta"));
  }
  c->rope_theta = theta.value_or(10000.0);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    SLQ_ASSIGN_OR_RETURN(c->rope_scaling, ParseRopeScaling(j["rope_scaling"], source));
  } else if (params != nullptr) {
    SLQ_ASSIGN_OR_RETURN(c->rope_scaling, ParseRopeScaling(*params, source));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SupportedArchitectures() {
  std::vector<absl::string_view> names;
  for (const auto& a : kArchitectures) names.push_back(a.name);
  return absl::StrJoin(names, ", ");
}

absl::Status ModelConfig::Validate() const {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("model config (", architecture, "): ", what));
  };
  if (hidden_size <= 0 || intermediate_size <= 0 || num_layers <= 0 || num_heads <= 0 || num_kv_heads <= 0 ||
      head_dim <= 0 || vocab_size <= 0) {
    return bad(absl::StrCat("sizes must be positive: hidden_size=", hidden_size, " intermediate_size=",
                            intermediate_size, " num_layers=", num_layers, " num_heads=", num_heads,
                            " num_kv_heads=", num_kv_heads, " head_dim=", head_dim, " vocab_size=", vocab_size));
  }
  // Upper bounds far above any real model: they stop a corrupt header from asking for
  // absurd allocations before the tensors are even looked at.
  if (num_layers > 4096 || hidden_size > (1 << 20) || intermediate_size > (1 << 22) || num_heads > 4096 ||
      head_dim > 4096 || vocab_size > (1 << 24) || max_position_embeddings > (1 << 24)) {
    return bad(absl::StrCat("sizes out of range: num_layers=", num_layers, " hidden_size=", hidden_size,
                            " intermediate_size=", intermediate_size, " num_heads=", num_heads, " head_dim=", head_dim,
                            " vocab_size=", vocab_size, " max_position_embeddings=", max_position_embeddings));
  }
  if (num_heads % num_kv_heads != 0) {
    return bad(absl::StrCat("num_heads ", num_heads, " is not a multiple of num_kv_heads ", num_kv_heads));
  }
  if (head_dim % 2 != 0) return bad(absl::StrCat("head_dim ", head_dim, " must be even"));
  if (max_position_embeddings <= 0) return bad("max_position_embeddings must be positive");
  if (!(rms_norm_eps > 0) || !(rope_theta > 0)) return bad("rms_norm_eps and rope_theta must be > 0");
  if (bos_token_id >= vocab_size) return bad(absl::StrCat("bos_token_id ", bos_token_id, " >= vocab"));
  for (int32_t e : eos_token_ids) {
    if (e < 0 || e >= vocab_size) return bad(absl::StrCat("eos_token_id ", e, " outside the vocab"));
  }
  return absl::OkStatus();
}

namespace {
absl::StatusOr<ModelConfig> ParseHfConfigImpl(absl::string_view json_text, absl::string_view source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a valid JSON object"));
  }
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": 'architectures' must be a non-empty list (supported: ", SupportedArchitectures(), ")"));
  }
  ModelConfig c;
  c.architecture = j["architectures"][0].get<std::string>();
  const ArchTraits* arch = FindArch(c.architecture);
  if (arch == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": unsupported architecture '", c.architecture,
                                                   "' (supported: ", SupportedArchitectures(), ")"));
  }
  JsonReader r(j, source);
  SLQ_RETURN_IF_ERROR(ParseShape(r, &c));
  SLQ_RETURN_IF_ERROR(ParseRope(j, source, &c));
  std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") {
    return absl::InvalidArgumentError(absl::StrCat(source, ": unsupported hidden_act '", act, "' (supported: silu)"));
  }
  SLQ_ASSIGN_OR_RETURN(bool mlp_bias, r.Bool("mlp_bias", false));
  if (mlp_bias) return absl::InvalidArgumentError(absl::StrCat(source, ": mlp_bias=true is not supported"));
  SLQ_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  SLQ_ASSIGN_OR_RETURN(bool attn_bias, r.Bool("attention_bias", false));
  c.qkv_bias = arch->qkv_bias || attn_bias;
  c.qk_norm = arch->qk_norm;
  if (arch->sliding_window) {
    SLQ_ASSIGN_OR_RETURN(auto sw, r.OptInt("sliding_window"));
    c.sliding_window = sw.value_or(0);
  }
  SLQ_RETURN_IF_ERROR(ParseSpecialIds(j, source, &c));
  SLQ_RETURN_IF_ERROR(c.Validate());
  return c;
}
}  // namespace

absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, absl::string_view source) {
  // The checks above test types before reading; this catches what they miss (e.g. a
  // non-string "hidden_act") so a malformed file is an error, never an abort.
  try {
    return ParseHfConfigImpl(json_text, source);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed config: ", e.what()));
  }
}

absl::StatusOr<ModelConfig> LoadHfConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  SLQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  SLQ_ASSIGN_OR_RETURN(ModelConfig c, ParseHfConfig(text, path));
  const std::string gen_path = dir + "/generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    SLQ_ASSIGN_OR_RETURN(std::string gen_text, ReadFile(gen_path));
    json g = json::parse(gen_text, nullptr, /*allow_exceptions=*/false);
    if (g.is_discarded() || !g.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(gen_path, ": not a valid JSON object"));
    }
    try {
      SLQ_RETURN_IF_ERROR(ParseSpecialIds(g, gen_path, &c));
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(gen_path, ": ", e.what()));
    }
    SLQ_RETURN_IF_ERROR(c.Validate());
  }
  return c;
}

}  // namespace slq
