// Tests of the activation-aware roundings (rounding.h) on synthetic and real activations.
#include "server/quant/rounding.h"

#include <filesystem>
#include <iostream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/grids.h"
#include "kernels/scale_codes.h"
#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/artifact.h"
#include "server/quant/eval_data.h"
#include "server/quant/input_gram.h"
#include "server/quant/model_quantizer.h"
#include "server/quant/quantized_linear.h"
#include "server/quant/search.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;

// Correlated inputs x = A z (z Gaussian), so H has off-diagonal mass GPTQ can use.
InputGram SyntheticGram(int64_t cols, int64_t tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(cols * cols)), z(static_cast<size_t>(cols)),
      x(static_cast<size_t>(tokens * cols));
  for (auto& v : a) v = n(rng) / std::sqrt(static_cast<float>(cols));
  for (int64_t t = 0; t < tokens; ++t) {
    for (auto& v : z) v = n(rng);
    for (int64_t i = 0; i < cols; ++i) {
      float s = z[i];
      for (int64_t j = 0; j < cols; ++j) s += a[i * cols + j] * z[j];
      x[t * cols + i] = s;
    }
  }
  InputGram g;
  g.cols = cols;
  AccumulateGram(x.data(), tokens, &g);
  return g;
}

std::vector<float> RandomWeights(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& v : w) v = d(rng);
  return w;
}

double DiagWeightedError(const std::vector<float>& w, const QuantizedMatrix& q, const InputGram& g) {
  const std::vector<float> wq = Dequantize(q);
  double e = 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t j = 0; j < q.cols; ++j) {
      const double d = w[r * q.cols + j] - wq[r * q.cols + j];
      e += g.h[j * q.cols + j] * d * d;
    }
  }
  return e;
}

// w' = m + s * L[q] decoded here from the codes, scales, zeros and grid ids (the seam's layout,
// kernels/packed_matrix.h), independently of Dequantize; ids checked < kGridCount.
std::vector<float> GridDequant(const QuantizedMatrix& q) {
  const int64_t gpr = kernels::GroupsPerRow(q.cols, q.group_size), wpr = kernels::WordsPerRow(q.cols, q.bits);
  const int64_t ipr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
  std::vector<float> out(static_cast<size_t>(q.rows * q.cols));
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t j = 0; j < q.cols; ++j) {
      const int64_t k = j / q.group_size;
      const uint32_t id = q.has_grids() ? kernels::PackedCode(q.grid_ids.data() + r * ipr, k, kernels::kGridIdBits) : 0;
      EXPECT_LT(id, static_cast<uint32_t>(kernels::kGridCount));
      const float* lv = kernels::GridLevels(q.bits, static_cast<int>(id));
      const uint32_t c = kernels::PackedCode(q.codes.data() + r * wpr, j, q.bits);
      const float s = HalfToFloat(q.scales[r * gpr + k]), m = HalfToFloat(q.zeros[r * gpr + k]);
      out[r * q.cols + j] = m + s * lv[c];
    }
  }
  return out;
}

// ||(W - W')X^T||^2 and the diag(H)-weighted squared error with W' from GridDequant.
double GridOutputError(const std::vector<float>& w, const QuantizedMatrix& q, const InputGram& g) {
  const std::vector<float> wq = GridDequant(q);
  std::vector<float> d(wq.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = w[i] - wq[i];
  return OutputEnergy(d.data(), q.rows, g);
}
double GridDiagError(const std::vector<float>& w, const QuantizedMatrix& q, const InputGram& g) {
  const std::vector<float> wq = GridDequant(q);
  double e = 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t j = 0; j < q.cols; ++j) {
      const double d = w[r * q.cols + j] - wq[r * q.cols + j];
      e += g.h[j * q.cols + j] * d * d;
    }
  }
  return e;
}

TEST(RoundingTest, EveryRoundingHasRtnLayoutAndExactBits) {
  const int64_t rows = 24, cols = 200;  // ragged last group at g = 64
  const std::vector<float> w = RandomWeights(rows * cols, 1);
  const InputGram g = SyntheticGram(cols, 400, 2);
  for (int bits : {2, 3, 4, 5, 8}) {
    for (bool sym : {false, true}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 64;
      cfg.symmetric = sym;
      auto rtn = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kRtn, nullptr);
      ASSERT_TRUE(rtn.ok());
      for (Rounding r : {Rounding::kMse, Rounding::kGptq}) {
        auto q = QuantizeMatrixRounded(w.data(), rows, cols, cfg, r, &g);
        ASSERT_TRUE(q.ok()) << q.status();
        EXPECT_EQ(q->rounding, r);
        EXPECT_EQ(q->codes.size(), rtn->codes.size());
        EXPECT_EQ(q->scales.size(), rtn->scales.size());
        EXPECT_EQ(q->zeros.size(), rtn->zeros.size());
        EXPECT_DOUBLE_EQ(q->BitsPerParam(), BitsPerParam(bits, 64, cols, sym));
        EXPECT_DOUBLE_EQ(q->BitsPerParam(), bits + (sym ? 16.0 : 32.0) * 4 / cols);  // 4 groups of <= 64
        if (sym) {  // symmetric zeros stay a function of the scale (artifacts do not store them)
          for (size_t i = 0; i < q->scales.size(); ++i) EXPECT_EQ(q->zeros[i], SymmetricZero(q->scales[i], bits));
        }
        // Packed as slq-packed-v1: the op's packed view decodes to exactly Dequantize.
        QuantizedLinear op(*q);
        EXPECT_EQ(op.packed()->quantizer, RoundingName(r));
        EXPECT_EQ(op.WeightF32(), Dequantize(*q));
      }
    }
  }
}

// Grids (Grid Games): mse and gptq fill one 2-bit grid id per group in the seam's layout, are
// charged + 2 bits per group, decode as m + s * L[q] (also through the packed op), and refuse
// symmetric scales. mse with grids is never worse than mse without on its own objective (grid 0
// with the same trims is a candidate); on these correlated inputs gptq with grids lowers the
// output error below gptq without them and below RTN with grids.
TEST(RoundingTest, GridsFillIdsChargeTheirBitsAndLowerTheError) {
  const int64_t rows = 24, cols = 200;  // ragged last group at g = 64
  const std::vector<float> w = RandomWeights(rows * cols, 21);
  const InputGram g = SyntheticGram(cols, 400, 22);
  for (int bits : {2, 3, 4, 5, 8}) {
    for (bool act_order : {false, true}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 64;
      QuantConfig grid_cfg = cfg;
      grid_cfg.grids = true;
      const GptqOptions opt{.act_order = act_order};
      auto mse = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kMse, &g);
      auto mse_grid = QuantizeMatrixRounded(w.data(), rows, cols, grid_cfg, Rounding::kMse, &g);
      auto gptq = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kGptq, &g, opt);
      auto gptq_grid = QuantizeMatrixRounded(w.data(), rows, cols, grid_cfg, Rounding::kGptq, &g, opt);
      ASSERT_TRUE(mse.ok() && mse_grid.ok() && gptq.ok() && gptq_grid.ok()) << gptq_grid.status();
      EXPECT_FALSE(mse->has_grids());
      EXPECT_FALSE(gptq->has_grids());
      for (const QuantizedMatrix* q : {&*mse_grid, &*gptq_grid}) {
        ASSERT_TRUE(q->has_grids());
        EXPECT_EQ(q->grid_ids.size(), static_cast<size_t>(rows * kernels::WordsPerRow(4, kernels::kGridIdBits)));
        EXPECT_EQ(q->codes.size(), mse->codes.size());
        EXPECT_DOUBLE_EQ(q->BitsPerParam(), bits + 34.0 * 4 / cols);  // 4 groups of <= 64
        EXPECT_DOUBLE_EQ(q->BitsPerParam(), BitsPerParam(bits, 64, cols, false, true));
        const std::vector<float> mine = GridDequant(*q);
        EXPECT_EQ(Dequantize(*q), mine) << "bits " << bits;
        QuantizedLinear op(*q);
        EXPECT_EQ(op.WeightF32(), mine);
      }
      // Some group leaves the uniform grid (else the ids would say nothing).
      std::set<uint32_t> used;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < 4; ++k)
          used.insert(kernels::PackedCode(gptq_grid->grid_ids.data() + r, k, 2));  // 1 word per row
      }
      EXPECT_GT(used.size(), 1u) << bits;
      EXPECT_LE(GridDiagError(w, *mse_grid, g), GridDiagError(w, *mse, g) * (1 + 1e-12)) << bits;
      if (bits <= 4) {
        auto rtn_grid = QuantizeMatrixRounded(w.data(), rows, cols, grid_cfg, Rounding::kRtn, nullptr);
        ASSERT_TRUE(rtn_grid.ok());
        const double eg = GridOutputError(w, *gptq_grid, g);
        EXPECT_LT(eg, GridOutputError(w, *gptq, g)) << bits << " act-order " << act_order;
        EXPECT_LT(eg, GridOutputError(w, *rtn_grid, g)) << bits << " act-order " << act_order;
      }
    }
  }
  QuantConfig sym;
  sym.symmetric = true;
  sym.grids = true;
  for (Rounding r : {Rounding::kMse, Rounding::kGptq}) {
    auto q = QuantizeMatrixRounded(w.data(), rows, cols, sym, r, &g);
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument) << RoundingName(r);
  }
}

// The stored S8 codes of q expand (ExpandScaleCodes, the one expansion) to exactly its fp16
// scales / zeros (symmetric: zeros = SymmetricZero of the scale), and the base is the weights'.
void ExpectS8Expansion(const QuantizedMatrix& q, const std::vector<float>& w) {
  ASSERT_TRUE(q.has_scale_codes());
  ASSERT_EQ(q.scale_codes.size(), q.scales.size());
  ASSERT_EQ(q.zero_points.size(), q.symmetric ? 0u : q.scales.size());
  const int64_t g = q.group_size < 0 ? q.cols : q.group_size;
  EXPECT_EQ(q.scale_base, S8ScaleBase(w.data(), q.rows, q.cols, g, q.bits, q.symmetric));
  std::vector<uint16_t> s(q.scales.size()), z(q.zeros.size());
  kernels::ExpandScaleCodes(q.scale_codes.data(), q.symmetric ? nullptr : q.zero_points.data(),
                            static_cast<int64_t>(s.size()), q.scale_base, s.data(), z.data());
  if (q.symmetric) {
    for (size_t i = 0; i < s.size(); ++i) z[i] = SymmetricZero(s[i], q.bits);
  }
  EXPECT_EQ(s, q.scales);
  EXPECT_EQ(z, q.zeros);
  for (uint8_t p : q.zero_points) EXPECT_LT(p, 1 << q.bits);
}

// S8 scales (QuantConfig::scales = kS8) under mse and gptq (natural and act-order, grids on and
// off, symmetric and asymmetric, a ragged last group): the codes expand to exactly the fp16
// scales/zeros the codes were rounded against, the layout is RTN's, bits/param are the S8 form's
// exactly (8 + bits per asymmetric group, 8 per symmetric one, + 2 with grids, + the 32-bit base
// once), the packed op decodes to Dequantize; mse in S8 is never worse than RTN in S8 on its own
// objective (diag(H)-weighted error; its candidates include RTN's), and gptq in S8 lowers the
// output error below RTN in S8 on these correlated inputs.
TEST(RoundingTest, S8ScalesUnderMseAndGptqExpandExactlyAndChargeTheirBits) {
  const int64_t rows = 24, cols = 200;  // ragged last group at g = 64
  const std::vector<float> w = RandomWeights(rows * cols, 31);
  const InputGram g = SyntheticGram(cols, 400, 32);
  for (int bits : {2, 3, 4, 5, 8}) {
    for (bool sym : {false, true}) {
      for (bool grids : {false, true}) {
        if (sym && grids) continue;
        QuantConfig cfg;
        cfg.bits = bits;
        cfg.group_size = 64;
        cfg.symmetric = sym;
        cfg.grids = grids;
        cfg.scales = ScaleFormat::kS8;
        auto rtn = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kRtn, nullptr);
        ASSERT_TRUE(rtn.ok()) << rtn.status();
        const double want = bits + ((sym ? 8.0 : 8.0 + bits) + (grids ? 2.0 : 0.0)) * 4 / cols + 32.0 / (rows * cols);
        for (bool act_order : {false, true}) {
          for (Rounding r : {Rounding::kMse, Rounding::kGptq}) {
            if (r == Rounding::kMse && act_order) continue;
            auto q = QuantizeMatrixRounded(w.data(), rows, cols, cfg, r, &g, GptqOptions{.act_order = act_order});
            ASSERT_TRUE(q.ok()) << q.status();
            const std::string what =
                absl::StrCat(RoundingName(r), " bits ", bits, " sym ", sym, " grids ", grids, " act-order ", act_order);
            EXPECT_EQ(q->rounding, r);
            EXPECT_EQ(q->codes.size(), rtn->codes.size());
            EXPECT_EQ(q->has_grids(), grids);
            EXPECT_DOUBLE_EQ(q->BitsPerParam(), want) << what;
            EXPECT_DOUBLE_EQ(q->BitsPerParam(), BitsPerParam(bits, 64, cols, sym, grids, ScaleFormat::kS8, rows));
            ExpectS8Expansion(*q, w);
            EXPECT_EQ(Dequantize(*q), GridDequant(*q)) << what;
            QuantizedLinear op(*q);
            EXPECT_EQ(op.WeightF32(), Dequantize(*q)) << what;
            if (r == Rounding::kMse) {
              EXPECT_LE(GridDiagError(w, *q, g), GridDiagError(w, *rtn, g) * (1 + 1e-12)) << what;
            } else if (bits <= 4) {
              EXPECT_LT(OutputError(w.data(), *q, g), 0.9 * OutputError(w.data(), *rtn, g)) << what;
            }
          }
        }
      }
    }
  }
  // S8 scales and a rotation: refused (the seam's contract), for every rounding.
  QuantConfig rot;
  rot.scales = ScaleFormat::kS8;
  rot.rotate = true;
  for (Rounding r : {Rounding::kRtn, Rounding::kMse, Rounding::kGptq}) {
    EXPECT_EQ(QuantizeMatrixRounded(w.data(), rows, cols, rot, r, &g).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// Act-order rounds columns out of order but keeps static, natural-order groups: the layout,
// bits/param and every group's (scale, zero) equal RTN's; the codes differ from natural-order
// GPTQ, and the output error on the Gram is below RTN's.
TEST(RoundingTest, ActOrderKeepsTheLayoutAndTheGroups) {
  const int64_t rows = 24, cols = 200;  // ragged last group at g = 64
  const std::vector<float> w = RandomWeights(rows * cols, 11);
  InputGram g = SyntheticGram(cols, 400, 12);
  // Uneven input scales, so descending diag(H) is far from the natural order.
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> u(0.2, 3.0);
  std::vector<double> f(static_cast<size_t>(cols));
  for (auto& v : f) v = u(rng);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) g.h[i * cols + j] *= f[i] * f[j];
  }
  for (int bits : {3, 4}) {
    for (bool sym : {false, true}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 64;
      cfg.symmetric = sym;
      auto rtn = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kRtn, nullptr);
      auto nat = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kGptq, &g);
      // Without the refit (it would move the static groups' scale/zero; its own test is below).
      auto act = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kGptq, &g,
                                       GptqOptions{.act_order = true, .refit = false});
      ASSERT_TRUE(rtn.ok() && nat.ok() && act.ok()) << act.status();
      EXPECT_EQ(act->rounding, Rounding::kGptq);
      EXPECT_EQ(act->codes.size(), rtn->codes.size());
      EXPECT_DOUBLE_EQ(act->BitsPerParam(), rtn->BitsPerParam());
      EXPECT_EQ(act->scales, rtn->scales);  // static groups from the weights before any update
      EXPECT_EQ(act->zeros, rtn->zeros);
      EXPECT_NE(act->codes, nat->codes);
      QuantizedLinear op(*act);
      EXPECT_EQ(op.WeightF32(), Dequantize(*act));
      EXPECT_LT(OutputError(w.data(), *act, g), 0.9 * OutputError(w.data(), *rtn, g)) << bits << " sym " << sym;
    }
  }
}

TEST(RoundingTest, NeedsTheGramAndRefusesRotation) {
  const std::vector<float> w = RandomWeights(8 * 64, 3);
  QuantConfig cfg;
  cfg.group_size = 32;
  EXPECT_EQ(QuantizeMatrixRounded(w.data(), 8, 64, cfg, Rounding::kGptq, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  const InputGram other = SyntheticGram(32, 64, 4);
  EXPECT_FALSE(QuantizeMatrixRounded(w.data(), 8, 64, cfg, Rounding::kMse, &other).ok());
  const InputGram g = SyntheticGram(64, 128, 5);
  cfg.rotate = true;
  EXPECT_FALSE(QuantizeMatrixRounded(w.data(), 8, 64, cfg, Rounding::kGptq, &g).ok());
}

TEST(RoundingTest, ParsesQuantizerListsAndChoices) {
  auto r = ParseRoundings("rtn, gptq,mse");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<Rounding>{Rounding::kRtn, Rounding::kGptq, Rounding::kMse}));
  EXPECT_FALSE(ParseRoundings("rtn,awq").ok());
  EXPECT_FALSE(ParseRoundings("rtn,rtn").ok());
  EXPECT_FALSE(ParseRoundings("").ok());
  EXPECT_EQ(EncodeChoice(4, Rounding::kRtn), 4);  // old allocations read unchanged
  for (int b = 2; b <= 8; ++b) {
    for (Rounding x : {Rounding::kRtn, Rounding::kMse, Rounding::kGptq}) {
      const int c = EncodeChoice(b, x);
      EXPECT_FALSE(IsDenseChoice(c));
      EXPECT_EQ(ChoiceBits(c), b);
      EXPECT_EQ(ChoiceRounding(c), x);
      EXPECT_TRUE(CheckChoice(c).ok());
    }
  }
  EXPECT_TRUE(IsDenseChoice(0) && IsDenseChoice(16));
  EXPECT_FALSE(CheckChoice(9).ok());
  EXPECT_FALSE(CheckChoice(EncodeChoice(4, Rounding::kGptq) + kChoiceStride).ok());
}

// The knapsack charges each choice its bits: at equal cost it takes the rounding with less damage.
TEST(RoundingTest, SearchPicksACheaperRoundingAtEqualDamage) {
  const double p = 1000;
  LayerOptions l;
  l.name = "x";
  for (auto [c, dmg] : {std::pair{EncodeChoice(4, Rounding::kRtn), 0.05},
                        {EncodeChoice(8, Rounding::kRtn), 1e-4},
                        {EncodeChoice(4, Rounding::kGptq), 1e-4},
                        {EncodeChoice(8, Rounding::kGptq), 1e-4}}) {
    l.bits.push_back(c);
    l.cost.push_back(p * BitsPerParam(ChoiceBits(c), 64, 64));
    l.damage.push_back(dmg);
  }
  for (SearchMethod m : {SearchMethod::kDynamicProgramming, SearchMethod::kLagrangian}) {
    auto a = MinCostForDamage({l, l}, 3e-4, m);
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(a->feasible);
    for (int c : a->bits) EXPECT_EQ(c, EncodeChoice(4, Rounding::kGptq));
  }
  // With only RTN choices the same damage costs 8 bits.
  LayerOptions r = l;
  r.bits.resize(2);
  r.cost.resize(2);
  r.damage.resize(2);
  auto a = MinCostForDamage({r, r}, 3e-4, SearchMethod::kDynamicProgramming);
  ASSERT_TRUE(a.ok());
  for (int c : a->bits) EXPECT_EQ(c, 8);
}

// The refit (GptqOptions::refit, codes held fixed; refit_rounds alternations): on correlated
// inputs, every width, fp16 and S8 scales, grids on and off, a ragged last group, it never raises
// the Gram objective tr((W - W')H(W - W')^T) above plain GPTQ's, keeps the codes and grid ids of
// plain GPTQ (no alternation), the layout and bits/param; S8 codes stay valid and expand exactly,
// the packed form decodes to Dequantize, and with fp16 scales it lowers the objective strictly.
// Symmetric matrices are left as GPTQ fits them.
TEST(RoundingTest, RefitNeverRaisesTheGramObjectiveAndKeepsTheLayout) {
  const int64_t rows = 16, cols = 200;  // ragged last group at g = 64
  const std::vector<float> w = RandomWeights(rows * cols, 41);
  const InputGram g = SyntheticGram(cols, 400, 42);
  for (int bits : {3, 4, 6, 8}) {
    for (ScaleFormat f : {ScaleFormat::kFp16, ScaleFormat::kS8}) {
      for (bool grids : {false, true}) {
        QuantConfig cfg;
        cfg.bits = bits;
        cfg.group_size = 64;
        cfg.grids = grids;
        cfg.scales = f;
        const std::string what = absl::StrCat("bits ", bits, " ", ScaleFormatName(f), " grids ", grids);
        auto plain = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kGptq, &g, GptqOptions{.refit = false});
        auto refit = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kGptq, &g,
                                           GptqOptions{.refit = true, .refit_s8 = true});
        auto alt = QuantizeMatrixRounded(w.data(), rows, cols, cfg, Rounding::kGptq, &g,
                                         GptqOptions{.refit = true, .refit_s8 = true, .refit_rounds = 2});
        ASSERT_TRUE(plain.ok() && refit.ok() && alt.ok()) << refit.status();
        const double e0 = OutputError(w.data(), *plain, g);
        EXPECT_LE(OutputError(w.data(), *refit, g), e0) << what;
        EXPECT_LE(OutputError(w.data(), *alt, g), OutputError(w.data(), *refit, g)) << what;
        if (f == ScaleFormat::kFp16) {
          EXPECT_LT(OutputError(w.data(), *refit, g), 0.995 * e0) << what;
        }
        EXPECT_EQ(refit->codes, plain->codes) << what;
        EXPECT_EQ(refit->grid_ids, plain->grid_ids) << what;
        for (const QuantizedMatrix* q : {&*refit, &*alt}) {
          EXPECT_EQ(q->codes.size(), plain->codes.size());
          EXPECT_EQ(q->scales.size(), plain->scales.size());
          EXPECT_EQ(q->grid_ids.size(), plain->grid_ids.size());
          EXPECT_EQ(q->scale_codes.size(), plain->scale_codes.size());
          EXPECT_DOUBLE_EQ(q->BitsPerParam(), plain->BitsPerParam()) << what;
          EXPECT_EQ(q->rounding, Rounding::kGptq);
          if (f == ScaleFormat::kS8) ExpectS8Expansion(*q, w);
          EXPECT_EQ(Dequantize(*q), GridDequant(*q)) << what;
          QuantizedLinear op(*q);
          EXPECT_EQ(op.WeightF32(), Dequantize(*q)) << what;
        }
      }
    }
  }
  QuantConfig sym;
  sym.bits = 4;
  sym.group_size = 64;
  sym.symmetric = true;
  auto a = QuantizeMatrixRounded(w.data(), rows, cols, sym, Rounding::kGptq, &g, GptqOptions{.refit = false});
  auto b = QuantizeMatrixRounded(w.data(), rows, cols, sym, Rounding::kGptq, &g, GptqOptions{.refit = true});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->scales, b->scales);
  EXPECT_EQ(a->codes, b->codes);
}

// Real activations: tinystories-656k on its calibration text. GPTQ fitted on the calibration
// windows reduces ||(W - W')X||_F against RTN on those windows AND on held-out windows; MSE is
// never worse than RTN on its own objective (diag(H)-weighted squared error).
class RealLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = testing::ModelsDir() + "/tinystories-656k";
    auto m = LoadModel(dir);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
    auto tok = Tokenizer::FromHfDir(dir);
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto text = ReadFile(testing::DataDir() + "/tinystories-valid-part1.txt");
    ASSERT_TRUE(text.ok());
    EvalDataOptions o;
    o.seq_len = 64;
    o.seq_len = 128;  // the pipeline's defaults (eval_data.h)
    o.max_calibration_sequences = 16;
    o.max_heldout_sequences = 16;
    auto d = PrepareEvalData(*text, **tok, o);
    ASSERT_TRUE(d.ok()) << d.status();
    data_ = std::move(*d);
    for (const LinearSlot& s : model_->LinearSlots()) {
      if (s.layer >= 0) names_.push_back(s.name);
    }
    auto cal = CaptureInputGrams(*model_, names_, data_.calibration);
    auto held = CaptureInputGrams(*model_, names_, data_.heldout);
    ASSERT_TRUE(cal.ok() && held.ok()) << cal.status();
    cal_ = std::move(*cal);
    held_ = std::move(*held);
  }
  std::unique_ptr<Model> model_;
  EvalData data_;
  std::vector<std::string> names_;
  std::map<std::string, InputGram> cal_, held_;
};

TEST_F(RealLayerTest, GramsMatchTheTokensAndLeaveTheModelAsItWas) {
  ASSERT_EQ(names_.size(), 14u);
  for (const LinearSlot& s : model_->LinearSlots()) EXPECT_EQ((*s.op)->Describe(), "dense f32");
  for (const auto& n : names_) {
    EXPECT_EQ(cal_.at(n).tokens, data_.CalibrationTokens()) << n;
    EXPECT_GT(cal_.at(n).h[0], 0) << n;
  }
  // Capturing again gives the same Gram (the forward pass is deterministic).
  auto again = CaptureInputGrams(*model_, {names_[0]}, data_.calibration);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->at(names_[0]).h, cal_.at(names_[0]).h);
}

TEST_F(RealLayerTest, GptqReducesOutputErrorAndMseNeverLosesOnItsObjective) {
  ModelQuantizer mq(model_.get(), QuantConfig{}, false);
  ASSERT_TRUE(mq.Init().ok());
  double rtn_total = 0, gptq_total = 0, rtn_held = 0, gptq_held = 0;
  for (const auto& name : names_) {
    auto w = mq.Weights(name);
    ASSERT_TRUE(w.ok());
    const SlotInfo* info = nullptr;
    for (const auto& s : mq.slots()) {
      if (s.name == name) info = &s;
    }
    for (int bits : {3, 4}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 64;
      auto rtn = QuantizeMatrixRounded((*w)->data(), info->rows, info->cols, cfg, Rounding::kRtn, nullptr);
      auto gptq = QuantizeMatrixRounded((*w)->data(), info->rows, info->cols, cfg, Rounding::kGptq, &cal_.at(name));
      auto mse = QuantizeMatrixRounded((*w)->data(), info->rows, info->cols, cfg, Rounding::kMse, &cal_.at(name));
      ASSERT_TRUE(rtn.ok() && gptq.ok() && mse.ok());
      const double er = OutputError((*w)->data(), *rtn, cal_.at(name));
      const double eg = OutputError((*w)->data(), *gptq, cal_.at(name));
      EXPECT_LT(eg, er) << name << " at " << bits << " bits";
      rtn_total += er;
      gptq_total += eg;
      rtn_held += OutputError((*w)->data(), *rtn, held_.at(name));
      gptq_held += OutputError((*w)->data(), *gptq, held_.at(name));
      EXPECT_LE(DiagWeightedError(**w, *mse, cal_.at(name)), DiagWeightedError(**w, *rtn, cal_.at(name)) * (1 + 1e-12))
          << name;
    }
  }
  // Summed over the model's layers: a clear reduction, and it carries over to held-out inputs
  // (measured with damp 0.1: 0.51x on calibration, 0.77x on held-out).
  EXPECT_LT(gptq_total, 0.6 * rtn_total);
  EXPECT_LT(gptq_held, 0.9 * rtn_held);
}

// Grids on real activations (calibration Gram, g128, 3 and 4 bits, all 14 layers): GPTQ with
// grids lowers ||(W - W')X||^2 against GPTQ without grids and against RTN with grids, summed over
// the layers and on held-out inputs too.
TEST_F(RealLayerTest, GptqWithGridsBeatsGptqAndRtnWithGrids) {
  ModelQuantizer mq(model_.get(), QuantConfig{}, false);
  ASSERT_TRUE(mq.Init().ok());
  double gptq[2] = {0, 0}, grid[2] = {0, 0}, rtn_grid[2] = {0, 0};  // [calibration, held-out]
  for (const SlotInfo& info : mq.slots()) {
    auto w = mq.Weights(info.name);
    ASSERT_TRUE(w.ok());
    for (int bits : {3, 4}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 128;
      QuantConfig grid_cfg = cfg;
      grid_cfg.grids = true;
      const float* x = (*w)->data();
      auto a = QuantizeMatrixRounded(x, info.rows, info.cols, cfg, Rounding::kGptq, &cal_.at(info.name));
      auto b = QuantizeMatrixRounded(x, info.rows, info.cols, grid_cfg, Rounding::kGptq, &cal_.at(info.name));
      auto c = QuantizeMatrixRounded(x, info.rows, info.cols, grid_cfg, Rounding::kRtn, nullptr);
      ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << b.status();
      ASSERT_TRUE(b->has_grids());
      EXPECT_TRUE(c->has_grids());
      EXPECT_EQ(Dequantize(*b), GridDequant(*b));
      const std::map<std::string, InputGram>* grams[2] = {&cal_, &held_};
      for (int s = 0; s < 2; ++s) {
        const InputGram& h = grams[s]->at(info.name);
        gptq[s] += GridOutputError(**w, *a, h);
        grid[s] += GridOutputError(**w, *b, h);
        rtn_grid[s] += GridOutputError(**w, *c, h);
      }
    }
  }
  std::cout << "gptq+grids / gptq: calibration " << grid[0] / gptq[0] << ", held-out " << grid[1] / gptq[1]
            << "; gptq+grids / rtn+grids: " << grid[0] / rtn_grid[0] << ", " << grid[1] / rtn_grid[1] << "\n";
  // Measured before the RTN grids landed: 0.80x / 0.79x of GPTQ without grids.
  EXPECT_LT(grid[0], 0.9 * gptq[0]);
  EXPECT_LT(grid[1], 0.9 * gptq[1]);
  EXPECT_LT(grid[0], 0.7 * rtn_grid[0]);
  EXPECT_LT(grid[1], rtn_grid[1]);
}

// The refit on real activations (tinystories-656k, calibration Gram, all 14 layers, g64 with
// grids, 4 and 7 bits, fp16 and S8 scales): per layer never above plain GPTQ's Gram objective;
// summed over the layers, with fp16 scales, strictly below it.
TEST_F(RealLayerTest, RefitNeverRaisesTheGramObjectiveOnRealLayers) {
  ModelQuantizer mq(model_.get(), QuantConfig{}, false);
  ASSERT_TRUE(mq.Init().ok());
  for (ScaleFormat f : {ScaleFormat::kFp16, ScaleFormat::kS8}) {
    double plain_total = 0, refit_total = 0;
    for (const SlotInfo& info : mq.slots()) {
      auto w = mq.Weights(info.name);
      ASSERT_TRUE(w.ok());
      const float* x = (*w)->data();
      for (int bits : {4, 7}) {
        QuantConfig cfg;
        cfg.bits = bits;
        cfg.group_size = 64;
        cfg.grids = true;
        cfg.scales = f;
        const InputGram& h = cal_.at(info.name);
        auto a = QuantizeMatrixRounded(x, info.rows, info.cols, cfg, Rounding::kGptq, &h, GptqOptions{.refit = false});
        auto b = QuantizeMatrixRounded(x, info.rows, info.cols, cfg, Rounding::kGptq, &h,
                                       GptqOptions{.refit = true, .refit_s8 = true});
        ASSERT_TRUE(a.ok() && b.ok()) << b.status();
        const double ea = OutputError(x, *a, h), eb = OutputError(x, *b, h);
        EXPECT_LE(eb, ea) << info.name << " " << bits << " " << ScaleFormatName(f);
        plain_total += ea;
        refit_total += eb;
      }
    }
    std::cout << ScaleFormatName(f) << " refit / plain gptq (calibration Gram): " << refit_total / plain_total << "\n";
    if (f == ScaleFormat::kFp16) {
      EXPECT_LT(refit_total, 0.99 * plain_total);
    }
  }
}

// S8 scales on real activations (tinystories-656k, calibration Gram, all 14 layers, 3 and 4
// bits): GPTQ in S8 g64 lowers ||(W - W')X||^2 against RTN in S8 g64 (calibration and
// held-out), and at 4 bits GPTQ in S8 g64 (4 + 12/64 bits) beats GPTQ in fp16 g128 (4 + 32/128)
// at fewer bits, summed over the layers.
TEST_F(RealLayerTest, GptqInS8BeatsRtnInS8AndFp16G128AtFewerBits) {
  ModelQuantizer mq(model_.get(), QuantConfig{}, false);
  ASSERT_TRUE(mq.Init().ok());
  double rtn[2] = {0, 0}, gptq[2] = {0, 0}, gptq4[2] = {0, 0}, fp16_4[2] = {0, 0};  // [calibration, held-out]
  double bits_s8 = 0, bits_fp16 = 0, params = 0;
  for (const SlotInfo& info : mq.slots()) {
    auto w = mq.Weights(info.name);
    ASSERT_TRUE(w.ok());
    const float* x = (*w)->data();
    for (int bits : {3, 4}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 64;
      cfg.scales = ScaleFormat::kS8;
      QuantConfig fp16 = cfg;
      fp16.group_size = 128;
      fp16.scales = ScaleFormat::kFp16;
      auto a = QuantizeMatrixRounded(x, info.rows, info.cols, cfg, Rounding::kRtn, nullptr);
      auto b = QuantizeMatrixRounded(x, info.rows, info.cols, cfg, Rounding::kGptq, &cal_.at(info.name));
      auto c = QuantizeMatrixRounded(x, info.rows, info.cols, fp16, Rounding::kGptq, &cal_.at(info.name));
      ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << b.status();
      ExpectS8Expansion(*b, **w);
      const std::map<std::string, InputGram>* grams[2] = {&cal_, &held_};
      for (int s = 0; s < 2; ++s) {
        const InputGram& h = grams[s]->at(info.name);
        rtn[s] += OutputError(x, *a, h);
        gptq[s] += OutputError(x, *b, h);
        if (bits == 4) {
          gptq4[s] += OutputError(x, *b, h);
          fp16_4[s] += OutputError(x, *c, h);
        }
      }
      if (bits == 4) {
        const double p = static_cast<double>(info.rows * info.cols);
        bits_s8 += p * b->BitsPerParam();
        bits_fp16 += p * c->BitsPerParam();
        params += p;
      }
    }
  }
  std::cout << "gptq s8 g64 / rtn s8 g64: calibration " << gptq[0] / rtn[0] << ", held-out " << gptq[1] / rtn[1]
            << "; 4-bit gptq s8 g64 / gptq fp16 g128: calibration " << gptq4[0] / fp16_4[0] << ", held-out "
            << gptq4[1] / fp16_4[1] << " at " << bits_s8 / params << " vs " << bits_fp16 / params << " bits\n";
  EXPECT_LT(gptq[0], 0.7 * rtn[0]);
  EXPECT_LT(gptq[1], rtn[1]);
  EXPECT_LT(bits_s8, bits_fp16);
  EXPECT_LT(gptq4[0], fp16_4[0]);
  EXPECT_LT(gptq4[1], fp16_4[1]);
}

// The pipeline's scheme: the Gram from the Gram windows (eval_data.h AddGramWindows; on this
// small text the calibration windows split by document), scored on held-out windows it never
// saw. GPTQ, in natural and in act-order, still lowers ||(W - W')X||^2 summed over the layers
// against RTN with damp 1. The Gram windows here are only 5 (530 tokens for layers of up to 384
// inputs): at damp 0.1 GPTQ merely ties RTN on held-out (measured 0.99x natural, 1.02x
// act-order at g64); slq_gptq_unit_bench gives the same picture at g128.
TEST_F(RealLayerTest, GptqFromTheGramWindowsReducesHeldoutOutputError) {
  const std::string dir = testing::ModelsDir() + "/tinystories-656k";
  auto tok = Tokenizer::FromHfDir(dir);
  auto text = ReadFile(testing::DataDir() + "/tinystories-valid-part1.txt");
  ASSERT_TRUE(tok.ok() && text.ok());
  EvalDataOptions o;
  o.max_calibration_sequences = 16;
  o.max_heldout_sequences = 16;
  EvalData d = data_;
  ASSERT_TRUE(AddGramWindows(*text, **tok, o, GramDataOptions{}, &d).ok());
  ASSERT_EQ(d.heldout, data_.heldout);
  auto gram = CaptureInputGrams(*model_, names_, d.gram);
  ASSERT_TRUE(gram.ok()) << gram.status();
  ModelQuantizer mq(model_.get(), QuantConfig{}, false);
  ASSERT_TRUE(mq.Init().ok());
  double rtn_held = 0, held[2] = {0, 0};
  for (const SlotInfo& info : mq.slots()) {
    auto w = mq.Weights(info.name);
    ASSERT_TRUE(w.ok());
    for (int bits : {3, 4}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 64;
      auto rtn = QuantizeMatrixRounded((*w)->data(), info.rows, info.cols, cfg, Rounding::kRtn, nullptr);
      ASSERT_TRUE(rtn.ok());
      rtn_held += OutputError((*w)->data(), *rtn, held_.at(info.name));
      for (int act = 0; act < 2; ++act) {
        auto q = QuantizeMatrixRounded((*w)->data(), info.rows, info.cols, cfg, Rounding::kGptq, &gram->at(info.name),
                                       GptqOptions{.damp = 1.0, .act_order = act == 1});
        ASSERT_TRUE(q.ok()) << q.status();
        EXPECT_EQ(q->codes.size(), rtn->codes.size());
        held[act] += OutputError((*w)->data(), *q, held_.at(info.name));
      }
    }
  }
  EXPECT_LT(held[0], 0.9 * rtn_held) << "natural " << held[0] / rtn_held;
  EXPECT_LT(held[1], 0.9 * rtn_held) << "act-order " << held[1] / rtn_held;
}

TEST_F(RealLayerTest, ArtifactRecordsEachLayersRoundingAndOldManifestsReadAsRtn) {
  ModelQuantizer mq(model_.get(), QuantConfig{.bits = 4, .group_size = 64}, false);
  ASSERT_TRUE(mq.Init().ok());
  EXPECT_EQ(mq.SetBits(names_[0], EncodeChoice(4, Rounding::kGptq)).code(), absl::StatusCode::kFailedPrecondition);
  mq.SetInputGrams(cal_);
  std::map<std::string, int> choice;
  for (size_t i = 0; i < names_.size(); ++i) {
    choice[names_[i]] = EncodeChoice(4 + static_cast<int>(i % 2), static_cast<Rounding>(i % 3));
  }
  ASSERT_TRUE(mq.Apply(choice).ok());
  const std::string dir = (fs::temp_directory_path() / ("slq_rounding_test_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  ASSERT_TRUE(WriteArtifact(*model_, dir, {}).ok());
  auto art = LoadArtifact(dir);
  ASSERT_TRUE(art.ok()) << art.status();
  std::map<std::string, const LinearOp*> loaded;
  for (const LinearSlot& s : art->model->LinearSlots()) loaded[s.name] = s.op->get();
  for (const LinearSlot& s : model_->LinearSlots()) {
    if (s.layer < 0) continue;
    const PackedLinear* a = (*s.op)->packed();
    const PackedLinear* b = loaded.at(s.name)->packed();
    ASSERT_TRUE(a && b) << s.name;
    EXPECT_EQ(b->quantizer, RoundingName(ChoiceRounding(choice[s.name]))) << s.name;
    EXPECT_EQ(b->view.bits, ChoiceBits(choice[s.name]));
    EXPECT_EQ(loaded.at(s.name)->WeightF32(), (*s.op)->WeightF32()) << s.name;  // bit-exact round trip
  }
  // A manifest without the field (written before roundings existed) loads as rtn.
  auto text = ReadFile(dir + "/" + kManifestName);
  ASSERT_TRUE(text.ok());
  nlohmann::json m = nlohmann::json::parse(*text);
  int erased = 0;
  for (auto& [name, info] : m["linears"].items()) erased += static_cast<int>(info.erase("quantizer"));
  EXPECT_EQ(erased, 14);
  ASSERT_TRUE(WriteFileAtomic(dir + "/" + kManifestName, m.dump()).ok());
  auto old = LoadArtifact(dir);
  ASSERT_TRUE(old.ok()) << old.status();
  for (const LinearSlot& s : old->model->LinearSlots()) {
    if (s.layer >= 0) {
      EXPECT_EQ((*s.op)->packed()->quantizer, "rtn") << s.name;
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace slq::quant
