// Element-wise and attention kernels of the GPU forward pass (server/gpu/gpu_forward.h; PagedAttention
// is in attention.cu, the rest in gpu_ops.cu).
// Plain C++ API like kernels/cuda/qgemm.h: device pointers are void* / T*, the stream is a
// cudaStream_t passed as void*, activations are fp16 or bf16 (kernels::ActType), norms,
// softmax and the residual stream are fp32. Launchers only enqueue work (no sync, no
// allocation), so every one of them can be captured into a CUDA graph; launch errors surface
// at the next cudaGetLastError / synchronisation. pdl: launch with programmatic stream
// serialization (the kernel may be scheduled while the previous one drains; every kernel here
// waits for the previous grid's writes before it reads anything, so results are the same).
//
// Per-token metadata (int32, device): pos[t] = position, bt_start[t] = offset in `bt` of the
// token's sequence block table, so attention and the cache writes need no host data.
// KV cache layout (act dtype): [num_blocks, num_layers, 2 (K, V), block_size, kv_dim].
#ifndef SLQ_SERVER_GPU_GPU_OPS_H_
#define SLQ_SERVER_GPU_GPU_OPS_H_

#include <cstdint>

#include "kernels/cuda/qgemm.h"

namespace slq::gpu {

using kernels::ActType;

// Largest head_dim the attention and q/k kernels handle.
inline constexpr int64_t kMaxHeadDim = 256;

struct KvView {
  void* base = nullptr;  // act [num_blocks, layers, 2, block_size, kv_dim]
  int64_t num_layers = 0, block_size = 0, kv_dim = 0;
};

struct TokenMeta {
  const int32_t* tokens = nullptr;    // [T]
  const int32_t* pos = nullptr;       // [T]
  const int32_t* bt_start = nullptr;  // [T]
  const int32_t* bt = nullptr;        // flattened block tables
};

// x[t, :] = table[tokens[t], :] (fp32).
void EmbedRows(const float* table, const int32_t* tokens, int64_t T, int64_t hidden, float* x, void* stream,
               bool pdl = false);

// cos/sin [T, half] of pos[t] * inv_freq[i] (fp32 angle, cos/sin in fp64 as the CPU path).
void RopeTable(const float* inv_freq, const int32_t* pos, int64_t T, int64_t half, float* cos, float* sin, void* stream,
               bool pdl = false);

// For r in [0, n): t = rows ? rows[r] : r; v = x[t] + delta[t] (delta act, may be null);
// if !rows, x[t] = v; out[r] = w * (v * rsqrt(mean(v^2) + eps)) as act.
void AddRmsNorm(float* x, const void* delta, const int32_t* rows, int64_t n, int64_t hidden, const float* w, double eps,
                void* out, ActType act, void* stream, bool pdl = false);

struct QkvPostArgs {
  const void* q = nullptr;  // act rows of stride ldq
  const void* k = nullptr;  // act rows of stride ldkv
  const void* v = nullptr;
  int64_t ldq = 0, ldkv = 0;
  const float* q_bias = nullptr;  // [q_dim] or null
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  const float* q_norm = nullptr;  // [head_dim] or null (Qwen3)
  const float* k_norm = nullptr;
  double eps = 1e-6;
  const float* cos = nullptr;  // [T, head_dim / 2]
  const float* sin = nullptr;
  bool interleaved = false;  // RoPE pairs (2i, 2i+1) instead of (i, i + d/2)
  int64_t T = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, layer = 0;
  float* q_out = nullptr;  // fp32 [T, q_dim]
};
// Bias, q/k norm and RoPE; q to q_out, K and V into the paged cache at pos[t].
void QkvPost(const QkvPostArgs& a, const TokenMeta& meta, const KvView& kv, ActType act, void* stream,
             bool pdl = false);

enum class AttentionImpl {
  kAuto,       // flash-decoding where FlashDecodeSupported, else kReference
  kReference,  // one block per (token, q head), the whole context in one block
};

struct AttentionArgs {
  const float* q = nullptr;  // fp32 [T, num_heads * head_dim]
  void* out = nullptr;       // act [T, num_heads * head_dim]
  int64_t T = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, layer = 0;
  int64_t sliding_window = 0;  // 0 = full
  AttentionImpl impl = AttentionImpl::kAuto;
  // Flash-decoding: the context of each (token, kv head) is cut into `splits` ranges, one block
  // each; the last block of a (token, kv head) to finish merges the partial softmaxes.
  // splits > 1 needs partial (fp32 [T * splits, num_heads, head_dim + 2]) and counters
  // (int32 [T * num_kv_heads], all zero; every launch leaves them zero).
  int64_t splits = 1;
  float* partial = nullptr;
  int32_t* counters = nullptr;
};

// Most splits per (token, kv head); fewest context positions worth a split of their own.
inline constexpr int64_t kMaxAttentionSplits = 64;
inline constexpr int64_t kMinKeysPerSplit = 128;

// True when the flash-decoding kernel handles this shape: head_dim 64, 128 or 256, at most 8
// query heads per kv head.
bool FlashDecodeSupported(int64_t head_dim, int64_t num_heads, int64_t num_kv_heads);

// Splits for T tokens whose longest context (positions attended) is max_context: a power of two,
// enough blocks for two per SM where the context is long enough (>= kMinKeysPerSplit keys per
// split), and T * splits <= split_rows (the rows of the partial buffer). 1 when no split pays.
int64_t AttentionSplits(int64_t T, int64_t num_kv_heads, int64_t max_context, int64_t split_rows);

// Causal paged attention (GQA): token t attends to positions [first, pos[t]] of its sequence.
void PagedAttention(const AttentionArgs& a, const TokenMeta& meta, const KvView& kv, ActType act, void* stream,
                    bool pdl = false);

// Greedy decoding on the device, after a step of B sequences x 1 token whose argmax is ids[B]:
// tokens[b] = ids[b], pos[b] += 1 (the next step's input), out[step * B + b] = ids[b], ++*step.
void GreedyAdvance(int32_t* tokens, int32_t* pos, const int32_t* ids, int64_t B, int32_t* out, int32_t* step,
                   void* stream);

// Busy-waits `ns` nanoseconds on the GPU (lets a profiled step queue up behind it, so event
// timings measure the kernels and not the host's launch rate).
void SpinDelay(int64_t ns, void* stream);

// out[t, i] = silu(g[t, i]) * u[t, i] (fp32 math), g/u rows of stride ld, out [T, n].
void SwiGlu(const void* g, const void* u, int64_t ld, int64_t T, int64_t n, void* out, ActType act, void* stream,
            bool pdl = false);

// out[i] = float(in[i]).
void ActToFloat(const void* in, int64_t n, float* out, ActType act, void* stream, bool pdl = false);

// Per row of logits [R, vocab]: ids[r] = argmax (ties -> lowest id), logprob[r] = its log
// softmax value. One pass over the logits; a row is cut into ArgmaxParts(R, vocab) blocks when
// partial (fp32 [R * kArgmaxMaxParts * 3]) and counters (int32 [R], all zero; left zero) are
// given, else one block per row.
inline constexpr int64_t kArgmaxMaxParts = 64;
inline constexpr int64_t kArgmaxMinPerPart = 2048;
int64_t ArgmaxParts(int64_t R, int64_t vocab);
void ArgmaxLogprob(const float* logits, int64_t R, int64_t vocab, int32_t* ids, float* logprob, float* partial,
                   int32_t* counters, void* stream, bool pdl = false);

// Deterministic pseudo-random fills (benchmarks with random weights).
void FillUniformAct(void* p, int64_t n, uint64_t seed, float lo, float hi, ActType act, void* stream);
void FillUniformF32(float* p, int64_t n, uint64_t seed, float lo, float hi, void* stream);
void FillRandomU32(uint32_t* p, int64_t n, uint64_t seed, void* stream);
// fp16 {scale, zero} pairs for `bits`-bit codes: w = z + s q spans about [-amp, amp].
void FillScaleZero(uint16_t* sz, int64_t halves, uint64_t seed, int bits, float amp, void* stream);

}  // namespace slq::gpu

#endif  // SLQ_SERVER_GPU_GPU_OPS_H_
