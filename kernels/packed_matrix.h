// The packed weight layout shared by the artifact format, the CPU path and the CUDA kernels.
// kernels/ owns slq-packed-v1: this header describes it; kernels/dequant_ref.h is the one scalar
// CPU decoder (the oracle), kernels/packed_dot.h the fast CPU kernels (QuantizedLinear),
// kernels/cuda/packed_dequant.cuh the one device decoder; server/quant/packing.h encodes.
//
// Layout "slq-packed-v1" (the artifact layout; CUDA kernels may repack it at load time):
//   A linear layer's weight W is [rows = out_features, cols = in_features], quantized in groups
//   of `group_size` consecutive input columns (the last group of a row may be short when
//   cols % group_size != 0; per-row quantization is group_size == cols).
//   codes:  [rows, WordsPerRow(cols, bits)] uint32. Row r is a little-endian bit stream:
//           code j occupies stream bits [j*bits, (j+1)*bits), where stream bit i is bit (i % 32)
//           of word i / 32. Unused high bits of a row's last word are zero. Rows start on a
//           word boundary.
//   scales: [rows, GroupsPerRow(cols, group_size)] fp16 bits, the step s of each group.
//   zeros:  [rows, GroupsPerRow(cols, group_size)] fp16 bits, the offset m of each group.
//   Dequantized weight: w'(r, j) = m + s * q(r, j), q in [0, 2^bits - 1], computed in fp32
//   from the fp16 values. The zero is stored as a float (the group's minimum for asymmetric
//   quantization, -s * (2^(b-1) - 1) for symmetric), not as an integer zero-point.
//   grid_ids (optional; kernels/grids.h): [rows, WordsPerRow(GroupsPerRow(cols, group_size),
//           kGridIdBits)] uint32, one index per group as a packed bit stream per row (like the
//           codes). With grid ids the dequantized weight is w'(r, j) = m + s * L[q(r, j)], L =
//           GridLevels(bits, id of the group), in fp32; without them L[q] = q (grid 0).
//           Only asymmetric matrices carry grid ids.
//   Artifacts may store the scales/zeros compactly (kernels/scale_codes.h: an 8-bit scale code
//   and an integer zero-point per group, one fp32 base per matrix); loaders expand them into
//   exactly these fp16 arrays, so views and kernels never see the compact form.
#ifndef SLQ_KERNELS_PACKED_MATRIX_H_
#define SLQ_KERNELS_PACKED_MATRIX_H_

#include <cstdint>

namespace slq::kernels {

inline int64_t WordsPerRow(int64_t cols, int bits) { return (cols * bits + 31) / 32; }
inline int64_t GroupsPerRow(int64_t cols, int64_t group_size) { return (cols + group_size - 1) / group_size; }

// Code j of a packed row (`row_words` = the row's first word): the one bit-stream decoder.
inline uint32_t PackedCode(const uint32_t* row_words, int64_t j, int bits) {
  const int64_t bit = j * bits;
  const int64_t w = bit >> 5;
  const int off = static_cast<int>(bit & 31);
  uint64_t v = row_words[w] >> off;
  if (off + bits > 32) v |= static_cast<uint64_t>(row_words[w + 1]) << (32 - off);
  return static_cast<uint32_t>(v) & ((1u << bits) - 1u);
}

// A non-owning view of one packed matrix (host or device memory, as the caller says).
struct PackedMatrixView {
  int64_t rows = 0;                  // out_features
  int64_t cols = 0;                  // in_features
  int bits = 0;                      // 2..8
  int64_t group_size = 0;            // 32, 64, 128, ... or cols (per-row)
  const uint32_t* codes = nullptr;   // [rows, WordsPerRow(cols, bits)]
  const uint16_t* scales = nullptr;  // [rows, GroupsPerRow(cols, group_size)] fp16
  const uint16_t* zeros = nullptr;   // [rows, GroupsPerRow(cols, group_size)] fp16
  // Symmetric quantization: every zero is SymmetricZero(scale, bits) (artifacts store no zeros
  // then; a view always carries them, recomputed at load).
  bool symmetric = false;
  // Per-group grid indices (kernels/grids.h); null = every group on the uniform grid.
  const uint32_t* grid_ids = nullptr;  // [rows, WordsPerRow(GroupsPerRow(cols, group_size), kGridIdBits)]
};

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_PACKED_MATRIX_H_
