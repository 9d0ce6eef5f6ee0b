// PagedAttention of server/gpu/gpu_ops.h: the flash-decoding kernel (split context, the query
// heads of one kv head sharing its K/V loads) and the reference kernel (one block per token and
// query head), with the split-count heuristic. One template per activation type; fp32 math.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "server/gpu/device_util.cuh"
#include "server/gpu/gpu_ops.h"

namespace slq::gpu {
namespace {

using namespace dev;  // NOLINT: the shared device helpers (device_util.cuh)

constexpr int kAttnThreads = 128;
constexpr int kAttnTile = 256;  // keys per tile

// grid (T, num_heads), block 128. Online softmax over tiles of 256 keys: the tile's block ids
// are staged in shared memory, scores are computed by one thread per key (16-byte loads of K
// when kVec), then V is accumulated by groups of head_dim / VD threads (VD = 8 dims per
// thread with 16-byte loads when kVec, else 2), one group per key in turn, and the groups'
// partial sums are merged through shared memory at the end.
template <typename T, bool kVec>
__global__ void __launch_bounds__(kAttnThreads) AttentionKernel(AttentionArgs a, TokenMeta meta, KvView kv) {
  PdlWaitThenRelease();
  constexpr int VD = kVec ? 8 : 2;
  __shared__ float qs[kMaxHeadDim];
  __shared__ float p[kAttnTile];
  __shared__ int32_t sblk[kAttnTile + 1];
  __shared__ float merge[kAttnThreads * VD];
  __shared__ float red[32];
  const int64_t t = blockIdx.x, h = blockIdx.y, hd = a.head_dim, bs = kv.block_size;
  const int64_t kvh = h / (a.num_heads / a.num_kv_heads);
  const int tid = threadIdx.x;
  const int64_t pos = meta.pos[t];
  const int64_t first = a.sliding_window > 0 ? max(int64_t{0}, pos - a.sliding_window + 1) : 0;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  for (int64_t d = tid; d < hd; d += kAttnThreads) qs[d] = a.q[(t * a.num_heads + h) * hd + d];
  const int32_t* table = meta.bt + meta.bt_start[t];
  const T* base = static_cast<const T*>(kv.base);
  const int tpg = static_cast<int>(hd / VD);  // threads per V group
  const int groups = kAttnThreads / tpg;
  const bool vthread = tid < groups * tpg;
  const int g = tid / tpg;
  const int64_t dv = static_cast<int64_t>(tid % tpg) * VD;
  const int64_t kslab = SlabOffset(kv, 0, a.layer, 0), vslab = SlabOffset(kv, 0, a.layer, 1);
  const int64_t block_stride = kv.num_layers * 2 * bs * kv.kv_dim;
  float acc[VD];
#pragma unroll
  for (int u = 0; u < VD; ++u) acc[u] = 0;
  float m = -FLT_MAX, l = 0;
  for (int64_t tile = first; tile <= pos; tile += kAttnTile) {
    const int cnt = static_cast<int>(min(static_cast<int64_t>(kAttnTile), pos + 1 - tile));
    const int64_t b0 = tile / bs;
    const int nb = static_cast<int>((tile + cnt - 1) / bs - b0 + 1);
    for (int i = tid; i < nb; i += kAttnThreads) sblk[i] = table[b0 + i];
    __syncthreads();
    for (int j = tid; j < cnt; j += kAttnThreads) {
      const int64_t jj = tile + j;
      const T* krow = base + sblk[jj / bs - b0] * block_stride + kslab + (jj % bs) * kv.kv_dim + kvh * hd;
      float dot = 0;
      if constexpr (kVec) {
        for (int64_t d = 0; d < hd; d += 8) {
          const uint4 raw = *reinterpret_cast<const uint4*>(krow + d);
          const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
          for (int u = 0; u < 8; ++u) dot += qs[d + u] * ToF(e[u]);
        }
      } else {
        for (int64_t d = 0; d < hd; ++d) dot += qs[d] * ToF(krow[d]);
      }
      p[j] = dot * scale;
    }
    __syncthreads();
    float mx = -FLT_MAX;
    for (int j = tid; j < cnt; j += kAttnThreads) mx = fmaxf(mx, p[j]);
    mx = BlockMax(mx, red);
    const float m_new = fmaxf(m, mx);
    const float corr = expf(m - m_new);
    float s = 0;
    for (int j = tid; j < cnt; j += kAttnThreads) {
      const float e = expf(p[j] - m_new);
      p[j] = e;
      s += e;
    }
    s = BlockSum(s, red);  // its barriers also publish p[]
    l = l * corr + s;
#pragma unroll
    for (int u = 0; u < VD; ++u) acc[u] *= corr;
    m = m_new;
    if (vthread) {
#pragma unroll 4
      for (int j = g; j < cnt; j += groups) {
        const int64_t jj = tile + j;
        const T* vrow = base + sblk[jj / bs - b0] * block_stride + vslab + (jj % bs) * kv.kv_dim + kvh * hd + dv;
        const float w = p[j];
        if constexpr (kVec) {
          const uint4 raw = *reinterpret_cast<const uint4*>(vrow);
          const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
          for (int u = 0; u < 8; ++u) acc[u] += w * ToF(e[u]);
        } else {
          acc[0] += w * ToF(vrow[0]);
          acc[1] += w * ToF(vrow[1]);
        }
      }
    }
    __syncthreads();
  }
  if (vthread) {
#pragma unroll
    for (int u = 0; u < VD; ++u) merge[g * hd + dv + u] = acc[u];
  }
  __syncthreads();
  T* out = static_cast<T*>(a.out) + (t * a.num_heads + h) * hd;
  const float inv_l = 1.0f / l;
  for (int64_t d = tid; d < hd; d += kAttnThreads) {
    float sum = 0;
    for (int gg = 0; gg < groups; ++gg) sum += merge[gg * hd + d];
    out[d] = FromF<T>(sum * inv_l);
  }
}

// Flash-decoding. grid (T, num_kv_heads, splits), 128 threads. A key row of D elements is read
// by L = D / 8 lanes with one 16-byte load each, so a warp holds 32 / L keys at a time and the
// block NG = 4 * 32 / L "key slots"; each slot walks its share of the split's keys kUnroll at a
// time (all K and V loads of a pass issued before any math) and keeps, for each of the kG
// query heads that share this kv head, its own running max / sum / output (8 dims per lane).
// Slots are merged with shuffles inside the warp and through shared memory across warps.
// Scores live in the log2 domain (q pre-scaled by log2(e) / sqrt(D)).
constexpr int kFdWarps = 4;
constexpr int kFdUnroll = 4;

template <typename T, int D, int kG>
__global__ void __launch_bounds__(kFdWarps * 32) FlashDecodeKernel(AttentionArgs a, TokenMeta meta, KvView kv) {
  PdlWaitThenRelease();
  constexpr int L = D / 8;
  constexpr int KPW = 32 / L;
  constexpr int NG = kFdWarps * KPW;
  __shared__ float sm_o[kFdWarps][kG][D];
  __shared__ float sm_m[kFdWarps][kG], sm_l[kFdWarps][kG];
  __shared__ float sp_m[kG][kMaxAttentionSplits], sp_l[kG][kMaxAttentionSplits];
  __shared__ bool is_last;
  const int64_t t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, S = gridDim.z;
  const int G = static_cast<int>(a.num_heads / a.num_kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = warp * KPW + lane / L, sub = lane % L;
  const int64_t pos = meta.pos[t];
  const int64_t first = a.sliding_window > 0 ? max(int64_t{0}, pos - a.sliding_window + 1) : 0;
  const int64_t per = (pos + 1 - first + S - 1) / S;
  const int64_t begin = first + split * per, end = min(begin + per, pos + 1);
  const int32_t* table = meta.bt + meta.bt_start[t];
  const float qscale = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  float q[kG][8];
#pragma unroll
  for (int g = 0; g < kG; ++g) {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      q[g][e] = g < G ? a.q[(t * a.num_heads + kvh * G + g) * D + sub * 8 + e] * qscale : 0.0f;
    }
  }
  float m[kG], l[kG], acc[kG][8];
#pragma unroll
  for (int g = 0; g < kG; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0;
  }
  const T* base = static_cast<const T*>(kv.base);
  const int64_t bs = kv.block_size;
  const int64_t block_stride = kv.num_layers * 2 * bs * kv.kv_dim;
  const T* kbase = base + SlabOffset(kv, 0, a.layer, 0) + kvh * D + sub * 8;
  const T* vbase = base + SlabOffset(kv, 0, a.layer, 1) + kvh * D + sub * 8;
  for (int64_t j0 = begin; j0 < end; j0 += NG * kFdUnroll) {
    uint4 kr[kFdUnroll], vr[kFdUnroll];
    bool ok[kFdUnroll];
#pragma unroll
    for (int u = 0; u < kFdUnroll; ++u) {
      const int64_t j = j0 + u * NG + slot;
      ok[u] = j < end;
      kr[u] = make_uint4(0, 0, 0, 0);
      vr[u] = make_uint4(0, 0, 0, 0);
      if (ok[u]) {
        const int64_t off = table[j / bs] * block_stride + (j % bs) * kv.kv_dim;
        kr[u] = __ldg(reinterpret_cast<const uint4*>(kbase + off));
        vr[u] = __ldg(reinterpret_cast<const uint4*>(vbase + off));
      }
    }
    float sc[kFdUnroll][kG];
#pragma unroll
    for (int u = 0; u < kFdUnroll; ++u) {
      const T* ke = reinterpret_cast<const T*>(&kr[u]);
      float kf[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) kf[e] = ToF(ke[e]);
#pragma unroll
      for (int g = 0; g < kG; ++g) {
        float d = 0;
#pragma unroll
        for (int e = 0; e < 8; ++e) d += q[g][e] * kf[e];
#pragma unroll
        for (int o = L / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        sc[u][g] = ok[u] ? d : -INFINITY;
      }
    }
#pragma unroll
    for (int g = 0; g < kG; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < kFdUnroll; ++u) mx = fmaxf(mx, sc[u][g]);
      const float corr = exp2f(m[g] - mx);
      l[g] *= corr;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] *= corr;
#pragma unroll
      for (int u = 0; u < kFdUnroll; ++u) {
        const float pu = exp2f(sc[u][g] - mx);
        l[g] += pu;
        const T* ve = reinterpret_cast<const T*>(&vr[u]);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] += pu * ToF(ve[e]);
      }
      m[g] = mx;
    }
  }
  // Merge the key slots of a warp (lanes with the same `sub`), then the warps.
#pragma unroll
  for (int o = L; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < kG; ++g) {
      const float om = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float ol = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float mn = fmaxf(m[g], om);
      const float c1 = exp2f(m[g] - mn), c2 = exp2f(om - mn);
      l[g] = l[g] * c1 + ol * c2;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float oa = __shfl_xor_sync(0xffffffffu, acc[g][e], o);
        acc[g][e] = acc[g][e] * c1 + oa * c2;
      }
      m[g] = mn;
    }
  }
  if (lane < L) {
#pragma unroll
    for (int g = 0; g < kG; ++g) {
#pragma unroll
      for (int e = 0; e < 8; ++e) sm_o[warp][g][sub * 8 + e] = acc[g][e];
      if (sub == 0) {
        sm_m[warp][g] = m[g];
        sm_l[warp][g] = l[g];
      }
    }
  }
  __syncthreads();
  const int64_t rowlen = D + 2;
  for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float mx = -FLT_MAX;
#pragma unroll
    for (int w = 0; w < kFdWarps; ++w) mx = fmaxf(mx, sm_m[w][g]);
    float sum = 0, o = 0;
#pragma unroll
    for (int w = 0; w < kFdWarps; ++w) {
      const float c = exp2f(sm_m[w][g] - mx);
      sum += sm_l[w][g] * c;
      o += sm_o[w][g][d] * c;
    }
    const int64_t h = kvh * G + g;
    if (S == 1) {
      static_cast<T*>(a.out)[(t * a.num_heads + h) * D + d] = FromF<T>(o / sum);
    } else {
      float* pr = a.partial + ((t * S + split) * a.num_heads + h) * rowlen;
      pr[d] = o;
      if (d == 0) {
        pr[D] = mx;
        pr[D + 1] = sum;
      }
    }
  }
  if (S == 1) return;
  // The last block of this (token, kv head) merges the splits.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t* cnt = a.counters + t * a.num_kv_heads + kvh;
    const int32_t prev = atomicAdd(cnt, 1);
    is_last = prev == S - 1;
    if (is_last) *cnt = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int idx = threadIdx.x; idx < G * S; idx += blockDim.x) {
    const int g = idx / static_cast<int>(S), sp = idx % static_cast<int>(S);
    const float* pr = a.partial + ((t * S + sp) * a.num_heads + kvh * G + g) * rowlen;
    sp_m[g][sp] = __ldcg(pr + D);
    sp_l[g][sp] = __ldcg(pr + D + 1);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    const int64_t h = kvh * G + g;
    float mx = -FLT_MAX;
    for (int sp = 0; sp < S; ++sp) mx = fmaxf(mx, sp_m[g][sp]);
    float sum = 0, o = 0;
    for (int sp = 0; sp < S; ++sp) {
      const float c = exp2f(sp_m[g][sp] - mx);
      sum += sp_l[g][sp] * c;
      o += __ldcg(a.partial + ((t * S + sp) * a.num_heads + h) * rowlen + d) * c;
    }
    static_cast<T*>(a.out)[(t * a.num_heads + h) * D + d] = FromF<T>(o / sum);
  }
}

template <typename T, int D>
void LaunchFlashDecodeG(const AttentionArgs& a, const TokenMeta& meta, const KvView& kv, cudaStream_t s, bool pdl) {
  const dim3 grid(static_cast<unsigned>(a.T), static_cast<unsigned>(a.num_kv_heads), static_cast<unsigned>(a.splits));
  const int64_t G = a.num_heads / a.num_kv_heads;
  if (G <= 1) {
    Launch(pdl, FlashDecodeKernel<T, D, 1>, grid, kFdWarps * 32, s, a, meta, kv);
  } else if (G <= 2) {
    Launch(pdl, FlashDecodeKernel<T, D, 2>, grid, kFdWarps * 32, s, a, meta, kv);
  } else if (G <= 4) {
    Launch(pdl, FlashDecodeKernel<T, D, 4>, grid, kFdWarps * 32, s, a, meta, kv);
  } else {
    Launch(pdl, FlashDecodeKernel<T, D, 8>, grid, kFdWarps * 32, s, a, meta, kv);
  }
}

template <typename T>
void LaunchFlashDecode(const AttentionArgs& a, const TokenMeta& meta, const KvView& kv, cudaStream_t s, bool pdl) {
  switch (a.head_dim) {
    case 64:
      LaunchFlashDecodeG<T, 64>(a, meta, kv, s, pdl);
      break;
    case 128:
      LaunchFlashDecodeG<T, 128>(a, meta, kv, s, pdl);
      break;
    default:
      LaunchFlashDecodeG<T, 256>(a, meta, kv, s, pdl);
      break;
  }
}

}  // namespace

bool FlashDecodeSupported(int64_t head_dim, int64_t num_heads, int64_t num_kv_heads) {
  if (head_dim != 64 && head_dim != 128 && head_dim != 256) return false;
  if (num_kv_heads <= 0 || num_heads % num_kv_heads != 0) return false;
  return num_heads / num_kv_heads <= 8;
}

int64_t AttentionSplits(int64_t T, int64_t num_kv_heads, int64_t max_context, int64_t split_rows) {
  const int64_t target_blocks = 2 * static_cast<int64_t>(SmCount());
  int64_t s = 1;
  while (2 * s <= kMaxAttentionSplits && s * kMinKeysPerSplit < max_context && T * num_kv_heads * s < target_blocks &&
         T * 2 * s <= split_rows) {
    s *= 2;
  }
  return s;
}

void PagedAttention(const AttentionArgs& a, const TokenMeta& meta, const KvView& kv, ActType act, void* stream,
                    bool pdl) {
  if (a.T <= 0) return;
  if (a.impl == AttentionImpl::kAuto && kv.kv_dim % 8 == 0 &&
      FlashDecodeSupported(a.head_dim, a.num_heads, a.num_kv_heads) &&
      (a.splits == 1 || (a.splits > 1 && a.splits <= kMaxAttentionSplits && a.partial && a.counters))) {
    if (act == ActType::kF16) {
      LaunchFlashDecode<__half>(a, meta, kv, S(stream), pdl);
    } else {
      LaunchFlashDecode<__nv_bfloat16>(a, meta, kv, S(stream), pdl);
    }
    return;
  }
  const dim3 grid(static_cast<unsigned>(a.T), static_cast<unsigned>(a.num_heads));
  const bool vec = a.head_dim % 8 == 0 && kv.kv_dim % 8 == 0;
  if (act == ActType::kF16) {
    if (vec) {
      Launch(pdl, AttentionKernel<__half, true>, grid, kAttnThreads, S(stream), a, meta, kv);
    } else {
      Launch(pdl, AttentionKernel<__half, false>, grid, kAttnThreads, S(stream), a, meta, kv);
    }
  } else {
    if (vec) {
      Launch(pdl, AttentionKernel<__nv_bfloat16, true>, grid, kAttnThreads, S(stream), a, meta, kv);
    } else {
      Launch(pdl, AttentionKernel<__nv_bfloat16, false>, grid, kAttnThreads, S(stream), a, meta, kv);
    }
  }
}

}  // namespace slq::gpu
