// GPT-2 byte-level alphabet: every byte maps to one printable code point (bytes_to_unicode).
//
// Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes
// map to U+0100.. in byte order (so ' ' -> 'Ġ' U+0120, '\n' -> 'Ċ' U+010A). Immutable tables,
// thread-safe.
#ifndef SLQ_SERVER_MODEL_TOKENIZER_BYTE_LEVEL_H_
#define SLQ_SERVER_MODEL_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace slq::tok {

// UTF-8 encoding of the code point that byte b maps to.
const std::string& ByteLevelChar(uint8_t b);

// The byte that code point cp stands for, or -1 when cp is not in the alphabet.
int ByteLevelByte(char32_t cp);

// Maps every byte of `bytes` to its byte-level character (appends to *out).
void ByteLevelEncode(std::string_view bytes, std::string* out);

// Inverse of ByteLevelEncode for one token, like HF's ByteLevel decoder: when every character
// of `token` is in the alphabet, appends the bytes; otherwise appends `token` unchanged.
void ByteLevelDecodeToken(std::string_view token, std::string* out);

}  // namespace slq::tok

#endif  // SLQ_SERVER_MODEL_TOKENIZER_BYTE_LEVEL_H_
