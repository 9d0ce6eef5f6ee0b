// GPU tests for QGemm against the CPU reference (label gpu; skipped without a CUDA device).
// Every bitwidth x group size x activation type, real and ragged shapes, token counts that hit
// every tile configuration, split-K on and off; outputs are poisoned before each run.
#include "kernels/cuda/qgemm.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/dequant_ref.h"
#include "kernels/test_matrix.h"
#include "server/common/half.h"

namespace slq::kernels {
namespace {

#define SKIP_WITHOUT_GPU()                                                  \
  do {                                                                      \
    std::string why;                                                        \
    if (!CudaDeviceAvailable(&why)) GTEST_SKIP() << "needs a GPU: " << why; \
  } while (0)

uint16_t ToAct(float f, ActType a) { return a == ActType::kBF16 ? FloatToBf16(f) : FloatToHalf(f); }
float FromAct(uint16_t h, ActType a) { return a == ActType::kBF16 ? Bf16ToFloat(h) : HalfToFloat(h); }

struct Errors {
  double rel_fro = 0;  // ||y - ref|| / ||ref||
  double max_rel = 0;  // max |y - ref| / rms(ref)
  int64_t bad = 0;     // non-finite outputs (unwritten poison)
};

// Runs one case; returns the errors of the GPU result against the CPU reference.
Errors RunCase(int64_t rows, int64_t cols, int bits, int64_t g, ActType act, int64_t n, int splits, bool gemv,
               std::mt19937_64& rng) {
  OwnedPacked m = RandomPacked(rows, cols, bits, g, rng);
  RepackedMatrix rp;
  EXPECT_EQ(RepackForGpu(m.View(), &rp), "");
  DeviceMatrix dm;
  EXPECT_EQ(UploadMatrix(rp, &dm), "");
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<uint16_t> xh(static_cast<size_t>(n * cols));  // [n, cols] act
  std::vector<float> xf(xh.size());
  for (size_t i = 0; i < xh.size(); ++i) {
    xh[i] = ToAct(nd(rng), act);
    xf[i] = FromAct(xh[i], act);
  }
  std::vector<float> ref(static_cast<size_t>(n * rows));  // [n, rows]
  EXPECT_EQ(DequantMatmulRef(m.View(), xf.data(), n, ref.data()), "");

  void *dx = nullptr, *dy = nullptr, *ws = nullptr;
  EXPECT_EQ(cudaMalloc(&dx, xh.size() * 2), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&dy, ref.size() * 2), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(dx, xh.data(), xh.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemset(dy, 0xFF, ref.size() * 2), cudaSuccess);  // NaN poison
  const size_t wsb = QGemmWorkspaceBytes(rows, n);
  EXPECT_EQ(AllocWorkspace(wsb, &ws), "");
  QGemmOptions opt;
  opt.splits = splits;
  opt.allow_gemv = gemv;
  EXPECT_EQ(QGemm(dm, dx, n, dy, act, ws, wsb, nullptr, opt), "");
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  // Run again on the same workspace: it must have been left zeroed.
  EXPECT_EQ(cudaMemset(dy, 0xFF, ref.size() * 2), cudaSuccess);
  EXPECT_EQ(QGemm(dm, dx, n, dy, act, ws, wsb, nullptr, opt), "");
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> yh(ref.size());
  EXPECT_EQ(cudaMemcpy(yh.data(), dy, yh.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(ws);
  FreeDeviceMatrix(&dm);

  Errors e;
  double num = 0, den = 0, maxd = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float y = FromAct(yh[i], act);
    if (!std::isfinite(y)) {
      ++e.bad;
      continue;
    }
    const double d = static_cast<double>(y) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
    maxd = std::max(maxd, std::fabs(d));
  }
  e.rel_fro = std::sqrt(num / std::max(den, 1e-30));
  e.max_rel = maxd / std::sqrt(std::max(den, 1e-30) / static_cast<double>(ref.size()));
  return e;
}

void Check(int64_t rows, int64_t cols, int bits, int64_t g, ActType act, int64_t n, int splits, std::mt19937_64& rng,
           bool gemv = true) {
  const Errors e = RunCase(rows, cols, bits, g, act, n, splits, gemv, rng);
  // fp16: weights rounded once to fp16 (2^-11) and output to fp16; bf16: 2^-8 each.
  const double tol_fro = act == ActType::kBF16 ? 8e-3 : 1.5e-3;
  const double tol_max = act == ActType::kBF16 ? 6e-2 : 1.2e-2;
  const std::string what = "rows " + std::to_string(rows) + " cols " + std::to_string(cols) + " bits " +
                           std::to_string(bits) + " g " + std::to_string(g) +
                           (act == ActType::kBF16 ? " bf16" : " fp16") + " n " + std::to_string(n) + " splits " +
                           std::to_string(splits) + (gemv ? "" : " tiled");
  EXPECT_EQ(e.bad, 0) << what;
  EXPECT_LT(e.rel_fro, tol_fro) << what;
  EXPECT_LT(e.max_rel, tol_max) << what;
}

class QGemmAllBits : public ::testing::TestWithParam<int> {};

TEST_P(QGemmAllBits, RaggedShapesAllTileConfigs) {
  SKIP_WITHOUT_GPU();
  const int bits = GetParam();
  std::mt19937_64 rng(1000 + bits);
  for (ActType act : {ActType::kF16, ActType::kBF16}) {
    for (int64_t g : {64, 128}) {
      // rows not a multiple of 16, cols not a multiple of 256 (nor of 128 for g = 64).
      for (int64_t n : {1, 3, 8, 13, 29, 64, 77}) Check(70, 1000, bits, g, act, n, 0, rng);
      Check(33, 192, bits, g, act, 5, 1, rng);
      Check(70, 1000, bits, g, act, 3, 0, rng, /*gemv=*/false);  // tiled kernel at small n
    }
  }
}

TEST_P(QGemmAllBits, RealShapesSplitKOnAndOff) {
  SKIP_WITHOUT_GPU();
  const int bits = GetParam();
  std::mt19937_64 rng(2000 + bits);
  for (ActType act : {ActType::kF16, ActType::kBF16}) {
    for (int64_t g : {64, 128}) {
      Check(256, 4096, bits, g, act, 1, 0, rng);   // auto split-K
      Check(256, 4096, bits, g, act, 16, 1, rng);  // no split
      Check(128, 14336, bits, g, act, 2, 5, rng);  // down-proj K
      Check(64, 14336, bits, g, act, 8, 1, rng);   // too large to stage: forced to split
    }
    Check(512, 4096, bits, 128, act, 128, 0, rng);
  }
}

INSTANTIATE_TEST_SUITE_P(Bits, QGemmAllBits, ::testing::Range(2, 9));

TEST(QGemmTest, RejectsBadArguments) {  // validation happens before any CUDA call
  DeviceMatrix dm;
  dm.layout.bits = 4;
  dm.layout.group_size = 32;
  dm.layout.cols = 64;
  EXPECT_NE(QGemm(dm, nullptr, 1, nullptr, ActType::kF16, nullptr, 0, nullptr).find("group_size"), std::string::npos);
  dm.layout.group_size = 64;
  dm.layout.bits = 9;
  EXPECT_NE(QGemm(dm, nullptr, 1, nullptr, ActType::kF16, nullptr, 0, nullptr).find("bits = 9"), std::string::npos);
}

}  // namespace
}  // namespace slq::kernels
