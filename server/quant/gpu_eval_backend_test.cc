// The GPU EvalBackend against the CPU one on the real test models: the same sequences, the
// same swaps through a ModelQuantizer, metrics that agree; a restored slot gives back the base
// exactly; the whole pipeline certifies with its evaluations on the GPU; slots with grid ids
// (kernels/grids.h) are dequantized on the device with their grids. Label gpu: every
// test skips (GTEST_SKIP) when no GPU is present.
//
// Tolerances: the GPU runs fp16 activations, so its base differs from the CPU's; both sides
// compare a model with its own base, and a single 4-bit slot's damage (mean KL ~1e-3) is well
// above the fp16 noise. Per swap: |EAR_gpu - EAR_cpu| <= 0.003 and KL within 25% relative.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/grids.h"
#include "kernels/packed_matrix.h"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/eval_data.h"
#include "server/quant/gpu_eval_backend.h"
#include "server/quant/model_quantizer.h"
#include "server/quant/pipeline.h"
#include "server/quant/quantized_linear.h"
#include "server/quant/quantizer.h"

namespace slq::gpu {
namespace {

using quant::EvalBackend;
using quant::MeanOf;

#define SKIP_WITHOUT_GPU()                                        \
  do {                                                            \
    std::string why_;                                             \
    if (!GpuAvailable(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
  } while (0)

struct Fixture {
  std::unique_ptr<Model> model;
  quant::Sequences seqs;
};

Fixture Load(const std::string& name, const std::string& text, int64_t nseq) {
  Fixture f;
  const std::string dir = slq::testing::ModelsDir() + "/" + name;
  auto m = LoadModel(dir);
  EXPECT_TRUE(m.ok()) << m.status();
  auto tok = Tokenizer::FromHfDir(dir);
  EXPECT_TRUE(tok.ok()) << tok.status();
  auto t = ReadFile(slq::testing::DataDir() + "/" + text);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!m.ok() || !tok.ok() || !t.ok()) return f;
  quant::EvalDataOptions o;
  o.max_calibration_sequences = nseq;
  auto d = quant::PrepareEvalData(*t, **tok, o);
  EXPECT_TRUE(d.ok()) << d.status();
  if (!d.ok()) return f;
  f.model = std::move(*m);
  f.seqs = d->calibration;
  f.seqs.push_back({f.seqs[0][0]});  // a 1-token sequence: no positions, skipped by both
  return f;
}

TEST(GpuEvalBackendTest, MatchesCpuMetricsThroughSwapsAndRestoresExactly) {
  SKIP_WITHOUT_GPU();
  Fixture f = Load("docs-19m", "debian-docs-val-part1.txt", 8);
  ASSERT_TRUE(f.model);
  std::unique_ptr<EvalBackend> cpu = quant::MakeCpuEvalBackend(*f.model);
  auto gpu = MakeGpuEvalBackend(*f.model);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EvalBackend& g = **gpu;
  EXPECT_EQ(g.device().rfind("cuda:0 ", 0), 0u) << g.device();
  auto cs = cpu->AddBaseSet(f.seqs);
  auto gs = g.AddBaseSet(f.seqs);
  ASSERT_TRUE(cs.ok() && gs.ok()) << gs.status();
  // Base greedy tokens agree on nearly every position.
  int64_t same = 0, total = 0;
  for (size_t i = 0; i < f.seqs.size(); ++i) {
    ASSERT_EQ(g.BaseArgmax(*gs)[i].size(), f.seqs[i].size());
    for (size_t t = 0; t < f.seqs[i].size(); ++t, ++total)
      same += g.BaseArgmax(*gs)[i][t] == cpu->BaseArgmax(*cs)[i][t];
  }
  EXPECT_GE(static_cast<double>(same) / static_cast<double>(total), 0.97);

  auto unchanged = g.Compare(*gs, 1.0);
  ASSERT_TRUE(unchanged.ok()) << unchanged.status();
  ASSERT_EQ(unchanged->size(), f.seqs.size() - 1);   // the 1-token sequence has no positions
  EXPECT_EQ(MeanOf(*unchanged).one_minus_ear, 0.0);  // the same weights: the same logits
  EXPECT_EQ(MeanOf(*unchanged).kl, 0.0);

  quant::QuantConfig cfg;
  cfg.group_size = 128;
  quant::ModelQuantizer mq(f.model.get(), cfg, false);
  ASSERT_TRUE(mq.Init().ok());
  mq.set_on_change([&g](const std::string& s, const LinearOp& op) { return g.SlotChanged(s, op); });
  auto both = [&](const char* what) {
    auto c = cpu->Compare(*cs, 1.0);
    auto q = g.Compare(*gs, 1.0);
    EXPECT_TRUE(c.ok() && q.ok()) << what;
    if (!c.ok() || !q.ok()) return std::pair<quant::MeanDamage, quant::MeanDamage>{};
    EXPECT_EQ(c->size(), q->size());
    const quant::MeanDamage a = MeanOf(*c), b = MeanOf(*q);
    std::printf("%-40s cpu KL %.3e 1-EAR %.5f | gpu KL %.3e 1-EAR %.5f\n", what, a.kl, a.one_minus_ear, b.kl,
                b.one_minus_ear);
    return std::pair{a, b};
  };
  // Fused (q of qkv, up of gate_up) and unfused slots, 2..8 bits, one at a time.
  const std::vector<std::pair<std::string, int>> swaps = {{"model.layers.0.self_attn.q_proj", 4},
                                                          {"model.layers.1.self_attn.v_proj", 3},
                                                          {"model.layers.0.mlp.up_proj", 4},
                                                          {"model.layers.1.mlp.down_proj", 2},
                                                          {"model.layers.2.self_attn.o_proj", 5}};
  for (const auto& [slot, bits] : swaps) {
    ASSERT_TRUE(mq.SetBits(slot, bits).ok()) << slot;
    auto [a, b] = both((slot + " @" + std::to_string(bits)).c_str());
    EXPECT_NEAR(b.one_minus_ear, a.one_minus_ear, 0.003) << slot;
    EXPECT_NEAR(b.kl, a.kl, 0.25 * a.kl + 2e-5) << slot;
    EXPECT_GT(b.kl, 0.0) << slot;
    ASSERT_TRUE(mq.Restore(slot).ok());
    auto back = g.Compare(*gs, 1.0);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(MeanOf(*back).kl, 0.0) << slot << ": restore must give back the original weights exactly";
  }
  // A whole-model allocation (every slot at 8 bits, then a 4/8 mix) and a noisy slot.
  std::map<std::string, int> all8, mix;
  for (size_t i = 0; i < mq.slots().size(); ++i) {
    all8[mq.slots()[i].name] = 8;
    mix[mq.slots()[i].name] = i % 3 == 0 ? 4 : 8;
  }
  for (const auto* alloc : {&all8, &mix}) {
    ASSERT_TRUE(mq.Apply(*alloc).ok());
    auto [a, b] = both(alloc == &all8 ? "all slots 8-bit" : "4/8 mix");
    EXPECT_NEAR(b.one_minus_ear, a.one_minus_ear, 0.003);
    EXPECT_NEAR(b.kl, a.kl, 0.25 * a.kl + 2e-5);
  }
  mq.RestoreAll();
  ASSERT_TRUE(mq.InjectNoise("model.layers.3.mlp.gate_proj", 0.01, 7).ok());
  auto [a, b] = both("noise 1% on layers.3.gate");
  EXPECT_NEAR(b.kl, a.kl, 0.25 * a.kl + 2e-5);
  mq.RestoreAll();
}

// A slot swapped for a quantized linear with random grid ids: the GPU mirror must be dequantized
// with the grids (metrics agree with the CPU, which runs the op itself, and differ from the
// same codes without ids), and restoring gives the base back exactly.
TEST(GpuEvalBackendTest, GridSlotsMatchCpuMetrics) {
  SKIP_WITHOUT_GPU();
  Fixture f = Load("docs-19m", "debian-docs-val-part1.txt", 8);
  ASSERT_TRUE(f.model);
  std::unique_ptr<EvalBackend> cpu = quant::MakeCpuEvalBackend(*f.model);
  auto gpu = MakeGpuEvalBackend(*f.model);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EvalBackend& g = **gpu;
  auto cs = cpu->AddBaseSet(f.seqs);
  auto gs = g.AddBaseSet(f.seqs);
  ASSERT_TRUE(cs.ok() && gs.ok()) << gs.status();
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> id(0, kernels::kGridCount - 1);
  // The last slot is 4-bit again: it reuses the level table uploaded for the first one.
  const std::vector<std::pair<std::string, int>> cases = {{"model.layers.0.self_attn.q_proj", 4},
                                                          {"model.layers.1.mlp.down_proj", 3},
                                                          {"model.layers.2.mlp.up_proj", 2},
                                                          {"model.layers.3.mlp.gate_proj", 4}};
  for (const auto& [name, bits] : cases) {
    LinearSlot* slot = nullptr;
    std::vector<LinearSlot> slots = f.model->LinearSlots();
    for (LinearSlot& s : slots) {
      if (s.name == name) slot = &s;
    }
    ASSERT_NE(slot, nullptr) << name;
    std::unique_ptr<LinearOp> original = std::move(*slot->op);
    const std::vector<float> w = original->WeightF32();
    quant::QuantConfig cfg;
    cfg.bits = bits;
    cfg.group_size = 64;
    auto q = quant::QuantizeMatrix(w.data(), original->out_features(), original->in_features(), cfg);
    ASSERT_TRUE(q.ok()) << q.status();
    const int64_t gpr = kernels::GroupsPerRow(q->cols, q->group_size);
    const int64_t wpr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
    quant::QuantizedMatrix with_ids = *q;
    with_ids.grid_ids.assign(static_cast<size_t>(q->rows * wpr), 0u);
    for (int64_t r = 0; r < q->rows; ++r) {
      for (int64_t gi = 0; gi < gpr; ++gi) {
        with_ids.grid_ids[static_cast<size_t>(r * wpr + gi * kernels::kGridIdBits / 32)] |=
            id(rng) << (gi * kernels::kGridIdBits % 32);
      }
    }
    double gpu_kl[2] = {0, 0};
    for (int grids = 0; grids < 2; ++grids) {
      *slot->op = std::make_unique<quant::QuantizedLinear>(grids ? with_ids : *q);
      ASSERT_TRUE(cpu->SlotChanged(name, **slot->op).ok());
      ASSERT_TRUE(g.SlotChanged(name, **slot->op).ok());
      auto c = cpu->Compare(*cs, 1.0);
      auto d = g.Compare(*gs, 1.0);
      ASSERT_TRUE(c.ok() && d.ok());
      const quant::MeanDamage a = MeanOf(*c), b = MeanOf(*d);
      std::printf("%-36s @%d%s cpu KL %.3e 1-EAR %.5f | gpu KL %.3e 1-EAR %.5f\n", name.c_str(), bits,
                  grids ? " grid" : "     ", a.kl, a.one_minus_ear, b.kl, b.one_minus_ear);
      EXPECT_NEAR(b.one_minus_ear, a.one_minus_ear, 0.003) << name << (grids ? " grid" : "");
      EXPECT_NEAR(b.kl, a.kl, 0.25 * a.kl + 2e-5) << name << (grids ? " grid" : "");
      gpu_kl[grids] = b.kl;
    }
    // Random grids change the function: a GPU path that dropped the ids would give the same KL.
    EXPECT_NE(gpu_kl[0], gpu_kl[1]) << name;
    *slot->op = std::move(original);
    ASSERT_TRUE(g.SlotChanged(name, **slot->op).ok());
    auto back = g.Compare(*gs, 1.0);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(MeanOf(*back).kl, 0.0) << name << ": restore must give back the original weights exactly";
  }
}

TEST(GpuEvalBackendTest, RejectsBadInput) {
  SKIP_WITHOUT_GPU();
  Fixture f = Load("tinystories-656k", "tinystories-valid-part1.txt", 4);
  ASSERT_TRUE(f.model);
  auto gpu = MakeGpuEvalBackend(*f.model);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->Compare(0, 1.0).status().code(), absl::StatusCode::kInvalidArgument);  // no set yet
  auto s = (*gpu)->AddBaseSet(f.seqs);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*gpu)->Compare(*s, 0.0).status().code(), absl::StatusCode::kInvalidArgument);
  DenseLinear wrong(3, 5, std::vector<float>(15, 0.f));
  EXPECT_EQ((*gpu)->SlotChanged("model.layers.0.mlp.up_proj", wrong).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*gpu)->SlotChanged("no.such.slot", wrong).code(), absl::StatusCode::kNotFound);
}

// The pipeline with its evaluations on the GPU certifies tinystories-656k at EAR >= 0.99 and
// records where it verified; the CPU run of the same options is the reference.
TEST(GpuEvalBackendTest, PipelineOnGpuCertifiesLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  quant::PipelineOptions o;
  o.model_path = slq::testing::ModelsDir() + "/tinystories-656k";
  o.data_path = slq::testing::DataDir() + "/tinystories-valid-part1.txt";
  o.target = "ear>=0.99";
  o.formats = "4-8";
  o.group_size = 64;
  auto gpu = quant::QuantizeModel(o, nullptr, [](const Model& m) { return MakeGpuEvalBackend(m); });
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  auto cpu = quant::QuantizeModel(o);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const auto& gc = gpu->certificate;
  const auto& cc = cpu->certificate;
  EXPECT_EQ(gc["verification_device"].get<std::string>().rfind("cuda:0", 0), 0u);
  EXPECT_EQ(cc["verification_device"], "cpu");
  const double gb = gc["avg_bits_per_param_quantized_layers"], cb = cc["avg_bits_per_param_quantized_layers"];
  const double ge = gc["heldout"]["ear"]["lo95"], ce = cc["heldout"]["ear"]["lo95"];
  std::printf("GPU: %.3f bits, held-out EAR lo %.5f, profile %.2f s | CPU: %.3f bits, EAR lo %.5f, profile %.2f s\n",
              gb, ge, gc["stage_wall_seconds"].value("profile", 0.0), cb, ce,
              cc["stage_wall_seconds"].value("profile", 0.0));
  EXPECT_TRUE(gpu->target_met) << gpu->status;
  EXPECT_NEAR(gb, cb, 0.5);
  EXPECT_NEAR(ge, ce, 0.003);
}

}  // namespace
}  // namespace slq::gpu
