// GPU forward pass vs the fp32 CPU path (slq::Forward) on the real test models, dense and
// quantized; paged attention over several chunks of two interleaved sequences; CUDA graphs;
// the error contract. Label gpu: every test skips (GTEST_SKIP) when no GPU is present.
//
// Tolerances (fp16 activations, fp32 residual/norms/softmax, fp16 KV cache): per logits row
// EAR(CPU, GPU) = sum_v min(p_v, q_v) >= 0.99, argmax agreement >= 0.97 of rows, max |logit
// diff| <= 0.5; mean EAR over rows >= 0.999 for dense weights, >= 0.998 for quantized ones
// (QGemm's prefill path, n > 8, rounds each dequantized weight to fp16, which the CPU does not).
// bf16 activations (8-bit mantissa): mean EAR >= 0.99, per row >= 0.98.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/grids.h"
#include "kernels/packed_matrix.h"
#include "server/common/test_paths.h"
#include "server/gpu/gpu_forward.h"
#include "server/gpu/gpu_model.h"
#include "server/model/forward.h"
#include "server/model/model_loader.h"
#include "server/quant/model_quantizer.h"
#include "server/quant/quantized_linear.h"

namespace slq::gpu {
namespace {

#define SKIP_WITHOUT_GPU()                                        \
  do {                                                            \
    std::string why_;                                             \
    if (!GpuAvailable(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
  } while (0)

std::string ModelPath(const std::string& name) {
  const std::string d = slq::testing::ModelsDir() + "/" + name;
  return name == "stories260k" ? d + "/stories260K.bin" : d;
}

struct Compare {
  int64_t rows = 0, agree = 0;
  double max_abs = 0, max_logit = 0, ear_sum = 0, ear_min = 1;
  double ear_mean() const { return rows ? ear_sum / static_cast<double>(rows) : 0; }
};

void Softmax(const float* x, int64_t n, std::vector<double>* p) {
  p->resize(static_cast<size_t>(n));
  double mx = x[0];
  for (int64_t i = 0; i < n; ++i) mx = std::max<double>(mx, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += ((*p)[i] = std::exp(static_cast<double>(x[i]) - mx));
  for (double& v : *p) v /= s;
}

void Accumulate(const float* a, const float* b, int64_t V, Compare* c) {
  std::vector<double> p, q;
  Softmax(a, V, &p);
  Softmax(b, V, &q);
  double ear = 0;
  for (int64_t i = 0; i < V; ++i) {
    ear += std::min(p[i], q[i]);
    c->max_abs = std::max<double>(c->max_abs, std::fabs(a[i] - b[i]));
    c->max_logit = std::max<double>(c->max_logit, std::fabs(a[i]));
  }
  if (std::max_element(a, a + V) - a == std::max_element(b, b + V) - b) ++c->agree;
  ++c->rows;
  c->ear_sum += ear;
  c->ear_min = std::min(c->ear_min, ear);
}

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(3, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& t : v) t = d(rng);
  return v;
}

// Two sequences through the same chunk schedule on both paths: prefill chunks (all logits),
// a mixed step, then decode steps; every logits row is compared.
Compare RunBoth(const Model& m, ActType act, bool graphs = true, bool pdl = false,
                bool linear_pdl = GpuWorkspaceOptions{}.linear_pdl) {
  Compare cmp;
  const ModelConfig& c = m.config;
  auto gm = GpuModel::Upload(m, {act});
  EXPECT_TRUE(gm.ok()) << gm.status();
  if (!gm.ok()) return cmp;
  std::printf("  gpu model: %s\n", (*gm)->Describe().c_str());
  constexpr int64_t kBs = 16, kBlocks = 64;
  auto kv = GpuKvCache::Create(c, act, kBs, kBlocks);
  EXPECT_TRUE(kv.ok()) << kv.status();
  GpuWorkspaceOptions wo;
  wo.cuda_graphs = graphs;
  wo.pdl = pdl;
  wo.linear_pdl = linear_pdl;
  auto ws = GpuWorkspace::Create(**gm, wo);
  EXPECT_TRUE(ws.ok()) << ws.status();
  if (!kv.ok() || !ws.ok()) return cmp;
  BlockAllocator galloc(kBlocks, kBs);
  KvBlockPool pool(c, kBs, kBlocks);
  ForwardWorkspace cws;
  BlockTable ca, cb, ga, gb;
  const std::vector<int32_t> ta = RandomTokens(80, c.vocab_size, 1), tb = RandomTokens(80, c.vocab_size, 2);
  struct Step {
    int64_t a0, an;
    bool a_all;
    int64_t b0, bn;
    bool b_all;
  };
  std::vector<Step> steps = {{0, 37, true, 0, 5, true}, {37, 19, true, 5, 1, false}};
  for (int64_t i = 0; i < 8; ++i) steps.push_back({56 + i, 1, false, 6 + i, 1, false});
  steps.push_back({64, 3, true, 14, 20, true});
  for (const Step& s : steps) {
    auto span = [](const std::vector<int32_t>& v, int64_t b, int64_t n) {
      return std::span<const int32_t>(v).subspan(static_cast<size_t>(b), static_cast<size_t>(n));
    };
    ForwardChunk cc[] = {{&ca, span(ta, s.a0, s.an), s.a_all}, {&cb, span(tb, s.b0, s.bn), s.b_all}};
    ForwardChunk gc[] = {{&ga, span(ta, s.a0, s.an), s.a_all}, {&gb, span(tb, s.b0, s.bn), s.b_all}};
    std::vector<float> cl, gl;
    absl::Status st = Forward(m, pool, cc, &cws, &cl);
    EXPECT_TRUE(st.ok()) << st;
    st = GpuForward(**gm, **kv, galloc, gc, ws->get(), &gl);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok() || cl.size() != gl.size()) {
      ADD_FAILURE() << "logits sizes " << cl.size() << " vs " << gl.size();
      return cmp;
    }
    for (size_t r = 0; r < cl.size() / c.vocab_size; ++r) {
      Accumulate(cl.data() + r * c.vocab_size, gl.data() + r * c.vocab_size, c.vocab_size, &cmp);
    }
    EXPECT_EQ(ga.num_tokens, ca.num_tokens);
    EXPECT_EQ(gb.num_tokens, cb.num_tokens);
  }
  std::printf("  rows %lld  argmax agree %.4f  max|diff| %.5f (max|logit| %.2f)  EAR mean %.6f min %.6f  graphs %lld\n",
              static_cast<long long>(cmp.rows), static_cast<double>(cmp.agree) / static_cast<double>(cmp.rows),
              cmp.max_abs, cmp.max_logit, cmp.ear_mean(), cmp.ear_min,
              static_cast<long long>((*ws)->graphs_captured()));
  return cmp;
}

constexpr double kDense = 0.999, kQuant = 0.998, kBf16 = 0.99;

void ExpectParity(const Compare& c, double ear_mean_min) {
  ASSERT_GT(c.rows, 0);
  EXPECT_GE(c.ear_mean(), ear_mean_min);
  EXPECT_GE(c.ear_min, ear_mean_min == kBf16 ? 0.98 : 0.99);
  EXPECT_GE(static_cast<double>(c.agree) / static_cast<double>(c.rows), 0.97);
  if (ear_mean_min != kBf16) {
    EXPECT_LE(c.max_abs, 0.5);
  }
}

std::unique_ptr<Model> Load(const std::string& name) {
  auto m = LoadModel(ModelPath(name));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

// bits_of(slot index) -> bits for every quantizable slot (lm_head included).
void Quantize(Model* m, quant::QuantConfig cfg, int (*bits_of)(size_t)) {
  quant::ModelQuantizer q(m, cfg, /*quantize_lm_head=*/true);
  ASSERT_TRUE(q.Init().ok());
  std::map<std::string, int> bits;
  for (size_t i = 0; i < q.slots().size(); ++i) bits[q.slots()[i].name] = bits_of(i);
  absl::Status s = q.Apply(bits);
  ASSERT_TRUE(s.ok()) << s;
}

class RealModels : public ::testing::TestWithParam<const char*> {};

TEST_P(RealModels, DenseMatchesCpu) {
  SKIP_WITHOUT_GPU();
  auto m = Load(GetParam());
  ASSERT_NE(m, nullptr);
  ExpectParity(RunBoth(*m, ActType::kF16), kDense);
}

TEST_P(RealModels, Uniform4BitMatchesCpu) {
  SKIP_WITHOUT_GPU();
  auto m = Load(GetParam());
  ASSERT_NE(m, nullptr);
  quant::QuantConfig cfg;
  cfg.bits = 4;
  cfg.group_size = 128;
  Quantize(m.get(), cfg, [](size_t) { return 4; });
  ExpectParity(RunBoth(*m, ActType::kF16), kQuant);
}

TEST_P(RealModels, MixedBitsMatchesCpu) {
  SKIP_WITHOUT_GPU();
  auto m = Load(GetParam());
  ASSERT_NE(m, nullptr);
  quant::QuantConfig cfg;
  cfg.group_size = 64;
  Quantize(m.get(), cfg, [](size_t i) { return std::vector<int>{6, 6, 6, 5, 4, 8, 3, 7, 2}[i % 9]; });
  ExpectParity(RunBoth(*m, ActType::kF16), kQuant);
}

INSTANTIATE_TEST_SUITE_P(Gpu, RealModels, ::testing::Values("tinystories-656k", "docs-19m", "stories260k"),
                         [](const auto& info) {
                           std::string s = info.param;
                           s.erase(std::remove(s.begin(), s.end(), '-'), s.end());
                           return s;
                         });

TEST(GpuForward, Bf16ActivationsMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto m = Load("docs-19m");
  ASSERT_NE(m, nullptr);
  ExpectParity(RunBoth(*m, ActType::kBF16), kBf16);
}

TEST(GpuForward, RotatedMatricesFallBackToDense) {
  SKIP_WITHOUT_GPU();
  auto m = Load("tinystories-656k");
  ASSERT_NE(m, nullptr);
  quant::QuantConfig cfg;
  cfg.bits = 4;
  cfg.rotate = true;
  cfg.rotation_seed = 7;
  Quantize(m.get(), cfg, [](size_t) { return 4; });
  auto gm = GpuModel::Upload(*m);
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_NE((*gm)->Describe().find("dequantized"), std::string::npos) << (*gm)->Describe();
  ExpectParity(RunBoth(*m, ActType::kF16), kQuant);
}

// Gives every quantized linear of m random per-group grid ids (kernels/grids.h): a different
// but well-defined function that the CPU path (the grid-aware oracle kernels) and the GPU path
// must compute alike. Returns how many linears got ids.
int AttachRandomGridIds(Model* m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> id(0, kernels::kGridCount - 1);
  int n = 0;
  for (LinearSlot& slot : m->LinearSlots()) {
    const auto* ql = dynamic_cast<const quant::QuantizedLinear*>(slot.op->get());
    if (ql == nullptr) continue;
    quant::QuantizedMatrix q = ql->matrix();
    const int64_t gpr = kernels::GroupsPerRow(q.cols, q.group_size);
    const int64_t wpr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
    q.grid_ids.assign(static_cast<size_t>(q.rows * wpr), 0u);
    for (int64_t r = 0; r < q.rows; ++r) {
      for (int64_t g = 0; g < gpr; ++g) {
        q.grid_ids[static_cast<size_t>(r * wpr + g * kernels::kGridIdBits / 32)] |= id(rng)
                                                                                    << (g * kernels::kGridIdBits % 32);
      }
    }
    *slot.op = std::make_unique<quant::QuantizedLinear>(std::move(q));
    ++n;
  }
  return n;
}

// Grid matrices run fused (QGemm's tiled kernel, not the dense fallback) and match the CPU,
// with mixed widths and both group sizes (fp16 activations; the bf16 grid kernel is checked
// against the oracle in kernels/cuda/qgemm_test.cc).
TEST(GpuForward, GridMatricesRunFusedAndMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (const int64_t g : {64, 128}) {
    auto m = Load("tinystories-656k");
    ASSERT_NE(m, nullptr);
    quant::QuantConfig cfg;
    cfg.group_size = g;
    Quantize(m.get(), cfg, [](size_t i) { return std::vector<int>{4, 3, 5, 2, 8, 6, 7}[i % 7]; });
    ASSERT_GT(AttachRandomGridIds(m.get(), static_cast<uint32_t>(g)), 0);
    auto gm = GpuModel::Upload(*m);
    ASSERT_TRUE(gm.ok()) << gm.status();
    const std::string d = (*gm)->Describe();
    EXPECT_EQ(d.find("dequantized"), std::string::npos) << d;
    EXPECT_NE(d.find("grid"), std::string::npos) << d;
    EXPECT_NE(d.find("QGemm"), std::string::npos) << d;
    ExpectParity(RunBoth(*m, ActType::kF16), kQuant);
  }
}

// Group size 32 runs fused (QGemm's G = 32 instantiations, not the dense fallback) and matches
// the CPU: uniform and grid matrices, mixed widths, fp16 and bf16 activations.
TEST(GpuForward, Group32RunsFusedAndMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const bool grids : {false, true}) {
    for (const ActType act : {ActType::kF16, ActType::kBF16}) {
      auto m = Load(act == ActType::kBF16 ? "docs-19m" : "tinystories-656k");
      ASSERT_NE(m, nullptr);
      quant::QuantConfig cfg;
      cfg.group_size = 32;
      // Every width with fp16; bf16 (docs-19m) without 2 bits, like Bf16GridMatricesMatchCpu.
      int (*const all)(size_t) = [](size_t i) { return std::vector<int>{4, 3, 5, 2, 8, 6, 7}[i % 7]; };
      int (*const no2)(size_t) = [](size_t i) { return std::vector<int>{4, 3, 5, 6, 8, 7}[i % 6]; };
      Quantize(m.get(), cfg, act == ActType::kBF16 ? no2 : all);
      if (grids) {
        ASSERT_GT(AttachRandomGridIds(m.get(), 32), 0);
      }
      auto gm = GpuModel::Upload(*m, {act});
      ASSERT_TRUE(gm.ok()) << gm.status();
      const std::string d = (*gm)->Describe();
      EXPECT_EQ(d.find("dequantized"), std::string::npos) << d;
      EXPECT_NE(d.find("g32"), std::string::npos) << d;
      EXPECT_NE(d.find("QGemm"), std::string::npos) << d;
      EXPECT_EQ(d.find("grid") != std::string::npos, grids) << d;
      const Compare c = RunBoth(*m, act);
      if (act == ActType::kF16) {
        ExpectParity(c, kQuant);
        continue;
      }
      // bf16 on docs-19m is looser than ExpectParity's kBf16: measured on the H200 (session 10),
      // uniform g32 q3-q8 EAR mean 0.9901, min 0.9792, argmax agree 0.970; grid 0.9931 / 0.9838 /
      // 0.990; the dense bf16 model itself 0.9952 / 0.9886. A wrong group's scale or zero would
      // drop EAR far below these bounds (the kernel-level Group32 test holds every output to the
      // CPU oracle).
      ASSERT_GT(c.rows, 0);
      EXPECT_GE(c.ear_mean(), 0.985);
      EXPECT_GE(c.ear_min, 0.97);
      EXPECT_GE(static_cast<double>(c.agree) / static_cast<double>(c.rows), 0.96);
    }
  }
}

// Grid matrices with bf16 activations (the streaming kernel's hi + lo variant for n <= 16, the
// tiled grid kernel above) match the CPU on docs-19m, both group sizes.
TEST(GpuForward, Bf16GridMatricesMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (const int64_t g : {64, 128}) {
    auto m = Load("docs-19m");
    ASSERT_NE(m, nullptr);
    quant::QuantConfig cfg;
    cfg.group_size = g;
    Quantize(m.get(), cfg, [](size_t i) { return std::vector<int>{4, 3, 5, 6, 8, 7}[i % 6]; });
    ASSERT_GT(AttachRandomGridIds(m.get(), static_cast<uint32_t>(g) + 1), 0);
    auto gm = GpuModel::Upload(*m, {ActType::kBF16});
    ASSERT_TRUE(gm.ok()) << gm.status();
    const std::string d = (*gm)->Describe();
    EXPECT_EQ(d.find("dequantized"), std::string::npos) << d;
    EXPECT_NE(d.find("grid"), std::string::npos) << d;
    ExpectParity(RunBoth(*m, ActType::kBF16), kBf16);
  }
}

TEST(GpuForward, EagerAndGraphAgree) {
  SKIP_WITHOUT_GPU();
  auto m = Load("tinystories-656k");
  ASSERT_NE(m, nullptr);
  const Compare eager = RunBoth(*m, ActType::kF16, /*graphs=*/false);
  const Compare graph = RunBoth(*m, ActType::kF16, /*graphs=*/true);
  ExpectParity(eager, kDense);
  ExpectParity(graph, kDense);
  EXPECT_NEAR(eager.ear_mean(), graph.ear_mean(), 1e-4);
}

TEST(GpuForward, ProgrammaticDependentLaunchAgrees) {
  SKIP_WITHOUT_GPU();
  auto m = Load("tinystories-656k");
  ASSERT_NE(m, nullptr);
  const Compare plain = RunBoth(*m, ActType::kF16, /*graphs=*/true);
  const Compare eager = RunBoth(*m, ActType::kF16, /*graphs=*/false, /*pdl=*/true);
  const Compare graph = RunBoth(*m, ActType::kF16, /*graphs=*/true, /*pdl=*/true);
  ExpectParity(eager, kDense);
  ExpectParity(graph, kDense);
  EXPECT_NEAR(plain.ear_mean(), eager.ear_mean(), 1e-4);
  EXPECT_NEAR(plain.ear_mean(), graph.ear_mean(), 1e-4);
  auto d = Load("docs-19m");
  ASSERT_NE(d, nullptr);
  ExpectParity(RunBoth(*d, ActType::kF16, /*graphs=*/true, /*pdl=*/true), kDense);
}

// The quantized linears launched with programmatic dependent launch (the default; they read
// their weights before the previous kernel completed, x only after): the same logits as plain
// launches, with and without the small kernels' PDL, eagerly and from graphs.
TEST(GpuForward, QuantizedLinearsWithProgrammaticDependentLaunchAgree) {
  SKIP_WITHOUT_GPU();
  auto m = Load("tinystories-656k");
  ASSERT_NE(m, nullptr);
  quant::QuantConfig cfg;
  cfg.group_size = 64;
  Quantize(m.get(), cfg, [](size_t i) { return std::vector<int>{4, 6, 3, 8, 5}[i % 5]; });
  const Compare plain = RunBoth(*m, ActType::kF16, /*graphs=*/true, /*pdl=*/false, /*linear_pdl=*/false);
  ExpectParity(plain, kQuant);
  for (bool graphs : {false, true}) {
    for (bool pdl : {false, true}) {
      SCOPED_TRACE(absl::StrCat("graphs ", graphs, " pdl ", pdl));
      const Compare c = RunBoth(*m, ActType::kF16, graphs, pdl, /*linear_pdl=*/true);
      ExpectParity(c, kQuant);
      EXPECT_NEAR(plain.ear_mean(), c.ear_mean(), 1e-4);
    }
  }
}

// A long prompt, then decode steps: the attention splits its context (flash-decoding; docs-19m
// has head_dim 64 and 3 query heads per kv head) and the graphs are keyed by the split count.
TEST(GpuForward, DecodeAtLongContextMatchesCpu) {
  SKIP_WITHOUT_GPU();
  auto m = Load("docs-19m");
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config;
  for (ActType act : {ActType::kF16, ActType::kBF16}) {
    for (bool pdl : {false, true}) {
      auto gm = GpuModel::Upload(*m, {act});
      ASSERT_TRUE(gm.ok()) << gm.status();
      constexpr int64_t kBs = 16, kBlocks = 64;
      auto kv = GpuKvCache::Create(c, act, kBs, kBlocks);
      GpuWorkspaceOptions wo;
      wo.pdl = pdl;
      auto ws = GpuWorkspace::Create(**gm, wo);
      ASSERT_TRUE(kv.ok() && ws.ok());
      BlockAllocator galloc(kBlocks, kBs);
      KvBlockPool pool(c, kBs, kBlocks);
      ForwardWorkspace cws;
      BlockTable ct, gt;
      const std::vector<int32_t> toks = RandomTokens(620, c.vocab_size, 9);
      Compare cmp;
      // 600-token prompt, then 20 decode steps (contexts 601..620).
      for (int64_t b = 0; b < 620;) {
        const int64_t n = b == 0 ? 600 : 1;
        const auto span = std::span<const int32_t>(toks).subspan(static_cast<size_t>(b), static_cast<size_t>(n));
        ForwardChunk cc{&ct, span, false}, gc{&gt, span, false};
        std::vector<float> cl, gl;
        ASSERT_TRUE(Forward(*m, pool, std::span<const ForwardChunk>(&cc, 1), &cws, &cl).ok());
        absl::Status st = GpuForward(**gm, **kv, galloc, std::span<const ForwardChunk>(&gc, 1), ws->get(), &gl);
        ASSERT_TRUE(st.ok()) << st;
        ASSERT_EQ(cl.size(), gl.size());
        Accumulate(cl.data(), gl.data(), c.vocab_size, &cmp);
        b += n;
      }
      std::printf("  long context %s pdl %d: rows %lld agree %.4f EAR mean %.6f min %.6f graphs %lld\n",
                  act == ActType::kF16 ? "fp16" : "bf16", pdl ? 1 : 0, static_cast<long long>(cmp.rows),
                  static_cast<double>(cmp.agree) / static_cast<double>(cmp.rows), cmp.ear_mean(), cmp.ear_min,
                  static_cast<long long>((*ws)->graphs_captured()));
      EXPECT_EQ(gt.num_tokens, 620);
      EXPECT_GE((*ws)->graphs_captured(), 1);
      if (act == ActType::kF16) {
        ExpectParity(cmp, kDense);
      } else {  // 21 rows: argmax agreement is too coarse a check with bf16 rounding
        EXPECT_GE(cmp.ear_mean(), kBf16);
        EXPECT_GE(cmp.ear_min, 0.98);
      }
    }
  }
}

// GpuGreedyDecode gives the tokens of the host loop (GpuForward, argmax fed back): two
// sequences of different lengths, short (no split) and long (split attention) contexts, with
// graphs, eagerly and with PDL.
TEST(GpuForward, GreedyDecodeMatchesHostLoop) {
  SKIP_WITHOUT_GPU();
  auto m = Load("docs-19m");
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config;
  auto gm = GpuModel::Upload(*m);
  ASSERT_TRUE(gm.ok()) << gm.status();
  constexpr int64_t kBs = 16, kBlocks = 128, kSteps = 24;
  struct Case {
    int64_t prompt_a, prompt_b;
    bool graphs, pdl;
  };
  for (const Case& k :
       {Case{9, 3, true, false}, Case{9, 3, false, false}, Case{600, 450, true, false}, Case{600, 450, true, true}}) {
    SCOPED_TRACE(absl::StrCat("prompts ", k.prompt_a, "/", k.prompt_b, " graphs ", k.graphs, " pdl ", k.pdl));
    GpuWorkspaceOptions wo;
    wo.cuda_graphs = k.graphs;
    wo.pdl = k.pdl;
    const std::vector<int32_t> pa = RandomTokens(k.prompt_a, c.vocab_size, 21),
                               pb = RandomTokens(k.prompt_b, c.vocab_size, 22);
    std::vector<int32_t> host_ids, dev_ids;
    std::vector<int32_t> first(2);
    for (int pass = 0; pass < 2; ++pass) {
      auto kv = GpuKvCache::Create(c, ActType::kF16, kBs, kBlocks);
      auto ws = GpuWorkspace::Create(**gm, wo);
      ASSERT_TRUE(kv.ok() && ws.ok());
      BlockAllocator alloc(kBlocks, kBs);
      BlockTable a, b;
      ForwardChunk pre[] = {{&a, pa, false}, {&b, pb, false}};
      GpuForwardResult r;
      ASSERT_TRUE(GpuForward(**gm, **kv, alloc, pre, ws->get(), {}, &r).ok());
      first = r.argmax;
      if (pass == 0) {
        std::vector<int32_t> next = r.argmax;
        GpuForwardOptions fo;
        fo.host_rows = {0, 0};
        for (int64_t i = 0; i < kSteps; ++i) {
          ForwardChunk st[] = {{&a, std::span<const int32_t>(&next[0], 1), false},
                               {&b, std::span<const int32_t>(&next[1], 1), false}};
          ASSERT_TRUE(GpuForward(**gm, **kv, alloc, st, ws->get(), fo, &r).ok());
          next = r.argmax;
          host_ids.insert(host_ids.end(), next.begin(), next.end());
        }
      } else {
        BlockTable* tables[] = {&a, &b};
        absl::Status st = GpuGreedyDecode(**gm, **kv, alloc, tables, first, kSteps, ws->get(), &dev_ids);
        ASSERT_TRUE(st.ok()) << st;
        if (k.graphs) {
          EXPECT_EQ((*ws)->graphs_captured(), 1);
          EXPECT_EQ((*ws)->graph_launches(), kSteps);
        }
      }
      EXPECT_EQ(a.num_tokens, k.prompt_a + kSteps);
      EXPECT_EQ(b.num_tokens, k.prompt_b + kSteps);
    }
    EXPECT_EQ(dev_ids, host_ids);
  }
}

TEST(GpuForward, GraphsAreCapturedForRepeatedDecodeShapes) {
  SKIP_WITHOUT_GPU();
  auto m = Load("docs-19m");
  ASSERT_NE(m, nullptr);
  auto gm = GpuModel::Upload(*m);
  ASSERT_TRUE(gm.ok());
  auto kv = GpuKvCache::Create(m->config, ActType::kF16, 16, 32);
  auto ws = GpuWorkspace::Create(**gm);
  ASSERT_TRUE(kv.ok() && ws.ok());
  BlockAllocator alloc(32, 16);
  BlockTable t;
  const std::vector<int32_t> toks = RandomTokens(40, m->config.vocab_size, 3);
  std::vector<float> logits;
  ForwardChunk first{&t, std::span<const int32_t>(toks).first(8), false};
  ASSERT_TRUE(GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&first, 1), ws->get(), &logits).ok());
  for (int i = 8; i < 30; ++i) {
    ForwardChunk d{&t, std::span<const int32_t>(toks).subspan(i, 1), false};
    ASSERT_TRUE(GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&d, 1), ws->get(), &logits).ok());
  }
  EXPECT_EQ(t.num_tokens, 30);
  EXPECT_EQ((*ws)->graphs_captured(), 1);
  EXPECT_EQ((*ws)->graph_launches(), 21);
  // With no room for graphs every step runs eagerly, with the same results.
  GpuWorkspaceOptions none;
  none.max_graphs = 0;
  auto ws0 = GpuWorkspace::Create(**gm, none);
  ASSERT_TRUE(ws0.ok());
  BlockTable t0;
  std::vector<float> logits0;
  ForwardChunk first0{&t0, std::span<const int32_t>(toks).first(8), false};
  ASSERT_TRUE(GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&first0, 1), ws0->get(), &logits0).ok());
  for (int i = 8; i < 12; ++i) {
    ForwardChunk d{&t0, std::span<const int32_t>(toks).subspan(i, 1), false};
    ASSERT_TRUE(GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&d, 1), ws0->get(), &logits0).ok());
  }
  EXPECT_EQ((*ws0)->graphs_captured(), 0);
  EXPECT_EQ((*ws0)->graph_launches(), 0);
}

TEST(GpuForward, ArgmaxAndLogprobMatchHostLogits) {
  SKIP_WITHOUT_GPU();
  auto m = Load("tinystories-656k");
  ASSERT_NE(m, nullptr);
  auto gm = GpuModel::Upload(*m);
  ASSERT_TRUE(gm.ok());
  auto kv = GpuKvCache::Create(m->config, ActType::kF16, 16, 16);
  auto ws = GpuWorkspace::Create(**gm);
  ASSERT_TRUE(kv.ok() && ws.ok());
  BlockAllocator alloc(16, 16);
  BlockTable t;
  const std::vector<int32_t> toks = RandomTokens(20, m->config.vocab_size, 4);
  ForwardChunk ch{&t, toks, true};
  GpuForwardResult r;
  ASSERT_TRUE(GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&ch, 1), ws->get(), {}, &r).ok());
  const int64_t V = m->config.vocab_size;
  ASSERT_EQ(r.argmax.size(), toks.size());
  for (size_t i = 0; i < toks.size(); ++i) {
    const float* row = r.logits.data() + i * V;
    EXPECT_EQ(r.argmax[i], std::max_element(row, row + V) - row);
    double mx = row[0], s = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max<double>(mx, row[v]);
    for (int64_t v = 0; v < V; ++v) s += std::exp(row[v] - mx);
    EXPECT_NEAR(r.argmax_logprob[i], row[r.argmax[i]] - mx - std::log(s), 1e-4);
  }
}

TEST(GpuForward, ErrorsLeaveTablesUnchanged) {
  SKIP_WITHOUT_GPU();
  auto m = Load("tinystories-656k");
  ASSERT_NE(m, nullptr);
  auto gm = GpuModel::Upload(*m);
  ASSERT_TRUE(gm.ok());
  auto kv = GpuKvCache::Create(m->config, ActType::kF16, 16, 4);
  auto ws = GpuWorkspace::Create(**gm);
  ASSERT_TRUE(kv.ok() && ws.ok());
  BlockAllocator alloc(4, 16);
  BlockTable a, b;
  std::vector<float> logits;
  const std::vector<int32_t> toks = RandomTokens(60, m->config.vocab_size, 5);
  ForwardChunk one{&a, std::span<const int32_t>(toks).first(20), false};
  ASSERT_TRUE(GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&one, 1), ws->get(), &logits).ok());
  const BlockTable before = a;
  ForwardChunk two[] = {{&a, std::span<const int32_t>(toks).subspan(20, 10), false},
                        {&b, std::span<const int32_t>(toks).subspan(0, 40), false}};  // needs 5 blocks
  absl::Status s = GpuForward(**gm, **kv, alloc, two, ws->get(), &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(a.blocks, before.blocks);
  EXPECT_EQ(a.num_tokens, before.num_tokens);
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_EQ(alloc.num_free(), 2);
  const std::vector<int32_t> bad = {1, static_cast<int32_t>(m->config.vocab_size)};
  ForwardChunk three{&a, bad, false};
  s = GpuForward(**gm, **kv, alloc, std::span<const ForwardChunk>(&three, 1), ws->get(), &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(a.num_tokens, 20);
}

TEST(GpuForward, TeacherForcedLogitsMatchCpu) {
  SKIP_WITHOUT_GPU();
  auto m = Load("docs-19m");
  ASSERT_NE(m, nullptr);
  auto gm = GpuModel::Upload(*m);
  ASSERT_TRUE(gm.ok());
  auto ws = GpuWorkspace::Create(**gm);
  ASSERT_TRUE(ws.ok());
  const std::vector<int32_t> toks = RandomTokens(300, m->config.vocab_size, 6);
  auto cpu = TeacherForcedLogits(*m, toks);
  auto gpu = GpuTeacherForcedLogits(**gm, ws->get(), toks);
  ASSERT_TRUE(cpu.ok() && gpu.ok());
  ASSERT_EQ(cpu->size(), gpu->size());
  Compare c;
  for (size_t r = 0; r < toks.size(); ++r) {
    Accumulate(cpu->data() + r * m->config.vocab_size, gpu->data() + r * m->config.vocab_size, m->config.vocab_size,
               &c);
  }
  std::printf("  teacher-forced: rows %lld agree %.4f EAR mean %.6f min %.6f max|diff| %.4f\n",
              static_cast<long long>(c.rows), static_cast<double>(c.agree) / static_cast<double>(c.rows), c.ear_mean(),
              c.ear_min, c.max_abs);
  ExpectParity(c, kDense);
}

}  // namespace
}  // namespace slq::gpu
