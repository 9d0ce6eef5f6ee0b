// CUDA kernels for QGemm (see qgemm.h): argument checks, the kernel choice, and the two older
// kernels (the streaming kernel is in qgemm_stream.cu). Each one template over bitwidth and
// activation type: QGemvKernel for n <= 8 (below, "legacy small-batch path") and QGemmKernel, the
// tiled kernel, for larger n, with token tiles of 16/32/64. Tiled kernel: a block is WM x WK warps; warp (wm, wk) owns
// row tile blockIdx.x * WM + wm and every WK-th 256-column chunk of the block's K range; the block stages the
// activations of its current WK chunks in shared memory (cp.async, double-buffered) and the warps reduce over wk at the
// end. Split-K over blockIdx.y accumulates in an fp32 workspace; the last block of a tile (counter) converts it to the
// output and zeroes the workspace again. Grid matrices (kernels/grids.h) run on the tiled kernel's GRID
// instantiation (the uniform one is unchanged), or on the streaming kernel's (fp16 and bf16; kStream,
// or kAuto for n <= kStreamAutoMaxN).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <utility>

#include "kernels/cuda/qgemm.h"
#include "kernels/cuda/qgemm_device.cuh"
#include "kernels/cuda/qgemm_stream.h"

namespace slq::kernels {
namespace {

// GRID: the matrix carries grid ids (p.grid, p.levels); the level table is copied to shared
// memory after the two staging buffers, and each weight is z + s * L[q] (DequantGrid).
// SPC: scale/zero slots per chunk (KStep): 4 for group size 64 / 128, 8 for group size 32.
template <int BITS, bool BF16, int WM, int WK, int NT, bool GRID, int SPC>
__global__ void __launch_bounds__(kThreads) QGemmKernel(Params p) {
  static_assert(SPC == 4 || SPC == 8, "scale slots per chunk");
  static_assert(WM * WK * 32 == kThreads, "block shape");
  constexpr int kStride = WK * 256 + 8;  // halves per staged token row (padded: no conflicts)
  constexpr int kBuf = 8 * NT * kStride;
  extern __shared__ __align__(16) uint16_t smem[];
  float* table = reinterpret_cast<float*>(smem + 2 * kBuf);  // GRID: kGridCount << BITS levels
  if constexpr (GRID) {
    for (int i = threadIdx.x; i < (kGridCount << BITS); i += kThreads) table[i] = __ldg(p.levels + i);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp % WM, wk = warp / WM;
  const int rt = blockIdx.x * WM + wm;
  const int n0 = blockIdx.z * 8 * NT;
  const int c_begin = blockIdx.y * p.chunks_per_split;
  const int c_end = min(p.chunks, c_begin + p.chunks_per_split);
  const int iters = (c_end - c_begin + WK - 1) / WK;
  const bool row_ok = rt < p.row_tiles;

  auto stage = [&](int it, int buf) {
    const int kc = (c_begin + it * WK) * 256;
    uint16_t* dst = smem + buf * kBuf;
    constexpr int kSegs = 8 * NT * WK * 32;
#pragma unroll
    for (int i = threadIdx.x; i < kSegs; i += kThreads) {
      const int row = i / (WK * 32), sc = i % (WK * 32);
      const int col = kc + sc * 8, tok = n0 + row;
      uint16_t* d = dst + row * kStride + sc * 8;
      if (tok < p.n && col < p.cols) {
        CpAsync16(d, p.x + static_cast<int64_t>(tok) * p.cols + col);
      } else {
        *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
      }
    }
    CpAsyncCommit();
  };

  auto load = [&](int it, uint32_t(&wr)[4 * BITS], uint2(&s)[SPC], uint32_t& ids, uint32_t& ids_hi) {
    const int c = c_begin + it * WK + wk;
    if (!row_ok || c >= c_end) return;
    const uint4* base = p.codes + (static_cast<int64_t>(rt) * p.chunks + c) * BITS * 32 + lane;
#pragma unroll
    for (int v = 0; v < BITS; ++v) {
      const uint4 u = LoadStream(base + v * 32);
      wr[4 * v] = u.x;
      wr[4 * v + 1] = u.y;
      wr[4 * v + 2] = u.z;
      wr[4 * v + 3] = u.w;
    }
#pragma unroll
    for (int q = 0; q < SPC; ++q) {
      const int grp = (c * 256 + q * (256 / SPC)) >> p.log2g;
      s[q] = __ldg(p.sz + (static_cast<int64_t>(rt) * p.gpad + grp) * 8 + (lane >> 2));
    }
    if constexpr (GRID) {
      uint32_t v = 0;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int grp = (c * 256 + q * (256 / SPC)) >> p.log2g;
        v |= static_cast<uint32_t>(__ldg(p.grid + (static_cast<int64_t>(rt) * p.gpad + grp) * 8 + (lane >> 2)))
             << (8 * q);
      }
      ids = v;
      if constexpr (SPC == 8) {
        uint32_t h = 0;
#pragma unroll
        for (int q = 4; q < 8; ++q) {
          const int grp = (c * 256 + q * 32) >> p.log2g;
          h |= static_cast<uint32_t>(__ldg(p.grid + (static_cast<int64_t>(rt) * p.gpad + grp) * 8 + (lane >> 2)))
               << (8 * (q - 4));
        }
        ids_hi = h;
      }
    }
  };

  uint32_t cur[4 * BITS], nxt[4 * BITS];
  uint2 szc[SPC], szn[SPC];
  uint32_t idc = 0, idn = 0, idc_hi = 0, idn_hi = 0;
  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;
  }
#pragma unroll
  for (int i = 0; i < 4 * BITS; ++i) cur[i] = nxt[i] = 0u;
#pragma unroll
  for (int q = 0; q < SPC; ++q) szc[q] = szn[q] = make_uint2(0, 0);

  if (iters > 0) {
    stage(0, 0);
    load(0, cur, szc, idc, idc_hi);
  }
  for (int it = 0; it < iters; ++it) {
    if (it + 1 < iters) {
      stage(it + 1, (it + 1) & 1);
      load(it + 1, nxt, szn, idn, idn_hi);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const int c = c_begin + it * WK + wk;
    if (row_ok && c < c_end) {
      Chunk<BITS, BF16, NT, kStride, GRID, SPC>(acc, cur, szc, smem + (it & 1) * kBuf + wk * 256, lane, idc, idc_hi,
                                                table, std::make_integer_sequence<int, 16>{});
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4 * BITS; ++i) cur[i] = nxt[i];
#pragma unroll
    for (int q = 0; q < SPC; ++q) szc[q] = szn[q];
    if constexpr (GRID) idc = idn;
    if constexpr (GRID && SPC == 8) idc_hi = idn_hi;
  }

  Finish<BF16, WM, WK, NT>(acc, p, smem, rt, n0, row_ok);
}

// ---- Small-batch path (n <= 8): zero-folded codes, whole K range staged once ---------------
//
// The A operand is the code plus a constant (fp16: 1024 + q via 0x6400 | q; bf16: 128 + q, or
// the exact q for 8 bits), so a pair costs one or two integer ops. Per 64-column quarter
// (one scale/zero), with aq = sum x * (off + q) and ax = sum x (an mma against ones):
//   y += s * aq + (z - off * s) * ax.

template <int BITS, bool BF16>
__host__ __device__ constexpr float FoldOffset() {
  return !BF16 ? 1024.f : (BITS < 8 ? 128.f : 0.f);
}

template <int BITS, bool BF16>
__device__ __forceinline__ uint32_t FoldCodes(uint32_t q2) {
  if constexpr (!BF16) {
    return q2 | 0x64006400u;
  } else if constexpr (BITS < 8) {
    return q2 | 0x43004300u;
  } else {
    const __nv_bfloat162 lo = __hsub2(AsB2((q2 & 0x000F000Fu) | 0x43004300u), AsB2(0x43004300u));
    const __nv_bfloat162 hi = __hsub2(AsB2(((q2 >> 4) & 0x000F000Fu) | 0x43004300u), AsB2(0x43004300u));
    return AsU32(__hfma2(hi, AsB2(0x41804180u), lo));  // 16 * hi + lo, exact
  }
}

struct FoldState {
  float aq[4], ax[4];
  uint32_t b[4];
};

template <int BITS, bool BF16, int S>
__device__ __forceinline__ void FoldStep(float (&acc)[1][4], FoldState& st, const uint32_t (&wr)[4 * BITS],
                                         const uint2 (&sz)[4], const uint16_t* xaddr, int colmul) {
  constexpr uint32_t kOnes = BF16 ? 0x3F803F80u : 0x3C003C00u;
  if constexpr (S % 4 == 0) {
#pragma unroll
    for (int i = 0; i < 4; ++i) st.aq[i] = st.ax[i] = 0.f;
  }
  if constexpr (S % 2 == 0) LdMatrixX4(st.b, xaddr + S * 16 * colmul);
  uint32_t a[4];
  a[0] = FoldCodes<BITS, BF16>(PairCodes<BITS, S * 4 + 0>(wr));
  a[1] = FoldCodes<BITS, BF16>(PairCodes<BITS, S * 4 + 1>(wr));
  a[2] = FoldCodes<BITS, BF16>(PairCodes<BITS, S * 4 + 2>(wr));
  a[3] = FoldCodes<BITS, BF16>(PairCodes<BITS, S * 4 + 3>(wr));
  const uint32_t ones[4] = {kOnes, kOnes, kOnes, kOnes};
  Mma<BF16>(st.aq, a, st.b[(S & 1) * 2], st.b[(S & 1) * 2 + 1]);
  Mma<BF16>(st.ax, ones, st.b[(S & 1) * 2], st.b[(S & 1) * 2 + 1]);
  if constexpr (S % 4 == 3) {
    constexpr float kOff = FoldOffset<BITS, BF16>();
    const uint2 u = sz[S / 4];
    const float s_lo = __half2float(__ushort_as_half(static_cast<uint16_t>(u.x & 0xFFFF)));
    const float z_lo = __half2float(__ushort_as_half(static_cast<uint16_t>(u.x >> 16)));
    const float s_hi = __half2float(__ushort_as_half(static_cast<uint16_t>(u.y & 0xFFFF)));
    const float z_hi = __half2float(__ushort_as_half(static_cast<uint16_t>(u.y >> 16)));
    const float zz_lo = z_lo - kOff * s_lo, zz_hi = z_hi - kOff * s_hi;
    acc[0][0] += s_lo * st.aq[0] + zz_lo * st.ax[0];
    acc[0][1] += s_lo * st.aq[1] + zz_lo * st.ax[1];
    acc[0][2] += s_hi * st.aq[2] + zz_hi * st.ax[2];
    acc[0][3] += s_hi * st.aq[3] + zz_hi * st.ax[3];
  }
}

template <int BITS, bool BF16, int... S>
__device__ __forceinline__ void FoldChunk(float (&acc)[1][4], const uint32_t (&wr)[4 * BITS], const uint2 (&sz)[4],
                                          const uint16_t* xaddr, int colmul, std::integer_sequence<int, S...>) {
  FoldState st;
  (FoldStep<BITS, BF16, S>(acc, st, wr, sz, xaddr, colmul), ...);
}

// Register ring depth: chunks of weights in flight per warp.
__host__ __device__ constexpr int GemvDepth(int bits) { return bits <= 3 ? 4 : bits <= 5 ? 3 : 2; }
constexpr int kGemvWM = 2, kGemvWK = 4;
constexpr int kGemvMaxSmem = 100 * 1024;

template <int BITS, bool BF16>
__global__ void __launch_bounds__(kThreads) QGemvKernel(Params p) {
  constexpr int WM = kGemvWM, WK = kGemvWK, D = GemvDepth(BITS);
  extern __shared__ __align__(16) uint16_t smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = warp % WM, wk = warp / WM;
  const int rt = blockIdx.x * WM + wm;
  const int c_begin = blockIdx.y * p.chunks_per_split;
  const int c_end = min(p.chunks, c_begin + p.chunks_per_split);
  const int nloc = c_end - c_begin;
  const bool row_ok = rt < p.row_tiles;
  const int stride = p.chunks_per_split * 256 + 8;  // halves per staged token row
  uint16_t* xs = smem + 8;                          // smem[0..7] = zeros (rows >= n)

  // Stage x[0:n, c_begin*256 : c_end*256] once.
  if (threadIdx.x == 0) *reinterpret_cast<uint4*>(smem) = make_uint4(0, 0, 0, 0);
  const int segs_row = nloc * 32;
  for (int i = threadIdx.x; i < p.n * segs_row; i += kThreads) {
    const int row = i / segs_row, sc = i % segs_row;
    const int col = c_begin * 256 + sc * 8;
    uint16_t* d = xs + row * stride + sc * 8;
    if (col < p.cols) {
      CpAsync16(d, p.x + static_cast<int64_t>(row) * p.cols + col);
    } else {
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
    }
  }
  CpAsyncCommit();

  const int count = nloc > wk ? (nloc - wk + WK - 1) / WK : 0;
  uint32_t wr[D][4 * BITS];
  uint2 sz[D][4];
  auto load = [&](int i, uint32_t(&w)[4 * BITS], uint2(&s)[4]) {
    const int c = c_begin + wk + i * WK;
    const uint4* base = p.codes + (static_cast<int64_t>(rt) * p.chunks + c) * BITS * 32 + lane;
#pragma unroll
    for (int v = 0; v < BITS; ++v) {
      const uint4 u = LoadStream(base + v * 32);
      w[4 * v] = u.x;
      w[4 * v + 1] = u.y;
      w[4 * v + 2] = u.z;
      w[4 * v + 3] = u.w;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int grp = (c * 256 + q * 64) >> p.log2g;
      s[q] = __ldg(p.sz + (static_cast<int64_t>(rt) * p.gpad + grp) * 8 + (lane >> 2));
    }
  };
  if (row_ok) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      if (d < count) load(d, wr[d], sz[d]);
    }
  }
  CpAsyncWait<0>();
  __syncthreads();

  // ldmatrix row address of this lane: token (lane % 8) at k offset (lane / 8) * 8, or zeros.
  const bool tok_ok = (lane & 7) < p.n;
  const uint16_t* xaddr = tok_ok ? xs + (lane & 7) * stride + (lane >> 3) * 8 : smem;
  const int colmul = tok_ok ? 1 : 0;
  float acc[1][4] = {{0.f, 0.f, 0.f, 0.f}};
  if (row_ok) {
    for (int base = 0; base < count; base += D) {
#pragma unroll
      for (int d = 0; d < D; ++d) {
        const int i = base + d;
        if (i < count) {
          const int xoff = (wk + i * WK) * 256 * colmul;
          FoldChunk<BITS, BF16>(acc, wr[d], sz[d], xaddr + xoff, colmul, std::make_integer_sequence<int, 16>{});
          if (i + D < count) load(i + D, wr[d], sz[d]);
        }
      }
    }
  }
  __syncthreads();  // smem is reused by the reduction
  Finish<BF16, WM, WK, 1>(acc, p, smem, rt, 0, row_ok);
}

// ---- Host side --------------------------------------------------------------------------

struct Config {
  int wm, wk, nt;
};

Config PickConfig(int64_t n) {
  if (n <= 8) return {2, 4, 1};
  if (n <= 16) return {2, 4, 2};
  if (n <= 32) return {4, 2, 4};
  return {8, 1, 8};
}

int SmCount() { return internal::CudaSmCount(); }

template <int BITS, bool BF16, int WM, int WK, int NT, bool GRID, int SPC>
std::string Launch(const Params& p, dim3 grid, cudaStream_t stream) {
  constexpr size_t kSmem =
      2 * 8 * NT * (WK * 256 + 8) * sizeof(uint16_t) + (GRID ? (kGridCount << BITS) * sizeof(float) : 0);
  auto kernel = QGemmKernel<BITS, BF16, WM, WK, NT, GRID, SPC>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attr != cudaSuccess) return std::string("cudaFuncSetAttribute: ") + cudaGetErrorString(attr);
  kernel<<<grid, kThreads, kSmem, stream>>>(p);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string("QGemm launch: ") + cudaGetErrorString(e);
  return "";
}

template <int BITS, bool BF16, bool GRID, int SPC>
std::string LaunchCfgSpc(const Config& c, const Params& p, dim3 grid, cudaStream_t s) {
  if (c.nt == 1) return Launch<BITS, BF16, 2, 4, 1, GRID, SPC>(p, grid, s);
  if (c.nt == 2) return Launch<BITS, BF16, 2, 4, 2, GRID, SPC>(p, grid, s);
  if (c.nt == 4) return Launch<BITS, BF16, 4, 2, 4, GRID, SPC>(p, grid, s);
  return Launch<BITS, BF16, 8, 1, 8, GRID, SPC>(p, grid, s);
}

// Group size 32 takes the 8-slot instantiations (SPC = 8), 64 and 128 the 4-slot ones.
template <int BITS, bool BF16, bool GRID>
std::string LaunchCfg(const Config& c, const Params& p, dim3 grid, cudaStream_t s) {
  return p.log2g == 5 ? LaunchCfgSpc<BITS, BF16, GRID, 8>(c, p, grid, s)
                      : LaunchCfgSpc<BITS, BF16, GRID, 4>(c, p, grid, s);
}

template <int BITS, bool BF16>
std::string LaunchGemv(const Params& p, dim3 grid, size_t smem, cudaStream_t stream) {
  auto kernel = QGemvKernel<BITS, BF16>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kGemvMaxSmem);
  if (attr != cudaSuccess) return std::string("cudaFuncSetAttribute: ") + cudaGetErrorString(attr);
  kernel<<<grid, kThreads, smem, stream>>>(p);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string("QGemv launch: ") + cudaGetErrorString(e);
  return "";
}

template <bool BF16>
std::string LaunchGemvBits(int bits, const Params& p, dim3 grid, size_t smem, cudaStream_t s) {
  return WithBits(bits, [&](auto b) { return LaunchGemv<decltype(b)::value, BF16>(p, grid, smem, s); });
}

template <bool BF16, bool GRID>
std::string LaunchBits(int bits, const Config& c, const Params& p, dim3 grid, cudaStream_t s) {
  return WithBits(bits, [&](auto b) { return LaunchCfg<decltype(b)::value, BF16, GRID>(c, p, grid, s); });
}

int64_t CounterInts(int64_t rows, int64_t max_n) {
  const int64_t tiles = ((rows + 15) / 16) * ((max_n + 7) / 8);
  return (tiles + 63) / 64 * 64;
}

// kAuto for n <= kStreamAutoMaxN: which streaming kernel, per (bits, n range). From bench
// --sweep on the H200, 2026-12-02 (run 2 of bench/results/kernels-2026-12-01.md, "v7"): summed
// over the four Llama-3-8B linears, the shared-memory ring was >= 3% faster with and without
// PDL only at 3 bits and n = 2..16 (4.4-5%); elsewhere the register ring was as fast or faster.
QKernel AutoStream(int bits, int64_t n) {
  struct Cell {
    int bits;
    int64_t n_lo, n_hi;
  };
  static constexpr Cell kSmemCells[] = {{3, 2, 16}};
  for (const Cell& c : kSmemCells) {
    if (bits == c.bits && n >= c.n_lo && n <= c.n_hi) return QKernel::kStreamSmem;
  }
  return QKernel::kStream;
}

}  // namespace

bool CudaDeviceAvailable(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) {
      *why = e != cudaSuccess ? std::string("no CUDA device: ") + cudaGetErrorString(e)
                              : std::string("no CUDA device present");
    }
    return false;
  }
  return true;
}

std::string UploadMatrix(const RepackedMatrix& m, DeviceMatrix* out) {
  *out = DeviceMatrix{};
  out->layout = m.layout;
  if (m.layout.grids && (m.grid.size() != static_cast<size_t>(m.layout.GridBytes()) ||
                         m.levels.size() != static_cast<size_t>(kGridCount << m.layout.bits))) {
    return "UploadMatrix: a grid matrix needs its repacked grid ids and level table (RepackForGpu fills them)";
  }
  void* c = nullptr;
  void* s = nullptr;
  void* g = nullptr;
  void* lv = nullptr;
  cudaError_t e = cudaMalloc(&c, m.codes.size() * 4);
  if (e == cudaSuccess) e = cudaMalloc(&s, m.sz.size() * 2);
  if (e == cudaSuccess) e = cudaMemcpy(c, m.codes.data(), m.codes.size() * 4, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(s, m.sz.data(), m.sz.size() * 2, cudaMemcpyHostToDevice);
  if (m.layout.grids) {
    if (e == cudaSuccess) e = cudaMalloc(&g, m.grid.size());
    if (e == cudaSuccess) e = cudaMalloc(&lv, m.levels.size() * 4);
    if (e == cudaSuccess) e = cudaMemcpy(g, m.grid.data(), m.grid.size(), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(lv, m.levels.data(), m.levels.size() * 4, cudaMemcpyHostToDevice);
  }
  out->codes = static_cast<const uint32_t*>(c);
  out->sz = static_cast<const uint16_t*>(s);
  out->grid = static_cast<const uint8_t*>(g);
  out->levels = static_cast<const float*>(lv);
  if (e != cudaSuccess) {
    FreeDeviceMatrix(out);
    return std::string("UploadMatrix: ") + cudaGetErrorString(e);
  }
  return "";
}

void FreeDeviceMatrix(DeviceMatrix* m) {
  cudaFree(const_cast<uint32_t*>(m->codes));
  cudaFree(const_cast<uint16_t*>(m->sz));
  cudaFree(const_cast<uint8_t*>(m->grid));
  cudaFree(const_cast<float*>(m->levels));
  m->codes = nullptr;
  m->sz = nullptr;
  m->grid = nullptr;
  m->levels = nullptr;
}

size_t QGemmWorkspaceBytes(int64_t rows, int64_t max_n) {
  return static_cast<size_t>(CounterInts(rows, max_n) * 4 + max_n * rows * 4);
}

std::string AllocWorkspace(size_t bytes, void** ws) {
  cudaError_t e = cudaMalloc(ws, bytes);
  if (e == cudaSuccess) e = cudaMemset(*ws, 0, bytes);
  if (e != cudaSuccess) return std::string("AllocWorkspace: ") + cudaGetErrorString(e);
  return "";
}

std::string QGemm(const DeviceMatrix& w, const void* x, int64_t n, void* y, ActType act, void* workspace,
                  size_t workspace_bytes, void* stream, const QGemmOptions& opt) {
  const GpuLayout& l = w.layout;
  if (l.bits < 2 || l.bits > 8) return "bits = " + std::to_string(l.bits) + "; allowed 2..8";
  if (l.group_size != 32 && l.group_size != 64 && l.group_size != 128) {
    return "group_size = " + std::to_string(l.group_size) + "; allowed 32, 64 or 128";
  }
  if (l.cols % 8 != 0) return "cols = " + std::to_string(l.cols) + " must be a multiple of 8";
  if (n < 1 || n > (1 << 20)) return "n = " + std::to_string(n) + "; allowed 1..2^20";
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) return "x must be 16-byte aligned";
  if (w.codes == nullptr || w.sz == nullptr || y == nullptr) return "null device pointer";
  if (l.grids && (w.grid == nullptr || w.levels == nullptr)) {
    return "a grid matrix needs its grid ids and level table on the device (DeviceMatrix::grid, ::levels)";
  }
  QKernel kernel = opt.kernel;
  if (l.grids) {
    // The small-batch kernels feed integer codes to the mma: grid levels are not integers. The
    // streaming kernel's grid variant feeds the levels instead (fp16: the level itself; bf16:
    // its exact split hi + lo, two mma per fragment); kAuto takes it for n <= kStreamAutoMaxN
    // (bf16: width 2 only), everything else runs tiled. H200 (bench/results/kernels-grids-2026-12-02.md):
    // fp16 1.1-1.8x uniform at 2-5 bits, faster than tiled except gate_up 8-bit; bf16 faster than
    // tiled only at 2 bits (one 8B layer at batch 1: 92 vs 108 us; 4 bits 120 vs 117, 3 bits 142 vs 117).
    const bool auto_stream = opt.allow_gemv && n <= kStreamAutoMaxN && (act == ActType::kF16 || l.bits == 2);
    const bool stream = kernel == QKernel::kStream || (kernel == QKernel::kAuto && auto_stream);
    kernel = stream ? QKernel::kStream : QKernel::kTiled;
  } else if (kernel == QKernel::kAuto) {
    kernel = opt.allow_gemv && n <= kStreamAutoMaxN ? AutoStream(l.bits, n) : QKernel::kTiled;
  }
  // Group size 32 has no shared-memory-ring nor legacy small-batch instantiation: the former
  // runs the register-ring streaming kernel, the latter the tiled kernel.
  if (l.group_size == 32 && kernel == QKernel::kStreamSmem) kernel = QKernel::kStream;
  if (l.group_size == 32 && kernel == QKernel::kLegacyGemv) kernel = QKernel::kTiled;
  if (kernel == QKernel::kStream) {
    return internal::QGemmStream(w, x, n, y, act, workspace, workspace_bytes, stream, opt);
  }
  if (kernel == QKernel::kStreamSmem && n <= kStreamAutoMaxN) {
    return internal::QGemmStreamSmem(w, x, n, y, act, workspace, workspace_bytes, stream, opt);
  }
  const Config c = PickConfig(n);
  Params p = MakeParams(w, x, n, y);
  const int64_t bx = (l.row_tiles + c.wm - 1) / c.wm;
  const int64_t bz = (n + 8 * c.nt - 1) / (8 * c.nt);
  int splits = opt.splits;
  if (splits <= 0) {
    const int64_t target = 2 * SmCount();
    splits = static_cast<int>(std::max<int64_t>(1, (target + bx * bz - 1) / (bx * bz)));
  }
  const bool gemv = n <= 8 && kernel == QKernel::kLegacyGemv;
  const int max_splits = std::max(1, p.chunks / c.wk);
  splits = std::min(splits, max_splits);
  int cps = 0;
  auto set_cps = [&] {
    cps = (p.chunks + splits - 1) / splits;
    cps = (cps + c.wk - 1) / c.wk * c.wk;
    splits = (p.chunks + cps - 1) / cps;
  };
  set_cps();
  // The small-batch kernel stages its whole K range: split further until it fits.
  auto gemv_smem = [&] {
    return std::max<size_t>(16 + static_cast<size_t>(n) * (cps * 256 + 8) * 2, kGemvWM * kGemvWK * 128 * sizeof(float));
  };
  while (gemv && gemv_smem() > static_cast<size_t>(kGemvMaxSmem) && cps > c.wk) {
    cps -= c.wk;  // shrink the range (not ++splits: rounding could map back to the same cps)
    splits = (p.chunks + cps - 1) / cps;
  }
  p.splits = splits;
  p.chunks_per_split = cps;
  if (splits > 1) {
    if (workspace == nullptr || workspace_bytes < QGemmWorkspaceBytes(l.rows, n)) {
      return "split-K needs a workspace of " + std::to_string(QGemmWorkspaceBytes(l.rows, n)) + " bytes; got " +
             std::to_string(workspace_bytes);
    }
    p.counters = static_cast<int*>(workspace);
    p.ws = reinterpret_cast<float*>(static_cast<int*>(workspace) + CounterInts(l.rows, n));
  }
  const dim3 grid(static_cast<unsigned>(bx), static_cast<unsigned>(splits), static_cast<unsigned>(bz));
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (gemv) {
    return act == ActType::kBF16 ? LaunchGemvBits<true>(l.bits, p, grid, gemv_smem(), s)
                                 : LaunchGemvBits<false>(l.bits, p, grid, gemv_smem(), s);
  }
  if (l.grids) {
    return act == ActType::kBF16 ? LaunchBits<true, true>(l.bits, c, p, grid, s)
                                 : LaunchBits<false, true>(l.bits, c, p, grid, s);
  }
  return act == ActType::kBF16 ? LaunchBits<true, false>(l.bits, c, p, grid, s)
                               : LaunchBits<false, false>(l.bits, c, p, grid, s);
}

}  // namespace slq::kernels
