// The OpenAI-compatible endpoints over the inference engine (no HTTP library here: the
// transport is http_server.cc). Requests run on the same ModelRegistry / Engine as the gRPC
// InferenceService, so they share its batching, metrics and admission limits.
//
//   CompletionsHandler h(&registry, metrics, {.artifact_root = dir});
//   HttpReply r = h.Completions(body_json_text, /*chat=*/false);
//
// Supported fields: model, prompt (completions: a string, one-element list of strings, or token
// ids) / messages (chat: role + content as a string or a list of text parts, rendered with the
// model's chat template), max_tokens (chat: also max_completion_tokens), temperature, top_p,
// stop (string or list), seed, n (1 only), stream (+ stream_options.include_usage), logprobs
// (completions: an integer 0..5, the sampled token's logprob; chat: true/false), user (ignored).
// Anything else with a non-default value (best_of > 1, echo, suffix, logit_bias, tools, ...) is a
// 400 naming the field.
// Thread safety: thread-safe (the chat-template cache has its own lock).
#ifndef SLQ_SERVER_HTTP_COMPLETIONS_H_
#define SLQ_SERVER_HTTP_COMPLETIONS_H_

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server/http/chat_template.h"
#include "server/http/openai_error.h"
#include "server/inference/model_registry.h"
#include "server/metrics/metrics.h"

namespace slq::http {

struct CompletionsOptions {
  // Where artifact ids live (<root>/<id>): the chat template is read from the served folder's
  // tokenizer_config.json.
  std::string artifact_root;
};

class CompletionsHandler {
 public:
  CompletionsHandler(inference::ModelRegistry* registry, Metrics* metrics, CompletionsOptions options);

  HttpReply Models() const;
  // POST /v1/completions (chat = false) or /v1/chat/completions (chat = true).
  HttpReply Completions(const std::string& body, bool chat);

 private:
  absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> TemplateFor(const inference::ModelInfo& info);
  void CountRejected(const std::string& model, const absl::Status& s) const;

  inference::ModelRegistry* const registry_;
  Metrics* const metrics_;  // may be null
  const CompletionsOptions opt_;
  absl::Mutex mu_;
  // By served name + source: a template per loaded model (reloading under the name re-reads).
  std::map<std::string, std::shared_ptr<const ModelChatTemplate>> templates_ ABSL_GUARDED_BY(mu_);
};

// The folder a served model was loaded from (artifact id -> <artifact_root>/<id>; a file:// URI
// or path of a file -> its folder).
std::string ModelFolder(const inference::ModelInfo& info, const std::string& artifact_root);

}  // namespace slq::http

#endif  // SLQ_SERVER_HTTP_COMPLETIONS_H_
