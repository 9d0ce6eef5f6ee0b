// Normalizers of tokenizer.json (see hf_components.h).
#include "absl/strings/str_replace.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/hf_components.h"
#include "server/model/tokenizer/json_util.h"
#include "server/model/tokenizer/unicode_tables.h"
#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void Normalize(std::string* text) const override {
    for (const auto& p : parts_) p->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// Prepends a string to non-empty text.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void Normalize(std::string* text) const override {
    if (!from_.empty()) *text = absl::StrReplaceAll(*text, {{from_, to_}});
  }

 private:
  std::string from_, to_;
};

// Strips Unicode whitespace on the left and/or right.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    size_t begin = 0, end = 0;
    bool seen = false;
    for (size_t pos = 0; pos < text->size();) {
      char32_t cp;
      const size_t len = DecodeUtf8(*text, pos, &cp);
      const bool ws = cp != kInvalidCodePoint && IsWhitespace(cp);
      if (!ws) {
        if (!seen) begin = pos;
        seen = true;
        end = pos + len;
      }
      pos += len;
    }
    if (!seen) {
      if (left_ || right_) text->clear();
      return;
    }
    *text = text->substr(left_ ? begin : 0, (right_ ? end : text->size()) - (left_ ? begin : 0));
  }

 private:
  bool left_, right_;
};

class IdentityNormalizer : public Normalizer {
 public:
  void Normalize(std::string*) const override {}
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& j) {
  const std::string type = JsonType(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& sub : j.at("normalizers")) {
      SLQ_ASSIGN_OR_RETURN(auto p, MakeNormalizer(sub));
      parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(j.at("prepend").get<std::string>());
  if (type == "Replace") {
    std::string from;
    SLQ_RETURN_IF_ERROR(JsonPattern(j, &from, nullptr));
    return std::make_unique<ReplaceNormalizer>(from, j.at("content").get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(j.value("strip_left", true), j.value("strip_right", true));
  }
  if (type == "NFC") return std::make_unique<IdentityNormalizer>();
  return UnknownComponent("normalizer", j, "Sequence, Prepend, Replace, Strip, NFC");
}

}  // namespace slq::tok
