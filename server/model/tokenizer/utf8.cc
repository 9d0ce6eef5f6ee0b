#include "server/model/tokenizer/utf8.h"

#include <cstdint>

namespace slq::tok {
namespace {

// Result of scanning one sequence at a position.
struct SeqScan {
  size_t len;      // bytes consumed (valid: the char length; invalid: the maximal subpart)
  bool valid;      // a complete, valid character
  bool truncated;  // valid so far but the input ended before the sequence did
  char32_t cp;     // the code point when valid
};

// Expected length and allowed range of the second byte for lead byte b (Unicode Table 3-7).
bool LeadInfo(uint8_t b, size_t* len, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    *len = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    *len = 3;
    if (b == 0xE0) *lo = 0xA0;
    if (b == 0xED) *hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    *len = 4;
    if (b == 0xF0) *lo = 0x90;
    if (b == 0xF4) *hi = 0x8F;
  } else {
    return false;
  }
  return true;
}

SeqScan Scan(std::string_view s, size_t pos) {
  const uint8_t b = static_cast<uint8_t>(s[pos]);
  if (b < 0x80) return {1, true, false, b};
  size_t len;
  uint8_t lo, hi;
  if (!LeadInfo(b, &len, &lo, &hi)) return {1, false, false, 0};
  char32_t cp = b & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    if (pos + k >= s.size()) return {k, false, true, 0};
    const uint8_t c = static_cast<uint8_t>(s[pos + k]);
    const uint8_t min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (c < min || c > max) return {k, false, false, 0};
    cp = (cp << 6) | (c & 0x3F);
  }
  return {len, true, false, cp};
}

}  // namespace

size_t DecodeUtf8(std::string_view s, size_t pos, char32_t* cp) {
  const SeqScan r = Scan(s, pos);
  if (!r.valid) {
    *cp = kInvalidCodePoint;
    return 1;
  }
  *cp = r.cp;
  return r.len;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Lossy(std::string_view bytes, bool per_byte) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const SeqScan r = Scan(bytes, pos);
    if (r.valid) {
      out.append(bytes.substr(pos, r.len));
    } else {
      for (size_t i = 0; i < (per_byte ? r.len : 1); ++i) out.append(kReplacementChar);
    }
    pos += r.len;
  }
  return out;
}

size_t Utf8CompletePrefix(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const SeqScan r = Scan(bytes, pos);
    if (r.truncated) return pos;
    pos += r.len;
  }
  return pos;
}

bool IsValidUtf8(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const SeqScan r = Scan(bytes, pos);
    if (!r.valid) return false;
    pos += r.len;
  }
  return true;
}

}  // namespace slq::tok
