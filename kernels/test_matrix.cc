#include "kernels/test_matrix.h"

#include <cmath>

#include "kernels/grids.h"
#include "server/common/half.h"

namespace slq::kernels {

PackedMatrixView OwnedPacked::View() const {
  PackedMatrixView v;
  v.rows = rows;
  v.cols = cols;
  v.bits = bits;
  v.group_size = group_size;
  v.codes = codes.data();
  v.scales = scales.data();
  v.zeros = zeros.data();
  v.grid_ids = grid_ids.empty() ? nullptr : grid_ids.data();
  return v;
}

void SetCode(OwnedPacked& m, int64_t r, int64_t c, uint32_t q) {
  uint32_t* row = m.codes.data() + r * WordsPerRow(m.cols, m.bits);
  const int64_t bit = c * m.bits;
  const int64_t word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  row[word] |= q << shift;
  if (shift + m.bits > 32) row[word + 1] |= q >> (32 - shift);
}

void RandomGridIds(OwnedPacked& m, std::mt19937_64& rng) {
  const int64_t gpr = GroupsPerRow(m.cols, m.group_size), words = WordsPerRow(gpr, kGridIdBits);
  m.grid_ids.assign(static_cast<size_t>(m.rows * words), 0u);
  std::uniform_int_distribution<uint32_t> id(0, kGridCount - 1);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t k = 0; k < gpr; ++k) {
      const int64_t bit = k * kGridIdBits;  // kGridIdBits divides 32: an id never straddles words
      m.grid_ids[r * words + bit / 32] |= id(rng) << (bit % 32);
    }
  }
}

OwnedPacked RandomPacked(int64_t rows, int64_t cols, int bits, int64_t group_size, std::mt19937_64& rng) {
  OwnedPacked m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.group_size = group_size;
  m.codes.assign(static_cast<size_t>(rows * WordsPerRow(cols, bits)), 0u);
  const int64_t ng = rows * GroupsPerRow(cols, group_size);
  m.scales.resize(static_cast<size_t>(ng));
  m.zeros.resize(static_cast<size_t>(ng));
  std::uniform_int_distribution<uint32_t> code(0, (1u << bits) - 1u);
  std::uniform_real_distribution<float> u(0.5f, 1.5f), nz(-0.2f, 0.2f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) SetCode(m, r, c, code(rng));
  }
  const float levels = static_cast<float>((1u << bits) - 1u);
  for (int64_t g = 0; g < ng; ++g) {
    const float s = 0.05f * u(rng) / levels;
    m.scales[g] = FloatToHalf(s);
    m.zeros[g] = FloatToHalf(-s * levels * (0.5f + nz(rng)));
  }
  return m;
}

}  // namespace slq::kernels
