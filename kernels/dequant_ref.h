// The scalar CPU decoder of slq-packed-v1 (kernels/packed_matrix.h): codes, dequantized weights
// and rows, and the reference fused dequantize + matmul (the oracle for the CUDA kernels and for
// the fast CPU kernels of kernels/packed_dot.h; the quantizer's reconstruction uses DequantRow).
//
// Contract: y[t, r] = sum_c x[t, c] * (zero(r, g) + scale(r, g) * L[q(r, c)]), g = c / group_size,
// L = GridLevels(bits, grid id of (r, g)) (kernels/grids.h; L[q] = q without grid ids),
// where the dequantized weight is computed in fp32 from the fp16 scale/zero (as the
// "slq-packed-v1" layout specifies) and the sum is accumulated in fp64.
// Shapes: x [n, cols] fp32 row-major, y [n, rows] fp32 row-major; w is host memory.
// Thread-safety: pure function. Returns an empty string on success, else an error message.
#ifndef SLQ_KERNELS_DEQUANT_REF_H_
#define SLQ_KERNELS_DEQUANT_REF_H_

#include <cstdint>
#include <string>

#include "kernels/packed_matrix.h"

namespace slq::kernels {

// Checks the view's fields (bits 2..8, group_size >= 1, pointers non-null, rows/cols >= 1,
// no grid ids on a symmetric matrix).
std::string ValidatePackedView(const PackedMatrixView& w);

// The grid index (0..kGridCount-1) of group `group` of row r; 0 when the view has no grid ids.
uint32_t GridId(const PackedMatrixView& w, int64_t r, int64_t group);

// Reads code q(r, c) from the packed bit stream.
uint32_t PackedCode(const PackedMatrixView& w, int64_t r, int64_t c);

// Dequantized weight w'(r, c) = zero + scale * L[q] in fp32.
float DequantWeight(const PackedMatrixView& w, int64_t r, int64_t c);

// Dequantizes row r into out[w.cols] (the same fp32 values as DequantWeight).
void DequantRow(const PackedMatrixView& w, int64_t r, float* out);

// y [n, rows] = x [n, cols] * W'^T, fp64 accumulation. Empty string on success.
std::string DequantMatmulRef(const PackedMatrixView& w, const float* x, int64_t n, float* y);

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_DEQUANT_REF_H_
