// UTF-8 helpers shared by the tokenizers and the streaming decoder.
//
// Invalid input never crashes: a byte that does not start a valid sequence decodes as one
// "character" of length 1 with code point kInvalidCodePoint. Pure functions, thread-safe.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_UTF8_H_
#define SLQ_SERVER_MODEL_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace slq::tok {

inline constexpr char32_t kInvalidCodePoint = 0xFFFFFFFF;
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Decodes the character starting at s[pos] (pos < s.size()) into *cp and returns its length in
// bytes (1..4). Invalid or truncated sequences: returns 1 and *cp = kInvalidCodePoint.
size_t DecodeUtf8(std::string_view s, size_t pos, char32_t* cp);

// Length in bytes of the character starting at s[pos] (1 for invalid bytes).
inline size_t Utf8CharLen(std::string_view s, size_t pos) {
  char32_t cp;
  return DecodeUtf8(s, pos, &cp);
}

// Appends the UTF-8 encoding of cp (must be a valid scalar value) to *out.
void AppendUtf8(char32_t cp, std::string* out);

// Converts bytes to valid UTF-8 like Rust's String::from_utf8_lossy: each maximal invalid
// subpart (Unicode "substitution of maximal subparts") becomes one U+FFFD; with `per_byte`,
// each invalid byte becomes one U+FFFD (HF's ByteFallback decoder).
std::string Utf8Lossy(std::string_view bytes, bool per_byte = false);

// Length of the longest prefix of `bytes` that holds no truncated (but so far valid)
// multi-byte sequence at its end: bytes past it may still become a valid character.
size_t Utf8CompletePrefix(std::string_view bytes);

// True when `bytes` is entirely valid UTF-8.
bool IsValidUtf8(std::string_view bytes);

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_UTF8_H_
