#include "server/quant/quantized_linear.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "kernels/dequant_ref.h"
#include "kernels/grids.h"
#include "kernels/packed_dot.h"
#include "server/common/half.h"
#include "server/quant/packing.h"

namespace slq::quant {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// y = Dequantize(W) x computed naively in fp64.
std::vector<double> Naive(const std::vector<float>& wd, int64_t out, int64_t in, const std::vector<float>& x,
                          int64_t n) {
  std::vector<double> y(n * out);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < out; ++r) {
      double a = 0;
      for (int64_t j = 0; j < in; ++j) a += static_cast<double>(wd[r * in + j]) * x[t * in + j];
      y[t * out + r] = a;
    }
  return y;
}

TEST(QuantizedLinearTest, MatchesReferenceForSingleAndBatchedInputs) {
  for (int bits : {2, 3, 4, 5, 8}) {
    for (int64_t g : {32, 64, -1}) {
      for (bool grids : {false, true}) {
        const int64_t out = 130, in = 200;  // ragged tiles and groups
        std::vector<float> w = Random(out * in, bits * 7 + static_cast<uint32_t>(g));
        QuantConfig cfg;
        cfg.bits = bits;
        cfg.group_size = g;
        cfg.grids = grids;
        auto q = QuantizeMatrix(w.data(), out, in, cfg);
        ASSERT_TRUE(q.ok());
        ASSERT_EQ(q->has_grids(), grids);
        const std::vector<float> wd = Dequantize(*q);
        QuantizedLinear op(std::move(*q));
        for (int64_t n : {1, 7}) {
          std::vector<float> x = Random(n * in, 99), y(n * out), yref(n * out);
          op.Forward(x.data(), n, y.data());
          ASSERT_EQ(kernels::DequantMatmulRef(op.matrix().View(), x.data(), n, yref.data()), "");
          const std::vector<double> exact = Naive(wd, out, in, x, n);
          for (int64_t i = 0; i < n * out; ++i) {
            const double tol = 1e-4 * (1 + std::fabs(exact[i]));
            EXPECT_NEAR(y[i], exact[i], tol);
            EXPECT_NEAR(yref[i], exact[i], 1e-5 * (1 + std::fabs(exact[i])));
          }
        }
      }
    }
  }
}

// The fast kernels (both the AVX2 and the baseline build) against the scalar oracle, every
// bitwidth, aligned, ragged and per-row groups, uniform and grid (Grid Games) matrices; the
// dequantized rows are bit-identical (DequantRow == DequantWeight == DequantRowFast).
TEST(QuantizedLinearTest, FastKernelsMatchScalarOracleOnEveryIsaAndBitwidth) {
  for (bool force_baseline : {false, true}) {
    const bool prev = kernels::ForceBaselinePackedKernels(force_baseline);
    for (int bits = 2; bits <= 8; ++bits) {
      for (int64_t g : {32, 64, 128, -1}) {
        for (int64_t in : {int64_t{256}, int64_t{200}, int64_t{45}}) {
          for (bool grids : {false, true}) {
            const int64_t out = 9;
            std::vector<float> w = Random(out * in, static_cast<uint32_t>(bits * 31 + in));
            QuantConfig cfg;
            cfg.bits = bits;
            cfg.group_size = g;
            cfg.grids = grids;
            auto q = QuantizeMatrix(w.data(), out, in, cfg);
            ASSERT_TRUE(q.ok());
            const kernels::PackedMatrixView v = q->View();
            ASSERT_EQ(kernels::ValidatePackedView(v), "");
            if (grids) {  // the matrix exercises the lookup paths: some group is off grid 0
              int64_t off_uniform = 0;
              const int64_t gpr = kernels::GroupsPerRow(in, q->group_size);
              for (int64_t r = 0; r < out; ++r)
                for (int64_t k = 0; k < gpr; ++k) off_uniform += kernels::GridId(v, r, k) != 0;
              ASSERT_GT(off_uniform, 0) << "bits " << bits << " g " << g << " in " << in;
            }
            std::vector<float> ref(in), fast(in);
            for (int64_t r = 0; r < out; ++r) {
              kernels::DequantRow(v, r, ref.data());
              kernels::DequantRowFast(v, r, fast.data());
              ASSERT_EQ(ref, fast) << "bits " << bits << " g " << g << " in " << in << " row " << r << " isa "
                                   << kernels::PackedKernelIsa() << " grids " << grids;
              for (int64_t c = 0; c < in; ++c) ASSERT_EQ(kernels::DequantWeight(v, r, c), ref[c]) << r << " " << c;
            }
            QuantizedLinear op(std::move(*q));
            std::vector<float> x = Random(in, 3), y(out), yref(out);
            op.Forward(x.data(), 1, y.data());
            ASSERT_EQ(kernels::DequantMatmulRef(op.matrix().View(), x.data(), 1, yref.data()), "");
            for (int64_t r = 0; r < out; ++r) {
              EXPECT_NEAR(y[r], yref[r], 1e-4 * (1 + std::fabs(yref[r])))
                  << "bits " << bits << " g " << g << " in " << in << " isa " << kernels::PackedKernelIsa() << " grids "
                  << grids;
            }
          }
        }
      }
    }
    kernels::ForceBaselinePackedKernels(prev);
  }
}

TEST(QuantizedLinearTest, RotatedOpApproximatesOriginalProduct) {
  const int64_t out = 64, in = 256, n = 3;
  std::vector<float> w = Random(out * in, 5), x = Random(n * in, 6);
  QuantConfig cfg;
  cfg.bits = 8;
  cfg.rotate = true;
  cfg.rotation_seed = 77;
  auto q = QuantizeMatrix(w.data(), out, in, cfg);
  ASSERT_TRUE(q.ok());
  QuantizedLinear op(std::move(*q));
  std::vector<float> y(n * out);
  op.Forward(x.data(), n, y.data());
  const std::vector<double> exact = Naive(w, out, in, x, n);
  double num = 0, den = 0;
  for (int64_t i = 0; i < n * out; ++i) num += std::pow(y[i] - exact[i], 2), den += exact[i] * exact[i];
  EXPECT_LT(num / den, 1e-4);
  EXPECT_EQ(op.in_features(), in);
  EXPECT_EQ(op.out_features(), out);
  EXPECT_NE(op.Describe().find("rot"), std::string::npos);
  EXPECT_LT(op.MemoryBytes(), static_cast<size_t>(out * in * 4 / 3));
}

// Random grid matrices (every code value, every grid id, ragged and per-row groups): each
// decoder gives exactly m + s * GridLevels(bits, id)[code] in fp32, on both ISAs; the fast dot
// product agrees with the fp64 oracle.
TEST(QuantizedLinearTest, RandomGridMatricesDecodeOnTheirLevelsEverywhere) {
  std::mt19937 rng(77);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int64_t g : {32, 64, 200}) {  // 200 = per-row at in = 200
      const int64_t out = 5, in = 200, gpr = kernels::GroupsPerRow(in, g);
      QuantizedMatrix q;
      q.rows = out;
      q.cols = in;
      q.bits = bits;
      q.group_size = g;
      std::vector<uint8_t> codes(out * in), ids(out * gpr);
      std::uniform_int_distribution<int> code(0, (1 << bits) - 1), id(0, kernels::kGridCount - 1);
      for (auto& c : codes) c = static_cast<uint8_t>(code(rng));
      for (auto& i : ids) i = static_cast<uint8_t>(id(rng));
      ids[0] = 1;  // some group off the uniform grid even at one group per row
      q.codes = *PackCodes(codes.data(), out, in, bits);
      q.grid_ids = *PackCodes(ids.data(), out, gpr, kernels::kGridIdBits);
      std::uniform_real_distribution<float> u(0.5f, 1.5f);
      for (int64_t k = 0; k < out * gpr; ++k) {
        q.scales.push_back(FloatToHalf(0.01f * u(rng)));
        q.zeros.push_back(FloatToHalf(-0.05f * u(rng)));
      }
      const kernels::PackedMatrixView v = q.View();
      ASSERT_EQ(kernels::ValidatePackedView(v), "");
      std::vector<float> ref(in), fast(in);
      for (bool force_baseline : {false, true}) {
        const bool prev = kernels::ForceBaselinePackedKernels(force_baseline);
        for (int64_t r = 0; r < out; ++r) {
          kernels::DequantRow(v, r, ref.data());
          kernels::DequantRowFast(v, r, fast.data());
          for (int64_t j = 0; j < in; ++j) {
            const int64_t k = r * gpr + j / g;
            const float want = HalfToFloat(q.zeros[k]) +
                               HalfToFloat(q.scales[k]) * kernels::GridLevels(bits, ids[k])[codes[r * in + j]];
            ASSERT_EQ(ref[j], want) << bits << " " << g << " " << r << " " << j;
            ASSERT_EQ(fast[j], want) << bits << " " << g << " " << r << " " << j << " " << kernels::PackedKernelIsa();
            ASSERT_EQ(kernels::DequantWeight(v, r, j), want);
          }
          ASSERT_EQ(kernels::GridId(v, r, 0), ids[r * gpr]);
        }
        QuantizedLinear op(q);
        std::vector<float> x = Random(in, 5), y(out), yref(out);
        op.Forward(x.data(), 1, y.data());
        ASSERT_EQ(kernels::DequantMatmulRef(v, x.data(), 1, yref.data()), "");
        for (int64_t r = 0; r < out; ++r)
          EXPECT_NEAR(y[r], yref[r], 1e-4 * (1 + std::fabs(yref[r]))) << bits << " " << g;
        kernels::ForceBaselinePackedKernels(prev);
      }
      // The same matrix read without its ids is a different matrix (the ids matter).
      QuantizedMatrix uniform = q;
      uniform.grid_ids.clear();
      EXPECT_NE(Dequantize(uniform), Dequantize(q)) << bits << " " << g;
      // A symmetric view carrying ids is refused.
      kernels::PackedMatrixView sym = v;
      sym.symmetric = true;
      EXPECT_NE(kernels::ValidatePackedView(sym), "");
    }
  }
}

}  // namespace
}  // namespace slq::quant
