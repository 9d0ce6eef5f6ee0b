// Test helpers: random "slq-packed-v1" matrices that own their storage. Test-only.
#ifndef SLQ_KERNELS_TEST_MATRIX_H_
#define SLQ_KERNELS_TEST_MATRIX_H_

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/packed_matrix.h"

namespace slq::kernels {

struct OwnedPacked {
  int64_t rows = 0, cols = 0, group_size = 0;
  int bits = 0;
  std::vector<uint32_t> codes;   // [rows, WordsPerRow]
  std::vector<uint16_t> scales;  // [rows, GroupsPerRow] fp16
  std::vector<uint16_t> zeros;   // [rows, GroupsPerRow] fp16
  // [rows, WordsPerRow(GroupsPerRow, kGridIdBits)] per-group grid ids (kernels/grids.h); empty = uniform
  std::vector<uint32_t> grid_ids;
  PackedMatrixView View() const;
};

// Random codes, positive scales around 0.02 / 2^(bits-4), zeros ~ -s * 2^(bits-1) +- noise.
OwnedPacked RandomPacked(int64_t rows, int64_t cols, int bits, int64_t group_size, std::mt19937_64& rng);

// Gives every group of m a random grid id in 0..kGridCount-1 (uniform over the grids, so about a
// quarter of the groups stay on the uniform grid 0). m must be asymmetric (views are by default).
void RandomGridIds(OwnedPacked& m, std::mt19937_64& rng);

// Writes code q at (r, c) of a packed matrix.
void SetCode(OwnedPacked& m, int64_t r, int64_t c, uint32_t q);

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_TEST_MATRIX_H_
