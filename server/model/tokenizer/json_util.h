// Small helpers for reading tokenizer.json objects. nlohmann::json throws on type errors;
// the loader (hf_tokenizer.cc) catches those and turns them into InvalidArgument.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_JSON_UTIL_H_
#define SLQ_SERVER_MODEL_TOKENIZER_JSON_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace slq::tok {

// The "type" field of a component, or "" when absent.
inline std::string JsonType(const nlohmann::json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : std::string();
}

// Reads a pattern {"String": "x"}; Regex patterns are returned through *regex.
inline absl::Status JsonPattern(const nlohmann::json& j, std::string* literal, std::string* regex) {
  const nlohmann::json& p = j.at("pattern");
  if (p.contains("String")) {
    *literal = p["String"].get<std::string>();
    return absl::OkStatus();
  }
  if (p.contains("Regex") && regex != nullptr) {
    *regex = p["Regex"].get<std::string>();
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("tokenizer.json: unsupported pattern ", p.dump(), " (allowed: String",
                                               regex ? ", Regex of a known pre-tokenizer)" : ")"));
}

inline absl::Status UnknownComponent(const char* kind, const nlohmann::json& j, const char* allowed) {
  return absl::UnimplementedError(
      absl::StrCat("tokenizer.json: unsupported ", kind, " type \"", JsonType(j), "\" (supported: ", allowed, ")"));
}

// First code point of a one-character JSON string (replacement / content fields).
inline std::string JsonChar(const nlohmann::json& j, const char* key, const char* fallback) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string(fallback);
}

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_JSON_UTIL_H_
