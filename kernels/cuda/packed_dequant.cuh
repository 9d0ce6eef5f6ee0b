// The one device decoder of slq-packed-v1 (kernels/packed_matrix.h): code and dequantized weight
// of element (r, j), bit-identical to the CPU oracle kernels::DequantWeight (fp32 m + s * q with
// round-to-nearest, no FMA contraction). Used by every device kernel that reads the artifact
// layout directly (server/gpu/gpu_eval_ops.cu); the fused QGemm reads its repacked slq-gpu-v1
// layout instead (qgemm_device.cuh, kernels/repack.h).
#ifndef SLQ_KERNELS_CUDA_PACKED_DEQUANT_CUH_
#define SLQ_KERNELS_CUDA_PACKED_DEQUANT_CUH_

#include <cuda_fp16.h>

#include <cstdint>

namespace slq::kernels::dev {

// Code j of a packed row (`row_words` = the row's first word).
__device__ __forceinline__ uint32_t PackedCode(const uint32_t* row_words, int64_t j, int bits) {
  const int64_t bit = j * bits;
  const int off = static_cast<int>(bit & 31);
  uint64_t v = row_words[bit >> 5] >> off;
  if (off + bits > 32) v |= static_cast<uint64_t>(row_words[(bit >> 5) + 1]) << (32 - off);
  return static_cast<uint32_t>(v) & ((1u << bits) - 1u);
}

// w'(r, j) = zero + scale * q in fp32. wpr = WordsPerRow(cols, bits), gpr = GroupsPerRow(cols, gs).
__device__ __forceinline__ float PackedWeight(const uint32_t* codes, const uint16_t* scales, const uint16_t* zeros,
                                              int64_t r, int64_t j, int bits, int64_t gs, int64_t wpr, int64_t gpr) {
  const int64_t k = r * gpr + j / gs;
  const float s = __half2float(__ushort_as_half(scales[k]));
  const float z = __half2float(__ushort_as_half(zeros[k]));
  return __fadd_rn(z, __fmul_rn(s, static_cast<float>(PackedCode(codes + r * wpr, j, bits))));
}

}  // namespace slq::kernels::dev

#endif  // SLQ_KERNELS_CUDA_PACKED_DEQUANT_CUH_
