#include "server/model/tokenizer/byte_level.h"

#include <array>

#include "server/model/tokenizer/utf8.h"

namespace slq::tok {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_char;
  std::array<int, 512> cp_to_byte;  // every mapped code point is < 0x144
};

bool MapsToItself(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

Tables BuildTables() {
  Tables t;
  t.cp_to_byte.fill(-1);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = MapsToItself(b) ? static_cast<char32_t>(b) : 256 + next++;
    AppendUtf8(cp, &t.byte_to_char[b]);
    t.cp_to_byte[cp] = b;
  }
  return t;
}

const Tables& GetTables() {
  static const Tables* tables = new Tables(BuildTables());
  return *tables;
}

}  // namespace

const std::string& ByteLevelChar(uint8_t b) { return GetTables().byte_to_char[b]; }

int ByteLevelByte(char32_t cp) { return cp < 512 ? GetTables().cp_to_byte[cp] : -1; }

void ByteLevelEncode(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  for (char c : bytes) out->append(t.byte_to_char[static_cast<uint8_t>(c)]);
}

void ByteLevelDecodeToken(std::string_view token, std::string* out) {
  const size_t start = out->size();
  for (size_t pos = 0; pos < token.size();) {
    char32_t cp;
    pos += DecodeUtf8(token, pos, &cp);
    const int b = cp == kInvalidCodePoint ? -1 : ByteLevelByte(cp);
    if (b < 0) {
      out->resize(start);
      out->append(token);
      return;
    }
    out->push_back(static_cast<char>(b));
  }
}

}  // namespace slq::tok
