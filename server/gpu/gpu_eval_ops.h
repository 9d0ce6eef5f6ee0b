// Device kernels of the GPU EvalBackend (gpu_eval_backend.h): the per-position fidelity
// metrics of server/quant/metrics.h, and writing a linear's weights into a dense mirror.
// Plain C++ API (device pointers, the stream as void*), like gpu_ops.h.
#ifndef SLQ_SERVER_GPU_GPU_EVAL_OPS_H_
#define SLQ_SERVER_GPU_GPU_EVAL_OPS_H_

#include <cstdint>

#include "kernels/cuda/qgemm.h"

namespace slq::gpu {

using kernels::ActType;

// Per row r of base/quant fp32 logits [R, vocab] at temperature 1/inv_temp, with the softmax,
// KL and TV sums in fp64 as quant::CompareLogits does: out[r] = {EAR, KL, nll_base, nll_quant}
// (nll only where next[r] >= 0), argmax_base[r], argmax_quant[r] (ties: lowest id).
void CompareRows(const float* base, const float* quant, int64_t R, int64_t vocab, const int32_t* next, double inv_temp,
                 double* out, int32_t* argmax_base, int32_t* argmax_quant, void* stream);

// out[i] (act) = in[i] (fp32), n elements.
void F32ToAct(const float* in, int64_t n, void* out, ActType act, void* stream);

// Dequantizes an slq-packed-v1 matrix (codes [rows, words_per_row] LSB-first, fp16 scales and
// zeros [rows, groups_per_row]) into act [rows, cols]: w = zero + scale * code (fp32 math), the
// fp32 value of kernels::DequantRow rounded once to act. A matrix with grid ids: grid_ids
// [rows, WordsPerRow(groups_per_row, kGridIdBits)] and levels = kernels::GridLevelTable(bits),
// both device memory, and w = zero + scale * level; both null for a matrix without grid ids.
void DequantPackedToAct(const uint32_t* codes, const uint16_t* scales, const uint16_t* zeros, const uint32_t* grid_ids,
                        const float* levels, int64_t rows, int64_t cols, int bits, int64_t group_size, void* out,
                        ActType act, void* stream);

}  // namespace slq::gpu

#endif  // SLQ_SERVER_GPU_GPU_EVAL_OPS_H_
