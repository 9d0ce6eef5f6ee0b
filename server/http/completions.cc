#include "server/http/completions.h"

#include <filesystem>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace slq::http {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Rejection {
  absl::Status status;
  std::string param;
};

Rejection Bad(std::string param, std::string message) {
  return {absl::InvalidArgumentError(std::move(message)), std::move(param)};
}

std::string RandomId(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kHex[] = "0123456789abcdef";
  std::string out = prefix;
  for (int i = 0; i < 24; ++i) out.push_back(kHex[rng() & 15]);
  return out;
}

const char* FinishName(inference::FinishReason r) {
  switch (r) {
    case inference::FinishReason::kLength:
    case inference::FinishReason::kContext:
      return "length";
    default:
      return "stop";
  }
}

bool IsSet(const json& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

// A number field in [lo, hi]; absent or null keeps *out.
std::optional<Rejection> NumberField(const json& body, const char* key, double lo, double hi, double* out) {
  if (!IsSet(body, key)) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number()) return Bad(key, absl::StrCat("'", key, "' must be a number"));
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi)) return Bad(key, absl::StrCat("'", key, "' is ", d, "; allowed ", lo, "..", hi));
  *out = d;
  return std::nullopt;
}

std::optional<Rejection> IntField(const json& body, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  if (!IsSet(body, key)) return std::nullopt;
  const json& v = body[key];
  if (!v.is_number_integer()) return Bad(key, absl::StrCat("'", key, "' must be an integer"));
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) return Bad(key, absl::StrCat("'", key, "' is ", i, "; allowed ", lo, "..", hi));
  *out = i;
  return std::nullopt;
}

// Options this server does not implement: refused when set to anything but their default.
std::optional<Rejection> Unsupported(const json& body, bool chat) {
  if (IsSet(body, "n") && !(body["n"].is_number_integer() && body["n"].get<int64_t>() == 1)) {
    return Bad("n", "only n=1 is supported: send one request per completion you need");
  }
  if (IsSet(body, "best_of") && !(body["best_of"].is_number_integer() && body["best_of"].get<int64_t>() == 1)) {
    return Bad("best_of", "only best_of=1 is supported");
  }
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    if (IsSet(body, key) && !(body[key].is_number() && body[key].get<double>() == 0)) {
      return Bad(key, absl::StrCat("'", key, "' is not supported (leave it 0)"));
    }
  }
  if (IsSet(body, "logit_bias") && !(body["logit_bias"].is_object() && body["logit_bias"].empty())) {
    return Bad("logit_bias", "'logit_bias' is not supported");
  }
  if (!chat) {
    if (IsSet(body, "echo") && body["echo"] != false) return Bad("echo", "'echo' is not supported");
    if (IsSet(body, "suffix") && body["suffix"] != "") return Bad("suffix", "'suffix' is not supported");
  } else {
    for (const char* key : {"tools", "functions", "tool_choice", "function_call"}) {
      if (IsSet(body, key) && !(body[key].is_array() && body[key].empty()) && body[key] != "none") {
        return Bad(key, absl::StrCat("'", key, "' (tool calling) is not supported"));
      }
    }
    if (IsSet(body, "response_format") &&
        !(body["response_format"].is_object() && body["response_format"].value("type", "") == "text")) {
      return Bad("response_format", "only response_format {\"type\": \"text\"} is supported");
    }
    if (IsSet(body, "top_logprobs") && body["top_logprobs"] != 0) {
      return Bad("top_logprobs", "top_logprobs is not supported: logprobs returns the sampled token's logprob only");
    }
  }
  return std::nullopt;
}

// The text of a chat message's content: a string, or a list of {"type": "text", "text": ...} parts.
std::optional<Rejection> MessageText(const json& content, size_t i, std::string* out) {
  const std::string param = absl::StrCat("messages[", i, "].content");
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return Bad(param, absl::StrCat("'", param, "' must be a string or a list of text parts"));
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
      return Bad(param,
                 absl::StrCat("'", param, "': only parts of type \"text\" with a string \"text\" are supported"));
    }
    *out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

// Per-request state of the response being produced.
struct ResponseState {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  std::string id, model;
  int64_t created = 0;
  std::shared_ptr<inference::ServedModel> served;
  // Non-streaming: accumulated output.
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<float> token_logprobs;
  int64_t text_offset = 0;
  bool role_sent = false;
};

json UsageJson(const inference::Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.generated_tokens},
          {"total_tokens", u.prompt_tokens + u.generated_tokens}};
}

json LogprobsJson(ResponseState& st, const std::vector<int32_t>& ids, const std::vector<float>& lps) {
  const inference::TextCodec& codec = st.served->codec();
  if (st.chat) {
    json content = json::array();
    for (size_t k = 0; k < ids.size() && k < lps.size(); ++k) {
      const std::string piece = codec.Piece(ids[k]);
      json bytes = json::array();
      for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
      content.push_back({{"token", piece}, {"logprob", lps[k]}, {"bytes", bytes}, {"top_logprobs", json::array()}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), values = json::array(), offsets = json::array();
  for (size_t k = 0; k < ids.size() && k < lps.size(); ++k) {
    const std::string piece = codec.Piece(ids[k]);
    tokens.push_back(piece);
    values.push_back(lps[k]);
    offsets.push_back(st.text_offset);
    st.text_offset += static_cast<int64_t>(piece.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", nullptr}, {"text_offset", offsets}};
}

json ChunkJson(const ResponseState& st, json choice) {
  json chunk = {{"id", st.id},
                {"object", st.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", st.created},
                {"model", st.model},
                {"choices", json::array({std::move(choice)})}};
  if (st.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

void FormatStreaming(ResponseState& st, const inference::GenerationEvent& e, std::string* out) {
  if (st.chat && !st.role_sent) {
    st.role_sent = true;
    *out += SseEvent(ChunkJson(st, {{"index", 0},
                                    {"delta", {{"role", "assistant"}, {"content", ""}}},
                                    {"logprobs", nullptr},
                                    {"finish_reason", nullptr}}));
  }
  if (e.final && !e.status.ok()) {
    *out += SseEvent(ErrorJson(e.status));
    *out += SseDone();
    return;
  }
  if (!e.text.empty() || (st.logprobs && !e.token_ids.empty()) || e.final) {
    json lp = st.logprobs && !e.token_ids.empty() ? LogprobsJson(st, e.token_ids, e.logprobs) : json(nullptr);
    json choice = {
        {"index", 0}, {"logprobs", lp}, {"finish_reason", e.final ? json(FinishName(e.finish)) : json(nullptr)}};
    if (st.chat) {
      choice["delta"] = e.text.empty() && e.final ? json::object() : json{{"content", e.text}};
    } else {
      choice["text"] = e.text;
    }
    *out += SseEvent(ChunkJson(st, std::move(choice)));
  }
  if (e.final) {
    if (st.include_usage) {
      json chunk = ChunkJson(st, nullptr);
      chunk["choices"] = json::array();
      chunk["usage"] = UsageJson(e.usage);
      *out += SseEvent(chunk);
    }
    *out += SseDone();
  }
}

void FormatWhole(ResponseState& st, const inference::GenerationEvent& e, std::string* out) {
  st.text += e.text;
  st.tokens.insert(st.tokens.end(), e.token_ids.begin(), e.token_ids.end());
  st.token_logprobs.insert(st.token_logprobs.end(), e.logprobs.begin(), e.logprobs.end());
  if (!e.final) return;
  if (!e.status.ok()) {  // the status line (200) is already out: the body says what happened
    *out += ErrorJson(e.status).dump();
    return;
  }
  json lp = st.logprobs ? LogprobsJson(st, st.tokens, st.token_logprobs) : json(nullptr);
  json choice = {{"index", 0}, {"logprobs", lp}, {"finish_reason", FinishName(e.finish)}};
  if (st.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", st.text}};
  } else {
    choice["text"] = st.text;
  }
  json body = {{"id", st.id},
               {"object", st.chat ? "chat.completion" : "text_completion"},
               {"created", st.created},
               {"model", st.model},
               {"choices", json::array({std::move(choice)})},
               {"usage", UsageJson(e.usage)}};
  *out += body.dump();
}

}  // namespace

std::string ModelFolder(const inference::ModelInfo& info, const std::string& artifact_root) {
  std::error_code ec;
  const std::string& src = info.source;
  if (!artifact_root.empty() && !src.empty() && src.find('/') == std::string::npos &&
      fs::is_directory(fs::path(artifact_root) / src, ec)) {
    return (fs::path(artifact_root) / src).string();
  }
  std::string path = absl::StartsWith(src, "file://") ? src.substr(7) : src;
  if (fs::is_regular_file(path, ec)) return fs::path(path).parent_path().string();
  return path;
}

CompletionsHandler::CompletionsHandler(inference::ModelRegistry* registry, Metrics* metrics, CompletionsOptions options)
    : registry_(registry), metrics_(metrics), opt_(std::move(options)) {}

void CompletionsHandler::CountRejected(const std::string& model, const absl::Status& s) const {
  if (metrics_) metrics_->inference_requests(model, absl::StatusCodeToString(s.code())).Increment();
}

HttpReply CompletionsHandler::Models() const {
  json data = json::array();
  for (const inference::ModelInfo& m : registry_->List()) {
    data.push_back({{"id", m.name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "slq"},
                    {"quantized", m.quantized},
                    {"avg_bits", m.avg_bits},
                    {"context_length", m.context_length},
                    {"source", m.source}});
  }
  HttpReply r;
  r.body = json{{"object", "list"}, {"data", data}}.dump();
  return r;
}

absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> CompletionsHandler::TemplateFor(
    const inference::ModelInfo& info) {
  const std::string key = info.name + "\n" + info.source;
  {
    absl::MutexLock lock(&mu_);
    auto it = templates_.find(key);
    if (it != templates_.end()) return it->second;
  }
  absl::StatusOr<ModelChatTemplate> t = LoadChatTemplate(ModelFolder(info, opt_.artifact_root));
  if (!t.ok()) {
    if (t.status().code() == absl::StatusCode::kNotFound) {
      return absl::InvalidArgumentError(absl::StrCat("model '", info.name, "': ", t.status().message()));
    }
    return absl::InvalidArgumentError(absl::StrCat("model '", info.name, "' has a chat template slq cannot use: ",
                                                   t.status().message(), " (use /v1/completions)"));
  }
  auto shared = std::make_shared<const ModelChatTemplate>(*std::move(t));
  absl::MutexLock lock(&mu_);
  templates_[key] = shared;
  return shared;
}

HttpReply CompletionsHandler::Completions(const std::string& body_text, bool chat) {
  json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    CountRejected("unknown", absl::InvalidArgumentError(""));
    return ErrorReply(absl::InvalidArgumentError("the request body must be a JSON object"));
  }
  if (!body.contains("model") || !body["model"].is_string() || body["model"].get<std::string>().empty()) {
    CountRejected("unknown", absl::InvalidArgumentError(""));
    return ErrorReply(absl::InvalidArgumentError("'model' is required: a name from GET /v1/models"), "model");
  }
  const std::string model_name = body["model"].get<std::string>();
  absl::StatusOr<std::shared_ptr<inference::ServedModel>> served = registry_->Get(model_name);
  if (!served.ok()) {
    CountRejected("unknown", served.status());  // a client-chosen name is no metric label
    return ErrorReply(served.status(), "model");
  }
  auto reject = [&](const Rejection& r) {
    CountRejected(model_name, r.status);
    return ErrorReply(r.status, r.param);
  };
  if (auto r = Unsupported(body, chat)) return reject(*r);

  inference::GenerationRequest req;
  double temperature = 1.0, top_p = 1.0;
  if (auto r = NumberField(body, "temperature", 0, 2, &temperature)) return reject(*r);
  if (auto r = NumberField(body, "top_p", 0, 1, &top_p)) return reject(*r);
  if (top_p == 0) return reject(Bad("top_p", "'top_p' must be > 0"));
  req.sampling.temperature = static_cast<float>(temperature);
  req.sampling.top_p = static_cast<float>(top_p);
  if (IsSet(body, "seed")) {
    if (!body["seed"].is_number_integer()) return reject(Bad("seed", "'seed' must be an integer"));
    req.sampling.seed = body["seed"].is_number_unsigned() ? body["seed"].get<uint64_t>()
                                                          : static_cast<uint64_t>(body["seed"].get<int64_t>());
  }
  if (IsSet(body, "stop")) {
    const json& s = body["stop"];
    if (s.is_string()) {
      req.stop.push_back(s.get<std::string>());
    } else if (s.is_array()) {
      for (const json& x : s) {
        if (!x.is_string()) return reject(Bad("stop", "'stop' must be a string or a list of strings"));
        req.stop.push_back(x.get<std::string>());
      }
    } else {
      return reject(Bad("stop", "'stop' must be a string or a list of strings"));
    }
  }
  bool logprobs = false;
  if (IsSet(body, "logprobs")) {
    const json& lp = body["logprobs"];
    if (chat) {
      if (!lp.is_boolean()) return reject(Bad("logprobs", "'logprobs' must be true or false"));
      logprobs = lp.get<bool>();
    } else {
      int64_t n = 0;
      if (auto r = IntField(body, "logprobs", 0, 5, &n)) return reject(*r);
      logprobs = true;  // the sampled token's logprob; top alternatives are not computed
    }
  }
  req.logprobs = logprobs;
  const bool stream = IsSet(body, "stream") && body["stream"] == true;
  const bool include_usage = stream && IsSet(body, "stream_options") && body["stream_options"].is_object() &&
                             body["stream_options"].value("include_usage", false);

  const inference::TextCodec& codec = (*served)->codec();
  const int64_t ctx = (*served)->info().context_length;
  int64_t prompt_len = 0;
  if (chat) {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
      return reject(Bad("messages", "'messages' must be a non-empty list of {role, content}"));
    }
    ChatTemplate::Inputs in;
    for (size_t i = 0; i < body["messages"].size(); ++i) {
      const json& m = body["messages"][i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        return reject(
            Bad(absl::StrCat("messages[", i, "].role"), absl::StrCat("messages[", i, "] needs a string 'role'")));
      }
      ChatMessage msg;
      msg.role = m["role"].get<std::string>();
      if (auto r = MessageText(m.value("content", json(nullptr)), i, &msg.content)) return reject(*r);
      in.messages.push_back(std::move(msg));
    }
    absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> tmpl = TemplateFor((*served)->info());
    if (!tmpl.ok()) return reject({tmpl.status(), "model"});
    in.bos_token = (*tmpl)->bos_token;
    in.eos_token = (*tmpl)->eos_token;
    in.add_generation_prompt = true;
    absl::StatusOr<std::string> prompt = (*tmpl)->tmpl.Render(in);
    if (!prompt.ok()) {
      return reject({absl::InvalidArgumentError(absl::StrCat("the chat template of model '", model_name,
                                                             "' refused the messages: ", prompt.status().message())),
                     "messages"});
    }
    // As transformers' apply_chat_template: the template places BOS itself.
    absl::StatusOr<std::vector<int32_t>> ids = codec.Encode(*prompt, /*add_special=*/false);
    if (!ids.ok()) return reject({ids.status(), "messages"});
    req.prompt_ids = *std::move(ids);
    prompt_len = static_cast<int64_t>(req.prompt_ids.size());
  } else {
    if (!body.contains("prompt")) return reject(Bad("prompt", "'prompt' is required"));
    const json& p = body["prompt"];
    const json* one = &p;
    if (p.is_array() && !p.empty() && (p[0].is_string() || p[0].is_array())) {
      if (p.size() != 1) {
        return reject(Bad("prompt", "only one prompt per request is supported: send one request per prompt"));
      }
      one = &p[0];
    }
    if (one->is_string()) {
      req.prompt_text = one->get<std::string>();
      if (req.prompt_text->empty()) return reject(Bad("prompt", "'prompt' is empty"));
    } else if (one->is_array()) {
      for (const json& id : *one) {
        if (!id.is_number_integer()) return reject(Bad("prompt", "'prompt' must be a string or a list of token ids"));
        req.prompt_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
      prompt_len = static_cast<int64_t>(req.prompt_ids.size());
    } else {
      return reject(Bad("prompt", "'prompt' must be a string or a list of token ids"));
    }
  }
  // max_tokens: completions default to 16 (as OpenAI); chat to the rest of the context.
  int64_t max_tokens = chat ? std::max<int64_t>(1, ctx - prompt_len) : 16;
  const char* max_key = chat && IsSet(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto r = IntField(body, max_key, 1, std::max<int64_t>(ctx, 1), &max_tokens)) return reject(*r);
  req.max_tokens = max_tokens;

  // Submit counts its own rejections (and every request's metrics) as for gRPC.
  absl::StatusOr<std::shared_ptr<inference::RequestStream>> s = (*served)->engine().Submit(std::move(req));
  if (!s.ok()) return ErrorReply(s.status());

  auto st = std::make_shared<ResponseState>();
  st->chat = chat;
  st->stream = stream;
  st->include_usage = include_usage;
  st->logprobs = logprobs;
  st->id = RandomId(chat ? "chatcmpl-" : "cmpl-");
  st->model = model_name;
  st->created = absl::ToUnixSeconds(absl::Now());
  st->served = *served;
  EventFormatter format =
      stream
          ? EventFormatter(
                [st](const inference::GenerationEvent& e, std::string* out) { FormatStreaming(*st, e, out); })
          : EventFormatter([st](const inference::GenerationEvent& e, std::string* out) { FormatWhole(*st, e, out); });
  HttpReply r;
  r.content_type = stream ? "text/event-stream" : "application/json";
  r.producer = std::make_unique<EventBody>(*served, *std::move(s), std::move(format), stream);
  return r;
}

}  // namespace slq::http
