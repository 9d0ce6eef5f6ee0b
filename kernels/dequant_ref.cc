#include "kernels/dequant_ref.h"

#include <vector>

#include "kernels/grids.h"
#include "server/common/half.h"

namespace slq::kernels {

std::string ValidatePackedView(const PackedMatrixView& w) {
  if (w.bits < 2 || w.bits > 8) {
    return "bits = " + std::to_string(w.bits) + " is not supported; allowed 2..8";
  }
  if (w.rows < 1 || w.cols < 1) {
    return "shape [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
           "] is empty; rows and cols must be >= 1";
  }
  if (w.group_size < 1) {
    return "group_size = " + std::to_string(w.group_size) + " must be >= 1";
  }
  if (w.codes == nullptr || w.scales == nullptr || w.zeros == nullptr) {
    return "packed matrix has a null codes/scales/zeros pointer";
  }
  if (w.grid_ids != nullptr && w.symmetric) {
    return "packed matrix is symmetric but carries grid ids; grids are for asymmetric matrices only";
  }
  return "";
}

uint32_t GridId(const PackedMatrixView& w, int64_t r, int64_t group) {
  if (w.grid_ids == nullptr) return 0;
  const int64_t words = WordsPerRow(GroupsPerRow(w.cols, w.group_size), kGridIdBits);
  return PackedCode(w.grid_ids + r * words, group, kGridIdBits);
}

uint32_t PackedCode(const PackedMatrixView& w, int64_t r, int64_t c) {
  return PackedCode(w.codes + r * WordsPerRow(w.cols, w.bits), c, w.bits);
}

float DequantWeight(const PackedMatrixView& w, int64_t r, int64_t c) {
  const int64_t gi = r * GroupsPerRow(w.cols, w.group_size) + c / w.group_size;
  const float s = HalfToFloat(w.scales[gi]);
  const float z = HalfToFloat(w.zeros[gi]);
  const float* levels = GridLevels(w.bits, static_cast<int>(GridId(w, r, c / w.group_size)));
  return z + s * levels[PackedCode(w, r, c)];
}

void DequantRow(const PackedMatrixView& w, int64_t r, float* out) {
  const int64_t gpr = GroupsPerRow(w.cols, w.group_size);
  const uint32_t* words = w.codes + r * WordsPerRow(w.cols, w.bits);
  for (int64_t k = 0; k < gpr; ++k) {
    const float s = HalfToFloat(w.scales[r * gpr + k]);
    const float m = HalfToFloat(w.zeros[r * gpr + k]);
    const int64_t j0 = k * w.group_size;
    const int64_t j1 = j0 + w.group_size < w.cols ? j0 + w.group_size : w.cols;
    const float* levels = GridLevels(w.bits, static_cast<int>(GridId(w, r, k)));
    for (int64_t j = j0; j < j1; ++j) out[j] = m + s * levels[PackedCode(words, j, w.bits)];
  }
}

std::string DequantMatmulRef(const PackedMatrixView& w, const float* x, int64_t n, float* y) {
  std::string err = ValidatePackedView(w);
  if (!err.empty()) return err;
  if (n < 0 || (n > 0 && (x == nullptr || y == nullptr))) {
    return "n = " + std::to_string(n) + " with null x/y; n must be >= 0 with valid buffers";
  }
  std::vector<float> wrow(static_cast<size_t>(w.cols));  // [cols] fp32
  for (int64_t r = 0; r < w.rows; ++r) {
    DequantRow(w, r, wrow.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      double acc = 0.0;
      for (int64_t c = 0; c < w.cols; ++c) acc += static_cast<double>(xt[c]) * wrow[c];
      y[t * w.rows + r] = static_cast<float>(acc);
    }
  }
  return "";
}

}  // namespace slq::kernels
