#include "server/quant/quantized_linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "server/common/half.h"
#include "server/common/thread_pool.h"
#include "server/quant/cpu_dequant_matmul.h"
#include "server/quant/packing.h"

namespace slq::quant {

size_t QuantizedLinear::MemoryBytes() const {
  return q_.codes.size() * sizeof(uint32_t) + (q_.scales.size() + q_.zeros.size()) * sizeof(uint16_t);
}

void QuantizedLinear::Forward(const float* x, int64_t n, float* y) const {
  const int64_t in = q_.cols, out = q_.rows;
  std::vector<float> rotated;
  if (q_.rotation.enabled()) {
    rotated.assign(x, x + n * in);
    ApplyRotation(q_.rotation, rotated.data(), n, in);
    x = rotated.data();
  }
  const kernels::PackedMatrixView view = q_.View();
  if (n == 1) {
    ParallelFor(out, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(in));
      for (int64_t r = begin; r < end; ++r) {
        DequantRow(view, r, row.data());
        float acc = 0.0f;
        for (int64_t j = 0; j < in; ++j) acc += row[j] * x[j];
        y[r] = acc;
      }
    }, 0, 64);
    return;
  }
  const int64_t tiles = (out + kTileRows - 1) / kTileRows;
  ParallelFor(tiles, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(kTileRows * in));  // [kTileRows, in]
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t * kTileRows, nr = std::min(kTileRows, out - r0);
      for (int64_t r = 0; r < nr; ++r) DequantRow(view, r0 + r, scratch.data() + r * in);
      // y[:, r0:r0+nr] = x [n, in] * scratch^T [in, nr]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n),
                  static_cast<int>(nr), static_cast<int>(in), 1.0f, x, static_cast<int>(in),
                  scratch.data(), static_cast<int>(in), 0.0f, y + r0, static_cast<int>(out));
    }
  }, 0, 1);
}

}  // namespace slq::quant
