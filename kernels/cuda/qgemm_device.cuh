// Device helpers shared by the QGemm kernels (private to kernels/cuda/qgemm.cu and
// qgemm_stream.cu; include it from those files only): launch parameters, bit-plane code extraction, fp16/bf16
// dequantization, mma.sync / ldmatrix / cp.async wrappers, the tiled kernel's k-step, and the common epilogue
// (reduction over K-slice warps, output or split-K workspace with last-block finalize).
#ifndef SLQ_KERNELS_CUDA_QGEMM_DEVICE_CUH_
#define SLQ_KERNELS_CUDA_QGEMM_DEVICE_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels/cuda/qgemm.h"

namespace slq::kernels {
namespace {

constexpr int kThreads = 256;

struct Params {
  const uint4* codes;
  const uint2* sz;
  const uint16_t* x;
  uint16_t* y;
  float* ws;
  int* counters;
  int rows, cols, n, row_tiles, chunks, gpad, log2g, splits, chunks_per_split;
  int prefetch_chunks;  // streaming kernel: L2 prefetch distance in chunks (0 = off)
  const uint8_t* grid;  // grid matrices (tiled kernel): repacked grid ids, else null
  const float* levels;  // grid matrices: GridLevelTable(bits) on the device, else null
};

// Launch parameters of a validated QGemm call, without the split-K fields.
inline Params MakeParams(const DeviceMatrix& w, const void* x, int64_t n, void* y) {
  const GpuLayout& l = w.layout;
  Params p{};
  p.codes = reinterpret_cast<const uint4*>(w.codes);
  p.sz = reinterpret_cast<const uint2*>(w.sz);
  p.x = static_cast<const uint16_t*>(x);
  p.y = static_cast<uint16_t*>(y);
  p.rows = static_cast<int>(l.rows);
  p.cols = static_cast<int>(l.cols);
  p.n = static_cast<int>(n);
  p.row_tiles = static_cast<int>(l.row_tiles);
  p.chunks = static_cast<int>(l.chunks);
  p.gpad = static_cast<int>(l.chunks * kChunkCols / l.group_size);
  p.log2g = l.group_size == 32 ? 5 : l.group_size == 64 ? 6 : 7;
  p.grid = w.grid;
  p.levels = w.levels;
  return p;
}

// Calls launch(std::integral_constant<int, B>{}) for the runtime code width B in 2..8 (every
// kernel is a template over the width); any other width is refused with the same message.
template <typename F>
std::string WithBits(int bits, F&& launch) {
  switch (bits) {
    case 2:
      return launch(std::integral_constant<int, 2>{});
    case 3:
      return launch(std::integral_constant<int, 3>{});
    case 4:
      return launch(std::integral_constant<int, 4>{});
    case 5:
      return launch(std::integral_constant<int, 5>{});
    case 6:
      return launch(std::integral_constant<int, 6>{});
    case 7:
      return launch(std::integral_constant<int, 7>{});
    case 8:
      return launch(std::integral_constant<int, 8>{});
    default:
      return "bits = " + std::to_string(bits) + " is not supported; allowed 2..8";
  }
}

__host__ __device__ constexpr int PlaneWidth(int bits, int i) {
  int k = 0;
  for (int w = 8; w >= 1; w /= 2) {
    if (bits & w) {
      if (k == i) return w;
      ++k;
    }
  }
  return 0;
}
__host__ __device__ constexpr int PlaneOff(int bits, int i) {
  int off = 0;
  for (int j = 0; j < i; ++j) off += PlaneWidth(bits, j);
  return off;
}

template <int SH>
__device__ __forceinline__ uint32_t ShiftR(uint32_t x) {
  if constexpr (SH >= 0) {
    return x >> SH;
  } else {
    return x << (-SH);
  }
}

// Bits of plane I of pair P, placed at the code's bit offset in both 16-bit halves.
template <int BITS, int P, int I>
__device__ __forceinline__ uint32_t PlanePart(const uint32_t (&wr)[4 * BITS]) {
  constexpr int W = PlaneWidth(BITS, I);
  if constexpr (W == 0) {
    return 0u;
  } else {
    constexpr int OFF = PlaneOff(BITS, I);
    constexpr int PER = 16 / W;
    constexpr int REG = OFF * 4 + P / PER;
    constexpr int SLOT = P % PER;
    constexpr uint32_t M = ((1u << W) - 1u) << OFF;
    return ShiftR<SLOT * W - OFF>(wr[REG]) & (M | (M << 16));
  }
}

// The two codes of pair P at bits [0, 8) and [16, 24).
template <int BITS, int P>
__device__ __forceinline__ uint32_t PairCodes(const uint32_t (&wr)[4 * BITS]) {
  return PlanePart<BITS, P, 0>(wr) | PlanePart<BITS, P, 1>(wr) | PlanePart<BITS, P, 2>(wr);
}

__device__ __forceinline__ uint32_t AsU32(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }
__device__ __forceinline__ uint32_t AsU32(__nv_bfloat162 h) { return *reinterpret_cast<uint32_t*>(&h); }
__device__ __forceinline__ __half2 AsH2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }
__device__ __forceinline__ __nv_bfloat162 AsB2(uint32_t u) { return *reinterpret_cast<__nv_bfloat162*>(&u); }

// Dequantizes a code pair to two activation-type weights: w = q * s + z.
template <int BITS, bool BF16>
__device__ __forceinline__ uint32_t Dequant(uint32_t q2, uint32_t s2, uint32_t z2) {
  if constexpr (!BF16) {
    const __half2 q = __hsub2(AsH2(q2 | 0x64006400u), AsH2(0x64006400u));  // exact q
    return AsU32(__hfma2(q, AsH2(s2), AsH2(z2)));
  } else if constexpr (BITS < 8) {
    const __nv_bfloat162 q = __hsub2(AsB2(q2 | 0x43004300u), AsB2(0x43004300u));  // exact q
    return AsU32(__hfma2(q, AsB2(s2), AsB2(z2)));
  } else {
    const __nv_bfloat162 lo = __hsub2(AsB2((q2 & 0x000F000Fu) | 0x43004300u), AsB2(0x43004300u));
    const __nv_bfloat162 hi = __hsub2(AsB2(((q2 >> 4) & 0x000F000Fu) | 0x43004300u), AsB2(0x43004300u));
    const __nv_bfloat162 q = __hfma2(hi, AsB2(0x41804180u), lo);  // 16 * hi + lo, exact
    return AsU32(__hfma2(q, AsB2(s2), AsB2(z2)));
  }
}

// Dequantizes a code pair of a grid matrix to two activation-type weights: w = z + s * L[q] in
// fp32 (L = the group's levels in shared memory), rounded once to the activation type.
template <bool BF16>
__device__ __forceinline__ uint32_t DequantGrid(uint32_t q2, const float* lv, float s, float z) {
  const float w0 = fmaf(s, lv[q2 & 0xFFFFu], z);
  const float w1 = fmaf(s, lv[q2 >> 16], z);
  if constexpr (BF16) {
    return AsU32(__floats2bfloat162_rn(w0, w1));
  } else {
    return AsU32(__floats2half2_rn(w0, w1));
  }
}

template <bool BF16>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* smem) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

__device__ __forceinline__ uint4 LoadStream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <bool BF16>
__device__ __forceinline__ uint16_t ToAct(float v) {
  if constexpr (BF16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  } else {
    return __half_as_ushort(__float2half_rn(v));
  }
}

// Broadcasts the fp16 scale/zero of one row (low or high half of `u`) to both halves, in the
// activation type.
template <bool BF16>
__device__ __forceinline__ uint32_t Splat(uint32_t u, bool high) {
  const uint32_t h = __byte_perm(u, 0, high ? 0x3232 : 0x1010);
  if constexpr (BF16) {
    const float f = __half2float(__ushort_as_half(static_cast<uint16_t>(h & 0xFFFF)));
    return AsU32(__floats2bfloat162_rn(f, f));
  } else {
    return h;
  }
}

// The grid state of a chunk (GRID kernels only): the grid-id bytes of its scale slots 0..3
// (`ids`, byte q = id(g) | id(g + 8) << 4 of slot q's group) and 4..7 (`ids_hi`, SPC = 8 only),
// the shared-memory level table, and per slot the two rows' levels and fp32 scale/zero.
struct GridState {
  uint32_t ids, ids_hi;
  const float* table;
  const float* lv[2];
  float s[2], z[2];
};

// One k-step S (16 columns) of a chunk: ldmatrix the activations every other step, dequantize
// this step's A fragment and issue NT mma. Pairs 0 and 2 are row g, 1 and 3 row g + 8.
// SPC: scale/zero slots per chunk, 4 (one per 64 columns: group size 64 or 128) or 8 (group
// size 32); slot q covers steps [q * 16 / SPC, (q + 1) * 16 / SPC).
template <int BITS, bool BF16, int NT, int KSTRIDE, bool GRID, int SPC, int S>
__device__ __forceinline__ void KStep(float (&acc)[NT][4], const uint32_t (&wr)[4 * BITS], const uint2 (&sz)[SPC],
                                      uint32_t (&spl)[4], uint32_t (&b)[NT][4], const uint16_t* xs, int lane,
                                      GridState& gs) {
  constexpr int QS = 16 / SPC;  // k-steps per slot
  if constexpr (S % QS == 0) {
    constexpr int Q = S / QS;
    if constexpr (GRID) {
      const uint32_t id = (Q < 4 ? gs.ids : gs.ids_hi) >> (8 * (Q % 4));
      gs.lv[0] = gs.table + ((id & 0x3u) << BITS);
      gs.lv[1] = gs.table + (((id >> 4) & 0x3u) << BITS);
      gs.s[0] = __half2float(__ushort_as_half(static_cast<uint16_t>(sz[Q].x & 0xFFFF)));
      gs.z[0] = __half2float(__ushort_as_half(static_cast<uint16_t>(sz[Q].x >> 16)));
      gs.s[1] = __half2float(__ushort_as_half(static_cast<uint16_t>(sz[Q].y & 0xFFFF)));
      gs.z[1] = __half2float(__ushort_as_half(static_cast<uint16_t>(sz[Q].y >> 16)));
    } else {
      spl[0] = Splat<BF16>(sz[Q].x, false);
      spl[1] = Splat<BF16>(sz[Q].x, true);
      spl[2] = Splat<BF16>(sz[Q].y, false);
      spl[3] = Splat<BF16>(sz[Q].y, true);
    }
  }
  if constexpr (S % 2 == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      LdMatrixX4(b[j], xs + (j * 8 + (lane & 7)) * KSTRIDE + S * 16 + (lane >> 3) * 8);
    }
  }
  uint32_t a[4];
  if constexpr (GRID) {
    a[0] = DequantGrid<BF16>(PairCodes<BITS, S * 4 + 0>(wr), gs.lv[0], gs.s[0], gs.z[0]);
    a[1] = DequantGrid<BF16>(PairCodes<BITS, S * 4 + 1>(wr), gs.lv[1], gs.s[1], gs.z[1]);
    a[2] = DequantGrid<BF16>(PairCodes<BITS, S * 4 + 2>(wr), gs.lv[0], gs.s[0], gs.z[0]);
    a[3] = DequantGrid<BF16>(PairCodes<BITS, S * 4 + 3>(wr), gs.lv[1], gs.s[1], gs.z[1]);
  } else {
    a[0] = Dequant<BITS, BF16>(PairCodes<BITS, S * 4 + 0>(wr), spl[0], spl[1]);
    a[1] = Dequant<BITS, BF16>(PairCodes<BITS, S * 4 + 1>(wr), spl[2], spl[3]);
    a[2] = Dequant<BITS, BF16>(PairCodes<BITS, S * 4 + 2>(wr), spl[0], spl[1]);
    a[3] = Dequant<BITS, BF16>(PairCodes<BITS, S * 4 + 3>(wr), spl[2], spl[3]);
  }
#pragma unroll
  for (int j = 0; j < NT; ++j) Mma<BF16>(acc[j], a, b[j][(S & 1) * 2], b[j][(S & 1) * 2 + 1]);
}

// One 256-column chunk. GRID: `grid_ids` / `grid_ids_hi` = the chunk's grid-id bytes of slots
// 0..3 / 4..7, `table` = the level table in shared memory (all ignored otherwise).
template <int BITS, bool BF16, int NT, int KSTRIDE, bool GRID, int SPC, int... S>
__device__ __forceinline__ void Chunk(float (&acc)[NT][4], const uint32_t (&wr)[4 * BITS], const uint2 (&sz)[SPC],
                                      const uint16_t* xs, int lane, uint32_t grid_ids, uint32_t grid_ids_hi,
                                      const float* table, std::integer_sequence<int, S...>) {
  uint32_t spl[4];
  uint32_t b[NT][4];
  GridState gs;
  gs.ids = grid_ids;
  gs.ids_hi = grid_ids_hi;
  gs.table = table;
  (KStep<BITS, BF16, NT, KSTRIDE, GRID, SPC, S>(acc, wr, sz, spl, b, xs, lane, gs), ...);
}

// Reduces acc over the WK warps of a row tile (through `smem`, which must hold
// WM * WK * NT * 128 floats and be free), then writes the output, or for split-K adds into the
// fp32 workspace where the last block of the tile converts and clears it.
template <bool BF16, int WM, int WK, int NT>
__device__ __forceinline__ void Finish(float (&acc)[NT][4], const Params& p, uint16_t* smem, int rt, int n0,
                                       bool row_ok) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp % WM, wk = warp / WM;
  // Reduce over wk through shared memory (the staging buffers are free now).
  if constexpr (WK > 1) {
    float* red = reinterpret_cast<float*>(smem);  // [WK][WM][NT * 4][32]
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int i = 0; i < 4; ++i) red[((wk * WM + wm) * NT * 4 + j * 4 + i) * 32 + lane] = acc[j][i];
    }
    __syncthreads();
    if (wk == 0) {
      for (int k = 1; k < WK; ++k) {
#pragma unroll
        for (int j = 0; j < NT; ++j) {
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[j][i] += red[((k * WM + wm) * NT * 4 + j * 4 + i) * 32 + lane];
        }
      }
    }
  }

  // Epilogue: c0,c1 = (row g, tokens 2t, 2t+1), c2,c3 = (row g + 8, same tokens).
  if (wk == 0 && row_ok) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = rt * 16 + g + (i >> 1) * 8;
        const int tok = n0 + j * 8 + 2 * t + (i & 1);
        if (row < p.rows && tok < p.n) {
          const int64_t o = static_cast<int64_t>(tok) * p.rows + row;
          if (p.splits == 1) {
            p.y[o] = ToAct<BF16>(acc[j][i]);
          } else {
            atomicAdd(p.ws + o, acc[j][i]);
          }
        }
      }
    }
  }
  if (p.splits == 1) return;

  // Split-K: the last block of this (row block, token tile) converts and clears the workspace.
  __shared__ int is_last;
  __threadfence();
  __syncthreads();
  const int tile = blockIdx.z * gridDim.x + blockIdx.x;
  if (threadIdx.x == 0) is_last = atomicAdd(p.counters + tile, 1) == p.splits - 1;
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const int r0 = blockIdx.x * WM * 16;
  constexpr int kRowsB = WM * 16, kToks = 8 * NT;
  for (int i = threadIdx.x; i < kRowsB * kToks; i += blockDim.x) {
    const int row = r0 + i % kRowsB, tok = n0 + i / kRowsB;
    if (row < p.rows && tok < p.n) {
      const int64_t o = static_cast<int64_t>(tok) * p.rows + row;
      p.y[o] = ToAct<BF16>(__ldcg(p.ws + o));
      __stcg(p.ws + o, 0.f);
    }
  }
  if (threadIdx.x == 0) p.counters[tile] = 0;
}

}  // namespace
}  // namespace slq::kernels

#endif  // SLQ_KERNELS_CUDA_QGEMM_DEVICE_CUH_
