// Bit packing of quantization codes into the "slq-packed-v1" layout (kernels/packed_matrix.h, which
// also holds the one decoder, kernels::PackedCode):
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
[[nodiscard]] absl::StatusOr<std::vector<uint32_t>> PackCodes(const uint8_t* codes, int64_t rows, int64_t cols,
                                                              int bits);

// Packs one row of `cols` codes into words (WordsPerRow(cols, bits) of them, zeroed first).
// Codes are masked to `bits` bits (caller validates).
void PackRow(const uint8_t* codes, int64_t cols, int bits, uint32_t* words);

// Unpacks one row: out[cols] receives codes.
void UnpackRow(const uint32_t* words, int64_t cols, int bits, uint8_t* out);

// Unpacks [rows, cols] codes.
std::vector<uint8_t> UnpackCodes(const uint32_t* words, int64_t rows, int64_t cols, int bits);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_PACKING_H_
