// Kernels of server/gpu/gpu_eval_ops.h.
#include "server/gpu/gpu_eval_ops.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "kernels/cuda/packed_dequant.cuh"
#include "server/gpu/device_util.cuh"

namespace slq::gpu {
namespace {

using namespace dev;  // NOLINT: the shared device helpers (device_util.cuh)

constexpr int kThreads = 1024;

// Block-wide argmax with ties to the lowest index; every thread gets (value, index).
__device__ void BlockArgmax(float* best, int32_t* bi, float* rv, int32_t* ri) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, *best, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, *bi, o);
    if (ov > *best || (ov == *best && oi < *bi)) {
      *best = ov;
      *bi = oi;
    }
  }
  const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();
  if (l == 0) {
    rv[w] = *best;
    ri[w] = *bi;
  }
  __syncthreads();
  *best = l < nw ? rv[l] : -FLT_MAX;
  *bi = l < nw ? ri[l] : 0x7fffffff;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, *best, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, *bi, o);
    if (ov > *best || (ov == *best && oi < *bi)) {
      *best = ov;
      *bi = oi;
    }
  }
}

// One block per row. Mirrors quant::CompareLogits: lz = log sum exp(l / T) in fp64 with the
// max subtracted; p_v = exp(l_v / T - lz); TV and KL summed in fp64.
__global__ void CompareRowsKernel(const float* base, const float* quant, int64_t vocab, const int32_t* next,
                                  double inv_temp, double* out, int32_t* amb, int32_t* amq) {
  __shared__ float rv[32];
  __shared__ int32_t ri[32];
  __shared__ double red[32];
  const int64_t r = blockIdx.x;
  const float* lb = base + r * vocab;
  const float* lq = quant + r * vocab;
  float mb = -FLT_MAX, mq = -FLT_MAX;
  int32_t ib = 0x7fffffff, iq = 0x7fffffff;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    const float b = lb[v], q = lq[v];
    if (b > mb) {
      mb = b;
      ib = static_cast<int32_t>(v);
    }
    if (q > mq) {
      mq = q;
      iq = static_cast<int32_t>(v);
    }
  }
  BlockArgmax(&mb, &ib, rv, ri);
  BlockArgmax(&mq, &iq, rv, ri);
  const double sb = mb * inv_temp, sq = mq * inv_temp;
  double zb = 0, zq = 0;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    zb += exp(lb[v] * inv_temp - sb);
    zq += exp(lq[v] * inv_temp - sq);
  }
  zb = BlockSum(zb, red);
  zq = BlockSum(zq, red);
  const double lzb = sb + log(zb), lzq = sq + log(zq);
  double tv = 0, kl = 0;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    const double a = lb[v] * inv_temp - lzb, b = lq[v] * inv_temp - lzq;
    const double p = exp(a), q = exp(b);
    tv += fabs(p - q);
    if (p > 0.0) kl += p * (a - b);
  }
  tv = BlockSum(tv, red);
  kl = BlockSum(kl, red);
  if (threadIdx.x == 0) {
    out[r * 4 + 0] = 1.0 - 0.5 * tv;
    out[r * 4 + 1] = kl > 0.0 ? kl : 0.0;
    const int32_t n = next ? next[r] : -1;
    out[r * 4 + 2] = n >= 0 ? lzb - lb[n] * inv_temp : 0.0;
    out[r * 4 + 3] = n >= 0 ? lzq - lq[n] * inv_temp : 0.0;
    amb[r] = ib;
    amq[r] = iq;
  }
}

template <typename T>
__global__ void F32ToActKernel(const float* in, int64_t n, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = FromF<T>(in[i]);
  }
}

template <typename T>
__global__ void DequantKernel(const uint32_t* codes, const uint16_t* scales, const uint16_t* zeros,
                              const uint32_t* grid_ids, const float* levels, int64_t rows, int64_t cols, int bits,
                              int64_t gs, int64_t wpr, int64_t gpr, T* out) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, j = i - r * cols;
    out[i] = FromF<T>(kernels::dev::PackedWeight(codes, scales, zeros, grid_ids, levels, r, j, bits, gs, wpr, gpr));
  }
}

unsigned Blocks(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}

}  // namespace

void CompareRows(const float* base, const float* quant, int64_t R, int64_t vocab, const int32_t* next, double inv_temp,
                 double* out, int32_t* argmax_base, int32_t* argmax_quant, void* stream) {
  if (R <= 0) return;
  CompareRowsKernel<<<static_cast<unsigned>(R), kThreads, 0, S(stream)>>>(base, quant, vocab, next, inv_temp, out,
                                                                          argmax_base, argmax_quant);
}

void F32ToAct(const float* in, int64_t n, void* out, ActType act, void* stream) {
  if (n <= 0) return;
  if (act == ActType::kF16) {
    F32ToActKernel<__half><<<Blocks(n), 256, 0, S(stream)>>>(in, n, static_cast<__half*>(out));
  } else {
    F32ToActKernel<__nv_bfloat16><<<Blocks(n), 256, 0, S(stream)>>>(in, n, static_cast<__nv_bfloat16*>(out));
  }
}

void DequantPackedToAct(const uint32_t* codes, const uint16_t* scales, const uint16_t* zeros, const uint32_t* grid_ids,
                        const float* levels, int64_t rows, int64_t cols, int bits, int64_t group_size, void* out,
                        ActType act, void* stream) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t wpr = (cols * bits + 31) / 32, gpr = (cols + group_size - 1) / group_size;
  if (act == ActType::kF16) {
    DequantKernel<__half><<<Blocks(rows * cols), 256, 0, S(stream)>>>(
        codes, scales, zeros, grid_ids, levels, rows, cols, bits, group_size, wpr, gpr, static_cast<__half*>(out));
  } else {
    DequantKernel<__nv_bfloat16><<<Blocks(rows * cols), 256, 0, S(stream)>>>(codes, scales, zeros, grid_ids, levels,
                                                                             rows, cols, bits, group_size, wpr, gpr,
                                                                             static_cast<__nv_bfloat16*>(out));
  }
}

}  // namespace slq::gpu
