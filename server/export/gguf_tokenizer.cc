#include "server/export/gguf_tokenizer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace slq::exporter {
namespace {

using nlohmann::json;

absl::StatusOr<json> ReadJson(const std::string& path, bool required) {
  std::ifstream f(path);
  if (!f) {
    if (required) return absl::InvalidArgumentError(absl::StrCat("no ", path, ": the artifact carries no tokenizer"));
    return json::object();
  }
  json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, " is not valid JSON"));
  return j;
}

// A special token as tokenizer_config writes it: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> TokenText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

// UTF-8 code points in s.
size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

bool IsByteToken(const std::string& t) {
  unsigned v;
  char end;
  return t.size() == 6 && std::sscanf(t.c_str(), "<0x%2X%c", &v, &end) == 2 && end == '>';
}

// Whether any pre-tokenizer / decoder / normalizer (possibly a Sequence) has type `type`.
const json* FindPart(const json& j, const std::string& type) {
  if (!j.is_object()) return nullptr;
  if (j.value("type", "") == type) return &j;
  for (const char* list : {"pretokenizers", "decoders", "normalizers"}) {
    if (j.contains(list) && j[list].is_array()) {
      for (const json& e : j[list]) {
        if (const json* f = FindPart(e, type)) return f;
      }
    }
  }
  return nullptr;
}

// llama.cpp's pre-tokenizer names (src/llama-vocab.cpp) for the split regexes HF tokenizers use.
std::string PreName(const json& pre) {
  static const std::pair<const char*, const char*> kKnown[] = {
      {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
       "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       "llama-bpe"},
      {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
       "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
       "qwen2"},
  };
  if (const json* split = FindPart(pre, "Split")) {
    const json& p = (*split)["pattern"];
    const std::string regex = p.is_object() ? p.value("Regex", p.value("String", "")) : "";
    for (const auto& [r, name] : kKnown) {
      if (regex == r) return name;
    }
    return "default";
  }
  // A plain ByteLevel pre-tokenizer with its own regex is GPT-2's split.
  if (const json* bl = FindPart(pre, "ByteLevel"); bl != nullptr && bl->value("use_regex", true)) return "gpt-2";
  return "default";
}

}  // namespace

absl::StatusOr<GgufTokenizer> GgufTokenizerFromDir(const std::string& dir, int64_t vocab_size) {
  absl::StatusOr<json> tj = ReadJson(dir + "/tokenizer.json", true);
  if (!tj.ok()) return tj.status();
  absl::StatusOr<json> cj = ReadJson(dir + "/tokenizer_config.json", false);
  if (!cj.ok()) return cj.status();
  absl::StatusOr<json> mj = ReadJson(dir + "/config.json", false);
  if (!mj.ok()) return mj.status();
  const json& t = *tj;
  const json& cfg = *cj;
  const json model = t.value("model", json::object());
  const std::string type = model.value("type", "");
  if (type != "BPE") {
    return absl::InvalidArgumentError(
        absl::StrCat("the tokenizer's model is '", type,
                     "'; GGUF export supports BPE tokenizers only (SentencePiece-style with "
                     "byte fallback -> llama.cpp 'llama', byte-level -> 'gpt2')"));
  }
  const json null_json;
  const json& pre = t.contains("pre_tokenizer") ? t["pre_tokenizer"] : null_json;
  const json& dec = t.contains("decoder") ? t["decoder"] : null_json;
  const json& norm = t.contains("normalizer") ? t["normalizer"] : null_json;
  const bool byte_level = FindPart(pre, "ByteLevel") != nullptr || FindPart(dec, "ByteLevel") != nullptr;
  const bool byte_fallback = model.value("byte_fallback", false);
  GgufTokenizer out;
  if (byte_fallback && !byte_level) {
    out.model = "llama";
  } else if (byte_level && !byte_fallback) {
    out.model = "gpt2";
    out.pre = PreName(pre);
  } else {
    return absl::InvalidArgumentError(
        "the BPE tokenizer is neither SentencePiece-style (byte_fallback, no ByteLevel) nor byte-level "
        "(ByteLevel pre-tokenizer/decoder, no byte_fallback): llama.cpp has no tokenizer for it");
  }

  // Tokens by id: the model's vocab, then added tokens.
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("tokenizer.json has no model.vocab object");
  }
  std::map<int64_t, std::string> by_id;
  std::map<std::string, int32_t> ids;
  for (const auto& [text, id] : model["vocab"].items()) {
    by_id[id.get<int64_t>()] = text;
    ids[text] = static_cast<int32_t>(id.get<int64_t>());
  }
  std::map<int64_t, bool> added;  // id -> special
  for (const json& a : t.value("added_tokens", json::array())) {
    const int64_t id = a.value("id", int64_t{-1});
    const std::string text = a.value("content", "");
    if (id < 0) continue;
    by_id[id] = text;
    ids[text] = static_cast<int32_t>(id);
    added[id] = a.value("special", false);
  }
  if (by_id.empty()) return absl::InvalidArgumentError("tokenizer.json's vocab is empty");
  if (by_id.rbegin()->first >= vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer has token id ", by_id.rbegin()->first,
                                                   " but the model's embedding has only ", vocab_size, " rows"));
  }
  std::optional<std::string> unk_text;
  if (model.contains("unk_token") && model["unk_token"].is_string()) unk_text = model["unk_token"].get<std::string>();
  if (!unk_text && cfg.contains("unk_token")) unk_text = TokenText(cfg["unk_token"]);
  auto id_of = [&](const std::optional<std::string>& text) -> std::optional<int32_t> {
    if (!text) return std::nullopt;
    auto it = ids.find(*text);
    return it == ids.end() ? std::nullopt : std::optional<int32_t>(it->second);
  };
  out.unk = id_of(unk_text);

  // Scores (llama): the rank of the merge that makes a token; tokens no merge makes rank last.
  std::map<std::string, size_t> merge_rank;
  const json merges = model.value("merges", json::array());
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string left, right;
    if (merges[i].is_string()) {
      const std::string m = merges[i].get<std::string>();
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos)
        return absl::InvalidArgumentError(absl::StrCat("merge ", i, " '", m, "' has no space"));
      left = m.substr(0, sp);
      right = m.substr(sp + 1);
    } else if (merges[i].is_array() && merges[i].size() == 2) {
      left = merges[i][0].get<std::string>();
      right = merges[i][1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("merge ", i, " is neither \"a b\" nor [a, b]"));
    }
    if (out.model == "gpt2") {
      if (left.find(' ') != std::string::npos || right.find(' ') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("merge ", i,
                                                       " has a space inside a piece: GGUF's 'a b' "
                                                       "merges cannot hold it"));
      }
      out.merges.push_back(left + " " + right);
    }
    merge_rank.emplace(left + right, i);  // the first merge making a token wins
  }

  out.tokens.resize(static_cast<size_t>(vocab_size));
  out.token_types.assign(static_cast<size_t>(vocab_size), kUnused);
  if (out.model == "llama") out.scores.assign(static_cast<size_t>(vocab_size), 0.0f);
  const float kNoMerge = -1e6f;
  for (int64_t id = 0; id < vocab_size; ++id) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      out.tokens[id] = absl::StrCat("[PAD", id, "]");
      if (out.model == "llama") out.scores[id] = kNoMerge;
      continue;
    }
    const std::string& text = it->second;
    out.tokens[id] = text;
    GgufTokenType tt = kNormal;
    if (auto a = added.find(id); a != added.end()) tt = a->second ? kControl : kUserDefined;
    if (out.unk && *out.unk == id) tt = kUnknown;
    if (out.model == "llama" && tt == kNormal && IsByteToken(text)) tt = kByte;
    out.token_types[id] = tt;
    if (out.model == "llama") {
      auto r = merge_rank.find(text);
      // Single characters and special tokens are never the result of a merge: their score is unused.
      out.scores[id] = r != merge_rank.end() ? -static_cast<float>(r->second)
                                             : (tt == kNormal && CodePoints(text) > 1 ? kNoMerge : 0.0f);
    }
  }

  // Special ids: tokenizer_config, else config.json.
  auto config_id = [&](const char* key) -> std::optional<int32_t> {
    if (mj->contains(key) && (*mj)[key].is_number_integer()) return (*mj)[key].get<int32_t>();
    return std::nullopt;
  };
  out.bos = cfg.contains("bos_token") ? id_of(TokenText(cfg["bos_token"])) : std::nullopt;
  if (!out.bos) out.bos = config_id("bos_token_id");
  out.eos = cfg.contains("eos_token") ? id_of(TokenText(cfg["eos_token"])) : std::nullopt;
  if (!out.eos) out.eos = config_id("eos_token_id");
  out.pad = cfg.contains("pad_token") ? id_of(TokenText(cfg["pad_token"])) : std::nullopt;
  if (!out.pad) out.pad = config_id("pad_token_id");

  // add_bos/add_eos: tokenizer_config, else the post-processor's single-sequence template.
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean())
    out.add_bos = cfg["add_bos_token"].get<bool>();
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean())
    out.add_eos = cfg["add_eos_token"].get<bool>();
  const json& post = t.contains("post_processor") ? t["post_processor"] : null_json;
  if (const json* tp = FindPart(post, "TemplateProcessing"); tp != nullptr && (*tp)["single"].is_array()) {
    const json& single = (*tp)["single"];
    auto special_at = [&](size_t i) -> std::optional<int32_t> {
      if (i >= single.size() || !single[i].contains("SpecialToken")) return std::nullopt;
      return id_of(single[i]["SpecialToken"].value("id", ""));
    };
    const std::optional<int32_t> first = special_at(0), last = special_at(single.size() - 1);
    if (!out.add_bos) out.add_bos = first.has_value();
    if (!out.add_eos) out.add_eos = single.size() > 1 && last.has_value();
    if (first && !out.bos) out.bos = first;
  }
  if (out.model == "llama") {
    // SentencePiece's "add dummy prefix": a normalizer Prepend("▁") or a Metaspace that prepends.
    const json* meta = FindPart(pre, "Metaspace");
    out.add_space_prefix = FindPart(norm, "Prepend") != nullptr ||
                           (meta != nullptr && meta->value("prepend_scheme", "always") != "never" &&
                            meta->value("add_prefix_space", true));
  }
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) out.chat_template = ct.get<std::string>();
    if (ct.is_array()) {
      for (const json& e : ct) {
        if (e.value("name", "") == "default" && e.contains("template"))
          out.chat_template = e["template"].get<std::string>();
      }
    }
  }
  if (!out.eos) return absl::InvalidArgumentError("the tokenizer names no EOS token (tokenizer_config eos_token)");
  return out;
}

}  // namespace slq::exporter
