#include "server/quant/model_config_json.h"

#include "absl/strings/str_cat.h"

namespace slq::quant {

nlohmann::json ModelConfigToJson(const ModelConfig& c) {
  nlohmann::json rs = {{"type", static_cast<int>(c.rope_scaling.type)},
                       {"factor", c.rope_scaling.factor},
                       {"low_freq_factor", c.rope_scaling.low_freq_factor},
                       {"high_freq_factor", c.rope_scaling.high_freq_factor},
                       {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  return {{"architecture", c.architecture},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_layers", c.num_layers},
          {"num_heads", c.num_heads},
          {"num_kv_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_style", c.rope_style == RopeStyle::kRotateHalf ? "rotate_half" : "interleaved"},
          {"rope_scaling", rs},
          {"sliding_window", c.sliding_window},
          {"tie_word_embeddings", c.tie_word_embeddings},
          {"qkv_bias", c.qkv_bias},
          {"qk_norm", c.qk_norm},
          {"bos_token_id", c.bos_token_id},
          {"eos_token_ids", c.eos_token_ids}};
}

absl::StatusOr<ModelConfig> ModelConfigFromJson(const nlohmann::json& j) {
  ModelConfig c;
  try {
    c.architecture = j.at("architecture").get<std::string>();
    c.hidden_size = j.at("hidden_size").get<int64_t>();
    c.intermediate_size = j.at("intermediate_size").get<int64_t>();
    c.num_layers = j.at("num_layers").get<int64_t>();
    c.num_heads = j.at("num_heads").get<int64_t>();
    c.num_kv_heads = j.at("num_kv_heads").get<int64_t>();
    c.head_dim = j.at("head_dim").get<int64_t>();
    c.vocab_size = j.at("vocab_size").get<int64_t>();
    c.max_position_embeddings = j.at("max_position_embeddings").get<int64_t>();
    c.rms_norm_eps = j.at("rms_norm_eps").get<double>();
    c.rope_theta = j.at("rope_theta").get<double>();
    c.rope_style =
        j.at("rope_style").get<std::string>() == "interleaved" ? RopeStyle::kInterleaved : RopeStyle::kRotateHalf;
    const auto& rs = j.at("rope_scaling");
    c.rope_scaling.type = static_cast<RopeScaling::Type>(rs.at("type").get<int>());
    c.rope_scaling.factor = rs.at("factor").get<double>();
    c.rope_scaling.low_freq_factor = rs.at("low_freq_factor").get<double>();
    c.rope_scaling.high_freq_factor = rs.at("high_freq_factor").get<double>();
    c.rope_scaling.original_max_position_embeddings = rs.at("original_max_position_embeddings").get<int64_t>();
    c.sliding_window = j.at("sliding_window").get<int64_t>();
    c.tie_word_embeddings = j.at("tie_word_embeddings").get<bool>();
    c.qkv_bias = j.at("qkv_bias").get<bool>();
    c.qk_norm = j.at("qk_norm").get<bool>();
    c.bos_token_id = j.at("bos_token_id").get<int32_t>();
    c.eos_token_ids = j.at("eos_token_ids").get<std::vector<int32_t>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("model_config in manifest: ", e.what()));
  }
  absl::Status s = c.Validate();
  if (!s.ok()) return s;
  return c;
}

}  // namespace slq::quant
