// Added tokens of tokenizer.json ("added_tokens"): matched in the text before pre-tokenization.
//
// Like HF's AddedVocabulary: tokens with normalized=false are matched on the raw text first;
// the remaining pieces are normalized, then tokens with normalized=true are matched on the
// normalized text (their content normalized the same way). Matching is leftmost-longest with
// the single_word / lstrip / rstrip rules. Immutable after construction, thread-safe.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_ADDED_VOCAB_H_
#define SLQ_SERVER_MODEL_TOKENIZER_ADDED_VOCAB_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/model/tokenizer/hf_components.h"

namespace slq::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A piece of input: either an added token (added_id >= 0) or normalized text to pre-tokenize.
struct Segment {
  std::string text;
  int32_t added_id = -1;
  bool at_start = false;  // begins at offset 0 of the input
};

class AddedVocab {
 public:
  // `normalizer` (may be null) is used to normalize the contents of normalized tokens.
  AddedVocab(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` into added tokens and normalized text segments (empty ones dropped).
  std::vector<Segment> Extract(std::string_view text, const Normalizer* normalizer) const;

  // The added token with this id, or nullptr.
  const AddedToken* Find(int32_t id) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Patterns grouped by first byte, longest first.
  struct Matcher {
    std::vector<std::pair<std::string, int>> by_byte[256];  // (pattern, index into tokens_)
  };
  void Split(const Segment& seg, const Matcher& m, std::vector<Segment>* out) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, int> by_id_;
  Matcher raw_, normalized_;
};

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_ADDED_VOCAB_H_
