#include "server/model/tokenizer/tokenizer.h"
#include "server/model/tokenizer/utf8.h"

namespace slq {

std::string StreamingDecoder::Add(int32_t id) {
  if (skip_special_ && tokenizer_->DecodeSkips(id)) return "";
  std::string bytes = tokenizer_->TokenBytes(id);
  if (bytes.empty()) return "";
  if (!started_) {
    size_t n = 0;
    while (n < bytes.size() && static_cast<int>(n) < strip_left_ && bytes[n] == ' ') ++n;
    bytes.erase(0, n);
    started_ = true;
  }
  pending_ += bytes;
  const size_t complete = tok::Utf8CompletePrefix(pending_);
  std::string out =
      tok::Utf8Lossy(std::string_view(pending_).substr(0, complete), tokenizer_->replaces_invalid_per_byte());
  pending_.erase(0, complete);
  return out;
}

std::string StreamingDecoder::Flush() {
  std::string out = tok::Utf8Lossy(pending_, tokenizer_->replaces_invalid_per_byte());
  pending_.clear();
  started_ = false;
  strip_left_ = tokenizer_->leading_spaces_stripped();
  return out;
}

}  // namespace slq
