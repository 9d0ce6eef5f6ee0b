// ChatTemplate: the subset of Jinja2 that Hugging Face chat templates (tokenizer_config.json
// "chat_template") use, enough for the Llama-3, ChatML/Qwen and Mistral templates.
//
//   SLQ_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(config["chat_template"]));
//   ChatTemplate::Inputs in;
//   in.messages = {{"system", "Be brief."}, {"user", "Hi"}};
//   in.bos_token = "<s>"; in.add_generation_prompt = true;
//   SLQ_ASSIGN_OR_RETURN(std::string prompt, t.Render(in));
//
// Supported: {{ expr }}, {% if / elif / else / endif %}, {% for x in xs %} (with loop.index,
// index0, first, last, length, revindex), {% set x = expr %}, {# comments #}, whitespace
// control ({%- -%}), HF's trim_blocks + lstrip_blocks; expressions with literals (strings with
// escapes, numbers, true/false/none, lists), variables, x.attr, x['key'], x[i], x[a:b],
// + (concat / add), ~ (string concat), - * / // %, comparisons, and/or/not, `in`, tests
// (`is defined`, `is none`, `is string`, ...), filters (trim, length, upper, lower, string,
// tojson), string methods (strip, lstrip, rstrip, upper, lower, startswith, endswith) and
// raise_exception(msg) (Render returns InvalidArgument with msg).
// Thread safety: a parsed ChatTemplate is immutable; Render is reentrant.
#ifndef SLQ_SERVER_HTTP_CHAT_TEMPLATE_H_
#define SLQ_SERVER_HTTP_CHAT_TEMPLATE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace slq::http {

struct ChatMessage {
  std::string role;
  std::string content;
};

namespace jinja {
struct Node;
}

class ChatTemplate {
 public:
  struct Inputs {
    std::vector<ChatMessage> messages;
    std::string bos_token, eos_token;
    bool add_generation_prompt = true;
  };

  // InvalidArgument naming the offset of the first construct it cannot parse.
  [[nodiscard]] static absl::StatusOr<ChatTemplate> Parse(const std::string& source);
  // InvalidArgument for raise_exception(...) (its message) and evaluation errors.
  [[nodiscard]] absl::StatusOr<std::string> Render(const Inputs& inputs) const;
  // The same with arbitrary JSON variables (tests; templates that read more than messages).
  [[nodiscard]] absl::StatusOr<std::string> RenderJson(const nlohmann::json& variables) const;

 private:
  std::shared_ptr<const jinja::Node> root_;
};

// The chat template of a model folder's tokenizer_config.json ("chat_template" as a string, or
// the entry named "default" of a list), plus its bos/eos token strings. NotFound with a message
// saying the model has no chat template (use /v1/completions) when there is none.
struct ModelChatTemplate {
  ChatTemplate tmpl;
  std::string bos_token, eos_token;
};
[[nodiscard]] absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& model_dir);

}  // namespace slq::http

#endif  // SLQ_SERVER_HTTP_CHAT_TEMPLATE_H_
