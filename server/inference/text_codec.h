// TextCodec: what the inference engine needs from a tokenizer, behind a small interface so the
// engine is testable with a byte-level codec and independent of the tokenizer's internals.
//
//   std::unique_ptr<TextStream> s = codec.NewTextStream();
//   std::string delta = s->Push(id);   // UTF-8-safe text delta (may be empty: bytes held)
//   delta += s->Finish();              // whatever was held at the end (lossy-decoded)
//
// TokenizerCodec (tokenizer_codec.h) adapts slq::Tokenizer; ByteTextCodec below maps ids
// 0..255 to single bytes (tests, and models without a tokenizer).
// Thread safety: a TextCodec is immutable and may be shared; a TextStream belongs to one
// request and is used by one thread at a time.
#ifndef SLQ_SERVER_INFERENCE_TEXT_CODEC_H_
#define SLQ_SERVER_INFERENCE_TEXT_CODEC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace slq::inference {

// Incremental detokenizer of one sequence. Push returns only complete UTF-8 characters.
class TextStream {
 public:
  virtual ~TextStream() = default;
  virtual std::string Push(int32_t id) = 0;
  // Flushes held bytes (incomplete characters become U+FFFD).
  virtual std::string Finish() = 0;
};

class TextCodec {
 public:
  virtual ~TextCodec() = default;
  // Token ids of `text`; add_special prepends BOS (as the tokenizer's post-processor says).
  [[nodiscard]] virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special) const = 0;
  // Display string of one token (ListModels/Tokenize "pieces"): lossy UTF-8.
  virtual std::string Piece(int32_t id) const = 0;
  virtual std::unique_ptr<TextStream> NewTextStream() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 = none
  virtual int32_t eos_id() const = 0;  // -1 = none
  virtual int64_t vocab_size() const = 0;
};

// Ids 0..255 are the bytes themselves; bos_id/eos_id are given (>= 256 or -1). Other ids decode
// to nothing. Encode maps each byte to its id.
class ByteTextCodec final : public TextCodec {
 public:
  ByteTextCodec(int64_t vocab_size, int32_t bos_id, int32_t eos_id) : vocab_(vocab_size), bos_(bos_id), eos_(eos_id) {}
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special) const override;
  std::string Piece(int32_t id) const override;
  std::unique_ptr<TextStream> NewTextStream() const override;
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  int64_t vocab_size() const override { return vocab_; }

 private:
  int64_t vocab_;
  int32_t bos_, eos_;
};

// Length of the longest prefix of `bytes` that does not end inside a (so far valid) multi-byte
// UTF-8 sequence: bytes past it may still complete a character.
size_t CompleteUtf8Prefix(std::string_view bytes);
// `bytes` with each invalid byte replaced by U+FFFD.
std::string LossyUtf8(std::string_view bytes);

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_TEXT_CODEC_H_
