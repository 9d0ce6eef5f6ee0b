#include "server/quant/quantized_linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/packed_dot.h"
#include "server/common/half.h"
#include "server/model/worker_pool.h"

namespace slq::quant {

QuantizedLinear::QuantizedLinear(QuantizedMatrix q) : q_(std::move(q)) {
  packed_.view = q_.View();
  packed_.mse_clip = q_.mse_clip;
  packed_.quantizer = RoundingName(q_.rounding);
  packed_.rotation_block = q_.rotation.block;
  packed_.rotation_seed = q_.rotation.seed;
  packed_.bits_per_param = q_.BitsPerParam();
  if (q_.has_scale_codes()) {
    packed_.scale_codes = q_.scale_codes.data();
    packed_.zero_points = q_.zero_points.empty() ? nullptr : q_.zero_points.data();
    packed_.scale_base = q_.scale_base;
  }
}

size_t QuantizedLinear::MemoryBytes() const {
  return (q_.codes.size() + q_.grid_ids.size()) * sizeof(uint32_t) +
         (q_.scales.size() + q_.zeros.size()) * sizeof(uint16_t) + q_.scale_codes.size() + q_.zero_points.size();
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
  // The runtime's persistent pool: a decode step runs ~15 of these, and starting threads for
  // each (ParallelFor) cost more than the arithmetic on small models.
  WorkerPool& pool = WorkerPool::Default();
  if (n == 1) {
    // Decode: one pass over the packed codes, no dequantized row. Per group,
    // sum_j (m + s L[q_j]) x_j = s * sum_j L[q_j] x_j + m * sum_j x_j (L[q] = q on the uniform
    // grid), and sum_j x_j is the same for every row, so it is computed once per call.
    const int64_t g = q_.group_size, gpr = kernels::GroupsPerRow(in, g);
    thread_local std::vector<float> xsum;
    xsum.assign(static_cast<size_t>(gpr), 0.0f);
    for (int64_t k = 0; k < gpr; ++k) {
      for (int64_t j = k * g; j < std::min(in, (k + 1) * g); ++j) xsum[k] += x[j];
    }
    const float* xs = xsum.data();
    pool.Run(out, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) y[r] = kernels::PackedRowDotFast(view, r, x, xs);
    });
    return;
  }
  const int64_t tiles = (out + kTileRows - 1) / kTileRows;
  pool.Run(tiles, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scratch;  // [kTileRows, in]
    scratch.resize(static_cast<size_t>(kTileRows * in));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t * kTileRows, nr = std::min(kTileRows, out - r0);
      for (int64_t r = 0; r < nr; ++r) kernels::DequantRowFast(view, r0 + r, scratch.data() + r * in);
      // y[:, r0:r0+nr] = x [n, in] * scratch^T [in, nr]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(nr),
                  static_cast<int>(in), 1.0f, x, static_cast<int>(in), scratch.data(), static_cast<int>(in), 0.0f,
                  y + r0, static_cast<int>(out));
    }
  });
}

}  // namespace slq::quant
