// Device helpers of the streaming small-batch kernels (private to qgemm_stream.cu and
// qgemm_stream_smem.cu; include it from those files only): the code -> float-magic A operand
// (one LOP3 per code pair and bit plane at a per-row-half bit offset L), the per-group fold
// of scale/zero and sum(x), one 256-column chunk of mma steps, the sum-of-x pass, PDL and
// L2-prefetch wrappers.
#ifndef SLQ_KERNELS_CUDA_QGEMM_STREAM_DEVICE_CUH_
#define SLQ_KERNELS_CUDA_QGEMM_STREAM_DEVICE_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "kernels/cuda/qgemm.h"
#include "kernels/cuda/qgemm_device.cuh"
#include "kernels/grid_split.h"

namespace slq::kernels {
namespace {

constexpr int kZeroHalves = 256;  // a zero row for ldmatrix lanes of absent tokens

// Distinct non-zero shifts (per code register) needed to place every pair's plane bits at
// bit offset L (llo for row g, lhi for row g + 8) of both 16-bit halves.
__host__ __device__ constexpr int ShiftCount(int bits, int llo, int lhi) {
  bool seen[32][64] = {};
  int count = 0;
  for (int p = 0; p < 64; ++p) {
    const int l = (p & 1) ? lhi : llo;
    for (int i = 0; i < 3; ++i) {
      const int w = PlaneWidth(bits, i);
      if (w == 0) continue;
      const int per = 16 / w, off = PlaneOff(bits, i);
      const int reg = off * 4 + p / per, sh = (p % per) * w - off - l;
      if (sh != 0 && !seen[reg][sh + 32]) {
        seen[reg][sh + 32] = true;
        ++count;
      }
    }
  }
  return count;
}

// The (llo, lhi) in [0, lmax]^2 with the fewest shifts, as llo * 16 + lhi.
__host__ __device__ constexpr int BestL(int bits, int lmax) {
  int best = 0, best_count = 1 << 30;
  for (int lo = 0; lo <= lmax; ++lo) {
    for (int hi = 0; hi <= lmax; ++hi) {
      const int c = ShiftCount(bits, lo, hi);
      if (c < best_count) {
        best_count = c;
        best = lo * 16 + hi;
      }
    }
  }
  return best;
}

template <int BITS, bool BF16>
struct StreamFold {
  static constexpr bool kExact = BF16 && BITS == 8;
  static constexpr int kL = kExact ? 0 : BestL(BITS, (BF16 ? 7 : 10) - BITS);
  static constexpr int kLlo = kL >> 4, kLhi = kL & 15;
  static constexpr uint32_t kMagic = BF16 ? 0x43004300u : 0x64006400u;
  static constexpr float kOff = kExact ? 0.f : (BF16 ? 128.f : 1024.f);
};

// (a & mask) | c in one LOP3. ptxas split `(x & M) | magic` into AND + OR when both constants
// were immediates (a LOP3 takes one); here `c` is a register operand.
template <uint32_t MASK>
__device__ __forceinline__ uint32_t AndOr(uint32_t a, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "n"(MASK), "r"(c));
  return d;
}

// Plane I of pair P moved to bit offset (plane offset + L) of both halves and OR'ed into acc.
template <int BITS, int P, int I, int L>
__device__ __forceinline__ uint32_t PlaneAt(const uint32_t (&wr)[4 * BITS], uint32_t acc) {
  constexpr int W = PlaneWidth(BITS, I);
  if constexpr (W == 0) {
    return acc;
  } else {
    constexpr int OFF = PlaneOff(BITS, I), PER = 16 / W;
    constexpr uint32_t M = ((1u << W) - 1u) << (OFF + L);
    return AndOr<M | (M << 16)>(ShiftR<(P % PER) * W - OFF - L>(wr[OFF * 4 + P / PER]), acc);
  }
}

// A-fragment register of pair P: off + 2^L q in the activation type (exact q for bf16 8-bit).
template <int BITS, bool BF16, int P>
__device__ __forceinline__ uint32_t StreamA(const uint32_t (&wr)[4 * BITS]) {
  using F = StreamFold<BITS, BF16>;
  if constexpr (F::kExact) {
    // Plain AND here: ptxas folds it into the nibble masks below (the LOP3 form cost 6-14% at
    // 8 bits, K2 run 2 of 2026-12-02).
    const uint32_t q2 = PlanePart<BITS, P, 0>(wr);
    const __nv_bfloat162 lo = __hsub2(AsB2((q2 & 0x000F000Fu) | F::kMagic), AsB2(F::kMagic));
    const __nv_bfloat162 hi = __hsub2(AsB2(((q2 >> 4) & 0x000F000Fu) | F::kMagic), AsB2(F::kMagic));
    return AsU32(__hfma2(hi, AsB2(0x41804180u), lo));  // 16 * hi + lo, exact
  } else {
    constexpr int L = (P & 1) ? F::kLhi : F::kLlo;
    constexpr uint32_t magic = F::kMagic;
    return PlaneAt<BITS, P, 2, L>(wr, PlaneAt<BITS, P, 1, L>(wr, PlaneAt<BITS, P, 0, L>(wr, magic)));
  }
}

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void LdMatrixX4At(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Grid matrices: the A operand is the level L[q] itself, looked up in a shared-memory table, so
// a group folds as y += s * acc + z * sx. fp16: every level is fp16-exact, one A register per
// pair of codes. bf16 (8 significant bits, the levels up to 11): each level is split exactly
// as L = hi + lo (kernels/grid_split.h), one lookup yields both A registers {hi} and {lo}, and
// each A fragment costs two mma into the same fp32 accumulator (hi x, then lo x; the products
// are exact in fp32). Two lookups (the GRID template parameter of the streaming kernel;
// 0 = uniform matrix):
//   kGridPerCode (1): fp16 [kGridCount][2^BITS] levels, one ld.shared.u16 per code (any width);
//     bf16 [kGridCount][2^BITS] words {hi, lo}, one ld.shared.b32 per code and two PRMT per
//     pair of codes (any width; widths <= 3: at most 32 words, conflict-free).
//   kGridPairs (2, widths <= 4): fp16 [kGridCount][2^BITS (hi)][2^BITS (lo)] half2
//     {L[lo], L[hi]}, one ld.shared.b32 per A register (two codes of one row), the table
//     replicated GridPairCopies(BITS) times word-interleaved (word = entry * copies +
//     lane % copies) so lanes of different copies never hit the same bank. Bank conflicts per
//     lookup (random codes): none at 2 bits (a copy per lane), ~2-way at 3 bits (4 lanes per
//     copy over 4 banks), ~3-way at 4 bits (16 lanes over 16 banks); the per-code table of
//     widths <= 4 fits in 32 words and never conflicts, but takes two loads and a pack per
//     register. bf16: 8-byte entries {hi pair, lo pair}, one ld.shared.v2.b32 per A register
//     pair, half the copies (same 8 KiB); a 64-bit access is served per half-warp, so 16 copies
//     keep 2 bits conflict-free and 3 bits has ~2-way conflicts per half-warp (4 copies).
// All table addresses are 32-bit shared-window addresses (no 64-bit generic pointers live
// across the chunk). `table` = this lane's base (its copy), `ids` = the chunk's grid-id bytes
// (byte q = id(g) | id(g + 8) << 4 of its group q), lv = the current group's rows (g, g + 8).
constexpr int kGridPerCode = 1;
constexpr int kGridPairs = 2;
constexpr int kGridPairMaxBits = 4;

// Copies of the pair table: 8 KiB in all for each width (2-bit: one per lane, conflict-free);
// bf16 entries are twice as wide, so half as many copies (2-bit: one per lane of a half-warp).
__host__ __device__ constexpr int GridPairCopies(int bits, bool bf16 = false) {
  return (bits == 2 ? 32 : bits == 3 ? 8 : 2) / (bf16 ? 2 : 1);
}
__host__ __device__ constexpr int Log2(int v) { return v <= 1 ? 0 : 1 + Log2(v / 2); }

// Bytes of one table entry: fp16 a level (per code) or a level pair; bf16 twice that ({hi, lo}).
__host__ __device__ constexpr int GridEntryBytes(int grid, bool bf16) {
  return (grid == kGridPairs ? 4 : 2) * (bf16 ? 2 : 1);
}

// Bytes of the streaming kernel's level table in shared memory (0 for uniform matrices).
__host__ __device__ constexpr int StreamTableBytes(int bits, int grid, bool bf16 = false) {
  return grid == kGridPairs     ? (kGridCount << (2 * bits)) * GridPairCopies(bits, bf16) * GridEntryBytes(grid, bf16)
         : grid == kGridPerCode ? ((kGridCount << bits) * GridEntryBytes(grid, bf16) + 15) / 16 * 16
                                : 0;
}

// log2 of the bytes of one grid's rows in the table (its lane base + (id << shift)).
template <int BITS, int GRID, bool BF16 = false>
__host__ __device__ constexpr int GridRowShift() {
  return GRID == kGridPairs ? 2 * BITS + Log2(GridPairCopies(BITS, BF16) * GridEntryBytes(GRID, BF16))
                            : BITS + Log2(GridEntryBytes(GRID, BF16));
}

// ids: the grid-id bytes of the chunk's groups 0..3 (byte q = group q), ids_hi those of groups
// 4..7 (group size 32 only: 8 groups per chunk).
struct StreamGrid {
  uint32_t table;
  uint32_t ids, ids_hi;
  uint32_t lv[2];
};

__device__ __forceinline__ uint32_t LdShared32(uint32_t addr) {
  uint32_t v;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr));
  return v;
}
__device__ __forceinline__ uint32_t LdShared16(uint32_t addr) {
  uint16_t v;
  asm volatile("ld.shared.u16 %0, [%1];\n" : "=h"(v) : "r"(addr));
  return v;
}
__device__ __forceinline__ uint2 LdShared64(uint32_t addr) {
  uint2 v;
  asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(addr));
  return v;
}

// Fills the streaming kernel's level table (`table`: StreamTableBytes(BITS, GRID, BF16) bytes of
// shared memory) from the fp32 levels (kernels::GridLevelTable(BITS), device memory), with
// `threads` threads of the block; the caller syncs the block before the lookups.
template <int BITS, int GRID, bool BF16 = false>
__device__ __forceinline__ void FillGridTable(void* table, const float* levels, int tid, int threads) {
  constexpr int NB = 1 << BITS;
  if constexpr (BF16 && GRID == kGridPairs) {
    // Entry (grid, hi code, lo code) = {hi(L[lo]) | hi(L[hi]) << 16, lo(L[lo]) | lo(L[hi]) << 16}.
    constexpr int R = GridPairCopies(BITS, true), E = (kGridCount << (2 * BITS)) * R;
    uint2* t = static_cast<uint2*>(table);
    for (int i = tid; i < E; i += threads) {
      const int e = i / R;
      const float* lv = levels + (e >> (2 * BITS)) * NB;
      const uint32_t w0 = SplitLevelWord(__ldg(lv + (e & (NB - 1))));
      const uint32_t w1 = SplitLevelWord(__ldg(lv + ((e >> BITS) & (NB - 1))));
      t[i] = make_uint2(__byte_perm(w0, w1, 0x5410), __byte_perm(w0, w1, 0x7632));
    }
  } else if constexpr (BF16 && GRID == kGridPerCode) {
    uint32_t* t = static_cast<uint32_t*>(table);
    for (int i = tid; i < (kGridCount << BITS); i += threads) t[i] = SplitLevelWord(__ldg(levels + i));
  } else if constexpr (GRID == kGridPairs) {
    constexpr int R = GridPairCopies(BITS), E = (kGridCount << (2 * BITS)) * R;
    uint32_t* t = static_cast<uint32_t*>(table);
    for (int i = tid; i < E; i += threads) {
      const int e = i / R;  // entry = (grid << 2 BITS) | (hi << BITS) | lo
      const float* lv = levels + (e >> (2 * BITS)) * NB;
      t[i] = AsU32(__floats2half2_rn(__ldg(lv + (e & (NB - 1))), __ldg(lv + ((e >> BITS) & (NB - 1)))));
    }
  } else if constexpr (GRID == kGridPerCode) {
    uint16_t* t = static_cast<uint16_t*>(table);
    for (int i = tid; i < (kGridCount << BITS); i += threads)
      t[i] = __half_as_ushort(__float2half_rn(__ldg(levels + i)));
  }
}

// This lane's table base (its copy of the pair table).
template <int BITS, int GRID, bool BF16 = false>
__device__ __forceinline__ uint32_t GridLaneBase(const void* table, int lane) {
  if constexpr (GRID == kGridPairs) {
    return SmemAddr(table) + (lane & (GridPairCopies(BITS, BF16) - 1)) * GridEntryBytes(GRID, BF16);
  } else {
    return SmemAddr(table);
  }
}

template <int BITS, int GRID, int P>
__device__ __forceinline__ uint32_t StreamGridA(const uint32_t (&wr)[4 * BITS], uint32_t lv) {
  const uint32_t q2 = PairCodes<BITS, P>(wr);  // lo code at bits [0, BITS), hi at [16, 16 + BITS)
  if constexpr (GRID == kGridPairs) {
    static_assert(BITS <= kGridPairMaxBits, "the pair table is for widths <= 4");
    constexpr int SH = Log2(GridPairCopies(BITS)) + 2;  // bytes of one entry's copies
    return LdShared32(lv + (((q2 & 0xFFFFu) << SH) | ((q2 >> 16) << (SH + BITS))));
  } else {
    const uint32_t lo = LdShared16(lv + ((q2 & 0xFFFFu) << 1));
    const uint32_t hi = LdShared16(lv + ((q2 >> 16) << 1));
    return lo | (hi << 16);
  }
}

// bf16 grid matrices: both A registers of pair P, {hi(L[q0]), hi(L[q1])} in .x and
// {lo(L[q0]), lo(L[q1])} in .y (q0 = the code at bits [0, BITS) of PairCodes, q1 at [16, ...)).
template <int BITS, int GRID, int P>
__device__ __forceinline__ uint2 StreamGridSplitA(const uint32_t (&wr)[4 * BITS], uint32_t lv) {
  const uint32_t q2 = PairCodes<BITS, P>(wr);
  if constexpr (GRID == kGridPairs) {
    static_assert(BITS <= kGridPairMaxBits, "the pair table is for widths <= 4");
    constexpr int SH = Log2(GridPairCopies(BITS, true)) + 3;  // bytes of one entry's copies
    return LdShared64(lv + (((q2 & 0xFFFFu) << SH) | ((q2 >> 16) << (SH + BITS))));
  } else {
    const uint32_t w0 = LdShared32(lv + ((q2 & 0xFFFFu) << 2));  // {hi, lo} of code q0
    const uint32_t w1 = LdShared32(lv + ((q2 >> 16) << 2));      // {hi, lo} of code q1
    return make_uint2(__byte_perm(w0, w1, 0x5410), __byte_perm(w0, w1, 0x7632));
  }
}

// Folds one group's accumulators into y with the group's scale/zero (u = {s, z} of row g
// and of row g + 8) and sum of x (sx[j * 8] = {token 2t, token 2t + 1} of token tile j).
// GRID: the accumulators hold sum x * L[q] (no offset, no 2^L).
template <int BITS, bool BF16, int NT, int GRID = 0>
__device__ __forceinline__ void ApplyGroup(float (&y)[NT][4], float (&acc)[NT][4], uint2 u, const float* sx) {
  using F = StreamFold<BITS, BF16>;
  constexpr float kInvLo = GRID ? 1.f : 1.f / static_cast<float>(1 << F::kLlo);
  constexpr float kInvHi = GRID ? 1.f : 1.f / static_cast<float>(1 << F::kLhi);
  constexpr float kOff = GRID ? 0.f : F::kOff;
  const float2 lo = __half22float2(AsH2(u.x));
  const float2 hi = __half22float2(AsH2(u.y));
  const float a_lo = lo.x * kInvLo, b_lo = fmaf(-kOff * kInvLo, lo.x, lo.y);
  const float a_hi = hi.x * kInvHi, b_hi = fmaf(-kOff * kInvHi, hi.x, hi.y);
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const float2 s = *reinterpret_cast<const float2*>(sx + j * 8);
    y[j][0] = fmaf(a_lo, acc[j][0], fmaf(b_lo, s.x, y[j][0]));
    y[j][1] = fmaf(a_lo, acc[j][1], fmaf(b_lo, s.y, y[j][1]));
    y[j][2] = fmaf(a_hi, acc[j][2], fmaf(b_hi, s.x, y[j][2]));
    y[j][3] = fmaf(a_hi, acc[j][3], fmaf(b_hi, s.y, y[j][3]));
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;
  }
}

// k-step S of a chunk: ldmatrix x every other step, build the A fragment, NT mma; at the
// end of a group fold it into y. GRID: the A fragment is looked up (StreamGridA; pairs 0, 2 are
// row g, 1, 3 row g + 8), the group's level rows picked at its first step; with bf16 two
// fragments (StreamGridSplitA: hi and lo) and 2 NT mma, hi then lo into the same accumulator.
template <int BITS, bool BF16, int NT, int G, int GRID, int S>
__device__ __forceinline__ void StreamStep(float (&y)[NT][4], float (&acc)[NT][4], uint32_t (&b)[NT][4],
                                           const uint32_t (&wr)[4 * BITS], const uint2 (&sz)[256 / G],
                                           const uint32_t (&xa)[NT], const float* sx, StreamGrid& gg) {
  if constexpr (S % 2 == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j) LdMatrixX4At(b[j], xa[j] + S * 32);
  }
  uint32_t a[4];
  if constexpr (GRID != 0) {
    if constexpr (S % (G / 16) == 0) {
      constexpr int RS = GridRowShift<BITS, GRID, BF16>();
      constexpr int Q = S / (G / 16);  // the group within the chunk (0..7 for G = 32)
      const uint32_t id = (Q < 4 ? gg.ids : gg.ids_hi) >> (8 * (Q % 4));
      gg.lv[0] = gg.table + ((id & 0x3u) << RS);
      gg.lv[1] = gg.table + (((id >> 4) & 0x3u) << RS);
    }
  }
  if constexpr (GRID != 0 && BF16) {
    uint32_t lo[4];
    const uint2 a0 = StreamGridSplitA<BITS, GRID, S * 4 + 0>(wr, gg.lv[0]);
    const uint2 a1 = StreamGridSplitA<BITS, GRID, S * 4 + 1>(wr, gg.lv[1]);
    const uint2 a2 = StreamGridSplitA<BITS, GRID, S * 4 + 2>(wr, gg.lv[0]);
    const uint2 a3 = StreamGridSplitA<BITS, GRID, S * 4 + 3>(wr, gg.lv[1]);
    a[0] = a0.x, a[1] = a1.x, a[2] = a2.x, a[3] = a3.x;
    lo[0] = a0.y, lo[1] = a1.y, lo[2] = a2.y, lo[3] = a3.y;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      Mma<BF16>(acc[j], a, b[j][(S & 1) * 2], b[j][(S & 1) * 2 + 1]);
      Mma<BF16>(acc[j], lo, b[j][(S & 1) * 2], b[j][(S & 1) * 2 + 1]);
    }
  } else if constexpr (GRID != 0) {
    a[0] = StreamGridA<BITS, GRID, S * 4 + 0>(wr, gg.lv[0]);
    a[1] = StreamGridA<BITS, GRID, S * 4 + 1>(wr, gg.lv[1]);
    a[2] = StreamGridA<BITS, GRID, S * 4 + 2>(wr, gg.lv[0]);
    a[3] = StreamGridA<BITS, GRID, S * 4 + 3>(wr, gg.lv[1]);
  } else {
    a[0] = StreamA<BITS, BF16, S * 4 + 0>(wr);
    a[1] = StreamA<BITS, BF16, S * 4 + 1>(wr);
    a[2] = StreamA<BITS, BF16, S * 4 + 2>(wr);
    a[3] = StreamA<BITS, BF16, S * 4 + 3>(wr);
  }
  if constexpr (GRID == 0 || !BF16) {
#pragma unroll
    for (int j = 0; j < NT; ++j) Mma<BF16>(acc[j], a, b[j][(S & 1) * 2], b[j][(S & 1) * 2 + 1]);
  }
  if constexpr ((S + 1) % (G / 16) == 0) {
    constexpr int Q = S / (G / 16);
    ApplyGroup<BITS, BF16, NT, GRID>(y, acc, sz[Q], sx + Q * 8 * NT);
  }
}

// One chunk. GRID: `table` = this lane's shared-memory address of the level table
// (GridLaneBase), `ids` / `ids_hi` = the chunk's grid-id bytes of groups 0..3 / 4..7 (StreamGrid;
// all ignored otherwise).
template <int BITS, bool BF16, int NT, int G, int GRID = 0, int... S>
__device__ __forceinline__ void StreamChunk(float (&y)[NT][4], float (&acc)[NT][4], const uint32_t (&wr)[4 * BITS],
                                            const uint2 (&sz)[256 / G], const uint32_t (&xa)[NT], const float* sx,
                                            std::integer_sequence<int, S...>, uint32_t table = 0, uint32_t ids = 0,
                                            uint32_t ids_hi = 0) {
  uint32_t b[NT][4];
  StreamGrid gg;
  gg.table = table;
  gg.ids = ids;
  gg.ids_hi = ids_hi;
  (StreamStep<BITS, BF16, NT, G, GRID, S>(y, acc, b, wr, sz, xa, sx, gg), ...);
}

// k-step S of the sum-of-x pass: an mma against ones; lanes 0..3 (row 0) store each group's
// sums for tokens 2t, 2t + 1.
template <bool BF16, int NT, int G, int S>
__device__ __forceinline__ void SumStep(float (&acc)[NT][4], uint32_t (&b)[NT][4], const uint32_t (&xa)[NT], float* sx,
                                        int lane) {
  constexpr uint32_t kOnes = BF16 ? 0x3F803F80u : 0x3C003C00u;
  if constexpr (S % 2 == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j) LdMatrixX4At(b[j], xa[j] + S * 32);
  }
  const uint32_t ones[4] = {kOnes, kOnes, kOnes, kOnes};
#pragma unroll
  for (int j = 0; j < NT; ++j) Mma<BF16>(acc[j], ones, b[j][(S & 1) * 2], b[j][(S & 1) * 2 + 1]);
  if constexpr ((S + 1) % (G / 16) == 0) {
    constexpr int Q = S / (G / 16);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      if (lane < 4) *reinterpret_cast<float2*>(sx + Q * 8 * NT + j * 8) = make_float2(acc[j][0], acc[j][1]);
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;
    }
  }
}

template <bool BF16, int NT, int G, int... S>
__device__ __forceinline__ void SumChunk(const uint32_t (&xa)[NT], float* sx, int lane,
                                         std::integer_sequence<int, S...>) {
  float acc[NT][4] = {};
  uint32_t b[NT][4];
  (SumStep<BF16, NT, G, S>(acc, b, xa, sx, lane), ...);
}

// One bulk L2 prefetch of `bytes` (multiple of 16) at a 16-byte aligned global address.
__device__ __forceinline__ void PrefetchL2(const void* p, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
}

__device__ __forceinline__ void GridDependencyWait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void LaunchDependents() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }

// The prologue both streaming kernels share once x is staged in shared memory (xs: [ntok][stride]
// halves; zrow: a zero row): sets this lane's ldmatrix row address per token tile (token
// j * 8 + lane % 8 at k offset (lane / 8) * 8, or the zero row, which does not advance with the
// chunk) and its per-chunk step, computes sum(x) per group of the block's nloc chunks into sxs
// (warps take chunks in turn), syncs the block, releases dependent launches, and returns this
// lane's base into sxs.
template <bool BF16, int NT, int G, int WM>
__device__ __forceinline__ float* SumOfX(const uint16_t* xs, const uint16_t* zrow, int stride, int ntok, int nloc,
                                         float* sxs, int lane, int warp, uint32_t (&xa0)[NT], uint32_t (&xstep)[NT]) {
  constexpr int GPC = 256 / G;
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int tok = j * 8 + (lane & 7);
    const bool ok = tok < ntok;
    xa0[j] = SmemAddr(ok ? xs + tok * stride + (lane >> 3) * 8 : zrow + (lane >> 3) * 8);
    xstep[j] = ok ? 512u : 0u;
  }
  float* sxl = sxs + 2 * (lane & 3);
  for (int cl = warp; cl < nloc; cl += WM) {
    uint32_t xa[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) xa[j] = xa0[j] + cl * xstep[j];
    SumChunk<BF16, NT, G>(xa, sxl + cl * GPC * 8 * NT, lane, std::make_integer_sequence<int, 16>{});
  }
  __syncthreads();
  LaunchDependents();
  return sxl;
}

// ---- Host side, shared by both streaming kernels ------------------------------------------

// For p.splits > 1: points p.counters / p.ws into the workspace, or says why it cannot.
inline std::string SetSplitWorkspace(Params& p, int64_t n, void* workspace, size_t workspace_bytes) {
  if (p.splits <= 1) return "";
  const size_t need = QGemmWorkspaceBytes(p.rows, n);
  if (workspace == nullptr || workspace_bytes < need) {
    return "split-K needs a workspace of " + std::to_string(need) + " bytes; got " + std::to_string(workspace_bytes);
  }
  p.counters = static_cast<int*>(workspace);
  // Workspace = [counters][n * rows floats] (qgemm.cu): the floats are its tail.
  p.ws = reinterpret_cast<float*>(static_cast<int*>(workspace) + (need / 4 - n * p.rows));
  return "";
}

}  // namespace
}  // namespace slq::kernels

#endif  // SLQ_KERNELS_CUDA_QGEMM_STREAM_DEVICE_CUH_
