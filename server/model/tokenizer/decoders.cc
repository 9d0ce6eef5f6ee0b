// Decoders of tokenizer.json (see hf_components.h).
#include <algorithm>

#include "absl/strings/str_replace.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/byte_level.h"
#include "server/model/tokenizer/hf_components.h"
#include "server/model/tokenizer/json_util.h"
#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

// "<0xAB>" -> 0xAB, else -1 (HF accepts exactly 6 chars with two hex digits).
int ParseByteToken(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }
  void TokenBytes(std::string* token) const override {
    for (const auto& p : parts_) p->TokenBytes(token);
  }
  int LeadingSpacesStripped() const override {
    int n = 0;
    for (const auto& p : parts_) n = std::max(n, p->LeadingSpacesStripped());
    return n;
  }
  bool ReplacesInvalidPerByte() const override {
    return std::any_of(parts_.begin(), parts_.end(), [](const auto& p) { return p->ReplacesInvalidPerByte(); });
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) TokenBytes(&t);
  }
  void TokenBytes(std::string* token) const override {
    if (!from_.empty()) *token = absl::StrReplaceAll(*token, {{from_, to_}});
  }

 private:
  std::string from_, to_;
};

// Runs of <0xXX> tokens become their bytes when valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (count == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < count; ++i) out.emplace_back(kReplacementChar);
      }
      bytes.clear();
      count = 0;
    };
    for (std::string& t : *tokens) {
      const int b = ParseByteToken(t);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens->swap(out);
  }
  void TokenBytes(std::string* token) const override {
    const int b = ParseByteToken(*token);
    if (b >= 0) *token = std::string(1, static_cast<char>(b));
  }
  bool ReplacesInvalidPerByte() const override { return true; }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
  void TokenBytes(std::string*) const override {}
};

// Removes up to `start` leading and `stop` trailing `content` characters of every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int start, int stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (int i = 0; i < start_ && e - b >= content_.size() && t.compare(b, content_.size(), content_) == 0; ++i) {
        b += content_.size();
      }
      for (int i = 0;
           i < stop_ && e - b >= content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }
  void TokenBytes(std::string*) const override {}
  int LeadingSpacesStripped() const override { return content_ == " " ? start_ : 0; }

 private:
  std::string content_;
  int start_, stop_;
};

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) ByteLevelDecodeToken(t, &bytes);
    tokens->assign(1, Utf8Lossy(bytes));
  }
  void TokenBytes(std::string* token) const override {
    std::string bytes;
    ByteLevelDecodeToken(*token, &bytes);
    token->swap(bytes);
  }
};

// Replacement char -> ' '; in the first token it is dropped when a prefix was prepended.
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool prepends) : rep_(std::move(rep)), prepends_(prepends) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      t = absl::StrReplaceAll(t, {{rep_, (i == 0 && prepends_) ? "" : " "}});
    }
  }
  void TokenBytes(std::string* token) const override { *token = absl::StrReplaceAll(*token, {{rep_, " "}}); }
  int LeadingSpacesStripped() const override { return prepends_ ? 1 : 0; }

 private:
  std::string rep_;
  bool prepends_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& j) {
  const std::string type = JsonType(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& sub : j.at("decoders")) {
      SLQ_ASSIGN_OR_RETURN(auto p, MakeDecoder(sub));
      parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "Replace") {
    std::string from;
    SLQ_RETURN_IF_ERROR(JsonPattern(j, &from, nullptr));
    return std::make_unique<ReplaceDecoder>(from, j.at("content").get<std::string>());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(JsonChar(j, "content", " "), j.value("start", 0), j.value("stop", 0));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool prepends = j.value("add_prefix_space", true);
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      prepends = j["prepend_scheme"].get<std::string>() != "never";
    }
    return std::make_unique<MetaspaceDecoder>(JsonChar(j, "replacement", "\xE2\x96\x81"), prepends);
  }
  return UnknownComponent("decoder", j, "Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace");
}

}  // namespace slq::tok
