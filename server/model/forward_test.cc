// The forward pass against a naive single-sequence reference written from the HF equations
// (no cache, fp64 math), plus batching / chunking / format equivalences and error paths.
#include "server/model/forward.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "server/model/model_loader.h"
#include "server/model/test_model_util.h"

namespace slq {
namespace {

using testing::MakeTempDir;
using testing::MakeTinyWeights;
using testing::TestTensor;
using testing::TinyModelSpec;
using Weights = std::map<std::string, TestTensor>;
using Vec = std::vector<double>;

Vec MatVec(const TestTensor& w, const Vec& x) {
  const int64_t out = w.shape[0], in = w.shape[1];
  Vec y(out, 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) y[o] += w.data[o * in + i] * x[i];
  }
  return y;
}

Vec Norm(const Vec& x, const std::vector<float>& w, size_t off = 0, size_t n = 0) {
  n = n ? n : x.size();
  double ms = 0;
  for (size_t i = 0; i < n; ++i) ms += x[off + i] * x[off + i] / n;
  Vec y(x);
  for (size_t i = 0; i < n; ++i) y[off + i] = w[i] * x[off + i] / std::sqrt(ms + 1e-5);
  return y;
}

void Rope(Vec& v, int64_t heads, int64_t hd, int64_t pos, double theta) {
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double a = pos / std::pow(theta, 2.0 * i / hd);
      const double x1 = v[h * hd + i], x2 = v[h * hd + i + hd / 2];
      v[h * hd + i] = x1 * std::cos(a) - x2 * std::sin(a);
      v[h * hd + i + hd / 2] = x2 * std::cos(a) + x1 * std::sin(a);
    }
  }
}

// Logits [n, vocab] of the whole sequence, recomputing everything (HF rotate_half).
std::vector<double> Reference(const TinyModelSpec& s, Weights& w, const std::vector<int32_t>& ids) {
  const int64_t n = ids.size(), hd = s.hidden / s.heads, rep = s.heads / s.kv_heads;
  std::vector<Vec> x(n);
  for (int64_t t = 0; t < n; ++t) {
    const auto& e = w["model.embed_tokens.weight"].data;
    x[t] = Vec(e.begin() + ids[t] * s.hidden, e.begin() + (ids[t] + 1) * s.hidden);
  }
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<Vec> q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      Vec xn = Norm(x[t], w[p + "input_layernorm.weight"].data);
      q[t] = MatVec(w[p + "self_attn.q_proj.weight"], xn);
      k[t] = MatVec(w[p + "self_attn.k_proj.weight"], xn);
      v[t] = MatVec(w[p + "self_attn.v_proj.weight"], xn);
      if (s.qkv_bias) {
        for (size_t i = 0; i < q[t].size(); ++i) q[t][i] += w[p + "self_attn.q_proj.bias"].data[i];
        for (size_t i = 0; i < k[t].size(); ++i) k[t][i] += w[p + "self_attn.k_proj.bias"].data[i];
        for (size_t i = 0; i < v[t].size(); ++i) v[t][i] += w[p + "self_attn.v_proj.bias"].data[i];
      }
      if (s.qk_norm) {
        for (int64_t h = 0; h < s.heads; ++h) q[t] = Norm(q[t], w[p + "self_attn.q_norm.weight"].data, h * hd, hd);
        for (int64_t h = 0; h < s.kv_heads; ++h) k[t] = Norm(k[t], w[p + "self_attn.k_norm.weight"].data, h * hd, hd);
      }
      Rope(q[t], s.heads, hd, t, s.rope_theta);
      Rope(k[t], s.kv_heads, hd, t, s.rope_theta);
    }
    for (int64_t t = 0; t < n; ++t) {
      Vec att(s.heads * hd, 0.0);
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t kh = h / rep;
        Vec sc(t + 1, -1e300);
        double mx = -1e300, z = 0;
        const int64_t first = s.sliding_window > 0 ? std::max<int64_t>(0, t - s.sliding_window + 1) : 0;
        for (int64_t j = first; j <= t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[j][kh * hd + i];
          sc[j] = d / std::sqrt(double(hd));
          mx = std::max(mx, sc[j]);
        }
        for (double& e : sc) z += (e = e <= -1e299 ? 0.0 : std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < hd; ++i) att[h * hd + i] += sc[j] / z * v[j][kh * hd + i];
        }
      }
      Vec o = MatVec(w[p + "self_attn.o_proj.weight"], att);
      for (int64_t i = 0; i < s.hidden; ++i) x[t][i] += o[i];
      Vec xn = Norm(x[t], w[p + "post_attention_layernorm.weight"].data);
      Vec g = MatVec(w[p + "mlp.gate_proj.weight"], xn), u = MatVec(w[p + "mlp.up_proj.weight"], xn);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      Vec d = MatVec(w[p + "mlp.down_proj.weight"], g);
      for (int64_t i = 0; i < s.hidden; ++i) x[t][i] += d[i];
    }
  }
  std::vector<double> out;
  const TestTensor& head = s.tied ? w["model.embed_tokens.weight"] : w["lm_head.weight"];
  for (int64_t t = 0; t < n; ++t) {
    Vec y = MatVec(head, Norm(x[t], w["model.norm.weight"].data));
    out.insert(out.end(), y.begin(), y.end());
  }
  return out;
}

std::unique_ptr<Model> Load(const TinyModelSpec& spec, const Weights& w) {
  const std::string dir = MakeTempDir("fwd");
  EXPECT_TRUE(WriteTinyHfModel(dir, spec, w).ok());
  auto m = LoadModel(dir, {.compute_sha256 = false});
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}
double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  return MaxAbsDiff(a, std::vector<double>(b.begin(), b.end()));
}

const std::vector<int32_t> kIds = {1, 5, 9, 33, 2, 60, 7, 7, 12, 40, 41, 3, 0, 63, 22, 18, 5, 9, 1, 30};

class ForwardVariantTest : public ::testing::TestWithParam<TinyModelSpec> {};

TEST_P(ForwardVariantTest, MatchesNaiveReference) {
  TinyModelSpec spec = GetParam();
  Weights w = MakeTinyWeights(spec);
  auto m = Load(spec, w);
  auto logits = TeacherForcedLogits(*m, kIds);
  ASSERT_TRUE(logits.ok()) << logits.status();
  std::vector<double> ref = Reference(spec, w, kIds);
  double mx = 0;
  for (double r : ref) mx = std::max(mx, std::abs(r));
  EXPECT_GT(mx, 1.0);
  EXPECT_LT(MaxAbsDiff(*logits, ref), 2e-5 * mx);
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, ForwardVariantTest,
    ::testing::Values(TinyModelSpec{}, TinyModelSpec{.tied = true, .seed = 2},
                      TinyModelSpec{.architecture = "Qwen2ForCausalLM", .qkv_bias = true, .seed = 3},
                      TinyModelSpec{.architecture = "Qwen3ForCausalLM", .qk_norm = true, .seed = 4},
                      TinyModelSpec{
                          .architecture = "MistralForCausalLM", .kv_heads = 4, .rope_theta = 500.0, .seed = 5},
                      TinyModelSpec{.architecture = "MistralForCausalLM", .seed = 6, .sliding_window = 5}));

TEST(ForwardTest, SlidingWindowChangesLongContextsOnly) {
  TinyModelSpec full{.architecture = "MistralForCausalLM", .seed = 6};
  TinyModelSpec windowed = full;
  windowed.sliding_window = 5;
  Weights w = MakeTinyWeights(full);
  auto a = TeacherForcedLogits(*Load(full, w), kIds);
  auto b = TeacherForcedLogits(*Load(windowed, w), kIds);
  ASSERT_TRUE(a.ok() && b.ok());
  const size_t V = full.vocab;
  std::vector<float> a5(a->begin(), a->begin() + 5 * V), b5(b->begin(), b->begin() + 5 * V);
  EXPECT_EQ(a5, b5);  // positions 0..4 see at most 5 keys either way
  std::vector<float> a_last(a->end() - V, a->end()), b_last(b->end() - V, b->end());
  EXPECT_GT(MaxAbsDiff(a_last, b_last), 1e-3);
}

TEST(ForwardTest, Llama2cFormatEqualsHfFormat) {
  TinyModelSpec spec;
  Weights w = MakeTinyWeights(spec);
  auto hf = Load(spec, w);
  const std::string path = MakeTempDir("l2c") + "/m.bin";
  ASSERT_TRUE(WriteTinyLlama2c(path, spec, w).ok());
  auto l2c = LoadModel(path, {.compute_sha256 = false});
  ASSERT_TRUE(l2c.ok());
  auto a = TeacherForcedLogits(*hf, kIds);
  auto b = TeacherForcedLogits(**l2c, kIds);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(MaxAbsDiff(*a, *b), 1e-4);
  EXPECT_GT(MaxAbsDiff(*a, std::vector<float>(a->size(), 0.0f)), 1.0);
}

TEST(ForwardTest, BatchedEqualsAloneAndChunkingDoesNotMatter) {
  TinyModelSpec spec;
  auto m = Load(spec, MakeTinyWeights(spec));
  const std::vector<int32_t> a(kIds.begin(), kIds.begin() + 13), b(kIds.begin() + 4, kIds.end());
  auto alone_a = TeacherForcedLogits(*m, a);
  auto alone_b = TeacherForcedLogits(*m, b);
  ASSERT_TRUE(alone_a.ok() && alone_b.ok());
  const int64_t V = spec.vocab;

  // Both sequences in every call: a prefill of 5 / 3 tokens, then mixed chunk sizes (decode).
  KvBlockPool pool(m->config, /*block_size=*/4, /*num_blocks=*/16);
  BlockTable ta, tb;
  ForwardWorkspace ws;
  std::vector<float> got_a, got_b, logits;
  size_t ia = 0, ib = 0;
  const int steps_a[] = {5, 1, 1, 4, 1, 1}, steps_b[] = {3, 1, 6, 1, 4, 1};
  for (int s = 0; s < 6; ++s) {
    std::vector<ForwardChunk> chunks;
    const size_t na = std::min<size_t>(steps_a[s], a.size() - ia);
    const size_t nb = std::min<size_t>(steps_b[s], b.size() - ib);
    if (na) chunks.push_back({&ta, std::span<const int32_t>(a).subspan(ia, na), true});
    if (nb) chunks.push_back({&tb, std::span<const int32_t>(b).subspan(ib, nb), true});
    ASSERT_TRUE(Forward(*m, pool, chunks, &ws, &logits).ok());
    got_a.insert(got_a.end(), logits.begin(), logits.begin() + na * V);
    got_b.insert(got_b.end(), logits.begin() + na * V, logits.end());
    ia += na;
    ib += nb;
  }
  ASSERT_EQ(ia, a.size());
  ASSERT_EQ(ib, b.size());
  EXPECT_EQ(ta.num_tokens, 13);
  EXPECT_LT(MaxAbsDiff(got_a, *alone_a), 1e-5);
  EXPECT_LT(MaxAbsDiff(got_b, *alone_b), 1e-5);

  // Last-only logits: one row per chunk, equal to the last row of the full run.
  BlockTable tc;
  ForwardChunk last{&tc, a, false};
  ASSERT_TRUE(Forward(*m, pool, std::span(&last, 1), &ws, &logits).ok());
  ASSERT_EQ(logits.size(), static_cast<size_t>(V));
  std::vector<float> tail(alone_a->end() - V, alone_a->end());
  EXPECT_LT(MaxAbsDiff(logits, tail), 1e-5);
}

TEST(ForwardTest, ErrorsLeaveTablesUnchanged) {
  TinyModelSpec spec;
  auto m = Load(spec, MakeTinyWeights(spec));
  KvBlockPool pool(m->config, 4, 3);  // 12 positions
  BlockTable a, b;
  ForwardWorkspace ws;
  std::vector<float> logits;
  const std::vector<int32_t> eight(kIds.begin(), kIds.begin() + 8);
  ForwardChunk one{&a, eight, false};
  ASSERT_TRUE(Forward(*m, pool, std::span(&one, 1), &ws, &logits).ok());
  ForwardChunk two[] = {{&a, std::span(eight).first(2), false}, {&b, eight, false}};
  absl::Status s = Forward(*m, pool, two, &ws, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.num_tokens, 8);
  EXPECT_EQ(a.blocks.size(), 2u);
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_EQ(pool.allocator().num_free(), 1);

  const std::vector<int32_t> bad = {1, 64};
  ForwardChunk c{&b, bad, false};
  EXPECT_THAT(Forward(*m, pool, std::span(&c, 1), &ws, &logits).message(), ::testing::HasSubstr("token id 64"));
  ForwardChunk dup[] = {{&a, std::span(eight).first(1), false}, {&a, std::span(eight).first(1), false}};
  EXPECT_FALSE(Forward(*m, pool, dup, &ws, &logits).ok());
  std::vector<int32_t> longseq(65, 3);
  EXPECT_THAT(TeacherForcedLogits(*m, longseq).status().message(), ::testing::HasSubstr("max_position_embeddings"));
  EXPECT_EQ(a.num_tokens, 8);
}

}  // namespace
}  // namespace slq
