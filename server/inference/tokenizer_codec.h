// TokenizerCodec: TextCodec over slq::Tokenizer (server/model/tokenizer), with its
// StreamingDecoder for UTF-8-safe deltas. LoadCodecFor finds the tokenizer of a model path.
#ifndef SLQ_SERVER_INFERENCE_TOKENIZER_CODEC_H_
#define SLQ_SERVER_INFERENCE_TOKENIZER_CODEC_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/inference/text_codec.h"
#include "server/model/tokenizer/tokenizer.h"

namespace slq::inference {

class TokenizerCodec final : public TextCodec {
 public:
  explicit TokenizerCodec(std::unique_ptr<Tokenizer> tok) : tok_(std::move(tok)) {}
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special) const override {
    return tok_->Encode(text, add_special);
  }
  std::string Piece(int32_t id) const override { return LossyUtf8(tok_->TokenBytes(id)); }
  std::unique_ptr<TextStream> NewTextStream() const override;
  int32_t bos_id() const override { return tok_->bos_id(); }
  int32_t eos_id() const override { return tok_->eos_id(); }
  int64_t vocab_size() const override { return tok_->vocab_size(); }
  const Tokenizer& tokenizer() const { return *tok_; }

 private:
  std::unique_ptr<Tokenizer> tok_;
};

// The tokenizer of a model: `path` is a folder (HF model or artifact) or a file (a llama2.c
// .bin checkpoint: its folder is used). The folder's tokenizer.json wins, else a llama2.c
// tokenizer.bin or tok<vocab_size>.bin. NotFound naming what was looked for.
[[nodiscard]] absl::StatusOr<std::shared_ptr<const TextCodec>> LoadCodecFor(const std::string& path,
                                                                            int64_t vocab_size);

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_TOKENIZER_CODEC_H_
