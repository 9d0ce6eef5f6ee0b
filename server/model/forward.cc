#include "server/model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"
#include "server/model/ops.h"
#include "server/model/worker_pool.h"

namespace slq {
namespace {

// Not under TSan: the clone's ifunc resolver runs during relocation, before the TSan runtime
// is up, and the instrumented resolver crashes every binary at start-up.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define SLQ_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SLQ_MULTIVERSION
#endif

// Attention work (multiply-adds) below which spawning threads costs more than it saves.
constexpr int64_t kParallelAttentionWork = 1 << 18;

void Grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

// Everything one forward call needs, to keep the per-layer functions' signatures short.
struct Pass {
  const Model& m;
  const ModelConfig& c;
  KvBlockPool& pool;
  std::span<const ForwardChunk> chunks;
  ForwardWorkspace& ws;
  int64_t T;        // stacked new tokens
  int64_t max_ctx;  // longest context of any chunk after this call
  int threads;
};

// Dot product with 8 independent partial sums so the compiler vectorizes it (a single float
// accumulator is a serial dependency chain it may not reorder).
inline float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AddBias(float* y, const std::vector<float>& b, int64_t rows) {
  if (b.empty()) return;
  const int64_t n = static_cast<int64_t>(b.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
  }
}

// q/k projections, biases, q/k norms, RoPE; then K and V written into the cache.
void QkvAndCache(Pass& p, const LayerWeights& l, int64_t layer) {
  const ModelConfig& c = p.c;
  ForwardWorkspace& ws = p.ws;
  const int64_t T = p.T, qd = c.q_dim(), kvd = c.kv_dim(), hd = c.head_dim, half = hd / 2;
  l.q_proj->Forward(ws.xn.data(), T, ws.q.data());
  l.k_proj->Forward(ws.xn.data(), T, ws.k.data());
  l.v_proj->Forward(ws.xn.data(), T, ws.v.data());
  AddBias(ws.q.data(), l.q_bias, T);
  AddBias(ws.k.data(), l.k_bias, T);
  AddBias(ws.v.data(), l.v_bias, T);
  if (!l.q_norm.empty()) {
    RmsNorm(ws.q.data(), l.q_norm.data(), T * c.num_heads, hd, c.rms_norm_eps, ws.q.data());
    RmsNorm(ws.k.data(), l.k_norm.data(), T * c.num_kv_heads, hd, c.rms_norm_eps, ws.k.data());
  }
  const int64_t bs = p.pool.block_size();
  KvStorage& st = p.pool.storage();
  for (int64_t t = 0; t < T; ++t) {
    const float* cs = ws.cos.data() + t * half;
    const float* sn = ws.sin.data() + t * half;
    ApplyRope(ws.q.data() + t * qd, c.num_heads, hd, cs, sn, c.rope_style);
    ApplyRope(ws.k.data() + t * kvd, c.num_kv_heads, hd, cs, sn, c.rope_style);
    const BlockTable& table = *p.chunks[ws.chunk_of[t]].table;
    const int64_t pos = ws.pos[t];
    const int32_t block = table.blocks[pos / bs];
    const int64_t off = (pos % bs) * kvd;
    std::memcpy(st.K(block, layer) + off, ws.k.data() + t * kvd, kvd * sizeof(float));
    std::memcpy(st.V(block, layer) + off, ws.v.data() + t * kvd, kvd * sizeof(float));
  }
}

// Calls fn(j, row) for the cached rows of positions [first, last] of one layer's K or V slabs,
// walking the block table block by block (no division per position).
template <bool kIsV, typename Fn>
inline void ForEachCached(const KvStorage& st, const BlockTable& table, int64_t layer, int64_t bs, int64_t kvd,
                          int64_t col, int64_t first, int64_t last, Fn&& fn) {
  for (int64_t b = first / bs; b <= last / bs; ++b) {
    const float* slab = kIsV ? st.V(table.blocks[b], layer) : st.K(table.blocks[b], layer);
    const int64_t j0 = std::max(first, b * bs), j1 = std::min(last, b * bs + bs - 1);
    for (int64_t j = j0; j <= j1; ++j) fn(j, slab + (j - b * bs) * kvd + col);
  }
}

// Attention of one (token, kv head) task for the n_rep query heads that share the kv head.
// Compiled twice (x86-64-v3 = AVX2 + FMA, and baseline) and picked at load time: the dot
// products and the weighted V sums are the hot loops of long prefills.
SLQ_MULTIVERSION void AttendOne(const Pass& p, int64_t layer, int64_t t, int64_t kvh, float* scores) {
  const ModelConfig& c = p.c;
  const ForwardWorkspace& ws = p.ws;
  const int64_t hd = c.head_dim, kvd = c.kv_dim(), bs = p.pool.block_size();
  const int64_t n_rep = c.num_heads / c.num_kv_heads;
  const BlockTable& table = *p.chunks[ws.chunk_of[t]].table;
  const int64_t pos = ws.pos[t];
  const int64_t first = c.sliding_window > 0 ? std::max<int64_t>(0, pos - c.sliding_window + 1) : 0;
  const int64_t n = pos + 1 - first;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const KvStorage& st = p.pool.storage();
  constexpr int64_t kLanes = 16;  // output dims kept in registers while streaming V
  for (int64_t r = 0; r < n_rep; ++r) {
    const int64_t h = kvh * n_rep + r;
    const float* q = ws.q.data() + t * c.q_dim() + h * hd;
    ForEachCached<false>(st, table, layer, bs, kvd, kvh * hd, first, pos,
                         [&](int64_t j, const float* k) { scores[j - first] = Dot(q, k, hd) * scale; });
    SoftmaxInPlace(scores, n);
    float* out = p.ws.att.data() + t * c.q_dim() + h * hd;
    for (int64_t d0 = 0; d0 < hd; d0 += kLanes) {
      const int64_t dn = std::min(kLanes, hd - d0);
      float acc[kLanes] = {};
      if (dn == kLanes) {
        ForEachCached<true>(st, table, layer, bs, kvd, kvh * hd + d0, first, pos, [&](int64_t j, const float* v) {
          const float w = scores[j - first];
          for (int64_t e = 0; e < kLanes; ++e) acc[e] += w * v[e];
        });
      } else {
        ForEachCached<true>(st, table, layer, bs, kvd, kvh * hd + d0, first, pos, [&](int64_t j, const float* v) {
          const float w = scores[j - first];
          for (int64_t e = 0; e < dn; ++e) acc[e] += w * v[e];
        });
      }
      std::copy(acc, acc + dn, out + d0);
    }
  }
}

void Attention(Pass& p, int64_t layer) {
  const ModelConfig& c = p.c;
  const int64_t tasks = p.T * c.num_kv_heads;
  int64_t work = 0;
  for (int64_t t = 0; t < p.T; ++t) work += (p.ws.pos[t] + 1) * c.q_dim() * 2;
  WorkerPool& pool = WorkerPool::Default();
  const int64_t workers = work < kParallelAttentionWork ? 1 : std::min<int64_t>({p.threads, tasks, pool.threads()});
  Grow(p.ws.scores, workers * p.max_ctx);
  // One scores buffer per part: part w of `workers` handles tasks [tasks*w/W, tasks*(w+1)/W).
  auto part = [&](int64_t w) {
    float* scores = p.ws.scores.data() + w * p.max_ctx;
    const int64_t begin = tasks * w / workers, end = tasks * (w + 1) / workers;
    for (int64_t i = begin; i < end; ++i) {
      AttendOne(p, layer, i / c.num_kv_heads, i % c.num_kv_heads, scores);
    }
  };
  if (workers == 1) {
    part(0);
    return;
  }
  pool.Run(workers, [&](int64_t wb, int64_t we) {
    for (int64_t w = wb; w < we; ++w) part(w);
  });
}

void Layer(Pass& p, int64_t layer) {
  const ModelConfig& c = p.c;
  const LayerWeights& l = p.m.layers[layer];
  ForwardWorkspace& ws = p.ws;
  const int64_t T = p.T, h = c.hidden_size, f = c.intermediate_size;
  RmsNorm(ws.x.data(), l.attn_norm.data(), T, h, c.rms_norm_eps, ws.xn.data());
  QkvAndCache(p, l, layer);
  Attention(p, layer);
  l.o_proj->Forward(ws.att.data(), T, ws.tmp.data());
  for (int64_t i = 0; i < T * h; ++i) ws.x[i] += ws.tmp[i];
  RmsNorm(ws.x.data(), l.mlp_norm.data(), T, h, c.rms_norm_eps, ws.xn.data());
  l.gate_proj->Forward(ws.xn.data(), T, ws.gate.data());
  l.up_proj->Forward(ws.xn.data(), T, ws.up.data());
  SwiGlu(ws.gate.data(), ws.up.data(), T * f, ws.gate.data());
  l.down_proj->Forward(ws.gate.data(), T, ws.tmp.data());
  for (int64_t i = 0; i < T * h; ++i) ws.x[i] += ws.tmp[i];
}

// Sizes the workspace, embeds the tokens and fills positions and RoPE tables.
void Prepare(Pass& p) {
  const ModelConfig& c = p.c;
  ForwardWorkspace& ws = p.ws;
  const int64_t T = p.T, h = c.hidden_size;
  for (auto* v : {&ws.x, &ws.xn, &ws.tmp}) Grow(*v, T * h);
  for (auto* v : {&ws.q, &ws.att}) Grow(*v, T * c.q_dim());
  for (auto* v : {&ws.k, &ws.v}) Grow(*v, T * c.kv_dim());
  for (auto* v : {&ws.gate, &ws.up}) Grow(*v, T * c.intermediate_size);
  for (auto* v : {&ws.cos, &ws.sin}) Grow(*v, T * (c.head_dim / 2));
  ws.pos.resize(T);
  ws.chunk_of.resize(T);
  ws.inv_freq = RopeInvFreq(c);  // head_dim / 2 values: cheaper than caching safely
  int64_t t = 0;
  p.max_ctx = 0;
  for (size_t i = 0; i < p.chunks.size(); ++i) {
    const ForwardChunk& ch = p.chunks[i];
    for (size_t j = 0; j < ch.tokens.size(); ++j, ++t) {
      ws.pos[t] = ch.table->num_tokens + static_cast<int64_t>(j);
      ws.chunk_of[t] = static_cast<int32_t>(i);
      std::memcpy(ws.x.data() + t * h, p.m.embed.data() + ch.tokens[j] * h, h * sizeof(float));
    }
    p.max_ctx = std::max<int64_t>(p.max_ctx, ws.pos[t - 1] + 1);
  }
  RopeTables(ws.inv_freq, ws.pos.data(), T, ws.cos.data(), ws.sin.data());
}

// Final norm on the rows that want logits, then the LM head.
void Logits(Pass& p, std::vector<float>* logits) {
  const ModelConfig& c = p.c;
  ForwardWorkspace& ws = p.ws;
  const int64_t h = c.hidden_size;
  int64_t rows = 0, t = 0;
  for (const ForwardChunk& ch : p.chunks) rows += ch.all_logits ? ch.tokens.size() : 1;
  Grow(ws.rows, rows * h);
  int64_t r = 0;
  for (const ForwardChunk& ch : p.chunks) {
    const int64_t n = static_cast<int64_t>(ch.tokens.size());
    const int64_t first = ch.all_logits ? t : t + n - 1;
    for (int64_t i = first; i < t + n; ++i, ++r) {
      std::memcpy(ws.rows.data() + r * h, ws.x.data() + i * h, h * sizeof(float));
    }
    t += n;
  }
  RmsNorm(ws.rows.data(), p.m.final_norm.data(), rows, h, c.rms_norm_eps, ws.rows.data());
  logits->resize(static_cast<size_t>(rows * c.vocab_size));
  p.m.lm_head->Forward(ws.rows.data(), rows, logits->data());
}

}  // namespace

absl::Status ValidateForwardChunks(const ModelConfig& c, std::span<const ForwardChunk> chunks) {
  for (size_t i = 0; i < chunks.size(); ++i) {
    const ForwardChunk& ch = chunks[i];
    if (ch.table == nullptr || ch.tokens.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", i, " has no table or no tokens"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (chunks[j].table == ch.table) {
        return absl::InvalidArgumentError(absl::StrCat("chunks ", j, " and ", i, " extend the same sequence"));
      }
    }
    const int64_t end = ch.table->num_tokens + static_cast<int64_t>(ch.tokens.size());
    if (end > c.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("chunk ", i, " reaches position ", end,
                                                     ", beyond max_position_embeddings ", c.max_position_embeddings));
    }
    for (int32_t t : ch.tokens) {
      if (t < 0 || t >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("chunk ", i, ": token id ", t, " outside the vocabulary [0, ", c.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

void ReleaseForwardChunks(BlockAllocator& alloc, std::span<const ForwardChunk> chunks, size_t n) {
  for (size_t j = 0; j < n && j < chunks.size(); ++j) {
    alloc.Truncate(chunks[j].table, chunks[j].table->num_tokens);
  }
}

absl::Status ReserveForwardChunks(BlockAllocator& alloc, std::span<const ForwardChunk> chunks) {
  for (size_t i = 0; i < chunks.size(); ++i) {
    BlockTable* t = chunks[i].table;
    absl::Status s = alloc.Reserve(t, t->num_tokens + static_cast<int64_t>(chunks[i].tokens.size()));
    if (!s.ok()) {
      ReleaseForwardChunks(alloc, chunks, i + 1);
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Forward(const Model& model, KvBlockPool& pool, std::span<const ForwardChunk> chunks, ForwardWorkspace* ws,
                     std::vector<float>* logits, const ForwardOptions& options) {
  const ModelConfig& c = model.config;
  if (chunks.empty()) return absl::InvalidArgumentError("Forward needs at least one chunk");
  if (pool.storage().kv_dim() != c.kv_dim()) {
    return absl::InvalidArgumentError("KV pool was built for a different model shape");
  }
  SLQ_RETURN_IF_ERROR(ValidateForwardChunks(c, chunks));
  SLQ_RETURN_IF_ERROR(ReserveForwardChunks(pool.allocator(), chunks));
  int64_t T = 0;
  for (const ForwardChunk& ch : chunks) T += static_cast<int64_t>(ch.tokens.size());
  Pass p{model, c, pool, chunks, *ws, T, 0, options.threads > 0 ? options.threads : DefaultThreads()};
  Prepare(p);
  for (int64_t l = 0; l < c.num_layers; ++l) Layer(p, l);
  Logits(p, logits);
  for (const ForwardChunk& ch : chunks) ch.table->num_tokens += static_cast<int64_t>(ch.tokens.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> TeacherForcedLogits(const Model& model, std::span<const int32_t> tokens) {
  thread_local ForwardWorkspace ws;
  constexpr int64_t kBlock = 16;
  const int64_t n = static_cast<int64_t>(tokens.size());
  KvBlockPool pool(model.config, kBlock, std::max<int64_t>(1, (n + kBlock - 1) / kBlock));
  BlockTable table;
  ForwardChunk chunk{&table, tokens, /*all_logits=*/true};
  std::vector<float> logits;
  SLQ_RETURN_IF_ERROR(Forward(model, pool, std::span<const ForwardChunk>(&chunk, 1), &ws, &logits));
  return logits;
}

}  // namespace slq
