// The one device decoder of slq-packed-v1 (kernels/packed_matrix.h): code and dequantized weight
// of element (r, j), bit-identical to the CPU oracle kernels::DequantWeight (fp32 m + s * q, or
// m + s * L[q] with grid ids, round-to-nearest, no FMA contraction). Used by every device kernel
// that reads the artifact layout directly (server/gpu/gpu_eval_ops.cu); the fused QGemm reads
// its repacked slq-gpu-v1 layout instead (qgemm_device.cuh, kernels/repack.h).
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

// w'(r, j) = zero + scale * L[q] in fp32, L[q] = q without grid ids (grid_ids null), else
// levels[id * 2^bits + q] with id the group's grid id (kernels/grids.h; `levels` =
// kernels::GridLevelTable(bits) in device memory). wpr = WordsPerRow(cols, bits),
// gpr = GroupsPerRow(cols, gs); the grid ids of row r start at grid_ids + r * WordsPerRow(gpr, 2).
__device__ __forceinline__ float PackedWeight(const uint32_t* codes, const uint16_t* scales, const uint16_t* zeros,
                                              const uint32_t* grid_ids, const float* levels, int64_t r, int64_t j,
                                              int bits, int64_t gs, int64_t wpr, int64_t gpr) {
  const int64_t g = j / gs, k = r * gpr + g;
  const float s = __half2float(__ushort_as_half(scales[k]));
  const float z = __half2float(__ushort_as_half(zeros[k]));
  const uint32_t q = PackedCode(codes + r * wpr, j, bits);
  float level = static_cast<float>(q);
  if (grid_ids != nullptr) {
    const uint32_t id = PackedCode(grid_ids + r * ((gpr * 2 + 31) / 32), g, 2);
    level = levels[(static_cast<int64_t>(id) << bits) + q];
  }
  return __fadd_rn(z, __fmul_rn(s, level));
}

}  // namespace slq::kernels::dev

#endif  // SLQ_KERNELS_CUDA_PACKED_DEQUANT_CUH_
