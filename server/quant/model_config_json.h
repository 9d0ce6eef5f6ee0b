// ModelConfig <-> JSON (every field), for the artifact manifest. Round-trips exactly.
// Thread safety: pure functions.
#ifndef SLQ_SERVER_QUANT_MODEL_CONFIG_JSON_H_
#define SLQ_SERVER_QUANT_MODEL_CONFIG_JSON_H_

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/config.h"

namespace slq::quant {

nlohmann::json ModelConfigToJson(const ModelConfig& c);
// InvalidArgument naming the missing/bad field; the result is Validate()d.
[[nodiscard]] absl::StatusOr<ModelConfig> ModelConfigFromJson(const nlohmann::json& j);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_MODEL_CONFIG_JSON_H_
