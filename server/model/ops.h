// Elementwise / row-wise fp32 kernels of the CPU forward pass. Numerics follow Hugging Face
// transformers' Llama code in fp32 (operation order included) so logits match it closely.
// All functions are pure and thread-safe.
#ifndef SLQ_SERVER_MODEL_OPS_H_
#define SLQ_SERVER_MODEL_OPS_H_

#include <cstdint>
#include <vector>

#include "server/model/config.h"

namespace slq {

// y[r, :] = w * (x[r, :] * rsqrt(mean(x[r, :]^2) + eps)) for r in [0, rows). x, y: [rows, n];
// w: [n]. y may alias x.
void RmsNorm(const float* x, const float* w, int64_t rows, int64_t n, double eps, float* y);

// RoPE inverse frequencies for one head: [head_dim / 2], including rope scaling.
std::vector<float> RopeInvFreq(const ModelConfig& config);

// cos/sin of pos * inv_freq for each position: cos, sin: [n_pos, head_dim / 2].
void RopeTables(const std::vector<float>& inv_freq, const int64_t* positions, int64_t n_pos, float* cos, float* sin);

// Rotates `n_heads` heads of size head_dim stored contiguously in v ([n_heads, head_dim]) by
// one position's cos/sin ([head_dim / 2] each).
void ApplyRope(float* v, int64_t n_heads, int64_t head_dim, const float* cos, const float* sin, RopeStyle style);

// h[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)). h may alias g.
void SwiGlu(const float* g, const float* u, int64_t n, float* h);

// In-place softmax of x[0, n) with max subtraction.
void SoftmaxInPlace(float* x, int64_t n);

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_OPS_H_
