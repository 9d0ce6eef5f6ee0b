#include "server/model/tokenizer/llama2c_tokenizer.h"

#include <cstring>
#include <queue>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

constexpr int32_t kUnk = 0, kBos = 1, kEos = 2, kFirstByteId = 3;

// llama2.c's encode(): dummy-prefix space, one token per UTF-8 character (byte fallback to
// id 3 + byte), then repeatedly merge the adjacent pair whose concatenation is the vocab entry
// with the highest score (leftmost on ties). A heap over a linked list keeps it O(n log n).
class Llama2cTokenizer : public Tokenizer {
 public:
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores)
      : pieces_(std::move(pieces)), scores_(std::move(scores)) {
    for (int32_t i = 0; i < static_cast<int32_t>(pieces_.size()); ++i) {
      lookup_.try_emplace(pieces_[i], i);  // first occurrence wins
    }
    bos_id_ = kBos;
    eos_id_ = kEos;
    vocab_size_ = static_cast<int64_t>(pieces_.size());
    special_.assign(vocab_size_, false);
    for (int32_t id : {kUnk, kBos, kEos}) {
      if (id < vocab_size_) special_[id] = true;
    }
    decode_skips_ = special_;
    leading_spaces_stripped_ = 1;
    replaces_invalid_per_byte_ = false;
  }

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<int32_t> ids;
    if (add_special_tokens) ids.push_back(kBos);
    std::vector<int32_t> syms = InitialSymbols(text);
    Merge(&syms);
    ids.insert(ids.end(), syms.begin(), syms.end());
    return ids;
  }

  std::string TokenBytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size_) return "";
    const std::string& p = pieces_[id];
    unsigned int byte;
    char tail;
    if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X%c", &byte, &tail) == 2 && tail == '>') {
      return std::string(1, static_cast<char>(byte));
    }
    return p;
  }

 private:
  std::string DecodeImpl(std::span<const int32_t> ids, bool skip_special) const override {
    std::string bytes;
    for (int32_t id : ids) {
      if (skip_special && IsSpecial(id)) continue;
      bytes += TokenBytes(id);
    }
    if (!bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
    return Utf8Lossy(bytes);
  }

  int32_t Find(std::string_view s) const {
    auto it = lookup_.find(absl::string_view(s.data(), s.size()));
    return it == lookup_.end() ? -1 : it->second;
  }

  void PushPiece(std::string_view s, std::vector<int32_t>* out) const {
    const int32_t id = Find(s);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
    // Byte fallback (<0xXX> at 3 + byte). A vocab too small to hold that byte's token gets
    // <unk>: every id Encode returns must index the vocab (found by fuzz/).
    for (char c : s) {
      const int32_t b = kFirstByteId + static_cast<uint8_t>(c);
      out->push_back(b < vocab_size_ ? b : kUnk);
    }
  }

  std::vector<int32_t> InitialSymbols(std::string_view text) const {
    std::vector<int32_t> out;
    if (text.empty()) return out;
    PushPiece(" ", &out);  // add_dummy_prefix
    // Group a lead byte with up to 3 following continuation bytes, exactly as llama2.c does.
    size_t start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if ((static_cast<uint8_t>(text[i]) & 0xC0) != 0x80) start = i;
      const bool next_cont = i + 1 < text.size() && (static_cast<uint8_t>(text[i + 1]) & 0xC0) == 0x80;
      if (next_cont && i + 1 - start < 4) continue;
      PushPiece(text.substr(start, i + 1 - start), &out);
      start = i + 1;
    }
    return out;
  }

  void Merge(std::vector<int32_t>* ids) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  absl::flat_hash_map<std::string, int32_t> lookup_;
};

void Llama2cTokenizer::Merge(std::vector<int32_t>* ids) const {
  const int n = static_cast<int>(ids->size());
  if (n < 2) return;
  std::vector<int32_t> id(ids->begin(), ids->end());
  std::vector<int> next(n), prev(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Cand {
    float score;
    int pos;
    int32_t left, right, merged;
    bool operator<(const Cand& o) const {  // max score first, then leftmost
      return score != o.score ? score < o.score : pos > o.pos;
    }
  };
  std::priority_queue<Cand> queue;
  std::string buf;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    buf = pieces_[id[pos]];
    buf += pieces_[id[next[pos]]];
    const int32_t merged = Find(buf);
    if (merged >= 0) queue.push({scores_[merged], pos, id[pos], id[next[pos]], merged});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    if (!alive[c.pos] || next[c.pos] < 0 || id[c.pos] != c.left || id[next[c.pos]] != c.right) {
      continue;  // stale
    }
    const int r = next[c.pos];
    id[c.pos] = c.merged;
    alive[r] = false;
    next[c.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  ids->clear();
  for (int i = 0; i >= 0; i = next[i]) ids->push_back(id[i]);
}

template <typename T>
bool ReadPod(std::string_view data, size_t* pos, T* out) {
  if (data.size() - *pos < sizeof(T)) return false;
  std::memcpy(out, data.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(std::string_view data, int vocab_size) {
  if (vocab_size <= kEos || vocab_size > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("llama2.c tokenizer: vocab_size %d must be in [3, 2^24]", vocab_size));
  }
  size_t pos = 0;
  int32_t max_len = 0;
  if (!ReadPod(data, &pos, &max_len)) {
    return absl::InvalidArgumentError("llama2.c tokenizer: file shorter than its 4-byte header");
  }
  std::vector<std::string> pieces(vocab_size);
  std::vector<float> scores(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    int32_t len = 0;
    if (!ReadPod(data, &pos, &scores[i]) || !ReadPod(data, &pos, &len) || len < 0 ||
        static_cast<size_t>(len) > data.size() - pos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("llama2.c tokenizer: token %d of %d is truncated or has a bad length (file has %d bytes)", i,
                          vocab_size, data.size()));
    }
    pieces[i] = std::string(data.substr(pos, len));
    pos += len;
  }
  if (pos != data.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "llama2.c tokenizer: %d bytes left after %d tokens: wrong vocab_size?", data.size() - pos, vocab_size));
  }
  return std::unique_ptr<Tokenizer>(new Llama2cTokenizer(std::move(pieces), std::move(scores)));
}

}  // namespace slq::tok
