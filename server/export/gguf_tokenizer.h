// The tokenizer of an artifact (its base model's tokenizer.json + tokenizer_config.json) as
// llama.cpp's GGUF tokenizer metadata (tokenizer.ggml.*), as llama.cpp's HF converter decides it:
//   - BPE with byte_fallback (SentencePiece-style, "▁" for spaces)  -> model "llama": tokens, scores
//     (merge i gives its token the score -i, so llama.cpp's best-score-first merging replays the
//     BPE merge order), token types (<0xNN> = byte);
//   - BPE with a ByteLevel pre-tokenizer/decoder (GPT-2 style)      -> model "gpt2": tokens, merges,
//     tokenizer.ggml.pre from the pre-tokenizer's regex ("gpt-2" for plain ByteLevel).
// Special ids from tokenizer_config (bos/eos/unk/pad tokens, add_bos_token/add_eos_token), else
// from the post-processor template and config.json; chat_template when present.
// Anything else (Unigram, WordPiece, an unknown split regex, more tokens than the embedding has
// rows) is refused with InvalidArgument saying why. Thread safety: reentrant.
#ifndef SLQ_SERVER_EXPORT_GGUF_TOKENIZER_H_
#define SLQ_SERVER_EXPORT_GGUF_TOKENIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slq::exporter {

// llama.cpp's token types (llama.h: LLAMA_TOKEN_TYPE_*).
enum GgufTokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct GgufTokenizer {
  std::string model;                 // "llama" or "gpt2"
  std::string pre;                   // gpt2 only: the pre-tokenizer's llama.cpp name
  std::vector<std::string> tokens;   // exactly vocab_size (padded with "[PAD<id>]", type unused)
  std::vector<float> scores;         // llama only
  std::vector<int32_t> token_types;  // GgufTokenType
  std::vector<std::string> merges;   // gpt2 only: "left right"
  std::optional<int32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::string chat_template;
};

// Reads DIR/tokenizer.json (required), DIR/tokenizer_config.json and DIR/config.json (optional).
[[nodiscard]] absl::StatusOr<GgufTokenizer> GgufTokenizerFromDir(const std::string& dir, int64_t vocab_size);

}  // namespace slq::exporter

#endif  // SLQ_SERVER_EXPORT_GGUF_TOKENIZER_H_
