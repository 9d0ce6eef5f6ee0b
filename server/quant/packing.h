// Bit packing of quantization codes into the "slq-packed-v1" layout (kernels/packed_matrix.h):
// each row is a little-endian bit stream of `bits`-bit codes starting on a uint32 boundary;
// unused high bits of a row's last word are zero.
//
//   std::vector<uint32_t> words = PackCodes(codes.data(), rows, cols, 5).value();
//   UnpackRow(words.data() + r * WordsPerRow(cols, 5), cols, 5, row_codes);
//
// Thread safety: pure functions.
#ifndef SLQ_SERVER_QUANT_PACKING_H_
#define SLQ_SERVER_QUANT_PACKING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace slq::quant {

// codes: [rows, cols] uint8, each < 2^bits. Returns [rows, WordsPerRow(cols, bits)] uint32.
// InvalidArgument for bits outside 2..8, negative shapes, or a code that does not fit.
[[nodiscard]] absl::StatusOr<std::vector<uint32_t>> PackCodes(const uint8_t* codes, int64_t rows,
                                                              int64_t cols, int bits);

// Packs one row of `cols` codes into words (WordsPerRow(cols, bits) of them, zeroed first).
// Codes are masked to `bits` bits (caller validates).
void PackRow(const uint8_t* codes, int64_t cols, int bits, uint32_t* words);

// Unpacks one row: out[cols] receives codes.
void UnpackRow(const uint32_t* words, int64_t cols, int bits, uint8_t* out);

// Code j of a packed row.
inline uint32_t GetCode(const uint32_t* words, int64_t j, int bits) {
  const int64_t bit = j * bits;
  const int64_t w = bit >> 5;
  const int off = static_cast<int>(bit & 31);
  uint64_t v = words[w] >> off;
  if (off + bits > 32) v |= static_cast<uint64_t>(words[w + 1]) << (32 - off);
  return static_cast<uint32_t>(v) & ((1u << bits) - 1u);
}

// Unpacks [rows, cols] codes.
std::vector<uint8_t> UnpackCodes(const uint32_t* words, int64_t rows, int64_t cols, int bits);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_PACKING_H_
