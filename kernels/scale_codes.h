// Compact group scales ("s8", issue #17): the artifact form of a matrix's per-group (scale, zero).
//
// The fp16 form (kernels/packed_matrix.h) spends 32 bits per group on an fp16 scale and zero
// (16 when symmetric). The s8 form spends an 8-bit scale code u per group and, when asymmetric,
// an integer zero-point z of `bits` bits; the matrix adds one fp32 base D. So g64 at 4 bits costs
// 4 + 12/64 bits instead of 4 + 32/64, and g128 4 + 12/128 instead of 4 + 32/128.
//
//   s16 = fp16( D * ScaleCodeFactor(u) )       ScaleCodeFactor(u) = (1 + (u & 31)/32) * 2^(u >> 5)
//   m16 = fp16( -s16 * z )                      z in [0, 2^bits - 1]   (asymmetric)
//   m16 = SymmetricZero(s16, bits)              (symmetric: no zero-point stored)
//
// All products are exact or single IEEE roundings in fp32, so every machine computes the same
// fp16 (s16, m16). An s8 matrix is expanded ONCE, at quantization or load time, into the fp16
// scales/zeros of slq-packed-v1 (ExpandScaleCodes); from there it is an ordinary packed matrix
// and every decoder and kernel (CPU and GPU, grids included) runs it unchanged. The compact form
// is what artifacts store and what bits/param charges; kernels in memory hold the fp16 form (a
// kernel reading the codes directly would move fewer bytes: not built yet).
//
// The factor is a tiny float (3-bit exponent, 5-bit mantissa): 1 .. 252 in steps of 1/32 of an
// octave's start, so a group's step is representable within 1.6-3.1% of any value in
// [D, 252 D]. The quantizer picks D per matrix (DefaultScaleBase) and, per group, the (u, z)
// whose re-rounded codes fit the group best (server/quant/quantizer.h).
// Thread safety: pure functions.
#ifndef SLQ_KERNELS_SCALE_CODES_H_
#define SLQ_KERNELS_SCALE_CODES_H_

#include <cstdint>

namespace slq::kernels {

inline constexpr int kScaleCodeBits = 8;   // bits of a scale code u
inline constexpr int kScaleBaseBits = 32;  // the fp32 base D, once per matrix

// (1 + (u & 31) / 32) * 2^(u >> 5): exact in fp32; 1 for u = 0, 252 for u = 255.
inline float ScaleCodeFactor(uint8_t u) { return static_cast<float>((32 + (u & 31)) << (u >> 5)) / 32.0f; }
// The fp16 bits of the step of scale code u under base D.
uint16_t ScaleFromCode(float base, uint8_t u);
// The fp16 bits of the zero -s * z of an asymmetric group with fp16 step s16 and zero-point z.
uint16_t ZeroFromPoint(uint16_t scale16, int z);
// The smallest code u whose fp16 step ScaleFromCode(base, u) >= s (255 when none is).
uint8_t ScaleCodeAtLeast(float base, float s);
// The base that makes code 255 a little above s_max (the largest group step a matrix needs,
// before any error feedback may widen a group): s_max * 1.1 / 252; 2^-24 when s_max <= 0.
float DefaultScaleBase(float s_max);

// Expands n groups: scales16[i] = ScaleFromCode(base, scale_codes[i]); with zero_points (asymmetric)
// zeros16[i] = ZeroFromPoint(scales16[i], zero_points[i]). Symmetric callers pass zero_points =
// nullptr and fill the zeros themselves (SymmetricZero lives with the quantizer).
void ExpandScaleCodes(const uint8_t* scale_codes, const uint8_t* zero_points, int64_t n, float base, uint16_t* scales16,
                      uint16_t* zeros16);

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_SCALE_CODES_H_
