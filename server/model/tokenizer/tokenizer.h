// Text <-> token ids for the models slq serves, with exact parity to Hugging Face `tokenizers`.
//
//   SLQ_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromHfDir("../shared/models/docs-19m"));
//   std::vector<int32_t> ids = tok->Encode("The kernel");   // [1 (<s>), ...]
//   std::string text = tok->Decode(ids);                    // "The kernel"
//
//   StreamingDecoder stream(tok.get());
//   for (int32_t id : generated) Send(stream.Add(id));  // never splits a UTF-8 character
//   Send(stream.Flush());
//
// Supported formats:
//  * tokenizer.json with a BPE model: sentencepiece-style (byte fallback, Prepend/Replace
//    normalizers or Metaspace) and byte-level (GPT-2 / Llama-3 / Qwen2 Split regexes), added
//    tokens, TemplateProcessing post-processor and the usual decoders (hf_components.h).
//  * llama2.c tokenizer.bin (score-greedy merges like llama2.c's encode()).
// A Tokenizer is immutable after loading; Encode/Decode/TokenBytes are thread-safe.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_TOKENIZER_H_
#define SLQ_SERVER_MODEL_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace slq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads dir/tokenizer.json; bos/eos come from tokenizer_config.json, then
  // special_tokens_map.json, then config.json (bos_token_id / eos_token_id). NotFound when
  // tokenizer.json is missing; InvalidArgument / Unimplemented naming the problem when it is
  // malformed or uses an unsupported component.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfDir(const std::string& dir);

  // Loads a llama2.c tokenizer.bin holding `vocab_size` tokens (int32 max_token_length, then
  // per token: float32 score, int32 length, bytes). BOS = 1, EOS = 2.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromLlama2c(const std::string& tokenizer_bin, int vocab_size);

  // Token ids of `text` (any bytes; invalid UTF-8 is tokenized byte-wise). With
  // add_special_tokens the post-processor's tokens are added (e.g. BOS in front).
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens = true) const = 0;

  // The raw bytes one token stands for, out of context: may be part of a UTF-8 character
  // ("<0xE2>" -> one byte), byte-level characters map back to bytes, '▁' -> ' '. Added tokens
  // give the text Decode shows for them; unknown ids give "".
  virtual std::string TokenBytes(int32_t id) const = 0;

  // Text of `ids` like HF's decode(ids, skip_special_tokens): the model's decoder chain,
  // including the leading-space strip of sentencepiece-style decoders. Unknown ids are skipped.
  // HF quirk kept for parity (tokenizers >= 0.2x): an added token with normalized=true is
  // decoded from its *normalized* content (tinystories-656k: id 1 -> "▁<|start_story|>" ->
  // " <|start_story|>") and is then NOT dropped by skip_special, since HF compares that string
  // with the raw special contents. DecodeSkips() tells which ids skip_special drops.
  std::string Decode(std::span<const int32_t> ids, bool skip_special = true) const {
    return DecodeImpl(ids, skip_special);
  }

  // True when Decode(..., skip_special=true) drops `id` (see the quirk above).
  bool DecodeSkips(int32_t id) const {
    return id >= 0 && id < static_cast<int64_t>(decode_skips_.size()) && decode_skips_[id];
  }

  int32_t bos_id() const { return bos_id_; }  // -1 when the tokenizer has none
  int32_t eos_id() const { return eos_id_; }  // -1 when the tokenizer has none
  // Number of ids (1 + the largest id, added tokens included).
  int64_t vocab_size() const { return vocab_size_; }
  // An added token marked special (BOS, EOS, <unk>, ...).
  bool IsSpecial(int32_t id) const { return id >= 0 && id < static_cast<int64_t>(special_.size()) && special_[id]; }

  // For StreamingDecoder: leading spaces the decoder drops at the start of the text, and
  // whether invalid bytes become one U+FFFD each (byte fallback) or one per maximal subpart.
  int leading_spaces_stripped() const { return leading_spaces_stripped_; }
  bool replaces_invalid_per_byte() const { return replaces_invalid_per_byte_; }

 protected:
  Tokenizer() = default;
  virtual std::string DecodeImpl(std::span<const int32_t> ids, bool skip_special) const = 0;

  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int64_t vocab_size_ = 0;
  std::vector<bool> special_;       // [vocab_size]
  std::vector<bool> decode_skips_;  // [vocab_size]
  int leading_spaces_stripped_ = 0;
  bool replaces_invalid_per_byte_ = false;
};

// Incremental detokenizer for streaming generation. Add() returns the new text for one id;
// text is released only in whole UTF-8 characters (an incomplete multi-byte sequence, e.g. an
// emoji spread over <0xF0><0x9F>..., is held back until complete). Flush() returns the rest,
// invalid bytes as U+FFFD. The concatenated deltas equal tokenizer->Decode(all ids,
// skip_special): ids that Decode drops are dropped here (to hide every special token, e.g.
// tinystories' BOS/EOS which HF's decode keeps, skip ids with IsSpecial() before Add()).
// One exception: a byte-fallback run mixing valid characters with invalid bytes, which HF
// turns wholly into U+FFFDs while this emits the valid characters once complete.
// Not thread-safe (one per stream); the tokenizer must outlive it.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer* tokenizer, bool skip_special = true)
      : tokenizer_(tokenizer), skip_special_(skip_special), strip_left_(tokenizer->leading_spaces_stripped()) {}

  std::string Add(int32_t id);
  // Returns what is held back and resets the decoder to the start of a new text.
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  int strip_left_;        // leading spaces still to drop (only before any text)
  bool started_ = false;  // some non-empty bytes were seen
  std::string pending_;   // bytes of an incomplete character
};

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_TOKENIZER_TOKENIZER_H_
