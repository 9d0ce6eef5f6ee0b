// Kernels of server/gpu/gpu_ops.h except PagedAttention (attention.cu). One template per
// activation type (fp16 / bf16); fp32 math.
#include "server/gpu/gpu_ops.h"

#include "server/gpu/device_util.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>

namespace slq::gpu {
namespace {

using namespace dev;  // NOLINT: the shared device helpers (device_util.cuh)

__global__ void EmbedKernel(const float* table, const int32_t* tokens, int64_t hidden, float* x) {
  PdlWaitThenRelease();
  const int64_t t = blockIdx.x;
  const float* src = table + static_cast<int64_t>(tokens[t]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) x[t * hidden + i] = src[i];
}

__global__ void RopeTableKernel(const float* inv_freq, const int32_t* pos, int64_t T, int64_t half, float* cs,
                                float* sn) {
  PdlWaitThenRelease();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * half) return;
  const int64_t t = idx / half, i = idx % half;
  const float angle = static_cast<float>(pos[t]) * inv_freq[i];
  cs[idx] = static_cast<float>(cos(static_cast<double>(angle)));
  sn[idx] = static_cast<float>(sin(static_cast<double>(angle)));
}

// One block per row; each thread keeps its kPer elements (stride blockDim.x) and their norm
// weights in registers, so the row is read once and the weights load under the reduction.
template <typename T, int kPer>
__global__ void AddRmsNormKernel(float* x, const T* delta, const int32_t* rows, int64_t hidden, const float* w,
                                 float eps, T* out) {
  PdlWaitThenRelease();
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const int64_t t = rows ? rows[r] : r;
  float* xr = x + t * hidden;
  const T* dr = delta ? delta + t * hidden : nullptr;
  float v[kPer], wv[kPer];
  float ss = 0;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    v[k] = 0;
    wv[k] = 0;
    if (i < hidden) {
      v[k] = xr[i];
      if (dr) v[k] += ToF(dr[i]);
      wv[k] = w[i];
    }
    ss += v[k] * v[k];
  }
  ss = BlockSum(ss, red);
  const float var = ss / static_cast<float>(hidden);
  const float inv = 1.0f / sqrtf(var + eps);
  T* o = out + r * hidden;
#pragma unroll
  for (int k = 0; k < kPer; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    if (i < hidden) {
      if (!rows) xr[i] = v[k];
      o[i] = FromF<T>(wv[k] * (v[k] * inv));
    }
  }
}

// Rows longer than 16 x 1024: two passes over global memory.
template <typename T>
__global__ void AddRmsNormLoopKernel(float* x, const T* delta, const int32_t* rows, int64_t hidden, const float* w,
                                     float eps, T* out) {
  PdlWaitThenRelease();
  __shared__ double red[32];
  const int64_t r = blockIdx.x;
  const int64_t t = rows ? rows[r] : r;
  float* xr = x + t * hidden;
  const T* dr = delta ? delta + t * hidden : nullptr;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float v = xr[i];
    if (dr) v += ToF(dr[i]);
    if (!rows) xr[i] = v;
    ss += static_cast<double>(v) * v;
  }
  ss = BlockSum(ss, red);
  const float var = static_cast<float>(ss / static_cast<double>(hidden));
  const float inv = 1.0f / sqrtf(var + eps);
  T* o = out + r * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float v = xr[i];
    if (dr && rows) v += ToF(dr[i]);  // rows mode leaves x as it was
    o[i] = FromF<T>(w[i] * (v * inv));
  }
}

template <typename T>
void LaunchAddRmsNorm(float* x, const T* delta, const int32_t* rows, int64_t n, int64_t hidden, const float* w,
                      float eps, T* out, cudaStream_t s, bool pdl) {
  const unsigned grid = static_cast<unsigned>(n);
  const int th = static_cast<int>(hidden >= 1024 ? 1024 : ((hidden + 31) / 32) * 32);
  const int64_t per = (hidden + th - 1) / th;
  if (per <= 1) {
    Launch(pdl, AddRmsNormKernel<T, 1>, grid, th, s, x, delta, rows, hidden, w, eps, out);
  } else if (per <= 2) {
    Launch(pdl, AddRmsNormKernel<T, 2>, grid, th, s, x, delta, rows, hidden, w, eps, out);
  } else if (per <= 4) {
    Launch(pdl, AddRmsNormKernel<T, 4>, grid, th, s, x, delta, rows, hidden, w, eps, out);
  } else if (per <= 8) {
    Launch(pdl, AddRmsNormKernel<T, 8>, grid, th, s, x, delta, rows, hidden, w, eps, out);
  } else if (per <= 16) {
    Launch(pdl, AddRmsNormKernel<T, 16>, grid, th, s, x, delta, rows, hidden, w, eps, out);
  } else {
    Launch(pdl, AddRmsNormLoopKernel<T>, grid, 1024, s, x, delta, rows, hidden, w, eps, out);
  }
}

// grid (T, ceil((nh + nkv) / 4)), block 128: one warp per q or kv head.
template <typename T>
__global__ void QkvPostKernel(QkvPostArgs a, TokenMeta meta, KvView kv) {
  PdlWaitThenRelease();
  __shared__ float buf[4][kMaxHeadDim];
  const int64_t t = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t hi = static_cast<int64_t>(blockIdx.y) * 4 + warp;
  if (hi >= a.num_heads + a.num_kv_heads) return;
  const bool isq = hi < a.num_heads;
  const int64_t head = isq ? hi : hi - a.num_heads, hd = a.head_dim, half = hd / 2;
  // Metadata first: the cache slot's block id is two dependent loads away.
  const int64_t p = meta.pos[t];
  const int32_t block = isq ? 0 : meta.bt[meta.bt_start[t] + p / kv.block_size];
  const T* src =
      isq ? static_cast<const T*>(a.q) + t * a.ldq + head * hd : static_cast<const T*>(a.k) + t * a.ldkv + head * hd;
  const float* bias = isq ? a.q_bias : a.k_bias;
  const float* nw = isq ? a.q_norm : a.k_norm;
  float* sb = buf[warp];
  float ss = 0;
  for (int64_t d = lane; d < hd; d += 32) {
    float v = ToF(src[d]);
    if (bias) v += bias[head * hd + d];
    sb[d] = v;
    ss += v * v;
  }
  if (nw) {
    ss = WarpSum(ss);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + static_cast<float>(a.eps));
    for (int64_t d = lane; d < hd; d += 32) sb[d] = nw[d] * (sb[d] * inv);
  }
  __syncwarp();
  const float* cs = a.cos + t * half;
  const float* sn = a.sin + t * half;
  const int64_t row = (p % kv.block_size) * kv.kv_dim + head * hd;
  T* kdst = static_cast<T*>(kv.base) + SlabOffset(kv, block, a.layer, 0) + row;
  for (int64_t d = lane; d < hd; d += 32) {
    float r;
    if (!a.interleaved) {
      const int64_t i = d < half ? d : d - half;
      const float x1 = sb[i], x2 = sb[i + half];
      r = d < half ? x1 * cs[i] + (-x2) * sn[i] : x2 * cs[i] + x1 * sn[i];
    } else {
      const int64_t i = d / 2;
      const float x0 = sb[2 * i], x1 = sb[2 * i + 1];
      r = (d % 2 == 0) ? x0 * cs[i] - x1 * sn[i] : x0 * sn[i] + x1 * cs[i];
    }
    if (isq) {
      a.q_out[t * a.num_heads * hd + head * hd + d] = r;
    } else {
      kdst[d] = FromF<T>(r);
    }
  }
  if (!isq) {
    const T* vs = static_cast<const T*>(a.v) + t * a.ldkv + head * hd;
    T* vdst = static_cast<T*>(kv.base) + SlabOffset(kv, block, a.layer, 1) + row;
    for (int64_t d = lane; d < hd; d += 32) {
      float v = ToF(vs[d]);
      if (a.v_bias) v += a.v_bias[head * hd + d];
      vdst[d] = FromF<T>(v);
    }
  }
}

// One block: every thread reads the step counter before thread 0 advances it.
__global__ void GreedyAdvanceKernel(int32_t* tokens, int32_t* pos, const int32_t* ids, int64_t B, int32_t* out,
                                    int32_t* step) {
  const int64_t st = *step;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) {
    const int32_t id = ids[b];
    tokens[b] = id;
    pos[b] += 1;
    out[st * B + b] = id;
  }
  __syncthreads();
  if (threadIdx.x == 0) *step = static_cast<int32_t>(st + 1);
}

__device__ __forceinline__ uint64_t GlobalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void SpinKernel(int64_t ns) {
  const uint64_t start = GlobalTimerNs();
  while (GlobalTimerNs() - start < static_cast<uint64_t>(ns)) {
  }
}

template <typename T>
__global__ void SwiGluKernel(const T* g, const T* u, int64_t ld, int64_t T_, int64_t n, T* out) {
  PdlWaitThenRelease();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T_ * n) return;
  const int64_t t = idx / n, i = idx % n;
  const float x = ToF(g[t * ld + i]);
  out[idx] = FromF<T>((x / (1.0f + expf(-x))) * ToF(u[t * ld + i]));
}

template <typename T>
__global__ void ToFloatKernel(const T* in, int64_t n, float* out) {
  PdlWaitThenRelease();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx < n) out[idx] = ToF(in[idx]);
}

// Running (max, its lowest index, sum of exp(v - max)) of a set of logits.
struct ArgmaxAcc {
  float best;
  int32_t idx;
  float sum;
};

__device__ __forceinline__ ArgmaxAcc MergeArgmax(ArgmaxAcc a, ArgmaxAcc b) {
  const float m = fmaxf(a.best, b.best);
  ArgmaxAcc r;
  r.best = m;
  r.idx = (a.best > b.best || (a.best == b.best && a.idx < b.idx)) ? a.idx : b.idx;
  r.sum = a.sum * expf(a.best - m) + b.sum * expf(b.best - m);
  return r;
}

__device__ ArgmaxAcc BlockMergeArgmax(ArgmaxAcc v, ArgmaxAcc* red) {
  for (int o = 16; o > 0; o >>= 1) {
    ArgmaxAcc u;
    u.best = __shfl_xor_sync(0xffffffffu, v.best, o);
    u.idx = __shfl_xor_sync(0xffffffffu, v.idx, o);
    u.sum = __shfl_xor_sync(0xffffffffu, v.sum, o);
    v = MergeArgmax(v, u);
  }
  const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();
  if (l == 0) red[w] = v;
  __syncthreads();
  v = l < nw ? red[l] : ArgmaxAcc{-FLT_MAX, 0x7fffffff, 0.0f};
  for (int o = 16; o > 0; o >>= 1) {
    ArgmaxAcc u;
    u.best = __shfl_xor_sync(0xffffffffu, v.best, o);
    u.idx = __shfl_xor_sync(0xffffffffu, v.idx, o);
    u.sum = __shfl_xor_sync(0xffffffffu, v.sum, o);
    v = MergeArgmax(v, u);
  }
  return v;
}

constexpr int kArgmaxThreads = 256;

// grid (R, parts): block p of row r reads one pass over its slice of the row, keeping a running
// max / index / rescaled sum of exponentials per thread; with parts > 1 the blocks' results go
// to `partial` [R, parts] and the last block of the row to finish merges them.
__global__ void __launch_bounds__(kArgmaxThreads)
    ArgmaxLogprobKernel(const float* logits, int64_t vocab, int32_t* ids, float* lp, ArgmaxAcc* partial,
                        int32_t* counters) {
  PdlWaitThenRelease();
  __shared__ ArgmaxAcc red[32];
  __shared__ bool is_last;
  const int64_t r = blockIdx.x, parts = gridDim.y, p = blockIdx.y;
  const int64_t per = (vocab + parts - 1) / parts;
  const int64_t b = p * per, e = min(vocab, b + per);
  const float* row = logits + r * vocab;
  ArgmaxAcc acc{-FLT_MAX, 0x7fffffff, 0.0f};
  for (int64_t j = b + threadIdx.x; j < e; j += kArgmaxThreads) {
    const float v = row[j];
    if (v > acc.best) {
      acc.sum = acc.sum * expf(acc.best - v) + 1.0f;
      acc.best = v;
      acc.idx = static_cast<int32_t>(j);
    } else {
      acc.sum += expf(v - acc.best);
    }
  }
  acc = BlockMergeArgmax(acc, red);
  if (parts > 1) {
    if (threadIdx.x == 0) {
      partial[r * parts + p] = acc;
      __threadfence();
      const int32_t prev = atomicAdd(counters + r, 1);
      is_last = prev == parts - 1;
      if (is_last) counters[r] = 0;
    }
    __syncthreads();
    if (!is_last) return;
    __threadfence();
    acc = ArgmaxAcc{-FLT_MAX, 0x7fffffff, 0.0f};
    for (int64_t q = threadIdx.x; q < parts; q += kArgmaxThreads) {
      const ArgmaxAcc* src = partial + r * parts + q;
      ArgmaxAcc o;
      o.best = __ldcg(&src->best);
      o.idx = __ldcg(&src->idx);
      o.sum = __ldcg(&src->sum);
      acc = MergeArgmax(acc, o);
    }
    acc = BlockMergeArgmax(acc, red);
  }
  if (threadIdx.x == 0) {
    ids[r] = acc.idx;
    lp[r] = -logf(acc.sum);  // row[idx] - max - log(sum), row[idx] == max
  }
}

__device__ __forceinline__ uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ float Unit(uint64_t seed, int64_t i) {
  return static_cast<float>(Mix(seed * 0x100000001b3ull + static_cast<uint64_t>(i)) >> 40) * (1.0f / 16777216.0f);
}

template <typename T>
__global__ void FillActKernel(T* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p[i] = FromF<T>(lo + (hi - lo) * Unit(seed, i));
  }
}
__global__ void FillF32Kernel(float* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p[i] = lo + (hi - lo) * Unit(seed, i);
  }
}
__global__ void FillU32Kernel(uint32_t* p, int64_t n, uint64_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p[i] = static_cast<uint32_t>(Mix(seed * 0x100000001b3ull + static_cast<uint64_t>(i)));
  }
}
__global__ void FillScaleZeroKernel(uint16_t* sz, int64_t halves, uint64_t seed, int bits, float amp) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < halves;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float qmax = static_cast<float>((1 << bits) - 1);
    const float s = amp * (0.5f + Unit(seed, i / 2)) * 2.0f / qmax;
    const float v = (i % 2 == 0) ? s : -s * qmax * 0.5f;
    sz[i] = __half_as_ushort(__float2half_rn(v));
  }
}

inline unsigned Blocks(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }
inline unsigned FillBlocks(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 4096 ? (b < 1 ? 1 : b) : 4096);
}

}  // namespace

void EmbedRows(const float* table, const int32_t* tokens, int64_t T, int64_t hidden, float* x, void* stream, bool pdl) {
  if (T <= 0) return;
  Launch(pdl, EmbedKernel, static_cast<unsigned>(T), 256, S(stream), table, tokens, hidden, x);
}

void RopeTable(const float* inv_freq, const int32_t* pos, int64_t T, int64_t half, float* cos, float* sin, void* stream,
               bool pdl) {
  if (T * half <= 0) return;
  Launch(pdl, RopeTableKernel, Blocks(T * half, 256), 256, S(stream), inv_freq, pos, T, half, cos, sin);
}

void AddRmsNorm(float* x, const void* delta, const int32_t* rows, int64_t n, int64_t hidden, const float* w, double eps,
                void* out, ActType act, void* stream, bool pdl) {
  if (n <= 0) return;
  const float e = static_cast<float>(eps);
  if (act == ActType::kF16) {
    LaunchAddRmsNorm<__half>(x, static_cast<const __half*>(delta), rows, n, hidden, w, e, static_cast<__half*>(out),
                             S(stream), pdl);
  } else {
    LaunchAddRmsNorm<__nv_bfloat16>(x, static_cast<const __nv_bfloat16*>(delta), rows, n, hidden, w, e,
                                    static_cast<__nv_bfloat16*>(out), S(stream), pdl);
  }
}

void QkvPost(const QkvPostArgs& a, const TokenMeta& meta, const KvView& kv, ActType act, void* stream, bool pdl) {
  if (a.T <= 0) return;
  const dim3 grid(static_cast<unsigned>(a.T), static_cast<unsigned>((a.num_heads + a.num_kv_heads + 3) / 4));
  if (act == ActType::kF16) {
    Launch(pdl, QkvPostKernel<__half>, grid, 128, S(stream), a, meta, kv);
  } else {
    Launch(pdl, QkvPostKernel<__nv_bfloat16>, grid, 128, S(stream), a, meta, kv);
  }
}

void GreedyAdvance(int32_t* tokens, int32_t* pos, const int32_t* ids, int64_t B, int32_t* out, int32_t* step,
                   void* stream) {
  if (B > 0) GreedyAdvanceKernel<<<1, 256, 0, S(stream)>>>(tokens, pos, ids, B, out, step);
}

void SpinDelay(int64_t ns, void* stream) {
  if (ns > 0) SpinKernel<<<1, 1, 0, S(stream)>>>(ns);
}

void SwiGlu(const void* g, const void* u, int64_t ld, int64_t T, int64_t n, void* out, ActType act, void* stream,
            bool pdl) {
  if (T * n <= 0) return;
  if (act == ActType::kF16) {
    Launch(pdl, SwiGluKernel<__half>, Blocks(T * n, 256), 256, S(stream), static_cast<const __half*>(g),
           static_cast<const __half*>(u), ld, T, n, static_cast<__half*>(out));
  } else {
    Launch(pdl, SwiGluKernel<__nv_bfloat16>, Blocks(T * n, 256), 256, S(stream), static_cast<const __nv_bfloat16*>(g),
           static_cast<const __nv_bfloat16*>(u), ld, T, n, static_cast<__nv_bfloat16*>(out));
  }
}

void ActToFloat(const void* in, int64_t n, float* out, ActType act, void* stream, bool pdl) {
  if (n <= 0) return;
  if (act == ActType::kF16) {
    Launch(pdl, ToFloatKernel<__half>, Blocks(n, 256), 256, S(stream), static_cast<const __half*>(in), n, out);
  } else {
    Launch(pdl, ToFloatKernel<__nv_bfloat16>, Blocks(n, 256), 256, S(stream), static_cast<const __nv_bfloat16*>(in), n,
           out);
  }
}

int64_t ArgmaxParts(int64_t R, int64_t vocab) {
  const int64_t by_vocab = (vocab + kArgmaxMinPerPart - 1) / kArgmaxMinPerPart;
  const int64_t by_rows = (2 * static_cast<int64_t>(SmCount()) + R - 1) / std::max<int64_t>(R, 1);
  return std::max<int64_t>(1, std::min({kArgmaxMaxParts, by_vocab, by_rows}));
}

void ArgmaxLogprob(const float* logits, int64_t R, int64_t vocab, int32_t* ids, float* logprob, float* partial,
                   int32_t* counters, void* stream, bool pdl) {
  if (R <= 0) return;
  const int64_t parts = partial && counters ? ArgmaxParts(R, vocab) : 1;
  const dim3 grid(static_cast<unsigned>(R), static_cast<unsigned>(parts));
  Launch(pdl, ArgmaxLogprobKernel, grid, kArgmaxThreads, S(stream), logits, vocab, ids, logprob,
         reinterpret_cast<ArgmaxAcc*>(partial), counters);
}

void FillUniformAct(void* p, int64_t n, uint64_t seed, float lo, float hi, ActType act, void* stream) {
  if (n <= 0) return;
  if (act == ActType::kF16) {
    FillActKernel<__half><<<FillBlocks(n), 256, 0, S(stream)>>>(static_cast<__half*>(p), n, seed, lo, hi);
  } else {
    FillActKernel<__nv_bfloat16><<<FillBlocks(n), 256, 0, S(stream)>>>(static_cast<__nv_bfloat16*>(p), n, seed, lo, hi);
  }
}
void FillUniformF32(float* p, int64_t n, uint64_t seed, float lo, float hi, void* stream) {
  if (n > 0) FillF32Kernel<<<FillBlocks(n), 256, 0, S(stream)>>>(p, n, seed, lo, hi);
}
void FillRandomU32(uint32_t* p, int64_t n, uint64_t seed, void* stream) {
  if (n > 0) FillU32Kernel<<<FillBlocks(n), 256, 0, S(stream)>>>(p, n, seed);
}
void FillScaleZero(uint16_t* sz, int64_t halves, uint64_t seed, int bits, float amp, void* stream) {
  if (halves > 0) FillScaleZeroKernel<<<FillBlocks(halves), 256, 0, S(stream)>>>(sz, halves, seed, bits, amp);
}

}  // namespace slq::gpu
