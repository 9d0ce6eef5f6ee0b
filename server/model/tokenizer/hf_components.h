// The pipeline stages of a Hugging Face tokenizer.json other than the model:
//   normalizer -> pre_tokenizer -> (model) -> post_processor;  decoder for ids -> text.
// Each stage is parsed from its JSON object by a factory that returns InvalidArgument /
// Unimplemented naming the unknown "type". All stages are immutable after parsing and
// thread-safe. Semantics follow the `tokenizers` Rust crate.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_HF_COMPONENTS_H_
#define SLQ_SERVER_MODEL_TOKENIZER_HF_COMPONENTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace slq::tok {

// Supported: Sequence, Prepend, Replace (String pattern), Strip, NFC (identity: inputs are
// assumed to be NFC already; there is no Unicode normalization table here).
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void Normalize(std::string* text) const = 0;
};
absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& j);

// One piece of text between pre-tokenization steps. `at_start`: the piece begins at offset 0
// of the original input (Metaspace's prepend_scheme "first" needs it).
struct Piece {
  std::string text;
  bool at_start = false;
};

// Supported: Sequence, ByteLevel, Split (known regexes, see split_patterns.h, or a String),
// Metaspace. Pre-tokenization replaces *pieces with finer pieces; empty pieces are dropped.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void PreTokenize(std::vector<Piece>* pieces) const = 0;
};
absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& j);

// Supported: Sequence, Replace (String pattern), ByteFallback, Fuse, Strip, ByteLevel, Metaspace.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF decode_chain: rewrites the list of token strings (the caller concatenates the result).
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
  // The raw bytes one token stands for, out of context (no Strip / first-token rules).
  virtual void TokenBytes(std::string* token) const = 0;
  // Leading spaces removed from the start of the decoded text (Strip start / Metaspace prefix).
  virtual int LeadingSpacesStripped() const { return 0; }
  // True when invalid byte-fallback bytes decode to one U+FFFD per byte (ByteFallback).
  virtual bool ReplacesInvalidPerByte() const { return false; }
};
absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& j);

// Supported: TemplateProcessing (single template), ByteLevel (no-op on ids), Sequence,
// BertProcessing, RobertaProcessing.
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens around one encoded sequence.
  virtual void Process(std::vector<int32_t>* ids) const = 0;
};
absl::StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& j);

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_HF_COMPONENTS_H_
