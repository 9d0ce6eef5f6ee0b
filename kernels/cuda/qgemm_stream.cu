// The streaming small-batch QGemm kernel (QKernel::kStream; see qgemm.h, layout in
// kernels/repack.h). Built to stream the weights at copy bandwidth for n = 1..16 tokens:
//   - A block is kStreamWM warps; warp w owns row tile blockIdx.x * kStreamWM + w and walks
//     every 256-column chunk of the block's K range (split-K over blockIdx.y, token tiles of
//     8 * NT over blockIdx.z), keeping StreamDepth(bits) chunks of codes in a register ring
//     (the first ones are issued before anything else, even before the PDL grid dependency).
//   - The A operand of the mma is the code, shifted by 2^L and OR'ed into a float magic
//     (fp16 1024, bf16 128), so one LOP3 per code pair and bit plane, plus the few shifts
//     that L (chosen per row half at compile time, BestL) cannot make zero. The offset and
//     2^L are removed once per group in fp32: y += (s / 2^L) * acc + (z - off * s / 2^L) * sx,
//     where sx = sum of x over the group, computed once per block into shared memory.
//   - Each warp's codes for its K range are contiguous: besides the ring, lane 0 can keep
//     p.prefetch_chunks more chunks in flight as bulk L2 prefetches (QGemmOptions::
//     prefetch_kib; off by default: it did not help, see bench/kernels/NOTES.md).
//   - x of the block's K range is staged once in shared memory (cp.async); split-K shrinks
//     the range until it fits kStreamMaxSmem.
// bf16 with 8-bit codes cannot hold 128 + q exactly: it builds the exact q from nibbles (off 0).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <utility>

#include "kernels/cuda/qgemm_device.cuh"
#include "kernels/cuda/qgemm_stream.h"

namespace slq::kernels {
namespace {

constexpr int kStreamWM = 4;  // warps (row tiles) per block
constexpr int kStreamThreads = 32 * kStreamWM;
constexpr int kStreamMaxSmem = 48 * 1024;
constexpr int kStreamMinBlocks = 4;    // resident blocks per SM the registers must allow (<= 128 regs)
constexpr int kStreamBlocksPerSm = 4;  // split-K target: this many blocks per SM
constexpr int kZeroHalves = 256;       // a zero row for ldmatrix lanes of absent tokens
// Default L2 prefetch distance per warp: off. Measured on the H200 (bench --sweep, 2026-12-01):
// 8 KiB was between 2% faster and 10% slower than 0, 16-32 KiB up to 16% slower (results md).
constexpr int kPrefetchKib = 0;

// Chunks of codes per warp in the register ring (D - 1 in flight while one is consumed).
__host__ __device__ constexpr int StreamDepth(int bits) { return bits <= 3 ? 4 : bits <= 5 ? 3 : 2; }

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

// Plane I of pair P moved to bit offset (plane offset + L) of both halves.
template <int BITS, int P, int I, int L>
__device__ __forceinline__ uint32_t PlaneAt(const uint32_t (&wr)[4 * BITS]) {
  constexpr int W = PlaneWidth(BITS, I);
  if constexpr (W == 0) {
    return 0u;
  } else {
    constexpr int OFF = PlaneOff(BITS, I), PER = 16 / W;
    constexpr uint32_t M = ((1u << W) - 1u) << (OFF + L);
    return ShiftR<(P % PER) * W - OFF - L>(wr[OFF * 4 + P / PER]) & (M | (M << 16));
  }
}

// A-fragment register of pair P: off + 2^L q in the activation type (exact q for bf16 8-bit).
template <int BITS, bool BF16, int P>
__device__ __forceinline__ uint32_t StreamA(const uint32_t (&wr)[4 * BITS]) {
  using F = StreamFold<BITS, BF16>;
  if constexpr (F::kExact) {
    const uint32_t q2 = PlaneAt<BITS, P, 0, 0>(wr);
    const __nv_bfloat162 lo = __hsub2(AsB2((q2 & 0x000F000Fu) | F::kMagic), AsB2(F::kMagic));
    const __nv_bfloat162 hi = __hsub2(AsB2(((q2 >> 4) & 0x000F000Fu) | F::kMagic), AsB2(F::kMagic));
    return AsU32(__hfma2(hi, AsB2(0x41804180u), lo));  // 16 * hi + lo, exact
  } else {
    constexpr int L = (P & 1) ? F::kLhi : F::kLlo;
    return PlaneAt<BITS, P, 0, L>(wr) | PlaneAt<BITS, P, 1, L>(wr) | PlaneAt<BITS, P, 2, L>(wr) | F::kMagic;
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

// Folds one group's accumulators into y with the group's scale/zero (u = {s, z} of row g
// and of row g + 8) and sum of x (sx[j * 8] = {token 2t, token 2t + 1} of token tile j).
template <int BITS, bool BF16, int NT>
__device__ __forceinline__ void ApplyGroup(float (&y)[NT][4], float (&acc)[NT][4], uint2 u, const float* sx) {
  using F = StreamFold<BITS, BF16>;
  constexpr float kInvLo = 1.f / static_cast<float>(1 << F::kLlo);
  constexpr float kInvHi = 1.f / static_cast<float>(1 << F::kLhi);
  const float2 lo = __half22float2(AsH2(u.x));
  const float2 hi = __half22float2(AsH2(u.y));
  const float a_lo = lo.x * kInvLo, b_lo = fmaf(-F::kOff * kInvLo, lo.x, lo.y);
  const float a_hi = hi.x * kInvHi, b_hi = fmaf(-F::kOff * kInvHi, hi.x, hi.y);
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
// end of a group fold it into y.
template <int BITS, bool BF16, int NT, int G, int S>
__device__ __forceinline__ void StreamStep(float (&y)[NT][4], float (&acc)[NT][4], uint32_t (&b)[NT][4],
                                           const uint32_t (&wr)[4 * BITS], const uint2 (&sz)[256 / G],
                                           const uint32_t (&xa)[NT], const float* sx) {
  if constexpr (S % 2 == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j) LdMatrixX4At(b[j], xa[j] + S * 32);
  }
  const uint32_t a[4] = {StreamA<BITS, BF16, S * 4 + 0>(wr), StreamA<BITS, BF16, S * 4 + 1>(wr),
                         StreamA<BITS, BF16, S * 4 + 2>(wr), StreamA<BITS, BF16, S * 4 + 3>(wr)};
#pragma unroll
  for (int j = 0; j < NT; ++j) Mma<BF16>(acc[j], a, b[j][(S & 1) * 2], b[j][(S & 1) * 2 + 1]);
  if constexpr ((S + 1) % (G / 16) == 0) {
    constexpr int Q = S / (G / 16);
    ApplyGroup<BITS, BF16, NT>(y, acc, sz[Q], sx + Q * 8 * NT);
  }
}

template <int BITS, bool BF16, int NT, int G, int... S>
__device__ __forceinline__ void StreamChunk(float (&y)[NT][4], float (&acc)[NT][4], const uint32_t (&wr)[4 * BITS],
                                            const uint2 (&sz)[256 / G], const uint32_t (&xa)[NT], const float* sx,
                                            std::integer_sequence<int, S...>) {
  uint32_t b[NT][4];
  (StreamStep<BITS, BF16, NT, G, S>(y, acc, b, wr, sz, xa, sx), ...);
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

template <int BITS, bool BF16, int NT, int G>
__global__ void __launch_bounds__(kStreamThreads, kStreamMinBlocks) QStreamKernel(Params p) {
  constexpr int D = StreamDepth(BITS), GPC = 256 / G, WM = kStreamWM;
  extern __shared__ __align__(16) uint16_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rt = blockIdx.x * WM + warp;
  const int n0 = blockIdx.z * 8 * NT;
  const int c_begin = blockIdx.y * p.chunks_per_split;
  const int nloc = min(p.chunks, c_begin + p.chunks_per_split) - c_begin;
  const int ntok = min(8 * NT, p.n - n0);
  const int stride = p.chunks_per_split * 256 + 8;  // halves per staged token row (padded)
  uint16_t* zrow = smem;
  uint16_t* xs = smem + kZeroHalves;                          // [ntok][stride]
  float* sxs = reinterpret_cast<float*>(xs + ntok * stride);  // [nloc * GPC][8 * NT]
  const bool row_ok = rt < p.row_tiles;
  const int count = row_ok ? nloc : 0;

  // Weights first: they do not depend on the previous kernel.
  uint32_t wr[D][4 * BITS];
  uint2 sz[D][GPC];
  const uint4* wbase = p.codes + (static_cast<int64_t>(rt) * p.chunks + c_begin) * BITS * 32 + lane;
  const uint2* sbase = p.sz + (static_cast<int64_t>(rt) * p.gpad + c_begin * GPC) * 8 + (lane >> 2);
  auto load = [&](int i, uint32_t(&w)[4 * BITS], uint2(&s)[GPC]) {
    const uint4* src = wbase + i * BITS * 32;
#pragma unroll
    for (int v = 0; v < BITS; ++v) {
      const uint4 u = LoadStream(src + v * 32);
      w[4 * v] = u.x;
      w[4 * v + 1] = u.y;
      w[4 * v + 2] = u.z;
      w[4 * v + 3] = u.w;
    }
#pragma unroll
    for (int q = 0; q < GPC; ++q) s[q] = __ldg(sbase + (i * GPC + q) * 8);
  };
#pragma unroll
  for (int d = 0; d < D; ++d) {
    if (d < count) load(d, wr[d], sz[d]);
  }
  // The row tile's codes of the K range are contiguous: keep p.prefetch_chunks beyond the
  // ring in flight as L2 prefetches (no registers), starting with all its scales/zeros.
  constexpr uint32_t kChunkBytes = BITS * 512;
  const int pf = p.prefetch_chunks;
  if (lane == 0 && count > 0) {
    PrefetchL2(sbase, static_cast<uint32_t>(count * GPC * 64));
    const int first = min(count, D + pf) - D;
    if (first > 0) PrefetchL2(wbase + D * BITS * 32, first * kChunkBytes);
  }

  GridDependencyWait();  // x may be written by the previous kernel (no-op without PDL)
  for (int i = threadIdx.x; i < kZeroHalves / 8; i += kStreamThreads) {
    reinterpret_cast<uint4*>(zrow)[i] = make_uint4(0, 0, 0, 0);
  }
  const int segs = nloc * 32;  // 16-byte segments per token row
  for (int i = threadIdx.x; i < ntok * segs; i += kStreamThreads) {
    const int r = i / segs, sc = i - r * segs;
    const int col = c_begin * 256 + sc * 8;
    uint16_t* d = xs + r * stride + sc * 8;
    if (col < p.cols) {
      CpAsync16(d, p.x + static_cast<int64_t>(n0 + r) * p.cols + col);
    } else {
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
    }
  }
  CpAsyncCommit();
  CpAsyncWait<0>();
  __syncthreads();

  // ldmatrix row address of this lane per token tile: token j * 8 + lane % 8 at k offset
  // (lane / 8) * 8, or the zero row (which does not advance with the chunk).
  uint32_t xa0[NT], xstep[NT];
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

  float y[NT][4] = {}, acc[NT][4] = {};
  for (int base = 0; base < count; base += D) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int i = base + d;
      if (i < count) {
        uint32_t xa[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j) xa[j] = xa0[j] + i * xstep[j];
        StreamChunk<BITS, BF16, NT, G>(y, acc, wr[d], sz[d], xa, sxl + i * GPC * 8 * NT,
                                       std::make_integer_sequence<int, 16>{});
        if (i + D < count) load(i + D, wr[d], sz[d]);
        if (lane == 0 && pf > 0 && i + D + pf < count) PrefetchL2(wbase + (i + D + pf) * BITS * 32, kChunkBytes);
      }
    }
  }
  Finish<BF16, WM, 1, NT>(y, p, smem, rt, n0, row_ok);
}

// ---- Host side --------------------------------------------------------------------------

template <int BITS, bool BF16, int NT, int G>
std::string LaunchStream(const Params& p, dim3 grid, size_t smem, cudaStream_t stream, bool pdl) {
  auto kernel = QStreamKernel<BITS, BF16, NT, G>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kStreamMaxSmem);
  if (attr != cudaSuccess) return std::string("cudaFuncSetAttribute: ") + cudaGetErrorString(attr);
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(kStreamThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = pdl ? at : nullptr;
  cfg.numAttrs = pdl ? 1 : 0;
  cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, p);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return std::string("QGemm stream launch: ") + cudaGetErrorString(e);
  return "";
}

template <bool BF16, int NT, int G>
std::string LaunchStreamBits(int bits, const Params& p, dim3 grid, size_t smem, cudaStream_t s, bool pdl) {
  switch (bits) {
    case 2:
      return LaunchStream<2, BF16, NT, G>(p, grid, smem, s, pdl);
    case 3:
      return LaunchStream<3, BF16, NT, G>(p, grid, smem, s, pdl);
    case 4:
      return LaunchStream<4, BF16, NT, G>(p, grid, smem, s, pdl);
    case 5:
      return LaunchStream<5, BF16, NT, G>(p, grid, smem, s, pdl);
    case 6:
      return LaunchStream<6, BF16, NT, G>(p, grid, smem, s, pdl);
    case 7:
      return LaunchStream<7, BF16, NT, G>(p, grid, smem, s, pdl);
    case 8:
      return LaunchStream<8, BF16, NT, G>(p, grid, smem, s, pdl);
    default:
      return "bits = " + std::to_string(bits) + " is not supported; allowed 2..8";
  }
}

template <bool BF16>
std::string LaunchStreamCfg(int bits, int nt, int g, const Params& p, dim3 grid, size_t smem, cudaStream_t s,
                            bool pdl) {
  if (nt == 1) {
    return g == 64 ? LaunchStreamBits<BF16, 1, 64>(bits, p, grid, smem, s, pdl)
                   : LaunchStreamBits<BF16, 1, 128>(bits, p, grid, smem, s, pdl);
  }
  return g == 64 ? LaunchStreamBits<BF16, 2, 64>(bits, p, grid, smem, s, pdl)
                 : LaunchStreamBits<BF16, 2, 128>(bits, p, grid, smem, s, pdl);
}

}  // namespace

namespace internal {

int CudaSmCount() {
  static const int sms = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 132;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 132;
    return v;
  }();
  return sms;
}

std::string QGemmStream(const DeviceMatrix& w, const void* x, int64_t n, void* y, ActType act, void* workspace,
                        size_t workspace_bytes, void* stream, const QGemmOptions& opt) {
  const GpuLayout& l = w.layout;
  const int nt = n <= 8 ? 1 : 2;
  const int g = static_cast<int>(l.group_size);
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
  p.log2g = g == 64 ? 6 : 7;
  const int64_t bx = (l.row_tiles + kStreamWM - 1) / kStreamWM;
  const int64_t bz = (n + 8 * nt - 1) / (8 * nt);
  const int kib = opt.prefetch_kib < 0 ? kPrefetchKib : opt.prefetch_kib;
  p.prefetch_chunks = (kib * 1024 + l.bits * 512 - 1) / (l.bits * 512);
  int splits = opt.splits;
  if (splits <= 0) {
    const double target = static_cast<double>(kStreamBlocksPerSm) * CudaSmCount();
    splits = static_cast<int>(std::max<double>(1.0, target / static_cast<double>(bx * bz) + 0.5));
  }
  splits = std::min(splits, p.chunks);
  int cps = (p.chunks + splits - 1) / splits;
  const int64_t ntok = std::min<int64_t>(n, 8 * nt);
  auto smem = [&](int c) {
    return static_cast<size_t>(kZeroHalves * 2 + ntok * (c * 256 + 8) * 2 + c * (256 / g) * 8 * nt * 4);
  };
  while (cps > 1 && smem(cps) > static_cast<size_t>(kStreamMaxSmem)) --cps;
  splits = (p.chunks + cps - 1) / cps;
  p.splits = splits;
  p.chunks_per_split = cps;
  if (splits > 1) {
    if (workspace == nullptr || workspace_bytes < QGemmWorkspaceBytes(l.rows, n)) {
      return "split-K needs a workspace of " + std::to_string(QGemmWorkspaceBytes(l.rows, n)) + " bytes; got " +
             std::to_string(workspace_bytes);
    }
    p.counters = static_cast<int*>(workspace);
    // Workspace = [counters][n * rows floats] (qgemm.cu): the floats are its tail.
    p.ws = reinterpret_cast<float*>(static_cast<int*>(workspace) + (QGemmWorkspaceBytes(l.rows, n) / 4 - n * l.rows));
  }
  const dim3 grid(static_cast<unsigned>(bx), static_cast<unsigned>(splits), static_cast<unsigned>(bz));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return act == ActType::kBF16 ? LaunchStreamCfg<true>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl)
                               : LaunchStreamCfg<false>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl);
}

}  // namespace internal
}  // namespace slq::kernels
