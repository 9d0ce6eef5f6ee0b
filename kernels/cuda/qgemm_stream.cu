// The streaming small-batch QGemm kernel (QKernel::kStream; see qgemm.h, layout in
// kernels/repack.h). Built to stream the weights at copy bandwidth for n = 1..16 tokens:
//   - A block is kStreamWM warps; warp w owns row tile blockIdx.x * kStreamWM + w and walks
//     every 256-column chunk of the block's K range (split-K over blockIdx.y, token tiles of
//     8 * NT over blockIdx.z), keeping StreamDepth(bits, G) chunks of codes in a register ring
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
// Grid matrices (GRID instantiations): the A operand is the level L[q] from a shared-memory
// table (fp16: every level is fp16-exact; bf16: each level split exactly into hi + lo,
// kernels/grid_split.h, two mma per A fragment), the chunk's grid ids ride in the ring next to
// its scales/zeros, and a group folds as y += s * acc + z * sx (qgemm_stream_device.cuh).
// Widths <= QGemmOptions::grid_pair_bits (default 3, at most 4) look up both codes of an A
// register at once in a table of level pairs (kGridPairs), wider ones one code at a time
// (kGridPerCode).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <utility>

#include "kernels/cuda/qgemm_device.cuh"
#include "kernels/cuda/qgemm_stream.h"
#include "kernels/cuda/qgemm_stream_device.cuh"

namespace slq::kernels {
namespace {

constexpr int kStreamWM = 4;  // warps (row tiles) per block
constexpr int kStreamThreads = 32 * kStreamWM;
constexpr int kStreamMaxSmem = 48 * 1024;
constexpr int kStreamMinBlocks = 4;    // resident blocks per SM the registers must allow (<= 128 regs)
constexpr int kStreamBlocksPerSm = 4;  // split-K target: this many blocks per SM
// Default L2 prefetch distance per warp: off. Measured on the H200 (bench --sweep, 2026-12-01):
// 8 KiB was between 2% faster and 10% slower than 0, 16-32 KiB up to 16% slower (results md).
constexpr int kPrefetchKib = 0;

// Register-ring depth for group size 32, by width (index 2..8; see StreamDepth): one chunk less
// than g64/g128 (two less at 2-3 bits) to pay for the extra scale registers. Not timed; the
// ptxas registers/spills are in bench/results/kernels-grids-2026-12-02.md (session 10, K2).
constexpr int kStreamDepth32[9] = {0, 0, 3, 3, 2, 2, 2, 2, 2};

// Chunks of codes per warp in the register ring (D - 1 in flight while one is consumed). Group
// size 32 keeps 8 scale/zero pairs per chunk in the ring (16 registers, twice g64's):
// kStreamDepth32.
__host__ __device__ constexpr int StreamDepth(int bits, int g) {
  return g == 32 ? kStreamDepth32[bits] : bits <= 3 ? 4 : bits <= 5 ? 3 : 2;
}

template <int BITS, bool BF16, int NT, int G, int GRID>
__global__ void __launch_bounds__(kStreamThreads, kStreamMinBlocks) QStreamKernel(Params p) {
  constexpr int D = StreamDepth(BITS, G), GPC = 256 / G, WM = kStreamWM;
  constexpr int kTable = StreamTableBytes(BITS, GRID, BF16) / 2;  // halves
  extern __shared__ __align__(16) uint16_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rt = blockIdx.x * WM + warp;
  const int n0 = blockIdx.z * 8 * NT;
  const int c_begin = blockIdx.y * p.chunks_per_split;
  const int nloc = min(p.chunks, c_begin + p.chunks_per_split) - c_begin;
  const int ntok = min(8 * NT, p.n - n0);
  const int stride = p.chunks_per_split * 256 + 8;  // halves per staged token row (padded)
  uint16_t* zrow = smem;
  uint16_t* table = smem + kZeroHalves;                       // GRID: the level table
  uint16_t* xs = smem + kZeroHalves + kTable;                 // [ntok][stride]
  float* sxs = reinterpret_cast<float*>(xs + ntok * stride);  // [nloc * GPC][8 * NT]
  const bool row_ok = rt < p.row_tiles;
  const int count = row_ok ? nloc : 0;

  // Weights first: they do not depend on the previous kernel.
  uint32_t wr[D][4 * BITS];
  uint2 sz[D][GPC];
  uint32_t gid[D] = {};     // GRID: the chunk's grid-id bytes (groups 0..3)
  uint32_t gid_hi[D] = {};  // GRID, G = 32: groups 4..7
  const uint4* wbase = p.codes + (static_cast<int64_t>(rt) * p.chunks + c_begin) * BITS * 32 + lane;
  const uint2* sbase = p.sz + (static_cast<int64_t>(rt) * p.gpad + c_begin * GPC) * 8 + (lane >> 2);
  const int64_t gbase = (static_cast<int64_t>(rt) * p.gpad + c_begin * GPC) * 8 + (lane >> 2);  // GRID: in p.grid
  auto load = [&](int i, uint32_t(&w)[4 * BITS], uint2(&s)[GPC], uint32_t& ids, uint32_t& ids_hi) {
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
    if constexpr (GRID != 0) {
      uint32_t v = 0;
#pragma unroll
      for (int q = 0; q < GPC && q < 4; ++q) {
        v |= static_cast<uint32_t>(__ldg(p.grid + gbase + (i * GPC + q) * 8)) << (8 * q);
      }
      ids = v;
      if constexpr (GPC > 4) {
        uint32_t h = 0;
#pragma unroll
        for (int q = 4; q < GPC; ++q) {
          h |= static_cast<uint32_t>(__ldg(p.grid + gbase + (i * GPC + q) * 8)) << (8 * (q - 4));
        }
        ids_hi = h;
      }
    }
  };
#pragma unroll
  for (int d = 0; d < D; ++d) {
    if (d < count) load(d, wr[d], sz[d], gid[d], gid_hi[d]);
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

  // A weight, like the codes: before the grid dependency.
  FillGridTable<BITS, GRID, BF16>(table, p.levels, threadIdx.x, kStreamThreads);
  const uint32_t table_lane = GridLaneBase<BITS, GRID, BF16>(table, lane);
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

  uint32_t xa0[NT], xstep[NT];
  float* sxl = SumOfX<BF16, NT, G, WM>(xs, zrow, stride, ntok, nloc, sxs, lane, warp, xa0, xstep);

  float y[NT][4] = {}, acc[NT][4] = {};
  for (int base = 0; base < count; base += D) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int i = base + d;
      if (i < count) {
        uint32_t xa[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j) xa[j] = xa0[j] + i * xstep[j];
        StreamChunk<BITS, BF16, NT, G, GRID>(y, acc, wr[d], sz[d], xa, sxl + i * GPC * 8 * NT,
                                             std::make_integer_sequence<int, 16>{}, table_lane, gid[d], gid_hi[d]);
        if (i + D < count) load(i + D, wr[d], sz[d], gid[d], gid_hi[d]);
        if (lane == 0 && pf > 0 && i + D + pf < count) PrefetchL2(wbase + (i + D + pf) * BITS * 32, kChunkBytes);
      }
    }
  }
  Finish<BF16, WM, 1, NT>(y, p, smem, rt, n0, row_ok);
}

// ---- Host side --------------------------------------------------------------------------

template <int BITS, bool BF16, int NT, int G, int GRID>
std::string LaunchStream(const Params& p, dim3 grid, size_t smem, cudaStream_t stream, bool pdl) {
  auto kernel = QStreamKernel<BITS, BF16, NT, G, GRID>;
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

template <bool BF16, int NT, int G, int GRID>
std::string LaunchStreamBits(int bits, const Params& p, dim3 grid, size_t smem, cudaStream_t s, bool pdl) {
  return WithBits(bits, [&](auto b) {
    constexpr int B = decltype(b)::value;
    // The pair table exists for widths <= 4 only (QGemmStream never asks for it above).
    constexpr int GR = GRID == kGridPairs && B > 4 ? kGridPerCode : GRID;
    return LaunchStream<B, BF16, NT, G, GR>(p, grid, smem, s, pdl);
  });
}

template <bool BF16, int GRID>
std::string LaunchStreamCfg(int bits, int nt, int g, const Params& p, dim3 grid, size_t smem, cudaStream_t s,
                            bool pdl) {
  if (nt == 1) {
    return g == 32   ? LaunchStreamBits<BF16, 1, 32, GRID>(bits, p, grid, smem, s, pdl)
           : g == 64 ? LaunchStreamBits<BF16, 1, 64, GRID>(bits, p, grid, smem, s, pdl)
                     : LaunchStreamBits<BF16, 1, 128, GRID>(bits, p, grid, smem, s, pdl);
  }
  return g == 32   ? LaunchStreamBits<BF16, 2, 32, GRID>(bits, p, grid, smem, s, pdl)
         : g == 64 ? LaunchStreamBits<BF16, 2, 64, GRID>(bits, p, grid, smem, s, pdl)
                   : LaunchStreamBits<BF16, 2, 128, GRID>(bits, p, grid, smem, s, pdl);
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
  Params p = MakeParams(w, x, n, y);
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
  const int grid_mode = !l.grids                                                   ? 0
                        : l.bits <= std::min(opt.grid_pair_bits, kGridPairMaxBits) ? kGridPairs
                                                                                   : kGridPerCode;
  const int table = StreamTableBytes(l.bits, grid_mode, act == ActType::kBF16);
  auto smem = [&](int c) {
    return static_cast<size_t>(kZeroHalves * 2 + table + ntok * (c * 256 + 8) * 2 + c * (256 / g) * 8 * nt * 4);
  };
  while (cps > 1 && smem(cps) > static_cast<size_t>(kStreamMaxSmem)) --cps;
  splits = (p.chunks + cps - 1) / cps;
  p.splits = splits;
  p.chunks_per_split = cps;
  const std::string ws = SetSplitWorkspace(p, n, workspace, workspace_bytes);
  if (!ws.empty()) return ws;
  const dim3 grid(static_cast<unsigned>(bx), static_cast<unsigned>(splits), static_cast<unsigned>(bz));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (l.grids && act == ActType::kBF16) {
    return grid_mode == kGridPairs ? LaunchStreamCfg<true, kGridPairs>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl)
                                   : LaunchStreamCfg<true, kGridPerCode>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl);
  }
  if (l.grids) {
    return grid_mode == kGridPairs
               ? LaunchStreamCfg<false, kGridPairs>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl)
               : LaunchStreamCfg<false, kGridPerCode>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl);
  }
  return act == ActType::kBF16 ? LaunchStreamCfg<true, 0>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl)
                               : LaunchStreamCfg<false, 0>(l.bits, nt, g, p, grid, smem(cps), s, opt.pdl);
}

}  // namespace internal
}  // namespace slq::kernels
