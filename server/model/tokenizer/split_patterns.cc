#include "server/model/tokenizer/split_patterns.h"

#include "server/model/tokenizer/unicode_tables.h"
#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The text decoded once: code points plus byte offsets (offs has one extra end entry).
struct CodePoints {
  std::vector<char32_t> cp;
  std::vector<size_t> offs;
  size_t size() const { return cp.size(); }
};

CodePoints Decode(std::string_view text) {
  CodePoints c;
  c.cp.reserve(text.size());
  c.offs.reserve(text.size() + 1);
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp;
    c.offs.push_back(pos);
    pos += DecodeUtf8(text, pos, &cp);
    c.cp.push_back(cp);
  }
  c.offs.push_back(text.size());
  return c;
}

bool IsL(char32_t c) { return c != kInvalidCodePoint && IsLetter(c); }
bool IsN(char32_t c) { return c != kInvalidCodePoint && IsNumber(c); }
bool IsS(char32_t c) { return c != kInvalidCodePoint && IsWhitespace(c); }
bool IsOther(char32_t c) { return !IsL(c) && !IsN(c) && !IsS(c); }
bool IsNewline(char32_t c) { return c == '\r' || c == '\n'; }

template <typename Pred>
size_t RunEnd(const CodePoints& t, size_t i, Pred pred) {
  while (i < t.size() && pred(t.cp[i])) ++i;
  return i;
}

char32_t Lower(char32_t c, bool fold) {
  if (!fold) return c;
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x17F) return 's';  // LATIN SMALL LETTER LONG S folds to 's'
  return c;
}

// 's|'t|'re|'ve|'m|'ll|'d (case-folded when `fold`): end index or 0.
size_t Contraction(const CodePoints& t, size_t i, bool fold) {
  if (t.cp[i] != '\'' || i + 1 >= t.size()) return 0;
  const char32_t a = Lower(t.cp[i + 1], fold);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 >= t.size()) return 0;
  const char32_t b = Lower(t.cp[i + 2], fold);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

// \s+(?!\S) then \s+: a whitespace run, leaving its last char to the next token when a
// non-space follows. 0 if t.cp[i] is not whitespace.
size_t Whitespace(const CodePoints& t, size_t i) {
  const size_t e = RunEnd(t, i, IsS);
  if (e == i) return 0;
  if (e == t.size() || e - i == 1) return e;
  return e - 1;
}

// ` ?X+` where X is pred: end index or 0.
template <typename Pred>
size_t OptSpaceRun(const CodePoints& t, size_t i, Pred pred) {
  size_t j = i;
  if (t.cp[j] == ' ' && j + 1 < t.size() && pred(t.cp[j + 1])) ++j;
  if (!pred(t.cp[j])) return 0;
  return RunEnd(t, j, pred);
}

size_t MatchGpt2(const CodePoints& t, size_t i) {
  if (size_t e = Contraction(t, i, false)) return e;
  if (size_t e = OptSpaceRun(t, i, IsL)) return e;
  if (size_t e = OptSpaceRun(t, i, IsN)) return e;
  if (size_t e = OptSpaceRun(t, i, IsOther)) return e;
  return Whitespace(t, i);
}

size_t MatchLlama3(const CodePoints& t, size_t i, size_t max_digits) {
  if (size_t e = Contraction(t, i, true)) return e;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  const char32_t c = t.cp[i];
  if (!IsNewline(c) && !IsL(c) && !IsN(c) && i + 1 < t.size() && IsL(t.cp[i + 1])) {
    return RunEnd(t, i + 1, IsL);
  }
  if (IsL(c)) return RunEnd(t, i, IsL);
  // \p{N}{1,max}
  if (IsN(c)) {
    size_t e = i;
    while (e < t.size() && e - i < max_digits && IsN(t.cp[e])) ++e;
    return e;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  if (size_t e = OptSpaceRun(t, i, IsOther)) return RunEnd(t, e, IsNewline);
  // \s*[\r\n]+ : up to and including the last newline of the whitespace run.
  const size_t ws_end = RunEnd(t, i, IsS);
  for (size_t k = ws_end; k > i; --k) {
    if (IsNewline(t.cp[k - 1])) return k;
  }
  return Whitespace(t, i);
}

size_t MatchAt(SplitPattern p, const CodePoints& t, size_t i) {
  switch (p) {
    case SplitPattern::kGpt2:
      return MatchGpt2(t, i);
    case SplitPattern::kLlama3:
      return MatchLlama3(t, i, 3);
    case SplitPattern::kQwen2:
      return MatchLlama3(t, i, 1);
  }
  return 0;
}

}  // namespace

std::optional<SplitPattern> IdentifySplitPattern(std::string_view regex) {
  if (regex == kGpt2Regex) return SplitPattern::kGpt2;
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  if (regex == kQwen2Regex) return SplitPattern::kQwen2;
  return std::nullopt;
}

void FindPatternMatches(SplitPattern pattern, std::string_view text, std::vector<ByteRange>* out) {
  const CodePoints t = Decode(text);
  size_t i = 0;
  while (i < t.size()) {
    const size_t e = MatchAt(pattern, t, i);
    if (e > i) {
      out->emplace_back(t.offs[i], t.offs[e]);
      i = e;
    } else {
      ++i;  // no alternative matches here: the character falls in a gap
    }
  }
}

}  // namespace slq::tok
