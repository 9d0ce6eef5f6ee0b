// The pure CPU reference of the packed matmul: the oracle the CUDA kernels are tested against.
//
//   y[t, r] = sum_j w'(r, j) * x[t, j],  w'(r, j) = m + s * q(r, j)  (kernels/packed_matrix.h)
//
// x: [n, view.cols] fp32, y: [n, view.rows] fp32 (overwritten), row-major. Dequantizes each
// element in fp32 exactly as the layout defines and accumulates the dot product in fp64, so
// its own rounding error is negligible next to any fp32/fp16 kernel. Slow by design (no BLAS,
// no threads). No rotation: a view is the matrix that multiplies the (already rotated) input.
// Thread safety: pure function.
#ifndef SLQ_SERVER_QUANT_CPU_DEQUANT_MATMUL_H_
#define SLQ_SERVER_QUANT_CPU_DEQUANT_MATMUL_H_

#include <cstdint>

#include "kernels/packed_matrix.h"

namespace slq::quant {

void DequantMatmulCpu(const kernels::PackedMatrixView& view, const float* x, int64_t n, float* y);

// Dequantizes row r of the view into out[view.cols].
void DequantRow(const kernels::PackedMatrixView& view, int64_t r, float* out);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_CPU_DEQUANT_MATMUL_H_
