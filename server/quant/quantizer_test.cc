#include "server/quant/quantizer.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "server/common/half.h"
#include "server/common/test_paths.h"
#include "server/model/safetensors.h"
#include "server/quant/packing.h"

namespace slq::quant {
namespace {

std::vector<float> Gaussian(int64_t n, uint32_t seed, float sigma = 0.02f, float mean = 0.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, sigma);
  std::vector<float> w(n);
  for (auto& x : w) x = d(rng);
  return w;
}

TEST(QuantizerTest, AsymmetricGroupMatchesFormulaWithFp16Params) {
  std::vector<float> w = Gaussian(128, 3, 0.05f, 0.01f);
  std::vector<uint8_t> codes(128);
  uint16_t s, z;
  QuantizeGroup(w.data(), 128, 4, false, false, codes.data(), &s, &z);
  const float lo = *std::min_element(w.begin(), w.end()), hi = *std::max_element(w.begin(), w.end());
  EXPECT_EQ(s, FloatToHalf((hi - lo) / 15.0f));
  EXPECT_EQ(z, FloatToHalf(lo));
  const float sf = HalfToFloat(s), zf = HalfToFloat(z);
  for (int i = 0; i < 128; ++i) {  // the stored code is the nearest point of the fp16 grid
    float best = 1e30f;
    for (int c = 0; c < 16; ++c) best = std::min(best, std::fabs(w[i] - (zf + sf * c)));
    EXPECT_LE(std::fabs(w[i] - (zf + sf * codes[i])), best + 1e-7f) << i;
  }
}

TEST(QuantizerTest, DequantizeIsExactlyStoredGridAndErrorShrinksWithBits) {
  const int64_t rows = 16, cols = 200;  // ragged last group at g = 64
  std::vector<float> w = Gaussian(rows * cols, 5);
  double prev = 1e9;
  for (int bits = 2; bits <= 8; ++bits) {
    QuantConfig cfg;
    cfg.bits = bits;
    cfg.group_size = 64;
    auto q = QuantizeMatrix(w.data(), rows, cols, cfg);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(q->scales.size(), static_cast<size_t>(rows * 4));
    const std::vector<float> d = Dequantize(*q);
    const std::vector<uint8_t> codes = UnpackCodes(q->codes.data(), rows, cols, bits);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t k = r * 4 + j / 64;
        EXPECT_EQ(d[r * cols + j], HalfToFloat(q->zeros[k]) + HalfToFloat(q->scales[k]) * codes[r * cols + j]);
      }
    }
    auto err = RelativeQuantError(w.data(), rows, cols, cfg);
    ASSERT_TRUE(err.ok());
    EXPECT_LT(*err, prev * 0.35) << bits;  // ~4x less noise per extra bit
    prev = *err;
  }
}

TEST(QuantizerTest, PerRowAndBitsAccounting) {
  EXPECT_DOUBLE_EQ(BitsPerParam(4, 128, 4096), 4.25);
  EXPECT_DOUBLE_EQ(BitsPerParam(4, -1, 128), 4.25);
  EXPECT_DOUBLE_EQ(BitsPerParam(3, 64, 200), 3 + 32.0 * 4 / 200);  // ragged: 4 groups
  std::vector<float> w = Gaussian(4 * 100, 9);
  QuantConfig cfg;
  cfg.group_size = -1;
  auto q = QuantizeMatrix(w.data(), 4, 100, cfg);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->group_size, 100);
  EXPECT_EQ(q->scales.size(), 4u);
  EXPECT_DOUBLE_EQ(q->BitsPerParam(), 4 + 0.32);
  // Symmetric: only the fp16 scale is stored (the zero is a function of it).
  EXPECT_DOUBLE_EQ(BitsPerParam(4, 128, 4096, /*symmetric=*/true), 4.125);
  EXPECT_DOUBLE_EQ(BitsPerParam(3, 64, 200, true), 3 + 16.0 * 4 / 200);
  cfg.symmetric = true;
  for (bool clip : {false, true}) {
    cfg.mse_clip = clip;
    auto qs = QuantizeMatrix(w.data(), 4, 100, cfg);
    ASSERT_TRUE(qs.ok());
    EXPECT_DOUBLE_EQ(qs->BitsPerParam(), 4 + 0.16);
    // The stored zero is exactly the one recomputed from the scale.
    for (size_t i = 0; i < qs->scales.size(); ++i) {
      EXPECT_EQ(qs->zeros[i], SymmetricZero(qs->scales[i], 4)) << i << " clip " << clip;
    }
  }
}

TEST(QuantizerTest, RejectsBadConfigAndNonFinite) {
  std::vector<float> w = Gaussian(64, 1);
  QuantConfig cfg;
  cfg.bits = 9;
  EXPECT_EQ(QuantizeMatrix(w.data(), 1, 64, cfg).status().code(), absl::StatusCode::kInvalidArgument);
  cfg.bits = 4;
  cfg.group_size = 0;
  EXPECT_FALSE(QuantizeMatrix(w.data(), 1, 64, cfg).ok());
  cfg.group_size = 32;
  w[7] = NAN;
  EXPECT_FALSE(QuantizeMatrix(w.data(), 1, 64, cfg).ok());
}

TEST(QuantizerTest, ConstantGroupIsExact) {
  std::vector<float> w(64, 0.25f);
  QuantConfig cfg;
  cfg.group_size = 32;
  auto q = QuantizeMatrix(w.data(), 1, 64, cfg);
  ASSERT_TRUE(q.ok());
  for (float x : Dequantize(*q)) EXPECT_EQ(x, 0.25f);
}

TEST(QuantizerTest, MseClipNeverIncreasesError) {
  const int64_t rows = 32, cols = 256;
  std::vector<float> w = Gaussian(rows * cols, 11);
  for (int64_t i = 0; i < rows * cols; i += 97) w[i] *= 8;  // outliers
  for (bool sym : {false, true}) {
    QuantConfig cfg;
    cfg.bits = 3;
    cfg.symmetric = sym;
    const double plain = *RelativeQuantError(w.data(), rows, cols, cfg);
    cfg.mse_clip = true;
    const double clipped = *RelativeQuantError(w.data(), rows, cols, cfg);
    EXPECT_LT(clipped, plain) << sym;
  }
}

TEST(QuantizerTest, RotationIsOrthogonalAndInvertedAtDequant) {
  const int64_t cols = 384;  // block 128
  Rotation rot = MakeRotation(cols, 42);
  EXPECT_EQ(rot.block, 128);
  std::vector<float> x = Gaussian(cols, 2, 1.0f), y = Gaussian(cols, 3, 1.0f);
  double dot = 0, nx = 0;
  for (int64_t j = 0; j < cols; ++j) dot += x[j] * y[j], nx += x[j] * x[j];
  ApplyRotation(rot, x.data(), 1, cols);
  ApplyRotation(rot, y.data(), 1, cols);
  double dot2 = 0, nx2 = 0;
  for (int64_t j = 0; j < cols; ++j) dot2 += x[j] * y[j], nx2 += x[j] * x[j];
  EXPECT_NEAR(dot2, dot, 1e-3);
  EXPECT_NEAR(nx2, nx, 1e-3);
  // 8-bit rotated quantization reconstructs the original weights closely.
  std::vector<float> w = Gaussian(8 * cols, 4);
  QuantConfig cfg;
  cfg.bits = 8;
  cfg.rotate = true;
  cfg.rotation_seed = 42;
  auto q = QuantizeMatrix(w.data(), 8, cols, cfg);
  ASSERT_TRUE(q.ok());
  const std::vector<float> back = DequantizeOriginalBasis(*q);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(back[i], w[i], 2e-3);
}

// Gamma-squared law (METHOD.md 3) on the real model's weights: at 8 bits, the total
// symmetric rounding-noise energy over the asymmetric one equals the gamma^2 of each group
// weighted by its asymmetric noise (times the small (2^b-1)/(2^b-2) level-count factor).
TEST(QuantizerTest, GammaSquaredLawOnRealWeights) {
  auto st = SafetensorsFile::Open(testing::ModelsDir() + "/tinystories-656k/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status();
  int checked = 0;
  for (const auto& [name, t] : (*st)->tensors()) {
    if (t.shape.size() != 2 || name.find("layers.") == std::string::npos) continue;
    const std::vector<float> w = *ToFloat32(t);
    const int64_t rows = t.shape[0], cols = t.shape[1], g = 64;
    const int bits = 8;
    QuantConfig cfg;
    cfg.bits = bits;
    cfg.group_size = g;
    auto qa = QuantizeMatrix(w.data(), rows, cols, cfg);
    cfg.symmetric = true;
    auto qs = QuantizeMatrix(w.data(), rows, cols, cfg);
    ASSERT_TRUE(qa.ok() && qs.ok());
    const std::vector<float> da = Dequantize(*qa), ds = Dequantize(*qs);
    double ea = 0, es = 0, pred_num = 0, pred_den = 0, mean_g2 = 0;
    int64_t groups = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j0 = 0; j0 < cols; j0 += g) {
        float lo = 1e30f, hi = -1e30f;
        double ga = 0, gs = 0;
        for (int64_t j = j0; j < j0 + g; ++j) {
          const float x = w[r * cols + j];
          lo = std::min(lo, x);
          hi = std::max(hi, x);
          ga += std::pow(x - da[r * cols + j], 2);
          gs += std::pow(x - ds[r * cols + j], 2);
        }
        const double gamma = 2.0 * std::max(std::fabs(lo), std::fabs(hi)) / (hi - lo);
        const double step_a = (hi - lo) / 255.0;
        pred_num += gamma * gamma * step_a * step_a;
        pred_den += step_a * step_a;
        mean_g2 += gamma * gamma;
        ea += ga;
        es += gs;
        ++groups;
      }
    }
    const double level_factor = std::pow(255.0 / 254.0, 2);
    const double measured = es / ea, predicted = level_factor * pred_num / pred_den;
    EXPECT_NEAR(measured / predicted, 1.0, 0.05)
        << name << " measured " << measured << " predicted " << predicted << " mean gamma^2 " << mean_g2 / groups;
    EXPECT_GT(mean_g2 / groups, 1.0);
    ++checked;
  }
  EXPECT_EQ(checked, 14);
}

}  // namespace
}  // namespace slq::quant
