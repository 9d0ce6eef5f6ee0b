// Pre-tokenizers of tokenizer.json (see hf_components.h).
#include <optional>

#include "absl/strings/str_replace.h"
#include "server/common/status_macros.h"
#include "server/model/tokenizer/byte_level.h"
#include "server/model/tokenizer/hf_components.h"
#include "server/model/tokenizer/json_util.h"
#include "server/model/tokenizer/split_patterns.h"

namespace slq::tok {
namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Range {
  size_t begin, end;
  bool is_match;
};

// Ranges covering [0, n): the matches and the gaps between them.
std::vector<Range> Cover(size_t n, const std::vector<ByteRange>& matches, bool invert) {
  std::vector<Range> out;
  size_t pos = 0;
  for (const auto& [b, e] : matches) {
    if (b > pos) out.push_back({pos, b, invert});
    out.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < n || out.empty()) out.push_back({pos, n, invert});
  return out;
}

// HF SplitDelimiterBehavior applied to the covering ranges; returns the kept ranges.
std::vector<Range> ApplyBehavior(std::vector<Range> r, Behavior b) {
  std::vector<Range> acc;
  bool prev_match = false;
  switch (b) {
    case Behavior::kIsolated:
      return r;
    case Behavior::kRemoved:
      for (const Range& x : r) {
        if (!x.is_match) acc.push_back(x);
      }
      return acc;
    case Behavior::kContiguous:
      for (const Range& x : r) {
        if (x.is_match == prev_match && !acc.empty()) {
          acc.back().end = x.end;
        } else {
          acc.push_back(x);
        }
        prev_match = x.is_match;
      }
      return acc;
    case Behavior::kMergedWithPrevious:
      for (const Range& x : r) {
        if (x.is_match && !prev_match && !acc.empty()) {
          acc.back().end = x.end;
        } else {
          acc.push_back(x);
        }
        prev_match = x.is_match;
      }
      return acc;
    case Behavior::kMergedWithNext:
      for (auto it = r.rbegin(); it != r.rend(); ++it) {
        if (it->is_match && !prev_match && !acc.empty()) {
          acc.back().begin = it->begin;
        } else {
          acc.push_back(*it);
        }
        prev_match = it->is_match;
      }
      return std::vector<Range>(acc.rbegin(), acc.rend());
  }
  return r;
}

void SplitPiece(const Piece& piece, const std::vector<ByteRange>& matches, Behavior b, bool invert,
                std::vector<Piece>* out) {
  for (const Range& x : ApplyBehavior(Cover(piece.text.size(), matches, invert), b)) {
    if (x.end <= x.begin) continue;
    out->push_back({piece.text.substr(x.begin, x.end - x.begin), piece.at_start && x.begin == 0});
  }
}

std::vector<ByteRange> FindLiteral(std::string_view text, std::string_view lit) {
  std::vector<ByteRange> m;
  if (lit.empty()) return m;
  for (size_t p = text.find(lit); p != std::string_view::npos; p = text.find(lit, p + lit.size())) {
    m.emplace_back(p, p + lit.size());
  }
  return m;
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// Split by a known regex (pattern set) or a literal string.
class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::optional<SplitPattern> pattern, std::string literal, Behavior b, bool invert)
      : pattern_(pattern), literal_(std::move(literal)), behavior_(b), invert_(invert) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    std::vector<ByteRange> matches;
    for (const Piece& p : *pieces) {
      matches.clear();
      if (pattern_) {
        FindPatternMatches(*pattern_, p.text, &matches);
      } else {
        matches = FindLiteral(p.text, literal_);
      }
      SplitPiece(p, matches, behavior_, invert_, &out);
    }
    pieces->swap(out);
  }

 private:
  std::optional<SplitPattern> pattern_;
  std::string literal_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    std::vector<Piece> split;
    std::vector<ByteRange> matches;
    for (Piece& p : *pieces) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      if (!use_regex_) {
        split.push_back(std::move(p));
        continue;
      }
      matches.clear();
      FindPatternMatches(SplitPattern::kGpt2, p.text, &matches);
      SplitPiece(p, matches, Behavior::kIsolated, false, &split);
    }
    pieces->clear();
    for (const Piece& p : split) {
      if (p.text.empty()) continue;
      Piece mapped{std::string(), p.at_start};
      ByteLevelEncode(p.text, &mapped.text);
      pieces->push_back(std::move(mapped));
    }
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : rep_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    for (Piece& p : *pieces) {
      p.text = absl::StrReplaceAll(p.text, {{" ", rep_}});
      const bool starts = p.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_start))) {
        p.text.insert(0, rep_);
      }
      if (split_) {
        SplitPiece(p, FindLiteral(p.text, rep_), Behavior::kMergedWithNext, false, &out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
    }
    pieces->swap(out);
  }

 private:
  std::string rep_;
  Prepend prepend_;
  bool split_;
};

absl::StatusOr<Behavior> ParseBehavior(const nlohmann::json& j) {
  const std::string b = j.value("behavior", std::string("Isolated"));
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError("tokenizer.json: unknown Split behavior \"" + b + "\"");
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakeSplit(const nlohmann::json& j) {
  std::string literal, regex;
  SLQ_RETURN_IF_ERROR(JsonPattern(j, &literal, &regex));
  std::optional<SplitPattern> pattern;
  if (!regex.empty()) {
    pattern = IdentifySplitPattern(regex);
    if (!pattern) {
      return absl::UnimplementedError("tokenizer.json: Split regex \"" + regex +
                                      "\" is not one of the supported GPT-2 / Llama-3 / Qwen2 "
                                      "patterns");
    }
  }
  SLQ_ASSIGN_OR_RETURN(Behavior b, ParseBehavior(j));
  return std::make_unique<SplitPreTokenizer>(pattern, literal, b, j.value("invert", false));
}

std::unique_ptr<PreTokenizer> MakeMetaspace(const nlohmann::json& j) {
  using P = MetaspacePreTokenizer::Prepend;
  P prepend = j.value("add_prefix_space", true) ? P::kAlways : P::kNever;
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    const std::string s = j["prepend_scheme"].get<std::string>();
    prepend = s == "first" ? P::kFirst : s == "never" ? P::kNever : P::kAlways;
  }
  return std::make_unique<MetaspacePreTokenizer>(JsonChar(j, "replacement", "\xE2\x96\x81"), prepend,
                                                 j.value("split", true));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& j) {
  const std::string type = JsonType(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& sub : j.at("pretokenizers")) {
      SLQ_ASSIGN_OR_RETURN(auto p, MakePreTokenizer(sub));
      parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(j.value("add_prefix_space", true), j.value("use_regex", true));
  }
  if (type == "Split") return MakeSplit(j);
  if (type == "Metaspace") return MakeMetaspace(j);
  return UnknownComponent("pre_tokenizer", j, "Sequence, ByteLevel, Split, Metaspace");
}

}  // namespace slq::tok
