// Hand-written matchers for the known pre-tokenizer regexes (std::regex has no \p{L}).
//
// Each matcher reproduces `regex.find_iter(text)` of Oniguruma / Rust regex (leftmost-first
// alternation with backtracking) for one fixed pattern:
//   kGpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2:  as kLlama3 with \p{N} instead of \p{N}{1,3}.
// Invalid UTF-8 bytes count as one character outside \p{L}, \p{N} and \s. Thread-safe.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_SPLIT_PATTERNS_H_
#define SLQ_SERVER_MODEL_TOKENIZER_SPLIT_PATTERNS_H_

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace slq::tok {

enum class SplitPattern { kGpt2, kLlama3, kQwen2 };

// Byte range [first, second) of one match.
using ByteRange = std::pair<size_t, size_t>;

// The known pattern whose regex source is exactly `regex`, or nullopt.
std::optional<SplitPattern> IdentifySplitPattern(std::string_view regex);

// All non-overlapping matches of `pattern` in `text`, left to right (appends to *out).
void FindPatternMatches(SplitPattern pattern, std::string_view text, std::vector<ByteRange>* out);

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_SPLIT_PATTERNS_H_
