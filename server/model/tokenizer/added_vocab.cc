#include "server/model/tokenizer/added_vocab.h"

#include <algorithm>

#include "server/model/tokenizer/unicode_tables.h"
#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

bool IsWordChar(char32_t c) { return c != kInvalidCodePoint && (c == '_' || IsLetter(c) || IsNumber(c)); }
bool IsSpaceChar(char32_t c) { return c != kInvalidCodePoint && IsWhitespace(c); }

// The code point that ends s[0, end) (end > 0).
char32_t LastChar(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<uint8_t>(s[b]) & 0xC0) == 0x80) --b;
  char32_t cp;
  const size_t len = DecodeUtf8(s, b, &cp);
  return b + len == end ? cp : kInvalidCodePoint;
}

// Start of the whitespace run that ends at `end` (== end when none).
size_t WhitespaceRunStart(std::string_view s, size_t end, size_t floor) {
  while (end > floor) {
    const char32_t c = LastChar(s, end);
    if (!IsSpaceChar(c)) break;
    std::string tmp;
    AppendUtf8(c, &tmp);
    end -= tmp.size();
  }
  return end;
}

// End of the whitespace run that starts at `pos`.
size_t WhitespaceRunEnd(std::string_view s, size_t pos) {
  while (pos < s.size()) {
    char32_t c;
    const size_t len = DecodeUtf8(s, pos, &c);
    if (!IsSpaceChar(c)) break;
    pos += len;
  }
  return pos;
}

}  // namespace

AddedVocab::AddedVocab(std::vector<AddedToken> tokens, const Normalizer* normalizer) : tokens_(std::move(tokens)) {
  for (int i = 0; i < static_cast<int>(tokens_.size()); ++i) {
    const AddedToken& t = tokens_[i];
    by_id_[t.id] = i;
    std::string pattern = t.content;
    if (t.normalized && normalizer != nullptr) normalizer->Normalize(&pattern);
    if (pattern.empty()) continue;
    Matcher& m = t.normalized ? normalized_ : raw_;
    m.by_byte[static_cast<uint8_t>(pattern[0])].emplace_back(std::move(pattern), i);
  }
  for (Matcher* m : {&raw_, &normalized_}) {
    for (auto& list : m->by_byte) {
      std::stable_sort(list.begin(), list.end(),
                       [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    }
  }
}

const AddedToken* AddedVocab::Find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

void AddedVocab::Split(const Segment& seg, const Matcher& m, std::vector<Segment>* out) const {
  const std::string_view s = seg.text;
  size_t done = 0;  // end of the last emitted split
  auto emit_text = [&](size_t b, size_t e) {
    if (e > b) out->push_back({std::string(s.substr(b, e - b)), -1, seg.at_start && b == 0});
  };
  size_t pos = 0;
  while (pos < s.size()) {
    int hit = -1;
    size_t len = 0;
    for (const auto& [pattern, index] : m.by_byte[static_cast<uint8_t>(s[pos])]) {
      if (s.compare(pos, pattern.size(), pattern) == 0) {
        hit = index;
        len = pattern.size();
        break;
      }
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[hit];
    size_t start = pos, stop = pos + len;
    pos = stop;
    if (t.single_word) {
      const bool word_before = start > 0 && IsWordChar(LastChar(s, start));
      char32_t next = kInvalidCodePoint;
      if (stop < s.size()) DecodeUtf8(s, stop, &next);
      if (word_before || (stop < s.size() && IsWordChar(next))) continue;
    }
    if (t.lstrip) start = std::max(WhitespaceRunStart(s, start, 0), done);
    if (t.rstrip) stop = WhitespaceRunEnd(s, stop);
    emit_text(done, start);
    out->push_back({std::string(s.substr(start, stop - start)), t.id, seg.at_start && start == 0});
    done = stop;
    pos = stop;
  }
  emit_text(done, s.size());
}

std::vector<Segment> AddedVocab::Extract(std::string_view text, const Normalizer* normalizer) const {
  std::vector<Segment> raw;
  Split(Segment{std::string(text), -1, true}, raw_, &raw);
  std::vector<Segment> out;
  for (Segment& seg : raw) {
    if (seg.added_id >= 0) {
      out.push_back(std::move(seg));
      continue;
    }
    if (normalizer != nullptr) normalizer->Normalize(&seg.text);
    Split(seg, normalized_, &out);
  }
  return out;
}

}  // namespace slq::tok
