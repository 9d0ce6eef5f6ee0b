#include "server/quant/cpu_dequant_matmul.h"

#include <vector>

#include "server/common/half.h"
#include "server/quant/packing.h"

namespace slq::quant {

void DequantRow(const kernels::PackedMatrixView& view, int64_t r, float* out) {
  const int64_t gpr = kernels::GroupsPerRow(view.cols, view.group_size);
  const uint32_t* words = view.codes + r * kernels::WordsPerRow(view.cols, view.bits);
  for (int64_t k = 0; k < gpr; ++k) {
    const float s = HalfToFloat(view.scales[r * gpr + k]);
    const float m = HalfToFloat(view.zeros[r * gpr + k]);
    const int64_t j0 = k * view.group_size;
    const int64_t j1 = j0 + view.group_size < view.cols ? j0 + view.group_size : view.cols;
    for (int64_t j = j0; j < j1; ++j) {
      out[j] = m + s * static_cast<float>(GetCode(words, j, view.bits));
    }
  }
}

void DequantMatmulCpu(const kernels::PackedMatrixView& view, const float* x, int64_t n, float* y) {
  std::vector<float> row(static_cast<size_t>(view.cols));
  for (int64_t r = 0; r < view.rows; ++r) {
    DequantRow(view, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * view.cols;
      double acc = 0.0;
      for (int64_t j = 0; j < view.cols; ++j) acc += static_cast<double>(row[j]) * xt[j];
      y[t * view.rows + r] = static_cast<float>(acc);
    }
  }
}

}  // namespace slq::quant
