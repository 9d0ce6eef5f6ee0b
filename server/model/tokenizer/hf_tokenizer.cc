#include "server/model/tokenizer/hf_tokenizer.h"

#include <functional>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/added_vocab.h"
#include "server/model/tokenizer/bpe_model.h"
#include "server/model/tokenizer/hf_components.h"
#include "server/model/tokenizer/json_util.h"

namespace slq::tok {
namespace {

// normalizer -> (added tokens) -> pre_tokenizer -> BPE -> post_processor; decoder.
class HfTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override;
  std::string TokenBytes(int32_t id) const override;

  static absl::StatusOr<std::unique_ptr<HfTokenizer>> Build(const nlohmann::json& j,
                                                            const std::vector<std::string>& config_texts);

 private:
  std::string DecodeImpl(std::span<const int32_t> ids, bool skip_special) const override;
  // The string Decode feeds to the decoder for id, or nullptr: for added tokens their content,
  // normalized when normalized=true (HF's simple_id_to_token); else the vocab entry.
  const std::string* TokenString(int32_t id) const;
  std::optional<int32_t> TokenToId(const std::string& token) const;
  absl::Status LoadAddedTokens(const nlohmann::json& j);
  void ResolveBosEos(const std::vector<std::string>& config_texts);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedVocab> added_;
  absl::flat_hash_map<int32_t, std::string> added_decode_;  // id -> decode string
};

std::vector<int32_t> HfTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  std::vector<Piece> pieces;
  for (Segment& seg : added_->Extract(text, normalizer_.get())) {
    if (seg.added_id >= 0) {
      ids.push_back(seg.added_id);
      continue;
    }
    pieces.clear();
    pieces.push_back({std::move(seg.text), seg.at_start});
    if (pre_tokenizer_) pre_tokenizer_->PreTokenize(&pieces);
    for (const Piece& p : pieces) model_->Tokenize(p.text, &ids);
  }
  if (add_special_tokens && post_processor_) post_processor_->Process(&ids);
  return ids;
}

const std::string* HfTokenizer::TokenString(int32_t id) const {
  auto it = added_decode_.find(id);
  if (it != added_decode_.end()) return &it->second;
  return model_->IdToToken(id);
}

std::optional<int32_t> HfTokenizer::TokenToId(const std::string& token) const {
  for (const AddedToken& t : added_->tokens()) {
    if (t.content == token) return t.id;
  }
  return model_->TokenToId(token);
}

std::string HfTokenizer::TokenBytes(int32_t id) const {
  const std::string* s = TokenString(id);
  if (s == nullptr) return "";
  std::string bytes = *s;
  if (decoder_) decoder_->TokenBytes(&bytes);
  return bytes;
}

std::string HfTokenizer::DecodeImpl(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* s = TokenString(id);
    if (s == nullptr || (skip_special && DecodeSkips(id))) continue;
    tokens.push_back(*s);
  }
  if (!decoder_) return absl::StrJoin(tokens, " ");
  decoder_->DecodeChain(&tokens);
  return absl::StrJoin(tokens, "");
}

absl::Status HfTokenizer::LoadAddedTokens(const nlohmann::json& j) {
  std::vector<AddedToken> tokens;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      AddedToken t;
      t.id = a.at("id").get<int32_t>();
      t.content = a.at("content").get<std::string>();
      t.single_word = a.value("single_word", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.normalized = a.value("normalized", true);
      t.special = a.value("special", false);
      if (t.id < 0 || t.id > (1 << 24)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: added token \"", t.content, "\" has bad id ", t.id));
      }
      tokens.push_back(std::move(t));
    }
  }
  added_ = std::make_unique<AddedVocab>(std::move(tokens), normalizer_.get());
  vocab_size_ = model_->size();
  for (const AddedToken& t : added_->tokens()) vocab_size_ = std::max<int64_t>(vocab_size_, t.id + 1);
  special_.assign(vocab_size_, false);
  absl::flat_hash_set<std::string> special_contents;
  for (const AddedToken& t : added_->tokens()) {
    special_[t.id] = special_[t.id] || t.special;
    if (t.special) special_contents.insert(t.content);
    std::string shown = t.content;
    if (t.normalized && normalizer_) normalizer_->Normalize(&shown);
    added_decode_[t.id] = std::move(shown);
  }
  // HF drops a token in decode when its decode string is the content of a special token.
  decode_skips_.assign(vocab_size_, false);
  for (int32_t id = 0; id < vocab_size_; ++id) {
    const std::string* s = TokenString(id);
    decode_skips_[id] = s != nullptr && special_contents.contains(*s);
  }
  return absl::OkStatus();
}

// bos_token / eos_token may be a string or {"content": ...}; *_token_id an integer.
std::optional<int32_t> FindSpecialId(const nlohmann::json& cfg, const std::string& key,
                                     const std::function<std::optional<int32_t>(const std::string&)>& lookup) {
  if (!cfg.is_object()) return std::nullopt;
  if (cfg.contains(key + "_token")) {
    const auto& v = cfg[key + "_token"];
    if (v.is_string()) return lookup(v.get<std::string>());
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      return lookup(v["content"].get<std::string>());
    }
  }
  if (cfg.contains(key + "_token_id") && cfg[key + "_token_id"].is_number_integer()) {
    return cfg[key + "_token_id"].get<int32_t>();
  }
  if (cfg.contains(key + "_token_id") && cfg[key + "_token_id"].is_array() && !cfg[key + "_token_id"].empty() &&
      cfg[key + "_token_id"][0].is_number_integer()) {
    return cfg[key + "_token_id"][0].get<int32_t>();  // e.g. "eos_token_id": [128001, 128009]
  }
  return std::nullopt;
}

void HfTokenizer::ResolveBosEos(const std::vector<std::string>& config_texts) {
  auto lookup = [this](const std::string& s) { return TokenToId(s); };
  std::optional<int32_t> bos, eos;
  for (const std::string& text : config_texts) {
    if (text.empty()) continue;
    const nlohmann::json cfg = nlohmann::json::parse(text, nullptr, false);
    if (cfg.is_discarded()) continue;  // optional file: a broken one is ignored
    if (!bos) bos = FindSpecialId(cfg, "bos", lookup);
    if (!eos) eos = FindSpecialId(cfg, "eos", lookup);
  }
  bos_id_ = bos.value_or(-1);
  eos_id_ = eos.value_or(-1);
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Build(const nlohmann::json& j,
                                                                const std::vector<std::string>& config_texts) {
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: no \"model\" object");
  }
  const std::string model_type = JsonType(j["model"]);
  if (model_type != "BPE" && !(model_type.empty() && j["model"].contains("merges"))) {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json: model type \"", model_type, "\" is not supported (supported: BPE)"));
  }
  SLQ_ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(j["model"]));
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  if (present("normalizer")) {
    SLQ_ASSIGN_OR_RETURN(t->normalizer_, MakeNormalizer(j["normalizer"]));
  }
  if (present("pre_tokenizer")) {
    SLQ_ASSIGN_OR_RETURN(t->pre_tokenizer_, MakePreTokenizer(j["pre_tokenizer"]));
  }
  if (present("post_processor")) {
    SLQ_ASSIGN_OR_RETURN(t->post_processor_, MakePostProcessor(j["post_processor"]));
  }
  if (present("decoder")) {
    SLQ_ASSIGN_OR_RETURN(t->decoder_, MakeDecoder(j["decoder"]));
    t->leading_spaces_stripped_ = t->decoder_->LeadingSpacesStripped();
    t->replaces_invalid_per_byte_ = t->decoder_->ReplacesInvalidPerByte();
  }
  SLQ_RETURN_IF_ERROR(t->LoadAddedTokens(j));
  t->ResolveBosEos(config_texts);
  return t;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& tokenizer_json,
                                                           const std::vector<std::string>& config_texts) {
  const nlohmann::json j = nlohmann::json::parse(tokenizer_json, nullptr, false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("tokenizer.json is not valid JSON");
  }
  try {
    SLQ_ASSIGN_OR_RETURN(auto t, HfTokenizer::Build(j, config_texts));
    return std::unique_ptr<Tokenizer>(std::move(t));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unexpected structure: ", e.what()));
  }
}

}  // namespace slq::tok
