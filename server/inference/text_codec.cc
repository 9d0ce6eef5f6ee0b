#include "server/inference/text_codec.h"

#include "absl/strings/str_cat.h"

namespace slq::inference {
namespace {

// Expected length of a sequence from its lead byte; 0 for a continuation or invalid byte.
int LeadLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of a valid sequence at s[pos] (1..4), 0 if invalid, -1 if truncated but so far valid.
int SequenceAt(std::string_view s, size_t pos) {
  const int n = LeadLength(static_cast<unsigned char>(s[pos]));
  if (n == 0) return 0;
  for (int i = 1; i < n; ++i) {
    if (pos + i >= s.size()) return -1;
    if (!IsContinuation(static_cast<unsigned char>(s[pos + i]))) return 0;
  }
  return n;
}

class ByteTextStream final : public TextStream {
 public:
  ByteTextStream(int64_t vocab) : vocab_(vocab) {}
  std::string Push(int32_t id) override {
    if (id >= 0 && id < 256 && id < vocab_) held_.push_back(static_cast<char>(id));
    const size_t n = CompleteUtf8Prefix(held_);
    std::string out = LossyUtf8(std::string_view(held_).substr(0, n));
    held_.erase(0, n);
    return out;
  }
  std::string Finish() override {
    std::string out = LossyUtf8(held_);
    held_.clear();
    return out;
  }

 private:
  int64_t vocab_;
  std::string held_;  // bytes of an incomplete character
};

}  // namespace

size_t CompleteUtf8Prefix(std::string_view bytes) {
  // Only the last 3 bytes can start a truncated sequence.
  const size_t start = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t pos = start; pos < bytes.size(); ++pos) {
    if (IsContinuation(static_cast<unsigned char>(bytes[pos]))) continue;
    if (SequenceAt(bytes, pos) == -1) return pos;
  }
  return bytes.size();
}

std::string LossyUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const int n = SequenceAt(bytes, pos);
    if (n > 0) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++pos;
    }
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> ByteTextCodec::Encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special && bos_ >= 0) ids.push_back(bos_);
  for (unsigned char c : text) {
    if (c >= vocab_) {
      return absl::InvalidArgumentError(
          absl::StrCat("byte ", int{c}, " has no token: the vocabulary has ", vocab_, " ids"));
    }
    ids.push_back(c);
  }
  return ids;
}

std::string ByteTextCodec::Piece(int32_t id) const {
  if (id == bos_) return "<bos>";
  if (id == eos_) return "<eos>";
  if (id >= 0 && id < 256) return LossyUtf8(std::string(1, static_cast<char>(id)));
  return absl::StrCat("<", id, ">");
}

std::unique_ptr<TextStream> ByteTextCodec::NewTextStream() const { return std::make_unique<ByteTextStream>(vocab_); }

}  // namespace slq::inference
