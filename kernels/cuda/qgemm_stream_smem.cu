// The streaming small-batch QGemm kernel with a shared-memory weight ring (QKernel::kStreamSmem;
// see qgemm.h, layout in kernels/repack.h). Same arithmetic as QStreamKernel (qgemm_stream.cu:
// codes OR'ed into a float magic, scale/zero and sum(x) folded once per group in fp32), but each
// warp keeps its next S chunks of codes and scale/zero in flight as cp.async copies into its own
// slice of shared memory instead of a register ring. That frees the ring's 4 * BITS * D
// registers (ptxas: 60-80 for n <= 8, no spills; target 6 blocks = 24 warps per SM) and lets each warp keep S - 1
// chunks in flight while it computes one (S = 2..8, ~6 or ~12 KiB per warp, QGemmOptions::ring).
//
// Synchronisation of the ring (per warp, no block barrier):
//   - codes: lane l copies exactly the 16-byte words it reads back (v * 32 + l), so its own
//     cp.async.wait_group makes them visible to it;
//   - scale/zero: GPC * 4 lanes copy a chunk's GPC * 64 bytes, every lane reads 8 of them, so
//     a __syncwarp follows the wait (visibility to the other lanes) and a second one precedes
//     the refill of the slot (no lane overwrites what another lane has yet to read).
//   - a slot is refilled only after the mma that consumed its words were issued (in program
//     order after the ld.shared that fed them), one commit group per chunk (empty at the end),
//     so wait_group<S - 1> before chunk i means chunk i has landed.
// PDL: the ring's first S chunks are issued before griddepcontrol.wait, x is read after it.
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

constexpr int kSmWM = 4;  // warps (row tiles) per block
constexpr int kSmThreads = 32 * kSmWM;
// Registers must allow this many blocks per SM: 6 (24 warps, <= 85 registers) for one token
// tile; 5 (<= 102) for two, which spilled up to 20 bytes at 85 (ptxas -v).
__host__ __device__ constexpr int SmMinBlocks(int nt) { return nt == 1 ? 6 : 5; }
constexpr int kSmMaxXSmem = 24 * 1024;  // x staging + sums of x per block; split-K shrinks the range

// Ring depth in chunks per warp: ~6 KiB (ring 1) or ~12 KiB (ring 2) of codes, 2..8 chunks.
__host__ __device__ constexpr int SmemDepth(int bits, int ring) {
  const int d = (ring == 2 ? 12 : 6) * 1024 / (bits * 512);
  return d < 2 ? 2 : d > 8 ? 8 : d;
}

__device__ __forceinline__ void CpAsync16Mem(void* smem, const void* gmem) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem) : "memory");
}
__device__ __forceinline__ void CpAsyncCommitMem() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void CpAsyncWaitMem() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int BITS, bool BF16, int NT, int G, int S>
__global__ void __launch_bounds__(kSmThreads, SmMinBlocks(NT)) QStreamSmemKernel(Params p) {
  constexpr int GPC = 256 / G, WM = kSmWM;
  constexpr int kCodeVec = BITS * 32;  // 16-byte words of codes per chunk
  constexpr int kSzVec = GPC * 4;      // 16-byte words of scale/zero per chunk
  constexpr int kSlotVec = kCodeVec + kSzVec;
  extern __shared__ uint4 smem4[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rt = blockIdx.x * WM + warp;
  const int n0 = blockIdx.z * 8 * NT;
  const int c_begin = blockIdx.y * p.chunks_per_split;
  const int nloc = min(p.chunks, c_begin + p.chunks_per_split) - c_begin;
  const int ntok = min(8 * NT, p.n - n0);
  const int stride = p.chunks_per_split * 256 + 8;  // halves per staged token row (padded)
  uint4* ring = smem4 + warp * S * kSlotVec;
  uint16_t* zrow = reinterpret_cast<uint16_t*>(smem4 + WM * S * kSlotVec);
  uint16_t* xs = zrow + kZeroHalves;                          // [ntok][stride]
  float* sxs = reinterpret_cast<float*>(xs + ntok * stride);  // [nloc * GPC][8 * NT]
  const bool row_ok = rt < p.row_tiles;
  const int count = row_ok ? nloc : 0;

  // Weights first: they do not depend on the previous kernel.
  const uint4* wsrc = p.codes + (static_cast<int64_t>(rt) * p.chunks + c_begin) * kCodeVec + lane;
  const uint4* ssrc =
      reinterpret_cast<const uint4*>(p.sz) + (static_cast<int64_t>(rt) * p.gpad + c_begin * GPC) * 4 + lane;
  auto issue = [&](int i, int slot) {
    uint4* dst = ring + slot * kSlotVec + lane;
    const uint4* src = wsrc + i * kCodeVec;
#pragma unroll
    for (int v = 0; v < BITS; ++v) CpAsync16Mem(dst + v * 32, src + v * 32);
    if (lane < kSzVec) CpAsync16Mem(dst + kCodeVec, ssrc + i * kSzVec);
  };
#pragma unroll
  for (int d = 0; d < S; ++d) {
    if (d < count) issue(d, d);
    CpAsyncCommitMem();
  }

  GridDependencyWait();  // x may be written by the previous kernel (no-op without PDL)
  for (int i = threadIdx.x; i < kZeroHalves / 8; i += kSmThreads) {
    reinterpret_cast<uint4*>(zrow)[i] = make_uint4(0, 0, 0, 0);
  }
  const int segs = nloc * 32;  // 16-byte segments per token row
  for (int i = threadIdx.x; i < ntok * segs; i += kSmThreads) {
    const int r = i / segs, sc = i - r * segs;
    const int col = c_begin * 256 + sc * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (col < p.cols) v = __ldcg(reinterpret_cast<const uint4*>(p.x + static_cast<int64_t>(n0 + r) * p.cols + col));
    *reinterpret_cast<uint4*>(xs + r * stride + sc * 8) = v;
  }
  __syncthreads();

  uint32_t xa0[NT], xstep[NT];
  float* sxl = SumOfX<BF16, NT, G, WM>(xs, zrow, stride, ntok, nloc, sxs, lane, warp, xa0, xstep);

  float y[NT][4] = {}, acc[NT][4] = {};
  int slot = 0;
  for (int i = 0; i < count; ++i) {
    CpAsyncWaitMem<S - 1>();  // chunk i's group has landed (one group per chunk)
    __syncwarp();             // ... and the scale/zero other lanes copied are visible
    const uint4* src = ring + slot * kSlotVec;
    uint32_t wr[4 * BITS];
#pragma unroll
    for (int v = 0; v < BITS; ++v) {
      const uint4 u = src[v * 32 + lane];
      wr[4 * v] = u.x;
      wr[4 * v + 1] = u.y;
      wr[4 * v + 2] = u.z;
      wr[4 * v + 3] = u.w;
    }
    uint2 sz[GPC];
    const uint2* s2 = reinterpret_cast<const uint2*>(src + kCodeVec) + (lane >> 2);
#pragma unroll
    for (int q = 0; q < GPC; ++q) sz[q] = s2[q * 8];
    uint32_t xa[NT];
#pragma unroll
    for (int j = 0; j < NT; ++j) xa[j] = xa0[j] + i * xstep[j];
    StreamChunk<BITS, BF16, NT, G>(y, acc, wr, sz, xa, sxl + i * GPC * 8 * NT, std::make_integer_sequence<int, 16>{});
    __syncwarp();  // every lane has read the slot's scale/zero before it is refilled
    if (i + S < count) issue(i + S, slot);
    CpAsyncCommitMem();
    slot = slot + 1 == S ? 0 : slot + 1;
  }
  CpAsyncWaitMem<0>();  // nothing in flight into shared memory when the block ends
  Finish<BF16, WM, 1, NT>(y, p, reinterpret_cast<uint16_t*>(smem4), rt, n0, row_ok);
}

// ---- Host side --------------------------------------------------------------------------

struct SmemShape {
  int64_t n, bx, bz;
  int splits_opt;
};

template <int BITS, bool BF16, int NT, int G, int S>
std::string LaunchSmem(Params p, const SmemShape& sh, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                       bool pdl) {
  constexpr int GPC = 256 / G;
  auto kernel = QStreamSmemKernel<BITS, BF16, NT, G, S>;
  const size_t ring = static_cast<size_t>(kSmWM) * S * (BITS * 32 + GPC * 4) * 16;
  const int64_t ntok = std::min<int64_t>(sh.n, 8 * NT);
  auto xsmem = [&](int c) {
    return static_cast<size_t>(kZeroHalves * 2 + ntok * (c * 256 + 8) * 2 + c * GPC * 8 * NT * 4);
  };
  int max_cps = p.chunks;
  while (max_cps > 1 && xsmem(max_cps) > static_cast<size_t>(kSmMaxXSmem)) --max_cps;
  static const cudaError_t attr = [&] {
    cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(ring + kSmMaxXSmem));
    if (e == cudaSuccess) {
      e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
    }
    return e;
  }();
  if (attr != cudaSuccess) return std::string("cudaFuncSetAttribute: ") + cudaGetErrorString(attr);

  // Split-K: one wave of resident blocks at least, but >= 2 chunks per warp.
  int splits = sh.splits_opt;
  if (splits <= 0) {
    int per_sm = 0;
    const cudaError_t e =
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kSmThreads, ring + xsmem(max_cps));
    if (e != cudaSuccess) return std::string("occupancy: ") + cudaGetErrorString(e);
    const int64_t resident = static_cast<int64_t>(std::max(1, per_sm)) * internal::CudaSmCount();
    splits = static_cast<int>((resident + sh.bx * sh.bz - 1) / (sh.bx * sh.bz));
    const int cps = std::max(std::min(2, p.chunks), (p.chunks + splits - 1) / splits);
    splits = (p.chunks + cps - 1) / cps;
  }
  splits = std::max(1, std::min(splits, p.chunks));
  int cps = std::min((p.chunks + splits - 1) / splits, max_cps);
  splits = (p.chunks + cps - 1) / cps;
  p.splits = splits;
  p.chunks_per_split = cps;
  const std::string ws = SetSplitWorkspace(p, sh.n, workspace, workspace_bytes);
  if (!ws.empty()) return ws;

  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(sh.bx), static_cast<unsigned>(splits), static_cast<unsigned>(sh.bz));
  cfg.blockDim = dim3(kSmThreads);
  cfg.dynamicSmemBytes = ring + xsmem(cps);
  cfg.stream = stream;
  cfg.attrs = pdl ? at : nullptr;
  cfg.numAttrs = pdl ? 1 : 0;
  cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, p);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return std::string("QGemm stream-smem launch: ") + cudaGetErrorString(e);
  return "";
}

template <int BITS, bool BF16, int NT, int G>
std::string LaunchSmemRing(int ring, const Params& p, const SmemShape& sh, void* ws, size_t wsb, cudaStream_t s,
                           bool pdl) {
  constexpr int S1 = SmemDepth(BITS, 1), S2 = SmemDepth(BITS, 2);
  return ring == 2 ? LaunchSmem<BITS, BF16, NT, G, S2>(p, sh, ws, wsb, s, pdl)
                   : LaunchSmem<BITS, BF16, NT, G, S1>(p, sh, ws, wsb, s, pdl);
}

template <bool BF16, int NT, int G>
std::string LaunchSmemBits(int bits, int ring, const Params& p, const SmemShape& sh, void* ws, size_t wsb,
                           cudaStream_t s, bool pdl) {
  return WithBits(
      bits, [&](auto b) { return LaunchSmemRing<decltype(b)::value, BF16, NT, G>(ring, p, sh, ws, wsb, s, pdl); });
}

template <bool BF16>
std::string LaunchSmemCfg(int bits, int ring, int nt, int g, const Params& p, const SmemShape& sh, void* ws, size_t wsb,
                          cudaStream_t s, bool pdl) {
  if (nt == 1) {
    return g == 64 ? LaunchSmemBits<BF16, 1, 64>(bits, ring, p, sh, ws, wsb, s, pdl)
                   : LaunchSmemBits<BF16, 1, 128>(bits, ring, p, sh, ws, wsb, s, pdl);
  }
  return g == 64 ? LaunchSmemBits<BF16, 2, 64>(bits, ring, p, sh, ws, wsb, s, pdl)
                 : LaunchSmemBits<BF16, 2, 128>(bits, ring, p, sh, ws, wsb, s, pdl);
}

}  // namespace

namespace internal {

std::string QGemmStreamSmem(const DeviceMatrix& w, const void* x, int64_t n, void* y, ActType act, void* workspace,
                            size_t workspace_bytes, void* stream, const QGemmOptions& opt) {
  if (reinterpret_cast<uintptr_t>(w.sz) % 16 != 0) {  // the ring copies scale/zero in 16-byte words
    return QGemmStream(w, x, n, y, act, workspace, workspace_bytes, stream, opt);
  }
  const GpuLayout& l = w.layout;
  const int nt = n <= 8 ? 1 : 2;
  const Params p = MakeParams(w, x, n, y);
  SmemShape sh;
  sh.n = n;
  sh.bx = (l.row_tiles + kSmWM - 1) / kSmWM;
  sh.bz = (n + 8 * nt - 1) / (8 * nt);
  sh.splits_opt = opt.splits;
  const int ring = opt.ring == 2 ? 2 : 1;
  const int g = static_cast<int>(l.group_size);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return act == ActType::kBF16
             ? LaunchSmemCfg<true>(l.bits, ring, nt, g, p, sh, workspace, workspace_bytes, s, opt.pdl)
             : LaunchSmemCfg<false>(l.bits, ring, nt, g, p, sh, workspace, workspace_bytes, s, opt.pdl);
}

}  // namespace internal
}  // namespace slq::kernels
