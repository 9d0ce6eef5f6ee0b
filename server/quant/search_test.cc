#include "server/quant/search.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "server/quant/choice.h"

namespace slq::quant {
namespace {

std::vector<LayerOptions> RandomInstance(std::mt19937& rng, int layers, std::vector<int> bits) {
  std::uniform_int_distribution<int> params(1, 20);
  std::uniform_real_distribution<double> sens(0.1, 5.0);
  std::vector<LayerOptions> out;
  for (int l = 0; l < layers; ++l) {
    LayerOptions o;
    o.name = "l" + std::to_string(l);
    const int p = params(rng);
    const double s = sens(rng);
    for (int b : bits) {
      o.bits.push_back(b);
      o.cost.push_back(p * b);                        // integer: DP exact
      o.damage.push_back(s * p * std::pow(4.0, -b));  // ~ 4^-b noise
    }
    out.push_back(o);
  }
  return out;
}

// Exhaustive search: best (cost, damage) over all allocations.
void Brute(const std::vector<LayerOptions>& L, size_t l, double c, double d, double max_damage, double budget,
           double* best_cost, double* best_damage) {
  if (l == L.size()) {
    if (d <= max_damage + 1e-12) *best_cost = std::min(*best_cost, c);
    if (c <= budget + 1e-12) *best_damage = std::min(*best_damage, d);
    return;
  }
  for (size_t i = 0; i < L[l].cost.size(); ++i)
    Brute(L, l + 1, c + L[l].cost[i], d + L[l].damage[i], max_damage, budget, best_cost, best_damage);
}

TEST(SearchTest, DpIsOptimalAndLagrangianFeasibleVsBruteForce) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 30; ++trial) {
    auto L = RandomInstance(rng, 5, {2, 3, 4, 6, 8});
    double dmin = 0, dmax = 0, cmin = 0, cmax = 0;
    for (auto& l : L) dmin += l.damage.back(), dmax += l.damage.front(), cmin += l.cost.front(), cmax += l.cost.back();
    const double D = dmin + (dmax - dmin) * std::uniform_real_distribution<double>(0, 0.3)(rng);
    const double B = cmin + (cmax - cmin) * std::uniform_real_distribution<double>(0, 1)(rng);
    double bc = 1e300, bd = 1e300;
    Brute(L, 0, 0, 0, D, B, &bc, &bd);
    auto a = MinCostForDamage(L, D, SearchMethod::kDynamicProgramming);
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(a->feasible);
    EXPECT_DOUBLE_EQ(a->cost, bc);
    EXPECT_LE(a->damage, D + 1e-12);
    auto g = MinCostForDamage(L, D, SearchMethod::kLagrangian);
    ASSERT_TRUE(g.ok());
    EXPECT_LE(g->damage, D + 1e-12);
    EXPECT_GE(g->cost, bc);
    auto b = MinDamageForCost(L, B, SearchMethod::kDynamicProgramming);
    ASSERT_TRUE(b.ok());
    EXPECT_NEAR(b->damage, bd, 1e-12 * (1 + bd));
    EXPECT_LE(b->cost, B);
    auto bl = MinDamageForCost(L, B, SearchMethod::kLagrangian);
    ASSERT_TRUE(bl.ok());
    EXPECT_LE(bl->cost, B + 1e-9);
    EXPECT_GE(bl->damage, bd - 1e-12);
  }
}

TEST(SearchTest, NonIntegerCostsStayWithinBudget) {
  std::mt19937 rng(5);
  auto L = RandomInstance(rng, 300, {2, 3, 4, 5, 6, 7, 8});
  for (auto& l : L)
    for (auto& c : l.cost) c = c * 1013.37 + 0.25;
  double cmin = 0, cmax = 0;
  for (auto& l : L) cmin += l.cost.front(), cmax += l.cost.back();
  const double B = 0.5 * (cmin + cmax);
  auto a = MinDamageForCost(L, B, SearchMethod::kDynamicProgramming);
  auto g = MinDamageForCost(L, B, SearchMethod::kLagrangian);
  ASSERT_TRUE(a.ok() && g.ok());
  EXPECT_LE(a->cost, B);
  EXPECT_LE(g->cost, B);
  // The DP (fine bins, merged with the hull point) is never worse than the Lagrangian.
  EXPECT_LE(a->damage, g->damage * (1 + 1e-12));
}

TEST(SearchTest, TighterTargetNeverFewerBits) {
  std::mt19937 rng(2);
  auto L = RandomInstance(rng, 12, {4, 5, 6, 7, 8});
  double prev_cost = 0;
  double D = 0;
  for (auto& l : L) D += l.damage.front();
  for (int i = 0; i < 40; ++i, D *= 0.7) {
    for (auto m : {SearchMethod::kDynamicProgramming, SearchMethod::kLagrangian}) {
      auto a = MinCostForDamage(L, D, m);
      ASSERT_TRUE(a.ok());
      if (m == SearchMethod::kDynamicProgramming) {
        EXPECT_GE(a->cost, prev_cost);
        prev_cost = a->cost;
      }
    }
  }
}

TEST(SearchTest, InfeasibleTargetReturnsBestFoundWithNote) {
  std::mt19937 rng(3);
  auto L = RandomInstance(rng, 4, {4, 8});
  auto a = MinCostForDamage(L, 0.0, SearchMethod::kDynamicProgramming);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->feasible);
  EXPECT_NE(a->note.find("infeasible"), std::string::npos);
  for (int b : a->bits) EXPECT_EQ(b, 8);
  auto c = MinDamageForCost(L, 1.0, SearchMethod::kLagrangian);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->feasible);
  for (int b : c->bits) EXPECT_EQ(b, 4);
  EXPECT_FALSE(MinCostForDamage({}, 1.0, SearchMethod::kDynamicProgramming).ok());
}

TEST(SearchTest, ParsesFormats) {
  EXPECT_EQ(*ParseFormats("4-8"), (std::vector<int>{4, 8}));
  EXPECT_EQ(*ParseFormats("4-5-6-7-8"), (std::vector<int>{4, 5, 6, 7, 8}));
  EXPECT_EQ(*ParseFormats("2..8"), (std::vector<int>{2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(*ParseFormats("8,4,6"), (std::vector<int>{4, 6, 8}));
  EXPECT_EQ(*ParseFormats("4"), (std::vector<int>{4}));
  for (const char* bad : {"", "4-9", "1-4", "abc", "4..", "8..4", "4-6,8", "fp8"}) {
    auto r = ParseFormats(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("allowed"), std::string::npos);
  }
}

TEST(SearchTest, ParsesTargets) {
  auto t = ParseTarget("ear>=0.99");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, Target::Kind::kEar);
  EXPECT_DOUBLE_EQ(t->value, 0.99);
  EXPECT_EQ(ParseTarget("KL <= 0.01")->kind, Target::Kind::kKl);
  EXPECT_DOUBLE_EQ(ParseTarget("bits<=4.5")->value, 4.5);
  EXPECT_EQ(ParseTarget("tl")->kind, Target::Kind::kTaskLossless);
  for (const char* bad : {"ear>=1.5", "ear<=0.9", "kl<=-1", "bits<=1", "ppl<=2", "", "ear>=x"}) {
    EXPECT_EQ(ParseTarget(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// The knapsack charges each variant its exact bits: at equal damage it takes the symmetric
// variant (scale only: 8.125 bits/param at g128) over the asymmetric one (8.25), and g128 over
// g64; where the symmetric variant is worse, it pays for the asymmetric one.
TEST(SearchTest, PicksTheCheaperSymmetricVariantAtEqualDamage) {
  const ChoiceBase base{false, 128};
  const int64_t rows = 64, cols = 256;
  auto layer = [&](const std::string& name, double sym_damage) {
    LayerOptions l;
    l.name = name;
    for (auto [c, dmg] : {std::pair{Choice{4, Rounding::kRtn, false, 128}, 0.05},
                          {Choice{8, Rounding::kRtn, false, 128}, 1e-4},
                          {Choice{8, Rounding::kRtn, true, 128}, sym_damage},
                          {Choice{8, Rounding::kRtn, false, 64}, 1e-4},
                          {Choice{8, Rounding::kRtn, true, 64}, 1e-4}}) {
      l.bits.push_back(*EncodeChoice(c, base));
      l.cost.push_back(static_cast<double>(rows * cols) * c.BitsPerParam(rows, cols));
      l.damage.push_back(dmg);
    }
    return l;
  };
  const int sym8 = *EncodeChoice(Choice{8, Rounding::kRtn, true, 128}, base);
  EXPECT_EQ(sym8, 8 + 64);
  for (SearchMethod m : {SearchMethod::kDynamicProgramming, SearchMethod::kLagrangian}) {
    auto a = MinCostForDamage({layer("a", 1e-4), layer("b", 1e-4)}, 3e-4, m);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(a->feasible);
    EXPECT_EQ(a->bits, (std::vector<int>{sym8, sym8}));
    EXPECT_DOUBLE_EQ(a->cost, 2.0 * rows * cols * 8.125);
    // Layer b's symmetric variant hurts: b pays for asymmetric g128 (8.25), a stays symmetric.
    auto b = MinCostForDamage({layer("a", 1e-4), layer("b", 0.01)}, 3e-4, m);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->bits, (std::vector<int>{sym8, 8}));
  }
}

// The closed loop's second pass (pipeline_search.cc) runs over the base variant's options only:
// codes without the symmetry/group fields, in order, with their cost and damage.
TEST(SearchTest, BaseVariantOptionsKeepTheWidthAndRoundingChoices) {
  const ChoiceBase base{false, 128};
  LayerOptions l;
  l.name = "x";
  for (const Choice& c : {Choice{4, Rounding::kRtn, false, 128}, Choice{4, Rounding::kRtn, true, 128},
                          Choice{4, Rounding::kGptq, false, 128}, Choice{4, Rounding::kGptq, false, 64},
                          Choice{8, Rounding::kRtn, true, 64}, Choice{8, Rounding::kRtn, false, 128}}) {
    l.bits.push_back(*EncodeChoice(c, base));
    l.cost.push_back(c.BitsPerParam(1, 256));
    l.damage.push_back(1.0 / c.bits);
  }
  const std::vector<LayerOptions> b = BaseVariantOptions({l, l});
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].bits, (std::vector<int>{4, EncodeChoice(4, Rounding::kGptq), 8}));
  EXPECT_EQ(b[0].cost, (std::vector<double>{4.25, 4.25, 8.25}));
  EXPECT_EQ(b[1].damage, (std::vector<double>{0.25, 0.25, 0.125}));
  // Only base options: unchanged (the pipeline then skips the second pass).
  EXPECT_TRUE(BaseVariantOptions(b) == b);
  // A layer without any base option: nothing to restrict to.
  LayerOptions sym_only;
  sym_only.name = "y";
  sym_only.bits = {*EncodeChoice(Choice{8, Rounding::kRtn, true, 128}, base)};
  sym_only.cost = {8.0625};
  sym_only.damage = {0.1};
  EXPECT_TRUE(BaseVariantOptions({l, sym_only}) == (std::vector<LayerOptions>{l, sym_only}));
}

}  // namespace
}  // namespace slq::quant
