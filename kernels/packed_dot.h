// Fast CPU kernels over slq-packed-v1 rows (kernels/packed_matrix.h) for QuantizedLinear
// (server/quant/quantized_linear.h):
// a packed-row dot product (decode, batch 1) and a row dequantization (batched path).
//
//   float y = PackedRowDotFast(view, r, x, xsum);   // xsum[k] = sum of x over group k
//   DequantRowFast(view, r, row);                   // row[cols] = m + s * code
//
// Grid groups (view.grid_ids, kernels/grids.h) take the group's levels L by table lookup (AVX2,
// widths <= 4: the levels sit in registers and a lane permute looks 8 up at once; wider: the
// scalar lookup, which measured faster than an AVX2 gather), then m + s * L[q];
// sum x (m + s L[q]) = m xsum + s sum x L[q], so the dot product keeps the per-group xsum.
// Groups on grid 0 (and views without grid ids) run the integer-code paths unchanged.
//
// Codes are unpacked 32 at a time: 32 codes of b bits are exactly b words, so a block's shifts
// and masks are compile-time constants (bitwidth-specialised, fully unrolled) and the
// multiply-adds run on 8 independent lanes that the compiler vectorises. On x86-64 an AVX2+FMA
// version (intrinsics: 8 codes = b bytes broadcast into a register, per-lane variable shifts,
// mask, convert, FMA) is chosen at run time when the CPU has it (__builtin_cpu_supports);
// otherwise the baseline (SSE2) build runs, so any x86-64 (and other architectures) stay
// correct. Ragged tails (groups not a multiple of 32 codes) use the scalar code path. The
// scalar oracle is DequantRow / DequantMatmulRef (kernels/dequant_ref.h); results differ from
// it only by float summation order (and FMA contraction in the AVX2 build).
// Thread safety: pure functions.
#ifndef SLQ_KERNELS_PACKED_DOT_H_
#define SLQ_KERNELS_PACKED_DOT_H_

#include <cstdint>

#include "kernels/packed_matrix.h"

namespace slq::kernels {

float PackedRowDotFast(const PackedMatrixView& v, int64_t r, const float* x, const float* xsum);
void DequantRowFast(const PackedMatrixView& v, int64_t r, float* out);

// Which build runs: "avx2" or "baseline" (for benchmarks and logs).
const char* PackedKernelIsa();
// Forces the baseline build (tests compare both); returns the previous setting.
bool ForceBaselinePackedKernels(bool force);

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_PACKED_DOT_H_
