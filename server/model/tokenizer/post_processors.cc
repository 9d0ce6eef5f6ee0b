// Post-processors of tokenizer.json (see hf_components.h).
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/hf_components.h"
#include "server/model/tokenizer/json_util.h"

namespace slq::tok {
namespace {

// A flat template: ids before the sequence, ids after it.
class TemplatePostProcessor : public PostProcessor {
 public:
  TemplatePostProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void Process(std::vector<int32_t>* ids) const override {
    ids->insert(ids->begin(), before_.begin(), before_.end());
    ids->insert(ids->end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_, after_;
};

class SequencePostProcessor : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void Process(std::vector<int32_t>* ids) const override {
    for (const auto& p : parts_) p->Process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

// TemplateProcessing "single": [{"SpecialToken": {"id": name}} | {"Sequence": {"id": "A"}}].
absl::StatusOr<std::unique_ptr<PostProcessor>> MakeTemplate(const nlohmann::json& j) {
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const auto& item : j.at("single")) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    const std::string name = item.at("SpecialToken").at("id").get<std::string>();
    const auto& specials = j.at("special_tokens");
    if (!specials.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: TemplateProcessing uses special token \"", name,
                                                     "\" that is missing from its special_tokens"));
    }
    for (const auto& id : specials[name].at("ids")) {
      (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
  }
  return std::make_unique<TemplatePostProcessor>(std::move(before), std::move(after));
}

// Bert/Roberta: {"cls": [token, id], "sep": [token, id]} -> cls A sep.
std::unique_ptr<PostProcessor> MakeClsSep(const nlohmann::json& j) {
  return std::make_unique<TemplatePostProcessor>(std::vector<int32_t>{j.at("cls").at(1).get<int32_t>()},
                                                 std::vector<int32_t>{j.at("sep").at(1).get<int32_t>()});
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& j) {
  const std::string type = JsonType(j);
  if (type == "TemplateProcessing") return MakeTemplate(j);
  if (type == "ByteLevel")
    return std::make_unique<TemplatePostProcessor>(std::vector<int32_t>{}, std::vector<int32_t>{});
  if (type == "BertProcessing" || type == "RobertaProcessing") return MakeClsSep(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (const auto& sub : j.at("processors")) {
      SLQ_ASSIGN_OR_RETURN(auto p, MakePostProcessor(sub));
      parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePostProcessor>(std::move(parts));
  }
  return UnknownComponent("post_processor", j,
                          "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, "
                          "Sequence");
}

}  // namespace slq::tok
