#include "server/quant/packing.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/packed_matrix.h"

namespace slq::quant {

void PackRow(const uint8_t* codes, int64_t cols, int bits, uint32_t* words) {
  const int64_t nwords = kernels::WordsPerRow(cols, bits);
  std::memset(words, 0, static_cast<size_t>(nwords) * sizeof(uint32_t));
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t bit = j * bits;
    const int64_t w = bit >> 5;
    const int off = static_cast<int>(bit & 31);
    const uint64_t v = static_cast<uint64_t>(codes[j] & mask) << off;
    words[w] |= static_cast<uint32_t>(v);
    if (off + bits > 32) words[w + 1] |= static_cast<uint32_t>(v >> 32);
  }
}

void UnpackRow(const uint32_t* words, int64_t cols, int bits, uint8_t* out) {
  for (int64_t j = 0; j < cols; ++j) out[j] = static_cast<uint8_t>(kernels::PackedCode(words, j, bits));
}

absl::StatusOr<std::vector<uint32_t>> PackCodes(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  if (bits < 2 || bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat("bits = ", bits, "; allowed 2..8"));
  }
  if (rows < 0 || cols < 0) {
    return absl::InvalidArgumentError(absl::StrCat("shape [", rows, ", ", cols, "]: must be non-negative"));
  }
  const uint32_t limit = 1u << bits;
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (codes[i] >= limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("code ", codes[i], " at index ", i, " does not fit in ", bits, " bits"));
    }
  }
  const int64_t wpr = kernels::WordsPerRow(cols, bits);
  std::vector<uint32_t> words(static_cast<size_t>(rows * wpr));
  for (int64_t r = 0; r < rows; ++r) PackRow(codes + r * cols, cols, bits, words.data() + r * wpr);
  return words;
}

std::vector<uint8_t> UnpackCodes(const uint32_t* words, int64_t rows, int64_t cols, int bits) {
  const int64_t wpr = kernels::WordsPerRow(cols, bits);
  std::vector<uint8_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) UnpackRow(words + r * wpr, cols, bits, out.data() + r * cols);
  return out;
}

}  // namespace slq::quant
