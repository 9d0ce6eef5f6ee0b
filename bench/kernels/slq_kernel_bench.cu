// slq_kernel_bench: QGemm (fused dequantize + matmul) vs cuBLASLt bf16 on Llama-3-8B and
// Qwen3-8B linear shapes, bitwidths 2..8, batch 1..128, plus one layer's four linears in a
// CUDA graph at batch 1. Random weights; the weights rotate through enough copies (> 200 MB)
// to defeat the 50 MB L2. Times are medians of CUDA-event timings over repeated loops.
//   slq_kernel_bench [--out FILE.md] [--quick]
//   slq_kernel_bench --sweep [--sweep-bits 248] [--out FILE.md]   (streaming kernel variants, both
//       rings, vs legacy/tiled/cuBLASLt; --sweep-bits: only these code widths in the per-shape part)
//   slq_kernel_bench --probe [--out FILE.md]   (read-only probes of the weight access pattern)
//   slq_kernel_bench --grids [--out FILE.md]   (grid matrices, kernels/grids.h, vs uniform ones
//       and cuBLASLt bf16 side by side: per shape, width and batch, bf16 and fp16 activations,
//       and one layer at batch 1 in a CUDA graph)
//   slq_kernel_bench [--stream|--legacy|--smem] [--ring R] [--splits S] --profile ROWS COLS BITS N
//       (a few launches, for ncu)
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "kernels/cuda/qgemm.h"
#include "kernels/grids.h"
#include "kernels/repack.h"

namespace slq::kernels {
namespace {

#define CK(x)                                                                                 \
  do {                                                                                        \
    cudaError_t e_ = (x);                                                                     \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)
#define CKB(x)                                                                               \
  do {                                                                                       \
    cublasStatus_t s_ = (x);                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                       \
      std::fprintf(stderr, "%s:%d %s: cublas status %d\n", __FILE__, __LINE__, #x, (int)s_); \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)
#define CKS(x)                                                            \
  do {                                                                    \
    std::string m_ = (x);                                                 \
    if (!m_.empty()) {                                                    \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, m_.c_str()); \
      std::exit(1);                                                       \
    }                                                                     \
  } while (0)

constexpr double kRotateBytes = 256e6;
constexpr int kReps = 15;
const int kBatches[] = {1, 2, 4, 8, 16, 32, 64, 128};

__device__ uint32_t Hash(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + seed;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<uint32_t>(x);
}
__global__ void FillBits(uint32_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * int64_t(blockDim.x)) {
    p[i] = Hash(i, seed);
  }
}
// fp16 (scale, zero) pairs: scale in [1/1024, 1/512), zero in (-1, -0.5].
__global__ void FillSz(uint16_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * int64_t(blockDim.x)) {
    const uint32_t h = Hash(i, seed) & 0x3FF;
    p[i] = (i % 2 == 0) ? static_cast<uint16_t>(0x1400 | h) : static_cast<uint16_t>(0xB800 | h);
  }
}
// Repacked grid-id bytes (kernels/repack.h): two random ids 0..3 per byte.
__global__ void FillGridIds(uint8_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * int64_t(blockDim.x)) {
    p[i] = static_cast<uint8_t>(Hash(i, seed) & 0x33u);
  }
}
// bf16 values in [-1, 1).
__global__ void FillAct(uint16_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * int64_t(blockDim.x)) {
    const uint32_t h = Hash(i, seed);
    p[i] = static_cast<uint16_t>(0x3F00 | (h & 0x7F) | ((h >> 8) & 1) << 15);
  }
}

struct Shape {
  const char* model;
  const char* name;
  int64_t rows, cols;
};
const Shape kShapes[] = {
    {"Llama-3-8B", "qkv", 6144, 4096},    {"Llama-3-8B", "o", 4096, 4096},   {"Llama-3-8B", "gate_up", 28672, 4096},
    {"Llama-3-8B", "down", 4096, 14336},  {"Qwen3-8B", "qkv", 6144, 4096},   {"Qwen3-8B", "o", 4096, 4096},
    {"Qwen3-8B", "gate_up", 24576, 4096}, {"Qwen3-8B", "down", 4096, 12288},
};

// ---- --probe: the streaming kernel's weight reads without its math (issue #16 diagnosis) ----
// ProbeTiles: one warp per 16-row tile walking its chunks in order (the streaming kernel's
// address pattern: BITS 512-byte warp loads per chunk), DEPTH chunks in flight. ProbeFlat: the
// same bytes read fully coalesced by a grid-stride loop (the read ceiling of this buffer).
template <int BITS, int DEPTH>
__global__ void __launch_bounds__(128) ProbeTiles(const uint4* codes, int row_tiles, int chunks, uint32_t* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rt = blockIdx.x * 4 + warp;
  if (rt >= row_tiles) return;
  const uint4* base = codes + static_cast<int64_t>(rt) * chunks * BITS * 32 + lane;
  uint32_t acc = 0;
  for (int c = 0; c < chunks; c += DEPTH) {
    uint4 v[DEPTH][BITS];
#pragma unroll
    for (int d = 0; d < DEPTH; ++d) {
#pragma unroll
      for (int b = 0; b < BITS; ++b) {
        v[d][b] = c + d < chunks ? __ldcs(base + ((c + d) * BITS + b) * 32) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int d = 0; d < DEPTH; ++d) {
#pragma unroll
      for (int b = 0; b < BITS; ++b) acc ^= v[d][b].x ^ v[d][b].y ^ v[d][b].z ^ v[d][b].w;
    }
  }
  if (acc == 0x9E3779B9u) out[0] = acc;  // keeps the loads; practically never true
}

__global__ void ProbeFlat(const uint4* p, int64_t n16, uint32_t* out) {
  uint32_t acc = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n16; i += 4 * stride) {
    const uint4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride),
                d = __ldcs(p + i + 3 * stride);
    acc ^= a.x ^ a.w ^ b.x ^ b.w ^ c.x ^ c.w ^ d.x ^ d.w;
  }
  for (; i < n16; i += stride) acc ^= __ldcs(p + i).x;
  if (acc == 0x9E3779B9u) out[0] = acc;
}

// A set of device copies of one quantized matrix (random content).
struct QSet {
  std::vector<DeviceMatrix> mats;
  void* pool = nullptr;
};
// grids: each copy also carries random grid ids, all sharing the width's real level table.
QSet MakeQSet(int64_t rows, int64_t cols, int bits, int64_t g, int copies, uint32_t seed, bool grids = false) {
  GpuLayout l;
  l.rows = rows;
  l.cols = cols;
  l.bits = bits;
  l.group_size = g;
  l.row_tiles = (rows + 15) / 16;
  l.chunks = (cols + 255) / 256;
  l.grids = grids;
  const int64_t cb = (l.CodeWords() * 4 + 255) / 256 * 256, sb = (l.SzHalves() * 2 + 255) / 256 * 256;
  const int64_t gb = (l.GridBytes() + 255) / 256 * 256;
  const std::vector<float> levels = grids ? GridLevelTable(bits) : std::vector<float>{};
  QSet s;
  CK(cudaMalloc(&s.pool, (cb + sb + gb) * copies + levels.size() * 4));
  char* base = static_cast<char*>(s.pool);
  FillBits<<<1024, 256>>>(reinterpret_cast<uint32_t*>(base), cb * copies / 4, seed);
  FillSz<<<1024, 256>>>(reinterpret_cast<uint16_t*>(base + cb * copies), sb * copies / 2, seed + 1);
  char* gbase = base + (cb + sb) * copies;
  if (grids) {
    FillGridIds<<<1024, 256>>>(reinterpret_cast<uint8_t*>(gbase), gb * copies, seed + 2);
    CK(cudaMemcpy(gbase + gb * copies, levels.data(), levels.size() * 4, cudaMemcpyHostToDevice));
  }
  CK(cudaGetLastError());
  for (int i = 0; i < copies; ++i) {
    DeviceMatrix m;
    m.layout = l;
    m.codes = reinterpret_cast<const uint32_t*>(base + cb * i);
    m.sz = reinterpret_cast<const uint16_t*>(base + cb * copies + sb * i);
    if (grids) {
      m.grid = reinterpret_cast<const uint8_t*>(gbase + gb * i);
      m.levels = reinterpret_cast<const float*>(gbase + gb * copies);
    }
    s.mats.push_back(m);
  }
  return s;
}

int CopiesFor(double bytes) { return std::max(2, static_cast<int>(kRotateBytes / bytes) + 1); }

// Median over kReps of (time of `loop` launches) / loop, in microseconds.
template <typename F>
double TimeUs(F&& launch, int loop, cudaStream_t st) {
  for (int i = 0; i < std::min(loop, 8); ++i) launch(i);
  CK(cudaStreamSynchronize(st));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int r = 0; r < kReps; ++r) {
    CK(cudaEventRecord(a, st));
    for (int i = 0; i < loop; ++i) launch(i);
    CK(cudaEventRecord(b, st));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1000.f / loop);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// cuBLASLt bf16: y[n, rows] = x[n, cols] W^T, W [rows, cols] row-major; fp32 compute.
struct Lt {
  cublasLtHandle_t h;
  void* ws;
  size_t ws_bytes = 64 << 20;
};
struct LtPlan {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, c;
  cublasLtMatmulHeuristicResult_t heur;
};
LtPlan MakePlan(Lt& lt, int64_t rows, int64_t cols, int64_t n) {
  LtPlan p;
  CKB(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  CKB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CKB(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  CKB(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, cols, rows, cols));  // W^T viewed col-major
  CKB(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, cols, n, cols));     // x^T
  CKB(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16BF, rows, n, rows));     // y^T
  cublasLtMatmulPreference_t pref;
  CKB(cublasLtMatmulPreferenceCreate(&pref));
  CKB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt.ws_bytes,
                                           sizeof(lt.ws_bytes)));
  int found = 0;
  CKB(cublasLtMatmulAlgoGetHeuristic(lt.h, p.op, p.a, p.b, p.c, p.c, pref, 1, &p.heur, &found));
  if (found == 0) {
    std::fprintf(stderr, "cuBLASLt found no algorithm\n");
    std::exit(1);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  return p;
}
void RunPlan(Lt& lt, LtPlan& p, const void* w, const void* x, void* y, cudaStream_t st) {
  const float one = 1.f, zero = 0.f;
  CKB(cublasLtMatmul(lt.h, p.op, &one, w, p.a, x, p.b, &zero, y, p.c, y, p.c, &p.heur.algo, lt.ws, lt.ws_bytes, st));
}

struct Bufs {
  void* x;  // [128, 14336] bf16
  void* y;  // [128, 28672] bf16
  void* ws;
  size_t ws_bytes;
};

double QBytes(const GpuLayout& l) { return l.CodeWords() * 4.0 + l.SzHalves() * 2.0 + l.GridBytes(); }

double TimeQ(QSet& s, int64_t n, Bufs& b, cudaStream_t st, const QGemmOptions& opt = {}, ActType act = ActType::kBF16) {
  const int loop = std::max<int>(20, static_cast<int>(s.mats.size()));
  return TimeUs([&](int i) { CKS(QGemm(s.mats[i % s.mats.size()], b.x, n, b.y, act, b.ws, b.ws_bytes, st, opt)); },
                loop, st);
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

// cuBLASLt bf16 on a dense [rows, cols] weight (rotated copies), us per call for each n.
std::vector<double> CublasTimes(Lt& lt, const Shape& sh, const std::vector<int64_t>& ns, Bufs& b, cudaStream_t st) {
  const double wbytes = sh.rows * sh.cols * 2.0;
  const int wc = CopiesFor(wbytes);
  void* wpool;
  CK(cudaMalloc(&wpool, static_cast<size_t>(wbytes) * wc));
  FillAct<<<1024, 256>>>(static_cast<uint16_t*>(wpool), static_cast<int64_t>(wbytes / 2) * wc, 3);
  std::vector<double> base;
  for (int64_t n : ns) {
    LtPlan p = MakePlan(lt, sh.rows, sh.cols, n);
    base.push_back(TimeUs(
        [&](int k) {
          RunPlan(lt, p, static_cast<char*>(wpool) + static_cast<size_t>(wbytes) * (k % wc), b.x, b.y, st);
        },
        std::max(20, wc), st));
  }
  CK(cudaFree(wpool));
  return base;
}

// --sweep: the streaming kernel's variants beside the legacy small-batch and tiled kernels and
// cuBLASLt bf16 in one run (Llama-3-8B shapes, bf16 activations, g128 unless noted).
struct SweepVar {
  std::string name;
  QGemmOptions opt;
};

std::vector<SweepVar> SweepVars(int64_t n) {
  std::vector<SweepVar> v;
  auto add = [&](const std::string& name, QKernel k, int splits, bool pdl) {
    QGemmOptions o;
    o.kernel = k;
    o.splits = splits;
    o.pdl = pdl;
    v.push_back({name, o});
  };
  if (n <= 8) add("legacy", QKernel::kLegacyGemv, 0, false);
  add("tiled", QKernel::kTiled, 0, false);
  add("stream", QKernel::kStream, 0, false);
  add("stream+pdl", QKernel::kStream, 0, true);
  // The shared-memory ring (kStreamSmem): both depths, PDL, fixed split-K factors.
  add("smem r1", QKernel::kStreamSmem, 0, false);
  add("smem r2", QKernel::kStreamSmem, 0, false);
  v.back().opt.ring = 2;
  add("smem r1+pdl", QKernel::kStreamSmem, 0, true);
  for (int sp : {1, 2, 4, 8}) add("smem r1 s" + std::to_string(sp), QKernel::kStreamSmem, sp, false);
  for (int sp : {2, 4}) {
    add("smem r2 s" + std::to_string(sp), QKernel::kStreamSmem, sp, false);
    v.back().opt.ring = 2;
  }
  return v;
}

// Llama-3-8B's four linears at batch 1, captured in one CUDA graph (weights rotated), per kernel.
void LayerGraphs(Lt& lt, Bufs& b, cudaStream_t st, const std::function<void(const std::string&)>& emit) {
  emit(
      "## Llama-3-8B layer (qkv, o, gate_up, down) at batch 1 in a CUDA graph, us/layer\n\n"
      "| bits | cuBLASLt bf16 | legacy | stream | stream+pdl | smem r1 | smem r1+pdl | smem r2+pdl | best speedup |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  const Shape* ls = &kShapes[0];
  auto graph_time = [&](auto&& body, int layers) {
    for (int w = 0; w < 2; ++w) body();
    CK(cudaStreamSynchronize(st));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    body();
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const double us = TimeUs([&](int) { CK(cudaGraphLaunch(ge, st)); }, 10, st) / layers;
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    return us;
  };
  double lbytes = 0;
  for (int j = 0; j < 4; ++j) lbytes += ls[j].rows * ls[j].cols * 2.0;
  const int lc = CopiesFor(lbytes);
  std::vector<void*> wl;
  std::vector<LtPlan> plans;
  for (int j = 0; j < 4; ++j) plans.push_back(MakePlan(lt, ls[j].rows, ls[j].cols, 1));
  for (int k = 0; k < lc * 4; ++k) {
    void* p;
    const int64_t e = ls[k % 4].rows * ls[k % 4].cols;
    CK(cudaMalloc(&p, e * 2));
    FillAct<<<1024, 256>>>(static_cast<uint16_t*>(p), e, 100 + k);
    wl.push_back(p);
  }
  const double base_us = graph_time(
      [&] {
        for (int k = 0; k < lc * 4; ++k) RunPlan(lt, plans[k % 4], wl[k], b.x, b.y, st);
      },
      lc);
  for (void* p : wl) CK(cudaFree(p));
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    double qb = 0;
    std::vector<GpuLayout> lays(4);
    for (int j = 0; j < 4; ++j) {
      GpuLayout& l = lays[j];
      l.rows = ls[j].rows;
      l.cols = ls[j].cols;
      l.bits = bits;
      l.group_size = 128;
      l.row_tiles = (l.rows + 15) / 16;
      l.chunks = (l.cols + 255) / 256;
      qb += QBytes(l);
    }
    const int qc = CopiesFor(qb);
    std::vector<QSet> sets;
    for (int j = 0; j < 4; ++j) sets.push_back(MakeQSet(ls[j].rows, ls[j].cols, bits, 128, qc, 50 + j));
    constexpr int kVars = 6;
    double t[kVars];
    for (int v = 0; v < kVars; ++v) {
      QGemmOptions o;
      o.kernel = v == 0 ? QKernel::kLegacyGemv : v <= 2 ? QKernel::kStream : QKernel::kStreamSmem;
      o.pdl = v == 2 || v >= 4;
      o.ring = v == 5 ? 2 : 1;
      t[v] = graph_time(
          [&] {
            for (int k = 0; k < qc; ++k) {
              for (int j = 0; j < 4; ++j) {
                CKS(QGemm(sets[j].mats[k], b.x, 1, b.y, ActType::kBF16, b.ws, b.ws_bytes, st, o));
              }
            }
          },
          qc);
    }
    const double best = *std::min_element(t + 1, t + kVars);
    std::string row = "| " + std::to_string(bits) + "b g128 | " + Fmt("%.1f", base_us);
    for (int v = 0; v < kVars; ++v) row += " | " + Fmt("%.1f", t[v]);
    emit(row + " | " + Fmt("%.2fx", base_us / best) + " (" + Fmt("%.2f", qb / best / 1e6) + " TB/s) |\n");
    for (QSet& s : sets) CK(cudaFree(s.pool));
  }
  emit("\n");
}

// bits_mask: bit b set = sweep b-bit codes (--sweep-bits); the layer graph runs for all.
void Sweep(Lt& lt, Bufs& b, cudaStream_t st, const std::function<void(const std::string&)>& emit, int bits_mask) {
  const int64_t ns[] = {1, 4, 16};
  constexpr size_t kNs = sizeof(ns) / sizeof(ns[0]);
  emit(
      "## Sweep: us (TB/s of codes + scale/zero; speedup vs cuBLASLt bf16 in this run)\n\n"
      "| shape | bits | n | cuBLASLt us | kernel | us | TB/s | speedup |\n|---|---|---|---|---|---|---|---|\n");
  for (int si = 0; si < 4; ++si) {
    const Shape& sh = kShapes[si];
    const std::vector<double> base = CublasTimes(lt, sh, std::vector<int64_t>(std::begin(ns), std::end(ns)), b, st);
    for (int bits = 2; bits <= 8; ++bits) {
      if (!(bits_mask >> bits & 1)) continue;
      for (int64_t g : {int64_t{128}, int64_t{64}}) {
        if (g == 64 && bits != 4) continue;
        GpuLayout l;
        l.rows = sh.rows;
        l.cols = sh.cols;
        l.bits = bits;
        l.group_size = g;
        l.row_tiles = (sh.rows + 15) / 16;
        l.chunks = (sh.cols + 255) / 256;
        const double qb = QBytes(l);
        QSet s = MakeQSet(sh.rows, sh.cols, bits, g, CopiesFor(qb), 11 + bits);
        for (size_t ni = 0; ni < kNs; ++ni) {
          const int64_t n = ns[ni];
          for (const SweepVar& v : SweepVars(n)) {
            const double us = TimeQ(s, n, b, st, v.opt);
            emit("| " + std::string(sh.name) + " | " + std::to_string(bits) + "b g" + std::to_string(g) + " | " +
                 std::to_string(n) + " | " + Fmt("%.1f", base[ni]) + " | " + v.name + " | " + Fmt("%.1f", us) + " | " +
                 Fmt("%.2f", qb / us / 1e6) + " | " + Fmt("%.2fx", base[ni] / us) + " |\n");
          }
        }
        CK(cudaFree(s.pool));
      }
    }
  }
  emit("\n");
  LayerGraphs(lt, b, st, emit);
}

// --grids: grid matrices (per-group grid ids) beside uniform ones of the same shape and width
// and cuBLASLt bf16, in one run. bf16 activations: the uniform kAuto kernel, the uniform tiled
// kernel (the grid tiled kernel without the level lookup), the grid matrix under kAuto (the
// streaming grid variant with the hi + lo split for n <= 16, pair table for widths <= 3; tiled
// above), the grid streaming variant with the per-code lookup everywhere (grid_pair_bits 0) and
// the grid tiled kernel (kAuto's choice for bf16 grids before session 10). fp16 activations (the
// bf16 x bits read as fp16): uniform kAuto, grid kAuto (the streaming grid variant for n <= 16,
// pair table for widths <= 3), the grid streaming variant with the per-code lookup everywhere
// and with the pair table at 4 bits too (QGemmOptions::grid_pair_bits 0 / 4), and the grid tiled
// kernel. For n > 16 (kAuto runs grids tiled there) the per-code / pairs columns and the bf16
// grid tiled column are "-".
void GridBench(Lt& lt, Bufs& b, cudaStream_t st, const std::function<void(const std::string&)>& emit) {
  emit(
      "## Grid matrices vs uniform (Llama-3-8B shapes): us; ratio = grid auto / uniform auto of the same "
      "activation type; cuBLASLt = bf16 dense weights\n\n"
      "| shape | weights | n | cuBLASLt bf16 | bf16 uniform auto | bf16 uniform tiled | bf16 grid auto | "
      "bf16 grid stream per-code | bf16 grid tiled | bf16 ratio | "
      "f16 uniform auto | f16 grid auto | f16 grid stream per-code | f16 grid stream pairs (4b) | f16 grid tiled | "
      "f16 ratio |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const std::vector<int64_t> ns(std::begin(kBatches), std::end(kBatches));
  for (int si = 0; si < 4; ++si) {
    const Shape& sh = kShapes[si];
    const std::vector<double> lt_us = CublasTimes(lt, sh, ns, b, st);
    for (int bits = 2; bits <= 8; ++bits) {
      for (int64_t g : {int64_t{128}, int64_t{64}, int64_t{32}}) {
        if (g != 128 && bits != 4) continue;
        GpuLayout l;
        l.rows = sh.rows;
        l.cols = sh.cols;
        l.bits = bits;
        l.group_size = g;
        l.row_tiles = (sh.rows + 15) / 16;
        l.chunks = (sh.cols + 255) / 256;
        GpuLayout lg = l;
        lg.grids = true;
        QSet u = MakeQSet(sh.rows, sh.cols, bits, g, CopiesFor(QBytes(l)), 11 + bits);
        QSet gr = MakeQSet(sh.rows, sh.cols, bits, g, CopiesFor(QBytes(lg)), 11 + bits, /*grids=*/true);
        QGemmOptions tiled, per_code, pairs4;
        tiled.kernel = QKernel::kTiled;
        per_code.kernel = QKernel::kStream;
        per_code.grid_pair_bits = 0;
        pairs4.kernel = QKernel::kStream;
        pairs4.grid_pair_bits = 4;
        for (size_t i = 0; i < ns.size(); ++i) {
          const int64_t n = ns[i];
          const double ua = TimeQ(u, n, b, st), ut = TimeQ(u, n, b, st, tiled), ga = TimeQ(gr, n, b, st);
          const ActType f16 = ActType::kF16;
          const double ua16 = TimeQ(u, n, b, st, {}, f16), ga16 = TimeQ(gr, n, b, st, {}, f16);
          const double gt16 = TimeQ(gr, n, b, st, tiled, f16);
          const bool small = n <= kStreamAutoMaxN;
          const std::string pcb = small ? Fmt("%.1f", TimeQ(gr, n, b, st, per_code)) : "-";
          const std::string gtb = small ? Fmt("%.1f", TimeQ(gr, n, b, st, tiled)) : "-";
          const std::string pc = small ? Fmt("%.1f", TimeQ(gr, n, b, st, per_code, f16)) : "-";
          const std::string p4 = small && bits == 4 ? Fmt("%.1f", TimeQ(gr, n, b, st, pairs4, f16)) : "-";
          emit("| " + std::string(sh.name) + " | " + std::to_string(bits) + "b g" + std::to_string(g) + " | " +
               std::to_string(n) + " | " + Fmt("%.1f", lt_us[i]) + " | " + Fmt("%.1f", ua) + " | " + Fmt("%.1f", ut) +
               " | " + Fmt("%.1f", ga) + " | " + pcb + " | " + gtb + " | " + Fmt("%.2f", ga / ua) + " | " +
               Fmt("%.1f", ua16) + " | " + Fmt("%.1f", ga16) + " | " + pc + " | " + p4 + " | " + Fmt("%.1f", gt16) +
               " | " + Fmt("%.2f", ga16 / ua16) + " |\n");
        }
        CK(cudaFree(u.pool));
        CK(cudaFree(gr.pool));
      }
    }
  }
  emit(
      "\n## One Llama-3-8B layer (qkv, o, gate_up, down) at batch 1 in a CUDA graph, us/layer "
      "(grid = kAuto; bf16 grid tiled = the grid matrices forced onto the tiled kernel)\n\n"
      "| weights | bf16 uniform | bf16 grid | bf16 ratio | bf16 grid tiled | f16 uniform | f16 grid | f16 ratio |\n"
      "|---|---|---|---|---|---|---|---|\n");
  const Shape* ls = &kShapes[0];
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    double t[2][2];  // [act: bf16, f16][grids]
    double tiled_bf16 = 0;
    for (int run = 0; run < 5; ++run) {  // run 4: bf16 grid on the tiled kernel
      const int grids = run == 4 ? 1 : run & 1, ai = run == 4 ? 0 : run >> 1;
      const ActType act = ai == 0 ? ActType::kBF16 : ActType::kF16;
      QGemmOptions opt;
      if (run == 4) opt.kernel = QKernel::kTiled;
      double qb = 0;
      for (int j = 0; j < 4; ++j) {
        GpuLayout l;
        l.rows = ls[j].rows;
        l.cols = ls[j].cols;
        l.bits = bits;
        l.group_size = 128;
        l.row_tiles = (l.rows + 15) / 16;
        l.chunks = (l.cols + 255) / 256;
        l.grids = grids == 1;
        qb += QBytes(l);
      }
      const int qc = CopiesFor(qb);
      std::vector<QSet> sets;
      for (int j = 0; j < 4; ++j) sets.push_back(MakeQSet(ls[j].rows, ls[j].cols, bits, 128, qc, 50 + j, grids == 1));
      auto body = [&] {
        for (int k = 0; k < qc; ++k) {
          for (int j = 0; j < 4; ++j) CKS(QGemm(sets[j].mats[k], b.x, 1, b.y, act, b.ws, b.ws_bytes, st, opt));
        }
      };
      for (int w = 0; w < 2; ++w) body();
      CK(cudaStreamSynchronize(st));
      cudaGraph_t gph;
      cudaGraphExec_t ge;
      CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      body();
      CK(cudaStreamEndCapture(st, &gph));
      CK(cudaGraphInstantiate(&ge, gph, 0));
      const double us = TimeUs([&](int) { CK(cudaGraphLaunch(ge, st)); }, 10, st) / qc;
      (run == 4 ? tiled_bf16 : t[ai][grids]) = us;
      CK(cudaGraphExecDestroy(ge));
      CK(cudaGraphDestroy(gph));
      for (QSet& s : sets) CK(cudaFree(s.pool));
    }
    std::string row = "| " + std::to_string(bits) + "b g128 |";
    for (int ai = 0; ai < 2; ++ai) {
      row +=
          " " + Fmt("%.1f", t[ai][0]) + " | " + Fmt("%.1f", t[ai][1]) + " | " + Fmt("%.2f", t[ai][1] / t[ai][0]) + " |";
      if (ai == 0) row += " " + Fmt("%.1f", tiled_bf16) + " |";
    }
    emit(row + "\n");
  }
  emit("\n");
}

}  // namespace

template <int BITS>
void ProbeRow(int64_t rows, int64_t cols, Bufs& b, cudaStream_t st,
              const std::function<void(const std::string&)>& emit) {
  const int64_t rt = (rows + 15) / 16, chunks = (cols + 255) / 256;
  const double bytes = static_cast<double>(rt * chunks * BITS * 512);
  QSet s = MakeQSet(rows, cols, BITS, 128, CopiesFor(bytes), 11);
  const int nc = static_cast<int>(s.mats.size());
  uint32_t* out = nullptr;
  CK(cudaMalloc(&out, 16));
  auto codes = [&](int i) { return reinterpret_cast<const uint4*>(s.mats[i % nc].codes); };
  const unsigned blocks = static_cast<unsigned>((rt + 3) / 4);
  const int loop = std::max(20, nc);
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const double flat = TimeUs(
      [&](int i) { ProbeFlat<<<sms * 8, 256, 0, st>>>(codes(i), static_cast<int64_t>(bytes / 16), out); }, loop, st);
  const double d2 =
      TimeUs([&](int i) { ProbeTiles<BITS, 2><<<blocks, 128, 0, st>>>(codes(i), rt, chunks, out); }, loop, st);
  const double d4 =
      TimeUs([&](int i) { ProbeTiles<BITS, 4><<<blocks, 128, 0, st>>>(codes(i), rt, chunks, out); }, loop, st);
  const double q = TimeQ(s, 1, b, st);
  const double qb = bytes;  // codes only, like the probes
  emit("| " + std::to_string(rows) + "x" + std::to_string(cols) + " | " + std::to_string(BITS) + " | " +
       Fmt("%.1f", flat) + " (" + Fmt("%.2f", qb / flat / 1e6) + ") | " + Fmt("%.1f", d2) + " (" +
       Fmt("%.2f", qb / d2 / 1e6) + ") | " + Fmt("%.1f", d4) + " (" + Fmt("%.2f", qb / d4 / 1e6) + ") | " +
       Fmt("%.1f", q) + " (" + Fmt("%.2f", qb / q / 1e6) + ") |\n");
  CK(cudaFree(out));
  CK(cudaFree(s.pool));
}

void Probe(Bufs& b, cudaStream_t st, const std::function<void(const std::string&)>& emit) {
  emit(
      "## Read-only probes of the codes (us, TB/s of codes read): flat = coalesced grid-stride read of "
      "the same buffer; tiles Dk = one warp per 16-row tile walking its chunks, k chunks in flight; "
      "QGemm = the kAuto kernel at n = 1 (bf16)\n\n| shape | bits | flat | tiles D2 | tiles D4 | QGemm n=1 |\n"
      "|---|---|---|---|---|---|\n");
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{28672, 4096}, {4096, 14336}, {6144, 4096}}) {
    ProbeRow<2>(rows, cols, b, st, emit);
    ProbeRow<4>(rows, cols, b, st, emit);
    ProbeRow<8>(rows, cols, b, st, emit);
  }
}

int Main(int argc, char** argv) {
  const char* out_path = nullptr;
  bool quick = false, sweep = false, probe = false, grids = false;
  int bits_mask = 0x1FC;     // --sweep-bits: 2..8
  QGemmOptions profile_opt;  // --profile: kAuto unless --stream / --legacy come before it
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--sweep")) sweep = true;
    if (!std::strcmp(argv[i], "--probe")) probe = true;
    if (!std::strcmp(argv[i], "--grids")) grids = true;
    if (!std::strcmp(argv[i], "--stream")) profile_opt.kernel = QKernel::kStream;
    if (!std::strcmp(argv[i], "--legacy")) profile_opt.kernel = QKernel::kLegacyGemv;
    if (!std::strcmp(argv[i], "--smem")) profile_opt.kernel = QKernel::kStreamSmem;
    if (!std::strcmp(argv[i], "--ring") && i + 1 < argc) profile_opt.ring = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--splits") && i + 1 < argc) profile_opt.splits = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--sweep-bits") && i + 1 < argc) {  // e.g. 2,4,8
      bits_mask = 0;
      for (const char* c = argv[++i]; *c; ++c) {
        if (*c >= '2' && *c <= '8') bits_mask |= 1 << (*c - '0');
      }
    }
    if (!std::strcmp(argv[i], "--profile") && i + 4 < argc) {
      const int64_t rows = std::atoll(argv[i + 1]), cols = std::atoll(argv[i + 2]);
      const int bits = std::atoi(argv[i + 3]);
      const int64_t n = std::atoll(argv[i + 4]);
      Bufs b;
      CK(cudaMalloc(&b.x, n * cols * 2));
      CK(cudaMalloc(&b.y, n * rows * 2));
      FillAct<<<256, 256>>>(static_cast<uint16_t*>(b.x), n * cols, 7);
      b.ws_bytes = QGemmWorkspaceBytes(rows, n);
      CKS(AllocWorkspace(b.ws_bytes, &b.ws));
      QSet s = MakeQSet(rows, cols, bits, 128, 4, 5);
      for (int k = 0; k < 4; ++k) {
        CKS(QGemm(s.mats[k], b.x, n, b.y, ActType::kBF16, b.ws, b.ws_bytes, nullptr, profile_opt));
      }
      CK(cudaDeviceSynchronize());
      return 0;
    }
  }
  std::string md;
  auto emit = [&](const std::string& s) {
    std::fputs(s.c_str(), stdout);
    std::fflush(stdout);
    md += s;
  };
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  emit("# slq_kernel_bench\n\ndevice: " + std::string(prop.name) + ", " + std::to_string(prop.multiProcessorCount) +
       " SMs, L2 " + std::to_string(prop.l2CacheSize >> 20) + " MiB\n\n");
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  Lt lt;
  CKB(cublasLtCreate(&lt.h));
  CK(cudaMalloc(&lt.ws, lt.ws_bytes));
  Bufs b;
  CK(cudaMalloc(&b.x, 128 * 14336 * 2));
  CK(cudaMalloc(&b.y, 128 * 28672 * 2));
  FillAct<<<256, 256>>>(static_cast<uint16_t*>(b.x), 128 * 14336, 7);
  b.ws_bytes = QGemmWorkspaceBytes(28672, 128);
  CKS(AllocWorkspace(b.ws_bytes, &b.ws));

  // Device-to-device copy ceiling (read + write).
  {
    void *s1, *s2;
    const size_t bytes = 1ull << 30;
    CK(cudaMalloc(&s1, bytes));
    CK(cudaMalloc(&s2, bytes));
    const double us = TimeUs([&](int) { CK(cudaMemcpyAsync(s2, s1, bytes, cudaMemcpyDeviceToDevice, st)); }, 5, st);
    emit("device-to-device copy: " + Fmt("%.2f", 2.0 * bytes / us / 1e6) + " TB/s (read + write)\n\n");
    cudaFree(s1);
    cudaFree(s2);
  }

  if (sweep || probe || grids) {
    if (probe) Probe(b, st, emit);
    if (sweep) Sweep(lt, b, st, emit, bits_mask);
    if (grids) GridBench(lt, b, st, emit);
    if (out_path) {
      FILE* f = std::fopen(out_path, "w");
      if (f) {
        std::fputs(md.c_str(), f);
        std::fclose(f);
      }
    }
    return 0;
  }
  const int nb = quick ? 3 : 8;
  std::string bw_table =
      "## Batch 1: effective bandwidth (packed weights + scales/zeros read / time), TB/s\n\n"
      "| model | linear | cuBLASLt bf16 |";
  for (int bits = 2; bits <= 8; ++bits) bw_table += " " + std::to_string(bits) + "b g128 |";
  bw_table += " 4b g64 | 4b g32 |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";

  for (const Shape& sh : kShapes) {
    emit("## " + std::string(sh.model) + " " + sh.name + " [" + std::to_string(sh.rows) + " x " +
         std::to_string(sh.cols) + "]\n\ntime in us (speedup vs cuBLASLt bf16, same run)\n\n| weights |");
    for (int i = 0; i < nb; ++i) emit(" n=" + std::to_string(kBatches[i]) + " |");
    emit("\n|---|");
    for (int i = 0; i < nb; ++i) emit("---|");
    emit("\n");
    // cuBLASLt bf16 baseline.
    const double wbytes = sh.rows * sh.cols * 2.0;
    const int wc = CopiesFor(wbytes);
    void* wpool;
    CK(cudaMalloc(&wpool, static_cast<size_t>(wbytes) * wc));
    FillAct<<<1024, 256>>>(static_cast<uint16_t*>(wpool), static_cast<int64_t>(wbytes / 2) * wc, 3);
    std::vector<double> base(nb);
    emit("| cuBLASLt bf16 |");
    for (int i = 0; i < nb; ++i) {
      LtPlan p = MakePlan(lt, sh.rows, sh.cols, kBatches[i]);
      base[i] = TimeUs(
          [&](int k) {
            RunPlan(lt, p, static_cast<char*>(wpool) + static_cast<size_t>(wbytes) * (k % wc), b.x, b.y, st);
          },
          std::max(20, wc), st);
      emit(" " + Fmt("%.1f", base[i]) + " |");
    }
    emit("\n");
    CK(cudaFree(wpool));
    bw_table += "| " + std::string(sh.model) + " | " + sh.name + " | " + Fmt("%.2f", wbytes / base[0] / 1e6) + " |";
    struct Var {
      int bits;
      int64_t g;
      bool tiled;  // force the tiled kernel (no small-batch path)
    };
    std::vector<Var> vars;
    for (int bits = 2; bits <= 8; ++bits) vars.push_back({bits, 128, false});
    vars.push_back({4, 64, false});
    vars.push_back({4, 32, false});
    vars.push_back({4, 128, true});
    for (const Var& v : vars) {
      GpuLayout l;
      l.rows = sh.rows;
      l.cols = sh.cols;
      l.bits = v.bits;
      l.group_size = v.g;
      l.row_tiles = (sh.rows + 15) / 16;
      l.chunks = (sh.cols + 255) / 256;
      const double qb = QBytes(l);
      QSet s = MakeQSet(sh.rows, sh.cols, v.bits, v.g, CopiesFor(qb), 11 + v.bits);
      emit("| " + std::to_string(v.bits) + "b g" + std::to_string(v.g) + (v.tiled ? " tiled" : "") + " |");
      QGemmOptions opt;
      opt.allow_gemv = !v.tiled;
      for (int i = 0; i < nb; ++i) {
        const double us = TimeQ(s, kBatches[i], b, st, opt);
        emit(" " + Fmt("%.1f", us) + " (" + Fmt("%.2fx", base[i] / us) + ") |");
        if (i == 0 && !v.tiled) bw_table += " " + Fmt("%.2f", qb / us / 1e6) + " |";
      }
      emit("\n");
      CK(cudaFree(s.pool));
    }
    bw_table += "\n";
    emit("\n");
  }
  emit(bw_table + "\n");

  // One layer's four linears at batch 1 in a CUDA graph.
  emit(
      "## One layer (qkv, o, gate_up, down) at batch 1 in a CUDA graph\n\n"
      "| model | weights | avg bits | us/layer | TB/s | cuBLASLt bf16 us/layer | speedup |\n"
      "|---|---|---|---|---|---|---|\n");
  for (int m = 0; m < 2; ++m) {
    const Shape* ls = &kShapes[m * 4];
    // cuBLASLt graph.
    double lbytes = 0;
    for (int j = 0; j < 4; ++j) lbytes += ls[j].rows * ls[j].cols * 2.0;
    const int lc = CopiesFor(lbytes);
    std::vector<void*> wl;
    std::vector<LtPlan> plans;
    for (int j = 0; j < 4; ++j) plans.push_back(MakePlan(lt, ls[j].rows, ls[j].cols, 1));
    for (int k = 0; k < lc * 4; ++k) {
      void* p;
      const int64_t e = ls[k % 4].rows * ls[k % 4].cols;
      CK(cudaMalloc(&p, e * 2));
      FillAct<<<1024, 256>>>(static_cast<uint16_t*>(p), e, 100 + k);
      wl.push_back(p);
    }
    auto graph_time = [&](auto&& body, int layers) {
      for (int w = 0; w < 2; ++w) body();  // warm-up (attributes, handles)
      CK(cudaStreamSynchronize(st));
      cudaGraph_t g;
      cudaGraphExec_t ge;
      CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      body();
      CK(cudaStreamEndCapture(st, &g));
      CK(cudaGraphInstantiate(&ge, g, 0));
      const double us = TimeUs([&](int) { CK(cudaGraphLaunch(ge, st)); }, 10, st) / layers;
      CK(cudaGraphExecDestroy(ge));
      CK(cudaGraphDestroy(g));
      return us;
    };
    const double base_us = graph_time(
        [&] {
          for (int k = 0; k < lc * 4; ++k) RunPlan(lt, plans[k % 4], wl[k], b.x, b.y, st);
        },
        lc);
    for (void* p : wl) CK(cudaFree(p));
    struct Mix {
      std::string name;
      int bits[4];
    };
    std::vector<Mix> mixes;
    for (int bits = 2; bits <= 8; ++bits) mixes.push_back({std::to_string(bits) + "b", {bits, bits, bits, bits}});
    mixes.push_back({"mix 6/5/5/6", {6, 5, 5, 6}});
    mixes.push_back({"mix 6/6/5/6", {6, 6, 5, 6}});
    for (const Mix& mx : mixes) {
      double qb = 0, params = 0, pbits = 0;
      for (int j = 0; j < 4; ++j) {
        GpuLayout l;
        l.rows = ls[j].rows;
        l.cols = ls[j].cols;
        l.bits = mx.bits[j];
        l.group_size = 128;
        l.row_tiles = (l.rows + 15) / 16;
        l.chunks = (l.cols + 255) / 256;
        qb += QBytes(l);
        params += double(l.rows) * l.cols;
        pbits += double(l.rows) * l.cols * mx.bits[j];
      }
      const int qc = CopiesFor(qb);
      std::vector<QSet> sets;
      for (int j = 0; j < 4; ++j) sets.push_back(MakeQSet(ls[j].rows, ls[j].cols, mx.bits[j], 128, qc, 50 + j));
      const double us = graph_time(
          [&] {
            for (int k = 0; k < qc; ++k) {
              for (int j = 0; j < 4; ++j) {
                CKS(QGemm(sets[j].mats[k], b.x, 1, b.y, ActType::kBF16, b.ws, b.ws_bytes, st));
              }
            }
          },
          qc);
      emit("| " + std::string(ls[0].model) + " | " + mx.name + " g128 | " + Fmt("%.2f", pbits / params) + " | " +
           Fmt("%.1f", us) + " | " + Fmt("%.2f", qb / us / 1e6) + " | " + Fmt("%.1f", base_us) + " | " +
           Fmt("%.2fx", base_us / us) + " |\n");
      for (QSet& s : sets) CK(cudaFree(s.pool));
    }
  }
  emit("\n");
  if (out_path) {
    FILE* f = std::fopen(out_path, "w");
    if (f) {
      std::fputs(md.c_str(), f);
      std::fclose(f);
    }
  }
  return 0;
}

}  // namespace slq::kernels

int main(int argc, char** argv) { return slq::kernels::Main(argc, argv); }
